// Preloaded into key-server (NODE_OPTIONS=--import) to make the disk under its audit log fail.
// AUDIT_FILE names the end of a path (say "/audit.jsonl"); for a file opened at a path ending so:
// - with AUDIT_HANGS=1, writes and syncs never return, as on a disk that stopped answering;
// - with AUDIT_FULL_ONCE (a file), the next write once that file exists fails as on a full disk
//   (ENOSPC) and removes it: the disk had no room for that write, and has some again after it.
// Opening it, and every other file, is served as usual.
import { existsSync, promises as fs, rmSync } from 'node:fs';

const mark = process.env.AUDIT_FILE;
const fullOnce = process.env.AUDIT_FULL_ONCE;
const marked = new WeakSet();
if (mark) {
  const open = fs.open;
  fs.open = async function (path, ...rest) {
    const fh = await open.call(this, path, ...rest);
    if (String(path).endsWith(mark)) marked.add(fh);
    return fh;
  };
  // Every FileHandle shares one prototype: the one of a handle opened here.
  const probe = await open('/dev/null');
  const proto = Object.getPrototypeOf(probe);
  await probe.close();
  // A call stuck in the kernel keeps the process alive, as this timer does: a bare promise that
  // never settles would let Node end the process once nothing else is left to wait for.
  const stuck = () => new Promise(() => setInterval(() => {}, 60_000));
  const full = () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' }));
  for (const method of ['write', 'sync', 'datasync']) {
    const real = proto[method];
    proto[method] = function (...args) {
      if (!marked.has(this)) return real.apply(this, args);
      if (process.env.AUDIT_HANGS === '1') return stuck();
      if (method === 'write' && fullOnce && existsSync(fullOnce)) {
        rmSync(fullOnce);
        return full();
      }
      return real.apply(this, args);
    };
  }
}

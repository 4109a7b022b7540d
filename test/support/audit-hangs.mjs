// Preloaded into key-server (NODE_OPTIONS=--import): with AUDIT_HANGS set (the end of a path, say
// "/audit.jsonl"), writes and syncs of a file opened at a path ending so never return, as on a
// disk that stopped answering; opening it, and every other file, is served as usual.
import { promises as fs } from 'node:fs';

const mark = process.env.AUDIT_HANGS;
const hung = new WeakSet();
if (mark) {
  const open = fs.open;
  fs.open = async function (path, ...rest) {
    const fh = await open.call(this, path, ...rest);
    if (String(path).endsWith(mark)) hung.add(fh);
    return fh;
  };
  // Every FileHandle shares one prototype: the one of a handle opened here.
  const probe = await open('/dev/null');
  const proto = Object.getPrototypeOf(probe);
  await probe.close();
  // A call stuck in the kernel keeps the process alive, as this timer does: a bare promise that
  // never settles would let Node end the process once nothing else is left to wait for.
  const stuck = () => new Promise(() => setInterval(() => {}, 60_000));
  for (const method of ['write', 'sync', 'datasync']) {
    const real = proto[method];
    proto[method] = function (...args) {
      return hung.has(this) ? stuck() : real.apply(this, args);
    };
  }
}

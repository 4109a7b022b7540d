// Drives test/support/level-writer.ts in a child under a file-size limit (ulimit -f), which meets
// EFBIG where a full disk would meet ENOSPC; prlimit (util-linux) changes the running child's limit,
// as filling or freeing the disk would.

import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import { ROOT } from './helpers.ts';

export const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

export type Writer = ReturnType<typeof writer>;

/**
 * The level-writer child on the key-server database in `dir` (or, with `cryptstore`, the
 * cryptstore) under a soft file-size limit of `kib` KiB, and a way to send it commands.
 */
export function writer(dir: string, kib: number | 'unlimited', cryptstore = false) {
  const args = [process.execPath, dir, ...(cryptstore ? ['--cryptstore'] : [])];
  const child = spawn('bash', ['-c', `ulimit -S -f ${kib} && exec "$0" --import tsx test/support/level-writer.ts "$@"`, ...args], { cwd: ROOT }) as ChildProcessWithoutNullStreams;
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error(`level-writer ended: ${stderr}`);
    return r.value;
  };
  return {
    child,
    ready: next,
    send: async (command: string) => {
      child.stdin.write(`${command}\n`);
      return next();
    },
  };
}

/** Sets the running child's soft file-size limit (KiB), as freeing or filling its disk would. */
export function setFileLimit(w: Writer, kib: number | 'unlimited'): void {
  const limit = kib === 'unlimited' ? kib : String(kib * 1024);
  expect(spawnSync('prlimit', ['--pid', String(w.child.pid), `--fsize=${limit}:`]).status).to.equal(0);
}

/** Lifts the running child's file-size limit, as freeing space on its disk would. */
export const raiseFileLimit = (w: Writer) => setFileLimit(w, 'unlimited');

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

/**
 * Runs the writer on `dir` under `kib`: `body` talks to it once it is ready, then it is closed;
 * the child is killed however it ends.
 */
export async function withWriter(dir: string, kib: number | 'unlimited', body: (w: Writer) => Promise<void>, cryptstore = false): Promise<void> {
  const w = writer(dir, kib, cryptstore);
  try {
    expect(await w.ready()).to.equal('ready');
    await body(w);
    expect(await w.send('close')).to.equal('ok closed');
  } finally {
    w.child.kill();
  }
}

/** Runs the writer on `dir` under `kib`, sends `commands` then "close", and returns the answers. */
export async function runWriter(dir: string, kib: number | 'unlimited', commands: string[], cryptstore = false): Promise<string[]> {
  const w = writer(dir, kib, cryptstore);
  try {
    expect(await w.ready()).to.equal('ready');
    const out: string[] = [];
    for (const command of [...commands, 'close']) out.push(await w.send(command));
    return out;
  } finally {
    w.child.kill();
  }
}

/**
 * Makes LevelDB's background flush of its memtable fail (over 4 MiB of "a" in it, then a 1 MiB
 * file-size limit: no room for the table), lifts the limit, and expects the next writes to be
 * taken with no restart, and every acknowledged one to be there at the next open. Before the
 * reopen after a failed write, LevelDB refused every write after the flush failed.
 */
export async function writesAgainAfterFailedFlush(dir: string, cryptstore = false): Promise<void> {
  let c = 0;
  await withWriter(dir, 'unlimited', async (w) => {
    // The write after these starts a new log and flushes them to a table in the background.
    for (let v = 1; v <= 5; v++) expect(await w.send('put a 1000000')).to.equal(`ok ${v}`);
    setFileLimit(w, 1024);
    expect(await w.send('put b 1000')).to.equal('ok 1');
    // Until the flush fails, writes go on.
    let answer = '';
    for (let i = 0; i < 1000 && !answer.startsWith('error'); i++) {
      answer = await w.send('put c 10');
      if (answer.startsWith('ok')) c++;
    }
    expect(answer).to.match(/^error FILE_ERROR .*cannot be written/);
    raiseFileLimit(w);
    expect(await w.send('put d 10')).to.equal('ok 1');
    expect(await w.send('put c 10')).to.equal(`ok ${c + 1}`);
  }, cryptstore);
  expect(await runWriter(dir, 'unlimited', ['get a', 'get b', 'get c', 'get d'], cryptstore)).to.deep.equal(['ok 5', 'ok 1', `ok ${c + 1}`, 'ok 1', 'ok closed']);
}

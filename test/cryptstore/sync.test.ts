// What a power failure depends on in the cryptstore, checked in the system calls it makes
// (test/support/strace.ts): every write (metadata, put, batch, delete, import, rekey) is synced
// to LevelDB's log (an fdatasync from LevelDB's thread) before it is acknowledged, and a store
// directory that create made is named durably in its parent.
import { expect } from 'chai';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { skipWithoutStrace, traced, type TraceRun } from '../support/strace.ts';

const SCRIPT = new URL('../support/sync-cryptstore.ts', import.meta.url).pathname;
const LOADER = new URL('../support/tsx.mjs', import.meta.url).pathname;

describe('cryptstore durability (strace)', function () {
  let dir: string;
  let store: string;
  let run: TraceRun | undefined;

  // One traced run of the script serves every test below.
  async function traceOnce(): Promise<TraceRun> {
    if (run) return run;
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'cryptstore-sync-'))); // strace shows real paths
    store = join(dir, 'made', 'store');
    run = await traced([process.execPath, '--import', LOADER, SCRIPT, store], { dir });
    expect(run.status, run.stderr).to.equal(0);
    return run;
  }

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const log = (p: string) => p.startsWith(`${store}/`) && /^\d+\.log$/.test(basename(p));

  for (const [step, before, what] of [
    ['created', undefined, 'a new store\'s metadata'],
    ['put', 'created', 'a put'],
    ['putAll', 'put', 'a batch of puts'],
    ['deleted', 'putAll', 'a delete and its high-water mark'],
    ['imported', 'deleted', 'an import'],
    ['rekeyed', 'imported', 'the metadata a rekey rewrites'],
  ] as const) {
    it(`syncs ${what} to LevelDB's log before it is acknowledged`, async function () {
      skipWithoutStrace(this);
      const { trace } = await traceOnce();
      const from = before === undefined ? undefined : trace.mark(before);
      expect(trace.syncsBetween(log, from, trace.mark(step)), `no sync of ${store}'s log between ${before ?? 'the start'} and ${step}\n${trace}`).to.not.be.empty;
    });
  }

  it('syncs the parent of each directory create made, before the store is acknowledged', async function () {
    skipWithoutStrace(this);
    const { trace } = await traceOnce();
    const created = trace.mark('created');
    for (const made of [dirname(store), store]) {
      const mkdir = trace.first('mkdir', (m) => m.path === made, `mkdir of ${made}`).call;
      expect(trace.syncsBetween(dirname(made), mkdir, created), `no fsync of ${dirname(made)} after ${made} was made\n${trace}`).to.not.be.empty;
    }
  });
});

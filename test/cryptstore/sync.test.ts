// What a power failure depends on in the cryptstore, checked in the system calls it makes
// (test/support/strace.ts): every write (metadata, put, batch, delete, import, rekey) is synced
// to LevelDB's log (an fdatasync from LevelDB's thread) before it is acknowledged, and a store
// directory that create made is named durably in its parent.
import { expect } from 'chai';
import { basename, dirname, join } from 'node:path';
import { sharedTrace } from '../support/strace.ts';

describe('cryptstore durability (strace)', function () {
  const traceOf = sharedTrace('sync-cryptstore.ts', (dir) => [join(dir, 'made', 'store')]);

  const logOf = (store: string) => (p: string) => p.startsWith(`${store}/`) && /^\d+\.log$/.test(basename(p));

  for (const [step, before, what] of [
    ['created', undefined, 'a new store\'s metadata'],
    ['put', 'created', 'a put'],
    ['putAll', 'put', 'a batch of puts'],
    ['deleted', 'putAll', 'a delete and its high-water mark'],
    ['imported', 'deleted', 'an import'],
    ['rekeyed', 'imported', 'the metadata a rekey rewrites'],
  ] as const) {
    it(`syncs ${what} to LevelDB's log before it is acknowledged`, async function () {
      const { trace, dir } = await traceOf(this);
      const store = join(dir, 'made', 'store');
      const from = before === undefined ? undefined : trace.mark(before);
      expect(trace.syncsBetween(logOf(store), from, trace.mark(step)), `no sync of ${store}'s log between ${before ?? 'the start'} and ${step}\n${trace}`).to.not.be.empty;
    });
  }

  it('syncs the parent of each directory create made, before the store is acknowledged', async function () {
    const { trace, dir } = await traceOf(this);
    const store = join(dir, 'made', 'store');
    const created = trace.mark('created');
    for (const made of [dirname(store), store]) {
      const mkdir = trace.first('mkdir', (m) => m.path === made, `mkdir of ${made}`).call;
      expect(trace.syncsBetween(dirname(made), mkdir, created), `no fsync of ${dirname(made)} after ${made} was made\n${trace}`).to.not.be.empty;
    }
  });
});

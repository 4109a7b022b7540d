// What a power failure depends on in key-server's LevelDB backend, checked in the system calls it
// makes (test/support/strace.ts): every write is synced ({ sync: true }: an fdatasync of
// LevelDB's log, from its own thread) before it is acknowledged, and a backup's files, database
// and directories are synced before and after it is renamed into place.
import { expect } from 'chai';
import { basename, dirname, join } from 'node:path';
import { sharedTrace, type Call } from '../support/strace.ts';

describe('key-server LevelDB backend durability (strace)', function () {
  const traceOf = sharedTrace('sync-level.ts', (dir) => [join(dir, 'data'), join(dir, 'keys-1')]);

  /** LevelDB's write-ahead log in `db`: NNNNNN.log. */
  const logOf = (db: string) => (p: string) => p.startsWith(`${db}/`) && /^\d+\.log$/.test(basename(p));

  for (const [step, before, what] of [
    ['opened', undefined, 'the format mark a new database gets'],
    ['bound', 'opened', 'the storage key id'],
    ['appended', 'bound', 'a new record'],
    ['appended again', 'appended', 'a new version'],
    ['deleted', 'appended again', 'a delete and its high-water mark'],
  ] as const) {
    it(`syncs ${what} to LevelDB's log before it is acknowledged`, async function () {
      const { trace, dir } = await traceOf(this);
      const data = join(dir, 'data');
      const from = before === undefined ? undefined : trace.mark(before);
      expect(trace.syncsBetween(logOf(data), from, trace.mark(step)), `no sync of ${data}'s log between ${before ?? 'the start'} and ${step}\n${trace}`).to.not.be.empty;
    });
  }

  it('syncs the parent of each directory it makes (data, locked data, backup directory) before going on', async function () {
    const { trace, dir } = await traceOf(this);
    const data = join(dir, 'data');
    for (const [made, by] of [
      [join(dir, 'locked'), 'dirs made'], [join(dir, 'locked', 'data'), 'dirs made'],
      [join(dir, 'backups'), 'dirs made'], [join(dir, 'backups', 'deep'), 'dirs made'],
      [data, 'opened'],
    ] as const) {
      const mkdir = trace.first('mkdir', (m) => m.path === made, `mkdir of ${made}`).call;
      expect(trace.syncsBetween(dirname(made), mkdir, trace.mark(by)), `no fsync of ${dirname(made)} after ${made} was made\n${trace}`).to.not.be.empty;
    }
  });

  it('syncs the parents of the directories it makes named through "link/..", where the link leads', async function () {
    const { trace, dir } = await traceOf(this);
    // The kernel makes elsewhere/linked and elsewhere/linked/deep; the trace reads mkdir's path as
    // text (path.resolve), as linked and linked/deep.
    for (const [made, parent] of [[join(dir, 'linked'), join(dir, 'elsewhere')], [join(dir, 'linked', 'deep'), join(dir, 'elsewhere', 'linked')]] as const) {
      const mkdir = trace.first('mkdir', (m) => m.path === made, `mkdir of ${made}`).call;
      expect(trace.syncsBetween(parent, mkdir, trace.mark('dirs made')), `no fsync of ${parent} after ${made} was made\n${trace}`).to.not.be.empty;
    }
  });

  it('syncs a backup\'s marker, database, key id file and directory before renaming it into place, and its parent after', async function () {
    const { trace, dir } = await traceOf(this);
    const backup = join(dir, 'keys-1');
    const ren = trace.first('rename', (r) => r.to === backup, `rename onto ${backup}`);
    const tmp = ren.from;
    expect(tmp.startsWith(`${backup}.partial-`), tmp).to.equal(true);
    const opened = (name: string) => trace.first('open', (o) => o.path === join(tmp, name), `open of ${join(tmp, name)}`).call;
    const unfinished = join(tmp, 'UNFINISHED-BACKUP');
    const problem = (what: string) => `${what}\n${trace}`;
    // The marker is whole on disk, and named in the directory, before LevelDB makes its database there.
    const leveldb = trace.first('open', (o) => o.path.startsWith(`${tmp}/`) && o.path !== unfinished, `LevelDB's first file in ${tmp}`).call;
    expect(trace.syncsBetween(unfinished, opened('UNFINISHED-BACKUP'), leveldb), problem(`no fsync of ${unfinished} before LevelDB's files`)).to.not.be.empty;
    expect(trace.syncsBetween(tmp, opened('UNFINISHED-BACKUP'), leveldb), problem(`no fsync of ${tmp} after ${unfinished} was made`)).to.not.be.empty;
    // The copy's last batch syncs LevelDB's log, which holds every batch before it.
    expect(trace.syncsBetween(logOf(tmp), leveldb, ren.call), problem(`no sync of ${tmp}'s log before the rename`)).to.not.be.empty;
    const keyId = join(tmp, 'STORAGE-KEY-ID');
    expect(trace.syncsBetween(keyId, opened('STORAGE-KEY-ID'), ren.call), problem(`no fsync of ${keyId}`)).to.not.be.empty;
    expect(trace.syncsBetween(tmp, opened('STORAGE-KEY-ID'), ren.call), problem(`no fsync of ${tmp} after ${keyId} was made`)).to.not.be.empty;
    // The marker's removal is durable before the copy takes its name: a copy found whole is whole.
    const removed: Call = trace.first('unlink', (u) => u.path === unfinished, `unlink of ${unfinished}`).call;
    expect(trace.syncsBetween(tmp, removed, ren.call), problem(`no fsync of ${tmp} after ${unfinished} was removed`)).to.not.be.empty;
    expect(trace.syncsBetween(dir, ren.call, trace.mark('backed up')), problem(`no fsync of ${dir} after the rename`)).to.not.be.empty;
  });
});

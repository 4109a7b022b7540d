// Pruning the key-server's backups (--backup-keep): the newest N of this server's own stay, partial
// copies left by a process that died go, and nothing else in the directory is touched; and the
// directory they are kept in, which must be the server user's alone.

import { expect } from 'chai';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { backupDirProblem, backupName, KEY_ID_FILE, prepareBackupDir, pruneBackups, pruneReport } from '../../lib/keyservice/backups.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { unmakeDirs } from '../../lib/files/index.ts';
import { tempDir } from '../support/helpers.ts';
import { recordFor } from './backend-contract.ts';
import { rejects } from '../support/rejects.ts';

/** Dates `dir` and what is in it long ago, as a partial copy whose writer died long ago. */
function longAgo(dir: string): void {
  const then = new Date(Date.UTC(2000, 0, 1));
  for (const f of readdirSync(dir)) utimesSync(join(dir, f), then, then);
  utimesSync(dir, then, then);
}

/** DIR/backups, holding a backup (backupTo) of a database of one record under each of `names`. */
async function writeBackups(dir: string, names: string[]): Promise<string> {
  const backups = join(dir, 'backups');
  mkdirSync(backups, { recursive: true });
  const source = await LevelBackend.open(join(dir, 'data'));
  try {
    await source.append('k', (v) => recordFor('k', v));
    for (const n of names) await source.backupTo(join(backups, n));
  } finally {
    await source.close();
  }
  return backups;
}

describe('key-server backups: pruning', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('backups-')));
  afterEach(() => tmp.cleanup());

  it('keeps the newest N, removes stale partial copies, and leaves other files and live partial copies alone', async () => {
    const names = [0, 1, 2, 3].map((d) => backupName(new Date(Date.UTC(2026, 11, 1 + d, 3))));
    for (const n of names) mkdirSync(join(tmp.dir, n));
    const dead = `${backupName(new Date(Date.UTC(2026, 10, 1)))}.partial-2147483646`; // no such process
    const deadNow = `${backupName(new Date(Date.UTC(2026, 10, 1)))}.partial-2147483646-Ab3xY9`; // as backupTo names them
    const live = `${backupName(new Date(Date.UTC(2026, 10, 2)))}.partial-${process.pid}-q1W2e3`;
    // Left by a writer whose process id another program has now (after a reboot, say): pid 1 always
    // runs, and is no key-server.
    const earlierBoot = `${backupName(new Date(Date.UTC(2000, 0, 1)))}.partial-1-Zz9yX8`;
    // Its writer looks gone, but it changed minutes ago: a writer in another PID namespace (another
    // container sharing the directory) is no process here, and its copy must not go under it.
    const otherNamespace = `${backupName(new Date(Date.UTC(2026, 10, 3)))}.partial-2147483646-Cc4dE5`;
    for (const n of [dead, deadNow, live, earlierBoot, otherNamespace]) mkdirSync(join(tmp.dir, n));
    writeFileSync(join(tmp.dir, otherNamespace, '000003.log'), 'being written');
    // A copy being written now stays whatever its time says (a clock stepped forward since it began).
    for (const n of [dead, deadNow, live, earlierBoot]) longAgo(join(tmp.dir, n));
    writeFileSync(join(tmp.dir, 'notes.txt'), 'mine');
    const { removed } = await pruneBackups(tmp.dir, 2);
    expect([...removed].sort()).to.deep.equal([names[0], names[1], dead, deadNow, earlierBoot].sort());
    expect(readdirSync(tmp.dir).sort()).to.deep.equal([names[2], names[3], live, otherNamespace, 'notes.txt'].sort());
    // Once nothing in it changed for a while, it is a dead writer's.
    longAgo(join(tmp.dir, otherNamespace));
    expect((await pruneBackups(tmp.dir, 2)).removed).to.deep.equal([otherNamespace]);
    await rejects(pruneBackups(tmp.dir, 0), 'INVALID_INPUT');
  });

  it('prunes a directory named through "link/.." where the link leads, and nothing in the directory of that name beside it', async () => {
    const names = [0, 1, 2].map((d) => backupName(new Date(Date.UTC(2026, 11, 1 + d, 3))));
    mkdirSync(join(tmp.dir, 'elsewhere', 'deep'), { recursive: true });
    symlinkSync(join(tmp.dir, 'elsewhere', 'deep'), join(tmp.dir, 'link'));
    for (const n of names) mkdirSync(join(tmp.dir, 'elsewhere', 'bk', n), { recursive: true });
    for (const n of names.slice(0, 2)) mkdirSync(join(tmp.dir, 'bk', n), { recursive: true }); // another's, beside the link
    const { removed } = await pruneBackups(`${tmp.dir}/link/../bk`, 1); // not join(), which takes the .. as text
    expect(removed).to.deep.equal([names[0], names[1]]);
    expect(readdirSync(join(tmp.dir, 'elsewhere', 'bk'))).to.deep.equal([names[2]]);
    expect(readdirSync(join(tmp.dir, 'bk')), 'beside the link').to.deep.equal(names.slice(0, 2));
  });

  it('never removes the data directory being served, which may be a backup put back in place', async () => {
    const names = [0, 1, 2].map((d) => backupName(new Date(Date.UTC(2026, 11, 1 + d, 3))));
    for (const n of names) mkdirSync(join(tmp.dir, n));
    const { removed } = await pruneBackups(tmp.dir, 1, { live: join(tmp.dir, '.', names[0]!) }); // the oldest is live
    expect(removed).to.deep.equal([names[1]]);
    expect(readdirSync(tmp.dir).sort()).to.deep.equal([names[0], names[2]]);
  });

  it('never removes a backup whose key database another process has open, nor a partial copy being served', async () => {
    const names = [0, 1, 2, 3].map((d) => backupName(new Date(Date.UTC(2026, 11, 1 + d, 3))));
    const partial = `${names[0]}.partial-2147483646-Ab3xY9`; // its writer is gone
    for (const n of names.slice(2)) mkdirSync(join(tmp.dir, n));
    // Served in place by another key-server (here, by this process: LevelDB's lock is the same),
    // after its writer's own open.
    for (const n of [names[0]!, names[1]!, partial]) await (await LevelBackend.open(join(tmp.dir, n))).close();
    const served = await Promise.all([names[0]!, names[1]!, partial].map((n) => LevelBackend.open(join(tmp.dir, n))));
    longAgo(join(tmp.dir, partial));
    try {
      expect(await pruneBackups(tmp.dir, 1)).to.deep.equal({ removed: [names[2]], ahead: [], inUse: [names[0], names[1], partial], otherFiles: [], opened: [], otherServer: [], unreadable: [] });
    } finally {
      for (const b of served) await b.close();
    }
    // The live data directory stays, a partial copy too (one served after its writer died).
    expect(await pruneBackups(tmp.dir, 1, { live: join(tmp.dir, partial) })).to.deep.equal({ removed: [], ahead: [], inUse: [], otherFiles: [], opened: [names[0], names[1]], otherServer: [], unreadable: [] });
    expect(readdirSync(tmp.dir).sort()).to.deep.equal([names[0], names[1], partial, names[3]].sort());
  });

  it('keeps a backup opened since it was written (LOG.old) where the list of locks does not show it, and prunes untouched ones where it cannot be read', async () => {
    const names = [0, 1, 2, 3].map((d) => backupName(new Date(Date.UTC(2026, 11, 1 + d, 3))));
    const backups = await writeBackups(tmp.dir, names);
    // As written, a backup was opened once, by its writer: LevelDB's info log is LOG alone.
    expect(readdirSync(join(backups, names[0]!))).to.include('LOG').and.not.to.include('LOG.old');
    // Served in place by a key-server in another PID namespace (a container), or on overlayfs:
    // its lock is not in the list this process reads, here an empty one.
    const blind = join(tmp.dir, 'locks');
    writeFileSync(blind, '');
    const served = await LevelBackend.open(join(backups, names[0]!));
    try {
      const pruned = await pruneBackups(backups, 1, { written: join(backups, names[3]!), locks: blind });
      expect(pruned).to.deep.equal({ removed: [names[1], names[2]], ahead: [], inUse: [], otherFiles: [], opened: [names[0]], otherServer: [], unreadable: [] });
      expect(pruneReport(pruned)).to.deep.include({ opened: names[0] });
      expect(pruneReport(pruned).warning).to.contain(`kept ${names[0]}: it has been opened since it was written (served in place?), so it is not counted in --backup-keep`);
    } finally {
      await served.close();
    }
    // Where the list cannot be read (not Linux), untouched backups are pruned all the same, and
    // one opened since it was written stays.
    await writeBackups(tmp.dir, [names[1]!]);
    expect(await pruneBackups(backups, 1, { written: join(backups, names[3]!), locks: join(tmp.dir, 'no-such-list') }))
      .to.deep.equal({ removed: [names[1]], ahead: [], inUse: [], otherFiles: [], opened: [names[0]], otherServer: [], unreadable: [] });
    expect(readdirSync(backups).sort()).to.deep.equal([names[0], names[3]]);
  });

  it('removes only what holds LevelDB\'s files alone: one served in place, with its audit log, is kept and reported', async () => {
    const names = [0, 1, 2, 3].map((d) => backupName(new Date(Date.UTC(2026, 11, 1 + d, 3))));
    const backups = await writeBackups(tmp.dir, names);
    // Served in place once: LevelDB's files change, and the server's audit log is left beside them.
    for (const n of [names[0]!, names[1]!]) await (await LevelBackend.open(join(backups, n))).close();
    writeFileSync(join(backups, names[0]!, 'audit.jsonl'), '{"seq":1}\n');
    const partial = `${names[0]}.partial-2147483646-Ab3xY9`;
    mkdirSync(join(backups, partial));
    writeFileSync(join(backups, partial, 'audit.jsonl.lock'), '');
    longAgo(join(backups, partial));
    const pruned = await pruneBackups(backups, 1, { written: join(backups, names[3]!) });
    expect(pruned).to.deep.equal({ removed: [names[2]], ahead: [], inUse: [], otherFiles: [names[0], partial], opened: [names[1]], otherServer: [], unreadable: [] });
    expect(readdirSync(backups).sort()).to.deep.equal([names[0], names[1], partial, names[3]].sort());
    expect(pruneReport(pruned)).to.deep.include({ pruned: names[2], otherFiles: `${names[0]},${partial}`, opened: names[1] });
    expect(pruneReport(pruned).warning).to.contain(`kept ${names[0]}, ${partial}: it holds files a backup does not (served in place?)`);
    expect(pruneReport({ removed: [], ahead: [], inUse: [], otherFiles: [], opened: [], otherServer: [], unreadable: [] })).to.deep.equal({});
  });

  it('removes only this key-server\'s backups: one of another key-server sharing the directory (another storage key) is kept, not counted, and named', async () => {
    const backups = join(tmp.dir, 'backups');
    mkdirSync(backups);
    const ours = 'a'.repeat(32);
    const theirs = 'b'.repeat(32);
    const names = [0, 1, 2, 3, 4].map((d) => backupName(new Date(Date.UTC(2026, 11, 1 + d, 3))));
    const [legacy, theirsOld, oursOld, written, theirsAhead] = names as [string, string, string, string, string];
    mkdirSync(join(backups, legacy)); // made before backups named their storage key: pruned as before
    for (const [id, at] of [[theirs, [theirsOld, theirsAhead]], [ours, [oursOld, written]]] as const) {
      const source = await LevelBackend.open(join(tmp.dir, `data-${id}`));
      try {
        await source.bindStorageKey(id);
        await source.append('k', (v) => recordFor('k', v));
        for (const n of at) await source.backupTo(join(backups, n));
      } finally {
        await source.close();
      }
    }
    expect(readFileSync(join(backups, written, KEY_ID_FILE), 'latin1')).to.equal(ours);
    // A partial copy of theirs, its writer gone long ago (or in another container): not ours to remove either.
    const theirsPartial = `${theirsOld}.partial-2147483646-Ab3xY9`;
    mkdirSync(join(backups, theirsPartial));
    writeFileSync(join(backups, theirsPartial, KEY_ID_FILE), theirs);
    longAgo(join(backups, theirsPartial));
    const pruned = await pruneBackups(backups, 1, { written: join(backups, written), keyId: ours });
    expect(pruned).to.deep.equal({ removed: [legacy, oursOld], ahead: [], inUse: [], otherFiles: [], opened: [], otherServer: [theirsOld, theirsAhead, theirsPartial], unreadable: [] });
    expect(readdirSync(backups).sort()).to.deep.equal([theirsOld, theirsPartial, written, theirsAhead].sort());
    expect(pruneReport(pruned)).to.deep.include({ otherServer: `${theirsOld},${theirsAhead},${theirsPartial}` });
    expect(pruneReport(pruned).warning).to.contain('backups of another key-server (another storage key) share this --backup-dir');
    // The file beside LevelDB's is no bar to serving a backup in place.
    const served = await LevelBackend.open(join(backups, written));
    try {
      expect(await served.boundStorageKey()).to.equal(ours);
    } finally {
      await served.close();
    }
    expect((await pruneBackups(backups, 1, { keyId: ours })).removed).to.deep.equal([]);
  });

  it('keeps, without waiting on it, a backup whose STORAGE-KEY-ID is a FIFO, a directory or too large, and calls it unreadable, not another server\'s', async () => {
    const ours = 'a'.repeat(32);
    const names = [0, 1, 2, 3, 4].map((d) => backupName(new Date(Date.UTC(2026, 11, 1 + d, 3))));
    for (const n of names) mkdirSync(join(tmp.dir, n));
    execFileSync('mkfifo', [join(tmp.dir, names[0]!, KEY_ID_FILE)]); // read plainly, it would hang the prune
    mkdirSync(join(tmp.dir, names[1]!, KEY_ID_FILE));
    writeFileSync(join(tmp.dir, names[2]!, KEY_ID_FILE), ours.repeat(100));
    writeFileSync(join(tmp.dir, names[3]!, KEY_ID_FILE), ours);
    const pruned = await pruneBackups(tmp.dir, 1, { written: join(tmp.dir, names[4]!), keyId: ours });
    expect(pruned).to.deep.equal({ removed: [names[3]], ahead: [], inUse: [], otherFiles: [], opened: [], otherServer: [], unreadable: [names[0], names[1], names[2]] });
    expect(pruneReport(pruned).warning).to.contain(`kept ${names[0]}, ${names[1]}, ${names[2]}: its STORAGE-KEY-ID cannot be read (not a small regular file), so whose backup it is is unknown`);
  });

  it('without a number to keep (no --backup-keep), keeps every backup but still removes stale partial copies', async () => {
    const names = [0, 1].map((d) => backupName(new Date(Date.UTC(2026, 11, 1 + d, 3))));
    const dead = `${names[0]}.partial-2147483646-Ab3xY9`;
    for (const n of [...names, dead]) mkdirSync(join(tmp.dir, n));
    longAgo(join(tmp.dir, dead));
    expect(await pruneBackups(tmp.dir, undefined, { written: join(tmp.dir, names[1]!) })).to.deep.equal({ removed: [dead], ahead: [], inUse: [], otherFiles: [], opened: [], otherServer: [], unreadable: [] });
    expect(readdirSync(tmp.dir).sort()).to.deep.equal(names);
  });

  it('never removes the backup just written; one named after it (the clock was ahead) is kept and not counted', async () => {
    const ahead = backupName(new Date(Date.UTC(2026, 11, 9, 3))); // written with the clock a few days ahead
    const older = backupName(new Date(Date.UTC(2026, 11, 1, 3)));
    const written = backupName(new Date(Date.UTC(2026, 11, 5, 3)));
    const oldest = backupName(new Date(Date.UTC(2026, 10, 1, 3)));
    for (const n of [ahead, oldest, older, written]) mkdirSync(join(tmp.dir, n));
    // Kept and not counted, so the newest 2 really made stay beside it.
    expect(await pruneBackups(tmp.dir, 2, { written: join(tmp.dir, written) })).to.deep.equal({ removed: [oldest], ahead: [ahead], inUse: [], otherFiles: [], opened: [], otherServer: [], unreadable: [] });
    expect(readdirSync(tmp.dir).sort()).to.deep.equal([older, written, ahead].sort());
  });

  it('keeps backups only in a directory of this user\'s that no one else can write in, made 0700 if missing', async () => {
    const uid = process.getuid!();
    expect(backupDirProblem({ uid, mode: 0o40700 }, uid)).to.equal(undefined);
    expect(backupDirProblem({ uid, mode: 0o40755 }, uid)).to.equal(undefined);
    expect(backupDirProblem({ uid, mode: 0o40770 }, uid)).to.contain('others can write in it (mode 0770)');
    expect(backupDirProblem({ uid, mode: 0o41777 }, uid)).to.contain('mode 1777'); // sticky, as /tmp: others still plant names
    expect(backupDirProblem({ uid: uid + 1, mode: 0o40700 }, uid)).to.contain(`belongs to user ${uid + 1}`);
    expect(backupDirProblem({ uid, mode: 0o100600 }, uid)).to.equal('it is not a directory');
    const made = join(tmp.dir, 'made', 'here');
    await prepareBackupDir(made);
    expect(statSync(made).mode & 0o777).to.equal(0o700);
    const shared = join(tmp.dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    expect((await rejects(prepareBackupDir(shared), 'FILE_ERROR')).message).to.contain('not safe for backups of keys');
    // A file put in its place (the backup-failed line a SIGUSR1 then logs says what is wrong, not "already exists").
    const file = join(tmp.dir, 'file');
    writeFileSync(file, 'x');
    expect((await rejects(prepareBackupDir(file), 'FILE_ERROR')).message).to.equal(`cannot use --backup-dir ${file}: it is not a directory`);
  });

  it('names backups so that they sort by time', () => {
    const a = backupName(new Date('2026-12-05T09:59:59.999Z'));
    const b = backupName(new Date('2026-12-05T10:00:00.000Z'));
    expect(a < b).to.equal(true);
    expect(a).to.equal('keys-2026-12-05T09-59-59-999Z');
  });
});

// A refused start removes the --backup-dir (or --data) it made. Named through a link and "..",
// what mkdir made is where the link leads; path.resolve names the directory of that name beside
// the link, which may be another's, and empty.
describe('key-server: the directories a refused start made, named through a link and ".."', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('unmake-');
    mkdirSync(join(tmp.dir, 'elsewhere', 'deep'), { recursive: true });
    mkdirSync(join(tmp.dir, 'here', 'x'), { recursive: true }); // another's, empty: here/x, beside the link
    symlinkSync(join(tmp.dir, 'elsewhere', 'deep'), join(tmp.dir, 'here', 'link'));
  });
  afterEach(() => tmp.cleanup());

  it('removes the backup directory it made where the link leads, and not the one of that name beside the link', async () => {
    const dir = `${tmp.dir}/here/link/../x`; // not join(), which would take the .. lexically
    const made = await prepareBackupDir(dir);
    expect(made.top, 'made elsewhere/x').to.be.a('string');
    expect(existsSync(join(tmp.dir, 'elsewhere', 'x'))).to.equal(true);
    await unmakeDirs(made);
    expect(existsSync(join(tmp.dir, 'here', 'x')), 'another\'s directory').to.equal(true);
    expect(existsSync(join(tmp.dir, 'elsewhere', 'x')), 'the one made').to.equal(false);
  });

  it('removes every folder it made for a backup directory named "up/new/../b", the one ".." passed through too', async () => {
    const made = await prepareBackupDir(`${tmp.dir}/up/new/../b`); // not join(), which takes the .. as text
    await unmakeDirs(made);
    expect(existsSync(join(tmp.dir, 'up'))).to.equal(false);
  });

  it('removes a new key database and the folders it made where the link leads, and not the folder of that name beside the link', async () => {
    const backend = await LevelBackend.open(`${tmp.dir}/here/link/../x/data`);
    await backend.closeUnused();
    expect(existsSync(join(tmp.dir, 'here', 'x')), 'another\'s directory').to.equal(true);
    expect(readdirSync(join(tmp.dir, 'elsewhere')), 'what the open made').to.deep.equal(['deep']);
  });
});

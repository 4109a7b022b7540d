// Pruning the key-server's backups (--backup-keep): the newest N stay, partial copies left by a
// process that died go, and nothing else in the directory is touched.

import { expect } from 'chai';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backupName, pruneBackups } from '../../lib/keyservice/backups.ts';
import { tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';

describe('key-server backups: pruning', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('backups-')));
  afterEach(() => tmp.cleanup());

  it('keeps the newest N, removes stale partial copies, and leaves other files and live partial copies alone', async () => {
    const names = [0, 1, 2, 3].map((d) => backupName(new Date(Date.UTC(2026, 11, 1 + d, 3))));
    for (const n of names) mkdirSync(join(tmp.dir, n));
    const dead = `${backupName(new Date(Date.UTC(2026, 10, 1)))}.partial-2147483646`; // no such process
    const live = `${backupName(new Date(Date.UTC(2026, 10, 2)))}.partial-${process.pid}`;
    mkdirSync(join(tmp.dir, dead));
    mkdirSync(join(tmp.dir, live));
    writeFileSync(join(tmp.dir, 'notes.txt'), 'mine');
    const { removed } = await pruneBackups(tmp.dir, 2);
    expect(removed).to.deep.equal([names[0], names[1], dead]);
    expect(readdirSync(tmp.dir).sort()).to.deep.equal([names[2], names[3], live, 'notes.txt'].sort());
    await rejects(pruneBackups(tmp.dir, 0), 'INVALID_INPUT');
  });

  it('never removes the data directory being served, which may be a backup put back in place', async () => {
    const names = [0, 1, 2].map((d) => backupName(new Date(Date.UTC(2026, 11, 1 + d, 3))));
    for (const n of names) mkdirSync(join(tmp.dir, n));
    const { removed } = await pruneBackups(tmp.dir, 1, join(tmp.dir, '.', names[0]!)); // the oldest is live
    expect(removed).to.deep.equal([names[1]]);
    expect(readdirSync(tmp.dir).sort()).to.deep.equal([names[0], names[2]]);
  });

  it('never removes the backup just written; one named after it (the clock was ahead) is kept and not counted', async () => {
    const ahead = backupName(new Date(Date.UTC(2026, 11, 9, 3))); // written with the clock a few days ahead
    const older = backupName(new Date(Date.UTC(2026, 11, 1, 3)));
    const written = backupName(new Date(Date.UTC(2026, 11, 5, 3)));
    const oldest = backupName(new Date(Date.UTC(2026, 10, 1, 3)));
    for (const n of [ahead, oldest, older, written]) mkdirSync(join(tmp.dir, n));
    // Kept and not counted, so the newest 2 really made stay beside it.
    expect(await pruneBackups(tmp.dir, 2, undefined, join(tmp.dir, written))).to.deep.equal({ removed: [oldest], ahead: [ahead] });
    expect(readdirSync(tmp.dir).sort()).to.deep.equal([older, written, ahead].sort());
  });

  it('names backups so that they sort by time', () => {
    const a = backupName(new Date('2026-12-05T09:59:59.999Z'));
    const b = backupName(new Date('2026-12-05T10:00:00.000Z'));
    expect(a < b).to.equal(true);
    expect(a).to.equal('keys-2026-12-05T09-59-59-999Z');
  });
});

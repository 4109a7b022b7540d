// A cryptstore kept open (key-server's) when the disk cannot take a write: the failure is
// FILE_ERROR, the writes acknowledged after it (once there is room again) survive the next open,
// and the store writes again with no restart. A full disk is met as a file-size limit (see
// test/support/level-child.ts), set and lifted on the running child.

import { join } from 'node:path';
import { expect } from 'chai';
import { hasPrlimit, raiseFileLimit, runWriter, withWriter, writesAgainAfterFailedFlush } from '../support/level-child.ts';
import { tempDir } from '../support/helpers.ts';

const run = (dir: string, kib: number | 'unlimited', commands: string[]) => runWriter(dir, kib, commands, true);

describe('cryptstore on a full disk', function () {
  // A guard against a hang only: each test runs child processes that take 3-5 s here, and several
  // times that on a machine busy with other work (over 30 s was seen with four other test runs).
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  let dir: string;
  beforeEach(() => {
    tmp = tempDir('cryptstore-full-');
    dir = join(tmp.dir, 'store');
  });
  afterEach(() => tmp.cleanup());

  it('keeps every write acknowledged after one the disk refused, once there is room again, at the next open', async function () {
    if (!hasPrlimit) this.skip();
    await withWriter(dir, 40, async (w) => {
      expect(await w.send('put a 1000')).to.equal('ok 1');
      // Cut short by the limit, the record is dropped at the next open (below): nothing was made, so it says no "may".
      expect(await w.send('put big 100000')).to.match(/^error FILE_ERROR .*cannot be written.*File too large/).and.not.to.contain('may or may not');
      raiseFileLimit(w);
      for (const tag of ['b', 'c', 'd']) expect(await w.send(`put ${tag} 1000`)).to.equal('ok 1');
      expect(await w.send('put a 1000')).to.equal('ok 2');
    }, true);
    // Before the fix LevelDB appended them after a torn record, and this open dropped them all.
    expect(await run(dir, 'unlimited', ['get a', 'get b', 'get c', 'get d', 'get big'])).to.deep.equal(['ok 2', 'ok 1', 'ok 1', 'ok 1', 'ok none', 'ok closed']);
  });

  it('writes again, with no restart, once there is room after LevelDB failed to flush its memtable', async function () {
    if (!hasPrlimit) this.skip();
    await writesAgainAfterFailedFlush(dir, true);
  });

  it('opens with what was acknowledged after a run that wrote once and failed, and keeps the writes of the next run', async () => {
    expect(await run(dir, 'unlimited', ['put a 1000'])).to.deep.equal(['ok 1', 'ok closed']);
    const failed = await run(dir, 40, ['put a 1000', 'put big 100000']);
    expect(failed[0]).to.equal('ok 2');
    expect(failed[1]).to.match(/^error FILE_ERROR /);
    // A command-line run opens, writes once and exits: the open after it recovers the log.
    expect(await run(dir, 'unlimited', ['get a', 'put b 1000'])).to.deep.equal(['ok 2', 'ok 1', 'ok closed']);
    expect(await run(dir, 'unlimited', ['get a', 'get b', 'get big'])).to.deep.equal(['ok 2', 'ok 1', 'ok none', 'ok closed']);
  });

  it('answers FILE_ERROR while the process has no file descriptor left, and writes again once it has', async () => {
    await withWriter(dir, 'unlimited', async (w) => {
      // Over LevelDB's 4 MiB memtable: the next write needs a new log file.
      expect(await w.send('put a 4200000')).to.equal('ok 1');
      expect(await w.send('exhaust')).to.match(/^error EMFILE/);
      expect(await w.send('put b 1000')).to.match(/^error FILE_ERROR .*cannot be written: this process has no file descriptor left/).and.not.to.contain('may or may not');
      expect(await w.send('release')).to.equal('ok released');
      expect(await w.send('put b 1000')).to.equal('ok 1');
    }, true);
    expect(await run(dir, 'unlimited', ['get a', 'get b'])).to.deep.equal(['ok 1', 'ok 1', 'ok closed']);
  });
});

// LevelBackend when the disk cannot take a write: the failure is FILE_ERROR, and the writes
// acknowledged after it (once there is room again) survive a restart. A full disk is met here
// as a file-size limit (ulimit -f: EFBIG, as ENOSPC would be), which a test can set without
// root, and raise again on the running child (prlimit --pid) as freeing space would; running
// out of file descriptors, by opening files in the child until it has none.

import { join } from 'node:path';
import { expect } from 'chai';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { hasPrlimit, raiseFileLimit, withWriter, writer, writesAgainAfterFailedFlush } from '../support/level-child.ts';
import { tempDir } from '../support/helpers.ts';

describe('LevelBackend on a full disk', function () {
  this.timeout(30_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('level-full-')));
  afterEach(() => tmp.cleanup());

  it('answers a write the file-size limit stops with FILE_ERROR, naming the cause', async () => {
    const dir = join(tmp.dir, 'data');
    await withWriter(dir, 40, async (w) => {
      expect(await w.send('put a 1000')).to.equal('ok 1');
      const failed = await w.send('put big 100000');
      expect(failed).to.match(/^error FILE_ERROR .*cannot be written.*File too large/);
    });
  });

  it('answers an open the file-size limit stops (LevelDB writes to open) with FILE_ERROR saying the database is unchanged, not as a database of another format', async () => {
    const dir = join(tmp.dir, 'data');
    await (await LevelBackend.open(dir)).close();
    const w = writer(dir, 0);
    try {
      // (The file it met the limit at: a table of the log, or the new manifest.)
      expect(await w.ready()).to.contain(`error FILE_ERROR "the key database in ${dir} cannot be opened, as LevelDB writes to a store to open it (what it holds is unchanged): a file size limit is reached (ulimit -f, LimitFSIZE=): IO error: ${dir}/`).and.match(/: File too large"$/);
    } finally {
      w.child.kill();
    }
  });

  it('keeps every write acknowledged after a failed one once there is room again, across a restart', async function () {
    if (!hasPrlimit) this.skip(); // util-linux's prlimit raises the running child's limit
    const dir = join(tmp.dir, 'data');
    await withWriter(dir, 40, async (w) => {
      expect(await w.send('put a 1000')).to.equal('ok 1');
      expect(await w.send('put big 100000')).to.match(/^error /);
      raiseFileLimit(w);
      for (const name of ['b', 'c', 'd']) expect(await w.send(`put ${name} 1000`)).to.equal('ok 1');
      expect(await w.send('put a 1000')).to.equal('ok 2');
    });
    const backend = await LevelBackend.open(dir);
    try {
      for (const name of ['b', 'c', 'd']) expect((await backend.get(name, 0))?.version, name).to.equal(1);
      expect((await backend.get('a', 0))?.version).to.equal(2);
      expect(await backend.get('big', 0)).to.equal(undefined);
    } finally {
      await backend.close();
    }
  });

  it('writes again, with no restart, once there is room after LevelDB failed to flush its memtable', async function () {
    if (!hasPrlimit) this.skip();
    await writesAgainAfterFailedFlush(join(tmp.dir, 'data'));
  });

  it('answers FILE_ERROR while the process has no file descriptor left, and writes again once it has', async () => {
    const dir = join(tmp.dir, 'data');
    await withWriter(dir, 'unlimited', async (w) => {
      // Over LevelDB's 4 MiB memtable: the next write needs a new log file.
      expect(await w.send('put a 4200000')).to.equal('ok 1');
      expect(await w.send('exhaust')).to.match(/^error EMFILE/);
      expect(await w.send('put b 1000')).to.match(/^error FILE_ERROR .*Too many open files/);
      // The reopen that follows a failed write cannot read the directory either: not a bug.
      expect(await w.send('put b 1000')).to.match(/^error FILE_ERROR .*cannot be written: a write failed, and this process has no file descriptor left/);
      expect(await w.send('release')).to.equal('ok released');
      expect(await w.send('put b 1000')).to.equal('ok 1');
    });
    const backend = await LevelBackend.open(dir);
    try {
      expect((await backend.get('a', 0))?.version).to.equal(1);
      expect((await backend.get('b', 0))?.version).to.equal(1);
    } finally {
      await backend.close();
    }
  });

  it('answers a read that needs a table file while the process has no file descriptor left with FILE_ERROR, and reads it once it has', async () => {
    const dir = join(tmp.dir, 'data');
    // The database's own keys in one table (an open moves the log into one), a's in another, made
    // (and so opened) by an earlier process: the open below reads only the first.
    for (const commands of [[], ['put a 4200000', 'put b 1000'], []]) {
      await withWriter(dir, 'unlimited', async (w) => {
        for (const command of commands) expect(await w.send(command)).to.equal('ok 1');
      });
    }
    await withWriter(dir, 'unlimited', async (w) => {
      expect(await w.send('exhaust')).to.match(/^error EMFILE/);
      expect(await w.send('get a')).to.match(/^error FILE_ERROR .*cannot be read.*Too many open files/);
      expect(await w.send('release')).to.equal('ok released');
      expect(await w.send('get a')).to.equal('ok 1');
    });
  });
});

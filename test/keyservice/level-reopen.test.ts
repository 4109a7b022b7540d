// LevelBackend's reopen after a failed write, against operations under way: a write LevelDB
// refuses is made here by a put that fails once as a full disk's does, and long operations (a
// backup) are held at a gate the test opens.

import { expect } from 'chai';
import { join } from 'node:path';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { logBytes } from '../../lib/files/level-reopen.ts';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tempDir } from '../support/helpers.ts';
import { recordFor } from './backend-contract.ts';
import { rejects } from '../support/rejects.ts';

type Inner = {
  db: {
    put: (key: string, value: Uint8Array, o: object) => Promise<void>; get: (key: string) => Promise<Uint8Array | undefined>;
    batch: (ops: object[], o: object) => Promise<void>;
  };
  copyTo: (dir: string) => Promise<{ records: number; path: string }>;
};

/** A promise the test resolves, and one that says the code under test has reached it. */
function gate() {
  let open!: () => void, reached!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, there: new Promise<void>((r) => (reached = r)), hold: () => (reached(), opened) };
}

/** What `p` settled to within `ms`, or 'pending'. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'pending'>((r) => (timer = setTimeout(() => r('pending'), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('LevelBackend reopening after a failed write', function () {
  this.timeout(30_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('level-reopen-')));
  afterEach(() => tmp.cleanup());

  /** Makes the next put fail as LevelDB's does on a full disk. */
  const failNextPut = (b: LevelBackend) => {
    const db = (b as unknown as Inner).db;
    const put = db.put.bind(db);
    db.put = async () => {
      db.put = put;
      throw Object.assign(new Error('IO error: 000005.log: No space left on device'), { code: 'LEVEL_IO_ERROR' });
    };
  };

  /** Makes the next put or batch write what it was given, then fail as a sync LevelDB's disk refused (EIO) does. */
  const failAfterWrite = (b: LevelBackend, method: 'put' | 'batch') => {
    const db = (b as unknown as Inner).db as unknown as Record<string, (...args: unknown[]) => Promise<void>>;
    const write = db[method]!.bind(db);
    db[method] = async (...args: unknown[]) => {
      db[method] = write;
      await write(...args);
      throw Object.assign(new Error('IO error: 000005.log: Input/output error'), { code: 'LEVEL_IO_ERROR' });
    };
  };

  it('answers OUTCOME_UNKNOWN, not FILE_ERROR, for a store or delete whose write failed once LevelDB had it in its log, which the next open keeps', async () => {
    const dir = join(tmp.dir, 'data');
    const b = await LevelBackend.open(dir);
    try {
      for (const n of ['a', 'a', 'd', 'd']) await b.append(n, (v) => recordFor(n, v));
      failAfterWrite(b, 'put');
      const stored = await rejects(b.append('a', (v) => recordFor('a', v)), 'OUTCOME_UNKNOWN');
      expect(stored.message).to.equal(`the key database in ${dir} cannot be written: the disk reported an I/O error: IO error: 000005.log: Input/output error; "a" version 3 may or may not have been stored (LevelDB may have put it on disk before it failed, and the next open keeps what it put there)`);
      // Read before the reopen (which waits for the next write): the latest as the disk has it, as a list shows.
      expect((await b.get('a', 0))?.version).to.equal(3);
      failAfterWrite(b, 'batch');
      const deleted = await rejects(b.delete('d', 0), 'OUTCOME_UNKNOWN');
      expect(deleted.message).to.contain('; all 2 versions of "d" may or may not have been deleted (LevelDB may have');
    } finally {
      await b.close();
    }
    const again = await LevelBackend.open(dir);
    try {
      expect((await again.get('a', 0))?.version, 'the store failed, and was made').to.equal(3);
      expect(await again.get('d', 0), 'the delete failed, and was made').to.equal(undefined);
      expect((await again.append('a', (v) => recordFor('a', v))).version).to.equal(4);
    } finally {
      await again.close();
    }
  });

  /**
   * Names a and b stored, a backup held at its start (one of a large database, minutes long), a
   * write refused, and the next write waiting to reopen the database once the backup is done.
   */
  const reopenAfterBackup = async (b: LevelBackend) => {
    const inner = b as unknown as Inner;
    const copyTo = inner.copyTo.bind(b);
    const copying = gate();
    inner.copyTo = async (dir) => {
      await copying.hold();
      return copyTo(dir);
    };
    for (const n of ['a', 'b']) await b.append(n, (v) => recordFor(n, v));
    const backup = b.backupTo(join(tmp.dir, 'backup'));
    await copying.there;
    failNextPut(b);
    await rejects(b.append('c', (v) => recordFor('c', v)), 'OUTCOME_UNKNOWN');
    const write = b.append('c', (v) => recordFor('c', v));
    await new Promise((r) => setImmediate(r)); // the reopen has begun
    return { copying, backup, write };
  };

  it('serves reads while a write waits for a backup under way to end before the database is reopened', async () => {
    const b = await LevelBackend.open(join(tmp.dir, 'data'));
    let copying: ReturnType<typeof gate> | undefined;
    try {
      const r = await reopenAfterBackup(b);
      const { backup, write } = r;
      copying = r.copying;
      // Held behind the write, they would wait for the backup, which waits for the test: any bound tells them apart, a generous one a slow machine too.
      expect((await within(b.get('a', 0), 10_000)) !== 'pending', 'a read while the write waits').to.equal(true);
      expect((await within(b.list(''), 10_000)) !== 'pending', 'a listing while the write waits').to.equal(true);
      expect(await within(write, 100)).to.equal('pending');
      copying.open();
      expect((await backup).records).to.equal(2);
      expect((await write).version).to.equal(1);
      expect((await b.get('c', 0))?.version).to.equal(1);
    } finally {
      copying?.open();
      await b.close();
    }
  });

  it('closes the database only once the reads that went on meanwhile are done, and answers the reads made while it reopens', async () => {
    const b = await LevelBackend.open(join(tmp.dir, 'data'));
    const inner = b as unknown as Inner;
    const get = inner.db.get.bind(inner.db);
    const reading = gate();
    let copying: ReturnType<typeof gate> | undefined;
    try {
      const r = await reopenAfterBackup(b);
      const { backup, write } = r;
      copying = r.copying;
      inner.db.get = async (key) => {
        const raw = await get(key);
        await reading.hold(); // read, not yet handed back
        return raw;
      };
      const slow = b.get('b', 1);
      await reading.there;
      inner.db.get = get;
      copying.open(); // the reopen now waits for the slow read alone, holding the next ones back
      await backup;
      while (!(b as unknown as { reopener: { holdingReads: boolean } }).reopener.holdingReads) await new Promise((r) => setImmediate(r));
      const held = b.get('a', 0);
      expect(await within(held, 100)).to.equal('pending');
      reading.open();
      expect((await slow)?.version).to.equal(1);
      expect((await held)?.version).to.equal(1);
      expect((await write).version).to.equal(1);
      expect((await b.append('c', (v) => recordFor('c', v))).version).to.equal(2);
    } finally {
      copying?.open();
      reading.open();
      await b.close();
    }
  });

  it('counts the logs to recover where a --data named through "link/.." is, not beside the link', async () => {
    // here/link -> there/deep: "here/link/../d" is there/d to the kernel, here/d to join().
    mkdirSync(join(tmp.dir, 'here'));
    mkdirSync(join(tmp.dir, 'there', 'deep'), { recursive: true });
    mkdirSync(join(tmp.dir, 'there', 'd'));
    symlinkSync(join(tmp.dir, 'there', 'deep'), join(tmp.dir, 'here', 'link'));
    writeFileSync(join(tmp.dir, 'there', 'd', '000003.log'), Buffer.alloc(5000));
    expect(await logBytes(`${join(tmp.dir, 'here', 'link')}/../d`)).to.equal(5000);
  });
});

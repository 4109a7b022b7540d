// LevelBackend: the backend contract, plus what only an embedded LevelDB can get wrong (locking,
// permissions, foreign databases, damaged records).

import { expect } from 'chai';
import { chmodSync, cpSync, lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { decode } from '../../lib/wire/index.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import type { KeyBackend } from '../../lib/keyservice/backend.ts';
import { tempDir } from '../support/helpers.ts';
import { recordFor, runBackendContract } from './backend-contract.ts';
import { rejects } from '../support/rejects.ts';

runBackendContract('LevelBackend', async () => {
  const tmp = tempDir('keyserver-level-');
  const dir = join(tmp.dir, 'data');
  let backend: KeyBackend = await LevelBackend.open(dir);
  return {
    backend,
    reopen: async () => {
      await backend.close();
      backend = await LevelBackend.open(dir);
      return backend;
    },
    tamperMark: async (name, high) => {
      await backend.close();
      const mark = Buffer.alloc(4);
      if (high !== undefined) mark.writeUInt32BE(high);
      await withRaw(dir, async (db) => (high === undefined ? db.del(`h!${name}`) : db.put(`h!${name}`, mark)));
      backend = await LevelBackend.open(dir);
      return backend;
    },
    cleanup: async () => {
      await backend.close();
      tmp.cleanup();
    },
  };
});


async function withRaw(dir: string, fn: (db: Level<string, Uint8Array>) => Promise<void>): Promise<void> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}

/** How many names the key database (a backup, say) at `dir` lists. */
async function namesIn(dir: string): Promise<number> {
  const db = await LevelBackend.open(dir);
  try {
    return (await db.list('')).length;
  } finally {
    await db.close();
  }
}

describe('LevelBackend', () => {
  let tmp: ReturnType<typeof tempDir>;
  let dir: string;
  beforeEach(() => {
    tmp = tempDir('keyserver-level-');
    dir = join(tmp.dir, 'data');
  });
  afterEach(() => tmp.cleanup());

  // That the first open makes the database and the next one does not: created(), below.
  it('creates its directory 0700 with files 0600, and closes again one opened to others since', async () => {
    const b = await LevelBackend.open(dir);
    await b.append('k', (v) => recordFor('k', v));
    await b.close();
    expect(statSync(dir).mode & 0o777).to.equal(0o700);
    chmodSync(dir, 0o755);
    chmodSync(join(dir, 'CURRENT'), 0o644);
    await (await LevelBackend.open(dir)).close();
    expect(statSync(dir).mode & 0o777).to.equal(0o700);
    for (const f of ['CURRENT', 'LOCK']) expect(statSync(join(dir, f)).mode & 0o077, f).to.equal(0);
  });

  it('tightens the files of a data directory named through "link/..", where the link leads, and none of the directory of that name beside it', async () => {
    mkdirSync(join(tmp.dir, 'elsewhere', 'deep'), { recursive: true });
    mkdirSync(join(tmp.dir, 'here', 'data'), { recursive: true });
    symlinkSync(join(tmp.dir, 'elsewhere', 'deep'), join(tmp.dir, 'here', 'link'));
    await (await LevelBackend.open(join(tmp.dir, 'elsewhere', 'data'))).close();
    chmodSync(join(tmp.dir, 'elsewhere', 'data', 'CURRENT'), 0o644);
    writeFileSync(join(tmp.dir, 'here', 'data', 'CURRENT'), 'another\'s', { mode: 0o644 });
    await (await LevelBackend.open(`${tmp.dir}/here/link/../data`)).close(); // not join(), which takes the .. as text
    expect(statSync(join(tmp.dir, 'elsewhere', 'data', 'CURRENT')).mode & 0o777, 'its own').to.equal(0o600);
    expect(statSync(join(tmp.dir, 'here', 'data', 'CURRENT')).mode & 0o777, 'another\'s, beside the link').to.equal(0o644);
  });

  it('refuses an unfinished backup copy named through "link/..", where the link leads, unopened', async () => {
    mkdirSync(join(tmp.dir, 'elsewhere', 'deep'), { recursive: true });
    mkdirSync(join(tmp.dir, 'here'));
    symlinkSync(join(tmp.dir, 'elsewhere', 'deep'), join(tmp.dir, 'here', 'link'));
    mkdirSync(join(tmp.dir, 'elsewhere', 'keys-0'));
    writeFileSync(join(tmp.dir, 'elsewhere', 'keys-0', 'UNFINISHED-BACKUP'), '');
    await rejects(LevelBackend.open(`${tmp.dir}/here/link/../keys-0`), 'STORE_FORMAT');
    expect(readdirSync(join(tmp.dir, 'elsewhere', 'keys-0')), 'nothing written in it').to.deep.equal(['UNFINISHED-BACKUP']);
  });

  it('removes, unused, nothing of a directory that was there, however it is named ("x/new/..")', async () => {
    const x = join(tmp.dir, 'x');
    mkdirSync(x);
    writeFileSync(join(x, 'diary'), 'mine');
    const backend = await LevelBackend.open(`${x}/new/..`); // not join(), which takes the .. as text
    await backend.closeUnused();
    expect(readdirSync(x)).to.include('diary');
  });

  it('removes, unused, a new database named "up/new/../data" with every folder its open made, the one ".." passed through too', async () => {
    const backend = await LevelBackend.open(`${tmp.dir}/up/new/../data`); // not join(), which takes the .. as text
    await backend.closeUnused();
    expect(readdirSync(tmp.dir)).to.deep.equal([]);
  });

  it('removes, unused, a new database named "new/data/." with the folders it made', async () => {
    const backend = await LevelBackend.open(`${tmp.dir}/new/data/.`); // not join(), which drops the .
    await backend.closeUnused();
    expect(readdirSync(tmp.dir)).to.deep.equal([]);
  });

  it('records when it made the database, keeps it at the next open, and says whether it holds records', async () => {
    const before = Date.now();
    const b = await LevelBackend.open(dir);
    const created = await b.created();
    expect(created!.getTime()).to.be.within(before, Date.now());
    expect(await b.holdsRecords()).to.equal(false);
    await b.append('k', (v) => recordFor('k', v));
    await b.close();
    const again = await LevelBackend.open(dir);
    try {
      expect([(await again.created())!.getTime(), await again.holdsRecords()]).to.deep.equal([created!.getTime(), true]);
    } finally {
      await again.close();
    }
  });

  it('names a --data it cannot make in words, once: a link loop, a link to nowhere', async () => {
    const loop = join(tmp.dir, 'data-loop');
    symlinkSync(loop, loop);
    const dangling = join(tmp.dir, 'data-dangling');
    symlinkSync(join(tmp.dir, 'nowhere'), dangling);
    expect((await rejects(LevelBackend.open(loop), 'FILE_ERROR')).message).to.equal(`cannot use ${loop} as the key-server data directory: too many symbolic links encountered`);
    expect((await rejects(LevelBackend.open(dangling), 'FILE_ERROR')).message).to.equal(`cannot use ${dangling} as the key-server data directory: no such file`);
    // Under a file: which name on the way is not a directory.
    const file = join(tmp.dir, 'data-file');
    writeFileSync(file, 'x');
    expect((await rejects(LevelBackend.open(join(file, 'db')), 'FILE_ERROR')).message).to.equal(`cannot use ${join(file, 'db')} as the key-server data directory: ${file} is not a directory`);
  });

  it('reports a directory held by another open backend as STORE_LOCKED', async () => {
    const b = await LevelBackend.open(dir);
    try {
      const e = await rejects(LevelBackend.open(dir), 'STORE_LOCKED');
      expect(e.message).to.match(/the key-server data directory is in use by another process/);
      // What to do: a standby started on the primary's --data while the primary runs was told only that.
      expect(e.message).to.contain('stop the key-server serving it first, or give this one a --data of its own');
    } finally {
      await b.close();
    }
  });

  it('refuses a LevelDB database that is not a key-server database with STORE_FORMAT', async () => {
    await withRaw(dir, async (db) => db.put('!meta', new Uint8Array([1, 2, 3])));
    await rejects(LevelBackend.open(dir), 'STORE_FORMAT');
  });

  it('refuses a key-server database of another format with STORE_FORMAT, changing nothing and letting go of it', async () => {
    const later = 'certifier-keys key-server level backend, format 2';
    await withRaw(dir, async (db) => db.put('!format', new TextEncoder().encode(later)));
    const e = await rejects(LevelBackend.open(dir), 'STORE_FORMAT');
    expect(e.message).to.contain(`holds a key-server database of another format ("${later}")`);
    // Closed again: the same process (a test, a later start) can open it.
    await withRaw(dir, async (db) => {
      expect(Buffer.from((await db.get('!format'))!).toString()).to.equal(later);
      expect(await db.get('!created')).to.equal(undefined);
    });
  });

  it('refuses a plain file as its directory with FILE_ERROR', async () => {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(dir, 'not a directory');
    await rejects(LevelBackend.open(dir), 'FILE_ERROR');
  });

  it('stores each version as a key_service_stored_record under r!name\\0version', async () => {
    const b = await LevelBackend.open(dir);
    const r = await b.append('disk', (v) => recordFor('disk', v, { exportable: true, size: 9 }));
    await b.close();
    await withRaw(dir, async (db) => {
      const raw = await db.get('r!disk\u000000000001');
      expect(raw).to.not.equal(undefined);
      expect(decode('key_service_stored_record', raw!)).to.deep.include({ resourceName: 'disk', version: 1, valueType: 'binary-blob', exportable: true, size: 9 });
      expect(Buffer.from(decode<{ ciphertext: Uint8Array }>('key_service_stored_record', raw!).ciphertext)).to.deep.equal(Buffer.from(r.ciphertext));
    });
  });

  it('reads the latest records of a listing a few at a time: a page of names with large values is never held whole', async () => {
    // A record holds its sealed value (up to 1 MiB): a page of 1,000 read at once held them all.
    // On key-server (some 140 MiB resident once the values were stored), a member listing 200
    // names of its own 1 MiB values took it to 677 MiB at its peak, and eight such lists at once
    // to 1.8 GB; read four at a time, to 339 and 443 MiB (garbage the collector had not yet taken
    // back), and 32 lists at once to 610 MiB.
    const b = await LevelBackend.open(dir);
    const big = new Uint8Array(64 * 1024);
    const names = Array.from({ length: 40 }, (_, i) => `big/${String(i).padStart(2, '0')}`);
    for (const name of names) await b.append(name, (v) => ({ ...recordFor(name, v), ciphertext: big }));
    const db = (b as unknown as { db: { getMany: (keys: string[], o?: object) => Promise<(Uint8Array | undefined)[]> } }).db;
    const getMany = db.getMany.bind(db);
    let most = 0;
    db.getMany = async (keys, o) => {
      const raws = await getMany(keys, o);
      most = Math.max(most, raws.reduce((n, raw) => n + (raw?.length ?? 0), 0));
      return raws;
    };
    expect((await b.list('big/')).map((i) => i.name)).to.deep.equal(names);
    await b.close();
    expect(most, 'bytes of records read at once').to.be.above(0).and.below(8 * (big.length + 1024));
  });

  it('reports a record moved to another key, or one that does not decode, as INTEGRITY', async () => {
    const b = await LevelBackend.open(dir);
    await b.append('one', (v) => recordFor('one', v));
    await b.append('two', (v) => recordFor('two', v));
    await b.close();
    await withRaw(dir, async (db) => {
      await db.put('r!two\u000000000001', (await db.get('r!one\u000000000001'))!);
      await db.put('r!one\u000000000002', new Uint8Array([0xff, 0xff, 0xff]));
    });
    const again = await LevelBackend.open(dir);
    try {
      await rejects(again.get('two', 1), 'INTEGRITY');
      await rejects(again.get('one', 0), 'INTEGRITY');
      expect((await again.get('one', 1))!.name).to.equal('one');
    } finally {
      await again.close();
    }
  });

  it('writes a backup while serving: a whole database of the same records, never a partial one', async () => {
    const b = await LevelBackend.open(dir);
    try {
      for (let i = 0; i < 40; i++) await b.append(`n${i % 7}`, (v) => recordFor(`n${i % 7}`, v));
      await b.delete('n3', 0);
      await b.bindStorageKey('ab'.repeat(16));
      // Appends while the copy runs may or may not be in it; every record that is must open.
      const during = Promise.all(Array.from({ length: 20 }, () => b.append('late', (v) => recordFor('late', v))));
      mkdirSync(join(tmp.dir, 'backups'));
      const r = await b.backupTo(join(tmp.dir, 'backups', 'one'));
      await during;
      expect(r).to.deep.include({ path: join(tmp.dir, 'backups', 'one') });
      expect(r.keyId, 'the storage key id the copy holds').to.equal('ab'.repeat(16));
      await rejects(b.backupTo(join(tmp.dir, 'backups', 'one')), 'ALREADY_EXISTS');
      expect(readdirSync(join(tmp.dir, 'backups'))).to.deep.equal(['one']);
      const copy = await LevelBackend.open(join(tmp.dir, 'backups', 'one'));
      try {
        expect(await copy.boundStorageKey()).to.equal('ab'.repeat(16));
        const names = (await copy.list('')).filter((i) => i.name !== 'late');
        expect(names).to.deep.equal((await b.list('')).filter((i) => i.name !== 'late'));
        expect(r.records).to.equal((await copy.list('', { allVersions: true })).length);
        expect((await copy.append('n3', (v) => recordFor('n3', v))).version, 'the high-water mark came along').to.equal(7);
      } finally {
        await copy.close();
      }
    } finally {
      await b.close();
    }
  });

  it('writes one backup at a time, refusing a second with STORE_LOCKED, and close lets the one being written finish whole', async () => {
    const b = await LevelBackend.open(dir);
    for (let i = 0; i < 40; i++) await b.append(`n${i}`, (v) => recordFor(`n${i}`, v));
    const backup = b.backupTo(join(tmp.dir, 'one'));
    try {
      await rejects(b.backupTo(join(tmp.dir, 'two')), 'STORE_LOCKED');
    } finally {
      await b.close(); // a SIGTERM while the backup is written
    }
    expect((await backup).records).to.equal(40);
    expect(readdirSync(tmp.dir).sort()).to.deep.equal(['data', 'one']);
    expect(await namesIn(join(tmp.dir, 'one'))).to.equal(40);
  });

  it('stops a backup abandoned while it copies (TIMEOUT) and removes its partial copy, leaving the database and an earlier backup whole', async () => {
    const b = await LevelBackend.open(dir);
    try {
      for (let i = 0; i < 3; i++) await b.append(`n${i}`, (v) => recordFor(`n${i}`, v));
      await b.backupTo(join(tmp.dir, 'one'));
      const stop = new AbortController();
      const backup = b.backupTo(join(tmp.dir, 'two'), stop.signal);
      stop.abort(); // a stop that gave up waiting for it
      const e = await rejects(backup, 'TIMEOUT');
      expect(e.message).to.contain('abandoned');
      expect(readdirSync(tmp.dir).sort()).to.deep.equal(['data', 'one']);
      expect(await b.list('')).to.have.length(3);
    } finally {
      await b.close();
    }
    expect(await namesIn(join(tmp.dir, 'one'))).to.equal(3);
  });

  it('closes its copy when abandoned just after the copy opened: no file of the removed copy stays open', async () => {
    const b = await LevelBackend.open(dir);
    try {
      await b.append('n0', (v) => recordFor('n0', v));
      // Aborted from its second look on: the one right after the copy's open.
      let looks = 0;
      const signal = { get aborted() { return ++looks >= 2; }, addEventListener() {}, removeEventListener() {} } as unknown as AbortSignal;
      await rejects(b.backupTo(join(tmp.dir, 'two'), signal), 'TIMEOUT');
      expect(looks).to.equal(2);
      const open = readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`); } catch { return ''; } });
      expect(open.filter((target) => target.includes('two.partial-'))).to.deep.equal([]);
      expect(readdirSync(tmp.dir)).to.deep.equal(['data']);
    } finally {
      await b.close();
    }
  });

  it('says why a backup copy could not be opened (a full disk), not only that LevelDB failed to open it, and leaves nothing', async () => {
    const b = await LevelBackend.open(dir);
    // The copy's open meets a full disk: classic-level's _open fails, and open wraps its failure.
    const proto = Level.prototype as unknown as { _open: (this: { location: string }, o: unknown) => Promise<void> };
    const open = proto._open;
    proto._open = async function (o) {
      if (this.location.includes('.partial-')) throw Object.assign(new Error(`IO error: ${this.location}/MANIFEST-000001: No space left on device`), { code: 'LEVEL_IO_ERROR' });
      return open.call(this, o);
    };
    try {
      const e = await rejects(b.backupTo(join(tmp.dir, 'one')), 'FILE_ERROR');
      expect(e.message).to.match(new RegExp(`^cannot write a backup to ${join(tmp.dir, 'one')}: the disk is full: IO error: ${join(tmp.dir, 'one')}\\.partial-[^/]+/MANIFEST-000001: No space left on device$`));
    } finally {
      proto._open = open;
      await b.close();
    }
    expect(readdirSync(tmp.dir)).to.deep.equal(['data']);
  });

  it('refuses a backup copy cut short, even renamed as a whole one, as STORE_FORMAT', async () => {
    const b = await LevelBackend.open(dir);
    try {
      for (let i = 0; i < 600; i++) await b.append(`n${i}`, (v) => recordFor(`n${i}`, v));
      // The copy stops after its first batch of records, as a key-server killed there would leave it.
      let release!: () => void, reached!: () => void;
      const paused = new Promise<void>((r) => (release = r));
      const there = new Promise<void>((r) => (reached = r));
      const db = (b as unknown as { db: { iterator: (o: object) => AsyncIterable<unknown> } }).db;
      const iterator = db.iterator.bind(db);
      db.iterator = (o) => (async function* () {
        let n = 0;
        for await (const entry of iterator(o)) {
          if (n++ === 550) {
            reached();
            await paused;
          }
          yield entry;
        }
      })();
      mkdirSync(join(tmp.dir, 'backups'));
      const whole = b.backupTo(join(tmp.dir, 'backups', 'keys-1'));
      await there;
      const [partial] = readdirSync(join(tmp.dir, 'backups'));
      const left = join(tmp.dir, 'backups', 'keys-0');
      cpSync(join(tmp.dir, 'backups', partial!), left, { recursive: true });
      rmSync(join(left, 'LOCK'));
      release();
      await whole;
      const files = readdirSync(left).sort();
      const e = await rejects(LevelBackend.open(left), 'STORE_FORMAT');
      expect(e.message).to.contain('is an unfinished backup copy').and.to.contain('the whole backups are the keys-TIME directories beside it');
      // Refused before LevelDB opens it: nothing in it is written (no LOCK, no LOG.old, no new table).
      expect(readdirSync(left).sort()).to.deep.equal(files);
      expect(readdirSync(join(tmp.dir, 'backups', 'keys-1'))).not.to.include('UNFINISHED-BACKUP');
      await (await LevelBackend.open(join(tmp.dir, 'backups', 'keys-1'))).close();
    } finally {
      await b.close();
    }
  });

  it('writes a backup named through "link/.." where the link leads, and says so', async () => {
    mkdirSync(join(tmp.dir, 'elsewhere', 'deep'), { recursive: true });
    mkdirSync(join(tmp.dir, 'elsewhere', 'bk'));
    mkdirSync(join(tmp.dir, 'here'));
    symlinkSync(join(tmp.dir, 'elsewhere', 'deep'), join(tmp.dir, 'here', 'link'));
    const b = await LevelBackend.open(dir);
    try {
      const r = await b.backupTo(`${tmp.dir}/here/link/../bk/keys-1`); // the kernel's elsewhere/bk (no bk beside the link)
      expect(r.path).to.equal(join(tmp.dir, 'elsewhere', 'bk', 'keys-1'));
      expect(readdirSync(join(tmp.dir, 'elsewhere', 'bk'))).to.deep.equal(['keys-1']);
      expect(readdirSync(join(tmp.dir, 'elsewhere', 'bk', 'keys-1'))).to.include('CURRENT').and.not.include('UNFINISHED-BACKUP');
    } finally {
      await b.close();
    }
  });

  it('writes a backup through no link planted beside it: the folder it fills is its own, and a link at the final name is refused', async () => {
    const b = await LevelBackend.open(dir);
    try {
      await b.append('n1', (v) => recordFor('n1', v));
      // Another user's folder, and links to it at the names a backup would use, planted in advance.
      const victim = join(tmp.dir, 'victim');
      mkdirSync(victim, { mode: 0o755 });
      writeFileSync(join(victim, 'LOG'), 'theirs', { mode: 0o644 });
      const backups = join(tmp.dir, 'backups');
      mkdirSync(backups, { mode: 0o700 });
      const target = join(backups, 'keys-1');
      symlinkSync(victim, `${target}.partial-${process.pid}`);
      const r = await b.backupTo(target);
      expect(lstatSync(target).isDirectory()).to.equal(true);
      expect(r.records).to.equal(1);
      expect(readdirSync(victim)).to.deep.equal(['LOG']);
      expect(statSync(victim).mode & 0o777).to.equal(0o755);
      expect(statSync(join(victim, 'LOG')).mode & 0o777).to.equal(0o644);
      // A link (even one leading nowhere) where the backup would go is a name already taken.
      for (const to of [victim, join(tmp.dir, 'nowhere')]) {
        symlinkSync(to, join(backups, 'keys-2'));
        await rejects(b.backupTo(join(backups, 'keys-2')), 'ALREADY_EXISTS');
        unlinkSync(join(backups, 'keys-2'));
      }
      expect(readdirSync(victim)).to.deep.equal(['LOG']);
      expect(readdirSync(backups).sort()).to.deep.equal(['keys-1', `keys-1.partial-${process.pid}`]);
    } finally {
      await b.close();
    }
  });

  it('lets the writes queued before close finish, each on disk, before it closes the database', async () => {
    const b = await LevelBackend.open(dir);
    await b.append('k', (v) => recordFor('k', v));
    const writes = Promise.all([b.append('k', (v) => recordFor('k', v)), b.delete('k', 1), b.append('k', (v) => recordFor('k', v))]);
    await b.close(); // a SIGTERM with stores under way
    const [second, deleted, third] = await writes;
    expect([second.version, deleted, third.version]).to.deep.equal([2, { count: 1, versions: [1] }, 3]);
    const again = await LevelBackend.open(dir);
    try {
      expect((await again.list('', { allVersions: true })).map((i) => i.version)).to.deep.equal([2, 3]);
    } finally {
      await again.close();
    }
  });

  it('refuses (ALREADY_EXISTS) a backup whose name was taken while it was copied, even by a link, and leaves no partial copy', async () => {
    const b = await LevelBackend.open(dir);
    const db = (b as unknown as { db: { iterator: (o: object) => AsyncIterable<unknown> } }).db;
    const iterator = db.iterator.bind(db);
    const target = join(tmp.dir, 'backups', 'keys-1');
    mkdirSync(join(tmp.dir, 'backups'));
    try {
      await b.append('n1', (v) => recordFor('n1', v));
      db.iterator = (o) => {
        db.iterator = iterator;
        symlinkSync(join(tmp.dir, 'nowhere'), target); // planted once the copy has begun
        return iterator(o);
      };
      await rejects(b.backupTo(target), 'ALREADY_EXISTS');
      expect(readdirSync(join(tmp.dir, 'backups'))).to.deep.equal(['keys-1']);
      expect(lstatSync(target).isSymbolicLink()).to.equal(true);
    } finally {
      await b.close();
    }
  });

  it('rejects use after close', async () => {
    const b = await LevelBackend.open(dir);
    await b.close();
    await rejects(b.append('k', (v) => recordFor('k', v)), 'INTERNAL');
    await rejects(b.get('k', 0), 'INTERNAL');
  });

  it('keeps the high-water mark of a deleted name in the database', async () => {
    const b = await LevelBackend.open(dir);
    for (let i = 0; i < 5; i++) await b.append('k', (v) => recordFor('k', v));
    await b.delete('k', 0);
    await b.close();
    await withRaw(dir, async (db) => {
      expect(Buffer.from((await db.get('h!k'))!).readUInt32BE(0)).to.equal(5);
    });
  });

  it('forgets, in memory, a name whose every version was deleted (its mark on disk keeps the numbering)', async () => {
    const b = await LevelBackend.open(dir);
    const held = () => (b as unknown as { states: Map<string, unknown> }).states.size;
    for (let i = 0; i < 200; i++) {
      await b.append(`gone/${i}`, (v) => recordFor(`gone/${i}`, v));
      await b.delete(`gone/${i}`, 0);
    }
    await b.append('kept', (v) => recordFor('kept', v));
    expect(held()).to.equal(1);
    expect((await b.append('gone/7', (v) => recordFor('gone/7', v))).version).to.equal(2);
    await b.close();
  });

  it('keeps in memory the versions of only the names used most recently, and numbers an evicted name on from disk', async () => {
    const b = await LevelBackend.open(dir, { stateNames: 8 });
    const held = () => (b as unknown as { states: { size: number } }).states.size;
    try {
      for (let i = 0; i < 30; i++) for (let j = 0; j < 3; j++) await b.append(`n${i}`, (v) => recordFor(`n${i}`, v));
      expect(held()).to.equal(8);
      // n0 and n1 were evicted long ago: their latest and highest versions come from disk.
      expect(await b.delete('n0', 3)).to.deep.equal({ count: 1, versions: [3] });
      expect((await b.get('n0', 0))!.version).to.equal(2);
      expect((await b.append('n0', (v) => recordFor('n0', v))).version, 'a deleted version is not reused').to.equal(4);
      expect((await b.get('n1', 0))!.version).to.equal(3);
      expect((await b.append('n1', (v) => recordFor('n1', v), 3)).version).to.equal(4);
      await rejects(b.append('n2', (v) => recordFor('n2', v), 2), 'VERSION_CONFLICT');
      expect(held()).to.equal(8);
    } finally {
      await b.close();
    }
  });

  it('keeps in memory nothing of names read that do not exist: asking for them evicts no name that does', async () => {
    const b = await LevelBackend.open(dir, { stateNames: 2 });
    const held = (name: string) => (b as unknown as { states: { get(name: string): unknown } }).states.get(name) !== undefined;
    try {
      for (const n of ['a', 'b']) await b.append(n, (v) => recordFor(n, v));
      for (let i = 0; i < 5; i++) expect(await b.get(`absent/${i}`, 0)).to.equal(undefined);
      expect([held('a'), held('b')]).to.deep.equal([true, true]);
    } finally {
      await b.close();
    }
  });

  // Cut short, or one byte too long (whose first four bytes, read as a mark, would give the
  // deleted version 3 again).
  for (const damaged of [[1, 2, 3], [0, 0, 0, 1, 0]]) it(`serves the latest version of an evicted name whose version mark is damaged (${damaged.length} bytes), and refuses only its writes; an intact mark numbers on`, async () => {
    let b = await LevelBackend.open(dir, { stateNames: 1 });
    for (const n of ['a', 'b']) for (let i = 0; i < 3; i++) await b.append(n, (v) => recordFor(n, v));
    for (const n of ['a', 'b']) await b.delete(n, 3);
    await b.close();
    const raw = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
    await raw.open();
    await raw.put('h!a', new Uint8Array(damaged));
    await raw.close();
    b = await LevelBackend.open(dir, { stateNames: 1 });
    try {
      expect((await b.get('a', 0))!.version).to.equal(2);
      await rejects(b.append('a', (v) => recordFor('a', v)), 'INTEGRITY');
      expect((await b.get('a', 0))!.version).to.equal(2);
      // A latest kept by a read leaves the highest to the mark: a deleted version is not reused.
      expect((await b.get('b', 0))!.version).to.equal(2);
      expect((await b.append('b', (v) => recordFor('b', v))).version).to.equal(4);
    } finally {
      await b.close();
    }
  });

  it('keeps the latest version of an evicted name it read while other names were being written', async () => {
    const b = await LevelBackend.open(dir, { stateNames: 8 });
    const held = (name: string) => (b as unknown as { states: { get(name: string): unknown } }).states.get(name) !== undefined;
    try {
      for (let i = 0; i < 10; i++) await b.append(`n${i}`, (v) => recordFor(`n${i}`, v));
      expect(held('n0')).to.equal(false);
      const reading = b.get('n0', 0);
      const writing = b.append('n9', (v) => recordFor('n9', v));
      expect((await reading)!.version).to.equal(1);
      await writing;
      expect(held('n0'), 'a write of another name leaves the read of n0 fresh').to.equal(true);
    } finally {
      await b.close();
    }
  });

  it('keeps no latest version read while a write of the same name ran: a later read sees the write', async () => {
    const b = await LevelBackend.open(dir, { stateNames: 1 });
    const inner = b as unknown as { latestBelow(name: string, below: number): Promise<number> };
    const latestBelow = inner.latestBelow.bind(b);
    try {
      for (const n of ['a', 'b']) for (let i = 0; i < 3; i++) await b.append(n, (v) => recordFor(n, v));
      const cases = [['a', () => b.append('a', (v) => recordFor('a', v)), 3, 4, 5], ['b', () => b.delete('b', 3), 2, 2, 4]] as const;
      for (const [n, write, during, after, next] of cases) {
        await b.append('other', (v) => recordFor('other', v)); // evicts n
        let release!: () => void;
        let answered!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        const read = new Promise<void>((r) => (answered = r));
        let first = true;
        inner.latestBelow = async (name, below) => {
          const v = await latestBelow(name, below);
          if (first && name === n) {
            first = false;
            answered();
            await gate;
          }
          return v;
        };
        const reading = b.get(n, 0);
        await read; // the read has its answer (3) and waits at the gate
        await write();
        await b.append('other', (v) => recordFor('other', v)); // evicts what the write kept
        release();
        expect((await reading)!.version).to.equal(during);
        expect((await b.get(n, 0))!.version, `after the write to ${n}`).to.equal(after);
        expect((await b.append(n, (v) => recordFor(n, v), after)).version, `the next of ${n}`).to.equal(next);
      }
    } finally {
      await b.close();
    }
  });

  it('keeps no latest version read while a write of the same name was on its way to disk: the next append never reuses its number', async () => {
    const b = await LevelBackend.open(dir, { stateNames: 1 });
    const inner = b as unknown as { db: { put: (key: string, value: Uint8Array, o: object) => Promise<void> }; latestBelow(name: string, below: number): Promise<number> };
    const put = inner.db.put.bind(inner.db);
    const latestBelow = inner.latestBelow.bind(b);
    const pause = () => {
      let release!: () => void, reached!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      return { release, there: new Promise<void>((r) => (reached = r)), hold: () => (reached(), gate) };
    };
    try {
      for (let i = 0; i < 3; i++) await b.append('a', (v) => recordFor('a', v));
      await b.append('other', (v) => recordFor('other', v)); // evicts a
      const writing = pause();
      inner.db.put = async (key, value, o) => {
        if (key === 'r!a\u000000000004') await writing.hold();
        return put(key, value, o);
      };
      const written = b.append('a', (v) => recordFor('a', v));
      await writing.there; // version 4 is being written
      const reading = pause();
      inner.latestBelow = async (name, below) => {
        const v = await latestBelow(name, below);
        if (name === 'a') await reading.hold();
        return v;
      };
      const read = b.get('a', 0);
      await reading.there; // the read found 3 on disk
      inner.latestBelow = latestBelow;
      writing.release();
      const four = await written;
      await b.append('other', (v) => recordFor('other', v)); // evicts what the write kept
      reading.release();
      expect((await read)!.version).to.equal(3);
      expect((await b.get('a', 0))!.version).to.equal(4);
      expect((await b.append('a', (v) => recordFor('a', v))).version).to.equal(5);
      expect(await b.get('a', 4), 'the acknowledged version 4 is intact').to.deep.equal(four);
    } finally {
      await b.close();
    }
  });

  it('never serves from its cache a version deleted while a read of it was on its way from disk', async () => {
    const b = await LevelBackend.open(dir);
    const db = (b as unknown as { db: { get: (key: string) => Promise<Uint8Array | undefined> } }).db;
    const get = db.get.bind(db);
    try {
      for (let i = 0; i < 2; i++) await b.append('k', (v) => recordFor('k', v));
      let release!: () => void, reached!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const there = new Promise<void>((r) => (reached = r));
      let first = true;
      db.get = async (key) => {
        const raw = await get(key);
        if (first && key === 'r!k\u000000000002') {
          first = false;
          reached();
          await gate; // the record read, not yet handed back
        }
        return raw;
      };
      const reading = b.get('k', 2);
      await there;
      expect(await b.delete('k', 2)).to.deep.equal({ count: 1, versions: [2] });
      release();
      expect((await reading)!.version, 'a read that ran alongside the delete').to.equal(2);
      expect(await b.get('k', 2)).to.equal(undefined);
      expect((await b.get('k', 0))!.version).to.equal(1);
    } finally {
      await b.close();
    }
  });

  it('serves each version of a name read in turn as stored, and none of a name deleted while cached', async () => {
    const b = await LevelBackend.open(dir);
    try {
      const stored = [await b.append('turn', (v) => recordFor('turn', v)), await b.append('turn', (v) => recordFor('turn', v))];
      for (const v of [1, 2, 2, 0, 1, 1, 2]) {
        const r = (await b.get('turn', v))!;
        const want = stored[(v || 2) - 1]!;
        expect(r.version, `version ${v}`).to.equal(want.version);
        expect(Buffer.from(r.ciphertext).equals(Buffer.from(want.ciphertext)), `version ${v}`).to.equal(true);
      }
      expect(await b.delete('turn', 2)).to.deep.equal({ count: 1, versions: [2] }); // the version read last, so cached
      expect(await b.get('turn', 2)).to.equal(undefined);
      expect((await b.get('turn', 0))!.version).to.equal(1);
      expect(await b.delete('turn', 0)).to.deep.equal({ count: 1, versions: [1] });
      expect(await b.get('turn', 1)).to.equal(undefined);
      expect(await b.get('turn', 0)).to.equal(undefined);
    } finally {
      await b.close();
    }
  });

  it('hands out each cached record as a copy: what one reader changes, the next does not see', async () => {
    const b = await LevelBackend.open(dir);
    try {
      const stored = await b.append('copied', (v) => recordFor('copied', v));
      const first = (await b.get('copied', 0))!; // read from disk, and cached
      const second = (await b.get('copied', 0))!; // from the cache
      for (const r of [first, second]) {
        r.ciphertext.fill(0);
        r.type = 'other';
        r.size = -1;
      }
      expect(await b.get('copied', 0)).to.deep.equal(stored);
    } finally {
      await b.close();
    }
  });

  it('lists from one snapshot: a delete between finding the latest keys and reading them drops no name', async () => {
    const b = await LevelBackend.open(dir);
    const db = (b as unknown as { db: { getMany: (keys: string[], o: object) => Promise<unknown[]> } }).db;
    const getMany = db.getMany.bind(db);
    try {
      for (const n of ['a', 'a', 'b']) await b.append(n, (v) => recordFor(n, v));
      db.getMany = async (keys, o) => {
        db.getMany = getMany;
        await b.delete('a', 2);
        return getMany(keys, o);
      };
      expect((await b.list('')).map((i) => `${i.name}@${i.version}`)).to.deep.equal(['a@2', 'b@1']);
      expect((await b.list('')).map((i) => `${i.name}@${i.version}`)).to.deep.equal(['a@1', 'b@1']);
    } finally {
      await b.close();
    }
  });

  it('compacts, in the background, the span of keys that large deletes left markers in, and close waits for it', async () => {
    const b = await LevelBackend.open(dir, { compactAfter: 25 });
    const db = (b as unknown as { db: { compactRange: (from: string, to: string) => Promise<void> } }).db;
    const compactRange = db.compactRange.bind(db);
    const compacted: string[][] = [];
    let release!: () => void;
    let held!: Promise<void>;
    const hold = () => (held = new Promise<void>((r) => (release = r)));
    hold();
    db.compactRange = async (from, to) => {
      compacted.push([from, to]);
      await held;
      return compactRange(from, to);
    };
    for (let i = 0; i < 12; i++) for (const n of ['a', 'b', 'c']) await b.append(n, (v) => recordFor(n, v));
    for (let i = 0; i < 25; i++) await b.append('d', (v) => recordFor('d', v));
    // Out of key order: the span reaches from the first key deleted to the last, whatever came when.
    await b.delete('c', 0);
    await b.delete('a', 3);
    expect(compacted, '13 markers are not enough').to.deep.equal([]);
    await b.delete('b', 0);
    expect(compacted, 'the 25th starts one').to.deep.equal([['r!a\u000000000003', 'r!c\u00000000000c']]);
    const first = release;
    hold();
    await b.delete('d', 0); // while the first runs: the next starts when it ends
    expect(compacted).to.have.length(1);
    first();
    while (compacted.length < 2) await new Promise((r) => setTimeout(r, 5));
    expect(compacted[1]).to.deep.equal(['r!d\u000000000001', 'r!d\u000000000019']);
    let closed = false;
    const closing = b.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(closed, 'close waits for the compaction').to.equal(false);
    release();
    await closing;
    const again = await LevelBackend.open(dir);
    try {
      expect((await again.list('', { allVersions: true })).map((i) => `${i.name}${i.version}`)).to.deep.equal(['a1', 'a2', ...Array.from({ length: 9 }, (_, i) => `a${i + 4}`)]);
      expect((await again.append('c', (v) => recordFor('c', v))).version).to.equal(13);
    } finally {
      await again.close();
    }
  });
});

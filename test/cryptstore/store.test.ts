// The cryptstore library: versions, deletes, tamper detection, export/import and rekey.

import { expect } from 'chai';
import { chmodSync, chownSync, mkdirSync, promises as fs, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { hkdfSync, scryptSync } from 'node:crypto';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { CertifierError } from '../../lib/errors/index.ts';
import { MAX_VERSION, decode, encode, type CryptstoreBundle, type CryptstoreMetadata } from '../../lib/wire/index.ts';
import { encodeFields, open as aeadOpen, randomBytes, scryptMemory, seal, utf8 } from '../../lib/crypto/index.ts';
import { Cryptstore, KeyFileProtector, MAX_BLOB_BYTES, MAX_BUNDLE_BYTES, MAX_BUNDLE_ENTRIES, PassphraseProtector, memoryAvailable, exportStore, importStore, openBundle, sealBundle } from '../../cryptstore/index.ts';
import { dirState, writeFailed } from '../../cryptstore/db.ts';
import { dataKeyAad } from '../../cryptstore/layout.ts';
import type { ProtectionParams, Protector } from '../../cryptstore/protection.ts';
import { VECTORS, tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';

const CHEAP = { logN: 10, r: 8, p: 1 };
const pass = (s = 'correct horse') => new PassphraseProtector(utf8(s), CHEAP);


/** Edits the raw LevelDB of a closed store. */
async function withRaw(dir: string, fn: (db: Level<string, Uint8Array>) => Promise<void>): Promise<void> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    await fn(db);
  } finally {
    await db.close();
  }
}

async function entryKeys(db: Level<string, Uint8Array>): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of db.keys({ gt: 'e!', lt: 'e"' })) keys.push(k);
  return keys;
}

/** The bundle (passphrase "bundle pass") of a new store at `dir` holding `items`, each [tag, value] and exportable. */
async function bundleOf(dir: string, items: [string, string][]): Promise<Uint8Array> {
  const src = await Cryptstore.create(dir, pass());
  try {
    for (const [tag, value] of items) await src.put(tag, utf8(value), { exportable: true });
    return (await exportStore(src, utf8('bundle pass'), CHEAP)).bundle;
  } finally {
    await src.close();
  }
}

/** The files of the store in `dir` holding `bytes` whole (a record as LevelDB keeps it). */
function filesHolding(dir: string, bytes: Uint8Array): string[] {
  return readdirSync(dir).filter((f) => readFileSync(join(dir, f)).indexOf(bytes) >= 0);
}

describe('cryptstore', () => {
  let tmp: ReturnType<typeof tempDir>;
  let dir: string;
  beforeEach(() => {
    tmp = tempDir();
    dir = join(tmp.dir, 'store');
  });
  afterEach(() => tmp.cleanup());

  describe('opening and creating', () => {
    it('refuses to open a directory that does not exist with STORE_NOT_FOUND', async () => {
      await rejects(Cryptstore.open(dir, pass()), 'STORE_NOT_FOUND');
    });

    it('refuses to create over an existing store with STORE_EXISTS', async () => {
      await (await Cryptstore.create(dir, pass())).close();
      await rejects(Cryptstore.create(dir, pass()), 'STORE_EXISTS');
    });

    it('removes a store that holds nothing only when nothing but LevelDB\'s files is beside it (removeIfEmpty): a file of the user\'s keeps it whole', async () => {
      await (await Cryptstore.create(dir, pass())).close();
      writeFileSync(join(dir, 'notes.txt'), 'mine');
      expect(await Cryptstore.removeIfEmpty(dir)).to.equal(false);
      expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).to.equal('mine');
      await (await Cryptstore.open(dir, pass())).close();
      await fs.unlink(join(dir, 'notes.txt'));
      expect(await Cryptstore.removeIfEmpty(dir)).to.equal(true);
      expect(readdirSync(dir)).to.deep.equal([]);
    });

    it('removes only the names it found to be LevelDB\'s (removeIfEmpty): a file put beside them once they were checked stays', async () => {
      await (await Cryptstore.create(dir, pass())).close();
      // The file arrives once the check has read the names, as another process's could.
      const lstat = fs.lstat;
      let planted = false;
      fs.lstat = (async (...args: Parameters<typeof lstat>) => {
        if (!planted && String(args[0]).startsWith(dir)) {
          planted = true;
          writeFileSync(join(dir, 'notes.txt'), 'mine');
        }
        return lstat(...args);
      }) as typeof lstat;
      try {
        expect(await Cryptstore.removeIfEmpty(dir)).to.equal(true);
      } finally {
        fs.lstat = lstat;
      }
      expect(planted).to.equal(true);
      expect(readdirSync(dir)).to.deep.equal(['notes.txt']);
      expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).to.equal('mine');
      await rejects(Cryptstore.create(dir, pass()), 'STORE_EXISTS');
    });

    it('takes a directory another run is emptying, its LOCK or LOG gone between the listing and the look at it, for what it is then, not for something else', async () => {
      // Concurrent init-trust runs on one new store: one removing the store it made (LOCK last)
      // while another looks. The look found LOCK listed and then gone, and said 'other': the
      // second run stopped with STORE_EXISTS where it would have made the store, or lost to the
      // first with STORE_LOCKED.
      for (const [files, vanishing] of [[['LOCK'], 'LOCK'], [['LOG'], 'LOG'], [['LOG', 'LOG.old'], 'LOG.old']] as const) {
        await fs.rm(dir, { recursive: true, force: true });
        await fs.mkdir(dir);
        for (const f of files) await fs.writeFile(join(dir, f), '');
        const { stat, readFile } = fs;
        const vanishFirst = <A extends unknown[], R>(real: (p: string, ...a: A) => Promise<R>) => async (p: string, ...a: A): Promise<R> => {
          if (p === join(dir, vanishing)) await fs.unlink(p).catch(() => {});
          return real(p, ...a);
        };
        fs.stat = vanishFirst(stat) as typeof fs.stat;
        fs.readFile = vanishFirst(readFile) as typeof fs.readFile;
        try {
          expect(await dirState(dir), files.join(', ')).to.equal(files.length === 1 ? 'empty' : 'unmade');
        } finally {
          fs.stat = stat;
          fs.readFile = readFile;
        }
      }
    });

    it('refuses to create in a non-empty directory that is not a store, naming what it holds (the first five, escaped)', async () => {
      await fs.mkdir(dir);
      await fs.writeFile(join(dir, 'notes.txt'), 'hello');
      expect((await rejects(Cryptstore.create(dir, pass()), 'STORE_EXISTS')).message).to.equal(`${dir} exists and is not an empty directory: it holds "notes.txt"`);
      for (const n of ['a', 'b', 'c', 'd', 'e\x1b[2J']) await fs.writeFile(join(dir, n), '');
      expect((await rejects(Cryptstore.create(dir, pass()), 'STORE_EXISTS')).message).to.equal(`${dir} exists and is not an empty directory: it holds "a", "b", "c", "d", "e\\u001b[2J" and 1 more`);
    });

    it('refuses a wrong passphrase with WRONG_KEY', async () => {
      await (await Cryptstore.create(dir, pass('right'))).close();
      await rejects(Cryptstore.open(dir, pass('wrong')), 'WRONG_KEY');
    });

    it('refuses a key file for a passphrase store with WRONG_KEY, naming what it needs', async () => {
      await (await Cryptstore.create(dir, pass())).close();
      const e = await rejects(Cryptstore.open(dir, new KeyFileProtector(randomBytes(32))), 'WRONG_KEY');
      expect(e.message).to.match(/passphrase/);
    });

    it('opens a passphrase store with the scrypt cost it records, whatever cost the opener would use for a new one', async () => {
      const s = await Cryptstore.create(dir, pass());
      await s.put('k', utf8('v'));
      await s.close();
      const costlier = await Cryptstore.open(dir, new PassphraseProtector(utf8('correct horse'), { ...CHEAP, logN: CHEAP.logN + 1 }));
      try {
        expect(Buffer.from((await costlier.get('k')).blob).toString()).to.equal('v');
        expect(costlier.info.protection.scrypt).to.deep.equal(CHEAP);
      } finally {
        await costlier.close();
      }
    });

    it('gives each new store its own salt, with the same passphrase or key file', async () => {
      const key = randomBytes(32);
      for (const [kind, protector] of [['passphrase', () => pass()], ['key-file', () => new KeyFileProtector(key)]] as const) {
        const salts: string[] = [];
        const wrapped: string[] = [];
        for (const name of ['one', 'two']) {
          const path = join(tmp.dir, `${name}-${kind}`);
          await (await Cryptstore.create(path, protector())).close();
          await withRaw(path, async (db) => {
            const p = decode<CryptstoreMetadata>('cryptstore_metadata', (await db.get('!meta'))!).protection!;
            salts.push(Buffer.from(p.scrypt?.salt ?? p.salt!).toString('hex'));
            wrapped.push(Buffer.from(p.wrappedDataKey!).toString('hex'));
          });
        }
        expect(salts[0], `${kind}: the salt`).to.not.equal(salts[1]);
        expect(wrapped[0], `${kind}: the wrapped data key`).to.not.equal(wrapped[1]);
      }
    });

    it('reports a store held open by someone else as STORE_LOCKED, saying what to do', async () => {
      const s = await Cryptstore.create(dir, pass());
      try {
        const e = await rejects(Cryptstore.open(dir, pass()), 'STORE_LOCKED');
        expect(e.message).to.equal(`the cryptstore is in use by another process (${dir}): a program that opened it holds it while it runs (a key-server serving it, another key-client or cert-utility command, first-boot); let it finish, or stop it, and run this again`);
      } finally {
        await s.close();
      }
    });

    it('keeps the directory 0700 and its files 0600, tightening them again on every open', async () => {
      const s = await Cryptstore.create(dir, pass());
      await s.put('a', utf8('x'));
      await s.close();
      expect(statSync(dir).mode & 0o777).to.equal(0o700);
      for (const f of await fs.readdir(dir)) expect(statSync(join(dir, f)).mode & 0o077, f).to.equal(0);
      // LevelDB moves LOG to LOG.old, keeping its mode, and starts a new LOG under the umask.
      chmodSync(join(dir, 'LOG'), 0o640);
      await (await Cryptstore.open(dir, pass())).close();
      for (const f of await fs.readdir(dir)) expect(statSync(join(dir, f)).mode & 0o077, f).to.equal(0);
    });

    it('tightens the files of a store named through "link/..", where the link leads, and none of the directory of that name beside it', async () => {
      mkdirSync(join(tmp.dir, 'elsewhere', 'deep'), { recursive: true });
      mkdirSync(join(tmp.dir, 'here', 'store'), { recursive: true });
      symlinkSync(join(tmp.dir, 'elsewhere', 'deep'), join(tmp.dir, 'here', 'link'));
      const key = new KeyFileProtector(randomBytes(32));
      await (await Cryptstore.create(join(tmp.dir, 'elsewhere', 'store'), key)).close();
      chmodSync(join(tmp.dir, 'elsewhere', 'store', 'CURRENT'), 0o644);
      writeFileSync(join(tmp.dir, 'here', 'store', 'CURRENT'), 'another\'s', { mode: 0o644 });
      await (await Cryptstore.open(`${tmp.dir}/here/link/../store`, key)).close(); // not join(), which takes the .. as text
      expect(statSync(join(tmp.dir, 'elsewhere', 'store', 'CURRENT')).mode & 0o777, 'its own').to.equal(0o600);
      expect(statSync(join(tmp.dir, 'here', 'store', 'CURRENT')).mode & 0o777, 'another\'s, beside the link').to.equal(0o644);
    });

    it('opens a key-file store with the same key file and records no passphrase parameters', async () => {
      const key = randomBytes(32);
      await (await Cryptstore.create(dir, new KeyFileProtector(key))).close();
      const s = await Cryptstore.open(dir, new KeyFileProtector(key));
      expect(s.info.protection).to.deep.equal({ kind: 'key-file' });
      await s.close();
      await rejects(Cryptstore.open(dir, new KeyFileProtector(randomBytes(32))), 'WRONG_KEY');
    });

    it('wraps the data key under scrypt of the passphrase (its recorded cost and salt) or HKDF-SHA-256 of the key file, and seals each entry under it with AAD (purpose, format, store id, tag, version)', async () => {
      // Computed with node:crypto here, apart from the store's code, as the README describes it.
      const keyFile = randomBytes(32);
      const stores: [string, Protector, (m: CryptstoreMetadata) => Buffer][] = [
        ['passphrase', pass(), ({ protection }) => {
          const sc = protection!.scrypt!;
          return scryptSync('correct horse', sc.salt!, 32, { N: 2 ** sc.logN!, r: sc.r!, p: sc.p! });
        }],
        ['key-file', new KeyFileProtector(keyFile), (m) => Buffer.from(hkdfSync('sha256', keyFile, m.protection!.salt!, 'cryptstore key-file kek v1', 32))],
      ];
      for (const [kind, protector, kekOf] of stores) {
        const at = join(tmp.dir, kind);
        const st = await Cryptstore.create(at, protector);
        await st.put('a', utf8('alpha'));
        await st.close();
        await withRaw(at, async (db) => {
          const m = decode<CryptstoreMetadata>('cryptstore_metadata', (await db.get('!meta'))!);
          expect([m.formatVersion, m.storeId!.length], kind).to.deep.equal([1, 16]);
          const dataKey = aeadOpen(kekOf(m), m.protection!.wrappedDataKey!, dataKeyAad(m.storeId!, m.protection as ProtectionParams));
          expect(dataKey, kind).to.have.length(32);
          const aad = encodeFields('cryptstore-entry', '1', m.storeId!, 'a', '1');
          const entry = decode<{ tag: string; version: number; blob: Uint8Array }>('cryptstore_entry', aeadOpen(dataKey!, (await db.get('e!a\u000000000001'))!, aad)!);
          expect([entry.tag, entry.version, Buffer.from(entry.blob).toString()], kind).to.deep.equal(['a', 1, 'alpha']);
        });
      }
    });

    it('creates over a database whose creation was cut short (no metadata, no records), and says what it is when opened', async () => {
      await withRaw(dir, async () => {}); // LevelDB's files, as a create killed before its first write leaves them
      const e = await rejects(Cryptstore.open(dir, pass()), 'STORE_NOT_FOUND');
      expect(e.message).to.contain('interrupted');
      const s = await Cryptstore.create(dir, pass());
      await s.put('a', utf8('x'));
      await s.close();
      await rejects(Cryptstore.create(dir, pass()), 'STORE_EXISTS');
    });

    it('creates over a creation cut short named through "link/..", where the link leads', async () => {
      mkdirSync(join(tmp.dir, 'elsewhere', 'deep'), { recursive: true });
      mkdirSync(join(tmp.dir, 'here'));
      symlinkSync(join(tmp.dir, 'elsewhere', 'deep'), join(tmp.dir, 'here', 'link'));
      mkdirSync(join(tmp.dir, 'elsewhere', 'store'));
      for (const f of ['LOCK', 'LOG']) writeFileSync(join(tmp.dir, 'elsewhere', 'store', f), ''); // LevelDB's first files, as a create killed then leaves them
      await (await Cryptstore.openOrCreate(`${tmp.dir}/here/link/../store`, pass())).close(); // not join(), which takes the .. as text
      await (await Cryptstore.open(join(tmp.dir, 'elsewhere', 'store'), pass())).close();
    });

    it('keeps an item under a name made before the rule on invisible characters (a key-server name fetched into it)', async () => {
      const s = await Cryptstore.create(dir, pass());
      await s.put('old-name\u200e', utf8('x'));
      await s.putAll([{ tag: 'older\u200b', blob: utf8('y') }]);
      expect((await s.list()).map((e) => e.tag).sort()).to.deep.equal(['old-name\u200e', 'older\u200b']);
      await s.close();
    });

    it('creates over what LevelDB leaves when killed before CURRENT exists, and nothing else', async () => {
      /** A directory holding these files (name: contents). */
      const dirWith = (path: string, files: Record<string, string>) => {
        mkdirSync(path, { recursive: true });
        for (const [name, text] of Object.entries(files)) writeFileSync(join(path, name), text);
        return path;
      };
      dirWith(dir, { LOCK: '', LOG: '', 'MANIFEST-000001': '', '000001.dbtmp': '' });
      const e = await rejects(Cryptstore.open(dir, pass()), 'STORE_NOT_FOUND');
      expect(e.message).to.contain('interrupted');
      await (await Cryptstore.openOrCreate(dir, pass())).close();
      await (await Cryptstore.open(dir, pass())).close();
      // Killed sooner, LevelDB has only started its info log (LOG, the old one as LOG.old).
      for (const [name, files] of [['log-only', { LOG: '' }], ['log-lines', { LOG: '2026/12/05-17:00:00.123456 7f0a12345678 Creating DB\n', 'LOG.old': '' }]] as const) {
        const d2 = dirWith(join(tmp.dir, name), files);
        await (await Cryptstore.openOrCreate(d2, pass())).close();
        await (await Cryptstore.open(d2, pass())).close();
      }
      const notesLog = dirWith(join(tmp.dir, 'notes-log'), { LOG: 'my notes' });
      await rejects(Cryptstore.create(notesLog, pass()), 'STORE_EXISTS');
      const notes = dirWith(join(tmp.dir, 'notes'), { LOG: 'my notes', LOCK: 'x' });
      await rejects(Cryptstore.create(notes, pass()), 'STORE_EXISTS');
      expect(readFileSync(join(notes, 'LOG'), 'utf8')).to.equal('my notes');
      const mixed = dirWith(join(tmp.dir, 'mixed'), { LOG: '', 'notes.txt': '' });
      await rejects(Cryptstore.create(mixed, pass()), 'STORE_EXISTS');
      expect(readdirSync(mixed).sort()).to.deep.equal(['LOG', 'notes.txt']);
      const locked = dirWith(join(tmp.dir, 'locked'), { LOCK: '', 'notes.txt': 'my notes' });
      await rejects(Cryptstore.create(locked, pass()), 'STORE_EXISTS');
      expect(readdirSync(locked).sort()).to.deep.equal(['LOCK', 'notes.txt']);
      // A database that held data and lost its CURRENT is damaged, not unfinished: nothing goes.
      const damaged = dirWith(join(tmp.dir, 'damaged'), { LOCK: 'data', LOG: 'data', 'MANIFEST-000004': 'data', '000005.ldb': 'data', '000006.log': 'data' });
      await rejects(Cryptstore.openOrCreate(damaged, pass()), 'STORE_EXISTS');
      expect(readdirSync(damaged).sort()).to.deep.equal(['000005.ldb', '000006.log', 'LOCK', 'LOG', 'MANIFEST-000004']);
    });

    it('openOrCreate opens a store, creates a missing or unfinished one, and refuses a database holding records but no metadata', async () => {
      const first = await Cryptstore.openOrCreate(dir, pass());
      await first.put('a', utf8('x'));
      await first.close();
      const again = await Cryptstore.openOrCreate(dir, pass());
      expect((await again.list()).map((e) => e.tag)).to.deep.equal(['a']);
      await again.close();

      const cut = join(tmp.dir, 'cut');
      await withRaw(cut, async () => {});
      await (await Cryptstore.openOrCreate(cut, pass())).close();
      await (await Cryptstore.open(cut, pass())).close();

      const foreign = join(tmp.dir, 'foreign');
      await withRaw(foreign, async (db) => db.put('something', utf8('else')));
      const e = await rejects(Cryptstore.openOrCreate(foreign, pass()), 'STORE_NOT_FOUND');
      expect(e.message).to.contain('holds a LevelDB database that is not a cryptstore');
      expect((await rejects(Cryptstore.create(foreign, pass()), 'STORE_EXISTS')).message).to.contain('holds a LevelDB database that is not a cryptstore');
    });

    it('lets one of two runs creating the same store make it, and the other open it (onCreating tells the maker)', async () => {
      const both = join(tmp.dir, 'both');
      const makers: string[] = [];
      const [a, b] = await Promise.all(['a', 'b'].map((who) => Cryptstore.openOrCreate(both, pass(), { onCreating: () => void makers.push(who) }).catch((e: unknown) => e)));
      // One made it; the other opened it, or found it locked while the first held it.
      expect(makers).to.have.length(1);
      for (const r of [a, b]) {
        if (r instanceof Cryptstore) await r.close();
        else expect((r as CertifierError).code).to.equal('STORE_LOCKED');
      }
      await (await Cryptstore.open(both, pass())).close();
    });

    it('leaves alone the store another run made while this one derived its key: STORE_EXISTS, and theirs keeps its items', async () => {
      const theirs = new KeyFileProtector(randomBytes(32));
      const mine = new KeyFileProtector(randomBytes(32));
      // The other run's create finishes while this one derives its key.
      const racing = Object.assign(Object.create(mine) as KeyFileProtector, {
        async create() {
          const other = await Cryptstore.create(dir, theirs);
          await other.put('their-key', utf8('theirs'));
          await other.close();
          return mine.create();
        },
      });
      await rejects(Cryptstore.create(dir, racing), 'STORE_EXISTS');
      const store = await Cryptstore.open(dir, theirs);
      try {
        expect((await store.list()).map((e) => e.tag)).to.deep.equal(['their-key']);
      } finally {
        await store.close();
      }
    });

    it('leaves the directory as it found it when a creation fails once begun: made, removed; there before, emptied', async () => {
      const stop = () => { throw new CertifierError('FILE_ERROR', 'stopped here'); };
      await rejects(Cryptstore.create(dir, pass(), { onCreating: stop }), 'FILE_ERROR');
      expect(readdirSync(tmp.dir)).to.deep.equal([]);
      mkdirSync(dir);
      await rejects(Cryptstore.create(dir, pass(), { onCreating: stop }), 'FILE_ERROR');
      expect(readdirSync(dir)).to.deep.equal([]);
      await (await Cryptstore.create(dir, pass())).close();
    });

    it('makes no store in a directory that held entries, however it is named ("x/new/.."), and removes none of them', async () => {
      const stop = () => { throw new CertifierError('FILE_ERROR', 'stopped here'); };
      const x = join(tmp.dir, 'x');
      mkdirSync(x);
      writeFileSync(join(x, 'diary'), 'mine');
      await rejects(Cryptstore.create(`${x}/new/..`, pass(), { onCreating: stop }), 'STORE_EXISTS'); // not join(), which takes the .. as text
      expect(readdirSync(x), 'the folder mkdir made goes too').to.deep.equal(['diary']);
      // One that was there empty holds the folder made on the way to it: refused too, and left empty.
      const empty = join(tmp.dir, 'empty');
      mkdirSync(empty);
      await rejects(Cryptstore.create(`${empty}/new/..`, pass(), { onCreating: stop }), 'STORE_EXISTS');
      expect(readdirSync(empty)).to.deep.equal([]);
    });

    it('refuses another user\'s directory, even one open to all, before writing anything in it', async function () {
      // Only root can give a directory away (and could make anyone's private: hence the check).
      if (process.getuid?.() !== 0) this.skip();
      mkdirSync(dir, { mode: 0o777 });
      chmodSync(dir, 0o777);
      chownSync(dir, 65534, 65534);
      const e = await rejects(Cryptstore.create(dir, pass()), 'FILE_ERROR');
      expect(e.message).to.equal(`${dir} belongs to another user (uid 65534); a cryptstore must belong to the user who opens it`);
      expect(readdirSync(dir)).to.deep.equal([]);
      expect(statSync(dir).mode & 0o777).to.equal(0o777);
    });

    // How LevelDB's failures read is lib/files' (files-level-failure.test.ts); the cryptstore names itself.
    const written = (e: unknown) => writeFailed('/s')(e).then(() => undefined, (x: unknown) => x as CertifierError | undefined);

    it('says a full disk is a full disk (FILE_ERROR), not a damaged store', async () => {
      const e = await written({ cause: { message: 'IO error: /s/MANIFEST-000007: No space left on device' } });
      expect([e?.code, e?.message]).to.deep.equal(['FILE_ERROR', 'the cryptstore at /s cannot be written: the disk is full: IO error: /s/MANIFEST-000007: No space left on device']);
      const damaged = { cause: { message: 'Corruption: bad block' } };
      expect(await written(damaged), 'any other failure passes as it is').to.equal(damaged);
      expect((await written({ cause: { message: 'IO error: /s/MANIFEST-000027: File too large' } }))?.message).to.contain('a file size limit is reached');
    });

    it('says a process out of file descriptors is (FILE_ERROR)', async () => {
      const e = await written({ cause: { message: 'IO error: /s/000009.log: Too many open files' } });
      expect([e?.code, e?.message]).to.deep.equal(['FILE_ERROR', 'the cryptstore at /s cannot be written: this process has no file descriptor left (ulimit -n, LimitNOFILE=): IO error: /s/000009.log: Too many open files']);
    });

    it('says a write LevelDB failed on any file operation is FILE_ERROR, in LevelDB\'s words, not an internal error', async () => {
      const e = await written(Object.assign(new Error('IO error: /s/000009.log: Permission denied'), { code: 'LEVEL_IO_ERROR' }));
      expect([e?.code, e?.message]).to.deep.equal(['FILE_ERROR', 'the cryptstore at /s cannot be written: IO error: /s/000009.log: Permission denied']);
    });

    it('says a change whose write failed may or may not have been made: LevelDB may have put it down before its sync failed, and the next open finds it', async () => {
      const s = await Cryptstore.create(dir, pass());
      try {
        await s.put('k', utf8('one'));
        const db = (s as unknown as { db: Level<string, Uint8Array> }).db;
        // The record reaches LevelDB's log, and the sync after it fails (as fdatasync can: EIO).
        db.put = async function (this: Level<string, Uint8Array>, key: string, value: Uint8Array) {
          await (Level.prototype.put as (k: string, v: Uint8Array) => Promise<void>).call(this, key, value);
          throw Object.assign(new Error(`IO error: ${dir}/000003.log: Input/output error`), { code: 'LEVEL_IO_ERROR' });
        } as typeof db.put;
        const e = await rejects(s.put('k', utf8('two')), 'FILE_ERROR');
        expect(e.message).to.equal(`the cryptstore at ${dir} cannot be written: the disk reported an I/O error: IO error: ${dir}/000003.log: Input/output error; the change may or may not have been made ("k" version 2 was stored, or nothing was: LevelDB may have written it before it failed, and what reached the disk is kept): the store, opened again, shows which (list-items)`);
        delete (db as { put?: unknown }).put;
      } finally {
        await s.close();
      }
      const again = await Cryptstore.open(dir, pass());
      try {
        expect((await again.list()).map((i) => i.version)).to.deep.equal([1, 2]);
      } finally {
        await again.close();
      }
    });

    it('refuses a key file shorter than 32 bytes', () => {
      expect(() => new KeyFileProtector(randomBytes(31))).to.throw(CertifierError).with.property('code', 'INVALID_INPUT');
    });
  });

  describe('items and versions', () => {
    let s: Cryptstore;
    beforeEach(async () => {
      s = await Cryptstore.create(dir, pass());
    });
    afterEach(async () => s.close());

    it('returns identical bytes for a 32-byte secret and a 1 MiB blob', async () => {
      const small = randomBytes(32);
      const big = randomBytes(1024 * 1024);
      await s.put('small', small);
      await s.put('big', big, { type: 'other' });
      expect((await s.get('small')).blob).to.deep.equal(small);
      const got = await s.get('big');
      expect(got.blob).to.deep.equal(big);
      expect(got.type).to.equal('other');
      expect(got.size).to.equal(1024 * 1024);
    });

    it('numbers versions 1, 2, 3 per tag and reads older versions on request', async () => {
      for (let i = 1; i <= 3; i++) expect((await s.put('k', utf8(`v${i}`))).version).to.equal(i);
      expect((await s.put('other', utf8('o'))).version).to.equal(1);
      expect(Buffer.from((await s.get('k')).blob).toString()).to.equal('v3');
      expect(Buffer.from((await s.get('k', 1)).blob).toString()).to.equal('v1');
      expect((await s.get('k', 2)).version).to.equal(2);
    });

    it('reports a missing tag or version with NOT_FOUND', async () => {
      await rejects(s.get('nothing'), 'NOT_FOUND');
      await s.put('k', utf8('a'));
      await rejects(s.get('k', 2), 'NOT_FOUND');
    });

    const USED_UP = (shownTag: string) => `${shownTag} has used every version number, up to 2147483647, the highest (or was retired: deleted while its record of the numbers used was damaged): no later version can be stored under this tag (a deleted number is never given again); store the value under another tag`;

    it('gives a tag the last version number the wire carries (2147483647), then refuses another put with INVALID_INPUT saying no later version can be stored', async () => {
      await s.importEntries([{ tag: 't', type: 'binary-blob', version: MAX_VERSION - 1, timeEntered: new Date().toISOString(), blob: utf8('a'), exportable: true }]);
      expect((await s.put('t', utf8('b'))).version).to.equal(2147483647);
      expect((await rejects(s.put('t', utf8('c')), 'INVALID_INPUT')).message).to.equal(USED_UP('"t"'));
      expect((await rejects(s.putAll([{ tag: 't', blob: utf8('c') }]), 'INVALID_INPUT')).message).to.equal(USED_UP('"t"'));
    });

    it('refuses to import the last version number (2147483647) without force, writing nothing: it would leave the tag no version for a later put', async () => {
      const last = (tag: string) => ({ tag, type: 'binary-blob' as const, version: MAX_VERSION, timeEntered: new Date().toISOString(), blob: utf8('a'), exportable: true });
      const e = await rejects(s.importEntries([last('t'), { ...last('u'), version: 7 }]), 'INVALID_INPUT');
      expect(e.message).to.equal('"t" v2147483647 is the highest version number: imported, it would leave the tag no version for a later put-item or key-client to store; nothing was imported (--force imports it)');
      expect(await s.list()).to.deep.equal([]);
      expect((await s.importEntries([last('t')], true)).map((i) => i.version)).to.deep.equal([MAX_VERSION]);
      expect((await rejects(s.put('t', utf8('b')), 'INVALID_INPUT')).message).to.equal(USED_UP('"t"'));
    });

    it('shows a tag with an invisible character escaped when a batch is refused for it', async () => {
      await s.importEntries([{ tag: 't\u200e', type: 'binary-blob', version: MAX_VERSION, timeEntered: new Date().toISOString(), blob: utf8('a'), exportable: true }], true);
      expect((await rejects(s.putAll([{ tag: 't\u200e', blob: utf8('c') }]), 'INVALID_INPUT')).message).to.equal(USED_UP('"t\\u200e"'));
    });

    it('never reuses a version after deleting the latest one, even across reopening', async () => {
      await s.put('k', utf8('1'));
      await s.put('k', utf8('2'));
      expect(await s.delete('k', 2)).to.deep.equal({ versions: [2], damaged: 0 });
      expect((await s.get('k')).version).to.equal(1);
      await s.close();
      s = await Cryptstore.open(dir, pass());
      expect((await s.put('k', utf8('3'))).version).to.equal(3);
      await rejects(s.get('k', 2), 'NOT_FOUND');
    });

    it('removes a version and writes the tag\'s high-water mark in one LevelDB batch, synced: a crash leaves both or neither', async () => {
      await s.put('k', utf8('1'));
      await s.put('k', utf8('2'));
      // What the delete asks of LevelDB, seen from the store's own handle.
      const db = (s as unknown as { db: Record<'batch' | 'put' | 'del', (...a: unknown[]) => Promise<unknown>> }).db;
      const writes: unknown[][] = [];
      const spied = { batch: db.batch, put: db.put, del: db.del };
      for (const name of ['batch', 'put', 'del'] as const) db[name] = (...a) => (writes.push([name, ...a]), spied[name].apply(db, a));
      try {
        await s.delete('k', 2);
      } finally {
        Object.assign(db, spied);
      }
      expect(writes).to.have.length(1);
      const [kind, ops, options] = writes[0] as [string, { type: string; key: string }[], { sync: boolean }];
      expect(kind).to.equal('batch');
      expect(ops.map((o) => [o.type, o.key])).to.deep.equal([['del', 'e!k\u000000000002'], ['put', 'h!k']]);
      expect(options).to.include({ sync: true });
    });

    it('reads the latest version of a tag it has seen with one synchronous LevelDB get, no iterator: the latest is cached, as one process at a time allows', async () => {
      await s.put('k', utf8('1'));
      await s.put('k', utf8('2'));
      await s.close();
      s = await Cryptstore.open(dir, pass());
      await s.get('k'); // the first read finds the latest version on disk
      const db = (s as unknown as { db: Record<string, (...a: unknown[]) => unknown> }).db;
      const calls: unknown[][] = [];
      const names = ['get', 'getSync', 'getMany', 'iterator', 'keys', 'values'];
      const spied = Object.fromEntries(names.map((n) => [n, db[n]!]));
      for (const n of names) db[n] = (...a) => (calls.push([n, ...a.slice(0, 1)]), spied[n]!.apply(db, a));
      try {
        expect(Buffer.from((await s.get('k')).blob).toString()).to.equal('2');
      } finally {
        Object.assign(db, spied);
      }
      expect(calls).to.deep.equal([['getSync', 'e!k\u000000000002']]);
    });

    it('never reuses a version after deleting the latest, then every version left, across reopening', async () => {
      await s.put('k', utf8('1'));
      await s.put('k', utf8('2'));
      await s.delete('k', 2);
      expect(await s.delete('k')).to.deep.equal({ versions: [1], damaged: 0 });
      await s.close();
      s = await Cryptstore.open(dir, pass());
      expect((await s.put('k', utf8('3'))).version).to.equal(3);
    });

    it('deletes every version of a tag and continues numbering after it', async () => {
      await s.put('k', utf8('1'));
      await s.put('k', utf8('2'));
      expect(await s.delete('k')).to.deep.equal({ versions: [1, 2], damaged: 0 });
      await rejects(s.get('k'), 'NOT_FOUND');
      await rejects(s.delete('k'), 'NOT_FOUND');
      expect((await s.put('k', utf8('3'))).version).to.equal(3);
    });

    it('gives concurrent puts to one tag distinct consecutive versions', async () => {
      const infos = await Promise.all(Array.from({ length: 20 }, (_, i) => s.put('k', utf8(String(i)))));
      expect(infos.map((i) => i.version).sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
    });

    it('stores several items in one atomic batch with consecutive versions', async () => {
      await s.put('a', utf8('a1'));
      const infos = await s.putAll([
        { tag: 'a', blob: utf8('a2') },
        { tag: 'b', blob: utf8('b1'), options: { type: 'X509-der-cert' } },
        { tag: 'a', blob: utf8('a3'), options: { exportable: true } },
      ]);
      expect(infos.map((i) => `${i.tag}@${i.version}`)).to.deep.equal(['a@2', 'b@1', 'a@3']);
      expect((await s.get('a')).exportable).to.equal(true);
      await rejects(s.putAll([{ tag: 'c', blob: utf8('c') }, { tag: '', blob: utf8('bad') }]), 'INVALID_INPUT');
      await rejects(s.get('c'), 'NOT_FOUND');
    });

    it('lists every version with metadata and never the values', async () => {
      await s.put('b', utf8('secret-b'), { exportable: true });
      await s.put('a', utf8('secret-a'));
      await s.put('a', utf8('secret-a2'));
      const list = await s.list();
      expect(list.map((e) => `${e.tag}@${e.version}`)).to.deep.equal(['a@1', 'a@2', 'b@1']);
      expect(JSON.stringify(list)).not.to.contain('secret');
      expect(list[2]).to.include({ exportable: true, type: 'binary-blob', size: 8 });
    });

    it('accepts tags with slashes and spaces and refuses control characters and empty tags', async () => {
      await s.put('datica-test/storage disk key', utf8('x'));
      expect((await s.get('datica-test/storage disk key')).tag).to.equal('datica-test/storage disk key');
      await rejects(s.put('', utf8('x')), 'INVALID_INPUT');
      await rejects(s.put('a\u0000b', utf8('x')), 'INVALID_INPUT');
    });

    it('keeps a tag that is a prefix of another separate from it', async () => {
      await s.put('key', utf8('1'));
      await s.put('key2', utf8('2'));
      await s.put('key', utf8('3'));
      expect((await s.get('key')).version).to.equal(2);
      expect((await s.get('key2')).version).to.equal(1);
    });

    it('passes verify on an intact store', async () => {
      await s.put('a', utf8('1'));
      await s.put('a', utf8('2'));
      await s.delete('a', 1);
      expect(await s.verify()).to.deep.equal({ entries: 1, tags: 1, problems: [] });
    });
  });

  describe('tampering', () => {
    beforeEach(async () => {
      const s = await Cryptstore.create(dir, pass());
      await s.put('a', utf8('alpha'));
      await s.put('b', utf8('bravo'));
      await s.delete((await s.put('c', utf8('charlie'))).tag, 1);
      await s.close();
    });

    it('detects a flipped byte at any position of a stored value with INTEGRITY', async () => {
      let length = 0;
      await withRaw(dir, async (db) => {
        length = (await db.get((await entryKeys(db))[0]!))!.length;
      });
      for (let i = 0; i < length; i += 7) {
        await withRaw(dir, async (db) => {
          const k = (await entryKeys(db))[0]!;
          const v = new Uint8Array((await db.get(k))!);
          v[i]! ^= 0x01;
          await db.put(k, v);
        });
        const s = await Cryptstore.open(dir, pass());
        try {
          await rejects(s.get('a'), 'INTEGRITY');
          expect((await s.verify()).problems).to.have.length(1);
        } finally {
          await s.close();
        }
        await withRaw(dir, async (db) => {
          const k = (await entryKeys(db))[0]!;
          const v = new Uint8Array((await db.get(k))!);
          v[i]! ^= 0x01;
          await db.put(k, v);
        });
      }
    });

    it('detects two swapped records with INTEGRITY', async () => {
      await withRaw(dir, async (db) => {
        const [ka, kb] = await entryKeys(db);
        const [va, vb] = [await db.get(ka!), await db.get(kb!)];
        await db.batch([{ type: 'put', key: ka!, value: vb! }, { type: 'put', key: kb!, value: va! }]);
      });
      const s = await Cryptstore.open(dir, pass());
      try {
        await rejects(s.get('a'), 'INTEGRITY');
        await rejects(s.get('b'), 'INTEGRITY');
        await rejects(s.list(), 'INTEGRITY');
        expect((await s.verify()).problems).to.have.length(2);
      } finally {
        await s.close();
      }
    });

    it('opens none of its records once its store id is another, its data key wrapped again for that id: each entry and high-water mark is bound to the store it was written in', async () => {
      // What a record carried from another store sharing the data key (a copy given a new id by
      // someone holding the key) would meet; the data key's own binding of the id is tested below.
      await withRaw(dir, async (db) => {
        const m = decode<CryptstoreMetadata>('cryptstore_metadata', (await db.get('!meta'))!);
        const p = m.protection!;
        const kek = await pass().derive(p as ProtectionParams);
        const dataKey = aeadOpen(kek, p.wrappedDataKey!, dataKeyAad(m.storeId!, p as ProtectionParams))!;
        m.storeId = randomBytes(16);
        p.wrappedDataKey = seal(kek, dataKey, dataKeyAad(m.storeId, p as ProtectionParams));
        await db.put('!meta', encode('cryptstore_metadata', m));
      });
      const s = await Cryptstore.open(dir, pass());
      try {
        await rejects(s.get('a'), 'INTEGRITY');
        await rejects(s.get('b', 1), 'INTEGRITY');
        await rejects(s.put('c', utf8('charlie again')), 'INTEGRITY'); // its high-water mark
        expect((await s.verify()).problems).to.have.length(3);
      } finally {
        await s.close();
      }
    });

    it('detects a record renamed to another version with INTEGRITY', async () => {
      await withRaw(dir, async (db) => {
        const k = (await entryKeys(db))[0]!;
        await db.put(k.replace(/1$/, '2'), (await db.get(k))!);
      });
      const s = await Cryptstore.open(dir, pass());
      try {
        await rejects(s.get('a', 2), 'INTEGRITY');
      } finally {
        await s.close();
      }
    });

    it('refuses, as damaged, a record not written here that numbers a version past the range or past the latest, and never numbers a version by it', async () => {
      // Each round puts and deletes one version: the next is one higher, whatever the forged record said.
      for (const [round, forged] of ['ffffffff', '80000000', '7fffffff', '00000005'].entries()) {
        const key = `e!a\u0000${forged}`;
        await withRaw(dir, (db) => db.put(key, randomBytes(60)));
        let s = await Cryptstore.open(dir, pass());
        try {
          await rejects(s.get('a'), 'INTEGRITY');
          await rejects(s.put('a', utf8('next')), 'INTEGRITY');
          await rejects(s.has('a'), 'INTEGRITY');
          expect(Buffer.from((await s.get('a', 1)).blob).toString(), forged).to.equal('alpha');
          const { problems } = await s.verify();
          expect(problems.map((p) => p.key), forged).to.deep.equal([JSON.stringify(key)]);
          // Deleting the forged record, where it has a version, removes it and uses no version number.
          if (forged !== 'ffffffff' && forged !== '80000000') expect((await s.delete('a', parseInt(forged, 16))).versions).to.deep.equal([parseInt(forged, 16)]);
        } finally {
          await s.close();
        }
        await withRaw(dir, (db) => db.del(key));
        s = await Cryptstore.open(dir, pass());
        try {
          const { version } = await s.put('a', utf8('next'));
          expect(version, forged).to.equal(2 + round);
          await s.delete('a', version);
        } finally {
          await s.close();
        }
      }
    });

    it('deletes every record of a tag asked to delete every version, those whose key names no version (0, past the range, not one at all) included, and verify names that remedy', async () => {
      // Each round deletes the tag's one version and the forged record; the next put is one higher.
      for (const [round, forged] of ['00000000', 'ffffffff', '80000000', 'zz', 'x\u000000000001'].entries()) {
        const key = `e!a\u0000${forged}`;
        await withRaw(dir, (db) => db.put(key, randomBytes(60)));
        const s = await Cryptstore.open(dir, pass());
        try {
          expect((await s.verify()).problems, forged).to.deep.equal([{ key: JSON.stringify(key), problem: 'a record of "a" whose key names no version this store writes (1 to 2147483647): verify-store --repair --yes removes it (as delete-item --tag "a" does, with every version of the tag)' }]);
          expect(await s.delete('a'), forged).to.deep.equal({ versions: [1 + round], damaged: 1 });
          expect((await s.verify()).problems, forged).to.deep.equal([]);
          expect((await s.put('a', utf8('next'))).version, forged).to.equal(2 + round);
        } finally {
          await s.close();
        }
      }
    });

    it('repair removes the records no key of the store names (under no tag, a prefix it does not use, a tag\'s key naming no version) and replaces a damaged high-water mark with one above every version present; verify, put and delete name that remedy', async () => {
      let s = await Cryptstore.open(dir, pass()); // a@1, b@1, and c's version 1 deleted
      for (const v of ['a2', 'a3']) await s.put('a', utf8(v));
      await s.delete('a', 3); // a's mark: 3
      await s.close();
      await withRaw(dir, async (db) => {
        const mark = (await db.get('h!a'))!;
        const damaged = new Uint8Array(mark);
        damaged[damaged.length - 1]! ^= 1;
        await db.batch([
          { type: 'put', key: 'e!no-nul', value: randomBytes(60) },
          { type: 'put', key: 'x!elsewhere', value: randomBytes(60) },
          { type: 'put', key: 'e!a\u0000zz', value: randomBytes(60) },
          { type: 'put', key: 'h!a', value: damaged },
          { type: 'put', key: 'h!\u0001', value: randomBytes(40) },
          { type: 'put', key: 'e!c\u000000000001', value: randomBytes(60) }, // a damaged version of c: delete-item's, not repair's
        ]);
      });
      s = await Cryptstore.open(dir, pass());
      try {
        const problems = new Map((await s.verify()).problems.map((p) => [JSON.parse(p.key) as string, p.problem]));
        expect([...problems.keys()].sort()).to.deep.equal(['e!a\u0000zz', 'e!c\u000000000001', 'e!no-nul', 'h!\u0001', 'h!a', 'x!elsewhere']);
        for (const key of ['e!no-nul', 'x!elsewhere', 'h!\u0001', 'e!a\u0000zz']) expect(problems.get(key), key).to.contain('verify-store --repair --yes removes it');
        expect(problems.get('h!a')).to.contain('verify-store --repair --yes replaces it with one above every version of the tag present');
        expect((await rejects(s.put('a', utf8('a4')), 'INTEGRITY')).message).to.contain('verify-store --repair --yes');
        expect((await rejects(s.delete('a', 1), 'INTEGRITY')).message).to.contain('verify-store --repair --yes');
        expect((await rejects(s.list(), 'INTEGRITY')).message).to.contain('verify-store');
        const repaired = await s.repair();
        expect(repaired.map((r) => `${r.key} ${r.done}`)).to.deep.equal([
          `${JSON.stringify('e!a\u0000zz')} removed`, `${JSON.stringify('e!no-nul')} removed`, `${JSON.stringify('h!\u0001')} removed`,
          `${JSON.stringify('h!a')} replaced (versions from 3 on)`, `${JSON.stringify('x!elsewhere')} removed`,
        ]);
        expect((await s.verify()).problems.map((p) => p.key)).to.deep.equal([JSON.stringify('e!c\u000000000001')]);
        expect((await s.put('a', utf8('a3 again'))).version).to.equal(3);
        expect((await s.put('b', utf8('b2'))).version).to.equal(2);
        expect(Buffer.from((await s.get('a', 2)).blob).toString()).to.equal('a2');
        expect(await s.repair()).to.deep.equal([]);
      } finally {
        await s.close();
      }
    });

    it('deletes every version of a tag whose high-water mark is damaged, retiring the tag: no number it may have used is given again', async () => {
      let s = await Cryptstore.open(dir, pass()); // a@1, b@1, and c's version 1 deleted
      for (const v of ['a2', 'a3', 'a4']) await s.put('a', utf8(v));
      await s.delete('a', 4); // a's mark: 4, while only 1 to 3 are present
      await s.close();
      const damage = async (key: string) => withRaw(dir, async (db) => {
        const mark = new Uint8Array((await db.get(key))!);
        mark[mark.length - 1]! ^= 1;
        await db.put(key, mark);
      });
      await damage('h!a');
      await damage('h!c'); // c has no version left, only its mark
      s = await Cryptstore.open(dir, pass());
      try {
        expect((await rejects(s.delete('a', 1), 'INTEGRITY')).message).to.contain('delete-item --tag "a" of every version instead retires the tag');
        expect(await s.delete('a')).to.deep.equal({ versions: [1, 2, 3], damaged: 0, retired: true });
        expect(await s.delete('c')).to.deep.equal({ versions: [], damaged: 0, retired: true });
        expect((await s.verify()).problems).to.deep.equal([]);
        for (const tag of ['a', 'c']) {
          expect((await rejects(s.put(tag, utf8('again')), 'INVALID_INPUT')).message, tag).to.contain('or was retired');
          await rejects(s.delete(tag), 'NOT_FOUND'); // its mark opens now: nothing more to delete
        }
        expect((await s.put('b', utf8('b2'))).version).to.equal(2);
      } finally {
        await s.close();
      }
      s = await Cryptstore.open(dir, pass()); // the retirement is on disk, not only in memory
      try {
        await rejects(s.put('a', utf8('again')), 'INVALID_INPUT');
      } finally {
        await s.close();
      }
    });

    it('deletes one version beside a record whose key names none, and a tag holding only such records', async () => {
      await withRaw(dir, (db) => db.batch([{ type: 'put', key: 'e!b\u0000ffffffff', value: randomBytes(60) }, { type: 'put', key: 'e!z\u000000000000', value: randomBytes(60) }]));
      const s = await Cryptstore.open(dir, pass());
      try {
        expect(await s.delete('b', 1)).to.deep.equal({ versions: [1], damaged: 0 });
        expect(await s.delete('z')).to.deep.equal({ versions: [], damaged: 1 });
        expect((await s.put('z', utf8('first'))).version).to.equal(1);
        expect(await s.delete('b')).to.deep.equal({ versions: [], damaged: 1 });
        expect((await s.put('b', utf8('next'))).version).to.equal(2);
        expect((await s.verify()).problems).to.deep.equal([]);
      } finally {
        await s.close();
      }
    });

    it('deletes a damaged version, and a later put numbers past the versions it could read', async () => {
      await withRaw(dir, async (db) => {
        const k = (await entryKeys(db)).find((x) => x.startsWith('e!b'))!;
        const v = new Uint8Array((await db.get(k))!);
        v[20]! ^= 1;
        await db.put(k, v);
      });
      const s = await Cryptstore.open(dir, pass());
      try {
        await rejects(s.put('b', utf8('x')), 'INTEGRITY');
        expect(await s.delete('b', 1)).to.deep.equal({ versions: [1], damaged: 0 });
        expect((await s.put('b', utf8('x'))).version).to.equal(1);
      } finally {
        await s.close();
      }
    });

    it('names a record it cannot read by its key cut short: a foreign key of any length gives a report of bounded size', async () => {
      const long = `e!${'A'.repeat(100_000)}\u000000000001`;
      await withRaw(dir, (db) => db.put(long, new Uint8Array(40)));
      const s = await Cryptstore.open(dir, pass());
      try {
        const { problems } = await s.verify();
        expect(problems).to.have.length(1);
        expect(problems[0]!.key).to.match(/^"e!A+\.\.\." \(100011 characters\)$/);
        expect(problems[0]!.key.length).to.be.below(300);
      } finally {
        await s.close();
      }
    });

    it('detects a damaged high-water mark when the next put needs it', async () => {
      await withRaw(dir, async (db) => {
        const v = new Uint8Array((await db.get('h!c'))!);
        v[v.length - 1]! ^= 0x80;
        await db.put('h!c', v);
      });
      const s = await Cryptstore.open(dir, pass());
      try {
        await rejects(s.put('c', utf8('x')), 'INTEGRITY');
        expect((await s.verify()).problems).to.have.length(1);
      } finally {
        await s.close();
      }
    });

    it('refuses damaged metadata (salt or wrapped key) as WRONG_KEY and garbage metadata as INTEGRITY', async () => {
      let meta = new Uint8Array();
      await withRaw(dir, async (db) => {
        meta = new Uint8Array((await db.get('!meta'))!);
      });
      const flipped = new Uint8Array(meta);
      flipped[flipped.length - 3]! ^= 0x01; // inside the wrapped data key
      await withRaw(dir, (db) => db.put('!meta', flipped));
      await rejects(Cryptstore.open(dir, pass()), 'WRONG_KEY');
      await withRaw(dir, (db) => db.put('!meta', new Uint8Array([0xff, 0xff, 0xff])));
      await rejects(Cryptstore.open(dir, pass()), 'INTEGRITY');
    });

    it('refuses metadata whose store id, scrypt salt or scrypt N (to another it takes) was changed, as WRONG_KEY: every field but the creation time is bound to the data key', async () => {
      const original = await (async () => {
        let m = new Uint8Array();
        await withRaw(dir, async (db) => {
          m = new Uint8Array((await db.get('!meta'))!);
        });
        return m;
      })();
      const edits: [string, (m: CryptstoreMetadata) => void][] = [
        ['store id', (m) => void (m.storeId![0]! ^= 1)],
        ['salt', (m) => void (m.protection!.scrypt!.salt![0]! ^= 1)],
        ['N', (m) => void (m.protection!.scrypt!.logN = 11)],
      ];
      for (const [what, edit] of edits) {
        const m = decode<CryptstoreMetadata>('cryptstore_metadata', new Uint8Array(original)); // its fields are views of what it decodes
        edit(m);
        await withRaw(dir, (db) => db.put('!meta', encode('cryptstore_metadata', m)));
        const e = await rejects(Cryptstore.open(dir, pass()), 'WRONG_KEY');
        expect(e.message, what).to.contain('or damaged metadata');
      }
      await withRaw(dir, (db) => db.put('!meta', original));
      await (await Cryptstore.open(dir, pass())).close();
    });

    // README, "Threat model": what the store does not detect, so that a change that detects it says so there.
    it('opens an older copy of itself, and one whose creation time was changed to another, without complaint: it detects modification, not rollback', async () => {
      const older = join(tmp.dir, 'older');
      await fs.cp(dir, older, { recursive: true });
      const s = await Cryptstore.open(dir, pass());
      await s.put('a', utf8('alpha, version 2'));
      await s.close();
      await fs.rm(dir, { recursive: true });
      await fs.cp(older, dir, { recursive: true });
      await withRaw(dir, async (db) => {
        const m = decode<CryptstoreMetadata>('cryptstore_metadata', (await db.get('!meta'))!);
        m.created = '2001-02-03T04:05:06Z';
        await db.put('!meta', encode('cryptstore_metadata', m));
      });
      const back = await Cryptstore.open(dir, pass());
      try {
        expect(back.info.created).to.equal('2001-02-03T04:05:06Z');
        const latest = await back.get('a');
        expect([latest.version, Buffer.from(latest.blob).toString()]).to.deep.equal([1, 'alpha']);
        expect((await back.verify()).problems).to.deep.equal([]);
      } finally {
        await back.close();
      }
    });

    it('refuses a store of another format version (STORE_FORMAT), naming both, before deriving its key: format 1 is the one it reads', async () => {
      let original = new Uint8Array();
      await withRaw(dir, async (db) => {
        original = new Uint8Array((await db.get('!meta'))!);
      });
      expect(decode<CryptstoreMetadata>('cryptstore_metadata', original).formatVersion).to.equal(1); // README, "The cryptstore"
      const m = decode<CryptstoreMetadata>('cryptstore_metadata', new Uint8Array(original));
      m.formatVersion = 2;
      await withRaw(dir, (db) => db.put('!meta', encode('cryptstore_metadata', m)));
      // A protector that derives nothing: the format is refused before the key is asked for.
      const refusing = Object.assign(pass(), { derive: () => expect.fail('derived a key for a store of another format') });
      const e = await rejects(Cryptstore.open(dir, refusing), 'STORE_FORMAT');
      expect(e.message).to.contain('has format 2; this program reads format 1');
      await withRaw(dir, (db) => db.put('!meta', original));
      await (await Cryptstore.open(dir, pass())).close();
    });

    it('refuses metadata whose creation time is not an RFC 3339 time (print-store writes it as it is) as INTEGRITY', async () => {
      let meta = new Uint8Array();
      await withRaw(dir, async (db) => {
        meta = new Uint8Array((await db.get('!meta'))!);
      });
      const m = decode<CryptstoreMetadata>('cryptstore_metadata', meta);
      m.created = '\u001b]0;owned\u0007\u001b[2J';
      await withRaw(dir, (db) => db.put('!meta', encode('cryptstore_metadata', m)));
      const e = await rejects(Cryptstore.open(dir, pass()), 'INTEGRITY');
      expect(e.message).to.contain('damaged').and.contain('"\\u001b]0;owned\\u0007\\u001b[2J"').and.not.contain('\u001b');
    });

    it('refuses, before deriving anything, scrypt parameters this suite never writes (a 16 GiB derivation otherwise)', async () => {
      let meta = new Uint8Array();
      await withRaw(dir, async (db) => {
        meta = new Uint8Array((await db.get('!meta'))!);
      });
      const m = decode<CryptstoreMetadata>('cryptstore_metadata', meta);
      m.protection!.scrypt = { ...m.protection!.scrypt!, logN: 22, r: 32, p: 16 };
      await withRaw(dir, (db) => db.put('!meta', encode('cryptstore_metadata', m)));
      // INTEGRITY is the parameters' check: a derivation would have failed otherwise (out of
      // memory, or WRONG_KEY), so the code shows nothing was derived, with no clock in the test.
      await rejects(Cryptstore.open(dir, pass()), 'INTEGRITY');
      // A bundle the same way.
      const s = await Cryptstore.create(join(tmp.dir, 'other'), pass());
      try {
        await s.put('x', utf8('x'), { exportable: true });
        const { bundle } = await exportStore(s, utf8('bundle pass'), CHEAP);
        const b = decode<CryptstoreBundle>('cryptstore_bundle', bundle);
        b.scrypt = { ...b.scrypt!, r: 32, p: 16, logN: 22 };
        await rejects(importStore(s, encode('cryptstore_bundle', b), utf8('bundle pass')), 'INTEGRITY');
      } finally {
        await s.close();
      }
    });

    it('refuses scrypt parameters it accepts but whose derivation would take more than half the memory this process may have (UNSUPPORTED), before deriving', async () => {
      const limit = process.constrainedMemory;
      // A machine (or control group) of 1 GiB: N = 2^20 with r = 8 needs 1 GiB, N = 2^17 128 MiB.
      process.constrainedMemory = () => 1024 * 1024 * 1024;
      try {
        let meta = new Uint8Array();
        await withRaw(dir, async (db) => {
          meta = new Uint8Array((await db.get('!meta'))!);
        });
        const m = decode<CryptstoreMetadata>('cryptstore_metadata', meta);
        m.protection!.scrypt = { ...m.protection!.scrypt!, logN: 20 };
        await withRaw(dir, (db) => db.put('!meta', encode('cryptstore_metadata', m)));
        // UNSUPPORTED, with the memory check's words, is the refusal before deriving: a derivation
        // under the changed N would have ended in WRONG_KEY (this machine has the memory), so the
        // code shows nothing was derived, with no clock in the test (a timed bound failed on CI).
        const e = await rejects(Cryptstore.open(dir, pass()), 'UNSUPPORTED');
        expect(e.message).to.equal('deriving the key of the cryptstore from its passphrase takes 1024 MiB (scrypt N = 2^20, r = 8, p = 1), more than half of the 1024 MiB this process may have: refused rather than running the machine out of memory');
        const s = await Cryptstore.create(join(tmp.dir, 'other'), pass());
        try {
          await s.put('x', utf8('x'), { exportable: true });
          const { bundle } = await exportStore(s, utf8('bundle pass'), { logN: 17, r: 8, p: 1 }); // 128 MiB: taken
          expect(await importStore(s, bundle, utf8('bundle pass'), true)).to.have.length(1);
          const b = decode<CryptstoreBundle>('cryptstore_bundle', bundle);
          b.scrypt = { ...b.scrypt!, logN: 20 };
          const e2 = await rejects(importStore(s, encode('cryptstore_bundle', b), utf8('bundle pass')), 'UNSUPPORTED');
          expect(e2.message).to.match(/^deriving the key of the bundle from its passphrase takes 1024 MiB/);
        } finally {
          await s.close();
        }
      } finally {
        process.constrainedMemory = limit;
      }
    });
  });

  it('counts as the memory it may have the machine\'s, or its control group\'s limit where lower (what a derivation past half of is refused), and N = 2^22 as 4 GiB', () => {
    const limit = process.constrainedMemory;
    const GiB = 1024 * 1024 * 1024;
    try {
      const under = (cgroup: number | undefined) => {
        process.constrainedMemory = () => cgroup as number;
        return memoryAvailable();
      };
      expect([under(0), under(undefined), under(totalmem() * 2), under(GiB)]).to.deep.equal([totalmem(), totalmem(), totalmem(), Math.min(GiB, totalmem())]);
    } finally {
      process.constrainedMemory = limit;
    }
    expect(Math.round(scryptMemory({ logN: 22, r: 8, p: 1 }) / GiB)).to.equal(4);
  });

  describe('export, import and rekey', () => {
    it('carries exactly the exportable items with their versions into a new store', async () => {
      const s = await Cryptstore.create(dir, pass());
      await s.put('shared', utf8('shared-secret-1'), { exportable: true });
      await s.put('shared', utf8('s2'), { exportable: true });
      await s.put('private', utf8('p1'));
      await s.put('mixed', utf8('m1'));
      const cert = new Uint8Array(readFileSync(join(VECTORS, 'certifier-original', 'policy_cert_file.datica')));
      await s.put('mixed', cert, { exportable: true, type: 'X509-der-cert' });
      const { bundle, entries } = await exportStore(s, utf8('bundle pass'), CHEAP);
      // A value long enough that the ciphertext cannot hold it by chance (two bytes could).
      expect(entries.map((e) => `${e.tag}@${e.version}`)).to.deep.equal(['mixed@2', 'shared@1', 'shared@2']);
      expect(Buffer.from(bundle).includes(Buffer.from('shared-secret-1'))).to.equal(false);
      await s.close();

      const other = await Cryptstore.create(join(tmp.dir, 'other'), pass('other'));
      const imported = await importStore(other, bundle, utf8('bundle pass'));
      expect(imported).to.have.length(3);
      const list = await other.list();
      expect(list.map((e) => `${e.tag}@${e.version}:${e.type}:${e.exportable}`)).to.deep.equal([
        'mixed@2:X509-der-cert:true', 'shared@1:binary-blob:true', 'shared@2:binary-blob:true',
      ]);
      expect(Buffer.from((await other.get('shared', 1)).blob).toString()).to.equal('shared-secret-1');
      expect((await other.put('mixed', utf8('m3'))).version).to.equal(3);

      // A second import clashes and writes nothing; --force replaces.
      await other.delete('shared', 1);
      const e = await rejects(importStore(other, bundle, utf8('bundle pass')), 'ALREADY_EXISTS');
      expect(e.message).to.contain('"shared" v2');
      await rejects(other.get('shared', 1), 'NOT_FOUND');
      await importStore(other, bundle, utf8('bundle pass'), true);
      expect(Buffer.from((await other.get('shared', 1)).blob).toString()).to.equal('shared-secret-1');
      await other.close();
    });

    it('export decrypts each record once, a non-exportable one included (its value wiped at once), and no other', async () => {
      const s = await Cryptstore.create(dir, pass());
      try {
        await s.put('shared', utf8('s1'), { exportable: true });
        await s.put('shared', utf8('s2'), { exportable: true });
        await s.put('private', utf8('p1'));
        await s.put('other', utf8('o1'), { exportable: true });
        const opened: string[] = [];
        const internals = s as unknown as { openEntry: (tag: string, version: number, raw: Uint8Array) => { tag: string; exportable: boolean; blob: Uint8Array } };
        const openEntry = internals.openEntry.bind(s);
        const privateValues: Uint8Array[] = [];
        internals.openEntry = (tag, version, raw) => {
          opened.push(`${tag}@${version}`);
          const e = openEntry(tag, version, raw);
          if (!e.exportable) privateValues.push(e.blob);
          return e;
        };
        const all = await exportStore(s, utf8('bundle pass'), CHEAP);
        expect(all.entries.map((e) => `${e.tag}@${e.version}`)).to.deep.equal(['other@1', 'shared@1', 'shared@2']);
        expect(opened.sort()).to.deep.equal(['other@1', 'private@1', 'shared@1', 'shared@2']);
        expect(privateValues.every((b) => b.every((x) => x === 0))).to.equal(true);
        opened.length = 0;
        const some = await exportStore(s, utf8('bundle pass'), CHEAP, ['shared']);
        expect(some.entries.map((e) => `${e.tag}@${e.version}`)).to.deep.equal(['shared@1', 'shared@2']);
        expect(opened).to.have.length(4);
        const back = await openBundle(some.bundle, utf8('bundle pass'));
        expect(back.map((e) => Buffer.from(e.blob).toString())).to.deep.equal(['s1', 's2']);
      } finally {
        await s.close();
      }
    });

    it('never gives a deleted version number to imported bytes without --force, and raises the mark past what it imports', async () => {
      const s = await Cryptstore.create(dir, pass());
      try {
        await s.put('t', utf8('one'), { exportable: true });
        await s.put('t', utf8('two'), { exportable: true });
        const other = await Cryptstore.create(join(tmp.dir, 'src'), pass());
        await other.importEntries([{ tag: 't', type: 'binary-blob', version: 2, timeEntered: new Date().toISOString(), blob: utf8('NOT-two'), exportable: true }]);
        await other.put('t', utf8('five?'), { exportable: true }); // v3 there
        const { bundle } = await exportStore(other, utf8('bundle pass'), CHEAP);
        await other.close();

        await s.delete('t', 2);
        const e = await rejects(importStore(s, bundle, utf8('bundle pass')), 'ALREADY_EXISTS');
        expect(e.message).to.contain('"t" v2 is not in this store but at or below the highest version it has used');
        await rejects(s.get('t', 2), 'NOT_FOUND');
        await importStore(s, bundle, utf8('bundle pass'), true);
        expect(Buffer.from((await s.get('t', 3)).blob).toString()).to.equal('five?');
        // The mark follows the import: deleting what came in does not free its numbers.
        await s.delete('t', 3);
        expect((await s.put('t', utf8('next'))).version).to.equal(4);
      } finally {
        await s.close();
      }
    });

    it('keeps a deleted version used when a forced import brings back only older versions, across reopening', async () => {
      const bundle = await bundleOf(join(tmp.dir, 'src'), [['t', 'one']]);
      let s = await Cryptstore.create(dir, pass());
      try {
        for (const v of ['one', 'two', 'three']) await s.put('t', utf8(v));
        await s.delete('t', 3);
        await importStore(s, bundle, utf8('bundle pass'), true); // replaces v1
        await s.close();
        s = await Cryptstore.open(dir, pass());
        expect((await s.put('t', utf8('next'))).version).to.equal(4);
      } finally {
        await s.close();
      }
    });

    it('refuses two bundles written one after another (cat a b > both) with INTEGRITY, importing nothing: read as one message, the second replaced the first, whose items went unimported without a word', async () => {
      const first = await bundleOf(join(tmp.dir, 'a'), [['from-a', 'A']]);
      const second = await bundleOf(join(tmp.dir, 'b'), [['from-b', 'B']]);
      const s = await Cryptstore.create(dir, pass());
      try {
        for (const both of [Buffer.concat([first, second]), Buffer.concat([first, first])]) {
          const e = await rejects(importStore(s, both, utf8('bundle pass')), 'INTEGRITY');
          expect(e.message).to.contain('more than one bundle');
        }
        expect(await s.list()).to.deep.equal([]);
        // Each on its own is taken.
        for (const one of [first, second]) await importStore(s, one, utf8('bundle pass'));
        expect((await s.list()).map((e) => e.tag)).to.deep.equal(['from-a', 'from-b']);
      } finally {
        await s.close();
      }
    });

    it('refuses to import a guarded tag without force, naming it escaped', async () => {
      const s = await Cryptstore.create(dir, pass());
      try {
        await s.put('x\u200e-guarded', utf8('1'), { exportable: true });
        const { bundle } = await exportStore(s, utf8('bundle pass'), CHEAP);
        const guarded = { is: (t: string) => t.endsWith('-guarded'), what: 'where it is guarded' };
        const e = await rejects(importStore(s, bundle, utf8('bundle pass'), false, { guarded }), 'DENIED');
        expect(e.message).to.equal('the bundle holds "x\\u200e-guarded", where it is guarded; nothing was imported (--force imports it)');
      } finally {
        await s.close();
      }
    });

    it('refuses to import, without force, a tag new to the store that would display as another, as put-item refuses to make one', async () => {
      // Made through the library, which does not apply the rule on new names (as a store made before it).
      const bundle = await bundleOf(join(tmp.dir, 'src'), ['cafe\u0301', 'disk\u200b-key', 'plain'].map((tag) => [tag, 'v']));
      const s = await Cryptstore.create(dir, pass());
      try {
        await s.put('cafe\u0301', utf8('held before')); // a name the store holds already gets its versions
        const e = await rejects(importStore(s, bundle, utf8('bundle pass')), 'INVALID_INPUT');
        expect(e.message).to.match(/^the bundle holds "disk\\u200b-key", a tag new to this store that would display as another name \(.*\); nothing was imported \(--force imports it\)$/);
        expect((await s.list()).map((i) => `${i.tag}@${i.version}`)).to.deep.equal(['cafe\u0301@1']);
        expect((await importStore(s, bundle, utf8('bundle pass'), true)).map((i) => i.tag)).to.deep.equal(['cafe\u0301', 'disk\u200b-key', 'plain']);
      } finally {
        await s.close();
      }
    });

    it('exports only the tags asked for, and refuses a tag with no exportable item', async () => {
      const s = await Cryptstore.create(dir, pass());
      try {
        await s.put('one', utf8('1'), { exportable: true });
        await s.put('two', utf8('2'), { exportable: true });
        await s.put('kept', utf8('k'));
        const { entries } = await exportStore(s, utf8('bundle pass'), CHEAP, ['two']);
        expect(entries.map((e) => e.tag)).to.deep.equal(['two']);
        const e = await rejects(exportStore(s, utf8('bundle pass'), CHEAP, ['two', 'kept', 'absent']), 'INVALID_INPUT');
        expect(e.message).to.contain('"kept", "absent"');
        // Which of them is there but not exportable, and what makes an item exportable.
        expect(e.message).to.equal('no exportable item is tagged "kept", "absent": "kept" is not exportable (an item is exportable only if it was stored with --exportable); no item is tagged "absent"');
      } finally {
        await s.close();
      }
    });

    it('refuses to export a bundle larger than import reads (MAX_BUNDLE_BYTES), reading no value past that size', async () => {
      const s = await Cryptstore.create(dir, new KeyFileProtector(randomBytes(32)), { durable: false });
      try {
        const blob = new Uint8Array(MAX_BLOB_BYTES);
        for (let i = 0; i < MAX_BUNDLE_BYTES / MAX_BLOB_BYTES; i++) await s.put(`big${i}`, blob, { exportable: true });
        const e = await rejects(exportStore(s, utf8('bundle pass'), CHEAP), 'INVALID_INPUT');
        expect(e.message).to.contain('--tag');
        const { bundle } = await exportStore(s, utf8('bundle pass'), CHEAP, ['big0', 'big1']);
        expect(bundle.length).to.be.below(MAX_BUNDLE_BYTES);
      } finally {
        await s.close();
      }
    });

    it('refuses a bundle of more item versions than export writes (MAX_BUNDLE_ENTRIES) before decoding them: minutes and gigabytes to import otherwise', async () => {
      const now = new Date().toISOString();
      const tiny = (n: number) => Array.from({ length: n }, (_, i) => ({ tag: `t${i}`, version: 1, type: 'binary-blob' as const, timeEntered: now, blob: utf8('v'), exportable: true, size: 1 }));
      const most = await sealBundle(tiny(MAX_BUNDLE_ENTRIES), utf8('bundle pass'), CHEAP);
      expect(await openBundle(most, utf8('bundle pass'))).to.have.length(MAX_BUNDLE_ENTRIES);
      const over = await sealBundle(tiny(MAX_BUNDLE_ENTRIES + 1), utf8('bundle pass'), CHEAP);
      expect(over.length).to.be.below(MAX_BUNDLE_BYTES / 16);
      const e = await rejects(openBundle(over, utf8('bundle pass')), 'INVALID_INPUT');
      expect(e.message).to.equal(`the bundle holds ${MAX_BUNDLE_ENTRIES + 1} item versions, and import reads at most ${MAX_BUNDLE_ENTRIES} (no bundle export writes holds more): nothing was imported`);
    });

    it('refuses a bundle entry whose time is not an RFC 3339 time: list-items writes it as it is', async () => {
      const at = (timeEntered: string) => [{ tag: 't', version: 1, type: 'binary-blob' as const, timeEntered, blob: utf8('v'), exportable: true, size: 1 }];
      const ok = await sealBundle(at('2026-12-06T16:00:00.000Z'), utf8('bundle pass'), CHEAP);
      expect((await openBundle(ok, utf8('bundle pass')))[0]!.timeEntered).to.equal('2026-12-06T16:00:00.000Z');
      const odd = await sealBundle(at('\u001b[2J\u001b]0;owned\u0007'), utf8('bundle pass'), CHEAP);
      const e = await rejects(openBundle(odd, utf8('bundle pass')), 'BAD_FIELD');
      expect(e.message).to.equal('invalid bundle entry 0: time_entered "\\u001b[2J\\u001b]0;owned\\u0007" is not an RFC 3339 time');
    });

    it('refuses a bundle whose X509-der-cert entry holds no DER certificate, as put-item and provision refuse to keep one', async () => {
      const now = new Date().toISOString();
      const cert = new Uint8Array(readFileSync(join(VECTORS, 'certifier-original', 'policy_cert_file.datica')));
      const entry = (tag: string, blob: Uint8Array) => ({ tag, version: 1, type: 'X509-der-cert' as const, timeEntered: now, blob, exportable: true, size: blob.length });
      expect(await openBundle(await sealBundle([entry('good', cert)], utf8('bundle pass'), CHEAP), utf8('bundle pass'))).to.have.length(1);
      for (const blob of [utf8('not a certificate'), utf8(`-----BEGIN CERTIFICATE-----\n${Buffer.from(cert).toString('base64')}\n-----END CERTIFICATE-----\n`)]) {
        const bundle = await sealBundle([entry('good', cert), entry('odd', blob)], utf8('bundle pass'), CHEAP);
        const e = await rejects(openBundle(bundle, utf8('bundle pass')), 'BAD_CERTIFICATE');
        expect(e.message).to.match(/^bundle entry 1 \("odd" version 1\) is an X509-der-cert item that holds no DER certificate \(.+\)$/);
      }
    });

    it('refuses a wrong bundle passphrase with WRONG_KEY and a damaged bundle with an integrity code', async () => {
      const s = await Cryptstore.create(dir, pass());
      await s.put('x', utf8('1'), { exportable: true });
      const { bundle } = await exportStore(s, utf8('right'), CHEAP);
      await rejects(importStore(s, bundle, utf8('wrong')), 'WRONG_KEY');
      const damaged = new Uint8Array(bundle);
      damaged[damaged.length - 1]! ^= 1;
      await rejects(importStore(s, damaged, utf8('right')), 'WRONG_KEY');
      await rejects(importStore(s, utf8('not a bundle at all'), utf8('right')), 'INTEGRITY');
      await s.close();
    });

    it('rekeys to a new passphrase, then to a key file, without touching the items', async () => {
      const s = await Cryptstore.create(dir, pass('old'));
      await s.put('k', utf8('value'));
      await s.rekey(pass('new'));
      await s.close();
      await rejects(Cryptstore.open(dir, pass('old')), 'WRONG_KEY');
      const s2 = await Cryptstore.open(dir, pass('new'));
      const key = randomBytes(32);
      await s2.rekey(new KeyFileProtector(key));
      await s2.close();
      const s3 = await Cryptstore.open(dir, new KeyFileProtector(key));
      expect(Buffer.from((await s3.get('k')).blob).toString()).to.equal('value');
      await s3.close();
    });

    it('leaves in the store\'s files no copy of the data key wrapped for the old passphrase, which would open every item, later ones too', async () => {
      let s = await Cryptstore.create(dir, pass('old'));
      await s.put('k', utf8('value'));
      await s.close();
      // Opened again, LevelDB moves its log (the metadata with it) into a table, which the rekey's write does not touch.
      await (await Cryptstore.open(dir, pass('old'))).close();
      let old: Uint8Array | undefined;
      await withRaw(dir, async (db) => void (old = await db.get('!meta')));
      s = await Cryptstore.open(dir, pass('old'));
      await s.rekey(pass('new'));
      await s.put('later', utf8('after the rekey'));
      await s.close();
      expect(filesHolding(dir, old!), 'files holding the old metadata').to.deep.equal([]);
    });

    it('leaves in the store\'s files no copy of a version deleted, which the store\'s key would still open', async () => {
      let s = await Cryptstore.create(dir, pass());
      await s.put('k', utf8('deleted value'));
      await s.put('k', utf8('kept value'));
      await s.put('other', utf8('other value'));
      await s.close();
      await (await Cryptstore.open(dir, pass())).close(); // the log moved into a table, as above
      const sealed: Uint8Array[] = [];
      await withRaw(dir, async (db) => void sealed.push((await db.get('e!k\u000000000001'))!, (await db.get('e!k\u000000000002'))!));
      s = await Cryptstore.open(dir, pass());
      await s.delete('k', 1);
      await s.close();
      expect(filesHolding(dir, sealed[0]!), 'files holding the version deleted').to.deep.equal([]);
      expect(filesHolding(dir, sealed[1]!), 'the version kept is still there').not.to.deep.equal([]);
      s = await Cryptstore.open(dir, pass());
      await s.delete('k');
      await s.close();
      expect(filesHolding(dir, sealed[1]!), 'files holding the tag deleted').to.deep.equal([]);
    });

    it('says a delete or rekey stands when the compaction after it fails (a full disk): FILE_ERROR, naming what the files may still hold', async () => {
      const s = await Cryptstore.create(dir, pass('old'));
      await s.put('k', utf8('value'));
      const full = Object.assign(new Error('compaction failed'), { cause: { message: `IO error: ${dir}/000009.ldb: No space left on device` } });
      (s as unknown as { db: { compactRange: () => Promise<void> } }).db.compactRange = () => Promise.reject(full);
      const deleted = await rejects(s.delete('k'), 'FILE_ERROR');
      expect(deleted.message).to.match(/^"k" version 1 was deleted, but LevelDB's files may still hold what was deleted, sealed as it was, which could not be compacted away \(.*the disk is full.*\): a later compaction drops it$/);
      const rekeyed = await rejects(s.rekey(pass('new')), 'FILE_ERROR');
      expect(rekeyed.message).to.contain('the store was rekeyed: it now opens with a passphrase only, but LevelDB\'s files may still hold the data key wrapped for the old one');
      await s.close();
      const again = await Cryptstore.open(dir, pass('new'));
      await rejects(again.get('k'), 'NOT_FOUND');
      await again.close();
    });

    it('leaves in the store\'s files no copy of a version a forced import replaced', async () => {
      const bundle = await bundleOf(join(tmp.dir, 'source'), [['k', 'imported value']]);
      let s = await Cryptstore.create(dir, pass());
      await s.put('k', utf8('replaced value'));
      await s.close();
      await (await Cryptstore.open(dir, pass())).close(); // the log moved into a table, as above
      let sealed: Uint8Array | undefined;
      await withRaw(dir, async (db) => void (sealed = await db.get('e!k\u000000000001')));
      s = await Cryptstore.open(dir, pass());
      await importStore(s, bundle, utf8('bundle pass'), true);
      expect(Buffer.from((await s.get('k', 1)).blob).toString()).to.equal('imported value');
      await s.close();
      expect(filesHolding(dir, sealed!), 'files holding the version replaced').to.deep.equal([]);
    });
  });
});

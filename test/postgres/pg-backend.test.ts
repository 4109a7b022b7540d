// PgBackend against a throwaway PostgreSQL server: the backend contract (done-when 1), plus what
// only a shared database can get wrong: replicas starting at once, appends racing from two
// connection pools (two replicas), the storage-key binding, and an outage of the database.

import { expect } from 'chai';
import pg from 'pg';
import { accessSync, constants, existsSync, writeFileSync } from 'node:fs';
import { CertifierError } from '../../lib/errors/index.ts';
import { PgBackend, prefixEnd } from '../../lib/keyservice/pg-backend.ts';
import { SCHEMA_VERSION, searchPathNames } from '../../lib/keyservice/pg-schema.ts';
import { ReplicaIdLock, replicaLockKey } from '../../lib/keyservice/pg-replica-lock.ts';
import { KeyStore, MAX_KEY_VALUE_BYTES, storageKeyId } from '../../lib/keyservice/keystore.ts';
import { randomBytes, SEAL_OVERHEAD } from '../../lib/crypto/index.ts';
import { MAX_NAME_LENGTH, type KeyBackend } from '../../lib/keyservice/backend.ts';
import { recordFor, runBackendContract } from '../keyservice/backend-contract.ts';
import { findPgBin, PG_MISSING, PgServer } from './pg-server.ts';
import { PgProxy, pgMessage } from './pg-proxy.ts';
import { expectRows } from '../../lib/keyservice/pg-sockets.ts';
import { DELETE_LISTED } from '../../lib/keyservice/protocol.ts';

async function rejects(p: Promise<unknown>, ...codes: string[]): Promise<CertifierError> {
  try {
    await p;
  } catch (e) {
    expect(e, String(e)).to.be.instanceOf(CertifierError);
    expect(codes, (e as Error).message).to.include((e as CertifierError).code);
    return e as CertifierError;
  }
  throw new Error(`expected ${codes.join(' or ')}, but it resolved`);
}

describe('prefixEnd', () => {
  it('is the first string after every string with the prefix, in code point order', () => {
    expect(prefixEnd('')).to.equal(undefined);
    expect(prefixEnd('a/')).to.equal('a0');
    expect(prefixEnd('ab')).to.equal('ac');
    expect(prefixEnd('a\u{10ffff}')).to.equal('b');
    expect(prefixEnd('\u{10ffff}')).to.equal(undefined);
    expect(prefixEnd('x\ud7ff')).to.equal('x\ue000');
    expect(prefixEnd('\uffff')).to.equal('\u{10000}');
  });
});

describe('searchPathNames', () => {
  it('reads search_path as PostgreSQL does: quoted names as written, others in lower case, "$user" as the user', () => {
    const cases: [string, string[]][] = [
      ['"$user", public', ['keys', 'public']],
      ['$user,Public', ['keys', 'public']],
      ['"A,b" , "say ""hi""",x', ['A,b', 'say "hi"', 'x']],
      ['', []],
      // Only A-Z are folded (downcase_identifier, in a database of a multi-byte encoding), "$user" is
      // the user in any case, and a name is cut to 63 bytes (NAMEDATALEN - 1), whole characters.
      ['$USER, Élan, "$User"', ['keys', 'Élan', '$User']],
      [`${'A'.repeat(70)}, "${'é'.repeat(40)}"`, ['a'.repeat(63), 'é'.repeat(31)]],
    ];
    for (const [path, names] of cases) expect(searchPathNames(path, 'keys'), path).to.deep.equal(names);
  });
});

const bin = findPgBin();
if (!bin) {
  describe('PgBackend', () => {
    it(PG_MISSING, function () {
      this.skip();
    });
  });
} else {
  describe('PgBackend (throwaway PostgreSQL)', function () {
    let server: PgServer;
    let n = 0;
    const freshDb = () => server.createDatabase(`contract_${++n}`);
    /** A new database owned by a role the database allows 2 connections: its URL as that role, the role, and how many connections it has. */
    const limitedDb = async () => {
      const url = await freshDb();
      const db = `contract_${n}`;
      const role = `limited_${n}`;
      await server.psql('postgres', `CREATE ROLE ${role} LOGIN CONNECTION LIMIT 2; ALTER DATABASE ${db} OWNER TO ${role}`);
      const connections = async () => Number(await server.psql(db, `SELECT count(*) FROM pg_stat_activity WHERE usename = '${role}'`, ['-tA']));
      return { url: url.replace('postgres@', `${role}@`), role, db, connections };
    };
    /** 20 concurrent stores of names starting `prefix`, every one of which must succeed. */
    const storeAll = async (b: PgBackend, prefix: string) => {
      const stores = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => b.append(`${prefix}${i}`, (v) => recordFor(`${prefix}${i}`, v))));
      expect(stores.flatMap((s) => (s.status === 'rejected' ? [String(s.reason)] : []))).to.deep.equal([]);
    };
    const open = (url: string) => PgBackend.open({ url, poolSize: 20 });

    before(async () => {
      server = await PgServer.start(bin);
    });
    after(async () => server?.stop());

    runBackendContract('PgBackend', async () => {
      const url = await freshDb();
      const db = `contract_${n}`;
      let backend: KeyBackend = await open(url);
      return {
        backend,
        reopen: async () => {
          await backend.close();
          backend = await open(url);
          return backend;
        },
        tamperMark: async (name, high) => {
          await server.psql(db, high === undefined ? `DELETE FROM key_server_names WHERE name = '${name}'` : `UPDATE key_server_names SET high = ${high} WHERE name = '${name}'`);
          return backend;
        },
        cleanup: async () => backend.close(),
      };
    });

    describe('as the shared database of several replicas', () => {
      const opened: PgBackend[] = [];
      const track = async (p: Promise<PgBackend>) => {
        const b = await p;
        opened.push(b);
        return b;
      };
      afterEach(async () => {
        await Promise.all(opened.splice(0).map((b) => b.close()));
      });
      /** A KeyStore over a new database (its name `db`), with its storage key bound. */
      const keyStoreOnFreshDb = async () => {
        const url = await freshDb();
        const db = `contract_${n}`;
        const key = randomBytes(32);
        const b = await track(open(url));
        await b.bindStorageKey(storageKeyId(key));
        return { db, ks: new KeyStore(b, key) };
      };
      /** The pid of a session of `db` waiting for a lock, once there is one; '' if `answered()` comes true first. */
      const lockWaiter = async (db: string, answered: () => boolean): Promise<string> => {
        for (;;) {
          const pid = (await server.psql(db, "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'", ['-tA'])).trim();
          if (pid || answered()) return pid;
          await new Promise((r) => setTimeout(r, 20));
        }
      };

      it('creates the schema once when several replicas start at the same time, and opens it again', async () => {
        const url = await freshDb();
        await Promise.all(Array.from({ length: 6 }, () => track(open(url))));
        expect(await server.psql(`contract_${n}`, 'SELECT version FROM key_server_schema', ['-tA'])).to.equal('1\n');
        const tables = await server.psql(`contract_${n}`, "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'", ['-tA']);
        expect(tables.trim()).to.equal('key_server_meta,key_server_names,key_server_records,key_server_schema');
        await track(open(url));
      });

      it('names set-up mistakes (no such database, no such user, a bad setting) rather than calling them a bug or retryable', async () => {
        await rejects(open(server.url('no_such_db')), 'NOT_FOUND');
        const url = new URL(await freshDb());
        url.username = 'no_such_user';
        await rejects(open(url.toString()), 'DENIED');
        const bad = new URL(await freshDb());
        bad.searchParams.set('options', '-c statement_timeout=abc');
        await rejects(open(bad.toString()), 'INVALID_INPUT');
        bad.searchParams.set('options', '-c statement_timout=1000');
        expect((await rejects(open(bad.toString()), 'INVALID_INPUT')).message).to.contain('unrecognized configuration parameter');
      });

      it('names a user without USAGE on any schema of search_path DENIED, and a search_path of schemas that do not exist INVALID_INPUT', async () => {
        const url = new URL(await freshDb());
        await server.psql(`contract_${n}`, 'CREATE ROLE no_usage LOGIN; GRANT CREATE ON DATABASE contract_' + n + ' TO no_usage; REVOKE ALL ON SCHEMA public FROM PUBLIC');
        url.username = 'no_usage';
        expect((await rejects(open(url.toString()), 'DENIED')).message).to.contain('"public"').and.contain('USAGE');
        url.searchParams.set('options', '-c search_path=no_such_schema');
        expect((await rejects(open(url.toString()), 'INVALID_INPUT')).message).to.contain('no such schema');
        // Named as PostgreSQL reads search_path (É is not folded), and the GRANT to give quotes it.
        await server.psql(`contract_${n}`, 'CREATE SCHEMA "Élan"');
        url.searchParams.set('options', '-c search_path=Élan');
        expect((await rejects(open(url.toString()), 'DENIED')).message).to.contain('("Élan": no USAGE').and.contain('GRANT USAGE, CREATE ON SCHEMA "Élan" TO no_usage');
      });

      it('hands out no connection whose session settings failed: the request fails, and the connection is dropped', async () => {
        const url = new URL(await freshDb());
        // Real settings under which the settings query waits: a serializable, read-only, deferrable
        // transaction waits for a snapshot until every serializable read-write one running has ended.
        url.searchParams.set('options', '-c default_transaction_isolation=serializable -c default_transaction_read_only=on -c default_transaction_deferrable=on');
        const writer = new pg.Client({ connectionString: server.url(`contract_${n}`) });
        await writer.connect();
        try {
          await writer.query('BEGIN ISOLATION LEVEL SERIALIZABLE; CREATE TABLE held (x int)');
          const e = await rejects(PgBackend.open({ url: url.toString(), queryTimeoutMs: 500 }), 'TIMEOUT');
          expect(e.message).to.contain('did not answer in time');
          expect(await server.psql(`contract_${n}`, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'key-server'", ['-tA'])).to.equal('0\n');
        } finally {
          await writer.end();
        }
      });

      it('refuses with STORE_FORMAT, creating nothing, tables whose key_server_schema was emptied', async () => {
        const url = await freshDb();
        const b = await open(url);
        await b.append('k', (v) => recordFor('k', v));
        await b.close();
        await server.psql(`contract_${n}`, 'DELETE FROM key_server_schema');
        const e = await rejects(open(url), 'STORE_FORMAT');
        expect(e.message).to.contain('key_server_schema records no schema version').and.contain('key_server_names, key_server_records, key_server_meta');
        expect(await server.psql(`contract_${n}`, 'SELECT count(*) FROM key_server_schema', ['-tA'])).to.equal('0\n');
        // One of the tables left is enough: nothing is created beside it.
        await server.psql(`contract_${n}`, 'DROP TABLE key_server_names, key_server_meta');
        expect((await rejects(open(url), 'STORE_FORMAT')).message).to.contain('key-server tables (key_server_records)');
        expect(await server.psql(`contract_${n}`, "SELECT count(*) FROM pg_class WHERE relname IN ('key_server_names', 'key_server_meta')", ['-tA'])).to.equal('0\n');
      });

      it("opens a deployment of its own in its own schema where another deployment's tables sit further along an explicit search_path (the role's or the URL's)", async () => {
        const url = await freshDb();
        const db = `contract_${n}`;
        const other = await open(url); // as postgres: its tables in public
        await other.append('theirs', (v) => recordFor('theirs', v));
        await other.close();
        const user = `tenant_${n}`;
        await server.psql('postgres', `CREATE ROLE ${user} LOGIN`);
        await server.psql(db, `CREATE SCHEMA ${user} AUTHORIZATION ${user}; CREATE SCHEMA second`);
        await server.psql(db, `ALTER ROLE ${user} SET search_path = ${user}, public`);
        const asTenant = new URL(url);
        asTenant.username = user;
        const inSecond = new URL(url);
        inSecond.searchParams.set('options', '-c search_path=second,public');
        for (const [mine, schema] of [[asTenant, user], [inSecond, 'second']] as const) {
          const b = await open(mine.toString());
          try {
            expect((await b.append('mine', (v) => recordFor('mine', v))).version).to.equal(1);
            expect(await b.get('theirs', 0)).to.equal(undefined);
          } finally {
            await b.close();
          }
          expect(await server.psql(db, `SELECT count(*) FROM ${schema}.key_server_records`, ['-tA'])).to.equal('1\n');
        }
      });

      it('refuses with STORE_FORMAT, creating nothing, a schema named after the user that appears in the default search_path before a deployment in public, which stays whole', async () => {
        const url = await freshDb();
        const db = `contract_${n}`;
        const b = await open(url);
        await b.append('kept', (v) => recordFor('kept', v));
        await b.close();
        await server.psql(db, 'CREATE SCHEMA postgres'); // search_path "$user", public: now first
        const e = await rejects(open(url), 'STORE_FORMAT');
        expect(e.message).to.contain('"public"').and.contain('"postgres"').and.contain('search_path=public');
        expect(await server.psql(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'postgres'", ['-tA'])).to.equal('0\n');
        // The same default written out (a configuration file, the database's or role's settings): the same refusal.
        await server.psql('postgres', `ALTER DATABASE ${db} SET search_path = "$user", public`);
        await rejects(open(url), 'STORE_FORMAT');
        await server.psql('postgres', `ALTER DATABASE ${db} RESET search_path`);
        const chosen = new URL(url);
        chosen.searchParams.set('options', '-c search_path=public');
        const again = await open(chosen.toString());
        try {
          expect((await again.get('kept', 0))?.version).to.equal(1);
          expect((await again.append('kept', (v) => recordFor('kept', v))).version).to.equal(2);
        } finally {
          await again.close();
        }
      });

      it('makes its tables in the first schema of search_path whatever its name holds (quotes, spaces, capitals, other scripts, commas, even ",pg_catalog,"), pg_catalog taken out only where it is a name of its own', async () => {
        for (const schema of ['My Keys', 'we"ird', 'ключи', 'x,pg_catalog,y', 'PG_CATALOG']) {
          const url = await freshDb();
          const db = `contract_${n}`;
          const ident = `"${schema.replace(/"/g, '""')}"`;
          await server.psql(db, `CREATE SCHEMA ${ident}`);
          await server.psql('postgres', `ALTER DATABASE ${db} SET search_path = ${ident}, pg_catalog, public`);
          const b = await track(open(url));
          await storeAll(b, 'n');
          expect((await b.get('n3', 0))?.version, schema).to.equal(1);
          const where = await server.psql(db, "SELECT string_agg(schemaname, '|') FROM pg_tables WHERE tablename = 'key_server_records'", ['-tA']);
          expect(where, schema).to.equal(`${schema}\n`);
        }
      });

      it('keeps to the schema its tables were in at start: key-server tables that appear in a schema earlier on search_path while it runs (one named after the user, as "$user", public has it) are never read or written', async () => {
        const url = await freshDb();
        const db = `contract_${n}`;
        const b = await track(open(url));
        await b.append('k', (v) => recordFor('k', v));
        await server.psql(db, 'CREATE SCHEMA postgres; CREATE TABLE postgres.key_server_records (LIKE public.key_server_records INCLUDING ALL)');
        expect((await b.get('k', 0))?.version, 'read from public').to.equal(1);
        // New connections as well as the one open.
        await storeAll(b, 'n');
        expect(await server.psql(db, 'SELECT count(*) FROM postgres.key_server_records', ['-tA'])).to.equal('0\n');
        expect(await server.psql(db, 'SELECT count(*) FROM public.key_server_records', ['-tA'])).to.equal('21\n');
      });

      it('refuses with INVALID_INPUT, creating nothing, a search_path whose first schema is the session\'s temporary one', async () => {
        const url = new URL(await freshDb());
        url.searchParams.set('options', '-c search_path=pg_temp,public');
        expect((await rejects(open(url.toString()), 'INVALID_INPUT')).message).to.contain('temporary schema');
        expect(await server.psql(`contract_${n}`, "SELECT count(*) FROM pg_class WHERE relname LIKE 'key_server%'", ['-tA'])).to.equal('0\n');
      });

      it('refuses a store past the last version number with INVALID_INPUT, whatever the mark says', async () => {
        const url = await freshDb();
        const b = await track(open(url));
        await server.psql(`contract_${n}`, "INSERT INTO key_server_records VALUES ('maxed', 2147483647, 'binary-blob', false, 'x', 1, '\\x01')");
        expect((await rejects(b.append('maxed', (v) => recordFor('maxed', v)), 'INVALID_INPUT')).message).to.contain('has used every version number');
        // A mark raised by hand to the largest bigint: the same refusal, not an overflow (INTERNAL).
        await server.psql(`contract_${n}`, "INSERT INTO key_server_names VALUES ('raised', 9223372036854775807)");
        expect((await rejects(b.append('raised', (v) => recordFor('raised', v)), 'INVALID_INPUT')).message).to.contain('has used every version number');
      });

      it('answers a delete of every version with the versions in order, however their rows lie in the table', async () => {
        const url = await freshDb();
        const b = await track(open(url));
        // Rows written out of order (by a restore, say), as the table then holds them.
        await server.psql(`contract_${n}`, `INSERT INTO key_server_records VALUES ${[3, 1, 2].map((v) => `('restored', ${v}, 'binary-blob', false, 'x', 1, '\\x01')`).join(', ')}`);
        expect(await b.delete('restored', 0)).to.deep.equal({ count: 3, versions: [1, 2, 3] });
      });

      it('refuses a database written by a newer key-server, and one not in UTF-8, holding no connection to it after', async () => {
        const url = await freshDb();
        const db = `contract_${n}`;
        await (await open(url)).close();
        // The very next schema version is as unknown as any later one.
        for (const version of [SCHEMA_VERSION + 1, 99]) {
          await server.psql(db, `UPDATE key_server_schema SET version = ${version}`);
          expect((await rejects(open(url), 'STORE_FORMAT')).message).to.contain(`schema version ${version}, newer`);
        }
        // A refused start leaves no pool behind: no session of key-server's stays (a moment after, once its backend has ended).
        const sessions = () => server.psql(db, `SELECT count(*) FROM pg_stat_activity WHERE datname = '${db}' AND application_name = 'key-server'`, ['-tA']);
        for (let i = 0; (await sessions()) !== '0\n' && i < 50; i++) await new Promise((r) => setTimeout(r, 50));
        expect(await sessions()).to.equal('0\n');
        await server.psql('postgres', "CREATE DATABASE ascii_db TEMPLATE template0 ENCODING 'SQL_ASCII'");
        await rejects(open(server.url('ascii_db')), 'STORE_FORMAT');
      });

      it('refuses with WRONG_KEY, and writes nothing, once another deployment\'s database, or one that records no storage key or holds no key-server tables at all, is swapped in behind its URL while it runs', async () => {
        const url = await freshDb();
        const mine = `contract_${n}`;
        const b = await track(open(url));
        await b.bindStorageKey('11'.repeat(16));
        await b.append('tm/a', (v) => recordFor('tm/a', v));
        const theirs = await track(open(await freshDb()));
        await theirs.bindStorageKey('22'.repeat(16));
        await theirs.close();
        const another = `contract_${n}`;
        await (await open(await freshDb())).close(); // key-server's tables, and no key bound
        const unbound = `contract_${n}`;
        const bare = (await freshDb(), `contract_${n}`);
        // The swap: the replica's connections are cut, and the pool reconnects to the new database.
        let swaps = 0;
        const swapIn = async (db: string) => {
          await server.psql('postgres', `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${mine}'`);
          await server.psql('postgres', `ALTER DATABASE ${mine} RENAME TO ${mine}_${++swaps}; ALTER DATABASE ${db} RENAME TO ${mine}`);
        };
        await swapIn(another);
        await rejects(b.append('tm/a', (v) => recordFor('tm/a', v)), 'WRONG_KEY');
        await rejects(b.get('tm/a', 0), 'WRONG_KEY');
        expect(await server.psql(mine, 'SELECT count(*) FROM key_server_records', ['-tA'])).to.equal('0\n');
        await swapIn(unbound);
        expect((await rejects(b.append('tm/a', (v) => recordFor('tm/a', v)), 'WRONG_KEY')).message).to.contain('records no storage key');
        expect(await server.psql(mine, 'SELECT count(*) FROM key_server_records', ['-tA'])).to.equal('0\n');
        await swapIn(bare);
        expect((await rejects(b.append('tm/a', (v) => recordFor('tm/a', v)), 'WRONG_KEY')).message).to.contain('records no storage key');
        await rejects(b.get('tm/a', 0), 'WRONG_KEY');
        expect(await server.psql(mine, "SELECT count(*) FROM pg_class WHERE relname LIKE 'key_server%'", ['-tA'])).to.equal('0\n');
      });

      it('refuses with STORE_FORMAT, writing nothing, once a newer key-server has upgraded the schema, or its version is emptied or dropped, while it runs, its one connection busy all along', async () => {
        const url = await freshDb();
        const db = `contract_${n}`;
        // One connection, never idle long enough to be replaced: it reads the version again every 200 ms.
        const b = await track(PgBackend.open({ url, poolSize: 1, recheckMs: 200 }));
        await b.bindStorageKey('11'.repeat(16));
        await b.append('up/a', (v) => recordFor('up/a', v));
        await server.psql(db, `UPDATE key_server_schema SET version = ${SCHEMA_VERSION + 1}`);
        const sleep = () => new Promise((r) => setTimeout(r, 300));
        await sleep();
        const e = await rejects(b.append('up/a', (v) => recordFor('up/a', v)), 'STORE_FORMAT');
        expect(e.message).to.contain(`upgraded to key-server schema version ${SCHEMA_VERSION + 1} while this replica (schema ${SCHEMA_VERSION}) ran`);
        expect(await server.psql(db, 'SELECT max(version) FROM key_server_records', ['-tA'])).to.equal('1\n');
        // The version emptied, then dropped (not the database replaced: its storage key is still the replica's).
        for (const sql of ['DELETE FROM key_server_schema', 'DROP TABLE key_server_schema']) {
          await server.psql(db, sql);
          await sleep();
          expect((await rejects(b.get('up/a', 0), 'STORE_FORMAT')).message, sql).to.contain('key_server_schema was emptied or dropped while this replica ran');
        }
      });

      it('refuses with STORE_FORMAT, writing nothing, once its tables are replaced by others under the same schema name while it runs (renamed away, and a replica of the same storage key started over an empty schema of that name), where it numbered versions again from 1', async () => {
        const url = `${await freshDb()}?options=-c%20search_path%3Dkeys`;
        const db = `contract_${n}`;
        await server.psql(db, 'CREATE SCHEMA keys');
        const b = await track(PgBackend.open({ url, poolSize: 1, recheckMs: 200 }));
        await b.bindStorageKey('11'.repeat(16));
        await b.append('sw/a', (v) => recordFor('sw/a', v));
        await server.psql(db, 'ALTER SCHEMA keys RENAME TO keys_old; CREATE SCHEMA keys');
        const fresh = await track(open(url));
        await fresh.bindStorageKey('11'.repeat(16));
        await new Promise((r) => setTimeout(r, 300));
        const e = await rejects(b.append('sw/a', (v) => recordFor('sw/a', v)), 'STORE_FORMAT');
        expect(e.message).to.contain('replaced while this replica ran');
        await rejects(b.get('sw/a', 0), 'STORE_FORMAT');
        expect(await server.psql(db, 'SELECT count(*) FROM keys.key_server_records', ['-tA'])).to.equal('0\n');
        expect(await server.psql(db, 'SELECT count(*) FROM keys_old.key_server_records', ['-tA'])).to.equal('1\n');
        // The tables it started on, back under their name: it serves them again.
        await server.psql(db, 'ALTER SCHEMA keys RENAME TO keys_new; ALTER SCHEMA keys_old RENAME TO keys');
        await new Promise((r) => setTimeout(r, 300));
        expect((await b.append('sw/a', (v) => recordFor('sw/a', v))).version).to.equal(2);
      });

      it('lets a delete of every version wait for an append of the name in flight on another replica, and delete its version too', async () => {
        const url = await freshDb();
        const db = `contract_${n}`;
        const b = await track(open(url));
        for (let i = 0; i < 3; i++) await b.append('k', (v) => recordFor('k', v));
        // Another replica's append expecting version 3, caught between taking the name's lock (as
        // NEXT_HIGH does) and committing its version 4.
        const other = new pg.Client({ connectionString: url });
        await other.connect();
        try {
          await other.query('BEGIN');
          await other.query("UPDATE key_server_names SET high = high + 1 WHERE name = 'k'");
          await other.query("INSERT INTO key_server_records VALUES ('k', 4, 'binary-blob', false, 'x', 1, '\\x01')");
          let answered = false;
          const deleted = b.delete('k', 0).finally(() => (answered = true));
          await lockWaiter(db, () => answered);
          await other.query('COMMIT');
          // Not [1, 2, 3] with version 4 left behind: the append saw 3 as the latest, so a delete
          // of every version ordered before it would have made the append's expectation false.
          expect(await deleted).to.deep.equal({ count: 4, versions: [1, 2, 3, 4] });
        } finally {
          await other.end();
        }
        expect(await b.get('k', 0)).to.equal(undefined);
        expect((await b.append('k', (v) => recordFor('k', v))).version).to.equal(5);
      });

      it('answers OUTCOME_UNKNOWN for a store or delete whose COMMIT was carried out but whose answer was lost, and the change is there', async () => {
        const b = await track(open(await freshDb()));
        for (const n of ['k', 'd', 'd']) await b.append(n, (v) => recordFor(n, v));
        const query = pg.Client.prototype.query;
        // The next COMMIT is carried out, and then the connection is lost before its answer arrives.
        const loseCommitAnswer = () => {
          pg.Client.prototype.query = async function (this: pg.Client, ...args: unknown[]) {
            const out = await (query as (...a: unknown[]) => Promise<unknown>).apply(this, args);
            // A statement is sent as its text, or as a config naming it (with its share of the request's time).
            if ((typeof args[0] === 'string' ? args[0] : (args[0] as { text?: unknown }).text) !== 'COMMIT') return out;
            pg.Client.prototype.query = query;
            throw new Error('Connection terminated unexpectedly');
          } as typeof query;
        };
        try {
          loseCommitAnswer();
          const stored = await rejects(b.append('k', (v) => recordFor('k', v)), 'OUTCOME_UNKNOWN');
          expect(stored.message).to.equal('the key database is unreachable: Connection terminated unexpectedly; "k" version 2 may or may not have been stored (the database may have committed it before its answer was lost)');
          expect(stored.details).to.deep.equal({ version: 2 });
          loseCommitAnswer();
          expect((await rejects(b.delete('d', 0), 'OUTCOME_UNKNOWN')).details).to.deep.equal({ version: 0, deleted: 2 });
        } finally {
          pg.Client.prototype.query = query;
        }
        expect((await b.get('k', 0))?.version).to.equal(2);
        expect(await b.get('d', 0)).to.equal(undefined);
      });

      it('answers TIMEOUT, not OUTCOME_UNKNOWN, for a store whose time ran out before its COMMIT was sent: nothing was stored', async () => {
        const b = await track(PgBackend.open({ url: await freshDb(), queryTimeoutMs: 1_000 }));
        await b.append('late', (v) => recordFor('late', v));
        const query = pg.Client.prototype.query;
        // The INSERT answered only once the request's time is up (as a database slow to answer in time).
        pg.Client.prototype.query = async function (this: pg.Client, ...args: unknown[]) {
          const sent = args[0] as { text?: string; query_timeout?: number };
          if (typeof sent !== 'object' || !sent.text?.startsWith('INSERT INTO key_server_records')) return (query as (...a: unknown[]) => unknown).apply(this, args);
          const out = await (query as (...a: unknown[]) => Promise<unknown>).call(this, { ...sent, query_timeout: undefined });
          await new Promise((r) => setTimeout(r, 1_100));
          return out;
        } as typeof query;
        try {
          expect((await rejects(b.append('late', (v) => recordFor('late', v)), 'TIMEOUT', 'OUTCOME_UNKNOWN')).code).to.equal('TIMEOUT');
        } finally {
          pg.Client.prototype.query = query;
        }
        expect((await b.get('late', 0))?.version).to.equal(1);
      });

      it('serves on, numbering with no gap, after a request timed out waiting for a name\'s lock held by a stalled replica, or had its connection cut while waiting', async () => {
        const url = await freshDb();
        const db = `contract_${n}`;
        // One connection, so the next request gets the one that failed, if it was kept.
        const b = await track(PgBackend.open({ url, poolSize: 1, queryTimeoutMs: 1_000 }));
        await b.append('k', (v) => recordFor('k', v));
        const stalled = new pg.Client({ connectionString: url });
        await stalled.connect();
        try {
          await stalled.query("BEGIN; SELECT high FROM key_server_names WHERE name = 'k' FOR UPDATE");
          await rejects(b.append('k', (v) => recordFor('k', v)), 'TIMEOUT');
          expect((await b.append('other', (v) => recordFor('other', v))).version).to.equal(1);
          // Cut (the database restarting it, say) while it waits: a retryable code, and no crash.
          let answered = false;
          const cut = rejects(b.append('k', (v) => recordFor('k', v)).finally(() => (answered = true)), 'UNREACHABLE', 'TIMEOUT');
          const pid = await lockWaiter(db, () => answered);
          if (pid) await server.psql('postgres', `SELECT pg_terminate_backend(${pid})`);
          await cut;
          await stalled.query('ROLLBACK');
        } finally {
          await stalled.end();
        }
        expect((await b.append('k', (v) => recordFor('k', v))).version).to.equal(2);
        expect((await b.list('k', { allVersions: true })).map((i) => i.version)).to.deep.equal([1, 2]);
      });

      it('reports the database failing under a running replica (closed, renamed, its login revoked) as UNREACHABLE with what PostgreSQL said, and serves again once it is back', async () => {
        const user = `ks_${n + 1}`;
        await server.psql('postgres', `CREATE ROLE ${user} LOGIN`);
        const url = new URL(await freshDb());
        const db = `contract_${n}`;
        await server.psql('postgres', `ALTER DATABASE ${db} OWNER TO ${user}`);
        url.username = user;
        const b = await track(open(url.toString()));
        await b.bindStorageKey('11'.repeat(16));
        await b.append('k', (v) => recordFor('k', v));
        const cut = () => server.psql('postgres', `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db}'`);
        const refused = async (what: RegExp) => expect((await rejects(b.append('k', (v) => recordFor('k', v)), 'UNREACHABLE')).message).to.match(what);
        await server.psql('postgres', `ALTER DATABASE ${db} ALLOW_CONNECTIONS false`);
        await cut();
        // A pooled connection just cut may be tried once before the pool notices (UNREACHABLE too,
        // "terminating connection"); after it, every try meets the closed database.
        await rejects(b.append('k', (v) => recordFor('k', v)), 'UNREACHABLE');
        await refused(/not currently accepting connections/);
        await server.psql('postgres', `ALTER DATABASE ${db} RENAME TO ${db}_away`);
        await refused(/does not exist/);
        await server.psql('postgres', `ALTER DATABASE ${db}_away RENAME TO ${db}; ALTER DATABASE ${db} ALLOW_CONNECTIONS true; ALTER ROLE ${user} NOLOGIN`);
        await refused(/not permitted to log in/);
        await server.psql('postgres', `ALTER ROLE ${user} LOGIN`);
        expect((await b.append('k', (v) => recordFor('k', v))).version).to.equal(2);
      });

      it('refuses with INTEGRITY, naming the record, a row key-server never writes (a name breaking the naming rule, a type, time or size it does not write), in a retrieve and in a list, and serves the rest', async () => {
        const { db, ks } = await keyStoreOnFreshDb();
        await ks.store('rows/good', Buffer.from('value'), { type: 'binary-blob', exportable: true });
        await ks.store('other', Buffer.from('value'), { type: 'binary-blob', exportable: true });
        // The time is not in the AAD (a genuine record opens), so it is checked on its own: a
        // terminal escape there would reach whoever is shown it.
        await server.psql(db, "UPDATE key_server_records SET time_entered = E'\\x1b[2J' WHERE name = 'rows/good'");
        expect((await rejects(ks.fetch('rows/good'), 'INTEGRITY')).message).to.contain('"rows/good" version 1').and.contain('time entered "\\u001b[2J"');
        await server.psql(db, "UPDATE key_server_records SET time_entered = '2026-12-06T10:00:00.000Z' WHERE name = 'rows/good'");
        expect(Buffer.from((await ks.fetch('rows/good')).value).toString()).to.equal('value');
        const rows: [string, string][] = [
          ["(E'rows/bad\\nname', 1, 'binary-blob', true, '2026-12-06T10:00:00Z', 1, '\\x00')", 'rows/bad\\nname'],
          ["('rows/type', 1, repeat('t', 2000), true, '2026-12-06T10:00:00Z', 1, '\\x00')", 'type "tttt'],
          ["('rows/time', 1, 'binary-blob', true, 'now', 1, '\\x00')", 'time entered "now"'],
          ["('rows/size', 1, 'binary-blob', true, '2026-12-06T10:00:00Z', 2000000000, '\\x00')", 'size 2000000000'],
          ["('rows/' || repeat('n', 200000), 1, 'binary-blob', true, '2026-12-06T10:00:00Z', 1, '\\x00')", 'its name is longer than 256 characters'],
        ];
        for (const [row, said] of rows) {
          await server.psql(db, `INSERT INTO key_server_records VALUES ${row}`);
          for (const all of [false, true]) expect((await rejects(ks.list('rows/', { allVersions: all }), 'INTEGRITY')).message, row).to.contain(said);
          await server.psql(db, "DELETE FROM key_server_records WHERE name LIKE 'rows/%' AND name <> 'rows/good'");
        }
        expect((await ks.list('')).map((i) => i.name)).to.deep.equal(['other', 'rows/good']);
      });

      it('refuses with INTEGRITY a record whose exportable column was changed to another type underneath (a list would call a record that is not exportable exportable)', async () => {
        const { db, ks } = await keyStoreOnFreshDb();
        await ks.store('kept/in', Buffer.from('value'), { type: 'binary-blob', exportable: false });
        await server.psql(db, 'ALTER TABLE key_server_records ALTER exportable TYPE text');
        for (const all of [false, true]) expect((await rejects(ks.list('kept/', { allVersions: all }), 'INTEGRITY')).message).to.contain('"kept/in" version 1 (exportable "false")');
        expect((await rejects(ks.fetch('kept/in'), 'INTEGRITY')).message).to.contain('exportable "false"');
      });

      it('refuses with STORE_FORMAT, not as a bug (INTERNAL), tables whose column was changed to another type underneath', async () => {
        const url = await freshDb();
        const b = await track(open(url));
        await b.append('k', (v) => recordFor('k', v));
        await server.psql(`contract_${n}`, 'ALTER TABLE key_server_records ALTER time_entered TYPE timestamptz USING time_entered::timestamptz');
        await rejects(b.get('k', 0), 'STORE_FORMAT');
        await rejects(b.list(''), 'STORE_FORMAT');
      });

      it('reads no more of a row than key-server writes: a ciphertext longer than any sealed value, or a name, type, time or storage key id of any length, is refused without being read whole', async () => {
        // A row of hundreds of MB written into the database would otherwise be read whole, and one
        // field over 512 MiB as text ends the process in the driver (a string too long for V8).
        const url = await freshDb();
        const db = `contract_${n}`;
        const b = await track(open(url));
        await b.bindStorageKey('11'.repeat(16));
        const sealedMax = MAX_KEY_VALUE_BYTES + SEAL_OVERHEAD;
        await server.psql(db, `INSERT INTO key_server_records VALUES ('big', 1, 'binary-blob', true, '2026-12-06T10:00:00Z', 1, decode(repeat('00', ${sealedMax + 1}), 'hex'))`);
        expect((await rejects(b.get('big', 0), 'INTEGRITY')).message).to.contain(`its ciphertext is ${sealedMax + 1} bytes`);
        expect((await rejects(b.get('big', 1), 'INTEGRITY')).message).to.contain(`its ciphertext is ${sealedMax + 1} bytes`);
        // Clipped, the type and the time are still nothing key-server writes (and refused as such by KeyStore).
        await server.psql(db, "INSERT INTO key_server_records VALUES ('long', 1, repeat('t', 1000000), true, repeat('9', 1000000), 1, '\\x00')");
        for (const r of [(await b.list('long'))[0]!, (await b.get('long', 1))!]) {
          expect(r.type.length).to.be.at.most(64);
          expect(r.timeEntered.length).to.be.at.most(64);
        }
        // A name the index takes (200,000 characters that compress): a page of 1,001 such was 200 MB read.
        await server.psql(db, "INSERT INTO key_server_records VALUES ('long/' || repeat('n', 200000), 1, 'binary-blob', true, '2026-12-06T10:00:00Z', 1, '\\x00')");
        for (const all of [false, true]) {
          const [named] = await b.list('long/', { allVersions: all });
          expect(named!.name.length, 'clipped, and so refused by KeyStore as longer than a name').to.equal(MAX_NAME_LENGTH + 1);
        }
        await server.psql(db, "UPDATE key_server_meta SET value = repeat('1', 1000000)");
        await server.psql('postgres', `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db}'`);
        const e = await rejects(b.get('long', 1), 'WRONG_KEY', 'UNREACHABLE');
        if (e.code === 'UNREACHABLE') await rejects(b.get('long', 1), 'WRONG_KEY'); // a cut connection tried once
        expect(((await rejects(b.get('long', 1), 'WRONG_KEY')).details as { bound: string }).bound.length).to.be.at.most(64);
        expect(((await rejects(b.get('long', 1), 'WRONG_KEY')).message.length)).to.be.below(1000);
      });

      it('cuts a connection on which the database sends a message longer than any answer key-server asks for (a notice of a trigger added to its tables, here), refusing the request with INTEGRITY before the rest is read, and serves on once it stops', async () => {
        // The driver reads a message whole, up to 4 GiB: a compromised database could make a replica run out of memory.
        const url = await freshDb();
        const db = `contract_${n}`;
        const b = await track(PgBackend.open({ url, maxMessageBytes: 64 * 1024 }));
        await b.bindStorageKey('11'.repeat(16));
        await b.append('loud', (v) => recordFor('loud', v));
        await server.psql(db, `CREATE FUNCTION loud() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE '%', repeat('x', 200000); RETURN NEW; END $$;
          CREATE TRIGGER loud BEFORE INSERT ON key_server_records FOR EACH ROW EXECUTE FUNCTION loud()`);
        const e = await rejects(b.append('loud', (v) => recordFor('loud', v)), 'INTEGRITY');
        expect(e.message).to.contain('more than the 65536 of any answer key-server asks for');
        expect(await server.psql(db, 'SELECT max(version) FROM key_server_records', ['-tA'])).to.equal('1\n');
        await server.psql(db, 'DROP TRIGGER loud ON key_server_records');
        expect((await b.append('loud', (v) => recordFor('loud', v))).version).to.equal(2);
      });

      describe('answered with more rows than a query asks for (a proxy repeating the database\'s rows)', () => {
        const proxies: PgProxy[] = [];
        afterEach(async () => {
          await Promise.all(opened.splice(0).map((b) => b.close()));
          await Promise.all(proxies.splice(0).map((p) => p.close()));
        });
        /** A backend over a new database reached through a proxy that passes each message the database sends through `rewrite`. */
        const throughProxy = async (rewrite: Rewrite) => {
          const url = await freshDb();
          const proxy = await PgProxy.start(server.port, (query, type, m) => rewrite.current(query, type, m));
          proxies.push(proxy);
          const b = await track(open(proxy.url(url)));
          await b.bindStorageKey('11'.repeat(16));
          return { b, db: `contract_${n}` };
        };
        interface Rewrite { current: (query: string, type: string, m: Buffer) => Buffer[] | undefined }

        it('cuts a connection on which the database answers a retrieve with two rows, or a list with more than its LIMIT, refusing the request with INTEGRITY, and serves on once it stops', async () => {
          // The driver keeps every row of an answer: a compromised database could make a replica run out of memory.
          let copies = (_query: string) => 1;
          const { b } = await throughProxy({ current: (query, type, m) => (type === 'D' ? Array<Buffer>(copies(query)).fill(m) : undefined) });
          for (const name of ['a', 'b', 'c']) await b.append(name, (v) => recordFor(name, v));
          copies = (query) => (query.includes('ORDER BY version DESC LIMIT 1') ? 2 : 1);
          expect((await rejects(b.get('a', 0), 'INTEGRITY')).message).to.contain('more rows than the 1 key-server asks for');
          copies = (query) => (query.includes('LIMIT $2') ? 1000 : 1);
          for (const allVersions of [false, true]) expect((await rejects(b.list('', { limit: 2, allVersions }), 'INTEGRITY')).message).to.contain('more rows than the 2 key-server asks for');
          copies = () => 1;
          expect((await b.get('a', 0))?.version).to.equal(1);
          expect((await b.list('', { limit: 2 })).map((r) => r.name)).to.deep.equal(['a', 'b']);
        });

        it('bounds a delete of every version by the versions its answer names, not by the high-water mark the database reports: a database lying about both is cut off (INTEGRITY), nothing deleted', async () => {
          const rewrite: Rewrite = { current: () => undefined };
          const { b, db } = await throughProxy(rewrite);
          for (let i = 0; i < 3; i++) await b.append('k', (v) => recordFor('k', v));
          // The mark read under the name's lock said to be the last version number, and each row of the delete's answer sent 20,000 times.
          const mark = Buffer.alloc(2 + 4 + 10);
          mark.writeUInt16BE(1, 0);
          mark.writeInt32BE(10, 2);
          mark.write('2147483647', 6, 'latin1');
          rewrite.current = (query, type, m) => {
            if (type !== 'D') return undefined;
            if (query.includes('FOR UPDATE')) return [pgMessage('D', mark)];
            return query.includes('DELETE FROM key_server_records WHERE name = $1') && !query.includes('version = $2') ? Array<Buffer>(20_000).fill(m) : undefined;
          };
          expect((await rejects(b.delete('k', 0), 'INTEGRITY')).message).to.contain(`more rows than the ${DELETE_LISTED} key-server asks for`);
          rewrite.current = () => undefined;
          expect(await server.psql(db, "SELECT count(*) FROM key_server_records WHERE name = 'k'", ['-tA'])).to.equal('3\n');
          expect(await b.delete('k', 0)).to.deep.equal({ count: 3, versions: [1, 2, 3] });
        });

        it('answers a store OUTCOME_UNKNOWN when rows in the answer to its COMMIT cut the connection: it may have been committed, and here it was', async () => {
          const rows = [pgMessage('T', Buffer.alloc(2)), pgMessage('D', Buffer.alloc(2)), pgMessage('D', Buffer.alloc(2))];
          const rewrite: Rewrite = { current: () => undefined };
          const { b, db } = await throughProxy(rewrite);
          rewrite.current = (query, type, m) => (query === 'COMMIT' && type === 'C' ? [...rows, m] : undefined);
          expect((await rejects(b.append('k', (v) => recordFor('k', v)), 'OUTCOME_UNKNOWN')).message).to.contain('more rows than the 1 key-server asks for');
          expect(await server.psql(db, "SELECT max(version) FROM key_server_records WHERE name = 'k'", ['-tA'])).to.equal('1\n');
        });
      });

      it('reads within that bound every answer key-server asks for: a value of the largest size, and a list page of 1,001 rows whose fields are read at their longest', async () => {
        const { db, ks } = await keyStoreOnFreshDb();
        const value = randomBytes(MAX_KEY_VALUE_BYTES);
        await ks.store('big', value, { type: 'binary-blob', exportable: true });
        expect(Buffer.from((await ks.fetch('big')).value).equals(value)).to.equal(true);
        // Names, types and times of four-byte characters, as long as they are read (clipped).
        await server.psql(db, `INSERT INTO key_server_records SELECT 'wide/' || i || repeat('😀', 300), 1, repeat('😀', 100), true, repeat('😀', 100), 1, '\\x00' FROM generate_series(1, 1001) i`);
        expect(await ks.backend.list('wide/', { limit: 1001 })).to.have.length(1001);
      });

      it('lists in the order of the primary key\'s index, not of the clipped name read (which would sort every row under the prefix for each page)', async () => {
        const url = await freshDb();
        const b = await track(open(url));
        for (const name of ['p/a', 'p/b', 'p/c']) await b.append(name, (v) => recordFor(name, v));
        // The statements list sends, as sent.
        const sent: { sql: string; params: unknown[] }[] = [];
        const query = pg.Client.prototype.query;
        pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
          const [sql, params] = typeof args[0] === 'string' ? [args[0], args[1]] : [(args[0] as { text: string }).text, (args[0] as { values?: unknown }).values];
          if (sql.includes('FROM key_server_records WHERE name >=')) sent.push({ sql, params: params as unknown[] });
          return (query as (...a: unknown[]) => unknown).apply(this, args);
        } as typeof query;
        try {
          for (const allVersions of [false, true]) await b.list('p/', { after: 'p/a', allVersions });
        } finally {
          pg.Client.prototype.query = query;
        }
        expect(sent).to.have.length(2);
        const c = new pg.Client(url);
        await c.connect();
        try {
          await c.query('SET enable_seqscan = off'); // a table of three rows would be read whole anyway
          for (const { sql, params } of sent) {
            const keys: string[] = [];
            const walk = (node: { 'Sort Key'?: string[]; Plans?: unknown[] }): void => {
              keys.push(...(node['Sort Key'] ?? []));
              for (const p of node.Plans ?? []) walk(p as typeof node);
            };
            walk((await c.query(`EXPLAIN (FORMAT JSON) ${sql}`, params)).rows[0]['QUERY PLAN'][0].Plan);
            expect(keys.filter((k) => k.includes('left')), sql).to.deep.equal([]);
          }
        } finally {
          await c.end();
        }
      });

      // Database defaults that would change what the numbering relies on: under repeatable read or
      // serializable, stores queued on a name failed as serialization failures (TIMEOUT); under a
      // short lock_timeout, as lock timeouts (TIMEOUT); only key-server's own 5 s limit bounds the wait.
      for (const [setting, value] of [['default_transaction_isolation', 'serializable'], ['default_transaction_isolation', 'repeatable read'], ['lock_timeout', '1ms']]) {
        it(`queues appends and deletes of one name from two replicas on a database whose ${setting} is ${value}, as with PostgreSQL's defaults`, async () => {
          const url = await freshDb();
          await server.psql('postgres', `ALTER DATABASE contract_${n} SET ${setting} = '${value}'`);
          const [a, b] = await Promise.all([track(open(url)), track(open(url))]);
          const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).append('queued', (v) => recordFor('queued', v))));
          expect(results.map((r) => r.version).sort((x, y) => x - y)).to.deep.equal(Array.from({ length: 30 }, (_, i) => i + 1));
          const [deleted, next] = await Promise.all([a.delete('queued', 0), b.append('queued', (v) => recordFor('queued', v))]);
          expect(deleted.count + next.version, 'the append before the delete, or after it').to.be.oneOf([30 + 31, 31 + 31]);
        });
      }

      it('gives 100 appends to one name from two replicas versions 1..100 with no gap or duplicate', async () => {
        const url = await freshDb();
        const [a, b] = await Promise.all([track(open(url)), track(open(url))]);
        const results = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).append('shared', (v) => recordFor('shared', v))));
        const all = Array.from({ length: 100 }, (_, i) => i + 1);
        expect(results.map((r) => r.version).sort((x, y) => x - y)).to.deep.equal(all);
        expect((await a.list('shared', { allVersions: true })).map((i) => i.version)).to.deep.equal(all);
        expect((await b.get('shared', 0))!.version).to.equal(100);
      });

      it('lets exactly one of many racing appends with the same expectedLatest win', async () => {
        const url = await freshDb();
        const [a, b] = await Promise.all([track(open(url)), track(open(url))]);
        const tries = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).append('once', (v) => recordFor('once', v), 0)));
        expect(tries.filter((t) => t.status === 'fulfilled')).to.have.length(1);
        for (const t of tries) if (t.status === 'rejected') expect((t.reason as CertifierError).code).to.equal('VERSION_CONFLICT');
        // The losers spent no version number.
        expect((await a.append('once', (v) => recordFor('once', v))).version).to.equal(2);
      });

      it('fails fast with a retryable code while the database is down, and recovers by itself', async function () {
        this.timeout(60_000);
        const b = await track(PgBackend.open({ url: await freshDb(), connectTimeoutMs: 1_000, queryTimeoutMs: 2_000 }));
        const kept = await b.append('k', (v) => recordFor('k', v));
        await server.halt();
        try {
          for (const attempt of [() => b.get('k', 0), () => b.append('k', (v) => recordFor('k', v)), () => b.list(''), () => b.delete('k', 1)]) {
            const t0 = Date.now();
            await rejects(attempt(), 'UNREACHABLE', 'TIMEOUT');
            // Bounded by its timeouts (1 s to connect, 2 s a query), with room for a busy machine: down, it would otherwise wait for the database to come back.
            expect(Date.now() - t0, 'fails fast').to.be.below(10_000);
          }
        } finally {
          await server.resume();
        }
        // The same backend (no reopen): the pool makes new connections.
        expect(await b.get('k', 0)).to.deep.equal(kept);
        expect((await b.append('k', (v) => recordFor('k', v))).version).to.equal(2);
      });

      it('queues requests on the connections it has when the role\'s connection limit refuses another (20 stores over 2 allowed all succeed); with none open, UNREACHABLE', async function () {
        this.timeout(30_000);
        const { url: limited, role, db, connections } = await limitedDb();
        const lost: string[] = [];
        const b = await track(PgBackend.open({ url: limited, poolSize: 20, log: (r) => lost.push(r.event) }));
        await storeAll(b, 'k');
        expect(await connections(), 'never past the limit, which refused connections opened at once (one or more)').to.be.within(1, 2);
        // The limit raised, and one of its connections closed: it may open more again.
        await server.psql('postgres', `ALTER ROLE ${role} CONNECTION LIMIT 4`);
        await server.psql(db, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${role}' LIMIT 1`);
        for (const until = Date.now() + 10_000; lost.length < 1 && Date.now() < until;) await new Promise((r) => setTimeout(r, 20));
        // Its full size again at once, not after LIMIT_RETRY_MS. How many of the connections it then
        // opens at once PostgreSQL takes is its own race: each starting backend counts the role's
        // others, those starting beside it too, so several starting together may all be refused.
        expect((b as unknown as { pool: { options: { max: number } } }).pool.options.max).to.equal(20);
        await storeAll(b, 'm');
        expect(await connections()).to.be.within(1, 4);
        lost.length = 0;
        // Its connections ended and both slots taken by others: a pool with no connection at all cannot wait for one.
        const others = Array.from({ length: 4 }, () => new pg.Client({ connectionString: limited }));
        await server.psql(db, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${role}'`);
        for (const until = Date.now() + 10_000; lost.length < 4 && Date.now() < until;) await new Promise((r) => setTimeout(r, 20));
        expect(lost).to.deep.equal(Array(4).fill('storage-connection-lost'));
        await Promise.all(others.map((c) => c.connect()));
        try {
          const t0 = Date.now();
          expect((await rejects(b.get('k1', 0), 'UNREACHABLE')).message).to.contain('its connection limit is reached');
          expect(Date.now() - t0, 'at once').to.be.below(2_000);
        } finally {
          await Promise.all(others.map((c) => c.end()));
        }
        // Slots free again: the pool opens connections as before.
        expect((await b.get('k1', 0))!.version).to.equal(1);
      });

      it('tries its full pool size again a while after the connection limit refused one, though none of its connections closed', async function () {
        this.timeout(30_000);
        const { url, role, connections } = await limitedDb();
        const b = await track(PgBackend.open({ url, poolSize: 20, limitRetryMs: 300 }));
        await storeAll(b, 'k');
        expect(await connections(), 'never past the limit, which refused connections opened at once (one or more)').to.be.within(1, 2);
        // The limit raised while both connections stay open (busy replicas' connections never idle out).
        await server.psql('postgres', `ALTER ROLE ${role} CONNECTION LIMIT 4`);
        // Each try opens many connections at once, and PostgreSQL may refuse them all but some (each
        // starting backend counts those starting beside it): the pool gets to the new limit over tries.
        for (let i = 0; i < 20 && (await connections()) < 4; i++) {
          await new Promise((r) => setTimeout(r, 400));
          await storeAll(b, `m${i}-`);
        }
        expect(await connections()).to.equal(4);
      });

      it('times out with TIMEOUT when the database accepts connections but never answers, and recovers', async function () {
        this.timeout(60_000);
        const b = await track(PgBackend.open({ url: await freshDb(), connectTimeoutMs: 1_000, queryTimeoutMs: 1_500 }));
        await b.append('k', (v) => recordFor('k', v));
        server.signal('SIGSTOP');
        try {
          for (const attempt of [() => b.get('k', 0), () => b.append('k', (v) => recordFor('k', v)), () => b.get('k', 1)]) {
            const t0 = Date.now();
            await rejects(attempt(), 'TIMEOUT', 'UNREACHABLE');
            // Its timeouts (1 s to connect, 1.5 s a query), with room for a busy machine: stopped, the database would otherwise never answer.
            expect(Date.now() - t0, 'bounded by the timeouts').to.be.below(10_000);
          }
        } finally {
          server.signal('SIGCONT');
        }
        expect((await b.get('k', 0))!.version).to.equal(1);
        expect((await b.append('k', (v) => recordFor('k', v))).version).to.equal(2);
      });

      it('bounds a request\'s whole time in the database by the one statement limit: one queued behind a stalled request for the only connection fails when its time is up, rather than wait for the connection and then a statement\'s full limit again', async function () {
        this.timeout(30_000);
        const url = await freshDb();
        const db = `contract_${n}`;
        const b = await track(PgBackend.open({ url, poolSize: 1, queryTimeoutMs: 2_000 }));
        for (const name of ['st/a', 'st/b']) await b.append(name, (v) => recordFor(name, v));
        // Another replica stalled holding both names' row locks.
        const stalled = new pg.Client({ connectionString: url });
        await stalled.connect();
        try {
          await stalled.query("BEGIN; SELECT 1 FROM key_server_names WHERE name IN ('st/a', 'st/b') FOR UPDATE");
          const first = b.append('st/a', (v) => recordFor('st/a', v));
          first.catch(() => {});
          await lockWaiter(db, () => false);
          // Refused by the request's own time (its message), counted from when it began: before,
          // the connection's wait and then a statement's full limit ran one after the other (4 s).
          const e = await rejects(b.append('st/b', (v) => recordFor('st/b', v)), 'TIMEOUT');
          expect(e.message).to.contain('within the 2 s a request is given');
          await rejects(first, 'TIMEOUT');
        } finally {
          await stalled.end();
        }
        expect((await b.append('st/b', (v) => recordFor('st/b', v))).version).to.equal(2);
      });

      it('closes within a bound while the database never answers, its connections cut (a replica stopped during a freeze or partition exits)', async function () {
        this.timeout(30_000);
        const url = await freshDb();
        const b = await PgBackend.open({ url, closeGraceMs: 300 });
        await b.append('k', (v) => recordFor('k', v)); // an idle connection in the pool
        const lock = await ReplicaIdLock.take({ url, replicaId: 'ks-closing', closeGraceMs: 300 });
        server.signal('SIGSTOP');
        try {
          for (const close of [() => b.close(), () => lock.release()]) {
            const t0 = Date.now();
            await Promise.race([close(), new Promise((r) => setTimeout(r, 5_000))]);
            expect(Date.now() - t0, 'closed within the bound').to.be.below(3_000);
          }
        } finally {
          server.signal('SIGCONT');
        }
      });
    });

    it('keeps its idle connections, and its id, on a database whose idle_session_timeout is short (no lost connection, no refusal while it holds its id again)', async () => {
      const url = await freshDb();
      await server.psql('postgres', `ALTER DATABASE contract_${n} SET idle_session_timeout = '200ms'`);
      const events: string[] = [];
      const b = await PgBackend.open({ url, log: (r) => events.push(r.event) });
      const lock = await ReplicaIdLock.take({ url, replicaId: 'ks-idle', log: (r) => events.push(r.event) });
      try {
        await b.append('k', (v) => recordFor('k', v));
        await new Promise((r) => setTimeout(r, 800));
        expect(events).to.deep.equal([]);
        expect(lock.refusal()).to.equal(undefined);
        expect((await b.get('k', 0))!.version).to.equal(1);
      } finally {
        await Promise.all([b.close(), lock.release()]);
      }
    });

    it('commits durably (synchronous_commit on) on a database whose default is off, where a crash of PostgreSQL lost acknowledged stores', async () => {
      const url = await freshDb();
      const db = `contract_${n}`;
      await server.psql('postgres', `ALTER DATABASE ${db} SET synchronous_commit = 'off'`);
      const b = await PgBackend.open({ url });
      try {
        // What each store's transaction runs with, as a trigger sees it.
        await server.psql(db, `CREATE TABLE seen (setting text);
          CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO seen VALUES (current_setting('synchronous_commit')); RETURN NEW; END $$;
          CREATE TRIGGER note AFTER INSERT ON key_server_records FOR EACH ROW EXECUTE FUNCTION note()`);
        await Promise.all(Array.from({ length: 4 }, (_, i) => b.append(`k${i}`, (v) => recordFor(`k${i}`, v))));
        expect((await server.psql(db, 'SELECT DISTINCT setting FROM seen', ['-tA'])).trim()).to.equal('on');
      } finally {
        await b.close();
      }
    });

    it('consults no function or operator of a schema listed before pg_catalog in search_path: neither a current_setting there that says synchronous_commit is on, nor an = on text that says any two names match', async () => {
      const url = new URL(await freshDb());
      const db = `contract_${n}`;
      await server.psql('postgres', `ALTER DATABASE ${db} SET synchronous_commit = 'off'`);
      await server.psql(db, `CREATE SCHEMA shadow;
        CREATE FUNCTION shadow.current_setting(text) RETURNS text LANGUAGE sql
          AS $$ SELECT CASE WHEN $1 OPERATOR(pg_catalog.=) 'synchronous_commit' THEN 'on' ELSE pg_catalog.current_setting($1) END $$;
        CREATE FUNCTION shadow.same(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
        CREATE OPERATOR shadow.= (LEFTARG = text, RIGHTARG = text, FUNCTION = shadow.same)`);
      // Tables in public, as before; the shadow schema ahead of pg_catalog.
      url.searchParams.set('options', '-c search_path=public,shadow,pg_catalog');
      const b = await PgBackend.open({ url: url.toString() });
      try {
        await server.psql(db, `CREATE TABLE seen (setting text);
          CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.seen VALUES (pg_catalog.current_setting('synchronous_commit')); RETURN NEW; END $$;
          CREATE TRIGGER note AFTER INSERT ON key_server_records FOR EACH ROW EXECUTE FUNCTION note()`);
        expect((await b.append('a', (v) => recordFor('a', v))).version).to.equal(1);
        expect((await b.append('b', (v) => recordFor('b', v))).version).to.equal(1);
        expect((await b.get('a', 0))?.name).to.equal('a');
        expect((await server.psql(db, 'SELECT DISTINCT setting FROM seen', ['-tA'])).trim()).to.equal('on');
      } finally {
        await b.close();
      }
    });

    describe('ReplicaIdLock: one live replica per id', () => {
      /** A lock that notices a lost session, and tries again, within a fraction of a second. */
      const QUICK_LOCK = { pingMs: 200, queryTimeoutMs: 500, connectTimeoutMs: 1_000, retryMs: 100 };
      /** Waits (up to 10 s) for a lock's log to hold `event`. */
      const eventWaiter = (events: { event: string }[]) => async (event: string) => {
        for (const until = Date.now() + 10_000; !events.some((e) => e.event === event);) {
          if (Date.now() > until) throw new Error(`no ${event}: ${JSON.stringify(events)}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      /** The pid of the session holding `replicaId`'s lock on database `db`. */
      const lockSession = async (db: string, replicaId: string) => Number(await server.psql(db, `SELECT pid FROM pg_stat_activity WHERE application_name = 'key-server-lock ${replicaId}'`, ['-tA']));

      it('takes its id again though the connection limit is reached (--pg-pool-size + 1, as sized): once the id is lost, its pool closes the connections no request holds, which kept the slot the lock needs to end its earlier session and take the id again', async function () {
        this.timeout(30_000);
        const { url, db, connections } = await limitedDb(); // 2 connections: a pool of 1, and the lock
        const events: { event: string; detail?: unknown }[] = [];
        let backend: PgBackend | undefined;
        const lock = await ReplicaIdLock.take({ url, replicaId: 'ks-limit', log: (r) => events.push(r), onLost: () => backend?.dropIdle(), ...QUICK_LOCK });
        try {
          backend = await PgBackend.open({ url, poolSize: 1, gate: () => lock.refusal() });
          await backend.append('x', (v) => recordFor('x', v));
          expect(await connections(), 'the lock and an idle pooled connection').to.equal(2);
          const waitFor = eventWaiter(events);
          const pid = await lockSession(db, 'ks-limit');
          process.kill(pid, 'SIGSTOP');
          try {
            // A first retry may still meet the limit while the idle connections close; a later one
            // reaches the database and finds its own earlier session (before, every one met the limit).
            const reached = (e: { event: string; detail?: unknown }) => e.event === 'replica-lock-retry-failed' && String(e.detail).includes('its earlier session still holds the id');
            for (const until = Date.now() + 10_000; !events.some(reached);) {
              if (Date.now() > until) throw new Error(`no retry reached the database: ${JSON.stringify(events)}`);
              await new Promise((r) => setTimeout(r, 50));
            }
          } finally {
            process.kill(pid, 'SIGCONT');
          }
          await waitFor('replica-lock-retaken');
          expect((await backend.append('x', (v) => recordFor('x', v))).version).to.equal(2);
        } finally {
          await backend?.close();
          await lock.release();
        }
      });

      it('refuses an id held by a live session (REPLICA_ID_IN_USE, naming the id and the holder\'s address), takes another, and frees it on release', async () => {
        const url = await freshDb();
        const a = await ReplicaIdLock.take({ url, replicaId: 'ks-a' });
        const b = await ReplicaIdLock.take({ url, replicaId: 'ks-b' });
        try {
          const e = await rejects(ReplicaIdLock.take({ url, replicaId: 'ks-a' }), 'REPLICA_ID_IN_USE');
          expect(e.message).to.contain('holds --replica-id ks-a on this database (its connection from 127.0.0.1, since ').and.contain('give each replica its own --replica-id');
          await a.release();
          await (await ReplicaIdLock.take({ url, replicaId: 'ks-a' })).release();
        } finally {
          await Promise.all([a.release(), b.release()]);
        }
      });

      it('bounds how long its session outlives a machine that vanished by the database\'s own TCP settings on it: keepalives for an idle connection, and a user timeout for one whose last answer was never acknowledged (where keepalives never start, and the id stayed held for the kernel\'s retries, about 15 minutes)', async () => {
        const url = await freshDb();
        // The lock's own session, found by the statement that takes the id.
        let session: pg.Client | undefined;
        const query = pg.Client.prototype.query;
        pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
          if (typeof args[0] === 'string' && args[0].includes('pg_try_advisory_lock')) session = this;
          return (query as (...a: unknown[]) => unknown).apply(this, args);
        } as typeof query;
        let lock: ReplicaIdLock;
        try {
          lock = await ReplicaIdLock.take({ url, replicaId: 'ks-tcp' });
        } finally {
          pg.Client.prototype.query = query;
        }
        try {
          expectRows(session!, 4); // the lock's connection takes no more unless told (boundMessages)
          const settings = (await session!.query<{ name: string; setting: string }>("SELECT name, setting FROM pg_settings WHERE name LIKE 'tcp_%' ORDER BY name")).rows;
          expect(Object.fromEntries(settings.map((r) => [r.name, r.setting]))).to.deep.equal({
            tcp_keepalives_count: '3', tcp_keepalives_idle: '10', tcp_keepalives_interval: '5', tcp_user_timeout: '25000',
          });
        } finally {
          await lock.release();
        }
      });

      it('refuses to take its id while the connection limit leaves no room, at once, UNREACHABLE naming the limit (no retry: a supervisor restarts the replica); takes it once there is room', async () => {
        const { url, role } = await limitedDb();
        const others = Array.from({ length: 2 }, () => new pg.Client({ connectionString: url }));
        await Promise.all(others.map((c) => c.connect()));
        try {
          const t0 = Date.now();
          const e = await rejects(ReplicaIdLock.take({ url, replicaId: 'ks-full' }), 'UNREACHABLE');
          expect(e.message).to.contain('its connection limit is reached').and.contain('CONNECTION LIMIT').and.contain(`too many connections for role "${role}"`);
          expect(e.details).to.deep.include({ cause: '53300' });
          expect(Date.now() - t0, 'at once').to.be.below(2_000);
          await others.pop()!.end();
          await (await ReplicaIdLock.take({ url, replicaId: 'ks-full' })).release();
        } finally {
          await Promise.all(others.map((c) => c.end()));
        }
      });

      it('takes its id again after its own session stopped answering, once the database ended it, rather than stop as if another replica held it', async function () {
        this.timeout(30_000);
        const url = await freshDb();
        const events: { event: string; detail?: unknown }[] = [];
        const lock = await ReplicaIdLock.take({ url, replicaId: 'ks-frozen', log: (r) => events.push(r), ...QUICK_LOCK });
        let stopped = false;
        void lock.taken.then(() => (stopped = true));
        const waitFor = eventWaiter(events);
        // Its session's backend frozen: the session holds the lock but never answers (as across a partition).
        const pid = await lockSession(`contract_${n}`, 'ks-frozen');
        process.kill(pid, 'SIGSTOP');
        try {
          await waitFor('replica-lock-lost');
          expect(lock.refusal()?.code).to.equal('UNREACHABLE');
          await waitFor('replica-lock-retry-failed');
          expect(events.find((e) => e.event === 'replica-lock-retry-failed')!.detail).to.contain('its earlier session still holds the id');
        } finally {
          process.kill(pid, 'SIGCONT');
        }
        try {
          await waitFor('replica-lock-retaken');
          expect(lock.refusal()).to.equal(undefined);
          expect(stopped, JSON.stringify(events)).to.equal(false);
        } finally {
          await lock.release();
        }
      });

      it('stops (REPLICA_ID_IN_USE) when another replica\'s session holds its id under the pid its own earlier session had (reused after a restart), rather than end that session as its own', async function () {
        this.timeout(30_000);
        // The kernel hands out the pid after the one written to ns_last_pid (root, or CAP_CHECKPOINT_RESTORE, only).
        const LAST_PID = '/proc/sys/kernel/ns_last_pid';
        try {
          accessSync(LAST_PID, constants.W_OK);
        } catch {
          this.skip();
        }
        const url = await freshDb();
        const db = `contract_${n}`;
        // The lock's own role, kept from logging in while the pid comes round; it sees every session's start, as a superuser does.
        const role = `replica_${n}`;
        await server.psql('postgres', `CREATE ROLE ${role} LOGIN; GRANT pg_read_all_stats TO ${role}`);
        const events: string[] = [];
        const lock = await ReplicaIdLock.take({ url: url.replace('postgres@', `${role}@`), replicaId: 'ks-reused', log: (r) => events.push(r.event), retryMs: 100 });
        let other: pg.Client | undefined;
        try {
          const own = Number(await server.psql(db, "SELECT pid FROM pg_stat_activity WHERE application_name = 'key-server-lock ks-reused'", ['-tA']));
          // Two commands: in one, the role could log in again until the end of the session's termination.
          await server.psql('postgres', `ALTER ROLE ${role} NOLOGIN`);
          await server.psql('postgres', `SELECT pg_terminate_backend(${own}, 5000)`);
          while (existsSync(`/proc/${own}`)) await new Promise((r) => setTimeout(r, 20));
          // Another replica's session, under the pid the lock's session had, takes the id.
          for (let i = 0; i < 50 && other === undefined; i++) {
            writeFileSync(LAST_PID, String(own - 1));
            const c = new pg.Client({ connectionString: url });
            await c.connect();
            if ((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid === own) other = c;
            else await c.end();
          }
          if (!other) throw new Error(`no session came with pid ${own}`);
          await other.query('SELECT pg_advisory_lock($1::bigint)', [replicaLockKey('ks-reused')]);
          await server.psql('postgres', `ALTER ROLE ${role} LOGIN`);
          const stopped = await Promise.race([lock.taken, new Promise<undefined>((r) => setTimeout(r, 5_000, undefined))]);
          expect(stopped?.code, events.join(' ')).to.equal('REPLICA_ID_IN_USE');
          expect((await other.query('SELECT 1 AS one')).rows, 'the other replica\'s session was not ended').to.deep.equal([{ one: 1 }]);
        } finally {
          await Promise.all([lock.release(), other?.end()]);
        }
      });
    });
  });
}

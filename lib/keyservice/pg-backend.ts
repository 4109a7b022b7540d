// The shared key-server backend: one PostgreSQL database behind several key-server replicas.
//
// Schema (created or upgraded at start, see pg-schema.ts):
//   key_server_names    (name, high)    the highest version ever assigned to a name; never lowered,
//                                       so a deleted version number is never reused
//   key_server_records  (name, version, type, exportable, time_entered, size, ciphertext)
//   key_server_meta     (key, value)    'storage_key_id': the id of the storage key records use;
//                                       'tables_id': a random id these tables were made with
// Names are COLLATE "C" (code point order, as LevelDB's UTF-8 byte order), whatever the
// database's own collation. The database only ever sees ciphertext and metadata. The tables are
// in the first schema of search_path at start; every connection after that searches pg_catalog,
// then that schema only (PIN_SCHEMA), whatever schemas appear in the path meanwhile.
//
// Version assignment is one transaction: INSERT ... ON CONFLICT DO UPDATE SET high = high + 1
// RETURNING high (or the highest stored version + 1, if the mark was lowered: NEXT_HIGH) takes
// the name's row lock, so concurrent appends of a name, from any replica, queue on that row and
// each gets the next number; the record is inserted in the same transaction, so a failed append
// (conflict, builder error, lost connection) rolls the increment back with it. Deletes take the
// same row lock. Acknowledged means committed.
//
// The storage key: once bindStorageKey has bound this replica's key (at start), every pooled
// connection reads key_server_meta once, before its first use, and is refused (WRONG_KEY) if the
// database it reached records another key or none: a database swapped in behind the URL while
// the replicas run gets no record sealed under the wrong key. It then reads the schema version and
// refuses (STORE_FORMAT) tables a newer key-server upgraded since this one started, or whose
// version is gone. A connection in use reads both again every 30 s; in between, a connection
// already checked costs no extra query. With the version it reads the tables' id, and refuses
// (STORE_FORMAT) tables put in place of those it started on, under the same schema name.
//
// Rows written by someone else: no field is read longer than key-server writes it (a ciphertext
// over the largest sealed value is refused unread; a name, type, time or key id is read clipped,
// and KeyStore refuses it), so a huge row costs the replica neither its memory nor its life. No
// message of the database's is read past MAX_MESSAGE_BYTES either, nor a row past the most its
// query asks for (one unless a statement says otherwise: a list its limit, a delete of every
// version the versions it names, DELETE_LISTED), nor a result past its
// statements (one, but for SESSION_SETTINGS): its connection is cut.
//
// Failure: a request's whole time in the database is bounded (Deadline: its wait for a connection,
// the connection's opening, settings and checks, and its statements, together), and a failure of
// the database becomes UNREACHABLE or TIMEOUT (retryable, exit status 3) rather than a hang,
// except where a change's COMMIT was sent and its answer lost: OUTCOME_UNKNOWN, as it may have
// been committed; the pool drops broken connections and makes new ones, so service resumes by itself.
// A connection the database refuses for its connection limit, while the pool holds others, is
// waited for on those instead (connect()).

import type { ClientConfig, Pool, PoolClient } from 'pg';
import { CertifierError } from '../errors/index.ts';
import {
  checkAfter, checkBuilt, checkExpected, checkListed, checkName, checkPrefix, checkVersion, deleteUnknown, listLimit, MAX_NAME_LENGTH, nextVersion, outcomeUnknown, storeUnknown,
  versionConflict, type Deleted, type KeyBackend, type ListOptions, type RecordInfo, type StoredRecord, type UnknownChange,
} from './backend.ts';
import { SESSION_SETTINGS, SESSION_SETTINGS_ROWS, SESSION_SETTINGS_STATEMENTS, migrate, PIN_SCHEMA, SCHEMA_VERSION, storageError, TABLES_ID, TOO_MANY_CONNECTIONS, type Query } from './pg-schema.ts';
import { MAX_KEY_VALUE_BYTES } from './keystore.ts';
import { SEAL_OVERHEAD } from '../crypto/index.ts';
import { Deadline } from './pg-deadline.ts';
import { DELETE_LISTED } from './protocol.ts';
import { boundMessages, expectRows, PgSockets } from './pg-sockets.ts';

/**
 * The pg driver, loaded when a PostgreSQL backend is first used rather than with this module:
 * loading it (and the fetch internals its first look at globalThis.navigator makes Node load)
 * was about a fifth of the CPU time of every key-server start, LevelDB's too (0.27 s to 0.22 s
 * for a start refused at its flags), and key-server is the program the tests start most.
 */
export async function loadPg(): Promise<typeof import('pg').default> {
  return (await import('pg')).default;
}

/**
 * The longest message the database may send: twice the longest key-server asks for, a row holding
 * a value of the largest size sealed, as bytea's hex text (a row of a list, its fields read at
 * their longest, is under 2 KB). Past it the connection is cut (boundMessages), where the driver
 * would read a message of up to 4 GiB whole.
 */
export const MAX_MESSAGE_BYTES = 4 * (MAX_KEY_VALUE_BYTES + SEAL_OVERHEAD);

/** The driver's Client, the database's messages to it bounded to `maxBytes` (boundMessages). */
export async function boundedClient(maxBytes = MAX_MESSAGE_BYTES): Promise<typeof import('pg').Client> {
  return class extends (await loadPg()).Client {
    constructor(config?: string | ClientConfig) {
      super(config);
      boundMessages(this, maxBytes);
    }
  };
}

export interface PgBackendOptions {
  /** postgres://user:password@host:port/database?param=value (URL query parameters as the pg driver reads them). */
  url: string;
  /** Connections this replica may hold (default 10). */
  poolSize?: number;
  /** Time allowed to open a connection (default 3 s). */
  connectTimeoutMs?: number;
  /**
   * Time allowed for one request in all (default 5 s): getting a connection, its checks and every
   * statement (Deadline); the server's limit on each statement and each lock wait as well.
   */
  queryTimeoutMs?: number;
  /** Events worth a log line (connections lost in the background). */
  log?: (record: { event: string; [k: string]: unknown }) => void;
  /** How often a connection in use reads the storage key and schema version again (default 30 s; tests). */
  recheckMs?: number;
  /** Asked before each use of the database: an error to refuse it with (the replica's id lock is not held). */
  gate?: () => CertifierError | undefined;
  /** How long close() waits for the database to close the connections before cutting them (default 2 s; tests). */
  closeGraceMs?: number;
  /** How long after the connection limit refused one the pool stays at the connections it held (default 5 s; tests). */
  limitRetryMs?: number;
  /** The longest message the database may send before the connection is cut (default MAX_MESSAGE_BYTES; tests). */
  maxMessageBytes?: number;
}

/**
 * The most of a text field read from a row: more than any type, time or storage key id key-server
 * writes, so a longer one is still refused, clipped. Whoever can write the database could put a
 * field of up to 1 GB there, read whole otherwise, and one over 512 MiB as text ends the process
 * in the driver (a string too long for V8).
 */
const FIELD_CHARS = 64;
const BOUND_KEY = `SELECT pg_catalog.left(value, ${FIELD_CHARS}) AS value FROM key_server_meta WHERE key = 'storage_key_id'`;
const SCHEMA = `SELECT version, (${TABLES_ID}) AS tables FROM key_server_schema`;
/** How often a connection in use reads the storage key and the schema version again. */
const RECHECK_MS = 30_000;
/** SQLSTATE undefined_table. */
const UNDEFINED_TABLE = '42P01';
/** After a connection refused for the limit, how long before the pool may try its full size again (connect()). */
const LIMIT_RETRY_MS = 5_000;
/** How many requests' time a start's migration is given: it may wait for another replica's first. */
const MIGRATION_REQUESTS = 4;
/**
 * Raises the name's high-water mark to the next version, under its row lock: one more than the
 * mark or than the highest stored version, whichever is higher, so a mark lowered or removed
 * behind the backend's back (as LevelBackend reads its own) neither blocks the name nor reuses
 * a stored number. A mark past the last version number (raised by hand) counts as the last, so
 * the next is refused as beyond it (INVALID_INPUT), not an overflow in the database.
 */
const NEXT_HIGH = `INSERT INTO key_server_names AS n (name, high)
  VALUES ($1, (SELECT coalesce(pg_catalog.max(version), 0)::bigint FROM key_server_records WHERE name = $1) + 1)
  ON CONFLICT (name) DO UPDATE SET high = greatest(least(n.high, 2147483647) + 1, EXCLUDED.high) RETURNING high`;
/**
 * A name is read to one character past the longest key-server takes, so a longer one is refused
 * (KeyStore: INTEGRITY) without being read whole: the primary key's index takes a name of
 * hundreds of thousands of characters that compress well, and a list page reads 1,001 of them.
 * A statement orders (and DISTINCT ON) by the table's own column, key_server_records.name: a bare
 * `name` there is this clipped one, which no index holds, so each page would sort every row after it.
 */
const COLUMNS = `pg_catalog.left(name, ${MAX_NAME_LENGTH + 1}) AS name, version, pg_catalog.left(type, ${FIELD_CHARS}) AS type, exportable, pg_catalog.left(time_entered, ${FIELD_CHARS}) AS time_entered, size`;
/** A ciphertext is read only if it is no longer than a sealed value of the largest size (sealed_size says how long it is). */
const CIPHERTEXT = `CASE WHEN pg_catalog.octet_length(ciphertext) <= ${MAX_KEY_VALUE_BYTES + SEAL_OVERHEAD} THEN ciphertext END AS ciphertext, pg_catalog.octet_length(ciphertext) AS sealed_size`;
interface Row { name: string; version: number; type: string; exportable: boolean; time_entered: string; size: number; ciphertext?: Buffer | null; sealed_size?: number }

/**
 * What a delete of every version answered: its count, and the versions of its rows, which must be
 * ascending and no more than the count (INTEGRITY otherwise: the protocol's answer is made of them).
 */
function deletedRows(name: string, rows: { version: number; deleted: string }[]): Deleted {
  const count = rows.length ? Number(rows[0]!.deleted) : 0;
  const versions = rows.map((r) => r.version);
  const ordered = versions.every((v, i) => Number.isSafeInteger(v) && v > (versions[i - 1] ?? 0) && rows[i]!.deleted === rows[0]!.deleted);
  if (!ordered || !Number.isSafeInteger(count) || count < versions.length) {
    throw new CertifierError('INTEGRITY', `the database answered the delete of every version of "${name}" with a damaged count or list of versions`);
  }
  return { count, versions };
}

const infoOfRow = (r: Row): RecordInfo => ({ name: r.name, version: r.version, type: r.type, exportable: r.exportable, timeEntered: r.time_entered, size: r.size });

/**
 * The first string after every string starting with `prefix` in code point order, or undefined
 * when there is none (so a prefix query is an index range scan with both ends).
 */
export function prefixEnd(prefix: string): string | undefined {
  const cps = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (cps.length && cps[cps.length - 1] === 0x10ffff) cps.pop();
  if (cps.length === 0) return undefined;
  let last = cps.pop()! + 1;
  if (last === 0xd800) last = 0xe000; // surrogates are not characters
  return String.fromCodePoint(...cps, last);
}

const schemaGone = () => new CertifierError('STORE_FORMAT', 'the key database\'s key_server_schema was emptied or dropped while this replica ran: its tables\' version is unknown; restore it (or the database) from a backup');

export class PgBackend implements KeyBackend {
  private closed = false;
  /** The storage key id bound at start (bindStorageKey); undefined before. */
  private boundKey: string | undefined;
  /** When each connection last read the bound key and the schema version (monotonic ms, since the key was bound). */
  private readonly checked = new WeakMap<PoolClient, number>();
  /** When the connection limit last lowered the pool's max (monotonic ms); undefined while it is the configured size. */
  private limitedAt: number | undefined;
  /** The schema of key-server's tables, found at start (migrate), which every later connection's search_path is pinned to. */
  private schema: string | undefined;
  /** The identity of those tables (TABLES_ID), read at start: others put in their place are refused. */
  private tablesId: string | undefined;
  /** Each new connection's SESSION_SETTINGS query, until connect() has seen it succeed. */
  private readonly settings = new WeakMap<PoolClient, Promise<unknown>>();

  private constructor(
    private readonly pool: Pool, private readonly sockets: PgSockets, private readonly o: PgBackendOptions, private readonly recheckMs = o.recheckMs ?? RECHECK_MS, private readonly gate = o.gate,
  ) {}

  /** Connects, creates or upgrades the schema, and returns the backend. */
  static async open(o: PgBackendOptions): Promise<PgBackend> {
    const timeout = o.queryTimeoutMs ?? 5_000;
    const sockets = new PgSockets();
    const max = o.poolSize ?? 10;
    const pool = new (await loadPg()).Pool({
      Client: await boundedClient(o.maxMessageBytes), stream: sockets.make, connectionString: o.url, max, connectionTimeoutMillis: o.connectTimeoutMs ?? 3_000,
      // lock_timeout as long as a statement may take (the driver sends no 0): a database default
      // shorter than that failed stores that queue on a name's row lock, as TIMEOUT.
      query_timeout: timeout, statement_timeout: timeout, lock_timeout: timeout, idle_in_transaction_session_timeout: 2 * timeout,
      idleTimeoutMillis: 30_000, keepAlive: true, application_name: 'key-server',
    });
    const b = new PgBackend(pool, sockets, o);
    // A connection that dies while idle (database restarted, network cut) is reported here and
    // dropped by the pool; without a listener the 'error' event would end the process.
    pool.on('error', (e) => o.log?.({ event: 'storage-connection-lost', code: b.failure(e).code, detail: e.message }));
    // A connection closed: the database may take another again (see connect()).
    pool.on('remove', () => void (pool.options.max = max));
    // The same for a connection that dies while checked out between two queries. Its first query,
    // before any request's, sets what key-server relies on (SESSION_SETTINGS); connect() waits for
    // it before handing the connection out, and drops a connection it failed on.
    pool.on('connect', (client) => {
      client.on('error', () => {});
      const schema = b.schema;
      expectRows(client, SESSION_SETTINGS_ROWS, SESSION_SETTINGS_STATEMENTS);
      const set = client.query(SESSION_SETTINGS).then((r) => (schema === undefined ? r : client.query(PIN_SCHEMA, [schema])));
      set.catch(() => {}); // seen by connect()
      b.settings.set(client, set);
    });
    try {
      ({ schema: b.schema, tablesId: b.tablesId } = await b.transaction((q) => migrate(q), undefined, MIGRATION_REQUESTS * timeout));
    } catch (e) {
      await sockets.endWithin(() => pool.end(), o.closeGraceMs);
      throw e;
    }
    return b;
  }

  async append(name: string, build: (version: number) => StoredRecord, expectedLatest?: number, check?: (latest: number) => void): Promise<StoredRecord> {
    checkName(name);
    checkExpected(expectedLatest);
    return this.transaction(async (q) => {
      const high = Number((await q<{ high: string }>(NEXT_HIGH, [name]))[0]!.high);
      const version = nextVersion(name, high - 1);
      if (expectedLatest !== undefined || check) {
        // Under the name's row lock, so no other append or delete of it can slip in between.
        const latest = await this.latest(q, name);
        if (expectedLatest !== undefined && latest !== expectedLatest) throw versionConflict(name, expectedLatest, latest);
        check?.(latest);
      }
      const r = build(version);
      checkBuilt(name, version, r);
      await q('INSERT INTO key_server_records (name, version, type, exportable, time_entered, size, ciphertext) VALUES ($1, $2, $3, $4, $5, $6, $7)',
        [name, version, r.type, r.exportable, r.timeEntered, r.size, Buffer.from(r.ciphertext.buffer, r.ciphertext.byteOffset, r.ciphertext.length)]);
      return r;
    }, (r) => storeUnknown(name, r.version));
  }

  async get(name: string, version: number): Promise<StoredRecord | undefined> {
    checkName(name);
    checkVersion(version, true);
    const rows = await this.query<Row>(version
      ? `SELECT ${COLUMNS}, ${CIPHERTEXT} FROM key_server_records WHERE name = $1 AND version = $2`
      : `SELECT ${COLUMNS}, ${CIPHERTEXT} FROM key_server_records WHERE name = $1 ORDER BY version DESC LIMIT 1`, version ? [name, version] : [name]);
    const r = rows[0];
    if (!r) return undefined;
    if (r.name !== name || (version && r.version !== version)) {
      throw new CertifierError('INTEGRITY', `the database answered for "${name}" with a damaged row`);
    }
    if (!r.ciphertext) {
      const why = r.sealed_size == null ? 'it has no ciphertext' : `its ciphertext is ${r.sealed_size} bytes, longer than any value key-server seals (it was not read)`;
      throw new CertifierError('INTEGRITY', `"${name}" version ${r.version} in the database is damaged: ${why}`);
    }
    return { ...infoOfRow(r), ciphertext: new Uint8Array(r.ciphertext) };
  }

  async delete(name: string, version: number, listed = DELETE_LISTED): Promise<Deleted> {
    checkName(name);
    checkVersion(version, true);
    checkListed(listed);
    return this.transaction(async (q) => {
      // The row lock orders this delete with every append of the name; `high` stays as it is. A
      // row removed by hand while records remain is put back first (its mark the highest stored
      // version), as LevelBackend deletes by its records; a name never stored gets no row. A
      // mark lowered by hand below a stored version is raised to it, or the versions deleted
      // here would be given again.
      const lock = async () => (await q<{ high: string }>('SELECT high FROM key_server_names WHERE name = $1 FOR UPDATE', [name])).length > 0;
      if (!(await lock())) {
        await q('INSERT INTO key_server_names (name, high) SELECT name, pg_catalog.max(version) FROM key_server_records WHERE name = $1 GROUP BY name ON CONFLICT (name) DO NOTHING', [name]);
        if (!(await lock())) return { count: 0, versions: [] };
      }
      await q('UPDATE key_server_names SET high = s.top FROM (SELECT pg_catalog.max(version) AS top FROM key_server_records WHERE name = $1) s WHERE name = $1 AND s.top > high', [name]);
      if (version) {
        const rows = await q<{ version: number }>('DELETE FROM key_server_records WHERE name = $1 AND version = $2 RETURNING version', [name, version]);
        return { count: rows.length, versions: rows.map((r) => r.version) };
      }
      // Every version is deleted, whatever the LIMIT (a statement in WITH runs to completion), and
      // only the lowest `listed` come back, each row with the count: the answer is bounded by what
      // key-server asks, not by a mark or a count the database reports.
      const rows = await q<{ version: number; deleted: string }>(
        `WITH d AS (DELETE FROM key_server_records WHERE name = $1 RETURNING version)
          SELECT version, (SELECT pg_catalog.count(*) FROM d) AS deleted FROM d ORDER BY version LIMIT $2`, [name, listed], listed);
      return deletedRows(name, rows);
    }, (d) => (d.count ? deleteUnknown(name, version, d.count) : undefined));
  }

  async list(prefix: string, options?: ListOptions): Promise<RecordInfo[]> {
    checkPrefix(prefix);
    checkAfter(options);
    const limit = listLimit(options);
    this.checkOpen();
    if (limit === 0) return [];
    const params: unknown[] = [prefix, limit];
    const conditions = ['name >= $1'];
    const end = prefixEnd(prefix);
    if (end !== undefined) conditions.push(`name < $${params.push(end)}`);
    if (options?.after !== undefined) conditions.push(`name > $${params.push(options.after)}`);
    const where = conditions.join(' AND ');
    const rows = await this.query<Row>(options?.allVersions
      ? `SELECT ${COLUMNS} FROM key_server_records WHERE ${where} ORDER BY key_server_records.name, version LIMIT $2`
      : `SELECT DISTINCT ON (key_server_records.name) ${COLUMNS} FROM key_server_records WHERE ${where} ORDER BY key_server_records.name, version DESC LIMIT $2`, params, limit);
    return rows.map(infoOfRow);
  }

  async boundStorageKey(): Promise<string | undefined> {
    return (await this.query<{ value: string }>(BOUND_KEY))[0]?.value;
  }

  async bindStorageKey(keyId: string): Promise<void> {
    const rows = await this.query<{ value: string }>(
      "INSERT INTO key_server_meta (key, value) VALUES ('storage_key_id', $1) ON CONFLICT (key) DO UPDATE SET value = key_server_meta.value RETURNING value", [keyId]);
    const bound = rows[0]?.value;
    if (bound !== keyId) {
      throw new CertifierError('WRONG_KEY', `this replica's storage key (id ${keyId}) is not the one the database's records are sealed under (id ${bound}): fetch the deployment's key with key-server join`, { details: { keyId, bound } });
    }
    this.boundKey = keyId;
  }

  /**
   * Closes the pooled connections no request holds, while the gate refuses requests (the id's lock
   * was lost): they would only keep slots of the database's connection limit, which taking the id
   * again needs, for the pool's idle time (30 s). Those in use are closed as they are released.
   */
  dropIdle(): void {
    if (this.closed || !this.gate?.()) return;
    // The pool has no other way to close an idle connection: it hands one to each who asks.
    for (let n = this.pool.idleCount; n > 0; n--) this.pool.connect().then((c) => c.release(true), () => {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Bounded: a database that never answers (frozen, partitioned) would keep the sockets open.
    await this.sockets.endWithin(() => this.pool.end(), this.o.closeGraceMs);
  }

  // ---- internals --------------------------------------------------------------------------

  private async latest(q: Query, name: string): Promise<number> {
    return (await q<{ version: number }>('SELECT version FROM key_server_records WHERE name = $1 ORDER BY version DESC LIMIT 1', [name]))[0]?.version ?? 0;
  }

  /** One statement on any pooled connection, answered with at most `rows` rows; database failures become CertifierErrors. */
  private async query<R>(sql: string, params: unknown[] = [], rows = 1): Promise<R[]> {
    const time = this.deadline();
    const client = await this.acquire(time);
    try {
      const answer = await time.query<R>(client, sql, params, rows);
      this.release(client);
      return answer;
    } catch (e) {
      client.release(true);
      throw this.failure(e);
    }
  }

  /**
   * A connection from the pool. One the database refuses for its connection limit (the server's
   * max_connections, the database's or the role's CONNECTION LIMIT) while this replica holds others
   * is waited for on those (for the pool's connect time): the pool makes no more than it holds
   * until one of them closes or LIMIT_RETRY_MS have passed. Failing the request instead failed 17
   * of 20 concurrent stores with 2 connections open. With no connection open, the refusal stands (UNREACHABLE).
   * A new connection is handed out once its SESSION_SETTINGS are in force; one they failed on is
   * dropped, and the request fails: key-server never works without them.
   */
  private async connect(time: Deadline): Promise<PoolClient> {
    const client = await this.pooled(time);
    const set = this.settings.get(client);
    if (set === undefined) return client;
    try {
      await time.race(set, () => {});
    } catch (e) {
      client.release(true);
      throw this.failure(e);
    }
    this.settings.delete(client);
    return client;
  }

  /** A connection from the pool, waited for on those the replica holds when the limit refuses a new one (connect()). */
  private async pooled(time: Deadline): Promise<PoolClient> {
    // A busy pool's connections never idle out, so 'remove' alone could leave it at the lowered
    // size for good after a limit reached once: a while later, it tries its full size again.
    if (this.limitedAt !== undefined && performance.now() - this.limitedAt >= (this.o.limitRetryMs ?? LIMIT_RETRY_MS)) {
      this.pool.options.max = this.o.poolSize ?? 10;
      this.limitedAt = undefined;
    }
    const until = performance.now() + (this.o.connectTimeoutMs ?? 3_000);
    for (;;) {
      try {
        return await time.race(this.pool.connect(), (late) => late.release());
      } catch (e) {
        const open = this.pool.totalCount;
        if ((e as { code?: unknown }).code !== TOO_MANY_CONNECTIONS || open === 0 || performance.now() >= until) throw this.failure(e);
        this.pool.options.max = Math.min(this.pool.options.max ?? open, open);
        this.limitedAt = performance.now();
      }
    }
  }

  /**
   * A pooled connection; once a storage key is bound, a connection not used since is first
   * checked to reach a database bound to that key, and destroyed if it does not.
   */
  private async acquire(time: Deadline): Promise<PoolClient> {
    this.checkOpen();
    const refused = this.gate?.();
    if (refused) throw refused;
    const client = await this.connect(time);
    const want = this.boundKey;
    const at = this.checked.get(client);
    if (want === undefined || (at !== undefined && performance.now() - at < this.recheckMs)) return client;
    let bound: string | undefined;
    try {
      bound = (await time.query<{ value: string }>(client, BOUND_KEY))[0]?.value;
    } catch (e) {
      // No key-server tables at all: a database that records no key.
      if ((e as { code?: unknown }).code !== UNDEFINED_TABLE) {
        client.release(true);
        throw this.failure(e);
      }
    }
    if (bound !== want) {
      client.release(true);
      throw new CertifierError('WRONG_KEY', `the key database now records ${bound ? `another storage key (id ${bound})` : 'no storage key'}, not this replica's (id ${want}): the database behind the URL was replaced while this replica ran, and it reads and writes nothing there`, { details: { keyId: want, bound: bound ?? null } });
    }
    // A newer key-server upgraded the tables while this one ran (a rolling upgrade across a schema
    // change), or key_server_schema was dropped: this replica no longer knows what it reads.
    let schema: number | undefined;
    let tables: string | null | undefined;
    try {
      ({ version: schema, tables } = (await time.query<{ version: number; tables: string | null }>(client, SCHEMA))[0] ?? {});
    } catch (e) {
      client.release(true);
      throw (e as { code?: unknown }).code === UNDEFINED_TABLE ? schemaGone() : this.failure(e);
    }
    if (schema === undefined || schema > SCHEMA_VERSION) {
      client.release(true);
      throw schema === undefined ? schemaGone() : new CertifierError('STORE_FORMAT', `the key database was upgraded to key-server schema version ${schema} while this replica (schema ${SCHEMA_VERSION}) ran: it reads and writes nothing there; upgrade it`);
    }
    if (tables !== this.tablesId) {
      client.release(true);
      throw new CertifierError('STORE_FORMAT', `the key database's tables were replaced while this replica ran (the schema "${this.schema}" now holds ${tables ? `tables ${tables}` : 'tables of no recorded id'}, not the tables ${this.tablesId} it started on; a schema renamed away and another made under its name?): it reads and writes nothing there; put the tables back, or restart it to serve the new ones`, { details: { tablesId: this.tablesId ?? null, found: tables ?? null } });
    }
    this.checked.set(client, performance.now());
    return client;
  }

  /**
   * Runs fn inside BEGIN ... COMMIT on one connection. Anything fn throws rolls back and is
   * rethrown as it is (a record builder's own error stays its own); a connection that failed or
   * whose state is unknown is destroyed, never handed to the next request. A COMMIT whose answer
   * never came (the connection lost, the client's timeout) may have been carried out: for a
   * change (`changed` says which, from fn's result) that is OUTCOME_UNKNOWN. One the database
   * refused (an answer with a SQLSTATE) was rolled back.
   */
  private async transaction<T>(fn: (q: Query) => Promise<T>, changed?: (out: T) => UnknownChange | undefined, ms?: number): Promise<T> {
    const time = this.deadline(ms);
    const client = await this.acquire(time);
    let dbFailed = false;
    const q: Query = async <R>(sql: string, params: unknown[] = [], rows?: number) => {
      try {
        return await time.query<R>(client, sql, params, rows);
      } catch (e) {
        dbFailed = true;
        throw this.failure(e);
      }
    };
    try {
      // Read committed whatever the database's default_transaction_isolation says: the version
      // numbering queues on the name's row lock and reads what committed before it, and migrate()
      // reads what the replica it waited for committed. Under repeatable read or serializable,
      // concurrent stores of a name failed as serialization failures (TIMEOUT), and a replica
      // starting beside another was refused (STORE_FORMAT: tables without a schema version).
      await q('BEGIN ISOLATION LEVEL READ COMMITTED');
      const out = await fn(q);
      // Its time up before the COMMIT is sent: nothing was kept, and the ROLLBACK below is cut short too.
      const commit = time.statement('COMMIT');
      try {
        await time.run(client, commit);
      } catch (e) {
        dbFailed = true;
        const change = changed?.(out);
        const answered = /^[0-9A-Z]{5}$/.test(String((e as { code?: unknown }).code));
        throw change && !answered ? outcomeUnknown(this.failure(e), change, 'the database may have committed it before its answer was lost', e) : this.failure(e);
      }
      this.release(client);
      return out;
    } catch (e) {
      let discard = dbFailed;
      if (!discard) {
        try {
          await time.query(client, 'ROLLBACK');
        } catch {
          discard = true;
        }
      }
      client.release(discard ? true : undefined);
      throw e;
    }
  }

  /** Hands a connection that served a request back to the pool, or closes it while the gate refuses requests (dropIdle). */
  private release(client: PoolClient): void {
    client.release(this.gate?.() ? true : undefined);
  }

  /** The time one request is given in the database, from now (`ms`: another, for a start's migration). */
  private deadline(ms = this.o.queryTimeoutMs ?? 5_000): Deadline {
    return new Deadline(ms);
  }

  /** A failure of the database: a set-up mistake until the storage key is bound, a storage failure after. */
  private failure(e: unknown): CertifierError {
    return storageError(e, this.boundKey === undefined ? 'start' : 'request');
  }

  private checkOpen(): void {
    if (this.closed) throw new CertifierError('INTERNAL', 'the key-server backend is closed');
  }
}

// The PostgreSQL backend's schema and how its failures are reported.
//
// migrate() runs at every start, inside one transaction holding a transaction-scoped advisory
// lock: replicas starting at once take turns, the first creates (or upgrades) the tables, the
// others find them done. key_server_schema holds the version; a database written by a newer
// key-server is refused rather than misread. A later schema adds an entry to MIGRATIONS.
//
// storageError() sorts a failure of the database into the suite's codes: unreachable, shutting
// down, too many connections (UNREACHABLE) or too slow (TIMEOUT) are worth retrying (exit
// status 3); a set-up mistake at start (no such database, a login or right refused) says which;
// anything else is INTERNAL, with the detail kept for the server log.

import { randomBytes, toHex } from '../crypto/index.ts';
import { CertifierError } from '../errors/index.ts';

/** One statement in the current transaction: its rows, of which there may be at most `rows` (default 1; the connection is cut past them). */
export type Query = <R = Record<string, unknown>>(sql: string, params?: unknown[], rows?: number) => Promise<R[]>;

export const SCHEMA_VERSION = 1;

/**
 * pg_catalog taken out of search_path, wherever it is listed: PostgreSQL then searches it first,
 * for functions, operators, types and tables alike. Listed after another schema (`evil,
 * pg_catalog`, in the URL's options or the role's settings), that schema's objects of the same
 * names came first: an `=` on text that answers true for any two names, a current_setting that
 * answers 'on'. The first schema key-server's tables are made in is unchanged (when pg_catalog
 * was itself first, CREATE TABLE was refused there, and the next one is used). The path is split
 * into its names as PostgreSQL splits it, a quoted name whole ("x,pg_catalog,y" is one schema,
 * kept), and only a name that is pg_catalog is dropped (unquoted, in any case, as PostgreSQL folds
 * it); the operators are named in pg_catalog, as it is not yet first. No backslash: a database
 * with standard_conforming_strings off would read one as an escape.
 */
const PATH_NAMES = `pg_catalog.regexp_matches(pg_catalog.current_setting('search_path'), '[[:space:]]*("(?:[^"]|"")*"|[^,"[:space:]]*)[[:space:]]*(?:,|$)', 'g') WITH ORDINALITY AS m(name, n)`;
const CATALOG_FIRST = "SELECT pg_catalog.set_config('search_path', coalesce((SELECT pg_catalog.string_agg(m.name[1], ', ' ORDER BY m.n) "
  + `FROM ${PATH_NAMES} WHERE m.name[1] OPERATOR(pg_catalog.<>) '' `
  + "AND NOT m.name[1] OPERATOR(pg_catalog.~) '^(\"pg_catalog\"|[pP][gG]_[cC][aA][tT][aA][lL][oO][gG])$'), ''), false)";

/**
 * The first query of each connection, undoing defaults of the database, the role or the URL that
 * key-server cannot work under (each built-in named in pg_catalog, as the path is mended first):
 * - search_path listing pg_catalog after another schema, whose functions, operators and views
 *   of built-in names were used in their place: pg_catalog is searched first (CATALOG_FIRST);
 * - synchronous_commit off (a common tuning): a commit answered before it is on disk, so a crash
 *   of PostgreSQL lost acknowledged stores (10 of 200 in a test); made on when it is off (a
 *   stronger setting, remote_apply say, is kept);
 * - idle_session_timeout (PostgreSQL 14 and later; nothing on older ones): the id lock's session
 *   is idle between pings and pooled connections between requests, and one shorter than that
 *   ended them again and again, so the replica refused requests until it held its id again.
 */
export const SESSION_SETTINGS = `${CATALOG_FIRST}; `
  + "SELECT pg_catalog.set_config('synchronous_commit', 'on', false) WHERE pg_catalog.current_setting('synchronous_commit') = 'off'; "
  + "SELECT pg_catalog.set_config('idle_session_timeout', '0', false) WHERE pg_catalog.current_setting('server_version_num')::int >= 140000";
/** The statements of SESSION_SETTINGS, and so the most rows it is answered with: one per statement. */
export const SESSION_SETTINGS_STATEMENTS = 3;
export const SESSION_SETTINGS_ROWS = SESSION_SETTINGS_STATEMENTS;
/**
 * The search_path of a connection once the replica has started: only the schema its tables were
 * found or made in at start ($1), so PostgreSQL searches pg_catalog first and then that schema (and
 * the session's own temporary schema, which key-server never fills). Left as the role or the URL
 * set it, a schema listed earlier that was not there at start, or not usable (one named after the
 * user, as the default "$user", public has it), and came later with a key_server_records of its
 * own, took every read and store of the running replicas, on their open connections too.
 */
export const PIN_SCHEMA = 'SELECT pg_catalog.set_config(\'search_path\', pg_catalog.quote_ident($1), false)';
/** pg_advisory_xact_lock's key for schema changes: "keysrvr1" as a big-endian 64-bit integer. */
const SCHEMA_LOCK = '7738725071454630449';

/**
 * The identity of one set of key-server tables, read at start and on each check of a connection
 * (pg-backend.ts): tables of the same names put in their place while a replica runs (their schema
 * renamed away and another made under its name, by hand or by a replica starting over it with the
 * same storage key) carry another, and the replica reads and writes nothing there. Clipped as every
 * field read is: the one written is 32 hex digits.
 */
export const TABLES_ID = `SELECT pg_catalog.left(value, 64) FROM key_server_meta WHERE key = 'tables_id'`;

/** MIGRATIONS[n - 1] takes the schema from version n - 1 to n. */
const MIGRATIONS: string[][] = [
  [
    `CREATE TABLE key_server_names (
       name pg_catalog.text COLLATE pg_catalog."C" PRIMARY KEY,
       high bigint NOT NULL CHECK (high >= 0))`,
    `CREATE TABLE key_server_records (
       name pg_catalog.text COLLATE pg_catalog."C" NOT NULL,
       version integer NOT NULL CHECK (version >= 1),
       type pg_catalog.text NOT NULL,
       exportable boolean NOT NULL,
       time_entered pg_catalog.text NOT NULL,
       size integer NOT NULL CHECK (size >= 0),
       ciphertext pg_catalog.bytea NOT NULL,
       PRIMARY KEY (name, version))`,
    'CREATE TABLE key_server_meta (key pg_catalog.text PRIMARY KEY, value pg_catalog.text NOT NULL)',
  ],
];

/** The tables the migrations create. */
const TABLES = ['key_server_names', 'key_server_records', 'key_server_meta'];

/**
 * Creates or upgrades the schema; call inside a transaction. `schema`: where the tables are, the
 * first of search_path, which the connection's search_path is then pinned to (PIN_SCHEMA) once the
 * transaction commits.
 */
export async function migrate(q: Query): Promise<{ from: number; to: number; schema: string; tablesId: string }> {
  await q('SELECT pg_catalog.pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
  const [enc] = await q<{ server_encoding: string }>('SHOW server_encoding');
  if (enc?.server_encoding !== 'UTF8') {
    throw new CertifierError('STORE_FORMAT', `the database's encoding is ${enc?.server_encoding}, not UTF8: create it with ENCODING 'UTF8'`);
  }
  await checkSchemaChoice(q);
  await q('CREATE TABLE IF NOT EXISTS key_server_schema (only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row), version integer NOT NULL)');
  const from = (await q<{ version: number }>('SELECT version FROM key_server_schema'))[0]?.version ?? 0;
  if (from > SCHEMA_VERSION) {
    throw new CertifierError('STORE_FORMAT', `the database holds key-server schema version ${from}, newer than this key-server's ${SCHEMA_VERSION}: upgrade this replica`);
  }
  if (from === 0) {
    // No version recorded, yet key-server's tables are there: key_server_schema was emptied (or
    // dropped). Which schema they have is unknown, so nothing is created over them.
    // Only in the schema key_server_schema is in (the first of search_path): tables further along
    // the path are another deployment's (checkSchemaChoice refused them unless search_path was
    // chosen explicitly).
    const found = await q<{ name: string }>(
      'SELECT name FROM pg_catalog.unnest($1::pg_catalog.text[]) AS name WHERE pg_catalog.to_regclass(pg_catalog.quote_ident(pg_catalog.current_schema()) || \'.\' || pg_catalog.quote_ident(name)) IS NOT NULL', [TABLES], TABLES.length);
    if (found.length) {
      throw new CertifierError('STORE_FORMAT', `the database holds key-server tables (${found.map((t) => t.name).join(', ')}) but key_server_schema records no schema version: it was emptied or dropped; restore it (or the database) from a backup rather than start over these tables`);
    }
  }
  for (let v = from; v < SCHEMA_VERSION; v++) for (const sql of MIGRATIONS[v]!) await q(sql);
  if (from !== SCHEMA_VERSION) {
    await q('INSERT INTO key_server_schema (version) VALUES ($1) ON CONFLICT (only_row) DO UPDATE SET version = EXCLUDED.version', [SCHEMA_VERSION]);
  }
  // Made once with the tables (or by the first start of a key-server that records it, over older
  // ones), never changed: a dump restored keeps it, tables made anew get another.
  await q("INSERT INTO key_server_meta (key, value) VALUES ('tables_id', $1) ON CONFLICT (key) DO NOTHING", [toHex(randomBytes(16))]);
  const [ids] = await q<{ schema: string; tables: string }>(`SELECT pg_catalog.current_schema() AS schema, (${TABLES_ID}) AS tables`);
  await q(PIN_SCHEMA, [ids!.schema]);
  return { from, to: SCHEMA_VERSION, schema: ids!.schema, tablesId: ids!.tables };
}

/**
 * Refuses a schema to create the tables in that would lose stores or start over beside the
 * deployment: the session's temporary schema (its tables vanish at disconnect), or, with the
 * default search_path, a first schema without key-server's tables while they sit further along
 * it (a schema named after the user, created over a deployment in public, comes first).
 */
async function checkSchemaChoice(q: Query): Promise<void> {
  const [first] = await q<{ schema: string | null }>('SELECT pg_catalog.current_schema() AS schema');
  const schema = first?.schema;
  if (!schema) return refuseUnusableSchemas(q); // no schema to create in: CREATE TABLE says so (3F000)
  const [temp] = await q('SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1 AND oid = pg_catalog.pg_my_temp_schema()', [schema]);
  if (temp) {
    throw new CertifierError('INVALID_INPUT', `the first schema of search_path is the session's temporary schema (pg_temp): key-server's tables there would vanish, every store with them, when the connection closes; take pg_temp out of search_path (the URL's options, or the role's or database's setting)`);
  }
  const names = ['key_server_schema', ...TABLES];
  const ours = await q(`SELECT 1 FROM pg_catalog.unnest($1::pg_catalog.text[]) AS name WHERE pg_catalog.to_regclass(pg_catalog.quote_ident($2) || '.' || pg_catalog.quote_ident(name)) IS NOT NULL`, [names, schema], names.length);
  if (ours.length) return;
  // A first schema named in search_path is chosen for this deployment: a new one there. One that
  // is there only as "$user" (the default, however it is set: unset, a configuration file, a role)
  // appeared over the deployment further along.
  const [path] = await q<{ search_path: string }>('SHOW search_path');
  if (!/^\s*"?\$user"?\s*(,|$)/.test(path?.search_path ?? '')) return;
  const [other] = await q<{ schema: string }>(
    `SELECT DISTINCT n.nspname AS schema FROM pg_catalog.unnest($1::pg_catalog.text[]) AS name
       JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(name)) JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`, [names], names.length);
  if (other) {
    throw new CertifierError('STORE_FORMAT', `key-server's tables are in schema "${other.schema}", further along the default search_path, but its first schema "${schema}" has none: nothing was created. To keep using the deployment in "${other.schema}", put it first in search_path (options=-c search_path=${other.schema} in the URL); to start a separate deployment in "${schema}", set search_path to it explicitly (options=-c search_path=${schema}, or ALTER ROLE ... SET search_path)`);
  }
}

/**
 * DENIED when search_path names schemas that are there but this user may not use (no USAGE):
 * CREATE TABLE's "no schema has been selected to create in" (3F000) says the same of those as of
 * schemas that do not exist, which storageError calls INVALID_INPUT.
 */
async function refuseUnusableSchemas(q: Query): Promise<void> {
  // Quoted as the GRANT to give needs them (quote_ident): "Keys" unquoted would name keys.
  const [path] = await q<{ search_path: string; user: string; userIdent: string }>('SELECT pg_catalog.current_setting(\'search_path\') AS search_path, current_user AS user, pg_catalog.quote_ident(current_user) AS "userIdent"');
  const names = searchPathNames(path?.search_path ?? '', path?.user ?? '');
  const denied = await q<{ schema: string; ident: string }>('SELECT nspname AS schema, pg_catalog.quote_ident(nspname) AS ident FROM pg_catalog.pg_namespace WHERE nspname = ANY($1::pg_catalog.text[]) AND NOT pg_catalog.has_schema_privilege(oid, \'USAGE\') ORDER BY pg_catalog.array_position($1::pg_catalog.text[], nspname::pg_catalog.text)', [names], names.length);
  if (denied.length === 0) return;
  const listed = denied.map((d) => `"${d.schema}"`).join(', ');
  throw new CertifierError('DENIED', `the key database refused this user the use of the schema${denied.length > 1 ? 's' : ''} of search_path (${listed}: no USAGE on ${denied.length > 1 ? 'them' : 'it'}), and so any schema to create key-server's tables in: GRANT USAGE, CREATE ON SCHEMA ${denied[0]!.ident} TO ${path!.userIdent} (or name a schema it may use first in search_path)`, { details: { storage: 'postgres', cause: '3F000' } });
}

/**
 * The schemas search_path lists (as current_setting gives it), as PostgreSQL reads them: quoted
 * ones as written, others with A-Z in lower case (no other letter: downcase_identifier, in a
 * database of a multi-byte encoding), each cut to 63 bytes (NAMEDATALEN - 1) of whole characters,
 * and "$user" (or $USER) as `user`.
 */
export function searchPathNames(path: string, user: string): string[] {
  const names: string[] = [];
  const item = /\s*("(?:[^"]|"")*"|[^,]*?)\s*(,|$)/y;
  for (let m = item.exec(path); m; m = item.exec(path)) {
    const [, written, comma] = m;
    const name = written!.startsWith('"') ? written!.slice(1, -1).replaceAll('""', '"') : written!.replace(/[A-Z]+/g, (s) => s.toLowerCase());
    if (name === '$user') names.push(user);
    else if (written) names.push(clipIdentifier(name));
    if (!comma) break;
  }
  return names;
}

/** An identifier as PostgreSQL keeps it: at most 63 bytes of UTF-8, cut before a character that would not fit. */
function clipIdentifier(name: string): string {
  let bytes = 0;
  let kept = '';
  for (const c of name) {
    bytes += Buffer.byteLength(c);
    if (bytes > 63) break;
    kept += c;
  }
  return kept;
}

// Node errno values of a connection that could not be made or was cut.
const NETWORK_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ETIMEDOUT', 'EADDRNOTAVAIL']);
// SQLSTATEs (the PostgreSQL manual's appendix "Error Codes") worth a retry.
const TIMEOUT_STATES = new Set(['57014', '55P03', '40001', '40P01', '25P03']); // canceled (statement_timeout), lock timeout, serialization, deadlock, idle-in-transaction timeout
/** SQLSTATE too_many_connections: the server's max_connections, or the database's or role's CONNECTION LIMIT, reached. */
export const TOO_MANY_CONNECTIONS = '53300';
const UNREACHABLE_CLASSES = ['08', '53', '57P']; // connection exception, insufficient resources (too many connections), admin/crash shutdown, cannot connect now

// Node's TLS verdicts on the database's certificate (sslmode=require / verify-full).
const TLS_TRUST_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED',
]);

/** The pg driver's words when the database asks for a password (SCRAM) and it has none, or an empty one, to give. */
const NO_PASSWORD = /^SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a (?:non-empty )?string$/;
// Refusals that at start are a set-up mistake, and while serving the database failing under a
// running replica (renamed or dropped, closed to connections, a login or right revoked).
const GONE_STATES = new Set(['3D000', '55000', '42501']);
// A table, column or constraint key-server made that is not there, or a column of another type:
// undefined_table, undefined_column, invalid_column_reference (an ON CONFLICT without its unique
// constraint), and datatype_mismatch (coalesce() over a column whose type was changed).
const OBJECT_GONE_STATES = new Set(['42P01', '42703', '42P10', '42804']);
/**
 * undefined_function for left(), which key-server calls only on its own text columns: one changed
 * to another type (time_entered made a timestamp, say). Any other function missing stays INTERNAL.
 */
const columnRetyped = (code: string, message: string) => code === '42883' && /^function (?:pg_catalog\.)?left\((?!text\b)/.test(message);

/**
 * A CertifierError for a failure of the database (our own errors pass through unchanged).
 * `during`: at 'start' a refused login or database is a set-up mistake (DENIED, NOT_FOUND); on a
 * 'request' of a replica that started, the database is failing: UNREACHABLE, worth a retry.
 */
export function storageError(e: unknown, during: 'start' | 'request' = 'start'): CertifierError {
  if (e instanceof CertifierError) return e;
  const err = e as { code?: unknown; message?: unknown } | undefined;
  const code = typeof err?.code === 'string' ? err.code : '';
  const message = typeof err?.message === 'string' ? err.message : String(e);
  const make = (c: 'UNREACHABLE' | 'TIMEOUT' | 'INTERNAL' | 'DENIED' | 'NOT_FOUND' | 'INVALID_INPUT' | 'UNTRUSTED_PEER' | 'STORE_FORMAT', what: string) =>
    new CertifierError(c, `${what}: ${message}`, { cause: e, details: { storage: 'postgres', ...(code ? { cause: code } : {}) } });
  const sqlstate = /^[0-9A-Z]{5}$/.test(code);
  // The client's own timeouts carry no SQLSTATE; a server error that merely mentions a timeout
  // (a bad statement_timeout value) is not one.
  if (TIMEOUT_STATES.has(code) || (!sqlstate && /timeout|timed out/i.test(message))) return make('TIMEOUT', 'the key database did not answer in time');
  // Reachable, but full: the sizing to look at, not the network (a supervisor's restart, or the next request, retries).
  if (code === TOO_MANY_CONNECTIONS) return make('UNREACHABLE', 'the key database refused a connection: its connection limit is reached (the server\'s max_connections, or the database\'s or role\'s CONNECTION LIMIT; each replica holds up to --pg-pool-size connections, plus one for its --replica-id)');
  if (NETWORK_ERRNOS.has(code) || UNREACHABLE_CLASSES.some((p) => code.startsWith(p)) || /Connection terminated|not queryable|connection error/i.test(message)) {
    return make('UNREACHABLE', 'the key database is unreachable');
  }
  // A Unix socket path (the host %2Fdir) with no server behind it is a refused connection; any other
  // file the URL names (sslrootcert, sslcert) that is not there is a setting to mend.
  if (code === 'ENOENT' && /\.s\.PGSQL\./.test(message)) return make('UNREACHABLE', 'the key database is unreachable');
  if (code === 'ENOENT' || code === 'EACCES') return make('INVALID_INPUT', 'a file the database URL names cannot be read');
  // A standby, or a primary being failed over: writes come back once a primary answers.
  if (code === '25006') return make('UNREACHABLE', 'the key database is read-only (a standby, or a failover in progress)');
  if (TLS_TRUST_ERRORS.has(code)) return make('UNTRUSTED_PEER', 'the key database\'s TLS certificate is not trusted (see sslmode and sslrootcert in the URL)');
  // No SQLSTATE: the driver's own refusal to answer the database's request for a password (SCRAM)
  // with none, or an empty one: a login refused, as a wrong password is.
  if (!sqlstate && NO_PASSWORD.test(message)) {
    return during === 'request'
      ? make('UNREACHABLE', 'the key database is unavailable to this replica: it now asks for a password, and none was given')
      : make('DENIED', 'the key database asks for a password, and none was given: write it in the URL (KEY_SERVER_PG_URL), or give it in PGPASSWORD or a .pgpass file');
  }
  if (during === 'request' && (GONE_STATES.has(code) || code.startsWith('28'))) return make('UNREACHABLE', 'the key database is unavailable to this replica (renamed, closed or its rights revoked since it started)');
  // Set-up mistakes, which no retry mends: say which, rather than "a bug".
  if (code.startsWith('28') || code === '42501') return make('DENIED', 'the key database refused this user (its login, password or rights; it must be allowed to create tables)');
  if (code === '3D000') return make('NOT_FOUND', 'no such key database');
  // ALTER DATABASE ... ALLOW_CONNECTIONS false: closed for maintenance, which ends.
  if (code === '55000' && /not currently accepting connections/i.test(message)) return make('UNREACHABLE', 'the key database is closed to connections');
  if (code === '22023' || code === '42704' || /does not support SSL/i.test(message)) return make('INVALID_INPUT', 'the key database refused the connection settings');
  if (code === '3F000') return make('INVALID_INPUT', 'the key database has no such schema (see search_path in the URL\'s options)');
  // A table, column or constraint key-server made is missing or other, or a column of another type
  // (restored over, or changed by hand, while the replicas ran): no bug of key-server's, and no retry mends it.
  if (OBJECT_GONE_STATES.has(code) || columnRetyped(code, message)) return make('STORE_FORMAT', 'the key database\'s tables are not as key-server made them (restored over, or changed by hand?): stop every replica, restore the database whole, then start them');
  return make('INTERNAL', 'the key database failed');
}

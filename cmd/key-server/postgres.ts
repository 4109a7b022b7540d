// `key-server serve --backend postgres`: where the database URL comes from (the environment
// first, so a password need not appear in argv or ps), the replica's name, the lock on its own
// data directory (its audit log must have one writer), the lock on its name in the database (one
// live replica per --replica-id), and the shared backend itself.

import { InvalidArgumentError } from 'commander';
import { CertifierError } from '../../lib/errors/index.ts';
import { loadPg, PgBackend } from '../../lib/keyservice/pg-backend.ts';
import { lockDataDir } from '../../lib/keyservice/replica.ts';
import { ReplicaIdLock } from '../../lib/keyservice/pg-replica-lock.ts';
import { fileError, readFileLimited } from '../../lib/files/index.ts';
import { warn } from '../common/cli.ts';

export const PG_URL_ENV = 'KEY_SERVER_PG_URL';

export interface PostgresOptions {
  data: string;
  pgUrl?: string;
  pgPoolSize?: number;
  replicaId: string;
}

export interface OpenedPostgres {
  backend: PgBackend;
  replicaId: string;
  /** The database, password removed, for the start-up line. */
  describe: string;
  /** Settles when another replica took this one's id while its lock's connection was down: stop serving. */
  idTaken: Promise<CertifierError>;
  close(): Promise<void>;
  /** close, for a start refused before it served: removes the --data this start made (DataDirLock). */
  closeUnused(): Promise<void>;
}

/**
 * --replica-id's parser: the name goes into the audit file's name (audit-ID.jsonl), the start-up
 * line and the storage backend's log lines (replica=ID),
 * so it is checked as the flags are read, not once the store is open (or, with --certifier, the
 * server certified). The default, from the host name, is made to fit.
 */
export function replicaIdArg(value: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(value)) throw new InvalidArgumentError('expected 1 to 64 letters, digits, ".", "_" or "-"');
  return value;
}

/** The URL without its password (for logs). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    u.searchParams.forEach((_, k) => {
      if (/pass/i.test(k)) u.searchParams.set(k, '***');
    });
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * The operator's own words about TLS that are refused before the driver reads the URL: a
 * parameter given twice (one reader takes the first, another the last), and an sslmode this
 * driver reads otherwise than libpq (prefer, require and verify-ca are verify-full to it unless
 * uselibpqcompat=true, and it prints a multi-line warning of its own as it parses them).
 */
function sslWordProblem(params: URLSearchParams): string | undefined {
  const names = [...params.keys()];
  const twice = names.find((k, i) => names.indexOf(k) !== i);
  if (twice) return `names ${twice} more than once`;
  const libpq = params.get('uselibpqcompat') === 'true';
  const mode = params.get('sslmode');
  if (mode === null || mode === 'disable' || mode === 'verify-full' || (mode === 'no-verify' && !libpq)) return undefined;
  if (!['prefer', 'require', 'verify-ca'].includes(mode)) return 'has an sslmode that is not one of disable, prefer, require, verify-ca, verify-full';
  if (!libpq) return `has sslmode=${mode}, which this driver takes for verify-full: write sslmode=verify-full (with sslrootcert=FILE for a private CA), or add uselibpqcompat=true for libpq's meaning of ${mode}`;
  // The driver refuses this too, but in words that start "SECURITY WARNING".
  if (mode === 'verify-ca' && !params.get('sslrootcert')) return 'has sslmode=verify-ca without sslrootcert=FILE, the CA to verify the database\'s certificate with';
  return undefined;
}

/**
 * The query parameters the driver takes over the URL's own user:password@host:port, silently
 * (?host= even over a host the URL names, which it must): the URL would connect elsewhere, or as
 * another user, than it appears to say. Each is refused, whatever its value: written once, in
 * the authority, the URL says where it goes. The value is never quoted (a password).
 */
function authorityParamProblem(params: URLSearchParams): string | undefined {
  const name = ['host', 'port', 'user', 'password'].find((k) => params.has(k));
  return name && `has the query parameter ${name}, which the driver takes over the URL's own user:password@host:port (it would connect elsewhere, or as another user, than the URL appears to say): write the ${name} there, and only there${name === 'host' ? ' (a Unix socket\'s directory too, each / written %2F: postgres://user@%2Fvar%2Frun%2Fpostgresql/database)' : ''}`;
}

/**
 * The query parameters the driver takes over the limits key-server sets on every connection (the
 * pool's statement, query and idle-in-transaction timeouts), silently: statement_timeout=0 would
 * leave a request waiting on a stalled replica's lock for ever, query_timeout=0 time out every
 * query at once. (Given in `options` as -c, a setting is applied before key-server's own.)
 */
function limitParamProblem(params: URLSearchParams): string | undefined {
  const name = ['statement_timeout', 'query_timeout', 'idle_in_transaction_session_timeout'].find((k) => params.has(k));
  return name && `has the query parameter ${name}, which the driver takes over key-server's own limit (each statement and query 5 s, a transaction left idle 10 s, so that a stalled database or replica fails requests rather than hangs them): leave it out`;
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** How the driver will connect: no TLS, TLS checking the database's certificate, or TLS without checking it. */
type Reading = 'none' | 'checked' | 'unchecked';

type Pg = Awaited<ReturnType<typeof loadPg>>;

/**
 * The driver's own reading of `url` in this environment, with PGSSLMODE set to `envMode` if
 * given: a client is made (not connected) and its TLS setting read, so the rules are the
 * driver's, not a copy of them. A string is a value the driver keeps as it is (TLS on).
 */
function driverSsl(pg: Pg, url: string, envMode?: string): unknown {
  const saved = process.env.PGSSLMODE;
  if (envMode !== undefined) process.env.PGSSLMODE = envMode;
  try {
    return (new pg.Client({ connectionString: url }) as unknown as { connectionParameters: { ssl: unknown } }).connectionParameters.ssl;
  } finally {
    if (envMode !== undefined) {
      if (saved === undefined) delete process.env.PGSSLMODE;
      else process.env.PGSSLMODE = saved;
    }
  }
}

function readingOf(ssl: unknown): Reading | undefined {
  if (!ssl) return 'none';
  if (ssl === true) return 'checked';
  if (typeof ssl === 'object') return (ssl as { rejectUnauthorized?: unknown }).rejectUnauthorized === false ? 'unchecked' : 'checked';
  return undefined;
}

const PGSSLMODE_MEANS: Record<string, Reading> = { disable: 'none', allow: 'none', 'verify-full': 'checked', 'no-verify': 'unchecked' };
const SAID: Record<Reading, string> = { none: 'no TLS', checked: 'verify-full', unchecked: 'TLS without checking the database\'s certificate' };

/**
 * What the driver makes of the URL's TLS settings and PGSSLMODE, checked against what they say:
 * a problem to refuse the URL for (USAGE or FILE_ERROR), or the setting to warn of when the
 * driver will encrypt without checking the database's certificate.
 */
function driverTlsCheck(pg: Pg, url: string, params: URLSearchParams, password: string): { refuse?: CertifierError; problem?: string; unchecked?: string } {
  let ssl: unknown;
  try {
    ssl = driverSsl(pg, url);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // Never quote a password back: a message that holds it (a short one may be in any word) is not shown.
    const message = String(err.message);
    const said = password && [password, decodeURIComponentSafe(password)].some((p) => message.includes(p)) ? '(its message is not shown: it holds the password\'s characters)' : message;
    if (typeof err.code === 'string' && err.path) return { refuse: fileError('read the PostgreSQL URL\'s file', err.path, err) };
    return { problem: `is refused by the driver (which reads PG* environment variables too): ${said}` };
  }
  const reading = readingOf(ssl);
  if (reading === undefined) return { problem: `has ssl=${params.get('ssl')}, which the driver reads as TLS on (it keeps a value it does not know as it is, a non-empty string): write ssl=0 or sslmode=disable for none, sslmode=verify-full for TLS` };
  // Whether the driver reads PGSSLMODE at all (only where the URL sets no TLS of its own); asked
  // only when it is set, since each question reads the URL's files again.
  const envMode = process.env.PGSSLMODE;
  const envRead = !!envMode && readingOf(driverSsl(pg, url, 'verify-full')) !== readingOf(driverSsl(pg, url, 'no-verify'));
  if (envRead && PGSSLMODE_MEANS[envMode!] !== reading) {
    return { problem: `sets no TLS of its own, so the driver reads PGSSLMODE=${envMode}, which it takes for ${SAID[reading]}: unset PGSSLMODE (or set it to disable, verify-full or no-verify) or write sslmode in the URL (verify-full, with sslrootcert=FILE for a private CA)` };
  }
  if (reading !== 'unchecked') return {};
  const mode = params.get('sslmode');
  return { unchecked: envRead ? 'PGSSLMODE=no-verify' : mode !== null ? `sslmode=${mode}` : 'ssl=no-verify' };
}

/** Certificates and keys are small; a file named in the URL larger than this is a mistake. */
const URL_FILE_LIMIT = 1024 * 1024;

/**
 * The files the URL names (sslrootcert, sslcert, sslkey), read first as the programs read any
 * file: a regular file, not too large, never waiting on a FIFO. The driver reads them with
 * readFileSync as it parses the URL, which would hang on a FIFO or fill memory with a huge file.
 */
async function checkUrlFiles(params: URLSearchParams, where: string): Promise<void> {
  // libpq's "the system's CAs": a file named "system" to this driver, which would use it as the CA.
  if (params.get('sslrootcert') === 'system') {
    throw new CertifierError('USAGE', `the PostgreSQL URL (${where}) has sslrootcert=system, libpq's "the system's CAs", which this driver reads as a file named system: leave sslrootcert out for the system's CAs, or give the CA file's path`);
  }
  for (const name of ['sslrootcert', 'sslcert', 'sslkey']) {
    const path = params.get(name);
    if (!path) continue;
    await readFileLimited(path, URL_FILE_LIMIT, { regularOnly: true }).catch((e: CertifierError) => {
      throw new CertifierError(e.code, `the PostgreSQL URL (${where}) names ${name} ${e.message.replace(/^cannot read /, '')}`, { cause: e });
    });
  }
}

/** The database URL from --pg-url or the environment, checked (USAGE) before anything connects. */
export async function pgUrlOf(program: string, o: PostgresOptions): Promise<string> {
  const url = o.pgUrl ?? process.env[PG_URL_ENV];
  if (!url) throw new CertifierError('USAGE', `--backend postgres needs the database URL in ${PG_URL_ENV} (or --pg-url)`);
  // Only a URL: the driver reads anything else (no scheme, a libpq "key=value" string) as a
  // database name on the default host, sending it, password and all, to whatever answers there
  // and into the error. The value is never quoted back: it may hold the password.
  const where = o.pgUrl ? '--pg-url' : PG_URL_ENV;
  if (!/^postgres(ql)?:\/\/[^/]/i.test(url)) throw new CertifierError('USAGE', `${where} must be a postgres://user@host:port/database URL (the libpq key=value form is not supported)`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CertifierError('USAGE', `the PostgreSQL URL (${where}) is not a valid URL`);
  }
  if (!parsed.hostname || parsed.pathname.length < 2) throw new CertifierError('USAGE', `the PostgreSQL URL (${where}) must name a host and a database`);
  const words = authorityParamProblem(parsed.searchParams) ?? limitParamProblem(parsed.searchParams) ?? sslWordProblem(parsed.searchParams);
  if (words) throw new CertifierError('USAGE', `the PostgreSQL URL (${where}) ${words}`);
  await checkUrlFiles(parsed.searchParams, where);
  const tls = driverTlsCheck(await loadPg(), url, parsed.searchParams, parsed.password);
  if (tls.refuse) throw tls.refuse;
  if (tls.problem) throw new CertifierError('USAGE', `the PostgreSQL URL (${where}) ${tls.problem}`);
  if (o.pgUrl && parsed.password) warn(program, `the password in --pg-url is visible to every local user (ps); set ${PG_URL_ENV} instead`);
  if (tls.unchecked) {
    warn(program, `${tls.unchecked} encrypts the connection to the database but does not check its certificate: whoever is on the path can pose as the database (it sees only sealed records, but can withhold them or answer with older ones); use sslmode=verify-full`);
  }
  return url;
}

/**
 * Opens the backend at `url` (from pgUrlOf) for replica o.replicaId (checked by replicaIdArg),
 * holding --data's lock and then the id's on the database (REPLICA_ID_IN_USE while another live
 * replica holds it), both before anything is read or written there.
 */
export async function openPostgres(url: string, o: PostgresOptions, log: (r: object) => void): Promise<OpenedPostgres> {
  const lock = await lockDataDir(o.data);
  const replicaLog = (r: object) => log({ ...r, replica: o.replicaId });
  let idLock: ReplicaIdLock | undefined;
  let backend: PgBackend;
  let opened: PgBackend | undefined;
  try {
    // Once the id is lost, the pool's connections only keep slots that taking it again may need.
    idLock = await ReplicaIdLock.take({ url, replicaId: o.replicaId, log: replicaLog, onLost: () => opened?.dropIdle() });
    const held = idLock;
    backend = opened = await PgBackend.open({ url, ...(o.pgPoolSize ? { poolSize: o.pgPoolSize } : {}), log: replicaLog, gate: () => held.refusal() });
  } catch (e) {
    await idLock?.release();
    await lock.releaseUnused();
    throw e;
  }
  const idLockHeld = idLock;
  const closeThen = (unlock: () => Promise<void>) => async () => {
    try {
      await backend.close();
    } finally {
      await idLockHeld.release();
      await unlock();
    }
  };
  // closeUnused: a start refused before it served leaves no --data it made, as with LevelDB.
  return {
    backend, replicaId: o.replicaId, describe: `${redactUrl(url)} (replica ${o.replicaId})`, idTaken: idLockHeld.taken,
    close: closeThen(lock.release), closeUnused: closeThen(lock.releaseUnused),
  };
}

// `key-server serve --backend postgres`: where the database URL comes from (the environment
// first, so a password need not appear in argv or ps), the replica's name, the lock on its own
// data directory (its audit log must have one writer), and the shared backend itself.

import { CertifierError } from '../../lib/errors/index.ts';
import { PgBackend } from '../../lib/keyservice/pg-backend.ts';
import { lockDataDir } from '../../lib/keyservice/replica.ts';
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
  close(): Promise<void>;
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
 * What is wrong with the URL's sslmode for the pg driver, which reads it otherwise than libpq:
 * prefer, require and verify-ca mean verify-full to it (with a multi-line warning of its own
 * on stderr) unless uselibpqcompat=true, and a value it does not know is ignored; the same for
 * PGSSLMODE (never with libpq's meaning) where the driver reads it.
 */
export function sslModeProblem(params: URLSearchParams, envMode = process.env.PGSSLMODE): string | undefined {
  // A parameter given twice is read as the first by one reader and the last by another.
  const names = [...params.keys()];
  const twice = names.find((k, i) => names.indexOf(k) !== i);
  if (twice) return `names ${twice} more than once`;
  // ssl=false (or any value but these) is a non-empty string to the driver: TLS on, checked.
  const ssl = params.get('ssl');
  if (ssl !== null && !['true', '1', '0', 'no-verify'].includes(ssl)) return `has ssl=${ssl}, which the driver reads as TLS on (it knows true, 1, 0 and no-verify): write ssl=0 or sslmode=disable for none, sslmode=verify-full for TLS`;
  // The driver throws on these at connect time, which would read as a bug (INTERNAL).
  const negotiation = params.get('sslnegotiation');
  if (negotiation !== null && negotiation !== 'postgres' && negotiation !== 'direct') return `has sslnegotiation=${negotiation}, not postgres or direct`;
  if (negotiation === 'direct' && params.get('sslmode') === 'disable') return 'has sslnegotiation=direct, which needs TLS, with sslmode=disable';
  // Where the URL sets no TLS of its own the driver reads PGSSLMODE, in its own way (never
  // libpq's): allow, unknown to it, is no TLS, as libpq's allow mostly is; so is any other value
  // it does not know, which is refused as likely a mistake.
  if (readsEnvSslMode(params) && envMode && !['disable', 'allow', 'verify-full', 'no-verify'].includes(envMode)) {
    const reading = ['prefer', 'require', 'verify-ca'].includes(envMode) ? 'which it takes for verify-full' : 'a value it does not know, so it connects without TLS';
    return `has none of ssl, sslmode, sslcert, sslkey, sslrootcert or sslnegotiation=direct, so the driver reads PGSSLMODE=${envMode}, ${reading}: unset PGSSLMODE (or set it to disable, verify-full or no-verify) or write sslmode in the URL (verify-full, with sslrootcert=FILE for a private CA)`;
  }
  const libpq = params.get('uselibpqcompat') === 'true';
  for (const mode of params.getAll('sslmode')) {
    if (mode === 'disable' || mode === 'verify-full' || (mode === 'no-verify' && !libpq)) continue;
    if (!['prefer', 'require', 'verify-ca'].includes(mode)) return 'has an sslmode that is not one of disable, prefer, require, verify-ca, verify-full';
    if (!libpq) return `has sslmode=${mode}, which this driver takes for verify-full: write sslmode=verify-full (with sslrootcert=FILE for a private CA), or add uselibpqcompat=true for libpq's meaning of ${mode}`;
    if (mode === 'verify-ca' && !params.get('sslrootcert')) return 'has sslmode=verify-ca without sslrootcert=FILE, the CA to verify the database\'s certificate with';
  }
  return undefined;
}

/**
 * Whether the driver reads PGSSLMODE: only while the URL gives it no TLS setting (pg-connection-
 * string makes one of ssl, a non-empty sslmode, sslcert, sslkey or sslrootcert, or
 * sslnegotiation=direct; pg reads the environment only when there is none).
 */
function readsEnvSslMode(params: URLSearchParams): boolean {
  return !params.has('ssl') && !['sslmode', 'sslcert', 'sslkey', 'sslrootcert'].some((k) => params.get(k)) && params.get('sslnegotiation') !== 'direct';
}

/**
 * The setting that has the driver encrypt without checking the database's certificate, if any:
 * sslmode=no-verify; else, without sslcert, sslkey or sslrootcert (which make a checked TLS
 * config), ssl=no-verify; else PGSSLMODE=no-verify where the driver reads it.
 */
export function noVerifySetting(params: URLSearchParams, envMode = process.env.PGSSLMODE): string | undefined {
  if (params.has('sslmode')) return params.get('sslmode') === 'no-verify' ? 'sslmode=no-verify' : undefined;
  if (['sslcert', 'sslkey', 'sslrootcert'].some((k) => params.get(k))) return undefined;
  if (params.has('ssl')) return params.get('ssl') === 'no-verify' ? 'ssl=no-verify' : undefined;
  return readsEnvSslMode(params) && envMode === 'no-verify' ? 'PGSSLMODE=no-verify' : undefined;
}

/** The database URL from --pg-url or the environment, checked (USAGE) before anything connects. */
export function pgUrlOf(program: string, o: PostgresOptions): string {
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
  const ssl = sslModeProblem(parsed.searchParams);
  if (ssl) throw new CertifierError('USAGE', `the PostgreSQL URL (${where}) ${ssl}`);
  if (o.pgUrl && parsed.password) warn(program, `the password in --pg-url is visible to every local user (ps); set ${PG_URL_ENV} instead`);
  const noVerify = noVerifySetting(parsed.searchParams);
  if (noVerify) {
    warn(program, `${noVerify} encrypts the connection to the database but does not check its certificate: whoever is on the path can pose as the database (it sees only sealed records, but can withhold them or answer with older ones); use sslmode=verify-full`);
  }
  return url;
}

/** Opens the backend at `url` (from pgUrlOf) for replica o.replicaId, holding --data's lock. */
export async function openPostgres(url: string, o: PostgresOptions, log: (r: object) => void): Promise<OpenedPostgres> {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(o.replicaId)) throw new CertifierError('USAGE', '--replica-id must be 1 to 64 letters, digits, ".", "_" or "-"');
  const unlock = await lockDataDir(o.data);
  let backend: PgBackend;
  try {
    backend = await PgBackend.open({ url, ...(o.pgPoolSize ? { poolSize: o.pgPoolSize } : {}), log: (r) => log({ ...r, replica: o.replicaId }) });
  } catch (e) {
    await unlock();
    throw e;
  }
  return {
    backend, replicaId: o.replicaId, describe: `${redactUrl(url)} (replica ${o.replicaId})`,
    close: async () => {
      try {
        await backend.close();
      } finally {
        await unlock();
      }
    },
  };
}

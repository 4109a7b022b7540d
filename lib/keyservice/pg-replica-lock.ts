// One live key-server replica per --replica-id on a PostgreSQL database. The id names the
// replica's audit file (audit-ID.jsonl) and its log lines, and defaults to the host name, so
// machines cloned from one image would otherwise serve side by side under one name, writing audit
// files of one name that clash where they are shipped together.
//
// The id is held by a session-level advisory lock (pg_try_advisory_lock on a 64-bit key derived
// from the id) on a connection of its own, outside the pool, kept open for the replica's life.
// PostgreSQL drops the lock with its session: a replica that stops, crashes or is killed frees its
// id at once (its machine's kernel closes the connection). A machine that vanished without closing
// it (power cut, network cut) is noticed by the database's TCP keepalives and user timeout, set
// short on this session, within about half a minute.
//
// While serving, the lock's connection may drop (the database restarted, the backend terminated):
// requests are then refused as UNREACHABLE (retryable) until the lock is taken again, tried at
// once and then every second. Its own earlier session, cut off from it but not yet ended by the
// database (a freeze, a partition), is not another replica: it is asked to end, and the lock tried
// again. That session is known by its pid and its start together (a pid is reused, by another
// replica's session too, once the database restarted). If another replica took the id meanwhile,
// this one stops (REPLICA_ID_IN_USE): two live replicas never answer under one id.

import { createHash } from 'node:crypto';
import type { Client } from 'pg';
import { CertifierError } from '../errors/index.ts';
import { boundedClient } from './pg-backend.ts';
import { SESSION_SETTINGS, SESSION_SETTINGS_ROWS, SESSION_SETTINGS_STATEMENTS, storageError } from './pg-schema.ts';
import { expectRows, PgSockets } from './pg-sockets.ts';

export interface ReplicaLockOptions {
  url: string;
  replicaId: string;
  /** Events worth a log line (the lock lost and taken again). */
  log?: (record: { event: string; [k: string]: unknown }) => void;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
  /** How long after a failed attempt the lock is tried again (default 1 s). */
  retryMs?: number;
  /** How often the held connection is asked whether it still answers (default 10 s). */
  pingMs?: number;
  /** How long release() waits for the database to close the connection before cutting it (default 2 s; tests). */
  closeGraceMs?: number;
  /**
   * Called when the lock is lost: the replica's pooled connections, of no use while it refuses
   * requests, hold slots of the database's connection limit that taking the id again needs (one
   * more than the lock's own while its earlier session, cut off, is not yet ended).
   */
  onLost?: () => void;
}

/** The advisory lock key of a replica id: 64 bits of a hash of it, as a signed bigint (text). */
export function replicaLockKey(replicaId: string): string {
  const h = createHash('sha256').update(`key-server replica id\n${replicaId}`).digest();
  return h.readBigInt64BE(0).toString();
}

/** What to do about an id another live replica holds, for the refusal at start and the stop. */
function idInUse(replicaId: string, holder: string, now: boolean): CertifierError {
  return new CertifierError('REPLICA_ID_IN_USE',
    `another live key-server replica ${now ? 'took' : 'holds'} --replica-id ${replicaId} on this database${holder}: give each replica its own --replica-id (the default, the host name, is the same on machines cloned from one image). A replica that stopped frees its id at once; one whose machine vanished without closing its connection, within about 30 s`,
    { details: { replicaId } });
}

/**
 * When a session began, to the microsecond (pg_stat_activity.backend_start, as text: a Date keeps
 * milliseconds only). With the pid, it names one session: a pid alone is reused once its process
 * ended, after a restart of the database say, by another replica's session as well.
 */
const STARTED = (activity: string) => `pg_catalog.to_char(${activity}.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`;

/** One database session: its backend pid and when it began. */
interface Session { pid: number; started: string | null }

/** Who holds an id this replica could not take. */
interface Holder {
  /** ' (its connection from ADDR, since TIME)', or '' where the database does not say. */
  where: string;
  /** This replica's own earlier session, cut off from it but not yet ended by the database. */
  own?: boolean;
}

export class ReplicaIdLock {
  private client: Client | undefined;
  /** The session that last held the id for this replica. */
  private session: Session | undefined;
  private released = false;
  private retry: NodeJS.Timeout | undefined;
  private ping: NodeJS.Timeout | undefined;
  private settle!: (e: CertifierError) => void;
  private readonly sockets = new PgSockets();
  /** Settles when another replica took the id while this one could not hold it: the server must stop. */
  readonly taken: Promise<CertifierError> = new Promise((resolve) => (this.settle = resolve));

  private constructor(private readonly o: ReplicaLockOptions, private readonly key: string) {}

  /** Takes the id, or refuses with REPLICA_ID_IN_USE (a failure to reach the database as storageError at start). */
  static async take(o: ReplicaLockOptions): Promise<ReplicaIdLock> {
    const lock = new ReplicaIdLock(o, replicaLockKey(o.replicaId));
    const outcome = await lock.attempt();
    if (outcome === 'held') return lock;
    throw outcome instanceof CertifierError ? outcome : idInUse(o.replicaId, outcome.where, false);
  }

  /** Why a request is refused now: the id's lock is not held (its connection dropped). */
  refusal(): CertifierError | undefined {
    if (this.client) return undefined;
    return new CertifierError('UNREACHABLE', `this replica lost the database connection holding its --replica-id ${this.o.replicaId} and is taking it again`, { details: { storage: 'postgres' } });
  }

  async release(): Promise<void> {
    this.released = true;
    clearTimeout(this.retry);
    clearInterval(this.ping);
    const c = this.client;
    this.client = undefined;
    // Bounded: a database that never answers (frozen, partitioned) would keep the socket open.
    if (c) await this.sockets.endWithin(() => c.end(), this.o.closeGraceMs);
  }

  /** One try: 'held', the holder of the id when another holds it, or the database's failure. */
  private async attempt(): Promise<'held' | Holder | CertifierError> {
    const timeout = this.o.queryTimeoutMs ?? 5_000;
    let client: Client | undefined;
    try {
      // Made inside the try: the driver reads the URL's files (sslrootcert) as it makes the client,
      // and a file gone is this try's failure, at start as while taking the id again.
      client = new (await boundedClient())({
        stream: this.sockets.make, connectionString: this.o.url, connectionTimeoutMillis: this.o.connectTimeoutMs ?? 3_000, query_timeout: timeout, statement_timeout: timeout,
        keepAlive: true, keepAliveInitialDelayMillis: 10_000, application_name: `key-server-lock ${this.o.replicaId}`,
      });
      client.on('error', () => {}); // reported through 'end'
      await client.connect();
      // The database notices a client machine that vanished within 10 + 5 * 3 s, and frees the id:
      // by keepalives when all it sent was acknowledged, and by the user timeout when its last
      // answer (to the lock, or a ping) was not, where keepalives never start and the kernel
      // retried for about 15 minutes (tcp_retries2), the id held all along.
      expectRows(client, SESSION_SETTINGS_ROWS, 4 + SESSION_SETTINGS_STATEMENTS); // the four SETs answer no rows
      await client.query(`SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 25000; ${SESSION_SETTINGS}`);
      const [row] = (await client.query<{ ok: boolean } & Session>(
        `SELECT pg_catalog.pg_try_advisory_lock($1::bigint) AS ok, pg_catalog.pg_backend_pid() AS pid, (SELECT ${STARTED('a')} FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid()) AS started`, [this.key])).rows;
      if (!row?.ok) {
        const holder = await this.holder(client);
        await client.end().catch(() => {});
        return holder;
      }
      this.session = { pid: row.pid, started: row.started };
    } catch (e) {
      await client?.end().catch(() => {});
      return storageError(e, 'start');
    }
    if (this.released) {
      await client.end().catch(() => {});
      return 'held';
    }
    this.client = client;
    client.once('end', () => this.lost(client, 'the connection ended'));
    // Asked whether it still answers, one question at a time (a frozen database answers none).
    let asking = false;
    this.ping = setInterval(() => {
      if (asking) return;
      asking = true;
      client.query('SELECT 1').then(() => void (asking = false), (e: Error) => this.lost(client, e.message));
    }, this.o.pingMs ?? 10_000).unref();
    return 'held';
  }

  /**
   * The session holding the id, as far as this user may see it: its pid and start (this replica's
   * own earlier session, not yet gone, is not another replica) and where it connects from, for
   * the refusal. An old session of this replica's is asked to end; a session whose start is not
   * shown (another user's) is never taken for it.
   */
  private async holder(client: Client): Promise<Holder> {
    const high = Number(BigInt.asUintN(64, BigInt(this.key)) >> 32n);
    const low = Number(BigInt.asUintN(32, BigInt(this.key)));
    try {
      const [h] = (await client.query<Session & { addr: string | null; since: Date | null }>(
        `SELECT l.pid, ${STARTED('a')} AS started, pg_catalog.host(a.client_addr) AS addr, a.backend_start AS since FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::pg_catalog.oid AND l.objid = $2::bigint::pg_catalog.oid AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) LIMIT 1`,
        [high, low])).rows;
      if (!h) return { where: '' };
      const own = this.session;
      if (own && h.pid === own.pid && h.started !== null && h.started === own.started) {
        await client.query('SELECT pg_catalog.pg_terminate_backend($1)', [h.pid]).catch(() => {});
        return { where: '', own: true };
      }
      return { where: h.addr || h.since ? ` (its connection${h.addr ? ` from ${h.addr}` : ''}${h.since ? `, since ${h.since.toISOString()}` : ''})` : '' };
    } catch {
      return { where: '' };
    }
  }

  private lost(client: Client, why: string): void {
    if (this.client !== client || this.released) return;
    this.client = undefined;
    clearInterval(this.ping);
    client.end().catch(() => {});
    this.o.log?.({ event: 'replica-lock-lost', detail: why, warning: 'requests are refused (UNREACHABLE) until this replica holds its --replica-id again' });
    this.o.onLost?.();
    this.retake();
  }

  /**
   * Tries to take the id again, at once and then every retryMs, until it is held, released, or
   * another holds it. `said`: the kind of the last failure logged (its code, or "own").
   */
  private retake(said?: string): void {
    void this.attempt().then((outcome) => {
      if (this.released) return;
      if (outcome === 'held') {
        this.o.log?.({ event: 'replica-lock-retaken' });
      } else if (outcome instanceof CertifierError || outcome.own) {
        // Said once per loss and kind of failure: a database that is down is retried quietly until it is
        // back, and a first try that met the connection limit (the pool's idle connections still
        // closing) is not left as the last word when the next ones reach the database.
        const why = outcome instanceof CertifierError ? { code: outcome.code, detail: outcome.message } : { detail: 'its earlier session still holds the id (it was asked to end)' };
        const kind = outcome instanceof CertifierError ? outcome.code : 'own';
        if (kind !== said) this.o.log?.({ event: 'replica-lock-retry-failed', ...why });
        this.retry = setTimeout(() => this.retake(kind), this.o.retryMs ?? 1_000);
      } else {
        const e = idInUse(this.o.replicaId, outcome.where, true);
        this.o.log?.({ event: 'replica-id-taken', code: e.code, detail: e.message, warning: 'this replica stops: another serves under its --replica-id' });
        this.settle(e);
      }
    });
  }
}

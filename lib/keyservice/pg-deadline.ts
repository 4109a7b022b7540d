// One bound on a request's whole time in the PostgreSQL database: its wait for a pooled connection
// (or the opening of one), the new connection's settings, the checks of the storage key and the
// schema, and every statement, together. Each step used to have a limit of its own (3 s to get a
// connection, 5 s a statement), one after the other: a request queued behind a stalled one for a
// connection, then stalled itself, took both, and one that met a frozen database as it got a new
// connection took 3 s and then 5 s more.

import type { PoolClient, QueryConfig } from 'pg';
import { CertifierError } from '../errors/index.ts';
import { expectRows } from './pg-sockets.ts';

/** The pg driver's message when its own client-side limit on a statement (query_timeout) passes. */
const DRIVER_TIMEOUT = 'Query read timeout';

export class Deadline {
  private readonly end: number;

  constructor(readonly ms: number) {
    this.end = performance.now() + ms;
  }

  /** The request's time up, as its TIMEOUT (retryable). */
  passed(): CertifierError {
    return new CertifierError('TIMEOUT', `the key database did not answer within the ${this.ms / 1000} s a request is given`, { details: { storage: 'postgres' } });
  }

  /** What is left of the time, in whole ms (at least 1: the driver takes 0 for no limit); TIMEOUT when nothing is. */
  left(): number {
    const left = Math.ceil(this.end - performance.now());
    if (left <= 0) throw this.passed();
    return left;
  }

  /** `p`, or TIMEOUT once the time is up; what `p` gives after that goes to `late` (a connection to hand back). */
  async race<T>(p: Promise<T>, late: (value: T) => void): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const up = new Promise<'up'>((resolve) => (timer = setTimeout(() => resolve('up'), Math.max(0, this.end - performance.now()))));
    try {
      const first = await Promise.race([p.then((value) => ({ value })), up]);
      if (first !== 'up') return first.value;
    } finally {
      clearTimeout(timer);
    }
    p.then(late, () => {});
    throw this.passed();
  }

  /** A statement given what is left of the time: TIMEOUT, before anything is sent, when nothing is. */
  statement(text: string, values: unknown[] = []): QueryConfig {
    // query_timeout per statement is the driver's (its types leave it out of QueryConfig).
    return { text, values, query_timeout: this.left() } as QueryConfig;
  }

  /**
   * Runs a statement (statement()), the driver's own timeout on it reported as the request's; an
   * answer of more than `rows` rows cuts the connection (expectRows).
   */
  async run<R>(client: PoolClient, statement: QueryConfig, rows = 1): Promise<R[]> {
    try {
      expectRows(client, rows);
      return (await client.query(statement)).rows as R[];
    } catch (e) {
      throw (e as { message?: unknown }).message === DRIVER_TIMEOUT ? this.passed() : e;
    }
  }

  /** One statement, given what is left of the time, answered with at most `rows` rows. */
  async query<R>(client: PoolClient, sql: string, params: unknown[] = [], rows = 1): Promise<R[]> {
    return this.run<R>(client, this.statement(sql, params), rows);
  }
}

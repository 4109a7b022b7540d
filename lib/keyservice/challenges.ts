// Outstanding auth-challenge nonces: each is good once, on the connection it was issued to, for
// the credential it was issued for, for a minute. Bounded so a client cannot exhaust memory: at
// most 10,000 entries of a few dozen bytes each, keeping the credential's hash, never the bytes
// it came in (a view into a request frame of up to 1 MiB would keep the whole frame). The minute
// is measured by the monotonic clock: the wall clock set back or forward changes no nonce's life.
// A connection's nonces go when it closes (none can be redeemed elsewhere), so cycling connections
// does not fill the book and push out the nonces of clients still answering theirs: the connection
// limits (256 of 16 each) keep it below its 10,000. Issuing and redeeming look at no other nonce
// than those they drop: a walk over a full book cost half a millisecond of the server's thread.

import { bytesEqual, randomBytes, sha256, toHex } from '../crypto/index.ts';
import { CHALLENGES_PER_CONNECTION, NONCE_BYTES } from './protocol.ts';

const TTL_MS = 60_000;
const MAX_OUTSTANDING = 10_000;

interface Pending {
  conn: string;
  /** SHA-256 of the credential's certificate. */
  credential: Uint8Array;
  expires: number;
}

export class ChallengeBook {
  /** By nonce (hex), in the order issued: as every nonce lives the same minute, the order they end in. */
  private readonly pending = new Map<string, Pending>();
  /** Each connection's outstanding nonces, oldest first. */
  private readonly byConnection = new Map<string, Set<string>>();
  private readonly maxOutstanding: number;

  /** `maxOutstanding`: the most nonces outstanding on all connections together (tests set a small one). */
  constructor(options: { maxOutstanding?: number } = {}) {
    this.maxOutstanding = options.maxOutstanding ?? MAX_OUTSTANDING;
  }

  /** A fresh nonce for `credential` (its certificate's DER) on connection `conn`. */
  issue(conn: string, credential: Uint8Array, now = performance.now()): Uint8Array {
    this.sweep(now);
    // Drop the oldest rather than refuse, so a confused client cannot lock itself out: of this
    // connection at its cap, then of all at theirs (both may be reached at once).
    let mine = this.byConnection.get(conn);
    if (mine && mine.size >= CHALLENGES_PER_CONNECTION) this.forget(first(mine)!);
    if (this.pending.size >= this.maxOutstanding) this.forget(first(this.pending.keys())!);
    const nonce = randomBytes(NONCE_BYTES);
    const key = toHex(nonce);
    this.pending.set(key, { conn, credential: sha256(credential), expires: now + TTL_MS });
    if (!mine?.size) this.byConnection.set(conn, (mine = new Set()));
    mine.add(key);
    return nonce;
  }

  /** Consumes a nonce: true only once, and only for the same connection and credential in time. */
  redeem(nonce: Uint8Array, conn: string, credential: Uint8Array, now = performance.now()): boolean {
    const key = toHex(nonce);
    const p = this.pending.get(key);
    if (p) this.forget(key);
    return p !== undefined && p.conn === conn && p.expires >= now && bytesEqual(p.credential, sha256(credential));
  }

  /** Drops every nonce of a connection that has closed (one is redeemed only on its own). */
  dropConnection(conn: string): void {
    for (const key of this.byConnection.get(conn) ?? []) this.pending.delete(key);
    this.byConnection.delete(conn);
  }

  /** Nonces outstanding on all connections together. */
  get outstanding(): number {
    return this.pending.size;
  }

  private forget(key: string): void {
    const p = this.pending.get(key)!;
    this.pending.delete(key);
    const mine = this.byConnection.get(p.conn)!;
    mine.delete(key);
    if (mine.size === 0) this.byConnection.delete(p.conn);
  }

  /** Drops the nonces past their minute: the first ones issued, up to the first still in it. */
  private sweep(now: number): void {
    for (const [k, p] of this.pending) {
      if (p.expires >= now) return;
      this.forget(k);
    }
  }
}

/** The first of an iterable (a Map's or Set's oldest), without walking the rest. */
function first<T>(items: Iterable<T>): T | undefined {
  for (const item of items) return item;
  return undefined;
}

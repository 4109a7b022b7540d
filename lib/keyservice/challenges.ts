// Outstanding auth-challenge nonces: each is good once, on the connection it was issued to, for
// the credential it was issued for, for a minute. Bounded so a client cannot exhaust memory: at
// most 10,000 entries of a few dozen bytes each, keeping the credential's hash, never the bytes
// it came in (a view into a request frame of up to 1 MiB would keep the whole frame). The minute
// is measured by the monotonic clock: the wall clock set back or forward changes no nonce's life.

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
  private readonly pending = new Map<string, Pending>();
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
    let mine = 0;
    for (const p of this.pending.values()) if (p.conn === conn) mine++;
    if (mine >= CHALLENGES_PER_CONNECTION) this.dropOldest((p) => p.conn === conn);
    if (this.pending.size >= this.maxOutstanding) this.dropOldest(() => true);
    const nonce = randomBytes(NONCE_BYTES);
    this.pending.set(toHex(nonce), { conn, credential: sha256(credential), expires: now + TTL_MS });
    return nonce;
  }

  /** Consumes a nonce: true only once, and only for the same connection and credential in time. */
  redeem(nonce: Uint8Array, conn: string, credential: Uint8Array, now = performance.now()): boolean {
    const key = toHex(nonce);
    const p = this.pending.get(key);
    this.pending.delete(key);
    return p !== undefined && p.conn === conn && p.expires >= now && bytesEqual(p.credential, sha256(credential));
  }

  private dropOldest(which: (p: Pending) => boolean): void {
    for (const [k, p] of this.pending) {
      if (which(p)) {
        this.pending.delete(k);
        return;
      }
    }
  }

  private sweep(now: number): void {
    for (const [k, p] of this.pending) if (p.expires < now) this.pending.delete(k);
  }
}

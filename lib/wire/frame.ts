// The wire framing of the Certifier Framework: a 4-byte little-endian unsigned length, then one
// serialized protobuf message. The length is checked against a limit before any body byte is
// buffered, so a hostile peer cannot make us allocate more than the limit.

import { CertifierError } from '../errors/index.ts';

export const DEFAULT_FRAME_LIMIT = 1024 * 1024; // 1 MiB
const HEADER = 4;

/** Prefixes `body` with its length. */
export function encodeFrame(body: Uint8Array, limit = DEFAULT_FRAME_LIMIT): Uint8Array {
  if (body.length > limit) {
    throw new CertifierError('FRAME_TOO_LARGE', `message of ${body.length} bytes exceeds the ${limit}-byte frame limit`);
  }
  // From Node's buffer pool, not zeroed (every byte is written next), and without a DataView:
  // this runs for every request and every answer.
  const out = Buffer.allocUnsafe(HEADER + body.length);
  out.writeUInt32LE(body.length, 0);
  out.set(body, HEADER);
  return out;
}

/**
 * Incremental decoder: feed it chunks as they arrive and it hands back whole frame bodies.
 * After an error it stays failed; the caller should close the connection.
 *
 * Every chunk is read through when it arrives, nothing of it kept but the bytes of a frame still
 * incomplete, copied: a peer sending a frame as one-byte TLS records or TCP segments costs time
 * and memory in proportion to the frame, not an object per byte dropped one by one (quadratic).
 */
export class FrameDecoder {
  /** The header being read when it came in pieces (its first `headerFilled` bytes). */
  private readonly header = new Uint8Array(HEADER);
  private headerFilled = 0;
  private expected = -1; // body length of the frame being read, -1 while reading the header
  /** The body being assembled from several chunks: its first `bodyFilled` bytes, grown by doubling up to `expected`. */
  private body: Uint8Array | undefined;
  private bodyFilled = 0;
  private failure: CertifierError | undefined; // set once a frame is refused; rethrown from then on

  constructor(readonly limit = DEFAULT_FRAME_LIMIT) {
    if (!Number.isInteger(limit) || limit < 1 || limit > 0xffffffff) throw new RangeError('frame limit out of range');
  }

  /** Bytes received but not yet returned as a frame, the header of the frame being read included. */
  get pending(): number {
    return this.expected >= 0 ? HEADER + this.bodyFilled : this.headerFilled;
  }

  /** Adds a chunk; returns every frame completed by it (possibly none). */
  push(chunk: Uint8Array): Uint8Array[] {
    const { frames, error } = this.read(chunk);
    if (error) throw error;
    return frames;
  }

  /**
   * As push, but the frames the chunk completed before a length over the limit come back with
   * that error rather than being lost with it (a server answers the requests before the bad bytes).
   */
  read(chunk: Uint8Array): { frames: Uint8Array[]; error?: CertifierError } {
    if (this.failure) return { frames: [], error: this.failure };
    const frames: Uint8Array[] = [];
    let at = 0;
    for (;;) {
      if (this.expected < 0) {
        let length: number;
        if (this.headerFilled === 0 && chunk.length - at >= HEADER) {
          length = (chunk[at]! | (chunk[at + 1]! << 8) | (chunk[at + 2]! << 16) | (chunk[at + 3]! << 24)) >>> 0; // read in place
          at += HEADER;
        } else {
          const k = Math.min(HEADER - this.headerFilled, chunk.length - at);
          this.header.set(chunk.subarray(at, at + k), this.headerFilled);
          this.headerFilled += k;
          at += k;
          if (this.headerFilled < HEADER) break;
          const h = this.header;
          length = (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
          this.headerFilled = 0;
        }
        if (length > this.limit) {
          this.failure = new CertifierError('FRAME_TOO_LARGE', `peer announced a ${length}-byte message; the limit is ${this.limit}`, { details: { announced: length, limit: this.limit } });
          return { frames, error: this.failure };
        }
        this.expected = length;
      }
      const left = chunk.length - at;
      if (this.bodyFilled === 0 && left >= this.expected) {
        // The whole body is in this chunk: a view, no copy (a pipelined chunk holds many frames).
        frames.push(this.expected === 0 ? new Uint8Array(0) : chunk.subarray(at, at + this.expected));
        at += this.expected;
        this.expected = -1;
        continue;
      }
      if (left === 0) break;
      const k = Math.min(this.expected - this.bodyFilled, left);
      this.reserve(this.bodyFilled + k);
      this.body!.set(chunk.subarray(at, at + k), this.bodyFilled);
      this.bodyFilled += k;
      at += k;
      if (this.bodyFilled < this.expected) break;
      frames.push(this.body!);
      this.body = undefined;
      this.bodyFilled = 0;
      this.expected = -1;
    }
    return { frames };
  }

  /** Call at end of stream: throws FRAME_TRUNCATED if a frame was cut short. */
  end(): void {
    if (this.failure) throw this.failure;
    if (this.pending > 0) {
      const need = this.expected >= 0 ? `${this.expected} body bytes` : `${HEADER} header bytes`;
      throw new CertifierError('FRAME_TRUNCATED', `connection ended inside a frame (${this.expected >= 0 ? this.bodyFilled : this.headerFilled} bytes of ${need})`);
    }
  }

  /**
   * Room for `n` bytes of the body: doubled as it fills, never past the announced length, so
   * what is held is at most twice what was received (a header alone reserves nothing).
   */
  private reserve(n: number): void {
    const have = this.body?.length ?? 0;
    if (n <= have) return;
    const grown = new Uint8Array(Math.min(this.expected, Math.max(n, 2 * have)));
    if (this.body) grown.set(this.body.subarray(0, this.bodyFilled));
    this.body = grown;
  }
}

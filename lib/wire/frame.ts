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
 */
export class FrameDecoder {
  private chunks: Uint8Array[] = [];
  /** Bytes of chunks[0] already returned: read past, not sliced off (a pipelined chunk holds many frames). */
  private offset = 0;
  private buffered = 0;
  private expected = -1; // body length of the frame being read, -1 while reading the header
  private failure: CertifierError | undefined; // set once a frame is refused; rethrown from then on

  constructor(readonly limit = DEFAULT_FRAME_LIMIT) {
    if (!Number.isInteger(limit) || limit < 1 || limit > 0xffffffff) throw new RangeError('frame limit out of range');
  }

  /** Bytes received but not yet returned as a frame, the header of the frame being read included. */
  get pending(): number {
    return this.buffered + (this.expected >= 0 ? HEADER : 0);
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
    if (chunk.length === 0) return { frames: [] };
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Uint8Array[] = [];
    for (;;) {
      if (this.expected < 0) {
        if (this.buffered < HEADER) break;
        const length = this.takeHeader();
        if (length > this.limit) {
          this.failure = new CertifierError('FRAME_TOO_LARGE', `peer announced a ${length}-byte message; the limit is ${this.limit}`);
          return { frames, error: this.failure };
        }
        this.expected = length;
      }
      if (this.buffered < this.expected) break;
      frames.push(this.take(this.expected));
      this.expected = -1;
    }
    return { frames };
  }

  /** Call at end of stream: throws FRAME_TRUNCATED if a frame was cut short. */
  end(): void {
    if (this.failure) throw this.failure;
    if (this.buffered > 0 || this.expected >= 0) {
      const need = this.expected >= 0 ? `${this.expected} body bytes` : `${HEADER} header bytes`;
      throw new CertifierError('FRAME_TRUNCATED', `connection ended inside a frame (${this.buffered} bytes of ${need})`);
    }
  }

  /** The next 4 bytes as a little-endian length, read in place when one chunk holds them. */
  private takeHeader(): number {
    const first = this.chunks[0]!;
    const o = this.offset;
    if (first.length - o < HEADER) {
      const h = this.take(HEADER);
      return (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
    }
    this.advance(first, HEADER);
    return (first[o]! | (first[o + 1]! << 8) | (first[o + 2]! << 16) | (first[o + 3]! << 24)) >>> 0;
  }

  /** Moves past `n` bytes of the first chunk, dropping it once all of it is read. */
  private advance(first: Uint8Array, n: number): void {
    this.offset += n;
    this.buffered -= n;
    if (this.offset === first.length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }

  private take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0); // an empty body: there may be no chunk left to slice
    const first = this.chunks[0]!;
    const o = this.offset;
    if (first.length - o >= n) {
      const out = first.subarray(o, o + n);
      this.advance(first, n);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length - this.offset, n - filled);
      out.set(c.subarray(this.offset, this.offset + k), filled);
      filled += k;
      this.advance(c, k);
    }
    return out;
  }
}

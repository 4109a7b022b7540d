// Framing: a 4-byte little-endian length, then the body. These tests feed FrameDecoder the same
// byte stream cut in every way a socket might cut it and expect the same frames every time.

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertifierError, type ErrorCode } from '../../lib/errors/index.ts';
import { DEFAULT_FRAME_LIMIT, FrameDecoder, encodeFrame } from '../../lib/wire/index.ts';
import { VECTORS } from '../support/helpers.ts';
import { prng } from '../support/prng.ts';

/** Runs `fn` and returns the CertifierError it throws; fails the test on anything else. */
function thrownBy(fn: () => unknown): CertifierError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  if (caught === undefined) throw new Error('expected a CertifierError, but nothing was thrown');
  if (!(caught instanceof CertifierError)) throw new Error(`expected a CertifierError, got ${String(caught)}`, { cause: caught });
  return caught;
}

function expectCode(fn: () => unknown, code: ErrorCode): CertifierError {
  const e = thrownBy(fn);
  expect(e.code, e.message).to.equal(code);
  return e;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Deterministic bytes so failures are reproducible: byte i of frame k is (i * 31 + k * 7) mod 256. */
function body(length: number, k = 0): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + k * 7) & 0xff;
  return b;
}

/** Feeds `chunks` to a fresh decoder, checks the stream ended cleanly, returns the frames (as plain copies). */
function decodeChunks(chunks: Uint8Array[], limit?: number): Uint8Array[] {
  const d = new FrameDecoder(limit);
  const frames: Uint8Array[] = [];
  for (const c of chunks) for (const f of d.push(c)) frames.push(Uint8Array.from(f));
  expect(d.pending).to.equal(0);
  d.end();
  return frames;
}

/** A header announcing `length` bytes. */
function header(length: number): Uint8Array {
  const h = new Uint8Array(4);
  new DataView(h.buffer).setUint32(0, length, true);
  return h;
}

const treq = readFileSync(join(VECTORS, 'certifier-original', 'treq.bin'));

describe('wire framing', () => {
  describe('encodeFrame', () => {
    it('prefixes the body with its length as 4 little-endian bytes', () => {
      const framed = encodeFrame(body(300));
      expect(framed.length).to.equal(304);
      expect([...framed.subarray(0, 4)]).to.deep.equal([0x2c, 0x01, 0x00, 0x00]);
      expect(framed.subarray(4)).to.deep.equal(body(300));
    });

    it('frames an empty body as four zero bytes', () => {
      expect([...encodeFrame(new Uint8Array(0))]).to.deep.equal([0, 0, 0, 0]);
    });

    it('frames a body that is a view into a larger buffer without leaking the rest of it', () => {
      const big = body(64);
      const framed = encodeFrame(big.subarray(10, 20));
      expect([...framed]).to.deep.equal([10, 0, 0, 0, ...big.subarray(10, 20)]);
    });

    it('accepts a body of exactly the limit', () => {
      expect(encodeFrame(body(8), 8).length).to.equal(12);
      expect(encodeFrame(new Uint8Array(DEFAULT_FRAME_LIMIT)).length).to.equal(DEFAULT_FRAME_LIMIT + 4);
    });

    it('refuses a body one byte over a custom limit with FRAME_TOO_LARGE', () => {
      expectCode(() => encodeFrame(body(9), 8), 'FRAME_TOO_LARGE');
    });

    it('refuses a body one byte over the default 1 MiB limit with FRAME_TOO_LARGE', () => {
      expect(DEFAULT_FRAME_LIMIT).to.equal(1024 * 1024);
      expectCode(() => encodeFrame(new Uint8Array(DEFAULT_FRAME_LIMIT + 1)), 'FRAME_TOO_LARGE');
    });
  });

  describe('FrameDecoder round trips', () => {
    const bodies = [body(0), body(1, 1), body(255, 2), body(256, 3), treq, body(0), body(70_000, 4)];

    it('returns every frame of a stream pushed in one chunk, in order and unchanged', () => {
      expect(decodeChunks([concat(bodies.map((b) => encodeFrame(b)))])).to.deep.equal(bodies.map((b) => Uint8Array.from(b)));
    });

    it('returns every frame when each frame arrives in its own chunk', () => {
      expect(decodeChunks(bodies.map((b) => encodeFrame(b)))).to.deep.equal(bodies.map((b) => Uint8Array.from(b)));
    });

    it('returns the real trust request vector byte for byte', () => {
      const [frame, ...rest] = decodeChunks([encodeFrame(treq)]);
      expect(rest).to.have.length(0);
      expect(Buffer.from(frame!).equals(treq)).to.equal(true);
    });

    it('returns nothing for an empty chunk and keeps nothing pending', () => {
      const d = new FrameDecoder();
      expect(d.push(new Uint8Array(0))).to.deep.equal([]);
      expect(d.pending).to.equal(0);
      d.end();
    });

    it('counts received bytes that do not yet form a frame as pending', () => {
      const d = new FrameDecoder();
      const framed = encodeFrame(body(10));
      expect(d.push(framed.subarray(0, 2))).to.deep.equal([]);
      expect(d.pending).to.equal(2);
      expect(d.push(framed.subarray(2, 9))).to.deep.equal([]);
      expect(d.pending).to.equal(9); // the header of the frame being read counts: it is part of a frame started
      expect(d.push(framed.subarray(9))).to.have.length(1);
      expect(d.pending).to.equal(0);
      // A header alone is a frame started, not an idle connection (it gets the read timeout).
      expect(d.push(framed.subarray(0, 4))).to.deep.equal([]);
      expect(d.pending).to.equal(4);
    });

    it('keeps a completed frame intact when the caller reuses its chunk buffers afterwards', () => {
      const d = new FrameDecoder();
      const framed = encodeFrame(body(20));
      const first = Uint8Array.from(framed.subarray(0, 10));
      const second = Uint8Array.from(framed.subarray(10));
      expect(d.push(first)).to.deep.equal([]);
      const [frame] = d.push(second);
      first.fill(0xee); // a frame assembled across chunks must be a copy, not a view of `first`
      expect(frame).to.deep.equal(body(20));
    });
  });

  describe('FrameDecoder with arbitrary chunking', () => {
    const bodies = [body(5, 1), body(0), body(1, 2), body(300, 3), body(0), body(0), body(17, 4)];
    const stream = concat(bodies.map((b) => encodeFrame(b)));
    const expected = bodies.map((b) => Uint8Array.from(b));

    it('yields the same frames whichever single position the stream is split at', () => {
      for (let cut = 0; cut <= stream.length; cut++) {
        const got = decodeChunks([stream.subarray(0, cut), stream.subarray(cut)]);
        expect(got, `split at ${cut}`).to.deep.equal(expected);
      }
    });

    it('yields the same frames whichever two positions the stream is split at', () => {
      const small = concat([body(0), body(3, 1), body(0), body(6, 2)].map((b) => encodeFrame(b)));
      const want = [body(0), body(3, 1), body(0), body(6, 2)];
      for (let a = 0; a <= small.length; a++) {
        for (let b = a; b <= small.length; b++) {
          const got = decodeChunks([small.subarray(0, a), small.subarray(a, b), small.subarray(b)]);
          expect(got, `split at ${a} and ${b}`).to.deep.equal(want);
        }
      }
    });

    it('yields the same frames when the stream arrives one byte at a time', () => {
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
      expect(decodeChunks(chunks)).to.deep.equal(expected);
    });

    // Found by test/fuzz: each byte of a frame was kept as its own chunk and the chunks were
    // dropped one Array.shift at a time, so a peer sending a frame as one-byte TLS records or TCP
    // segments stalled the event loop quadratically (a 256 KiB frame: minutes) and held an object
    // per byte. The whole 1 MiB a frame may be, one byte per chunk, is now read in one pass.
    it('reads a frame of the whole 1 MiB limit that arrives one byte per chunk (one-byte TLS records)', () => {
      const framed = encodeFrame(body(DEFAULT_FRAME_LIMIT));
      const d = new FrameDecoder();
      const frames: Uint8Array[] = [];
      for (let i = 0; i < framed.length; i++) frames.push(...d.push(framed.subarray(i, i + 1)));
      expect(frames).to.have.length(1);
      expect(Buffer.compare(frames[0]!, body(DEFAULT_FRAME_LIMIT))).to.equal(0);
      expect(d.pending).to.equal(0);
      d.end();
    });

    it('yields the frames that were encoded for random streams cut at random places (seed 0x5eed, 300 runs)', () => {
      const random = prng(0x5eed);
      const int = (n: number) => Math.floor(random() * n);
      for (let run = 0; run < 300; run++) {
        const count = int(8);
        // Lengths favour the interesting small sizes (0 and less than a header) but reach 2 KiB.
        const frames = Array.from({ length: count }, (_, k) => body(random() < 0.3 ? int(5) : int(2048), run + k));
        const bytes = concat(frames.map((f) => encodeFrame(f)));
        const chunks: Uint8Array[] = [];
        for (let at = 0; at < bytes.length; ) {
          const size = random() < 0.5 ? 1 + int(6) : 1 + int(600);
          chunks.push(bytes.subarray(at, at + size));
          at += size;
        }
        if (random() < 0.2) chunks.splice(int(chunks.length + 1), 0, new Uint8Array(0));
        expect(decodeChunks(chunks), `run ${run}: ${count} frames in ${chunks.length} chunks`).to.deep.equal(frames);
      }
    });
  });

  describe('zero-length frames', () => {
    it('returns an empty frame for a lone zero header', () => {
      const d = new FrameDecoder();
      const frames = d.push(Uint8Array.of(0, 0, 0, 0));
      expect(frames).to.have.length(1);
      expect(frames[0]!.length).to.equal(0);
      expect(d.pending).to.equal(0);
      d.end();
    });

    it('returns an empty frame whose header arrives in pieces', () => {
      const d = new FrameDecoder();
      expect(d.push(Uint8Array.of(0, 0))).to.deep.equal([]);
      const frames = d.push(Uint8Array.of(0, 0));
      expect(frames.map((f) => f.length)).to.deep.equal([0]);
      d.end();
    });

    it('returns an empty frame followed by the next frame in a later chunk', () => {
      const d = new FrameDecoder();
      expect(d.push(encodeFrame(new Uint8Array(0))).map((f) => f.length)).to.deep.equal([0]);
      expect(d.push(encodeFrame(body(3)))).to.deep.equal([body(3)]);
      d.end();
    });

    it('returns three consecutive empty frames from one chunk', () => {
      const d = new FrameDecoder();
      expect(d.push(new Uint8Array(12)).map((f) => f.length)).to.deep.equal([0, 0, 0]);
      d.end();
    });
  });

  describe('length limit', () => {
    it('rejects a 4 GiB - 1 length prefix with FRAME_TOO_LARGE as soon as the 4th header byte arrives', () => {
      const d = new FrameDecoder();
      expect(d.push(Uint8Array.of(0xff))).to.deep.equal([]);
      expect(d.push(Uint8Array.of(0xff))).to.deep.equal([]);
      expect(d.push(Uint8Array.of(0xff))).to.deep.equal([]);
      const e = expectCode(() => d.push(Uint8Array.of(0xff)), 'FRAME_TOO_LARGE');
      expect(e.message).to.contain(String(0xffffffff));
    });

    it('rejects a 4 GiB - 1 length prefix with FRAME_TOO_LARGE before reading the body, even when body bytes arrive with it', () => {
      const d = new FrameDecoder();
      expectCode(() => d.push(concat([header(0xffffffff), body(100)])), 'FRAME_TOO_LARGE');
    });

    it('rejects an oversized prefix that follows valid frames in the same chunk', () => {
      const d = new FrameDecoder();
      expectCode(() => d.push(concat([encodeFrame(body(3)), header(DEFAULT_FRAME_LIMIT + 1)])), 'FRAME_TOO_LARGE');
    });

    it('read gives the frames a chunk completed before an oversized prefix, with the error, and only the error after it', () => {
      const d = new FrameDecoder();
      const { frames, error } = d.read(concat([encodeFrame(body(3)), encodeFrame(body(5)), header(DEFAULT_FRAME_LIMIT + 1), body(7)]));
      expect(frames.map((f) => f.length)).to.deep.equal([3, 5]);
      expect(error?.code).to.equal('FRAME_TOO_LARGE');
      expect(d.read(encodeFrame(body(2)))).to.deep.equal({ frames: [], error });
      expectCode(() => d.end(), 'FRAME_TOO_LARGE');
    });

    it('accepts a length of exactly the limit and rejects limit + 1', () => {
      const ok = new FrameDecoder(16);
      expect(ok.push(encodeFrame(body(16), 16))).to.deep.equal([body(16)]);
      const bad = new FrameDecoder(16);
      expectCode(() => bad.push(header(17)), 'FRAME_TOO_LARGE');
    });

    it('rejects a length one over the default 1 MiB limit', () => {
      expectCode(() => new FrameDecoder().push(header(DEFAULT_FRAME_LIMIT + 1)), 'FRAME_TOO_LARGE');
    });

    it('stays failed after FRAME_TOO_LARGE instead of reading the rejected body as new frames', () => {
      const d = new FrameDecoder(16);
      expectCode(() => d.push(header(1000)), 'FRAME_TOO_LARGE');
      // What follows would look like a valid empty frame if the decoder carried on.
      expectCode(() => d.push(Uint8Array.of(0, 0, 0, 0)), 'FRAME_TOO_LARGE');
      expectCode(() => d.end(), 'FRAME_TOO_LARGE');
    });

    it('refuses limits outside 1 to 2^32 - 1 with a RangeError', () => {
      expect(() => new FrameDecoder(0)).to.throw(RangeError);
      expect(() => new FrameDecoder(2 ** 32)).to.throw(RangeError);
      expect(() => new FrameDecoder(1.5)).to.throw(RangeError);
      expect(new FrameDecoder(0xffffffff).limit).to.equal(0xffffffff);
    });
  });

  describe('end of stream', () => {
    it('ends cleanly with nothing received', () => {
      expect(() => new FrameDecoder().end()).not.to.throw();
    });

    it('ends cleanly exactly at a frame boundary', () => {
      const d = new FrameDecoder();
      d.push(concat([encodeFrame(body(7)), encodeFrame(body(0))]));
      expect(() => d.end()).not.to.throw();
    });

    for (const got of [1, 2, 3]) {
      it(`throws FRAME_TRUNCATED when the stream ends after ${got} of the 4 header bytes`, () => {
        const d = new FrameDecoder();
        d.push(encodeFrame(body(10)).subarray(0, got));
        expectCode(() => d.end(), 'FRAME_TRUNCATED');
      });
    }

    it('throws FRAME_TRUNCATED when the stream ends right after a complete header', () => {
      const d = new FrameDecoder();
      d.push(header(10));
      expectCode(() => d.end(), 'FRAME_TRUNCATED');
    });

    it('throws FRAME_TRUNCATED when the stream ends inside a body', () => {
      const d = new FrameDecoder();
      expect(d.push(encodeFrame(body(10)).subarray(0, 9))).to.deep.equal([]);
      expectCode(() => d.end(), 'FRAME_TRUNCATED');
    });

    it('throws FRAME_TRUNCATED when a partial frame follows complete ones', () => {
      const d = new FrameDecoder();
      const frames = d.push(concat([encodeFrame(body(2)), encodeFrame(body(0)), encodeFrame(body(5)).subarray(0, 6)]));
      expect(frames.map((f) => f.length)).to.deep.equal([2, 0]);
      expectCode(() => d.end(), 'FRAME_TRUNCATED');
    });
  });
});

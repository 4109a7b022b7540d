// A strict DER reader and a minimal DER writer (X.690), enough for certificates we issue and
// check: the reader refuses BER leniencies (indefinite or non-minimal lengths, long-form tags).

import { concatBytes } from '../crypto/index.ts';

export const TAG = {
  BOOLEAN: 0x01, INTEGER: 0x02, BIT_STRING: 0x03, OCTET_STRING: 0x04, NULL: 0x05, OID: 0x06,
  UTF8: 0x0c, PRINTABLE: 0x13, IA5: 0x16, UTC_TIME: 0x17, GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30, SET: 0x31,
} as const;

/** Thrown by the reader; callers turn it into the error code that fits what they were reading. */
export class DerError extends Error {
  override name = 'DerError';
  /** Set when the element itself was fine but bytes followed it. */
  readonly trailing: boolean;
  constructor(message: string, trailing = false) {
    super(message);
    this.trailing = trailing;
  }
}

export interface Tlv {
  tag: number;
  /** The value bytes (a view into the input). */
  contents: Uint8Array;
  /** The whole element, header included (a view into the input). */
  bytes: Uint8Array;
}

const isConstructed = (tag: number) => (tag & 0x20) !== 0;

function readLength(buf: Uint8Array, at: number, limit: number): { length: number; next: number } {
  const first = at < limit ? buf[at] : undefined;
  if (first === undefined) throw new DerError('truncated length');
  if (first < 0x80) return { length: first, next: at + 1 };
  const n = first & 0x7f;
  if (n === 0) throw new DerError('indefinite length');
  if (n > 4) throw new DerError('length too large');
  if (at + 1 + n > limit) throw new DerError('truncated length');
  if (buf[at + 1] === 0) throw new DerError('non-minimal length');
  let length = 0;
  for (let i = 0; i < n; i++) length = length * 256 + buf[at + 1 + i]!;
  if (length < 0x80) throw new DerError('non-minimal length');
  return { length, next: at + 1 + n };
}

/** The header of the element at `offset`, which must end by `limit`: its tag, where its contents start, where it ends. */
function headerAt(buf: Uint8Array, offset: number, limit = buf.length): { tag: number; next: number; end: number } {
  const tag = buf[offset];
  if (tag === undefined || offset >= limit) throw new DerError('truncated element');
  if ((tag & 0x1f) === 0x1f) throw new DerError('long-form tags are not used here');
  const { length, next } = readLength(buf, offset + 1, limit);
  const end = next + length;
  if (end > limit) throw new DerError('element runs past the end of its container');
  return { tag, next, end };
}

/**
 * An element as read: where it lies in the buffer, its views made when first asked for. A
 * certificate holds a hundred elements or so, most of whose views nobody reads, and each view
 * is an object to allocate (and collect) for every new peer.
 */
class Element implements Tlv {
  private contentsView: Uint8Array | undefined;
  private bytesView: Uint8Array | undefined;
  constructor(readonly tag: number, readonly buf: Uint8Array, readonly start: number, readonly next: number, readonly end: number) {}

  get contents(): Uint8Array {
    return (this.contentsView ??= this.buf.subarray(this.next, this.end));
  }

  get bytes(): Uint8Array {
    return (this.bytesView ??= this.buf.subarray(this.start, this.end));
  }
}

/** Reads one element starting at `offset`; returns it and the offset just past it. */
export function readTlv(buf: Uint8Array, offset = 0): { tlv: Tlv; end: number } {
  const { tag, next, end } = headerAt(buf, offset);
  return { tlv: new Element(tag, buf, offset, next, end), end };
}

/** The whole of `buf` must be exactly one element: trailing bytes are refused. */
export function readOne(buf: Uint8Array): Tlv {
  const { tlv, end } = readTlv(buf, 0);
  if (end !== buf.length) throw new DerError(`${buf.length - end} trailing byte(s) after the element`, true);
  return tlv;
}

/** The elements inside a constructed element. */
export function children(tlv: Tlv): Tlv[] {
  if (!isConstructed(tlv.tag)) throw new DerError('expected a constructed element');
  // Read in place in the buffer an element of ours came from, with its contents' end as the limit.
  let buf: Uint8Array;
  let at: number;
  let end: number;
  if (tlv instanceof Element) {
    buf = tlv.buf;
    at = tlv.next;
    end = tlv.end;
  } else {
    buf = tlv.contents;
    at = 0;
    end = buf.length;
  }
  const out: Tlv[] = [];
  while (at < end) {
    const h = headerAt(buf, at, end);
    out.push(new Element(h.tag, buf, at, h.next, h.end));
    at = h.end;
  }
  return out;
}

/**
 * Walks every constructed element so a BER-only encoding anywhere in the tree is refused. The
 * same checks as readTlv, without building an element per node: this runs over every byte of
 * every new peer certificate before the parse proper reads it again.
 */
export function checkTree(tlv: Tlv): void {
  if (isConstructed(tlv.tag)) checkElements(tlv.contents, 0, tlv.contents.length, 1);
}

/** The elements of buf[start, end), each `depth` levels below the top element, and all below them. */
function checkElements(buf: Uint8Array, start: number, end: number, depth: number): void {
  for (let at = start; at < end;) {
    if (depth > 32) throw new DerError('nesting too deep');
    const h = headerAt(buf, at, end);
    if (isConstructed(h.tag)) checkElements(buf, h.next, h.end, depth + 1);
    at = h.end;
  }
}

export function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (!tlv || tlv.tag !== tag) throw new DerError(`${what}: unexpected element`);
  return tlv;
}

export function decodeOid(contents: Uint8Array): string {
  if (contents.length === 0 || (contents[contents.length - 1]! & 0x80) !== 0) throw new DerError('bad object identifier');
  // Arcs are numbers while they are exact (below 2^53); a longer one, such as the 128-bit arcs of
  // 2.25 UUID OIDs, continues as a bigint.
  const arcs: (number | bigint)[] = [];
  let v = 0;
  let big: bigint | undefined;
  for (let i = 0; i < contents.length; i++) {
    const b = contents[i]!;
    if (v === 0 && big === undefined && b === 0x80) throw new DerError('non-minimal object identifier arc');
    if (big === undefined && v < 2 ** 45) v = v * 128 + (b & 0x7f);
    else big = ((big ?? BigInt(v)) << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(big ?? v);
      v = 0;
      big = undefined;
    }
  }
  const first = arcs[0]!;
  const head = first < 40 ? `0.${first}` : first < 80 ? `1.${Number(first) - 40}` : `2.${typeof first === 'bigint' ? first - 80n : first - 80}`;
  return arcs.length === 1 ? head : `${head}.${arcs.slice(1).join('.')}`;
}

// --- writer -------------------------------------------------------------------------------

function encodeLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  const body = concatBytes(...contents);
  return concatBytes(Uint8Array.of(tag), encodeLength(body.length), body);
}

export const seq = (...parts: Uint8Array[]) => tlv(TAG.SEQUENCE, ...parts);
export const set = (...parts: Uint8Array[]) => tlv(TAG.SET, ...parts);
/** [n] EXPLICIT: a constructed context tag wrapping a whole element. */
export const explicit = (n: number, inner: Uint8Array) => tlv(0xa0 | n, inner);
/** [n] IMPLICIT on a primitive type: the context tag replaces the universal one. */
export const implicitPrimitive = (n: number, contents: Uint8Array) => tlv(0x80 | n, contents);

/** A non-negative INTEGER from big-endian magnitude bytes, minimally encoded. */
export function encodeUnsigned(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.length === 0 ? Uint8Array.of(0) : magnitude.subarray(i);
  return tlv(TAG.INTEGER, m[0]! & 0x80 ? concatBytes(Uint8Array.of(0), m) : m);
}

export const encodeSmallInt = (n: number) => encodeUnsigned(Uint8Array.of(n));

export function encodeOid(oid: string): Uint8Array {
  const arcs = oid.split('.').map((a) => BigInt(a));
  if (arcs.length < 2 || arcs[0]! > 2n) throw new RangeError(`bad object identifier ${oid}`);
  const values = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)];
  const out: number[] = [];
  for (const v of values) {
    const chunk: number[] = [Number(v & 0x7fn)];
    for (let rest = v >> 7n; rest > 0n; rest >>= 7n) chunk.unshift(Number(rest & 0x7fn) | 0x80);
    out.push(...chunk);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

export const encodeUtf8 = (s: string) => tlv(TAG.UTF8, new TextEncoder().encode(s));
export const encodeOctets = (b: Uint8Array) => tlv(TAG.OCTET_STRING, b);
export const encodeBool = (b: boolean) => tlv(TAG.BOOLEAN, Uint8Array.of(b ? 0xff : 0x00));
export const encodeNull = () => tlv(TAG.NULL);
export const encodeBitString = (b: Uint8Array, unusedBits = 0) => tlv(TAG.BIT_STRING, Uint8Array.of(unusedBits), b);

/** The bytes of an IA5String value (ASCII only). */
export function ia5Bytes(s: string): Uint8Array {
  if (!/^[\x00-\x7f]*$/.test(s)) throw new RangeError('IA5String must be ASCII');
  return new TextEncoder().encode(s);
}
export const encodeIa5 = (s: string) => tlv(TAG.IA5, ia5Bytes(s));

/** RFC 5280, 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always whole seconds, Z. */
export function encodeTime(d: Date): Uint8Array {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = d.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new RangeError('certificate dates must fall in 1950..9999');
  return year < 2050
    ? tlv(TAG.UTC_TIME, new TextEncoder().encode(digits.slice(2) + 'Z'))
    : tlv(TAG.GENERALIZED_TIME, new TextEncoder().encode(digits + 'Z'));
}

// Mutations that know the protobuf wire format: a message is read as its fields (tag, value, the
// length of a length-delimited one), and a mutation works on a field at the top or at any depth of
// the nested messages, writing every enclosing length again so that the change is read where it
// was made: a field given twice or dropped, fields swapped, a nested message replaced by another's
// bytes, a length set to 0, one more or less, 2^32-1 or a ten-byte "negative" varint, a varint
// value set to an edge (0, 2^31, 2^32-1, 2^53, -1), a wire type or a field number changed.

import { concat, int, pick, replaceAt, type Random } from './mutate.ts';

const FRAME = 1 << 20;

/** One field as it lies in its message's bytes. */
interface Field { start: number; end: number; number: number; wire: number; lengthAt?: number; valueAt: number }

/** `b` with bytes `from` to `to` replaced by `put`. */
export const splice = (b: Uint8Array, from: number, to: number, put: Uint8Array) => replaceAt(b, from, to - from, put);

/** A varint of `v` (a non-negative bigint below 2^70). */
export function varint(v: bigint): Uint8Array {
  const out: number[] = [];
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? low | 0x80 : low);
  } while (v > 0n);
  return Uint8Array.from(out);
}

function readVarint(b: Uint8Array, at: number): [bigint, number] | undefined {
  let v = 0n;
  for (let i = at, shift = 0n; i < b.length && i < at + 10; i++, shift += 7n) {
    v |= BigInt(b[i]! & 0x7f) << shift;
    if (b[i]! < 0x80) return [v, i + 1];
  }
  return undefined;
}

/** The fields of `b` read as a message, or undefined when it does not read as one to its end (or has none). */
export function fieldsOf(b: Uint8Array): Field[] | undefined {
  const fields: Field[] = [];
  let at = 0;
  while (at < b.length) {
    const tag = readVarint(b, at);
    if (!tag || tag[0] >> 3n === 0n || tag[0] >= 2n ** 32n) return undefined;
    const number = Number(tag[0] >> 3n);
    const wire = Number(tag[0] & 7n);
    const valueAt = tag[1];
    let end: number;
    let lengthAt: number | undefined;
    if (wire === 0) {
      const v = readVarint(b, valueAt);
      if (!v) return undefined;
      end = v[1];
    } else if (wire === 1) end = valueAt + 8;
    else if (wire === 5) end = valueAt + 4;
    else if (wire === 2) {
      const n = readVarint(b, valueAt);
      if (!n || n[0] > BigInt(b.length)) return undefined;
      lengthAt = valueAt;
      end = n[1] + Number(n[0]);
    } else return undefined; // groups: none in these protos
    if (end > b.length) return undefined;
    fields.push({ start: at, end, number, wire, valueAt: lengthAt === undefined ? valueAt : readVarint(b, valueAt)![1], ...(lengthAt === undefined ? {} : { lengthAt }) });
    at = end;
  }
  return fields.length > 0 ? fields : undefined;
}

/** The payloads of every length-delimited field of `b`, at every depth: what one message's field may be replaced with. */
export function payloadsOf(b: Uint8Array, depth = 0, out: Uint8Array[] = []): Uint8Array[] {
  const fields = depth < 16 ? fieldsOf(b) : undefined;
  for (const f of fields ?? []) {
    if (f.wire !== 2) continue;
    const p = b.subarray(f.valueAt, f.end);
    out.push(p);
    payloadsOf(p, depth + 1, out);
  }
  return out;
}

/** A length-delimited field again with `payload`, its length written anew. */
const withPayload = (b: Uint8Array, f: Field, payload: Uint8Array) => concat(b.subarray(f.start, f.lengthAt!), varint(BigInt(payload.length)), payload);

/** Varint values at the edges of the ranges a reader keeps or cuts. */
const EDGES: [bigint, string][] = [
  [0n, '0'], [1n, '1'], [0x7fn, '127'], [0x80n, '128'], [2n ** 31n - 1n, '2^31-1'], [2n ** 31n, '2^31'], [2n ** 32n - 1n, '2^32-1'], [2n ** 32n, '2^32'],
  [2n ** 53n, '2^53'], [2n ** 63n, '2^63'], [2n ** 64n - 1n, '-1 (2^64-1)'], [2n ** 64n - 2n ** 31n, '-2^31'], [2n ** 70n - 1n, '70 bits'],
];
/** Lengths that lie: none, past the end, 2^32-1, negative as a 64-bit varint. */
const LENGTHS: [bigint, string][] = [[0n, '0'], [2n ** 31n - 1n, '2^31-1'], [2n ** 32n - 1n, '2^32-1'], [2n ** 64n - 1n, '-1 (2^64-1)'], [2n ** 63n, '2^63']];

type Edit = (b: Uint8Array, fields: Field[], r: Random, pool: Uint8Array[]) => [Uint8Array, string] | undefined;

const EDITS: Edit[] = [
  // A field given again: right after itself, or at the end (a repeated one, or an optional read twice).
  (b, fs, r) => { const f = pick(r, fs); const at = r() < 0.5 ? f.end : b.length; return [splice(b, at, at, b.slice(f.start, f.end)), `field ${f.number} given again`]; },
  // (At most a frame's worth, 1 MiB: what a peer can send, and more than an operator's file needs.)
  (b, fs, r) => { const f = pick(r, fs); const times = Math.min(2 + int(r, r() < 0.1 ? 3000 : 30), Math.floor(FRAME / (f.end - f.start))); return [splice(b, f.end, f.end, concat(...Array.from({ length: times }, () => b.subarray(f.start, f.end)))), `field ${f.number} given ${times + 1} times`]; },
  (b, fs, r) => { const f = pick(r, fs); return [splice(b, f.start, f.end, new Uint8Array()), `field ${f.number} dropped`]; },
  (b, fs, r) => {
    if (fs.length < 2) return undefined;
    const i = int(r, fs.length - 1);
    const [f, g] = [fs[i]!, fs[i + 1]!];
    return [splice(b, f.start, g.end, concat(b.subarray(g.start, g.end), b.subarray(f.start, f.end))), `fields ${f.number} and ${g.number} swapped`];
  },
  // A nested message (or bytes, or text) replaced by another's bytes, or by nothing.
  (b, fs, r, pool) => {
    const ld = fs.filter((f) => f.wire === 2);
    if (ld.length === 0 || pool.length === 0) return undefined;
    const f = pick(r, ld);
    const p = pick(r, pool);
    return [splice(b, f.start, f.end, withPayload(b, f, p)), `field ${f.number} replaced by another's ${p.length} bytes`];
  },
  (b, fs, r) => { const ld = fs.filter((f) => f.wire === 2); if (ld.length === 0) return undefined; const f = pick(r, ld); return [splice(b, f.start, f.end, withPayload(b, f, new Uint8Array())), `field ${f.number} empty`]; },
  // The message inside itself, as field f of each level, k levels deep: a recursive type
  // (vse_clause holds a vse_clause) at and past the depth protobufjs reads (100), or another type
  // read as this one.
  (b, fs, r) => {
    const ld = fs.filter((f) => f.wire === 2);
    if (ld.length === 0) return undefined;
    const f = pick(r, ld);
    const k = pick(r, [1, 2, 33, 99, 100, 101, 3000]);
    let x = b; // the innermost level whole, the levels above it field f alone (they copy little)
    for (let i = 1; i < k; i++) x = withPayload(b, f, x);
    return [splice(b, f.start, f.end, withPayload(b, f, x)), `field ${f.number} holds the message in itself ${k} deep`];
  },
  // A length that lies, the payload left where it was.
  (b, fs, r) => {
    const ld = fs.filter((f) => f.wire === 2);
    if (ld.length === 0) return undefined;
    const f = pick(r, ld);
    const [n] = readVarint(b, f.lengthAt!)!;
    const [v, said] = r() < 0.5 ? pick(r, LENGTHS) : r() < 0.5 ? [n + 1n, 'one more'] : [n > 0n ? n - 1n : 0n, 'one less'];
    return [splice(b, f.lengthAt!, f.valueAt, varint(v)), `field ${f.number}'s length ${said}`];
  },
  // A length written in more bytes than it needs (0x80 continuation bytes), as a strict reader refuses and a lax one reads.
  (b, fs, r) => {
    const vs = fs.filter((x) => x.wire === 2 || x.wire === 0);
    if (vs.length === 0) return undefined;
    const f = pick(r, vs);
    const at = f.lengthAt ?? f.valueAt;
    const end = f.lengthAt !== undefined ? f.valueAt : readVarint(b, f.valueAt)![1];
    const v = b.subarray(at, end);
    const padded = concat(v.subarray(0, v.length - 1), Uint8Array.of(v[v.length - 1]! | 0x80, 0x80, 0x80, 0x00));
    return [splice(b, at, end, padded), `field ${f.number}'s varint padded`];
  },
  (b, fs, r) => {
    const vs = fs.filter((f) => f.wire === 0);
    if (vs.length === 0) return undefined;
    const f = pick(r, vs);
    const [v, said] = pick(r, EDGES);
    return [splice(b, f.valueAt, f.end, varint(v)), `field ${f.number} = ${said}`];
  },
  // Another wire type, or another field number, for a field's value.
  (b, fs, r) => {
    const f = pick(r, fs);
    const wire = pick(r, [0, 1, 2, 5].filter((w) => w !== f.wire));
    return [splice(b, f.start, f.lengthAt ?? f.valueAt, varint(BigInt(f.number) << 3n | BigInt(wire))), `field ${f.number} as wire type ${wire}`];
  },
  (b, fs, r) => {
    const f = pick(r, fs);
    const number = r() < 0.8 ? 1 + int(r, 16) : pick(r, [100, 101, 536870911]);
    return [splice(b, f.start, f.lengthAt ?? f.valueAt, varint(BigInt(number) << 3n | BigInt(f.wire))), `field ${f.number} as field ${number}`];
  },
  // Cut inside a field.
  (b, fs, r) => { const f = pick(r, fs); const at = f.start + 1 + int(r, f.end - f.start); return [b.slice(0, at), `cut inside field ${f.number} at ${at}`]; },
];

/**
 * One structural mutation of `b`, at a depth chosen at random: into a length-delimited field that
 * reads as a message, its length written again after. Undefined when `b` does not read as a message.
 */
export function mutateMessage(b: Uint8Array, r: Random, pool: Uint8Array[], depth = 0): [Uint8Array, string] | undefined {
  const fs = fieldsOf(b);
  if (!fs) return undefined;
  const nested = fs.filter((f) => f.wire === 2 && f.end > f.valueAt && fieldsOf(b.subarray(f.valueAt, f.end)));
  if (nested.length > 0 && depth < 16 && r() < 0.55) {
    const f = pick(r, nested);
    const inner = mutateMessage(b.subarray(f.valueAt, f.end), r, pool, depth + 1);
    if (inner) return [splice(b, f.start, f.end, withPayload(b, f, inner[0])), `in ${f.number}: ${inner[1]}`];
  }
  for (let tries = 0; tries < 8; tries++) {
    const out = pick(r, EDITS)(b, fs, r, pool);
    if (out) return out;
  }
  return undefined;
}

/** One to three structural mutations of `seed` (a byte-level one from `fallback` where the bytes no longer read as a message). */
export function mutateStructure(seed: Uint8Array, r: Random, pool: Uint8Array[], fallback: (b: Uint8Array) => [Uint8Array, string]): [Uint8Array, string] {
  let b = seed;
  const how: string[] = [];
  const n = 1 + int(r, r() < 0.7 ? 1 : 3);
  for (let k = 0; k < n; k++) {
    const [out, said] = mutateMessage(b, r, pool) ?? fallback(b);
    b = out;
    how.push(said);
  }
  return [b, how.join(', ')];
}

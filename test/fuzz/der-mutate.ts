// Mutations that know DER: an input is read as its tree of TLVs (into OCTET and BIT STRINGs that
// hold DER themselves, as a certificate's extension values do), and a mutation works on an element
// at any depth, writing every enclosing length again so that it is read where it was made: an
// element given twice, dropped, swapped with the next, replaced by another's TLV, retagged; a
// length in long form, indefinite or past the end; an INTEGER, OID, time, BIT STRING or BOOLEAN
// given a value at the edge of its encoding.

import { tlv } from '../../lib/pki/der.ts';
import { concat, int, pick, type Random } from './mutate.ts';
import { splice } from './proto-mutate.ts';

interface Node { start: number; contentAt: number; end: number; tag: number }

/** A definite length of `n` in its shortest form (as the library writes one). */
const length = (n: number) => { const t = tlv(0, new Uint8Array(n)); return t.subarray(1, t.length - n); };

/** The TLVs lying one after another in `b` (one-byte tags, definite lengths), or undefined when `b` is not only such. */
export function elementsOf(b: Uint8Array): Node[] | undefined {
  const nodes: Node[] = [];
  let at = 0;
  while (at < b.length) {
    const tag = b[at]!;
    if ((tag & 0x1f) === 0x1f || at + 1 >= b.length) return undefined;
    const first = b[at + 1]!;
    let n = first;
    let contentAt = at + 2;
    if (first & 0x80) {
      const k = first & 0x7f;
      if (k === 0 || k > 4 || at + 2 + k > b.length) return undefined;
      n = 0;
      for (let i = 0; i < k; i++) n = n * 256 + b[at + 2 + i]!;
      contentAt += k;
    }
    if (contentAt + n > b.length) return undefined;
    nodes.push({ start: at, contentAt, end: contentAt + n, tag });
    at = contentAt + n;
  }
  return nodes.length > 0 ? nodes : undefined;
}

/** Where `node`'s content holds further TLVs: a constructed one's children, DER inside an OCTET or BIT STRING. */
function inner(b: Uint8Array, node: Node): { at: number; nodes: Node[] } | undefined {
  const content = b.subarray(node.contentAt, node.end);
  if (node.tag & 0x20) { const nodes = content.length > 0 ? elementsOf(content) : undefined; return nodes ? { at: node.contentAt, nodes } : undefined; }
  if (node.tag === 0x04 && content.length > 1) { const nodes = elementsOf(content); return nodes ? { at: node.contentAt, nodes } : undefined; }
  if (node.tag === 0x03 && content.length > 2 && content[0] === 0) { const nodes = elementsOf(content.subarray(1)); return nodes ? { at: node.contentAt + 1, nodes } : undefined; }
  return undefined;
}

/** Every TLV of `b` at every depth, as bytes: what an element may be replaced with. */
export function tlvsOf(b: Uint8Array, depth = 0, out: Uint8Array[] = []): Uint8Array[] {
  for (const n of (depth < 24 ? elementsOf(b) : undefined) ?? []) {
    out.push(b.subarray(n.start, n.end));
    const i = inner(b, n);
    if (i) tlvsOf(b.subarray(i.at, n.end), depth + 1, out);
  }
  return out;
}

const TAGS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x30, 0x31, 0x80, 0x82, 0x87, 0xa0, 0xa3];
/** Values at the edges of each kind's encoding, by tag. */
const VALUES: Record<number, [number[], string][]> = {
  0x01: [[[], 'empty'], [[0x01], 'not 00 or ff'], [[0xff, 0xff], 'two bytes']],
  0x02: [[[], 'empty'], [[0x00, 0x00], 'a needless zero'], [[0xff], '-1'], [[0x80, 0, 0, 0, 0, 0, 0, 0, 0], '-2^64'], [Array(40).fill(0x7f), '320 bits'], [[0x00, 0xff], '255']],
  0x03: [[[], 'empty'], [[0x08], '8 unused bits'], [[0x07, 0x80], '7 unused bits set'], [[0x00], 'no bits']],
  0x06: [[[], 'empty'], [[0x80, 0x01], 'a leading 0x80'], [[0x2a, 0xff], 'cut inside an arc'], [[0x2b, ...Array(20).fill(0xff), 0x7f], 'a 140-bit arc'], [[0x55, 0x1d, 0x11], 'SAN'], [[0x55, 0x1d, 0x13], 'basicConstraints']],
  0x17: [[[...'991301000000Z'].map((c) => c.charCodeAt(0)), 'month 13'], [[...'500101000000Z'].map((c) => c.charCodeAt(0)), '1950'], [[...'4912312359'].map((c) => c.charCodeAt(0)), 'no seconds'], [[], 'empty']],
  0x18: [[[...'99991231235959Z'].map((c) => c.charCodeAt(0)), '9999'], [[...'20261301000000Z'].map((c) => c.charCodeAt(0)), 'month 13'], [[...'2026010100000.5Z'].map((c) => c.charCodeAt(0)), 'fraction']],
  0x0c: [[[0xc0, 0x80], 'overlong UTF-8'], [[0xed, 0xa0, 0x80], 'a surrogate'], [[0x00], 'NUL'], [[0xe2, 0x80, 0xae], 'RLO']],
};

type Edit = (b: Uint8Array, ns: Node[], r: Random, pool: Uint8Array[]) => [Uint8Array, string] | undefined;

const tagOf = (n: Node) => `0x${n.tag.toString(16)}`;
const EDITS: Edit[] = [
  (b, ns, r) => { const n = pick(r, ns); return [splice(b, n.end, n.end, b.slice(n.start, n.end)), `${tagOf(n)} given twice`]; },
  (b, ns, r) => { const n = pick(r, ns); return [splice(b, n.start, n.end, new Uint8Array()), `${tagOf(n)} dropped`]; },
  (b, ns, r) => {
    if (ns.length < 2) return undefined;
    const i = int(r, ns.length - 1);
    const [m, n] = [ns[i]!, ns[i + 1]!];
    return [splice(b, m.start, n.end, concat(b.subarray(n.start, n.end), b.subarray(m.start, m.end))), `${tagOf(m)} and ${tagOf(n)} swapped`];
  },
  (b, ns, r, pool) => { const n = pick(r, ns); const p = pick(r, pool); return [splice(b, n.start, n.end, p), `${tagOf(n)} replaced by another's ${tagOf({ tag: p[0]! } as Node)}`]; },
  // An element wrapped in k SEQUENCEs or sets, at and past the depth a reader allows (32).
  (b, ns, r) => {
    const n = pick(r, ns);
    const k = pick(r, [1, 30, 31, 32, 33, 2000]);
    const tag = pick(r, [0x30, 0x31, 0xa0]);
    let x: Uint8Array = b.slice(n.start, n.end);
    for (let i = 0; i < k; i++) x = tlv(tag, x);
    return [splice(b, n.start, n.end, x), `${tagOf(n)} wrapped ${k} deep in 0x${tag.toString(16)}`];
  },
  (b, ns, r) => { const n = pick(r, ns); const tag = pick(r, TAGS); return [splice(b, n.start, n.start + 1, Uint8Array.of(tag)), `${tagOf(n)} retagged 0x${tag.toString(16)}`]; },
  // Lengths: long form for a short one, indefinite, or past the end.
  (b, ns, r) => {
    const n = pick(r, ns);
    const len = n.end - n.contentAt;
    const [put, said] = pick(r, [
      [Uint8Array.of(0x84, len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff), 'in 4 bytes'], [Uint8Array.of(0x80), 'indefinite'],
      [Uint8Array.of(0x84, 0x7f, 0xff, 0xff, 0xff), '2^31-1'], [Uint8Array.of(0x88, 0, 0, 0, 0, 0, 0, 0, len & 0xff), 'in 8 bytes'], [length(len + 1), 'one more'],
    ] as [Uint8Array, string][]);
    return [splice(b, n.start + 1, n.contentAt, put), `${tagOf(n)}'s length ${said}`];
  },
  // A value at the edge of its kind's encoding.
  (b, ns, r) => {
    const known = ns.filter((n) => VALUES[n.tag]);
    if (known.length === 0) return undefined;
    const n = pick(r, known);
    const [v, said] = pick(r, VALUES[n.tag]!);
    return [splice(b, n.start, n.end, tlv(n.tag, Uint8Array.from(v))), `${tagOf(n)} ${said}`];
  },
  (b, ns, r) => { const n = pick(r, ns); const at = n.start + 1 + int(r, n.end - n.start); return [b.slice(0, at), `cut inside ${tagOf(n)}`]; },
];

/** One mutation of the DER in `b` at a depth chosen at random, every enclosing length written again; undefined when `b` is not DER. */
export function mutateDer(b: Uint8Array, r: Random, pool: Uint8Array[], depth = 0): [Uint8Array, string] | undefined {
  const ns = elementsOf(b);
  if (!ns) return undefined;
  const deeper = ns.map((n) => ({ n, i: inner(b, n) })).filter((x) => x.i);
  if (deeper.length > 0 && depth < 24 && r() < 0.7) {
    const { n, i } = pick(r, deeper);
    const done = mutateDer(b.subarray(i!.at, n.end), r, pool, depth + 1);
    if (done) {
      const content = concat(b.subarray(n.contentAt, i!.at), done[0]);
      return [splice(b, n.start, n.end, tlv(n.tag, content)), `in ${tagOf(n)}: ${done[1]}`];
    }
  }
  for (let tries = 0; tries < 8; tries++) {
    const out = pick(r, EDITS)(b, ns, r, pool);
    if (out) return out;
  }
  return undefined;
}

// Mutation fuzzing for the decoders that read bytes from outside: seeded mutators (bit flips, byte
// inserts and deletes, cuts, inflated length fields, splices, repeated runs) and a runner that
// holds every input to one rule: it parses, or it throws a CertifierError; anything else is a fault.

import { performance } from 'node:perf_hooks';
import { CertifierError } from '../../lib/errors/index.ts';
import { prng } from '../support/prng.ts';

export interface Target {
  name: string;
  seeds: Uint8Array[];
  /** Reads one input; returns (or resolves) normally or throws (rejects with) a CertifierError. */
  run: (input: Uint8Array) => unknown;
  /** Share of the iterations, by how much there is to reach (1 for a flat parser). */
  weight?: number;
  /** Whether this target may cut every seed at every length first (those under 4 KiB; default true). */
  everyCut?: boolean;
}

export interface Fault { target: string; input: Uint8Array; error: unknown; how: string }
export interface Timing { target: string; ms: number; size: number; how: string; input: Uint8Array }
export interface TargetReport { name: string; iterations: number; parsed: number; faults: Fault[]; slowest: Timing[] }

export type Random = () => number;
type Mutator = (b: Uint8Array, r: Random, others: Uint8Array[]) => [Uint8Array, string];

export const int = (r: Random, n: number) => Math.floor(r() * n);
export const pick = <T>(r: Random, xs: readonly T[]): T => xs[int(r, xs.length)]!;
export const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
export const replaceAt = (b: Uint8Array, at: number, drop: number, put: Uint8Array) => concat(b.subarray(0, at), put, b.subarray(Math.min(b.length, at + drop)));

/** A byte that is often a length or a tag boundary in these formats. */
const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff, 0x30, 0x0a, 0x12, 0x22];

const MUTATORS: Mutator[] = [
  (b, r) => { const o = new Uint8Array(b); const at = int(r, o.length); o[at]! ^= 1 << int(r, 8); return [o, `flip bit at ${at}`]; },
  (b, r) => { const o = new Uint8Array(b); const at = int(r, o.length); o[at] = INTERESTING[int(r, INTERESTING.length)]!; return [o, `set byte ${at}`]; },
  (b, r) => { const at = int(r, b.length + 1); const n = 1 + int(r, 4); return [replaceAt(b, at, 0, Uint8Array.from({ length: n }, () => int(r, 256))), `insert ${n} at ${at}`]; },
  (b, r) => { const at = int(r, b.length); const n = 1 + int(r, Math.min(16, b.length - at)); return [replaceAt(b, at, n, new Uint8Array()), `delete ${n} at ${at}`]; },
  (b, r) => { const n = int(r, b.length); return [b.slice(0, n), `cut to ${n}`]; },
  // A protobuf varint inflated: the byte at `at` and four more with the continuation bit.
  (b, r) => { const at = int(r, b.length); return [replaceAt(b, at, 1, Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f)), `varint 2^32-1 at ${at}`]; },
  (b, r) => { const at = int(r, b.length); return [replaceAt(b, at, 1, Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)), `varint 2^64-1 at ${at}`]; },
  // A DER length inflated: long form of 4 bytes, or of more bytes than any length needs.
  (b, r) => { const at = int(r, b.length); return [replaceAt(b, at, 1, Uint8Array.of(0x84, 0x7f, 0xff, 0xff, 0xff)), `DER length 2^31-1 at ${at}`]; },
  (b, r) => { const at = int(r, b.length); return [replaceAt(b, at, 1, Uint8Array.of(0x89, 1, 0, 0, 0, 0, 0, 0, 0, 0)), `DER 9-byte length at ${at}`]; },
  (b, r) => { const at = int(r, b.length); return [replaceAt(b, at, 1, Uint8Array.of(0x80)), `DER indefinite length at ${at}`]; },
  // A little-endian u32 inflated (SEV-SNP structures, frame headers are big-endian: both).
  (b, r) => { const o = new Uint8Array(b); const at = int(r, Math.max(1, o.length - 3)) & ~3; o.set([0xff, 0xff, 0xff, 0xff].slice(0, o.length - at), at); return [o, `u32 0xffffffff at ${at}`]; },
  (b, r) => { const o = new Uint8Array(b); const at = int(r, Math.max(1, o.length - 3)) & ~3; const v = [0x00, 0x10, 0x00, 0x00].slice(0, o.length - at); if (r() < 0.5) v.reverse(); o.set(v, at); return [o, `u32 4096 at ${at}`]; },
  // Two seeds spliced: the start of one, the rest of another.
  (b, r, others) => { const o = others[int(r, others.length)]!; const a = int(r, b.length + 1); const c = int(r, o.length + 1); return [concat(b.subarray(0, a), o.subarray(c)), `splice at ${a} with another from ${c}`]; },
  // A run repeated many times: a field given again and again.
  (b, r) => { const at = int(r, b.length); const n = 1 + int(r, Math.min(64, b.length - at)); const times = 2 + int(r, r() < 0.2 ? 2000 : 20); const run = b.subarray(at, at + n); return [replaceAt(b, at, 0, concat(...Array.from({ length: times }, () => run))), `repeat ${n} bytes at ${at} x${times}`]; },
];

/** One to four mutations of `seed`, named. */
export function mutate(seed: Uint8Array, r: Random, others: Uint8Array[]): [Uint8Array, string] {
  let b = seed;
  const how: string[] = [];
  const n = 1 + int(r, r() < 0.7 ? 1 : 4);
  for (let k = 0; k < n; k++) {
    if (b.length === 0) { b = Uint8Array.of(int(r, 256)); how.push('one random byte'); continue; }
    const [out, said] = MUTATORS[int(r, MUTATORS.length)]!(b, r, others);
    b = out;
    how.push(said);
  }
  return [b, how.join(', ')];
}

/** Inputs slower than this are reported (not failed: the machine may be busy). */
export const SLOW_MS = 50;

/** Runs `target` on each cut of its short seeds (if `everyCut`) and on `iterations` mutations; collects faults and the slowest inputs. */
export async function fuzz(target: Target, iterations: number, seed: number, everyCut = true): Promise<TargetReport> {
  const r = prng(seed);
  const report: TargetReport = { name: target.name, iterations: 0, parsed: 0, faults: [], slowest: [] };
  const one = async (input: Uint8Array, how: string) => {
    report.iterations++;
    const t0 = performance.now();
    try {
      await target.run(input);
      report.parsed++;
    } catch (e) {
      if (!(e instanceof CertifierError) || e.code === 'INTERNAL') report.faults.push({ target: target.name, input, error: e, how });
    }
    const ms = performance.now() - t0;
    if (report.slowest.length < 5 || ms > report.slowest[report.slowest.length - 1]!.ms) {
      report.slowest.push({ target: target.name, ms, size: input.length, how, input });
      report.slowest.sort((a, b) => b.ms - a.ms);
      report.slowest.length = Math.min(report.slowest.length, 5);
    }
  };
  for (const s of target.seeds) {
    if (everyCut && (target.everyCut ?? true) && s.length < 4096) for (let n = 0; n < s.length; n++) await one(s.subarray(0, n), `seed cut to ${n}`);
  }
  for (let i = 0; i < iterations; i++) {
    const s = target.seeds[i % target.seeds.length]!;
    const [input, how] = mutate(s, r, target.seeds);
    await one(input, how);
  }
  // A slow input is timed again, the least of three: one GC pause or a busy neighbour is no finding.
  for (const t of report.slowest) for (let k = 0; k < 3; k++) t.ms = Math.min(t.ms, await timed(() => target.run(t.input)));
  report.slowest.sort((a, b) => b.ms - a.ms);
  return report;
}

async function timed(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  try { await fn(); } catch { /* judged already */ }
  return performance.now() - t0;
}

/** How a fault reads in a test failure: the target, the mutations, the error and the input as hex (cut). */
export function describeFault(f: Fault): string {
  const e = f.error as Error;
  const hex = Buffer.from(f.input).toString('hex');
  return `${f.target} (${f.how}): ${e?.constructor?.name ?? typeof e}${e instanceof CertifierError ? ` ${e.code}` : ''}: ${String(e?.message ?? e).slice(0, 300)}\n  input (${f.input.length} bytes): ${hex.length > 400 ? `${hex.slice(0, 400)}…` : hex}\n  ${String(e?.stack ?? '').split('\n').slice(1, 4).join('\n  ')}`;
}

export interface Growth { target: string; how: string; sizes: number[]; ms: number[]; ratio: number }

/**
 * How time grows with size: a run of each seed repeated 2^8 to 2^14 times (the least of three
 * timings each). `ratio` compares the growth of time with that of size from the second size to the
 * last (1 for linear); the worst position probed is kept.
 */
export async function growth(target: Target, seed: number, positions = 6): Promise<Growth | undefined> {
  const r = prng(seed);
  let worst: Growth | undefined;
  for (const s of target.seeds) {
    for (let k = 0; k < positions && s.length > 0; k++) {
      const at = Math.floor(r() * s.length);
      const n = 1 + Math.floor(r() * Math.min(32, s.length - at));
      const run = s.subarray(at, at + n);
      const sizes: number[] = [];
      const ms: number[] = [];
      for (const times of [1 << 8, 1 << 10, 1 << 12, 1 << 14]) {
        const input = replaceAt(s, at, 0, concat(...Array.from({ length: times }, () => run)));
        let best = Infinity;
        for (let t = 0; t < 3; t++) best = Math.min(best, await timed(() => target.run(input)));
        sizes.push(input.length);
        ms.push(best);
      }
      // From the second size on: the first is mostly fixed cost. A floor of 1 ms keeps noise out.
      const ratio = Math.max(ms[3]!, 1) / Math.max(ms[1]!, 1) / (sizes[3]! / sizes[1]!);
      if (!worst || ratio > worst.ratio) worst = { target: target.name, how: `repeat ${n} bytes at ${at}`, sizes, ms, ratio };
    }
  }
  return worst;
}

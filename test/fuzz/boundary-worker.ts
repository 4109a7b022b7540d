// The worker thread that runs the structural fuzzer's targets, so that the test can stop a call
// that does not return (it watches a counter shared with this thread) and bound the heap. Before
// each call the input is copied where the test can read it should the call never come back.

import { parentPort, workerData } from 'node:worker_threads';
import { CertifierError } from '../../lib/errors/index.ts';
import { prng } from '../support/prng.ts';
import { mutate } from './mutate.ts';
import { mutateStructure, payloadsOf } from './proto-mutate.ts';
import { boundaryTargets, type BoundaryTarget } from './boundary-targets.ts';
import { mutateDer, tlvsOf } from './der-mutate.ts';
import { derTargets } from './der-targets.ts';
import { mutateJson } from './json-mutate.ts';
import { jsonTargets } from './json-targets.ts';
import { bundleTargets } from './stateful.ts';

export interface Job { index: number; iterations: number; seed: number }
export interface Finding { how: string; input: string; minimized: string; error: string }
export interface Result { index: number; iterations: number; parsed: number; refused: Record<string, number>; findings: Finding[]; faults: number; slowestMs: number; slowest?: { how: string; size: number; input: string }; seconds: number }

/** Shared with the test: [0] calls begun, [1] the length of the input being read (-1: too long to keep). */
const beat = new Int32Array(workerData.beat as SharedArrayBuffer);
const kept = new Uint8Array(workerData.input as SharedArrayBuffer);
/** What a call may leave held outside the heap (buffers) before it counts as unbounded memory. */
const MEMORY_LIMIT = 256 * 1024 * 1024;

/** What a call did: undefined if it returned or refused with a stable code, else what went wrong. */
async function judge(t: BoundaryTarget, input: Uint8Array): Promise<{ fault?: string; code?: string }> {
  Atomics.add(beat, 0, 1);
  if (input.length <= kept.length) {
    kept.set(input);
    Atomics.store(beat, 1, input.length);
  } else Atomics.store(beat, 1, -1);
  try {
    await t.run(input);
  } catch (e) {
    if (e instanceof CertifierError && e.code !== 'INTERNAL') return { code: e.code };
    const err = e as Error;
    return { fault: `${err?.constructor?.name ?? typeof e}${e instanceof CertifierError ? ` ${e.code}` : ''}: ${String(err?.message ?? e).slice(0, 300)}\n    ${String(err?.stack ?? '').split('\n').slice(1, 5).join('\n    ')}` };
  }
  const held = process.memoryUsage().arrayBuffers;
  if (held > MEMORY_LIMIT) return { fault: `MemoryBound: held ${held} bytes of buffers after the call` };
  return {};
}

/** The shortest input found by cutting pieces out of `input` that still fails the same way (the same first line). */
async function minimize(t: BoundaryTarget, input: Uint8Array, fault: string): Promise<Uint8Array> {
  const same = async (b: Uint8Array) => (await judge(t, b)).fault?.split(':')[0] === fault.split(':')[0];
  let b = input;
  let tries = 0;
  for (let chunk = Math.max(1, b.length >> 1); chunk >= 1 && tries < 4000; chunk >>= 1) {
    for (let at = 0; at < b.length && tries < 4000; tries++) {
      const candidate = new Uint8Array([...b.subarray(0, at), ...b.subarray(at + chunk)]);
      if (await same(candidate)) b = candidate;
      else at += chunk;
    }
  }
  return b;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function runJob(t: BoundaryTarget, job: Job): Promise<Result> {
  const r = prng(job.seed);
  const result: Result = { index: job.index, iterations: 0, parsed: 0, refused: {}, findings: [], faults: 0, slowestMs: 0, seconds: 0 };
  const began = performance.now();
  for (let i = 0; i < job.iterations; i++) {
    const seed = t.seeds[i % t.seeds.length]!;
    const bytes = (b: Uint8Array) => mutate(b, r, t.seeds);
    // Mostly structural; a share of byte-level ones (and their splices of two seeds) besides.
    const [input, how] = r() >= 0.8 ? bytes(seed)
      : t.kind === 'der' ? mutateDer(seed, r, pools.der) ?? bytes(seed)
      : t.kind === 'json' ? mutateJson(seed, r) ?? bytes(seed)
      : mutateStructure(seed, r, pools.proto, bytes);
    const t0 = performance.now();
    const { fault, code } = await judge(t, input);
    const ms = performance.now() - t0;
    if (ms > result.slowestMs) {
      result.slowestMs = ms;
      result.slowest = { how, size: input.length, input: hex(input.subarray(0, 2048)) };
    }
    result.iterations++;
    if (code) result.refused[code] = (result.refused[code] ?? 0) + 1;
    else if (!fault) result.parsed++;
    if (!fault) continue;
    result.faults++;
    // Three of each kind of fault are shown, minimized.
    if (result.findings.filter((f) => f.error.split(':')[0] === fault.split(':')[0]).length >= 3) continue;
    result.findings.push({ how, input: hex(input), minimized: hex(await minimize(t, input, fault)), error: fault });
  }
  result.seconds = (performance.now() - began) / 1000;
  return result;
}

// The export bundle's (stateful.ts): its header, and its plaintext sealed again; an scrypt per input, so few.
const bundles = (await bundleTargets()).map((t): BoundaryTarget => ({ name: t.name, seeds: t.seeds, run: t.run, weight: 0.1 }));
const targets = [...(await boundaryTargets()), ...bundles, ...(await derTargets()), ...jsonTargets()];
// What a nested message or element may be replaced with: every length-delimited payload, or every
// TLV, of every target's seeds of that kind.
const pools = {
  proto: targets.filter((t) => (t.kind ?? 'proto') === 'proto').flatMap((t) => t.seeds.flatMap((s) => payloadsOf(s))),
  der: targets.filter((t) => t.kind === 'der').flatMap((t) => t.seeds.flatMap((s) => tlvsOf(s))),
};
parentPort!.on('message', (job: Job) => {
  runJob(targets[job.index]!, job).then((r) => parentPort!.postMessage({ result: r }), (e) => parentPort!.postMessage({ crashed: String((e as Error)?.stack ?? e) }));
});
parentPort!.postMessage({ ready: targets.map((t) => ({ name: t.name, weight: t.weight })) });

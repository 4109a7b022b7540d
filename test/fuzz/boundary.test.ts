// The messages read at the trust boundary, protobuf, DER and JSON, mutated by their structure
// (fields, elements and values given twice, dropped, swapped or replaced by others, lengths and
// values at their edges, at any depth) and read as the programs read them: each call returns or throws a CertifierError
// with a stable code; a TypeError, a RangeError, an untyped Error, INTERNAL, a call that does not
// return within CALL_MS, or memory past its bound is a fault. The targets run in a worker thread
// the test watches. 1,000 inputs per unit of a target's weight by default (README "Development");
// FUZZ_BOUNDARY_ITERATIONS=N runs N per unit, FUZZ_BOUNDARY_SEED others, FUZZ_BOUNDARY_ONLY=text
// the targets whose name holds it.

import { expect } from 'chai';
import { Worker } from 'node:worker_threads';
import type { Finding, Job, Result } from './boundary-worker.ts';

const ITERATIONS = Number(process.env.FUZZ_BOUNDARY_ITERATIONS ?? 1000);
const SEED = Number(process.env.FUZZ_BOUNDARY_SEED ?? 0xb0da);
/** FUZZ_BOUNDARY_ONLY=text: only the targets whose name holds it. */
const ONLY = process.env.FUZZ_BOUNDARY_ONLY;
/** A call this long has hung: generous, as the machine may be busy (a 1 MiB policy of 400 claims, each verified, takes a second or so). */
const CALL_MS = Number(process.env.FUZZ_BOUNDARY_CALL_MS ?? 20_000);
/** How long the worker may take to make its targets (keys, certificates, signed policies). */
const STARTUP_MS = 120_000;
/** The largest input kept where the test can read it should its call hang. */
const KEPT_BYTES = 1 << 22;

/** The worker, loaded through tsx as the test is (a worker does not inherit mocha's loader). */
function startWorker(beat: SharedArrayBuffer, input: SharedArrayBuffer): Worker {
  const url = new URL('./boundary-worker.ts', import.meta.url).href;
  const boot = `process.env.TSX_DISABLE_CACHE = '1'; import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(url)}); });`;
  return new Worker(boot, { eval: true, workerData: { beat, input }, resourceLimits: { maxOldGenerationSizeMb: 512 } });
}

type Said = { ready?: { name: string; weight: number }[]; result?: Result; crashed?: string };

/** Runs every job on one worker, started again after a hang or a crash (which is the job's fault). */
class Runner {
  private readonly beat = new SharedArrayBuffer(8);
  private readonly input = new SharedArrayBuffer(KEPT_BYTES);
  private worker?: Worker;
  private waiting?: (s: Said | Error) => void;
  names: { name: string; weight: number }[] = [];

  /** Starts the worker, which makes its targets and says their names and weights. */
  async start(): Promise<void> {
    this.worker = startWorker(this.beat, this.input);
    this.worker.on('message', (s: Said) => this.waiting?.(s));
    this.worker.on('error', (e) => this.waiting?.(e));
    this.worker.on('exit', (code) => this.waiting?.(new Error(`the worker exited (${code})`)));
    const first = await this.next(STARTUP_MS);
    if (first instanceof Error || !first.ready) throw first instanceof Error ? first : new Error(first.crashed ?? 'the worker did not start');
    this.names = first.ready;
  }

  /** The worker's next word, or an Error when it stops, or a hang when its call counter stands still for CALL_MS. */
  private next(limit = CALL_MS): Promise<Said | Error> {
    const counter = new Int32Array(this.beat);
    return new Promise((resolve) => {
      let last = Atomics.load(counter, 0);
      let since = Date.now();
      const watch = setInterval(() => {
        const now = Atomics.load(counter, 0);
        if (now !== last) { last = now; since = Date.now(); return; }
        if (Date.now() - since > limit) done(new Error(`a call did not return within ${limit} ms`));
      }, 100);
      const done = (s: Said | Error) => { clearInterval(watch); this.waiting = undefined; resolve(s); };
      this.waiting = done;
    });
  }

  /** The input of the call in progress (when the worker hung or died in it). */
  private inFlight(): string {
    const n = new Int32Array(this.beat)[1]!;
    return n < 0 ? '(too long to keep)' : Buffer.from(new Uint8Array(this.input, 0, n)).toString('hex');
  }

  async run(job: Job): Promise<Result> {
    if (!this.worker) await this.start();
    this.worker!.postMessage(job);
    const said = await this.next();
    if (!(said instanceof Error) && said.result) return said.result;
    const error = said instanceof Error ? said.message : `the worker failed: ${said.crashed}`;
    const finding: Finding = { how: 'in flight', input: this.inFlight(), minimized: this.inFlight(), error };
    await this.stop();
    return { index: job.index, iterations: 0, parsed: 0, refused: {}, findings: [finding], faults: 1, slowestMs: CALL_MS, seconds: CALL_MS / 1000 };
  }

  async stop(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) { w.removeAllListeners('exit'); await w.terminate(); }
  }
}

const shown = (name: string, f: Finding) => `${name} (${f.how}): ${f.error}\n  input: ${f.input.slice(0, 600)}\n  minimized (${f.minimized.length / 2} bytes): ${f.minimized.slice(0, 600)}`;

describe('fuzz: protobuf, DER and JSON at the trust boundary, mutated by their structure, are read or refused with a stable code', function () {
  this.timeout(0);
  const runner = new Runner();
  after(() => runner.stop());

  it('finds no exception other than a CertifierError, no hang and no unbounded memory in any target (fixed seeds)', async function () {
    await runner.start();
    const faults: string[] = [];
    for (const [index, t] of runner.names.entries()) {
      if (ONLY && !t.name.includes(ONLY)) continue;
      // Each target's own sequence (SEED + its index), the same whichever targets run.
      const r = await runner.run({ index, iterations: Math.max(1, Math.round(ITERATIONS * t.weight)), seed: SEED + index });
      if (process.env.FUZZ_BOUNDARY_ITERATIONS) {
        const codes = Object.entries(r.refused).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ');
        process.stderr.write(`${t.name}: ${r.iterations} inputs, ${r.parsed} read, refused ${codes}; ${r.faults} faults; ${r.seconds.toFixed(1)} s, slowest ${r.slowestMs.toFixed(1)} ms (${r.slowest?.size} bytes: ${r.slowest?.how})\n`);
        if (process.env.FUZZ_BOUNDARY_SHOW_SLOWEST) process.stderr.write(`  ${r.slowest?.input}\n`);
      }
      faults.push(...r.findings.map((f) => shown(t.name, f)));
    }
    expect(faults).to.deep.equal([]);
  });
});

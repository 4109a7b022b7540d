// A small benchmark harness: sections that each return rows, measured as the median of a few
// interleaved repeats, printed as one table per section. Later benchmarks (TLS handshakes,
// certifications per second, key-server retrieves) register further sections the same way.
//
//   section('cryptstore vs raw level', { columns: ... }, async (ctx) => rows);
//   await runSections(options);

import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, freemem, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';

// ---- options --------------------------------------------------------------------------------

export interface BenchOptions {
  /** Fewer iterations and repeats: a smoke run, not a measurement. */
  quick: boolean;
  /** Run only the sections whose name contains one of these (case-insensitive); all when empty. */
  only: string[];
  /** How long a timed section (the soak) runs, when given. */
  minutes?: number;
}

export function parseArgs(argv: string[]): BenchOptions {
  const opts: BenchOptions = { quick: false, only: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') opts.quick = true;
    else if (a === '--only') opts.only.push(argv[++i] ?? '');
    else if (a.startsWith('--only=')) opts.only.push(a.slice('--only='.length));
    else if (a === '--minutes' || a.startsWith('--minutes=')) {
      const v = a === '--minutes' ? argv[++i] : a.slice('--minutes='.length);
      const n = Number(v);
      if (!(n > 0 && n <= 7 * 24 * 60)) throw new Error(`--minutes wants a number of minutes above 0 (up to a week), not ${v}`);
      opts.minutes = n;
    }
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: npm run bench [-- --quick] [--only <section substring>] [--minutes N (the soak, run only with --only soak)]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

// ---- statistics -----------------------------------------------------------------------------

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Least-squares slope of y over x. */
export function slope(points: [number, number][]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxx === 0 ? NaN : points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx;
}

/** Repeated measurements of one rate (ops/s). */
export interface Stat {
  median: number;
  samples: number[];
}

export function stat(samples: number[]): Stat {
  return { median: median(samples), samples };
}

// ---- measuring ------------------------------------------------------------------------------

export type Op = (i: number) => Promise<unknown>;

/**
 * Ops per second of `n` awaited calls of `op(start + j)`: sequential, or spread over
 * `concurrency` workers that each take the next j as soon as their previous call resolves.
 */
export async function rate(n: number, op: Op, start = 0, concurrency = 1): Promise<number> {
  let next = 0;
  const worker = async () => {
    for (let j = next++; j < n; j = next++) await op(start + j);
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, worker));
  const ns = Number(process.hrtime.bigint() - t0);
  return n / (ns / 1e9);
}

export interface Comparison {
  baseline: Stat;
  subject: Stat;
  /** subject / baseline of each repeat (the two ran back to back, so drift largely cancels). */
  paired: number[];
  /**
   * Per side, the median over repeats of the process's CPU time per operation (ms, every thread:
   * user + system) and of the event loop's utilization (0-1): what tells a run slowed by other
   * work on the machine (CPU per operation steady, rate down) from code that got dearer.
   */
  cpu: { baseline: number; subject: number };
  loop: { baseline: number; subject: number };
}

/** `rate`, with the process's CPU time per operation (ms) and the event loop's utilization over the run. */
async function measuredRate(n: number, op: Op, start: number, concurrency: number): Promise<{ rate: number; cpuMs: number; loop: number }> {
  const elu = performance.eventLoopUtilization();
  const cpu = process.cpuUsage();
  const r = await rate(n, op, start, concurrency);
  const used = process.cpuUsage(cpu);
  return { rate: r, cpuMs: (used.user + used.system) / 1000 / n, loop: performance.eventLoopUtilization(elu).utilization };
}

/**
 * Measures a baseline and a subject `repeats` times each, `iterations` ops per run (sequential,
 * or spread over `concurrency` workers), interleaved (A B, B A, A B, ...) so slow drift of a
 * shared machine hits both alike.
 * `op(i)` gets a counter that keeps increasing across repeats.
 */
export async function compare(o: { repeats: number; iterations: number; baseline: Op; subject: Op; /** concurrent workers (default 1: sequential) */ concurrency?: number }): Promise<Comparison> {
  const c = o.concurrency ?? 1;
  const b: number[] = [];
  const s: number[] = [];
  const paired: number[] = [];
  const runs = { baseline: [] as { cpuMs: number; loop: number }[], subject: [] as { cpuMs: number; loop: number }[] };
  // No forced full GC between runs. A forced GC (gc(), unlike the collector's own) drops the maps
  // that only optimized code still refers to, so V8 throws that code away ("weak objects") and
  // the next thousands of operations run slower while it optimizes again: measured 2026-12-07 on
  // 1,000 pipelined retrieves, 75 us each after gc() against 40 us without, when the echo beside
  // them hardly moved. A key-server's own full GCs (23 in a run made to cause them) threw away
  // nothing. Each side's garbage is collected partly on the other's clock instead; with
  // interleaved repeats that is a small, shared cost (a scavenge is under 1 ms).
  const run = async (side: 'baseline' | 'subject', start: number) => {
    const m = await measuredRate(o.iterations, o[side], start, c);
    runs[side].push(m);
    return m.rate;
  };
  for (let r = 0; r < o.repeats; r++) {
    const start = r * o.iterations;
    let rb: number;
    let rs: number;
    if (r % 2 === 0) {
      rb = await run('baseline', start);
      rs = await run('subject', start);
    } else {
      rs = await run('subject', start);
      rb = await run('baseline', start);
    }
    b.push(rb);
    s.push(rs);
    paired.push(rs / rb);
  }
  const of = (side: 'baseline' | 'subject', k: 'cpuMs' | 'loop') => median(runs[side].map((m) => m[k]));
  return {
    baseline: stat(b), subject: stat(s), paired,
    cpu: { baseline: of('baseline', 'cpuMs'), subject: of('subject', 'cpuMs') },
    loop: { baseline: of('baseline', 'loop'), subject: of('subject', 'loop') },
  };
}

// ---- sections -------------------------------------------------------------------------------

export interface Target {
  /** subject / baseline must be at least this. */
  minRatio?: number;
  /** subject ops/s must be at least this (for sections without a baseline). */
  minOps?: number;
}

export interface Row {
  /** The case, e.g. a value size ("1 KiB") or a key type ("P-256"). */
  case: string;
  op: string;
  baseline?: Stat;
  subject: Stat;
  paired?: number[];
  target?: Target;
}

export interface SectionContext {
  options: BenchOptions;
  /** A fresh directory under the run's temporary root (removed at the end of the run). */
  tempDir(name: string): string;
  /** Progress on stderr, so stdout is only the report. */
  log(msg: string): void;
  /** A line printed under the section's table. */
  note(msg: string): void;
}

export interface SectionSpec {
  /** Column headings. */
  columns: { case: string; baseline?: string; subject: string };
  /**
   * A long section (the soak) is left out unless an --only contains this word: a substring
   * choosing others (`--only key-server`) does not start it.
   */
  selectedBy?: string;
}

interface Section extends SectionSpec {
  name: string;
  fn: (ctx: SectionContext) => Promise<Row[]>;
}

const sections: Section[] = [];

/** Registers a section; runSections runs them in registration order. */
export function section(name: string, spec: SectionSpec, fn: (ctx: SectionContext) => Promise<Row[]>): void {
  sections.push({ name, ...spec, fn });
}

export type Status = 'PASS' | 'BELOW' | '-';

export function ratioOf(row: Row): number | undefined {
  return row.baseline ? row.subject.median / row.baseline.median : undefined;
}

export function statusOf(row: Row): Status {
  const t = row.target;
  if (!t) return '-';
  const r = ratioOf(row);
  if (t.minRatio !== undefined && (r === undefined || r < t.minRatio)) return 'BELOW';
  if (t.minOps !== undefined && row.subject.median < t.minOps) return 'BELOW';
  return t.minRatio !== undefined || t.minOps !== undefined ? 'PASS' : '-';
}

// ---- printing -------------------------------------------------------------------------------

export function fmtOps(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function fmtTarget(t: Target | undefined): string {
  if (!t) return '-';
  const parts: string[] = [];
  if (t.minRatio !== undefined) parts.push(`>= ${t.minRatio.toFixed(2)}`);
  if (t.minOps !== undefined) parts.push(`>= ${fmtOps(t.minOps)} ops/s`);
  return parts.join(', ') || '-';
}

/** Renders rows as an aligned text table (numbers right-aligned). */
export function formatTable(head: string[], rows: string[][], rightAlign: boolean[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (rightAlign[i] ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd();
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

export function renderSection(spec: SectionSpec, rows: Row[]): string {
  const hasBaseline = spec.columns.baseline !== undefined;
  const head = [spec.columns.case, 'operation'];
  const right = [false, false];
  if (hasBaseline) { head.push(spec.columns.baseline!); right.push(true); }
  head.push(spec.columns.subject); right.push(true);
  if (hasBaseline) { head.push('ratio', 'paired med [min-max]'); right.push(true, true); }
  head.push('target', 'status'); right.push(false, false);
  const body = rows.map((r) => {
    const cells = [r.case, r.op];
    if (hasBaseline) cells.push(r.baseline ? fmtOps(r.baseline.median) : '-');
    cells.push(fmtOps(r.subject.median));
    if (hasBaseline) {
      const ratio = ratioOf(r);
      cells.push(ratio === undefined ? '-' : ratio.toFixed(2));
      const p = r.paired ?? [];
      cells.push(p.length ? `${median(p).toFixed(2)} [${Math.min(...p).toFixed(2)}-${Math.max(...p).toFixed(2)}]` : '-');
    }
    cells.push(fmtTarget(r.target), statusOf(r));
    return cells;
  });
  return formatTable(head, body, right);
}

// ---- machine facts --------------------------------------------------------------------------

export function machineFacts(): [string, string][] {
  const c = cpus();
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  return [
    ['node', `${process.version} (V8 ${process.versions.v8}, OpenSSL ${process.versions.openssl})`],
    ['platform', `${process.platform} ${process.arch}, kernel ${release()}`],
    ['cpu', `${c.length} x ${c[0]?.model.trim() ?? 'unknown'} (availableParallelism ${availableParallelism()})`],
    ['memory', `${gib(totalmem())} total, ${gib(freemem())} free`],
    ['load average', loadavg().map((x) => x.toFixed(2)).join(' ')],
  ];
}

// ---- running --------------------------------------------------------------------------------

export interface RunSummary {
  failed: string[];
}

/** The sections `--only` values choose: all but those with selectedBy when there are none. */
export function selected<S extends { name: string; selectedBy?: string }>(all: S[], only: string[]): S[] {
  const words = only.map((o) => o.toLowerCase());
  return all.filter((s) => s.selectedBy
    ? words.some((o) => o.includes(s.selectedBy!))
    : words.length === 0 || words.some((o) => s.name.toLowerCase().includes(o)));
}

/** Runs every registered (and selected) section, printing each table as it completes. */
export async function runSections(options: BenchOptions, out: (s: string) => void = (s) => process.stdout.write(s)): Promise<RunSummary> {
  const root = mkdtempSync(join(tmpdir(), 'certifier-bench-'));
  const removeRoot = () => rmSync(root, { recursive: true, force: true });
  process.once('exit', removeRoot);
  const onSignal = (sig: NodeJS.Signals) => {
    removeRoot();
    process.kill(process.pid, sig);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const failed: string[] = [];
  const t0 = Date.now();
  out(`benchmark run${options.quick ? ' (--quick: smoke run, numbers are not meaningful)' : ''}\n`);
  for (const [k, v] of [...machineFacts(), ['temp dir', `${root} (removed at the end)`]]) out(`  ${(k + ':').padEnd(14)}${v}\n`);

  let n = 0;
  for (const s of selected(sections, options.only)) {
    const notes: string[] = [];
    const dirs: string[] = [];
    const ctx: SectionContext = {
      options,
      tempDir: (name) => {
        const d = join(root, `${++n}-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}`);
        dirs.push(d);
        return d;
      },
      log: (msg) => process.stderr.write(`[bench ${s.name}] ${msg}\n`),
      note: (msg) => notes.push(msg),
    };
    const ts = Date.now();
    out(`\n== ${s.name} ==\n`);
    try {
      const rows = await s.fn(ctx);
      out(renderSection(s, rows) + '\n');
    } catch (e) {
      failed.push(s.name);
      out(`SECTION FAILED: ${(e as Error).stack ?? String(e)}\n`);
    } finally {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
    for (const m of notes) out(`  ${m}\n`);
    out(`  (${((Date.now() - ts) / 1000).toFixed(1)} s)\n`);
  }
  out(`\nload average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
  out(`total ${((Date.now() - t0) / 1000).toFixed(1)} s${failed.length ? `; FAILED sections: ${failed.join(', ')}` : ''}\n`);

  removeRoot();
  process.removeListener('exit', removeRoot);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  return { failed };
}

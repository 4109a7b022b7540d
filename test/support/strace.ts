// Durability tests: runs a program (or a small script using a library function) under strace and
// parses the system calls it made, so a test can check the order a power failure depends on: a
// file's content synced before it is renamed into place, its directory synced after. A dropped
// fsync changes nothing a test could otherwise see.
//
// strace -f follows every thread, LevelDB's background ones too; -y prints the path behind each
// file descriptor (fsync(21</dir/.f.tmp>)), so no descriptor bookkeeping is needed here. Where
// strace is missing or ptrace is refused (a container without CAP_SYS_PTRACE, yama), the tests
// skip, naming why (skipWithoutStrace).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One system call: where it began and where it returned in the trace (an unfinished one's two lines). */
export interface Call {
  pid: number;
  name: string;
  /** The arguments as strace printed them, without the parentheses. */
  args: string;
  /** What it returned, as printed ("0", "21</dir/f>", "-1 ENOENT (...)"). */
  ret: string;
  /** Line of the trace where it began, and where it returned: a before b when a.end < b.start. */
  start: number;
  end: number;
}

const SYSCALLS = ['openat', 'open', 'creat', 'rename', 'renameat', 'renameat2', 'link', 'linkat', 'unlink', 'unlinkat', 'rmdir', 'mkdir', 'mkdirat', 'fsync', 'fdatasync', 'sync_file_range', 'ftruncate', 'write', 'pwrite64', 'writev', 'pwritev'];

let checked: { flags: string[] } | { problem: string } | undefined;

/** Why strace cannot be used here, or undefined when it can (checked once: strace runs `node -e 0`). */
export function straceProblem(): string | undefined {
  checked ??= probe();
  return 'problem' in checked ? checked.problem : undefined;
}

function probe(): { flags: string[] } | { problem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'strace-probe-'));
  try {
    let last = '';
    // --seccomp-bpf stops only at the traced calls: several times faster, where strace has it.
    for (const flags of [['--seccomp-bpf'], []]) {
      const r = spawnSync('strace', ['-f', '-qq', ...flags, '-e', 'trace=fsync', '-o', join(dir, 'probe'), process.execPath, '-e', '0'], { encoding: 'utf8', timeout: 30_000 });
      if (r.error) return { problem: `strace cannot be run (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})` };
      if (r.status === 0) return { flags };
      last = r.stderr.trim().split('\n')[0] ?? `exit ${r.status}`;
    }
    return { problem: `strace cannot trace here (ptrace refused?): ${last}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** In an it(): skips it, its title saying why, where strace cannot be used. */
export function skipWithoutStrace(ctx: Mocha.Context): void {
  const problem = straceProblem();
  if (!problem) return;
  if (ctx.test) ctx.test.title += ` (skipped: ${problem})`;
  ctx.skip();
}

export interface TraceRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  trace: Trace;
}

/**
 * Runs `argv` under strace -f (the calls this file knows, file descriptors shown as paths,
 * strings whole) and parses what it recorded. The trace file goes in `dir`.
 */
export async function traced(argv: string[], o: { dir: string; env?: NodeJS.ProcessEnv; input?: string | Uint8Array; timeoutMs?: number }): Promise<TraceRun> {
  const problem = straceProblem();
  if (problem) throw new Error(problem);
  const { flags } = checked as { flags: string[] };
  const out = join(o.dir, `strace-${process.pid}-${Date.now()}.txt`);
  const child = spawn('strace', ['-f', '-qq', '-y', '-s', '4096', ...flags, '-e', `trace=${SYSCALLS.join(',')}`, '-e', 'signal=none', '-o', out, ...argv], {
    env: o.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => stdout.push(b));
  child.stderr.on('data', (b: Buffer) => stderr.push(b));
  child.stdin.end(o.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
  const [status, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res, rej) => {
    child.on('error', rej);
    child.on('close', (code, sig) => res([code, sig]));
  }).finally(() => clearTimeout(timer));
  const text = readFileSync(out, 'utf8');
  rmSync(out, { force: true });
  return { status, signal, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), trace: new Trace(parseTrace(text)) };
}

/** Parses strace -f -y output ("PID name(args) = ret", an unfinished call's two lines joined). */
export function parseTrace(text: string): Call[] {
  const calls: Call[] = [];
  const pending = new Map<number, { name: string; head: string; start: number }>();
  text.split('\n').forEach((line, i) => {
    let m = /^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$/.exec(line);
    if (m) {
      const pid = Number(m[1]);
      const p = pending.get(pid);
      pending.delete(pid);
      if (!p) return;
      const whole = finish(p.head + m[3]!);
      if (whole) calls.push({ pid, name: p.name, ...whole, start: p.start, end: i });
      return;
    }
    m = /^(\d+)\s+(\w+)\((.*)$/.exec(line);
    if (!m) return;
    const pid = Number(m[1]);
    const unfinished = / <unfinished \.\.\.>$/.exec(m[3]!);
    if (unfinished) {
      pending.set(pid, { name: m[2]!, head: m[3]!.slice(0, unfinished.index), start: i });
      return;
    }
    const whole = finish(m[3]!);
    if (whole) calls.push({ pid, name: m[2]!, ...whole, start: i, end: i });
  });
  return calls;
}

function finish(rest: string): { args: string; ret: string } | undefined {
  const m = /^(.*)\)\s+= (.*)$/.exec(rest);
  return m ? { args: m[1]!, ret: m[2]! } : undefined;
}

/** The C string literals of `args`, unescaped as far as these tests need. */
function strings(args: string): string[] {
  const escapes: Record<string, string> = { n: '\n', t: '\t', r: '\r', v: '\v', f: '\f' };
  return [...args.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) =>
    m[1]!.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_, e: string) =>
      e[0] === 'x' && e.length === 3 ? String.fromCharCode(parseInt(e.slice(1), 16))
        : /^[0-7]+$/.test(e) ? String.fromCharCode(parseInt(e, 8))
          : escapes[e] ?? e));
}

/** The path behind a descriptor printed by -y ("21</dir/f>", "AT_FDCWD</cwd>"). */
function fdPathOf(text: string): string | undefined {
  return /^(?:-?\d+|AT_FDCWD)<(.*)>$/.exec(text.trim())?.[1];
}

/** The top-level, comma-separated arguments (strings and braces kept whole). */
function splitArgs(args: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  let quoted = false;
  for (let i = 0; i < args.length; i++) {
    const c = args[i]!;
    if (quoted) {
      cur += c;
      if (c === '\\') cur += args[++i] ?? '';
      else if (c === '"') quoted = false;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === '{' || c === '[' || c === '(' || c === '<') depth++;
    else if (c === '}' || c === ']' || c === ')' || c === '>') depth--;
    if (c === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** A path argument resolved against its directory descriptor (AT_FDCWD</cwd> or 5</dir>). */
function at(dirArg: string | undefined, pathArg: string | undefined): string | undefined {
  if (pathArg === undefined) return undefined;
  const [p] = strings(pathArg);
  if (p === undefined) return undefined;
  const base = dirArg === undefined ? undefined : fdPathOf(dirArg);
  return base === undefined ? resolve(p) : resolve(base, p);
}

const ok = (c: Call) => !c.ret.startsWith('-1');

export type Effect =
  | { op: 'sync'; path: string; data: boolean }
  | { op: 'open'; path: string; flags: string[] }
  | { op: 'rename'; from: string; to: string }
  | { op: 'link'; from: string; to: string }
  | { op: 'unlink'; path: string }
  | { op: 'rmdir'; path: string }
  | { op: 'mkdir'; path: string }
  | { op: 'truncate'; path: string }
  | { op: 'write'; path: string; data: string };

/** What a call did to the file system, in these tests' terms (undefined for a failed call). */
export function effectOf(c: Call): Effect | undefined {
  if (!ok(c)) return undefined;
  const a = splitArgs(c.args);
  switch (c.name) {
    case 'fsync':
    case 'fdatasync': {
      const path = fdPathOf(a[0] ?? '');
      return path === undefined ? undefined : { op: 'sync', path, data: c.name === 'fdatasync' };
    }
    case 'openat':
    case 'open': {
      const path = fdPathOf(c.ret) ?? (c.name === 'openat' ? at(a[0], a[1]) : at(undefined, a[0]));
      const flags = (c.name === 'openat' ? a[2] : a[1]) ?? '';
      return path === undefined ? undefined : { op: 'open', path, flags: flags.split('|') };
    }
    case 'rename':
    case 'link': {
      const from = at(undefined, a[0]);
      const to = at(undefined, a[1]);
      return from && to ? { op: c.name, from, to } : undefined;
    }
    case 'renameat':
    case 'renameat2':
    case 'linkat': {
      const from = at(a[0], a[1]);
      const to = at(a[2], a[3]);
      return from && to ? { op: c.name === 'linkat' ? 'link' : 'rename', from, to } : undefined;
    }
    case 'unlink':
    case 'rmdir':
    case 'mkdir': {
      const path = at(undefined, a[0]);
      return path === undefined ? undefined : { op: c.name, path };
    }
    case 'unlinkat':
    case 'mkdirat': {
      const path = at(a[0], a[1]);
      if (path === undefined) return undefined;
      return { op: c.name === 'mkdirat' ? 'mkdir' : (a[2] ?? '').includes('AT_REMOVEDIR') ? 'rmdir' : 'unlink', path };
    }
    case 'ftruncate': {
      const path = fdPathOf(a[0] ?? '');
      return path === undefined ? undefined : { op: 'truncate', path };
    }
    case 'write':
    case 'pwrite64':
    case 'writev':
    case 'pwritev': {
      const path = fdPathOf(a[0] ?? '');
      return path === undefined ? undefined : { op: 'write', path, data: strings(a[1] ?? '').join('') };
    }
    default:
      return undefined;
  }
}

type Described = Effect;
type Op<K extends Described['op']> = Extract<Described, { op: K }> & { call: Call };

/** The calls of one run, asked about in order. */
export class Trace {
  readonly ops: (Described & { call: Call })[];

  constructor(readonly calls: Call[]) {
    this.ops = calls.flatMap((call) => {
      const d = effectOf(call);
      return d ? [{ ...d, call }] : [];
    });
  }

  /** Every successful call of kind `op` matching `pred`, in the order they began. */
  all<K extends Described['op']>(op: K, pred: (o: Op<K>) => boolean = () => true): Op<K>[] {
    return (this.ops.filter((o) => o.op === op) as Op<K>[]).filter(pred);
  }

  /** The first such call, or an Error naming what was looked for (for a readable failure). */
  first<K extends Described['op']>(op: K, pred: (o: Op<K>) => boolean, what: string): Op<K> {
    const found = this.all(op, pred)[0];
    if (!found) throw new Error(`the trace holds no ${what}`);
    return found;
  }

  /**
   * The marker a traced script wrote with mark(label): the point by which what came before it in
   * the script was done (acknowledged).
   */
  mark(label: string): Call {
    return this.first('write', (w) => w.data === `@@${label}\n`, `mark ${label}`).call;
  }

  /** Syncs (fsync or fdatasync) of a file matching `path` that returned after `after` began and before `before` began. */
  syncsBetween(path: string | RegExp | ((p: string) => boolean), after: Call | undefined, before: Call | undefined): Op<'sync'>[] {
    const test = typeof path === 'string' ? (p: string) => p === path : path instanceof RegExp ? (p: string) => path.test(p) : path;
    return this.all('sync', (s) => test(s.path) && (after === undefined || s.call.end > after.start) && (before === undefined || s.call.end < before.start));
  }

  /** Every call on one line each, for an assertion message. */
  toString(): string {
    return this.ops.filter((o) => o.op !== 'write' || o.data.startsWith('@@')).map((o) => `${o.call.name}(${o.call.args}) = ${o.call.ret}`).join('\n');
  }
}

/** In a traced script: marks the point reached (Trace.mark finds it). */
export function mark(label: string): void {
  writeSync(1, `@@${label}\n`);
}

/**
 * For a describe(): one run of `script` (in test/support, through tsx) under strace, shared by
 * every test of it, in a new temporary directory (by its real path, which is what strace shows)
 * removed after them. The returned function, called in an it() with its context, skips that test
 * where strace cannot be used (skipWithoutStrace), and otherwise gives the run, which must succeed.
 */
export function sharedTrace(script: string, args: (dir: string) => string[]): (ctx: Mocha.Context) => Promise<TraceRun & { dir: string }> {
  let dir: string | undefined;
  let run: Promise<TraceRun & { dir: string }> | undefined;
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return async (ctx) => {
    skipWithoutStrace(ctx);
    run ??= (async () => {
      dir = realpathSync(mkdtempSync(join(tmpdir(), `${basename(script, '.ts')}-`)));
      const r = await traced([process.execPath, '--import', LOADER, join(SUPPORT, script), ...args(dir)], { dir });
      if (r.status !== 0) throw new Error(`${script} failed (status ${r.status}, signal ${r.signal}): ${r.stderr}`);
      return { ...r, dir };
    })();
    return run;
  };
}

const SUPPORT = fileURLToPath(new URL('.', import.meta.url));
const LOADER = join(SUPPORT, 'tsx.mjs');

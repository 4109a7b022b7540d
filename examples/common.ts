// Shared by the runnable scenarios: run the suite's real programs, start servers on ports they
// pick themselves, print one short line per step, and stop every process started.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's folder: the first one up from this file (or the bundle made of it) holding cmd/bin/launch.js. */
function packageRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'cmd', 'bin', 'launch.js'))) return dir;
    if (dirname(dir) === dir) throw new Error('cannot find the package folder (cmd/bin/launch.js) above the scenario');
  }
}

export const ROOT = packageRoot();
export const bin = (p: string) => join(ROOT, 'cmd', 'bin', `${p}.js`);

// A reader that goes away (`npm run demo | head -5`) closes stdout: the scenario goes on quietly
// and still stops every server it started and removes its folder, instead of dying of an
// unhandled EPIPE with its servers left running.
let stdoutOpen = true;
process.stdout.on('error', () => {
  stdoutOpen = false;
});
const write = (text: string) => void (stdoutOpen && process.stdout.write(text));

/** Children started in a process group of their own (Scenario.run). */
const groups = new WeakSet<ChildProcess>();

/** Signals a child, and the whole group it leads if it was started as one (its id is the child's). */
function signal(c: ChildProcess, sig: NodeJS.Signals): void {
  if (groups.has(c) && c.pid !== undefined) {
    try {
      process.kill(-c.pid, sig);
      return;
    } catch {
      // the group is gone already: the child alone, below
    }
  }
  c.kill(sig);
}

/** Whether any process of the group `pgid` is left. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Ends every process of the group a child leads (SIGTERM, SIGKILL after 5 s) and waits until none is left. */
async function endGroup(c: ChildProcess): Promise<void> {
  const pgid = c.pid;
  if (pgid === undefined || !groupAlive(pgid)) return;
  signal(c, 'SIGTERM');
  const started = Date.now();
  while (groupAlive(pgid)) {
    if (Date.now() - started > 5000) signal(c, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A program that failed: how it ended, then what it said, if anything, after a colon (main()
 * ends the message with the newline). One stopped with the scenario (Ctrl-C) has often said nothing.
 */
function ended(what: string, code: number | null, sig: NodeJS.Signals | null, when: string, said: string): Error {
  const text = said.trimEnd();
  return new Error(`${what} ${code === null ? `was stopped by ${sig}` : `exited ${code}`}${when}${text && `:\n${text}`}`);
}

/** A step as its messages name it: the program and its first argument (a command's name), if any. */
const stepName = (program: string, args: string[]) => [program, ...args.slice(0, 1)].join(' ');

export class Scenario {
  readonly dir: string;
  private readonly children: ChildProcess[] = [];
  private readonly ports = new Map<ChildProcess, number>();
  private step = 0;
  private readonly started = Date.now();

  constructor(readonly name: string, private readonly keep = process.env.KEEP_DEMO === '1') {
    try {
      this.dir = mkdtempSync(join(tmpdir(), `${name}-`));
    } catch (e) {
      // A TMPDIR that is missing or not writable: said in one line, not a stack trace.
      process.stderr.write(`${name}: cannot make a temporary directory in ${tmpdir()} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): set TMPDIR to a directory of yours\n`);
      process.exit(1);
    }
  }

  // The scenario's own folders and files get their modes whatever the umask: under umask 000 a
  // folder made plainly is open to all, which deployment-setup.sh refuses, and the files copied
  // into a VM keep their source's mode (copyFileSync), so its attestation key stays 0600.

  /** Makes a folder of the scenario's, private (0700). */
  mkdir(path: string): void {
    mkdirSync(path, { mode: 0o700 });
  }

  /** Writes a file anyone may read and only its owner change (0644): a stand-in program or image. */
  writePublic(path: string, text: string): void {
    writeFileSync(path, text, { mode: 0o644 });
  }

  say(text: string): void {
    this.step++;
    write(`[${String(this.step).padStart(2)}] ${text}\n`);
  }

  /** Runs a program to completion; throws with its stderr when it fails. */
  run(program: string, args: string[], opts: { input?: Uint8Array; env?: Record<string, string> } = {}): Promise<Buffer> {
    if (this.finished) return this.notStarted(program, args);
    return new Promise((resolve, reject) => {
      const child = spawn(program.includes('/') ? program : process.execPath, program.includes('/') ? args : [bin(program), ...args], {
        // A group of its own (first-boot.sh runs programs of its own), stopped whole by finish()
        // if the scenario is stopped meanwhile.
        cwd: this.dir, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'], detached: true,
      });
      this.children.push(child);
      groups.add(child);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.on('error', reject);
      // A child that ends before reading its input (stopped as it starts, when the scenario is
      // stopped) closes the pipe: the write fails with EPIPE, which its exit status reports
      // already. Unheard, that error ended the scenario at once, its folder and servers left.
      child.stdin.on('error', () => {});
      child.on('close', (code, sig) => {
        if (code === 0) resolve(Buffer.concat(out));
        else reject(ended(stepName(program, args), code, sig, '', Buffer.concat(err).toString()));
      });
      child.stdin.end(opts.input ?? '');
    });
  }

  /**
   * Starts a server that prints "listening HOST:PORT" first; resolves with the port. Its log (its
   * standard error) goes to PROGRAM.log in the scenario's folder, which KEEP_DEMO=1 keeps.
   */
  serve(program: string, args: string[]): Promise<number> {
    if (this.finished) return this.notStarted(program, args);
    return new Promise((resolve, reject) => {
      const logFile = join(this.dir, `${program}.log`);
      const log = openSync(logFile, 'a', 0o600);
      const child = spawn(process.execPath, [bin(program), ...args], { cwd: this.dir, stdio: ['ignore', 'pipe', log] });
      closeSync(log);
      this.children.push(child);
      this.ports.set(child, 0);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening \S+:(\d+)/.exec(out); // HOST:PORT, an IPv6 host in brackets
        if (m) {
          this.ports.set(child, Number(m[1]));
          resolve(Number(m[1]));
        }
      });
      child.on('exit', (code, sig) => reject(ended(program, code, sig, ' before listening', readFileSync(logFile, 'utf8'))));
    });
  }

  /** Stops the server listening on `port` (SIGTERM by pid) and waits for it to exit. */
  async stop(port: number): Promise<void> {
    await Promise.all(this.children.filter((c) => this.ports.get(c) === port).map((c) => this.terminate(c)));
  }

  private terminate(c: ChildProcess): Promise<void> {
    return groups.has(c) ? endGroup(c) : new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      const timer = setTimeout(() => signal(c, 'SIGKILL'), 5000);
      c.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      signal(c, 'SIGTERM');
    });
  }

  private finished: Promise<void> | undefined;

  /**
   * A step the scenario's body reaches once it is being stopped (a signal came while the step
   * before ran on) fails without starting its program, which finish() would neither stop nor wait for.
   */
  private notStarted(program: string, args: string[]): Promise<never> {
    return Promise.reject(new Error(`${stepName(program, args)} not started: the scenario is stopping`));
  }

  /** Stops every process it started (SIGTERM by pid, SIGKILL if it lingers) and removes the directory; once. */
  finish(ok: boolean): Promise<void> {
    this.finished ??= this.finishOnce(ok);
    return this.finished;
  }

  private async finishOnce(ok: boolean): Promise<void> {
    await Promise.all(this.children.map((c) => this.terminate(c)));
    if (!this.keep) rmSync(this.dir, { recursive: true, force: true });
    const secs = ((Date.now() - this.started) / 1000).toFixed(1);
    // KEEP_DEMO=1 keeps the folder whatever the outcome, and says where.
    const kept = this.keep ? ` (files kept in ${this.dir})` : '';
    write(ok ? `${this.name}: SUCCESS in ${secs}s${kept}\n` : `${this.name}: FAILED after ${secs}s${kept}\n`);
  }
}

/** Runs a scenario body, always cleaning up, exiting non-zero on failure. */
export async function main(s: Scenario, body: () => Promise<void>): Promise<void> {
  // Stopped (Ctrl-C, kill, a terminal hung up): every process it started is stopped, then it ends
  // with the status the first signal gives (128 + its number). A signal that comes while it stops
  // (Ctrl-C pressed again) waits for that stop too: without a listener it would end the demo at
  // once, its folder (keys and all) and the programs it was stopping left behind.
  let stopping: Promise<void> | undefined;
  for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
    process.on(sig, () => void (stopping ??= s.finish(false).then(() => process.exit(128 + n))));
  }
  try {
    await body();
    await s.finish(true);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    await s.finish(false);
    process.exitCode = 1;
  }
}

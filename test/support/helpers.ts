// Shared test helpers: throwaway directories, running the real programs, fixture paths.

import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const VECTORS = join(ROOT, 'test', 'vectors');

/**
 * The layout of the "link/.." tests: a symbolic link `top`/link to `top`/real/deep, so that
 * `top`/link/../NAME is `top`/real/NAME to the kernel, and `top`/NAME to path.join and resolve.
 */
export function linkToDeep(top: string): void {
  mkdirSync(join(top, 'real', 'deep'), { recursive: true });
  symlinkSync(join(top, 'real', 'deep'), join(top, 'link'));
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'certifier-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A loopback port nothing listens on. */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** stderr as the bytes written (stderr is those decoded as UTF-8) */
  stderrBytes: Buffer;
  /** stdout as text */
  out: string;
  /** stdout parsed as JSON (throws if it is not) */
  json: () => any;
}

export type Program = 'cert-utility' | 'simpleserver' | 'key-server' | 'key-client';

export interface RunOptions {
  cwd?: string;
  input?: Uint8Array | string;
  env?: Record<string, string | undefined>;
}

/** Runs one of the suite's programs as a user would, through its bin entry. */
export function run(program: Program, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return spawnAndWait(process.execPath, [join(ROOT, 'cmd', 'bin', `${program}.js`), ...args], options);
}

/** Node's arguments that run test/support/`script` with `args`, from a bundle (test/support/bundled.mjs). */
export function supportScript(script: string, args: string[]): string[] {
  return [join(ROOT, 'test', 'support', 'bundled.mjs'), join('test', 'support', script), ...args];
}

/** Every subcommand's --help text, by program and subcommand, as the four programs build their commands (test/support/help-texts.ts). */
export type Helps = Record<string, Record<string, string>>;
export function helpTexts(): Helps {
  return JSON.parse(execFileSync(process.execPath, supportScript('help-texts.ts', []), { cwd: ROOT, encoding: 'utf8' }));
}

/**
 * Runs one of the programs as run() does, with arguments that may be any bytes: no JavaScript
 * string passes bytes that are not UTF-8 into a child's argv, so bash puts each there as $'\xHH...'.
 */
export function runWithBytes(program: Program, args: (string | Uint8Array)[], options: RunOptions = {}): Promise<RunResult> {
  const quoted = args.map((a) => `$'${[...(typeof a === 'string' ? Buffer.from(a, 'utf8') : a)].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('')}'`);
  return spawnAndWait('bash', ['-c', `exec "$0" "$1" ${quoted.join(' ')}`, process.execPath, join(ROOT, 'cmd', 'bin', `${program}.js`)], options);
}

/** Runs one of scripts/ (which finds the programs next to it) the same way. */
export function runScript(script: 'first-boot.sh' | 'deployment-setup.sh' | { path: string }, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return spawnAndWait(typeof script === 'string' ? join(ROOT, 'scripts', script) : script.path, args, options);
}

function spawnAndWait(file: string, args: string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, ...options.env })) if (v !== undefined) env[k] = v;
    delete env.CERTIFIER_DEBUG;
    if (options.env && 'CERTIFIER_DEBUG' in options.env && options.env.CERTIFIER_DEBUG) env.CERTIFIER_DEBUG = options.env.CERTIFIER_DEBUG;
    if (!(options.env && 'CRYPTSTORE_PASSPHRASE' in options.env)) delete env.CRYPTSTORE_PASSPHRASE;
    const child = spawn(file, args, { cwd: options.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (status, signal) => {
      const stdout = Buffer.concat(out);
      const stderrBytes = Buffer.concat(err);
      resolve({ status, signal, stdout, stderr: stderrBytes.toString('utf8'), stderrBytes, out: stdout.toString('utf8'), json: () => JSON.parse(stdout.toString('utf8')) });
    });
    // A program that exits before reading its input closes the pipe: not the test's failure.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

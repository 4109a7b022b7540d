// A throwaway PostgreSQL server for tests and benchmarks, from Debian's `postgresql` package:
// initdb and pg_ctl in a temporary directory, listening on a free 127.0.0.1 port only (no Unix
// socket), trust authentication for 127.0.0.1 and nothing else, stopped (pg_ctl stop) and
// removed by stop(). initdb refuses to run as root, so as root the server runs as the package's
// `postgres` user (spawned with its uid/gid) and owns its directory.

import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, appendFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PG_MISSING = 'PostgreSQL not installed: skipping the PostgreSQL backend tests';

/** The directory holding initdb and pg_ctl, or undefined when PostgreSQL is not installed. */
export function findPgBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    // The newest major version first.
    const majors = readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a));
    for (const m of majors) if (existsSync(join(root, m, 'bin', 'initdb')) && existsSync(join(root, m, 'bin', 'pg_ctl'))) return join(root, m, 'bin');
  }
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  const initdb = which.status === 0 ? which.stdout.trim() : '';
  if (initdb && existsSync(initdb.replace(/initdb$/, 'pg_ctl'))) return initdb.replace(/\/initdb$/, '');
  return undefined;
}

/** The uid and gid to run the server as: ours, or the `postgres` user's when we are root. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root, and there is no "postgres" user to run PostgreSQL as (initdb refuses root)');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const live = new Set<PgServer>();
// If a run is torn down without stop(), do not leave a postmaster behind.
process.once('exit', () => {
  for (const s of live) s.stopSync();
});

export class PgServer {
  private running = false;

  private constructor(readonly bin: string, readonly dir: string, readonly port: number, private readonly user: { uid: number; gid: number } | undefined) {}

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** A connection URL for `database` as the superuser `postgres` (trust: no password). */
  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /**
   * initdb a new cluster in a temporary directory and start it. Without `fsync` (tests) it never
   * syncs: nothing here survives the machine, and a stop no longer waits seconds for the
   * checkpoint's syncs of the many databases a test file makes (a stop, a restart or a crash of
   * the server alone loses nothing: its writes are in the kernel's cache). The benchmark syncs.
   */
  static async start(bin: string, o: { fsync?: boolean } = {}): Promise<PgServer> {
    const user = serverUser();
    const dir = mkdtempSync(join(tmpdir(), 'pg-test-'));
    if (user) chownSync(dir, user.uid, user.gid);
    const port = await freePort();
    const s = new PgServer(bin, dir, port, user);
    try {
      await s.exec('initdb', ['-D', s.dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
      // Loopback only, no Unix socket, and the only client rule: trust on 127.0.0.1.
      appendFileSync(join(s.dataDir, 'postgresql.conf'), `\nlisten_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = ''\nmax_connections = 200\n${o.fsync ? '' : 'fsync = off\n'}`);
      writeFileSync(join(s.dataDir, 'pg_hba.conf'), 'host all all 127.0.0.1/32 trust\n');
      await s.resume();
      return s;
    } catch (e) {
      await s.stop();
      throw e;
    }
  }

  /** Starts the (stopped) server again on the same port and data. */
  async resume(): Promise<void> {
    live.add(this);
    await this.exec('pg_ctl', ['start', '-w', '-t', '30', '-D', this.dataDir, '-l', join(this.dir, 'server.log')]);
    this.running = true;
  }

  /** Stops the server (fast shutdown: connections are closed, committed work is kept). */
  async halt(): Promise<void> {
    if (!this.running) return;
    try {
      await this.exec('pg_ctl', ['stop', '-w', '-t', '30', '-m', 'fast', '-D', this.dataDir]);
    } catch (e) {
      // Not stopped within the time (a very busy machine): no postmaster is left running; the error stands.
      await this.exec('pg_ctl', ['stop', '-w', '-t', '30', '-m', 'immediate', '-D', this.dataDir]).then(() => void (this.running = false), () => {});
      throw e;
    }
    this.running = false;
  }

  /**
   * Freezes (SIGSTOP) or thaws (SIGCONT) this server's processes, by pid: its postmaster (from
   * postmaster.pid) and the postmaster's children (each backend is in its own process group, so
   * they are found in /proc). A frozen database accepts TCP connections and never answers, like
   * one behind a network partition.
   */
  signal(sig: 'SIGSTOP' | 'SIGCONT'): void {
    const pid = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 1) throw new Error('no postmaster pid');
    const children = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
      try {
        // Fields after the parenthesized command name: state, ppid, ...
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false; // exited meanwhile
      }
    });
    // Stop the parent first (no new children), continue it last.
    const order = sig === 'SIGSTOP' ? [pid, ...children.map(Number)] : [...children.map(Number), pid];
    for (const p of order) {
      try {
        process.kill(p, sig);
      } catch {
        // exited meanwhile
      }
    }
  }

  /** Stops the server and removes its directory. */
  async stop(): Promise<void> {
    try {
      await this.halt();
    } finally {
      live.delete(this);
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** Last resort at process exit. */
  stopSync(): void {
    try {
      if (this.running) this.signal('SIGCONT');
    } catch {
      // not frozen, or already gone
    }
    if (this.running) spawnSync(join(this.bin, 'pg_ctl'), ['stop', '-m', 'immediate', '-D', this.dataDir], this.spawnOptions() as object);
    this.running = false;
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs psql as the superuser against `database`; resolves with stdout (throws on failure). */
  psql(database: string, sql: string, extra: string[] = []): Promise<string> {
    return this.exec('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', database, ...extra, '-c', sql]);
  }

  /** `pg_dump` of `database` as SQL text: its schema and every row (bytea as hex). */
  dump(database: string): Promise<string> {
    return this.exec('pg_dump', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', database]);
  }

  /** A new, empty database; returns its URL. */
  async createDatabase(name: string): Promise<string> {
    await this.psql('postgres', `CREATE DATABASE "${name}"`);
    return this.url(name);
  }

  private spawnOptions(): SpawnOptions {
    return { cwd: this.dir, env: { ...process.env, LC_ALL: 'C', PGTZ: 'UTC' }, ...(this.user ?? {}) };
  }

  private exec(program: string, args: string[]): Promise<string> {
    // psql comes from the same package; fall back to PATH (postgresql-client) if it is elsewhere.
    const path = existsSync(join(this.bin, program)) ? join(this.bin, program) : program;
    return new Promise((resolve, reject) => {
      // pg_ctl start leaves the postmaster running with our pipes unless its output goes to a file (-l).
      const child = spawn(path, args, { ...this.spawnOptions(), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
      child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
      child.once('error', reject);
      child.once('close', (code) => {
        if (code === 0) resolve(out);
        else {
          let log = '';
          try {
            log = readFileSync(join(this.dir, 'server.log'), 'utf8').slice(-2000);
          } catch {
            // no server log yet
          }
          reject(new Error(`${program} ${args[0]} exited ${code}: ${err.trim()}${log ? `\nserver log:\n${log}` : ''}`));
        }
      });
    });
  }
}

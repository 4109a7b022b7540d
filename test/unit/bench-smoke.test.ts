// Smoke-runs the benchmark as `npm run bench -- --quick` does (from its bundle): it must finish,
// exit 0, print a cryptstore-vs-raw row with a ratio for every value size and operation, the
// certifications-vs-mutual-TLS rows, the key-server rows (retrieves beside mutual TLS, RSS of
// key-server children, which it must have stopped), and remove its temporary directory. The
// numbers of a quick run are not checked: they mean nothing.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { ROOT } from '../support/helpers.ts';

const SIZES = ['32 B', '1 KiB', '64 KiB', '1 MiB'];

function runBench(args: string[]): Promise<{ status: number | null; signal: NodeJS.Signals | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['test/bench/start.js', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (status, signal) =>
      resolve({ status, signal, out: Buffer.concat(out).toString('utf8'), err: Buffer.concat(err).toString('utf8') }));
  });
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('benchmark smoke run (--quick)', function () {
  this.timeout(180_000);
  this.slow(30_000);

  let run: Awaited<ReturnType<typeof runBench>>;
  before(async () => {
    run = await runBench(['--quick']);
  });

  it('exits 0', () => {
    expect(run.signal, run.err).to.equal(null);
    expect(run.status, `stdout:\n${run.out}\nstderr:\n${run.err}`).to.equal(0);
  });

  it('prints the machine facts', () => {
    expect(run.out).to.match(/^\s+node:\s+v\d+\.\d+\.\d+/m);
    expect(run.out).to.match(/^\s+cpu:\s+\d+ x /m);
  });

  for (const size of SIZES) {
    for (const op of ['put', 'get']) {
      it(`prints a ratio row for ${size} ${op}`, () => {
        // size, operation, raw ops/s, cryptstore ops/s, ratio, paired, target, status
        const row = new RegExp(`^${escape(size)}\\s+${op}\\s+[\\d.]+\\s+[\\d.]+\\s+(\\d+\\.\\d\\d)\\s+.*>= 0\\.50\\s+(PASS|BELOW)\\s*$`, 'm');
        const m = row.exec(run.out);
        expect(m, `no ${size} ${op} row in:\n${run.out}`).to.not.equal(null);
        expect(Number(m![1])).to.be.greaterThan(0);
      });
    }
  }

  it('runs every section without a failure', () => {
    expect(run.out).not.to.contain('SECTION FAILED');
    expect(run.out, 'the soak runs only when --only names it').not.to.match(/^== soak/m);
    expect(run.out).to.match(/^== certifications vs mutual-TLS handshakes \(8 concurrent clients, one connection each, loopback\) ==$/m);
  });

  it('prints certifications per second beside mutual-TLS handshakes per second, with the ratio and its 0.70 target', () => {
    // keys, operation, mTLS handshakes/s, certifications/s, ratio, paired, target, status
    const m = /^P-256\s+certification \(requestCertificate\)\s+([\d.]+)\s+([\d.]+)\s+(\d+\.\d\d)\s+.*>= 0\.70\s+(PASS|BELOW)\s*$/m.exec(run.out);
    expect(m, `no certification row in:\n${run.out}`).to.not.equal(null);
    for (const n of [m![1], m![2], m![3]]) expect(Number(n)).to.be.greaterThan(0);
    expect(run.out).to.match(/^P-256\s+server-auth TLS \+ 1-byte echo\s+[\d.]+\s+[\d.]+\s+\d+\.\d\d\s+/m);
    expect(run.out).to.match(/single-threaded cost of the certifier's own stages \(ms\): client: verify the authority [\d.]+, /);
  });

  it('prints the key-server section: retrieves beside mutual TLS with their 0.80 and 0.50 targets, and the RSS rows', () => {
    expect(run.out).to.match(/^== key-server: retrieves vs mutual TLS \(loopback, in-process\), and RSS of key-server serve ==$/m);
    // case, operation, baseline/s, key-server/s, ratio, paired, target, status
    const perConnection = /^P-256 mTLS\s+retrieve, 1 per connection vs mTLS \+ 1-byte echo \(\/s\)\s+([\d.]+)\s+([\d.]+)\s+(\d+\.\d\d)\s+.*>= 0\.80\s+(PASS|BELOW)\s*$/m.exec(run.out);
    const pipelined = /^one connection\s+retrieve, \d+ in flight vs 32-byte echo \(\/s\)\s+([\d.]+)\s+([\d.]+)\s+(\d+\.\d\d)\s+.*>= 0\.50\s+(PASS|BELOW)\s*$/m.exec(run.out);
    for (const [what, m] of [['one retrieve per connection', perConnection], ['pipelined retrieves', pipelined]] as const) {
      expect(m, `no ${what} row in:\n${run.out}`).to.not.equal(null);
      for (const n of [m![1], m![2], m![3]]) expect(Number(n), what).to.be.greaterThan(0);
    }
    expect(run.out).to.match(/^one connection\s+the same, server without an audit log \(\/s\)\s+[\d.]+\s+[\d.]+\s+\d+\.\d\d\s+/m);
    // Two key-server children's RSS in MiB (idle, loaded), then the growth per name (any sign in a quick run).
    const rss = /^[\d,]+ names\s+RSS of key-server serve: empty idle vs loaded \(MiB\)\s+([\d.]+)\s+([\d.]+)\s+/m.exec(run.out);
    expect(rss, `no RSS row in:\n${run.out}`).to.not.equal(null);
    for (const n of [rss![1], rss![2]]) expect(Number(n)).to.be.within(5, 4096);
    expect(run.out).to.match(/^[\d,]+ names\s+RSS growth per stored name, vs idle \(bytes\)\s+-\s+-?[\d.]+\s/m);
    expect(run.out).to.match(/^[\d,]+ names\s+RSS growth per stored name, vs as many requests \(bytes\)\s+-\s+-?[\d.]+\s/m);
    expect(run.out).to.match(/stage costs on this thread, each alone \(ms\): verifyPeer: the peer certificate from a new TLS socket/);
  });

  it('stops every key-server child it started', () => {
    const m = /children \(pids ([\d, ]+)\) stopped/.exec(run.out);
    expect(m, run.out).to.not.equal(null);
    for (const pid of m![1]!.split(', ').map(Number)) {
      // Gone, or (after pid reuse) some other program: never a key-server.
      const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
      expect(cmdline, `pid ${pid}`).not.to.contain('key-server');
    }
  });

  it('removes its temporary directory', () => {
    const m = /^\s+temp dir:\s+(\S+)/m.exec(run.out);
    expect(m, run.out).to.not.equal(null);
    expect(existsSync(m![1]!)).to.equal(false);
  });
});

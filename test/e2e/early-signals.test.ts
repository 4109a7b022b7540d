// Servers signalled as they start, from the first moment the program runs (its first line takes
// SIGHUP: seen in /proc, so sent then, however busy the machine): SIGHUP never stops them, they
// serve and act on it once; SIGTERM stops them cleanly (exit 0) as soon as they are up, unannounced.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../support/helpers.ts';
import { Child, Domain, sleep, type Machine } from './domain.ts';

const TIMES = 3;

/** True once `pid` has a handler for SIGHUP (bit 0 of SigCgt in /proc/PID/status). */
function catchesHangup(pid: number): boolean {
  const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m !== null && (BigInt(`0x${m[1]}`) & 1n) === 1n;
}

describe('e2e: servers signalled as they start', function () {
  this.timeout(120_000);
  let d: Domain;
  let ks: Machine;

  before(async function () {
    if (!existsSync('/proc/self/status')) this.skip();
    ({ d, machines: { keyserver: ks } } = await Domain.setUp({ keyserver: 'key-server' }));
  });
  after(async () => d?.close());

  const serve = {
    simpleserver: () => d.simpleserverArgs(),
    'key-server': () => d.keyServerArgs(ks, d.path('data')),
  };

  /** Starts `program` serve and sends `signal` as soon as its first line has run. */
  async function signalledAtStart(program: keyof typeof serve, signal: NodeJS.Signals): Promise<Child> {
    const child = new Child(program, spawn(process.execPath, [join(ROOT, 'cmd', 'bin', `${program}.js`), ...serve[program]()], { cwd: d.dir, stdio: ['ignore', 'pipe', 'pipe'] }));
    d.adopt(child);
    for (let i = 0; i < 10_000 && child.running && !catchesHangup(child.pid); i++) await sleep(1);
    process.kill(child.pid, signal);
    return child;
  }

  for (const program of ['simpleserver', 'key-server'] as const) {
    it(`${program}: SIGTERM as it starts stops it cleanly, exit 0, without announcing it listens`, async () => {
      for (let i = 0; i < TIMES; i++) {
        const child = await signalledAtStart(program, 'SIGTERM');
        expect(await child.exited, child.stderr).to.deep.equal({ code: 0, signal: null });
        expect(child.stderr).to.contain(`${program}: SIGTERM: finishing requests in flight, then stopping`).and.match(new RegExp(`${program}: stopped\\n$`));
        expect(child.stdout).to.equal('');
      }
    });

    it(`${program}: SIGHUP as it starts does not stop it: it serves, reloads once, and stops on SIGTERM`, async () => {
      for (let i = 0; i < TIMES; i++) {
        const child = await signalledAtStart(program, 'SIGHUP');
        await child.waitForLog(/ (reloaded|reload-ignored) /, 0, 20_000);
        expect(child.stdout).to.match(/^listening 127\.0\.0\.1:\d+\n$/);
        expect(await child.stop()).to.deep.equal({ code: 0, signal: null });
      }
    });
  }
});

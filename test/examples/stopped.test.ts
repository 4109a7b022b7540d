// Ctrl-C while deployment-setup.sh or first-boot.sh checks what it was given: SIGINT reaches the
// whole process group, the program being waited for ends (130) and bash ran the line reporting it
// failing before its trap, so the run blamed the program (or said nothing, exit 1). Each now says
// it was stopped, exits 130 and has made nothing. The program stopped here is a stand-in that
// waits, and ends on SIGINT with 130 as the suite's programs do; the others are the real ones.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from '../support/helpers.ts';

const WAIT = "process.on('SIGINT', () => process.exit(130)); require('fs').writeFileSync(process.env.STALLED, ''); setInterval(() => {}, 1000)";

describe('scripts stopped by Ctrl-C while they check what they were given', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  const f = (p: string) => join(tmp.dir, p);
  beforeEach(() => (tmp = tempDir('stopped-')));
  afterEach(() => tmp.cleanup());

  /** A program that runs `program` but waits when its arguments begin with `stallAt`. */
  const stalling = (program: string, stallAt: string) => {
    const path = f(`${program}-stalling`);
    writeFileSync(path, `#!/bin/sh\ncase "$*" in "${stallAt}"*) exec "${process.execPath}" -e "${WAIT}" ;; esac\nexec "${process.execPath}" "${join(ROOT, 'cmd', 'bin', `${program}.js`)}" "$@"\n`, { mode: 0o755 });
    return path;
  };

  /** Runs a script in a process group of its own, as a terminal does, and sends the group SIGINT once the program stalls. */
  const interrupted = (script: string, args: string[], env: Record<string, string>) => new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(join(ROOT, 'scripts', script), args, { cwd: tmp.dir, env: { ...process.env, ...env, STALLED: f('stalled') }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => {
      clearInterval(poll);
      resolve({ status, stderr });
    });
    const poll = setInterval(() => existsSync(f('stalled')) && (clearInterval(poll), process.kill(-child.pid!, 'SIGINT')), 20);
  });

  for (const stallAt of ['generate-policy-key --check-only', 'measure']) {
    it(`deployment-setup.sh stopped while cert-utility ${stallAt.split(' ')[0]} runs says so, exits 130 and makes nothing`, async () => {
      writeFileSync(f('app'), 'app\n');
      const r = await interrupted('deployment-setup.sh', ['--dir', 'setup', '--domain', 'datica', '--measure', 'app'], { CERT_UTILITY: stalling('cert-utility', stallAt) });
      expect([r.status, r.stderr]).to.deep.equal([130, 'deployment-setup: stopped by SIGINT; nothing made\n']);
      expect(existsSync(f('setup'))).to.equal(false);
    });
  }

  for (const [program, stallAt] of [['key-client', 'retrieve --check-only'], ['cert-utility', 'list-items']] as const) {
    it(`first-boot.sh stopped while ${program} ${stallAt.split(' ')[0]} runs says so, exits 130 and certifies nothing`, async () => {
      writeFileSync(f('policy-cert.pem'), '');
      writeFileSync(f('measurement'), '');
      mkdirSync(f('platform'));
      // A store there: first-boot reads it (list-items) while key-client checks its flags.
      if (stallAt === 'list-items') mkdirSync(f('store'));
      const r = await interrupted('first-boot.sh', [
        '--host', '127.0.0.1', '--certifier-port', '8123', '--keyserver-port', '8120', '--keys', 'vhd/disk-1', '--domain', 'datica',
        '--policy-cert', 'policy-cert.pem', '--store', 'store', '--platform-dir', 'platform', '--measurement-file', 'measurement', '--server-measurement', 'ab'.repeat(32),
      ], { [program === 'key-client' ? 'KEY_CLIENT' : 'CERT_UTILITY']: stalling(program, stallAt) });
      expect([r.status, r.stderr]).to.deep.equal([130, 'first-boot: stopped by SIGINT; not certifying\n']);
      expect(existsSync(f('store')), 'no store made').to.equal(stallAt === 'list-items');
    });
  }
});

// The example systemd units, checked by systemd-analyze verify where it is installed (skipped
// elsewhere): each parses, and first-boot orders before network-dependent encrypted disks
// without an ordering cycle. The programs' paths are replaced by /bin/true, which exists. Then
// first-boot.service as written, everywhere: its settings, and its ExecStart run with the script.

import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, runScript, tempDir } from '../support/helpers.ts';
import { ABANDON_MS, CLOSE_MS, STOP_GRACE_MS, TASK_GRACE_MS } from '../../cmd/common/server.ts';
import { DRAIN_MS } from '../../lib/keyservice/server.ts';
import { ExitStatus } from '../../lib/errors/index.ts';
import { DEFAULT_TIMEOUT_SECONDS } from '../../cmd/common/timeout.ts';
import { DEFAULT_LIMITS } from '../../lib/channel/index.ts';

const run = promisify(execFile);
const UNITS = ['first-boot', 'key-server', 'simpleserver'];
const BACKUP = ['key-server-backup.timer', 'key-server-backup.service'];

async function analyzer(): Promise<boolean> {
  return run('systemd-analyze', ['--version']).then(() => true, () => false);
}

describe('examples/systemd units', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  before(async function () {
    if (!(await analyzer())) this.skip();
    tmp = tempDir('systemd-');
    for (const u of UNITS) {
      const text = readFileSync(join(ROOT, 'examples/systemd', `${u}.service`), 'utf8').replace(/^(Exec(?:Start|Reload)=)\S+/gm, '$1/bin/true');
      writeFileSync(join(tmp.dir, u === 'first-boot' ? 'certifier-first-boot.service' : `${u}.service`), text);
    }
    for (const u of BACKUP) writeFileSync(join(tmp.dir, u), readFileSync(join(ROOT, 'examples/systemd', u), 'utf8').replace(/^(ExecStart=)\S+/gm, '$1/bin/true'));
    // What systemd-cryptsetup-generator writes for a crypttab entry marked _netdev, and a service
    // that needs both.
    writeFileSync(join(tmp.dir, 'systemd-cryptsetup@data.service'), [
      '[Unit]', 'DefaultDependencies=no', 'After=cryptsetup-pre.target remote-fs-pre.target network-online.target', 'Wants=network-online.target',
      'Before=remote-cryptsetup.target umount.target', 'Conflicts=umount.target', '[Service]', 'Type=oneshot', 'RemainAfterExit=yes', 'ExecStart=/bin/true', '',
    ].join('\n'));
    writeFileSync(join(tmp.dir, 'app.service'), [
      '[Unit]', 'Requires=certifier-first-boot.service systemd-cryptsetup@data.service', 'After=certifier-first-boot.service systemd-cryptsetup@data.service',
      '[Service]', 'ExecStart=/bin/true', '',
    ].join('\n'));
  });
  after(() => tmp?.cleanup());

  for (const u of ['key-server', 'simpleserver']) {
    it(`${u}.service parses cleanly`, async () => {
      const r = await run('systemd-analyze', ['verify', '--man=no', `./${u}.service`], { cwd: tmp.dir });
      expect(r.stderr.trim()).to.equal('');
    });
  }

  it('key-server-backup.timer and the service it starts parse cleanly, beside key-server.service', async () => {
    const r = await run('systemd-analyze', ['verify', '--man=no', ...BACKUP.map((u) => `./${u}`)], { cwd: tmp.dir });
    expect(r.stderr.trim()).to.equal('');
  });

  it('first-boot.service runs before a _netdev encrypted disk and the services needing both, with no ordering cycle', async () => {
    // The generator orders a _netdev disk After=remote-fs-pre.target: the unit must pull that in and come before it.
    const unit = readFileSync(join(tmp.dir, 'certifier-first-boot.service'), 'utf8');
    expect(unit).to.match(/^Before=remote-fs-pre\.target$/m).and.to.match(/^Wants=remote-fs-pre\.target$/m);
    const r = await run('systemd-analyze', ['verify', '--man=no', './certifier-first-boot.service', './systemd-cryptsetup@data.service', './app.service'], { cwd: tmp.dir });
    expect(r.stderr).not.to.match(/cycle/i);
    expect(r.stderr.trim()).to.equal('');
  });
});

describe('examples/systemd units as written', () => {
  const unitText = (u: string) => readFileSync(join(ROOT, 'examples/systemd', `${u}.service`), 'utf8');

  it('let no crash write the keys a program holds to a core dump (LimitCORE=0), nor memory pressure to swap (MemorySwapMax=0)', () => {
    for (const u of UNITS) expect(unitText(u), u).to.match(/^LimitCORE=0$/m).and.to.match(/^MemorySwapMax=0$/m);
  });

  it('raise key-server\'s limit on open files to 8192 (LimitNOFILE): LevelDB keeps up to 1,000 tables open beside 256 connections, past systemd\'s soft 1,024', () => {
    const limit = Number(/^LimitNOFILE=(\d+)$/m.exec(unitText('key-server'))?.[1]);
    expect(limit).to.equal(8192); // README, "Design"
    expect(limit).to.be.above(1_000 + DEFAULT_LIMITS.maxConnections);
  });

  it('give each server the time its longest stop takes before systemd sends SIGKILL (TimeoutStopSec)', () => {
    // A backup or reload still running (a backup abandoned then given ABANDON_MS to stop), then the
    // connections taking their answers; key-server then waits for stores still being carried out.
    // Then closing what it opened, each thing given CLOSE_MS (one held by a call that never returns
    // is left): key-server's audit log, key database and cryptstore, all on one disk that may hang.
    const longest = { 'key-server': TASK_GRACE_MS + ABANDON_MS + STOP_GRACE_MS + DRAIN_MS + 3 * CLOSE_MS, simpleserver: TASK_GRACE_MS + STOP_GRACE_MS };
    for (const [u, ms] of Object.entries(longest)) {
      const s = Number(/^TimeoutStopSec=(\d+)$/m.exec(unitText(u))?.[1]);
      expect(s * 1000, u).to.be.at.least(ms);
    }
  });
});

describe('examples/systemd server units as written', () => {
  const unitText = (u: string) => readFileSync(join(ROOT, 'examples/systemd', `${u}.service`), 'utf8');

  it('restart a server that failed, but not after a usage error or a failed integrity check (a bad policy file, a wrong store key), which a new start cannot cure: it was started again every RestartSec for ever, too slowly for systemd\'s start limit', () => {
    for (const u of ['key-server', 'simpleserver']) {
      const unit = unitText(u);
      expect(unit, u).to.match(/^Restart=on-failure$/m);
      const prevented = /^RestartPreventExitStatus=(.*)$/m.exec(unit)?.[1]?.split(' ').map(Number);
      expect(prevented, u).to.have.members([ExitStatus.usage, ExitStatus.integrity]);
    }
  });
});

describe('examples/systemd server units\' set-up (their header)', () => {
  const unitText = (u: string) => readFileSync(join(ROOT, 'examples/systemd', `${u}.service`), 'utf8');
  const header = (u: string) => unitText(u).slice(0, unitText(u).indexOf('[Unit]'));
  const execStart = (u: string) => /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unitText(u))![1]!.replace(/\\\n/g, ' ').split(/\s+/).filter(Boolean);

  it('names every file ExecStart reads, and gives each secret one (a key) to the unit\'s User= by a chown line; any init-trust runs as that user', () => {
    for (const [u, secrets] of [['key-server', ['--key-file']], ['simpleserver', ['--policy-key']]] as const) {
      const user = /^User=(\S+)$/m.exec(unitText(u))![1]!;
      const args = execStart(u);
      const files = args.filter((a, i) => i > 1 && a.startsWith('/etc/'));
      expect(files, u).not.to.be.empty;
      for (const f of files) expect(header(u), `${u}: ${f}`).to.contain(f.slice(f.lastIndexOf('/') + 1));
      for (const flag of secrets) {
        const file = args[args.indexOf(flag) + 1]!;
        expect(header(u), `${u}: ${flag}`).to.match(new RegExp(`^#\\s+chown ${user}:${user} ${file}$`, 'm'));
      }
      for (const line of header(u).split('\n').filter((l) => /cert-utility init-trust/.test(l))) expect(line, u).to.contain(`runuser -u ${user} -- cert-utility init-trust`);
    }
  });
});

describe('examples/systemd/first-boot.service as written', () => {
  const unit = readFileSync(join(ROOT, 'examples/systemd/first-boot.service'), 'utf8');

  it('holds back the services after it until the script has finished, and keeps what it writes private', () => {
    // Type=simple would count as started at once: a service After= it would run without the keys.
    for (const line of ['Type=oneshot', 'RemainAfterExit=yes', 'UMask=0077', 'StateDirectoryMode=0700']) expect(unit).to.match(new RegExp(`^${line}$`, 'm'));
    // Nor is it started again: a refusal is final (the script retries only an unreachable server, within its bounds).
    expect(unit).not.to.match(/^Restart=/m);
  });

  it('fails, never skipped, in an image without its policy certificate: a unit skipped on a Condition counts as done, and the services Requires= it started without their keys', () => {
    expect(unit).not.to.match(/^Condition/m);
    expect(unit).to.match(/^AssertPathExists=\/etc\/certifier-keys\/policy-cert\.pem$/m);
  });

  it('lets the script give up by itself (exit 3) before systemd stops it: TimeoutStartSec is half again its worst case, which its comment works out', () => {
    const script = readFileSync(join(ROOT, 'scripts/first-boot.sh'), 'utf8');
    const exec = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unit)![1]!;
    // The script's defaults, unless the unit's ExecStart gives the flag.
    const setting = (flag: string, variable: string, fallback?: number) => Number(new RegExp(`${flag} (\\d+)`).exec(exec)?.[1] ?? new RegExp(`\\b${variable}=(\\d+)\\b`).exec(script)?.[1] ?? fallback);
    const [R, D, T, L] = [setting('--retries', 'retries'), setting('--max-delay', 'max_delay'), setting('--timeout', 'timeout', DEFAULT_TIMEOUT_SECONDS), setting('--deadline', 'deadline')];
    expect([R, D, T, L].every(Number.isInteger), `${R} ${D} ${T} ${L}`).to.equal(true);
    let B = 0; // with_retries: a pause of 1 s, doubling up to the cap, between attempts
    for (let i = 1, delay = 1; i < R; i++, delay = Math.min(delay * 2, D)) B += delay;
    const START_S = 5; // a program's start and its store's opening, at most (a passphrase's scrypt included)
    // Step 2's attempts, key-client's, are bounded by --deadline (L) in all, its start included,
    // however many keys KEYS names; init-trust starts R times, and the flag checks once.
    const worst = R * 3 * T + B + R * L + B + (R + 1) * START_S;
    expect(unit).to.contain(`= ${worst} s`);
    const m = /^TimeoutStartSec=(\d+)min$/m.exec(unit);
    expect(m, 'TimeoutStartSec in minutes').to.not.equal(null);
    expect(Number(m![1]) * 60).to.be.at.least(1.5 * worst);
  });

  it('takes from first-boot.env every value the README\'s example of it sets, and no other: KEYS, quoted, is the one --keys argument step 5 gives', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const at = readme.indexOf('/etc/certifier-keys/first-boot.env` (');
    expect(at, 'the README shows a first-boot.env').to.be.above(0);
    const block = readme.slice(at).split('\n\n')[1]!.split('\n');
    const set = Object.fromEntries(block.map((l) => /^ {4}([A-Z_]+)=(.*)$/.exec(l) ?? expect.fail(`not NAME=value: ${l}`)).map((m) => [m[1]!, m[2]!]));
    const exec = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unit)![1]!;
    expect(Object.keys(set).sort()).to.deep.equal([...new Set([...exec.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]!))].sort());
    expect(unit).to.match(/^EnvironmentFile=-\/etc\/certifier-keys\/first-boot\.env$/m);
    // systemd takes the quotes off, and puts ${KEYS}, a word of its own, as one argument.
    const step5 = /scripts\/first-boot\.sh --host [^\n]*\\\n\s*--keys "([^"]+)"/.exec(readme)?.[1];
    expect(set.KEYS).to.equal(`"${step5}"`);
    expect(exec).to.match(/--keys \$\{KEYS\} /);
  });

  it('runs the script with its flags, which refuse to start until SERVER_MEASUREMENT is set (exit 2)', async () => {
    // ExecStart with its continuation lines joined and ${VAR} replaced by the unit's Environment= values.
    const env = Object.fromEntries([...unit.matchAll(/^Environment=(.*)$/gm)].flatMap((m) => m[1]!.split(' ').map((kv) => kv.split('=') as [string, string])));
    const exec = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unit)![1]!.replace(/\\\n/g, ' ').replace(/\$\{(\w+)\}/g, (_, k: string) => env[k]!);
    const [script, ...args] = exec.split(/\s+/).filter(Boolean);
    expect(script).to.equal('/opt/certifier-keys/scripts/first-boot.sh');
    // Were it to go on, it would reach nothing and write nothing outside the test's directory.
    const tmp = tempDir('first-boot-unit-');
    try {
      const local = args.map((a, i) => (args[i - 1] === '--store' ? join(tmp.dir, 'store') : args[i - 1] === '--host' ? '127.0.0.1' : a));
      const r = await runScript('first-boot.sh', [...local, '--retries', '1']);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.contain('key-client: error: --server-measurement "set-in-first-boot.env" is not a measurement (64 or 96 hex digits) [USAGE]');
    } finally {
      tmp.cleanup();
    }
  });
});

describe('examples/systemd/key-server-backup.{service,timer} as written', () => {
  const text = (u: string) => readFileSync(join(ROOT, 'examples/systemd', u), 'utf8');

  it('sends SIGUSR1 to the running key-server\'s main process alone, through systemd, and never starts a key-server that is not running', () => {
    const unit = text('key-server-backup.service');
    expect(unit).to.match(/^Type=oneshot$/m);
    expect(unit).to.match(/^ExecStart=\/usr\/bin\/systemctl kill --signal=SIGUSR1 --kill-whom=main key-server\.service$/m);
    expect(unit).to.match(/^Requisite=key-server\.service$/m).and.to.match(/^After=key-server\.service$/m);
    expect(unit).not.to.match(/^(Wants|Requires)=/m);
    // Started by its timer, not at boot by itself.
    expect(unit).not.to.match(/^\[Install\]$/m);
  });

  it('is started by a timer that is enabled for timers.target, and both say, as the README and key-server.service do, how to enable it', () => {
    const timer = text('key-server-backup.timer');
    expect(timer).to.match(/^OnCalendar=\S+$/m).and.to.match(/^WantedBy=timers\.target$/m);
    expect(timer).not.to.match(/^Unit=/m); // the service of its own name
    const enable = 'systemctl enable --now key-server-backup.timer';
    for (const t of [timer, text('key-server-backup.service'), readFileSync(join(ROOT, 'README.md'), 'utf8')]) expect(t).to.contain(enable);
    expect(text('key-server.service')).to.contain('key-server-backup.timer');
  });
});

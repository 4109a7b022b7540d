// The runnable scenarios as tests, started as npm run demo starts them (examples/start.js): the
// demo (twice in a row, two copies at once, and with its reader gone) and Scenario 2, each ending
// with its success line and leaving no process behind.

import { expect } from 'chai';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, tempDir } from '../support/helpers.ts';
import { ACL_ACTIONS, decide, parseAcl } from '../../lib/keyservice/acl.ts';

interface DemoRun { status: number | null; out: string; err: string }

/**
 * Runs a scenario as `npm run demo` does; `hangUp` closes its stdout after the first line,
 * `stopAt` sends it SIGTERM (it alone, not its children) once its output holds that text. With
 * `ctrlC` it runs in a process group of its own, as a terminal's foreground job does, and the
 * signal goes to that whole group, as Ctrl-C sends it: `ctrlC.times` in all, `ctrlC.every` ms apart.
 */
function runScenario(scenario: 'scenario1' | 'scenario2', tmp: string, hangUp = false, stopAt?: string, stopWith: NodeJS.Signals = 'SIGTERM', o: { umask?: string; env?: Record<string, string>; ctrlC?: { times: number; every: number } } = {}): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const command = [process.execPath, join(ROOT, 'examples/start.js'), scenario];
    const [file, ...args] = o.umask ? ['/bin/sh', '-c', `umask ${o.umask} && exec "$@"`, 'sh', ...command] : command;
    const child = spawn(file!, args, { cwd: ROOT, env: { ...process.env, TMPDIR: tmp, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: o.ctrlC !== undefined });
    const stop = (times: number) => {
      if (!o.ctrlC) return void child.kill(stopWith);
      try {
        process.kill(-child.pid!, stopWith);
      } catch {
        return; // the group is gone
      }
      if (times > 1) setTimeout(() => stop(times - 1), o.ctrlC.every);
    };
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (hangUp) child.stdout.destroy();
      if (stopAt && out.includes(stopAt)) {
        stopAt = undefined;
        stop(o.ctrlC?.times ?? 1);
      }
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, out, err }));
  });
}

/** Processes whose command line mentions `dir` (the scenario's private temporary directory). */
function processesUnder(dir: string): string[] {
  const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps.split('\n').filter((l) => l.includes(dir) && !l.includes('ps -eo'));
}

describe('runnable scenarios', function () {
  this.timeout(180_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('scenario-test-')));
  afterEach(() => tmp.cleanup());

  it('npm run demo succeeds twice in a row and leaves no process running', async () => {
    for (const round of [1, 2]) {
      const r = await runScenario('scenario1', tmp.dir);
      expect(r.status, `round ${round}: ${r.out}${r.err}`).to.equal(0);
      expect(r.out).to.match(/scenario1: SUCCESS in [\d.]+s\n$/);
      expect(r.out).to.contain('they equal the originals');
      expect(processesUnder(tmp.dir), 'processes left behind').to.deep.equal([]);
    }
    // Nothing compiled went to tsx's disk cache in $TMPDIR, a folder another local user could have made first.
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('tsx-'))).to.deep.equal([]);
  });

  it('runs under umask 000, where no file it leaves is writable by others and no secret readable by them (its attestation key copied into the VM included), and key-server\'s ACL allowed what its audit log shows', async () => {
    const r = await runScenario('scenario1', tmp.dir, false, undefined, 'SIGTERM', { umask: '000', env: { KEEP_DEMO: '1' } });
    expect(r.status, r.out + r.err).to.equal(0);
    const [kept] = readdirSync(tmp.dir).filter((n) => n.startsWith('scenario1-'));
    // KEEP_DEMO=1 keeps the folder, and the last line says where.
    expect(r.out).to.match(/scenario1: SUCCESS in [\d.]+s \(files kept in (.*)\)\n$/).and.contain(`(files kept in ${join(tmp.dir, kept!)})`);
    const modes = new Map<string, number>();
    const walk = (rel: string): void => {
      for (const e of readdirSync(join(tmp.dir, kept!, rel), { withFileTypes: true })) {
        const p = rel ? `${rel}/${e.name}` : e.name;
        modes.set(p, statSync(join(tmp.dir, kept!, p)).mode & 0o777);
        if (e.isDirectory()) walk(p);
      }
    };
    walk('');
    expect([...modes].filter(([, m]) => m & 0o022).map(([p, m]) => `${p} ${m.toString(8)}`), 'writable by others').to.deep.equal([]);
    const secret = /(store|data|platform)\/|key\.pem$/;
    expect([...modes].filter(([p, m]) => secret.test(p) && !p.endsWith('platform-cert.pem') && !p.endsWith('endorsement.bin') && m & 0o044).map(([p, m]) => `${p} ${m.toString(8)}`), 'secrets readable by others').to.deep.equal([]);
    expect(modes.get('vm/platform/attest-key.pem')).to.equal(0o600);
    expect(modes.get('deployment/setup/measurements')).to.equal(0o755);
    // key-server's ACL, which deployment-setup.sh wrote, allowed what the audit log shows: the
    // key-client storing the keys, the VM retrieving them and nothing more.
    expect(modes.get('deployment/setup/acl.json')).to.equal(0o644);
    // It was given that ACL, and put it in force: what the audit log shows was its decision, not
    // that of a key-server without one, which allows every admitted machine as much.
    const started = readFileSync(join(tmp.dir, kept!, 'key-server.log'), 'utf8');
    expect(started).to.match(new RegExp(`^key-server: \\S+ acl-loaded acl=${join(tmp.dir, kept!, 'deployment/setup/acl.json').replace(/[.]/g, '\\.')} rules=2$`, 'm'));
    expect(started).not.to.contain('no --acl');
    const acl = parseAcl(readFileSync(join(tmp.dir, kept!, 'deployment/setup/acl.json'), 'utf8'));
    const audit = readFileSync(join(tmp.dir, kept!, 'deployment/keyserver-data/audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { measurement: string; action: string; decision: string });
    const allowed = (m: string) => ACL_ACTIONS.filter((action) => decide(acl, { action, resource: action === 'list' ? '' : 'vhd/disk-1' }, { measurementHex: m, serialHex: '1', roles: [] }).allow);
    expect(audit.map((a) => `${a.action} ${a.decision} by one allowed ${allowed(a.measurement).join(',')}`)).to.deep.equal([
      ...Array(2).fill('store allow by one allowed store,retrieve,delete,list'), ...Array(2).fill('retrieve allow by one allowed retrieve'),
    ]);
  });

  it('says in one line that it cannot make its folder in a TMPDIR that does not exist (exit 1, no stack trace)', async () => {
    const r = await runScenario('scenario1', join(tmp.dir, 'missing'));
    expect(r.status).to.equal(1);
    expect(r.err).to.equal(`scenario1: cannot make a temporary directory in ${join(tmp.dir, 'missing')} (ENOENT): set TMPDIR to a directory of yours\n`);
  });

  it("runs the tests' TypeScript (mocha's loader) without tsx's disk cache in $TMPDIR", () => {
    execFileSync(process.execPath, ['--import', './test/support/tsx.mjs', 'test/support/helpers.ts'], { cwd: ROOT, env: { ...process.env, TMPDIR: tmp.dir, TSX_DISABLE_CACHE: '' } });
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('tsx-'))).to.deep.equal([]);
    execFileSync(process.execPath, ['--import', 'tsx', 'test/support/helpers.ts'], { cwd: ROOT, env: { ...process.env, TMPDIR: tmp.dir, TSX_DISABLE_CACHE: '' } });
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('tsx-')), 'tsx alone does cache there').to.have.length(1);
  });

  it('runs two copies of the demo at once, both succeeding (no fixed ports or shared paths)', async () => {
    const [a, b] = await Promise.all([runScenario('scenario1', tmp.dir), runScenario('scenario1', tmp.dir)]);
    expect(a.status, a.out + a.err).to.equal(0);
    expect(b.status, b.out + b.err).to.equal(0);
    expect(processesUnder(tmp.dir)).to.deep.equal([]);
  });

  it('goes on quietly when its reader goes away (npm run demo | head), still stopping its servers and removing its folder', async () => {
    const r = await runScenario('scenario1', tmp.dir, true);
    expect(r.status, r.err).to.equal(0);
    expect(r.err).not.to.contain('EPIPE');
    expect(processesUnder(tmp.dir), 'processes left behind').to.deep.equal([]);
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('scenario1-')), 'its folder').to.deep.equal([]);
  });

  it('stopped by a signal to it alone while a step runs, stops that step\'s programs too and removes its folder, saying FAILED once', async () => {
    const r = await runScenario('scenario1', tmp.dir, false, '[ 8]'); // first-boot.sh and the programs it runs
    expect(r.status, r.err).to.equal(143);
    expect(r.out.match(/FAILED/g)).to.have.length(1);
    expect(processesUnder(tmp.dir), 'processes left behind').to.deep.equal([]);
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('scenario1-')), 'its folder').to.deep.equal([]);
  });

  it('stopped by SIGHUP (a terminal hung up) at a server step, stops its servers and removes its folder (129)', async () => {
    const r = await runScenario('scenario1', tmp.dir, false, '[ 5]', 'SIGHUP');
    expect(r.status, r.err).to.equal(129);
    expect(processesUnder(tmp.dir), 'processes left behind').to.deep.equal([]);
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('scenario1-')), 'its folder').to.deep.equal([]);
  });

  it('stopped by Ctrl-C pressed again and again (SIGINT to its process group, three times 40 ms apart) while a step runs, still stops every process and removes its folder (a second signal ended it at once, its folder, keys and all, left behind)', async () => {
    const r = await runScenario('scenario1', tmp.dir, false, '[ 6]', 'SIGINT', { ctrlC: { times: 3, every: 40 } });
    expect(r.status, r.err).to.equal(130);
    expect(r.out.match(/FAILED/g), r.out).to.have.length(1);
    expect(processesUnder(tmp.dir), 'processes left behind').to.deep.equal([]);
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('scenario1-')), 'its folder').to.deep.equal([]);
  });

  it('runs Scenario 2 (key-server in a certified cloud VM, a key-client admitted with issue-cert) by one command', async () => {
    const r = await runScenario('scenario2', tmp.dir, false, undefined, 'SIGTERM', { env: { KEEP_DEMO: '1' } });
    expect(r.status, r.out + r.err).to.equal(0);
    expect(r.out).to.match(/scenario2: SUCCESS in [\d.]+s \(files kept in .*\)\n$/);
    expect(r.out).to.contain('issue-cert');
    expect(processesUnder(tmp.dir)).to.deep.equal([]);
    // The cloud key-server was given the ACL deployment-setup.sh wrote (it ran without one, letting
    // every VM store any key, and the key-client's certificate named the VM image's measurement, so
    // no ACL could have told them apart): the key-client stored, the VM only retrieved.
    const [kept] = readdirSync(tmp.dir).filter((n) => n.startsWith('scenario2-'));
    const log = readFileSync(join(tmp.dir, kept!, 'key-server.log'), 'utf8');
    expect(log).to.match(/ acl-loaded acl=\S+ rules=2$/m).and.not.contain('no --acl');
    const acl = parseAcl(readFileSync(join(tmp.dir, kept!, 'deployment/setup/acl.json'), 'utf8'));
    const audit = readFileSync(join(tmp.dir, kept!, 'cloud-vm/keyserver-data/audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { measurement: string; action: string; decision: string });
    const allowed = (m: string) => ACL_ACTIONS.filter((action) => decide(acl, { action, resource: action === 'list' ? '' : 'vhd/disk-1' }, { measurementHex: m, serialHex: '1', roles: [] }).allow);
    expect(audit.map((a) => `${a.action} ${a.decision} by one allowed ${allowed(a.measurement).join(',')}`)).to.deep.equal([
      ...Array(2).fill('store allow by one allowed store,retrieve,delete,list'), ...Array(2).fill('retrieve allow by one allowed retrieve'),
    ]);
  });
});

describe('examples/common.ts, the scenarios\' steps', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir('scenario-steps-')));
  afterEach(() => tmp.cleanup());

  /** Runs `body` (a module's text, given `s`, a Scenario) in a process of its own, loading the TypeScript as the tests do. */
  const scenario = (body: string) => {
    const file = join(tmp.dir, 'steps.mjs');
    writeFileSync(file, `import { Scenario } from ${JSON.stringify(pathToFileURL(join(ROOT, 'examples/common.ts')).href)};\nconst s = new Scenario('steps');\n${body}\n`);
    return spawnSync(process.execPath, ['--import', join(ROOT, 'test/support/tsx.mjs'), file], { cwd: tmp.dir, env: { ...process.env, TMPDIR: tmp.dir }, encoding: 'utf8' });
  };

  it('takes a step whose program ends without reading its input (stopped as it starts) by its exit status: the failed write (EPIPE) ended the scenario at once, its folder and servers left behind', () => {
    const r = scenario("await s.run('/bin/true', [], { input: Buffer.alloc(1 << 20) });\nawait s.finish(true);");
    expect(r.stderr).not.to.contain('EPIPE');
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^steps: SUCCESS in/);
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('steps-')), 'its folder').to.deep.equal([]);
  });

  it('starts no step once it is being stopped: its program would be neither stopped nor waited for', () => {
    const marker = join(tmp.dir, 'started');
    const r = scenario([
      'const stopping = s.finish(false);',
      `const run = await s.run('/bin/sh', ['-c', 'touch "$0"', ${JSON.stringify(marker)}]).then(() => 'ran', (e) => e.message);`,
      "const serve = await s.serve('simpleserver', ['serve']).then(() => 'served', (e) => e.message);",
      "const bare = await s.run('/bin/false', []).then(() => 'ran', (e) => e.message);",
      'await stopping;',
      'console.log(run); console.log(serve); console.log(bare);',
    ].join('\n'));
    expect(r.status, r.stderr).to.equal(0);
    // A step without arguments is named by its program alone (it was "/bin/false  not started").
    expect(r.stdout.split('\n').slice(1)).to.deep.equal(['/bin/sh -c not started: the scenario is stopping', 'simpleserver serve not started: the scenario is stopping', '/bin/false not started: the scenario is stopping', '']);
    expect(existsSync(marker)).to.equal(false);
  });

  it('ends a failed step\'s message cleanly: a program stopped by a signal that said nothing (Ctrl-C) at the signal\'s name, a program that said something at its last line (they ended "stopped by SIGTERM:" and an empty line)', () => {
    const r = scenario([
      "const said = (p) => p.then(() => 'ok', (e) => JSON.stringify(e.message));",
      "console.log(await said(s.run('/bin/sh', ['-c', 'kill -TERM $$'])));",
      "console.log(await said(s.run('/bin/sh', ['-c', 'echo oops >&2; exit 3'])));",
      "console.log(await said(s.serve('simpleserver', ['serve'])));",
      "console.log(await said(s.run('/bin/false', [])));",
      'await s.finish(true);',
    ].join('\n'));
    expect(r.status, r.stderr).to.equal(0);
    const lines = r.stdout.split('\n');
    expect(lines.slice(0, 2)).to.deep.equal(['"/bin/sh -c was stopped by SIGTERM"', '"/bin/sh -c exited 3:\\noops"']);
    // A step without arguments, by its program alone (it was "/bin/false  exited 1").
    expect(lines[3]).to.equal('"/bin/false exited 1"');
    // A server that stops before it listens: its log after the colon, and no empty line.
    expect(JSON.parse(lines[2]!)).to.match(/^simpleserver exited 2 before listening:\n.*\S$/s);
  });
});

// cmd/bin/launch.js: programs run from a bundle that is remade whenever a source changes, and
// through tsx when asked (or when no bundle can be made); a program's own failure is not retried.
// On a small program tree of its own, beside a link to this package's node_modules.

import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ROOT, tempDir } from '../support/helpers.ts';
import { skipWithoutStrace, traced } from '../support/strace.ts';

describe('cmd/bin/launch.js: bundles kept current', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  before(() => {
    tmp = tempDir('launch-');
    mkdirSync(join(tmp.dir, 'cmd', 'bin'), { recursive: true });
    mkdirSync(join(tmp.dir, 'lib'));
    for (const file of ['launch.js', 'working-directory.js']) copyFileSync(join(ROOT, 'cmd', 'bin', file), join(tmp.dir, 'cmd', 'bin', file));
    copyFileSync(join(ROOT, 'tsconfig.json'), join(tmp.dir, 'tsconfig.json'));
    writeFileSync(join(tmp.dir, 'package.json'), JSON.stringify({ type: 'module' }));
    symlinkSync(join(ROOT, 'node_modules'), join(tmp.dir, 'node_modules'));
    for (const name of ['hello', 'fails', 'sleeper', 'children']) {
      writeFileSync(join(tmp.dir, 'cmd', 'bin', `${name}.js`), `import { launch } from './launch.js';\nawait launch('${name}');\n`);
    }
    writeFileSync(join(tmp.dir, 'cmd', 'hello.ts'), "import { greeting } from '../lib/greeting.ts';\nconst who: string = 'world';\nconsole.log(greeting(who));\n");
    writeFileSync(join(tmp.dir, 'lib', 'greeting.ts'), "export const greeting = (who: string): string => `hello ${who}`;\n");
    writeFileSync(join(tmp.dir, 'cmd', 'fails.ts'), "console.log('ran');\nthrow new Error('the program failed');\n");
    // Prints how many processes are its children, as /proc shows them.
    writeFileSync(join(tmp.dir, 'cmd', 'children.ts'), "import { readdirSync, readFileSync } from 'node:fs';\nconst ppid = (pid: string): number => { try { return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\\) /s, '').split(' ')[1]); } catch { return -1; } };\nconsole.log(readdirSync('/proc').filter((d) => /^\\d+$/.test(d) && ppid(d) === process.pid).length);\n");
    writeFileSync(join(tmp.dir, 'cmd', 'sleeper.ts'), "console.log('up');\nawait new Promise((r) => setTimeout(r, 1500));\nconsole.log('done');\n");
  });
  after(() => tmp.cleanup());

  const run = (name: string, env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [join(tmp.dir, 'cmd', 'bin', `${name}.js`)], { encoding: 'utf8', env: { ...process.env, ...env } });
    return { status: r.status, out: r.stdout, err: r.stderr };
  };
  const bundle = () => join(tmp.dir, '.cache', 'bin', 'hello.mjs');

  it('runs a program from a bundle it makes on the first run, listing the sources it holds', () => {
    expect(run('hello')).to.include({ status: 0, out: 'hello world\n' });
    expect(existsSync(bundle())).to.equal(true);
    const sources = Object.keys(JSON.parse(readFileSync(`${bundle()}.sources.json`, 'utf8')).sources);
    expect(sources.sort()).to.deep.equal(['cmd/hello.ts', 'lib/greeting.ts', 'tsconfig.json']);
    expect(readFileSync(bundle(), 'utf8'), 'functions are not renamed at run time (keepNames)').not.to.contain('__name');
    expect(run('hello')).to.include({ status: 0, out: 'hello world\n' });
  });

  it("leaves no esbuild process running beside a program whose bundle it made (a server would keep it for its whole life)", () => {
    rmSync(join(tmp.dir, '.cache', 'bin', 'children.mjs'), { force: true });
    expect(run('children')).to.include({ status: 0, out: '0\n' });
    expect(existsSync(join(tmp.dir, '.cache', 'bin', 'children.mjs')), 'the bundle was made by this run').to.equal(true);
  });

  it('never runs a stale bundle: a changed source makes a new one', () => {
    writeFileSync(join(tmp.dir, 'lib', 'greeting.ts'), "export const greeting = (who: string): string => `goodbye ${who}`;\n");
    expect(run('hello')).to.include({ status: 0, out: 'goodbye world\n' });
    expect(readFileSync(bundle(), 'utf8')).to.contain('goodbye');
  });

  it('runs the sources through tsx with CERTIFIER_NO_BUNDLE=1', () => {
    writeFileSync(join(tmp.dir, 'lib', 'greeting.ts'), "export const greeting = (who: string): string => `hi ${who}`;\n");
    expect(run('hello', { CERTIFIER_NO_BUNDLE: '1' })).to.include({ status: 0, out: 'hi world\n' });
    expect(readFileSync(bundle(), 'utf8'), 'the bundle was left alone').to.contain('goodbye');
  });

  it("never uses tsx's cache in the shared temporary folder, which another user may have made first", () => {
    const cache = join(tmp.dir, 'tmp', `tsx-${process.geteuid!()}`);
    mkdirSync(cache, { recursive: true, mode: 0o777 });
    chmodSync(cache, 0o777);
    expect(run('hello', { CERTIFIER_NO_BUNDLE: '1', TMPDIR: join(tmp.dir, 'tmp') })).to.include({ status: 0, out: 'hi world\n' });
    expect(readdirSync(cache)).to.deep.equal([]);
  });

  const modes = () => Object.fromEntries(['.cache', '.cache/bin', '.cache/bin/hello.mjs', '.cache/bin/hello.mjs.map', '.cache/bin/hello.mjs.sources.json']
    .map((p) => [p, (statSync(join(tmp.dir, p)).mode & 0o777).toString(8)]));
  const plant = () => {
    writeFileSync(bundle(), "console.log('planted');\n");
    chmodSync(bundle(), 0o666);
  };

  it('makes its folders and files writable by their owner alone and readable by all (a service user runs them), whatever the umask', () => {
    // 000 would leave them open to all, 077 closed to the service user.
    for (const umask of ['000', '077']) {
      rmSync(join(tmp.dir, '.cache'), { recursive: true, force: true });
      const r = spawnSync('/bin/sh', ['-c', `umask ${umask} && exec "${process.execPath}" "${join(tmp.dir, 'cmd', 'bin', 'hello.js')}"`], { encoding: 'utf8' });
      expect(r.stdout, umask).to.equal('hi world\n');
      expect(modes(), umask).to.deep.equal({ '.cache': '755', '.cache/bin': '755', '.cache/bin/hello.mjs': '644', '.cache/bin/hello.mjs.map': '644', '.cache/bin/hello.mjs.sources.json': '644' });
    }
  });

  it('never runs a bundle that others could write: it is remade', () => {
    plant();
    expect(run('hello')).to.include({ status: 0, out: 'hi world\n' });
    expect(modes()['.cache/bin/hello.mjs']).to.equal('644');
  });

  it('never runs a bundle from a folder that others could write: the folder is closed and the bundle remade', () => {
    chmodSync(join(tmp.dir, '.cache', 'bin'), 0o777);
    writeFileSync(bundle(), "console.log('planted');\n");
    expect(run('hello')).to.include({ status: 0, out: 'hi world\n' });
    expect(modes()).to.include({ '.cache/bin': '755', '.cache/bin/hello.mjs': '644' });
  });

  it('never runs a bundle that is a link (another user\'s link may name any file of ours): it is remade', () => {
    expect(run('hello')).to.include({ status: 0, out: 'hi world\n' });
    writeFileSync(join(tmp.dir, '.cache', 'bin', 'other.mjs'), "console.log('planted');\n", { mode: 0o644 });
    rmSync(bundle());
    symlinkSync('other.mjs', bundle());
    expect(run('hello')).to.include({ status: 0, out: 'hi world\n' });
    expect(readFileSync(bundle(), 'utf8')).to.not.contain('planted');
  });

  it("never runs a bundle from another user's folder: the program runs through tsx", function () {
    if (process.geteuid!() !== 0) this.skip(); // only root can give a folder to another user
    plant();
    chownSync(join(tmp.dir, '.cache', 'bin'), 65534, 65534);
    try {
      expect(run('hello')).to.include({ status: 0, out: 'hi world\n' });
      expect(readFileSync(bundle(), 'utf8'), 'the folder was left alone').to.contain('planted');
    } finally {
      chownSync(join(tmp.dir, '.cache', 'bin'), 0, 0);
    }
  });

  it('runs a failing program once: its error is not a reason to try tsx', () => {
    const r = run('fails');
    expect(r.status).to.equal(1);
    expect(r.out).to.equal('ran\n');
    expect(r.err).to.contain('the program failed');
  });

  it('names the TypeScript source in stack traces under CERTIFIER_DEBUG=1 (the bundle keeps a map beside it)', () => {
    expect(run('fails').err).to.contain('fails.mjs');
    const r = run('fails', { CERTIFIER_DEBUG: '1' });
    expect(r.err).to.match(/cmd\/fails\.ts:2/);
  });

  it('never opens Node\'s inspector on SIGUSR1 (a program that holds keys would be open to every local user)', async () => {
    const child = spawn(process.execPath, [join(tmp.dir, 'cmd', 'bin', 'sleeper.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out === 'up\n') child.kill('SIGUSR1');
    });
    child.stderr.on('data', (d: Buffer) => void (err += d.toString()));
    const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect({ status, out }).to.deep.equal({ status: 0, out: 'up\ndone\n' });
    expect(err).not.to.contain('Debugger listening');
  });

  it('runs nothing in a process whose inspector is open (a SIGUSR1 in Node\'s own start, NODE_OPTIONS=--inspect): DENIED, exit 1', () => {
    const r = run('hello', { NODE_OPTIONS: '--inspect=127.0.0.1:0' });
    expect(r.status, r.err).to.equal(1);
    expect(r.out, 'the program never ran').to.equal('');
    expect(r.err).to.contain("hello: error: Node's inspector is open in this process").and.contain('[DENIED]');
  });

  it('says to take the inspector flag out of NODE_OPTIONS where that is what opened it, not to run again, which would fail the same way', () => {
    const r = run('hello', { NODE_OPTIONS: '--max-old-space-size=200 --inspect=127.0.0.1:0' });
    expect(r.status, r.err).to.equal(1);
    expect(r.err).to.contain("hello: error: Node's inspector is open in this process, as NODE_OPTIONS asks (--inspect=127.0.0.1:0), where any local user could run code: stopping before anything is read; take that flag out of NODE_OPTIONS [DENIED]");
  });

  it('says so in a JSON line when a server is run with --log-json after its subcommand (the real key-server)', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'cmd', 'bin', 'key-server.js'), 'serve', '--domain', 'd', '--log-json=1'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '--inspect=127.0.0.1:0' } });
    expect(r.status, r.stderr).to.equal(1);
    // Node's own lines about its inspector come first, as text.
    const ours = r.stderr.split('\n').filter((l) => l.startsWith('{'));
    expect(ours, r.stderr).to.have.length(1);
    expect(JSON.parse(ours[0]!)).to.include({ event: 'error', code: 'DENIED', exitStatus: 1 }).and.to.have.property('message').that.contains("Node's inspector is open");
    expect(r.stderr).not.to.contain('key-server: error:');
  });

  it('takes --log-json as another flag\'s value for what it is: `serve --data --log-json` names a directory, and its error is a text line, as the program\'s own would be', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'cmd', 'bin', 'key-server.js'), 'serve', '--domain', 'd', '--data', '--log-json'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '--inspect=127.0.0.1:0' } });
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.contain("key-server: error: Node's inspector is open").and.not.contain('{"time"');
  });

  it('knows which flags of serve take a value, as each server\'s serve --help lists them', async () => {
    const launchJs: string = '../../cmd/bin/launch.js'; // plain JavaScript, without types
    const { SERVE_VALUE_FLAGS } = (await import(launchJs)) as { SERVE_VALUE_FLAGS: Record<string, string[]> };
    for (const program of ['key-server', 'simpleserver'] as const) {
      const help = spawnSync(process.execPath, [join(ROOT, 'cmd', 'bin', `${program}.js`), 'serve', '--help'], { encoding: 'utf8' }).stdout;
      const listed = [...help.matchAll(/^\s+(?:-\w, )?(--[\w-]+) </gm)].map((m) => m[1]);
      expect(listed, program).to.have.length.above(3);
      expect([...SERVE_VALUE_FLAGS[program]!].sort(), program).to.deep.equal(listed.sort());
    }
  });

  it('shims listen for SIGUSR1 in their first statement, before any module loads', () => {
    for (const p of ['cert-utility', 'key-client', 'key-server', 'simpleserver']) {
      const code = readFileSync(join(ROOT, 'cmd', 'bin', `${p}.js`), 'utf8').split('\n').filter((l) => l && !l.startsWith('#') && !l.startsWith('//'));
      expect(code[0], p).to.equal("process.on('SIGUSR1', () => {});");
      expect(code.some((l) => /^import\b/.test(l)), `${p}: no static import`).to.equal(false);
    }
  });

  it('syncs each file of a new bundle before renaming it into place, and the folder after (a power failure leaves no empty bundle under a matching list)', async function () {
    skipWithoutStrace(this);
    rmSync(join(tmp.dir, '.cache'), { recursive: true, force: true });
    const r = await traced([process.execPath, join(tmp.dir, 'cmd', 'bin', 'hello.js')], { dir: tmp.dir });
    expect(r).to.include({ status: 0 });
    const folder = realpathSync(join(tmp.dir, '.cache', 'bin'));
    const renames = r.trace.all('rename', (x) => dirname(x.to) === folder);
    expect(renames.map((x) => basename(x.to)).sort()).to.deep.equal(['hello.mjs', 'hello.mjs.map', 'hello.mjs.sources.json']);
    for (const x of renames) expect(r.trace.syncsBetween(x.from, undefined, x.call), `no fsync of ${x.from} before its rename\n${r.trace}`).to.not.be.empty;
    const last = renames.at(-1)!;
    expect(basename(last.to), 'the list last').to.equal('hello.mjs.sources.json');
    expect(r.trace.syncsBetween(folder, last.call, undefined), `no fsync of ${folder} after the renames\n${r.trace}`).to.not.be.empty;
  });
});

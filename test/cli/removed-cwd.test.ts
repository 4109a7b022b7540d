// A program started in a working directory that was removed (another shell deleted it): it says
// so in a line and exits 1, rather than waiting for ever (tsx's loader thread crashed on it) or
// calling the operator's mistake an internal error; absolute paths still work there.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, run, tempDir } from '../support/helpers.ts';

/** Runs cert-utility (or `program`) with `args` in a directory removed just before (by the shell that then runs it). */
function inRemovedDirectory(dir: string, args: string[], env: Record<string, string> = {}, program = 'cert-utility') {
  mkdirSync(dir);
  const r = spawnSync('/bin/sh', ['-c', 'cd "$1" && rmdir "$1" && shift && exec "$@"', 'sh', dir, process.execPath, join(ROOT, `cmd/bin/${program}.js`), ...args], {
    encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env },
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

describe('cli: a working directory that was removed', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  before(async () => {
    tmp = tempDir('removed-cwd-');
    await run('cert-utility', ['--help']); // its bundle current, as an installed program's is
  });
  after(() => tmp.cleanup());

  it('through tsx (no bundle yet, or CERTIFIER_NO_BUNDLE=1) says so and exits 1, where it waited for ever', () => {
    const r = inRemovedDirectory(join(tmp.dir, 'gone-1'), ['new-key-file', '--out', join(tmp.dir, 'k1')], { CERTIFIER_NO_BUNDLE: '1' });
    expect(r.signal, 'killed by the timeout: it hung').to.equal(null);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.equal('cert-utility: error: the working directory no longer exists (it was removed since this shell entered it): cd to one that does [FILE_ERROR]\n');
    expect(existsSync(join(tmp.dir, 'k1'))).to.equal(false);
  });

  it('says so in a JSON line when a server is run with --log-json after its subcommand', () => {
    const r = inRemovedDirectory(join(tmp.dir, 'gone-4'), ['serve', '--log-json', '--domain', 'd'], { CERTIFIER_NO_BUNDLE: '1' }, 'key-server');
    expect(r.status).to.equal(1);
    expect(r.stderr.endsWith('\n') && r.stderr.split('\n').length, r.stderr).to.equal(2);
    expect(JSON.parse(r.stderr)).to.include({ event: 'error', code: 'FILE_ERROR', exitStatus: 1 }).and.to.have.property('message').that.contains('the working directory no longer exists');
  });

  it('from its bundle takes absolute paths, and refuses a relative one with FILE_ERROR, not INTERNAL', () => {
    const ok = inRemovedDirectory(join(tmp.dir, 'gone-2'), ['new-key-file', '--out', join(tmp.dir, 'k2')]);
    expect(ok.status, ok.stderr).to.equal(0);
    expect(existsSync(join(tmp.dir, 'k2'))).to.equal(true);
    const relative = inRemovedDirectory(join(tmp.dir, 'gone-3'), ['new-key-file', '--out', 'k3']);
    expect(relative.status).to.equal(1);
    expect(relative.stderr).to.equal('cert-utility: error: the working directory no longer exists (it was removed since this shell entered it): cd to one that does [FILE_ERROR]\n');
  });
});

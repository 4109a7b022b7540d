// The scripts need bash 4.4 or later, and say so at their top (exit 2) under an older one. No older
// bash is installed here: this runs each script's own guard line with its version variables
// replaced by given ones (BASH_VERSINFO is read-only), and checks that nothing runs before it.

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../support/helpers.ts';

const hasDash = spawnSync('dash', ['-c', 'exit 0']).status === 0;

describe('scripts/*.sh under an older bash', () => {
  for (const name of ['first-boot', 'deployment-setup']) {
    const lines = readFileSync(join(ROOT, 'scripts', `${name}.sh`), 'utf8').split('\n');
    const at = lines.findIndex((l) => l.includes('BASH_VERSINFO'));

    it(`${name}.sh checks the version first: only comments and blank lines come before its guard`, () => {
      expect(at, 'a line reading BASH_VERSINFO').to.be.above(0);
      expect(lines.slice(1, at).filter((l) => l.trim() !== '' && !l.startsWith('#'))).to.deep.equal([]);
    });

    it(`${name}.sh stops with exit 2 and says the minimum under bash 3.2 and 4.3, and goes on under 4.4 and 5.2`, () => {
      const guard = lines[at]!.replaceAll('BASH_VERSINFO', 'V').replaceAll('BASH_VERSION', 'W');
      const under = (v: [number, number, number]) => spawnSync('bash', ['-c', `V=(${v.join(' ')} 1 release x86_64-pc-linux-gnu); W=${v.join('.')}\n${guard}\necho went on`], { encoding: 'utf8' });
      for (const v of [[3, 2, 57], [4, 3, 48]] as [number, number, number][]) {
        const r = under(v);
        expect(r.status, v.join('.')).to.equal(2);
        expect(r.stderr).to.equal(`${name}: needs bash 4.4 or later, not ${v.join('.')}\n`);
        expect(r.stdout).to.equal('');
      }
      for (const v of [[4, 4, 0], [5, 2, 15]] as [number, number, number][]) {
        const r = under(v);
        expect(r.status, `${v.join('.')}: ${r.stderr}`).to.equal(0);
        expect(r.stdout).to.equal('went on\n');
      }
    });
  }
});

describe('scripts/*.sh under another shell, or bash as sh', () => {
  for (const name of ['first-boot', 'deployment-setup']) {
    it(`${name}.sh run with sh (dash) by mistake says, in one line, to run it with bash (exit 2), and makes no file where it runs (its guard's ">=" made one named "=")`, function () {
      if (!hasDash) this.skip();
      const dir = mkdtempSync(join(tmpdir(), 'dash-'));
      try {
        const r = spawnSync('dash', [join(ROOT, 'scripts', `${name}.sh`), '--help'], { cwd: dir, encoding: 'utf8' });
        expect([r.status, r.stdout, r.stderr]).to.deep.equal([2, '', `${name}: needs bash 4.4 or later, not this shell: run it with bash\n`]);
        expect(readdirSync(dir)).to.deep.equal([]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it(`${name}.sh run by bash as sh (POSIX mode), copied without common.sh, says so itself (exit 1), as under bash`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'posix-'));
      try {
        copyFileSync(join(ROOT, 'scripts', `${name}.sh`), join(dir, `${name}.sh`));
        const r = spawnSync('bash', ['--posix', join(dir, `${name}.sh`), '--help'], { encoding: 'utf8' });
        // bash's own line about the missing file comes first, as it does under bash.
        expect([r.status, r.stdout], r.stderr).to.deep.equal([1, '']);
        expect(r.stderr).to.contain(`${name}: cannot read ${join(dir, 'common.sh')}, which it needs beside it: copy scripts/common.sh with it\n`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

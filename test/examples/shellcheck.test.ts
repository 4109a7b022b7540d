// scripts/*.sh through ShellCheck, where it is installed (skipped elsewhere; .ci/run installs it
// where it can). Warnings and errors fail; the deliberate exceptions are marked in the scripts themselves
// and in scripts/.shellcheckrc, each with its reason.

import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../support/helpers.ts';

const run = promisify(execFile);

describe('scripts/*.sh under ShellCheck', function () {
  this.timeout(60_000);

  it('finds no warning or error in any script (common.sh followed where it is sourced)', async function () {
    if (!(await run('shellcheck', ['--version']).then(() => true, () => false))) this.skip();
    const scripts = readdirSync(join(ROOT, 'scripts')).filter((n) => n.endsWith('.sh'));
    expect(scripts).to.include.members(['common.sh', 'deployment-setup.sh', 'first-boot.sh']);
    const r = await run('shellcheck', ['--external-sources', '--severity=warning', '--format=gcc', ...scripts], { cwd: join(ROOT, 'scripts') })
      .then(() => ({ stdout: '' }), (e: { stdout: string; stderr: string }) => ({ stdout: e.stdout || e.stderr }));
    expect(r.stdout).to.equal('');
  });
});

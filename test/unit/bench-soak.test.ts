// The soak's place in the benchmark: --minutes parsed and checked, the soak left out of a run
// unless an --only names it (not by a substring that chooses other sections), the slope its
// verdict rests on, and a very short real soak that prints its verdict and stops its key-server.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs, selected, slope } from '../bench/harness.ts';
import { ROOT } from '../support/helpers.ts';

describe('benchmark soak', function () {
  describe('--minutes', () => {
    it('takes a number of minutes, as a separate value or after =', () => {
      expect(parseArgs(['--only', 'soak', '--minutes', '60']).minutes).to.equal(60);
      expect(parseArgs(['--minutes=0.5']).minutes).to.equal(0.5);
      expect(parseArgs([]).minutes).to.equal(undefined);
    });

    for (const bad of ['0', '-1', 'x', '']) {
      it(`refuses --minutes ${JSON.stringify(bad)}`, () => {
        expect(() => parseArgs(['--minutes', bad])).to.throw(/--minutes wants a number of minutes/);
      });
    }
  });

  describe('selection', () => {
    const all = [
      { name: 'cryptstore vs raw level' },
      { name: 'key-server: retrieves vs mutual TLS' },
      { name: 'soak: key-server serve RSS under a mixed load', selectedBy: 'soak' },
    ];
    const names = (only: string[]) => selected(all, only).map((s) => s.name);

    it('leaves the soak out of a run without --only', () => {
      expect(names([])).to.deep.equal([all[0]!.name, all[1]!.name]);
    });

    it('leaves the soak out of --only key-server, which chooses the other key-server section', () => {
      expect(names(['key-server'])).to.deep.equal([all[1]!.name]);
    });

    it('runs the soak alone for --only soak (any case)', () => {
      expect(names(['SOAK'])).to.deep.equal([all[2]!.name]);
    });
  });

  it('slope is the least-squares line through the points', () => {
    expect(slope([[0, 1], [1, 3], [2, 5]])).to.be.closeTo(2, 1e-12);
    expect(slope([[0, 0], [1, 1], [2, 0], [3, 1]])).to.be.closeTo(0.2, 1e-12);
    expect(slope([[1, 5]])).to.be.NaN;
  });

  it('a short soak exits 0, prints its samples and verdict, and stops its key-server', async function () {
    this.timeout(120_000);
    this.slow(30_000);
    const child = spawn(process.execPath, ['test/bench/start.js', '--only', 'soak', '--quick', '--minutes', '0.1'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    const status = await new Promise<number | null>((resolve, reject) => child.on('error', reject).on('close', resolve));
    expect(status, `stdout:\n${out}\nstderr:\n${err}`).to.equal(0);
    expect(out).to.match(/^== soak: key-server serve RSS under a mixed load ==$/m);
    expect(out).not.to.match(/^== key-server: retrieves/m);
    expect(out).to.match(/^\s+minute\s+requests\s+RSS MiB\s+anon MiB$/m);
    expect(out).to.match(/verdict: over the second half RSS moved -?[\d.]+ MiB per hour, -?[\d.]+ MiB per million requests/);
    expect(out).to.match(/\d+ requests \(\d+ carried out, [1-9]\d* refused as asked, 0 failed\)/);
    const pid = Number(/key-server pid (\d+) stopped/.exec(out)?.[1]);
    expect(pid, out).to.be.greaterThan(0);
    const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
    expect(cmdline).not.to.contain('key-server');
    const temp = /^\s+temp dir:\s+(\S+)/m.exec(out)?.[1];
    expect(temp && existsSync(temp), out).to.equal(false);
  });
});

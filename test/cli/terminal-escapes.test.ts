// A file name holding an escape sequence (ESC) or a bidirectional override (U+202E) reaches the
// terminal written \uXXXX wherever a program names it on stderr: in an error, a warning, a note,
// and in the error that stands in for a --json document stdout could not take. Under --json the
// error is valid JSON that gives the name back as it was.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, run, tempDir } from '../support/helpers.ts';

const ODD = 'x\u001b[2J\u001b]0;owned\u0007\u202etxt.exe';
const ODD_SHOWN = 'x\\u001b[2J\\u001b]0;owned\\u0007\\u202etxt.exe';
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f\u202e]/;

describe('names holding terminal escapes are escaped on stderr', function () {
  this.slow(4_000);
  let tmp: ReturnType<typeof tempDir>;
  before(() => {
    tmp = tempDir('escapes-');
    writeFileSync(join(tmp.dir, 'store.key'), Buffer.alloc(32, 3), { mode: 0o600 });
  });
  after(() => tmp.cleanup());

  it('in an error, and under --json as valid JSON that names it as it is', async () => {
    const args = ['list-items', '--store', join(tmp.dir, ODD), '--key-file', 'store.key'];
    const [text, json] = await Promise.all([run('cert-utility', args, { cwd: tmp.dir }), run('cert-utility', [...args, '--json'], { cwd: tmp.dir })]);
    expect(text.status, text.stderr).to.equal(1);
    expect(text.stderr).to.contain(`cert-utility: error: no cryptstore at ${join(tmp.dir, ODD_SHOWN)}`).and.contain('[STORE_NOT_FOUND]');
    expect(text.stderr).not.to.match(RAW);
    expect(json.status).to.equal(1);
    expect(json.out).not.to.match(RAW);
    expect(json.json().error).to.include({ code: 'STORE_NOT_FOUND', exitStatus: 1 });
    expect(json.json().error.message).to.contain(`no cryptstore at ${join(tmp.dir, ODD)}`);
  });

  it('in the error written to stderr when standard output cannot take the --json document', async () => {
    writeFileSync(join(tmp.dir, 'read-only-stdout'), '');
    const fd = openSync(join(tmp.dir, 'read-only-stdout'), 'r'); // a file (written whole, in one go), not open for writing
    try {
      const child = spawn(process.execPath, [join(ROOT, 'cmd/bin/cert-utility.js'), 'list-items', '--store', join(tmp.dir, ODD), '--key-file', 'store.key', '--json'],
        { cwd: tmp.dir, stdio: ['ignore', fd, 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      const status = await new Promise((r) => child.on('close', r));
      expect(status, stderr).to.equal(1);
      expect(stderr).to.contain(`cert-utility: error: no cryptstore at ${join(tmp.dir, ODD_SHOWN)}`).and.contain('[STORE_NOT_FOUND]; and cannot write standard output');
      expect(stderr).not.to.match(RAW);
    } finally {
      closeSync(fd);
    }
  });

  it('in a warning naming a key file every user can read', async () => {
    writeFileSync(join(tmp.dir, ODD), Buffer.alloc(32, 4), { mode: 0o644 });
    const r = await run('cert-utility', ['create-store', '--store', join(tmp.dir, 'shared-store'), '--key-file', ODD], { cwd: tmp.dir });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.contain(`cert-utility: warning: the key file ${ODD_SHOWN} can be read by every user of the machine (mode 0644)`);
    expect(r.stderr).not.to.match(RAW);
  });

  it('in a note naming what a killed run left beside an --out file', async () => {
    const out = `${ODD}.out`;
    writeFileSync(join(tmp.dir, `.${out}.0123456789ab.old`), 'an earlier secret'); // just now: too new to remove, so named
    const r = await run('key-client', ['retrieve', 'n', '--out', out, '--server', '127.0.0.1:1', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'store.key'], { cwd: tmp.dir });
    expect(r.status, r.stderr).to.equal(1); // then the missing policy certificate, before any connection
    expect(r.stderr).to.match(/^key-client: \/\S*\//m).and.contain(`/.${ODD_SHOWN}.out.0123456789ab.old, left beside ${ODD_SHOWN}.out by a killed run`);
    expect(r.stderr).not.to.match(RAW);
  });
});

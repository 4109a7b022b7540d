// The error document under --json carries the code, the message and the exit status, and of an
// error's details only those the README names: the file and line verify-audit's refusal names
// (and explain's proof, in certification.test.ts). Anything else an error holds for the program's
// own use (a path, a flag, its problems as a list) stays out.

import { expect } from 'chai';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog } from '../../lib/keyservice/audit.ts';
import { run, tempDir } from '../support/helpers.ts';

describe('the --json error document: which details it carries', function () {
  this.slow(4_000);
  let tmp: ReturnType<typeof tempDir>;
  before(() => {
    tmp = tempDir('json-details-');
    writeFileSync(join(tmp.dir, 'store.key'), Buffer.alloc(32, 6), { mode: 0o600 });
  });
  after(() => tmp.cleanup());

  it('gives verify-audit\'s file and line, and nothing else beside the code, message and status', async () => {
    const path = join(tmp.dir, 'audit.jsonl');
    const log = await AuditLog.open(path);
    for (let i = 1; i <= 3; i++) await log.append({ action: 'retrieve', resource: `vhd/disk${i}`, decision: 'allow' });
    await log.close();
    writeFileSync(path, readFileSync(path, 'utf8').replace('vhd/disk2', 'vhd/disk7'));
    const r = await run('key-server', ['verify-audit', path, '--json']);
    expect(r.status).to.equal(4);
    expect(Object.keys(r.json().error).sort()).to.deep.equal(['code', 'exitStatus', 'file', 'line', 'message']);
    expect(r.json().error).to.include({ code: 'INTEGRITY', exitStatus: 4, file: path, line: 2 });
  });

  it('withholds the details an error keeps for the program: a path, a store made, the problems found', async () => {
    mkdirSync(join(tmp.dir, 'store'));
    const made = await run('cert-utility', ['create-store', '--store', 'store', '--key-file', 'store.key'], { cwd: tmp.dir });
    expect(made.status, made.stderr).to.equal(0);
    writeFileSync(join(tmp.dir, 'config.json'), '{"secrets": [');
    const [exists, audit, config] = await Promise.all([
      // STORE_EXISTS holds { made: true }
      run('cert-utility', ['create-store', '--store', 'store', '--key-file', 'store.key', '--json'], { cwd: tmp.dir }),
      // FILE_ERROR holds { path }
      run('key-server', ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'store.key', '--data', 'data', '--audit', 'typo/audit.jsonl', '--json'], { cwd: tmp.dir }),
      // INVALID_INPUT holds { problems: ['not JSON'] }
      run('key-client', ['provision', '--config', 'config.json', '--server', '127.0.0.1:1', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 'store', '--key-file', 'store.key', '--json'], { cwd: tmp.dir }),
    ]);
    for (const [r, code] of [[exists, 'STORE_EXISTS'], [audit, 'FILE_ERROR'], [config, 'INVALID_INPUT']] as const) {
      expect(r.status, r.stderr).to.equal(1);
      expect(r.json()).to.deep.equal({ ok: false, error: { code, message: r.json().error.message, exitStatus: 1 } });
    }
  });
});

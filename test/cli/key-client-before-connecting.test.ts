// key-client's refusals that come before it connects: a credential's certificate without its key
// (or the reverse), more names or secrets than one connection can fetch (1,000; 500 with a
// credential, whose auth-challenge doubles the requests), an --out another user could replace, a provisioning config another user could change, and --out - into a file every user may read. A loopback listener stands in for the
// key-server and counts the connections it is offered: none.

import { expect } from 'chai';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { ROOT, run, tempDir, type RunResult } from '../support/helpers.ts';

describe('key-client refuses before connecting', function () {
  this.slow(4_000);
  let tmp: ReturnType<typeof tempDir>;
  let listener: Server;
  let connections = 0;
  let server: string;

  before(async () => {
    tmp = tempDir('key-client-args-');
    listener = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    server = `127.0.0.1:${(listener.address() as { port: number }).port}`;
    const made = await run('cert-utility', ['generate-policy-key', '--domain', 'd', '--key-out', 'policy-key.pem', '--cert-out', 'policy-cert.pem'], { cwd: tmp.dir });
    expect(made.status, made.stderr).to.equal(0);
  });
  after(async () => {
    await new Promise((r) => listener.close(r));
    tmp.cleanup();
  });
  afterEach(() => expect(connections, 'connections offered to the key-server').to.equal(0));

  const kc = (args: string[], policyCert = 'policy-cert.pem') =>
    run('key-client', [...args, '--server', server, '--domain', 'd', '--policy-cert', policyCert, '--store', 'store', '--key-file', 'store.key'], { cwd: tmp.dir });
  const expectUsage = (r: RunResult, message: string) => {
    expect(r.status, r.stderr).to.equal(2);
    expect(r.stderr).to.contain(`key-client: error: ${message} [USAGE]`);
    expect(r.out).to.equal('');
  };

  it('refuses --credential-cert without --credential-key, and the reverse (USAGE, exit 2); given both, the pair is read', async () => {
    // The credential key is readable by every user: warned of once it is read (the pair is whole).
    copyFileSync(join(tmp.dir, 'policy-key.pem'), join(tmp.dir, 'role-key.pem'));
    chmodSync(join(tmp.dir, 'role-key.pem'), 0o644);
    const [certOnly, keyOnly, both] = await Promise.all([
      kc(['list', '--credential-cert', 'policy-cert.pem']),
      kc(['list', '--credential-key', 'role-key.pem']),
      kc(['list', '--credential-cert', 'policy-cert.pem', '--credential-key', 'role-key.pem']),
    ]);
    for (const r of [certOnly, keyOnly]) {
      expectUsage(r, '--credential-cert and --credential-key go together');
      expect(r.stderr).not.to.contain('warning: the private key');
    }
    // The policy certificate is no role credential: refused as such, past the pair's check.
    expect(both.status, both.stderr).to.equal(4);
    expect(both.stderr).to.contain('the credential is not valid').and.contain('[CREDENTIAL_INVALID]');
    expect(both.stderr).to.contain('key-client: warning: the private key role-key.pem can be read by every user of the machine (mode 0644): chmod 600 role-key.pem');
  });

  it('refuses a machine\'s admission certificate given as --credential-cert, saying what a credential is and how one is made (CREDENTIAL_INVALID, exit 4)', async () => {
    const cu = (args: string[]) => run('cert-utility', args, { cwd: tmp.dir });
    const made = spawnSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'holder-key.pem'], { cwd: tmp.dir });
    expect(made.status).to.equal(0);
    writeFileSync(join(tmp.dir, 'holder.pem'), spawnSync('openssl', ['pkey', '-in', 'holder-key.pem', '-pubout'], { cwd: tmp.dir }).stdout);
    const again = await cu(['issue-cert', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--public-key', 'holder.pem', '--measurement', 'ab'.repeat(32), '--out', 'machine-cert.pem']);
    expect(again.status, again.stderr).to.equal(0);
    const r = await kc(['list', '--credential-cert', 'machine-cert.pem', '--credential-key', 'holder-key.pem']);
    expect([r.status, r.out], r.stderr).to.deep.equal([4, '']);
    expect(r.stderr).to.contain('key-client: error: the credential is a machine certificate, not a role certificate: --credential-cert takes a role credential, which cert-utility issue-role-cert --role NAME makes for the holder\'s public key, not a machine\'s admission certificate [CREDENTIAL_INVALID]');
  });

  it('takes 1,000 names (500 with a credential) and refuses one more, before reading any file', async () => {
    const names = (n: number) => Array.from({ length: n }, (_, i) => `many/${i}`);
    const credential = ['--credential-cert', 'role-cert.pem', '--credential-key', 'role-key.pem'];
    // none.pem: a run past the count fails on the policy certificate, read next (FILE_ERROR).
    const [atLimit, atCredentialLimit, overCredentialLimit] = await Promise.all([
      kc(['retrieve', ...names(1000)], 'none.pem'),
      kc(['retrieve', ...names(500), ...credential], 'none.pem'),
      kc(['retrieve', ...names(501), ...credential], 'none.pem'),
    ]);
    for (const r of [atLimit, atCredentialLimit]) {
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.contain('cannot read none.pem').and.contain('[FILE_ERROR]').and.not.contain('too many');
    }
    expectUsage(overCredentialLimit, '501 names is too many for one run: a key-server answers at most 1000 requests on a connection, two per name with a credential; fetch at most 500 at a time');
  });

  it('refuses retrieve --force without --out (USAGE, exit 2): it replaces a file, and a value kept in the cryptstore replaces nothing', async () => {
    expectUsage(await kc(['retrieve', 'k', '--force']), '--force replaces the file --out names: without --out each value goes into the cryptstore as a new version, which replaces nothing');
  });

  it('takes 1,000 secrets in a provisioning config (500 with a credential) and refuses one more (INVALID_INPUT, exit 1)', async () => {
    const config = (n: number) => {
      const file = join(tmp.dir, `config-${n}.json`);
      writeFileSync(file, JSON.stringify({ secrets: Array.from({ length: n }, (_, i) => ({ ID: `prov/many-${i}`, Tag: `many-${i}` })) }));
      return file;
    };
    const credential = ['--credential-cert', 'role-cert.pem', '--credential-key', 'role-key.pem'];
    const [atLimit, atCredentialLimit, overCredentialLimit] = await Promise.all([
      kc(['provision', '--config', config(1000)], 'none.pem'),
      kc(['provision', '--config', config(500), ...credential], 'none.pem'),
      kc(['provision', '--config', config(501), ...credential], 'none.pem'),
    ]);
    for (const r of [atLimit, atCredentialLimit]) {
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.contain('cannot read none.pem').and.contain('[FILE_ERROR]').and.not.contain('too many');
    }
    expect(overCredentialLimit.status, overCredentialLimit.stderr).to.equal(1);
    expect(overCredentialLimit.stderr).to.contain('501 secrets is too many for one run').and.contain('fetch at most 500 at a time').and.contain('[INVALID_INPUT]');
  });

  it('refuses a provisioning config every user may change, or in a directory every user may write in (INVALID_INPUT), and warns of one its group may change', async () => {
    // Whoever can change the config chooses which secret goes to which file, and with what mode.
    const config = (name: string, mode: number, dirMode?: number) => {
      if (dirMode !== undefined) {
        mkdirSync(join(tmp.dir, name));
        chmodSync(join(tmp.dir, name), dirMode);
        name = `${name}/config.json`;
      }
      writeFileSync(join(tmp.dir, name), JSON.stringify({ secrets: [{ ID: 'app/token', LocalPath: 'token' }] }));
      chmodSync(join(tmp.dir, name), mode);
      return name;
    };
    const [everyone, openDir, group] = await Promise.all([
      kc(['provision', '--config', config('config-0666.json', 0o666)], 'none.pem'),
      kc(['provision', '--config', config('open-config', 0o644, 0o777)], 'none.pem'),
      kc(['provision', '--config', config('config-0664.json', 0o664)], 'none.pem'),
    ]);
    expect(everyone.status, everyone.stderr).to.equal(1);
    expect(everyone.stderr).to.contain('the provisioning config config-0666.json can be changed by every user of the machine (mode 0666), who could then send any secret to any file: chmod o-w config-0666.json [INVALID_INPUT]');
    expect(openDir.status, openDir.stderr).to.equal(1);
    expect(openDir.stderr).to.contain(`the provisioning config open-config/config.json is in ${join(tmp.dir, 'open-config')}, where every user of the machine may put another file in its place (mode 0777)`).and.contain('[INVALID_INPUT]');
    // Its group may change it: used (on to the policy certificate), with a warning.
    expect(group.status, group.stderr).to.equal(1);
    expect(group.stderr).to.contain('key-client: warning: the provisioning config config-0664.json can be changed by its group (mode 0664)').and.contain('cannot read none.pem');
    expect(existsSync(join(tmp.dir, 'token'))).to.equal(false);
  });

  it('refuses retrieve --out - into a file every user may read (a shell\'s "> f" under umask 022), before reading anything (FILE_ERROR)', () => {
    const cmd = [process.execPath, join(ROOT, 'cmd', 'bin', 'key-client.js'), 'retrieve', 'a', '--out', '-', '--server', server, '--domain', 'd', '--policy-cert', 'none.pem', '--store', 'store', '--key-file', 'store.key'].map((a) => `'${a}'`).join(' ');
    const into = (umask: string, file: string) => spawnSync('bash', ['-c', `umask ${umask}; exec ${cmd} > ${file}`], { cwd: tmp.dir, encoding: 'utf8' });
    const refused = into('022', 'open-stdout');
    expect(refused.status, refused.stderr).to.equal(1);
    expect(refused.stderr).to.contain(`key-client: error: standard output is ${join(tmp.dir, 'open-stdout')}, a file every user of the machine may read (mode 0644)`).and.contain('[FILE_ERROR]').and.not.contain('none.pem');
    expect(readFileSync(join(tmp.dir, 'open-stdout'), 'utf8')).to.equal('');
    // One only its owner may read: on to the policy certificate.
    const taken = into('077', 'own-stdout');
    expect(taken.status, taken.stderr).to.equal(1);
    expect(taken.stderr).to.contain('cannot read none.pem').and.not.contain('standard output');
  });

  it('refuses retrieve --out in a directory other users may write in without the sticky bit (FILE_ERROR, nothing written), and takes a sticky one', async () => {
    const dir = (name: string, mode: number) => {
      mkdirSync(join(tmp.dir, name));
      chmodSync(join(tmp.dir, name), mode);
      return name;
    };
    const open = dir('open-retrieve', 0o777);
    const sticky = dir('sticky-retrieve', 0o1777);
    // none.pem: the refusal comes before the policy certificate is read, let alone a connection.
    const refused = await kc(['retrieve', 'a', '--out', `${open}/a`], 'none.pem');
    expect(refused.status, refused.stderr).to.equal(1);
    expect(refused.stderr).to.contain(`cannot write ${open}/a: ${join(tmp.dir, open)} is writable by other users (mode 0777), who could replace what is written there; chmod go-w it, or use another directory; nothing was written [FILE_ERROR]`);
    expect(readdirSync(join(tmp.dir, open))).to.deep.equal([]);
    // A sticky one (as /tmp) passes, on to the policy certificate.
    const taken = await kc(['retrieve', 'a', '--out', `${sticky}/a`], 'none.pem');
    expect(taken.status, taken.stderr).to.equal(1);
    expect(taken.stderr).to.contain('cannot read none.pem').and.not.contain('writable by');
    expect(existsSync(join(tmp.dir, sticky, 'a'))).to.equal(false);
  });

  it('names the file on the way where retrieve --out cannot be written (FILE_ERROR), not the --out as if it were something that should be a directory', async () => {
    writeFileSync(join(tmp.dir, 'a-file'), 'x');
    for (const out of ['a-file/a', 'a-file/sub/a']) {
      const r = await kc(['retrieve', 'a', '--out', out], 'none.pem');
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.contain(`key-client: error: cannot write ${out}: a-file is not a directory [FILE_ERROR]`);
    }
  });

  it('says to make a missing directory of --out first (FILE_ERROR, nothing written), as the audit log\'s does: one under /run, emptied at every boot, is missing at each', async () => {
    const r = await kc(['retrieve', 'a', '--out', 'run-app/a'], 'none.pem');
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.contain('key-client: error: cannot write run-app/a: no directory run-app (make it first, or correct the path) [FILE_ERROR]');
    expect(existsSync(join(tmp.dir, 'run-app'))).to.equal(false);
  });
});

// scripts/first-boot.sh's failure modes: servers down (exit 3 after its retries, naming what it
// could not reach), a wrong policy certificate (exit 4, no retry) and flags that do not go
// together (exit 2). Then against a running domain (test/e2e/domain.ts): no success reported
// without the keys, the key-server's pin enforced, only the missing keys fetched, a first boot cut
// short finished by the next, a second run at once on the same store stopped by its lock. The
// demo runs it too (test/examples/scenarios.test.ts); on SEV-SNP, test/sev-snp/e2e.test.ts. Then
// deployment-setup.sh: inputs checked before any key is made, a private directory holding what
// was asked for, key-server's ACL from its measurements, a stop at the first step that fails,
// and a policy for SEV-SNP VMs.

import { expect } from 'chai';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants, copyFileSync, existsSync, lchownSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { closedPort, ROOT, run, runScript, tempDir } from '../support/helpers.ts';
import { Child, Domain, expectSuccess, startServer, type KeyServer, type Machine } from '../e2e/domain.ts';
import { domainProblem } from '../../lib/pki/admission.ts';
import { tagProblem } from '../../lib/wire/index.ts';
import { ACL_ACTIONS, decide, parseAcl } from '../../lib/keyservice/acl.ts';
import { succeeded } from '../../lib/keyservice/protocol.ts';
import { encode } from '../../lib/wire/index.ts';
import { scriptedKeyServer } from '../support/scripted-key-server.ts';

const firstBoot = (args: string[]) => runScript('first-boot.sh', args);
/** first-boot's line under a refusal of `key-client retrieve --check-only`, and of `cert-utility init-trust --check-only`. */
const KEY_CLIENT_REFUSES = 'key-client retrieve would refuse the flags this run gives it (above; its --server is --keyserver-host:--keyserver-port); not certifying';
const CERT_UTILITY_REFUSES = 'cert-utility init-trust would refuse the flags this run gives it (above; its --server is --host:--certifier-port); not certifying';
// What deployment-setup says to do when the directory holds a setup already.
const OTHER_SETUP = 'For a new setup give another --dir; to trust a new measurement in this one, make its policy again as the README\'s "Upgrading" says ("Trusting a new measurement")';
const NO_HOST = 'must be HOST:PORT with HOST a host name or an IP address (an IPv6 address in brackets: [2001:db8::5])';

/**
 * The environment giving bash tr_TR.UTF-8, whose collation puts "I" and "i" outside [A-Za-z] and
 * "é" inside [0-9a-f]: the system's locale, or one built with localedef into `dir` (LOCPATH);
 * undefined where neither can be had (the test then says it was skipped).
 */
function turkishLocale(dir: string): Record<string, string> | undefined {
  const works = (env: Record<string, string>) => spawnSync('bash', ['-c', 'x=I; printf %s "${x,,}"'], { env: { ...process.env, ...env }, encoding: 'utf8' }).stdout === '\u0131';
  const system = { LC_ALL: 'tr_TR.UTF-8' };
  if (works(system)) return system;
  spawnSync('localedef', ['-i', 'tr_TR', '-f', 'UTF-8', join(dir, 'tr_TR.UTF-8')]);
  const built = { ...system, LOCPATH: dir };
  return works(built) ? built : undefined;
}

describe('scripts/first-boot.sh failure modes', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  let server: ChildProcess | undefined;
  const f = (p: string) => join(tmp.dir, p);
  const cu = (args: string[]) => run('cert-utility', args, { cwd: tmp.dir });

  before(async () => {
    tmp = tempDir('first-boot-');
    for (const [dir, domainFiles] of [['a', 'policy'], ['b', 'other']] as const) {
      mkdirSync(f(dir));
      expect((await cu(['generate-policy-key', '--domain', 'datica', '--key-out', f(`${dir}/key.pem`), '--cert-out', f(`${dir}/cert.pem`)])).status, domainFiles).to.equal(0);
    }
    expect((await cu(['generate-platform-keys', '--out-dir', f('platform')])).status).to.equal(0);
    writeFileSync(f('vm-image'), 'vm image\n');
    const m = (await cu(['measure', f('vm-image'), '--out', f('measurement')])).out.trim();
    expect((await cu(['make-policy', '--policy-key', f('a/key.pem'), '--policy-cert', f('a/cert.pem'), '--trust-platform', f('platform/platform-cert.pem'), '--trust-measurement', m, '--out', f('policy.bin')])).status).to.equal(0);
    mkdirSync(f('vm'));
    for (const file of ['attest-key.pem', 'endorsement.bin']) copyFileSync(f(`platform/${file}`), f(`vm/${file}`));
  });
  after(() => {
    server?.kill('SIGTERM');
    tmp.cleanup();
  });

  const args = (policyCert: string, cport: number, kport: number, store: string) => [
    '--host', '127.0.0.1', '--certifier-port', String(cport), '--keyserver-port', String(kport), '--keys', 'vhd/disk-1',
    '--domain', 'datica', '--policy-cert', policyCert, '--store', f(store), '--platform-dir', f('vm'), '--measurement-file', f('measurement'),
    '--retries', '3', '--max-delay', '1',
  ];

  it('exits 3 after its retries when the servers are down, naming what it could not reach', async () => {
    const port = await closedPort();
    const r = await firstBoot(args(f('a/cert.pem'), port, port, 'store-down'));
    expect(r.status, r.stderr).to.equal(3);
    expect(r.stderr).to.contain(`the server still unreachable or not answering in time after 3 attempts (the line above says which); giving up`);
    expect(r.stderr).to.contain(`127.0.0.1:${port}`);
    expect(r.stderr.match(/retrying in \d+s/g), 'never waiting longer than --max-delay').to.deep.equal(['retrying in 1s', 'retrying in 1s']);
  });

  it('in a locale that is not installed warns of it once (bash, at start), not again at each check or log line that works in C', async () => {
    const port = await closedPort();
    const r = await runScript('first-boot.sh', args(f('a/cert.pem'), port, port, 'store-locale').map((a, i, all) => (all[i - 1] === '--retries' ? '1' : a)), { env: { LC_ALL: 'xx_YY.UTF-8' } });
    expect(r.status, r.stderr).to.equal(3);
    expect(r.stderr).not.to.match(/first-boot\.sh: line \d+: warning: setlocale/);
    expect(r.stderr, 'one attempt, said as one').to.contain('the server still unreachable or not answering in time after 1 attempt (the line above says which); giving up');
  });

  it('finds the programs beside its package when run through a link to it (one in /usr/local/bin, say)', async () => {
    const port = await closedPort();
    mkdirSync(f('links'), { recursive: true });
    symlinkSync(join(ROOT, 'scripts', 'first-boot.sh'), f('links/first-boot'));
    const r = await runScript({ path: f('links/first-boot') }, args(f('a/cert.pem'), port, port, 'store-linked').map((a) => (a === '3' ? '1' : a)), { cwd: tmp.dir });
    expect(r.status, r.stderr).to.equal(3);
    expect(r.stderr).to.contain('the server still unreachable or not answering in time');
  });

  it('copied into an image without scripts/common.sh beside it, says so (exit 1) before anything, where it blamed its own --retries ("not \\"8\\"") and deployment-setup.sh a missing file by line number', async () => {
    mkdirSync(f('alone'), { recursive: true });
    const env = { CERT_UTILITY: join(ROOT, 'cmd/bin/cert-utility.js'), KEY_CLIENT: join(ROOT, 'cmd/bin/key-client.js'), KEY_SERVER: join(ROOT, 'cmd/bin/key-server.js') };
    for (const [script, name, scriptArgs] of [
      ['first-boot.sh', 'first-boot', args(f('a/cert.pem'), 1, 1, 'store-alone')],
      ['deployment-setup.sh', 'deployment-setup', ['--dir', f('alone/setup'), '--domain', 'datica', '--measure', f('vm-image')]],
    ] as const) {
      copyFileSync(join(ROOT, 'scripts', script), f(`alone/${script}`));
      chmodSync(f(`alone/${script}`), 0o755);
      const r = await runScript({ path: f(`alone/${script}`) }, [...scriptArgs], { env });
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr, script).to.contain(`${name}: cannot read ${f('alone/common.sh')}, which it needs beside it: copy scripts/common.sh with it`);
      expect(r.stderr.split('\n').filter((l) => l.startsWith(`${name}:`)), script).to.have.length(1);
    }
    expect(existsSync(f('store-alone')), 'no store made').to.equal(false);
    expect(existsSync(f('alone/setup')), 'no setup made').to.equal(false);
  });

  it('exits 4 at once, without retrying, when the policy certificate in the image is not the one the servers use', async () => {
    server = spawn(process.execPath, [join(ROOT, 'cmd/bin/simpleserver.js'), 'serve', '--policy-key', f('a/key.pem'), '--policy-cert', f('a/cert.pem'), '--policy', f('policy.bin'), '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const cport = await new Promise<number>((resolve) => {
      let out = '';
      server!.stdout!.on('data', (d) => {
        out += d;
        const m = /listening \S+:(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
    });
    const r = await firstBoot(args(f('b/cert.pem'), cport, await closedPort(), 'store-wrong'));
    expect(r.status, r.stderr).to.equal(4);
    expect(r.stderr).to.contain('UNTRUSTED_PEER');
    expect(r.stderr).to.contain('not retrying');
    expect(r.stderr).not.to.contain('retrying in');
  });

  it('exits 0 without certifying or any network when every key is already in the store (a certificate a wrong clock would call expired is not even read)', async () => {
    writeFileSync(f('held.key'), Buffer.alloc(32, 7));
    const store = ['--store', f('store-held'), '--key-file', f('held.key')];
    expect((await cu(['create-store', ...store])).status).to.equal(0);
    expect((await run('cert-utility', ['put-item', ...store, '--tag', 'vhd/disk-1', '--in', '-'], { cwd: tmp.dir, input: 'the key' })).status).to.equal(0);
    const port = await closedPort();
    const base = args(f('a/cert.pem'), port, port, 'store-held').filter((a, i, all) => a !== '--store' && all[i - 1] !== '--store');
    const r = await firstBoot([...base, '--store', f('store-held'), '--key-file', f('held.key')]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.contain('every key is already in the cryptstore; nothing to do');
    expect(r.stderr).not.to.contain('step 1/2');
    // init-trust's flags are asked of cert-utility on every boot, one holding every key too: a
    // mistake in the unit (a port, platform flags that do not go together) made it exit 0, unseen
    // until a key went missing.
    const port0 = base.map((a, i) => (base[i - 1] === '--certifier-port' ? '0' : a));
    for (const [flags, message] of [
      [port0, '--server must be HOST:PORT with a port from 1 to 65535, not "127.0.0.1:0"'],
      [[...base, '--tsm-dir', f('tsm')], '--tsm-dir and --vcek are for --platform sev-snp'],
      [[...base, '--platform', 'sev-snp'], '--platform sev-snp takes no --platform-dir or --measurement-file: the hardware reports the measurement'],
    ] as const) {
      const r = await firstBoot([...flags, '--store', f('store-held'), '--key-file', f('held.key')]);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr, r.stderr).to.contain(`cert-utility: error: ${message} [USAGE]\nfirst-boot: ${CERT_UTILITY_REFUSES}`).and.not.contain('nothing to do');
    }
    // Sealing, which SEV-SNP cannot yet, given for a store protected by a key file: the flags first.
    const sealed = await firstBoot([...base.filter((a, i, all) => !['--platform-dir', '--measurement-file'].includes(a) && !['--platform-dir', '--measurement-file'].includes(all[i - 1]!)), '--platform', 'sev-snp', '--store', f('store-held')]);
    expect(sealed.status, sealed.stderr).to.equal(2);
    expect(sealed.stderr).to.contain(`cert-utility: error: --platform sev-snp cannot seal the store yet: give --key-file or --passphrase-file [USAGE]\nfirst-boot: ${CERT_UTILITY_REFUSES}`);
    // A name key-client refuses is refused though the store holds it: the machine's own key, held
    // from the first certification on, would otherwise make every boot "done" without the key.
    expect((await run('cert-utility', ['put-item', ...store, '--tag', 'datica-private-auth-key', '--in', '-'], { cwd: tmp.dir, input: 'not a key' })).status).to.equal(0);
    const reserved = await firstBoot([...base.filter((a, i, all) => a !== '--keys' && all[i - 1] !== '--keys'), '--keys', 'vhd/disk-1 datica-private-auth-key', '--store', f('store-held'), '--key-file', f('held.key')]);
    expect(reserved.status, reserved.stderr).to.equal(2);
    expect(reserved.stderr).to.contain('key-client: error: "datica-private-auth-key" is where init-trust keeps a machine\'s identity in the cryptstore')
      .and.contain(`first-boot: ${KEY_CLIENT_REFUSES}`).and.not.contain('nothing to do');
  });

  it('stops at once, neither certifying nor fetching, when the store it would keep the keys in cannot be read', async () => {
    writeFileSync(f('damaged.key'), Buffer.alloc(32, 9));
    const store = ['--store', f('store-wrong-key'), '--key-file', f('damaged.key')];
    expect((await cu(['create-store', '--store', f('store-wrong-key'), '--key-file', f('held.key')])).status).to.equal(0); // another key: it will not open
    const port = await closedPort();
    const base = args(f('a/cert.pem'), port, port, 'x').filter((a, i, all) => a !== '--store' && all[i - 1] !== '--store');
    const r = await firstBoot([...base, ...store]);
    expect(r.status, r.stderr).to.equal(4);
    expect(r.stderr).to.contain('wrong key file, or damaged metadata [WRONG_KEY]').and.contain('could not be opened (exit 4: see above); not certifying again over it');
    expect(r.stderr, 'the error in words, not its JSON document').not.to.contain('{"ok"');
    expect(r.stderr).not.to.contain('step 1/2');
    // Given to a sealed boot (the default), the same store is protected another way: said so, not
    // taken for a sealed store of an earlier image.
    const sealed = await firstBoot([...base, '--store', f('store-wrong-key')]);
    expect(sealed.status, sealed.stderr).to.equal(4);
    expect(sealed.stderr).to.contain('is protected by a key file (--key-file)').and.contain('is protected another way than this run was given');
    expect(sealed.stderr).not.to.contain('sealed to another measurement');
    // A name key-client refuses is named first (both are asked at once): the store's error waits.
    const badName = await firstBoot([...base.filter((a, i, all) => a !== '--keys' && all[i - 1] !== '--keys'), '--keys', 'vhd/\x01', ...store]);
    expect(badName.status, badName.stderr).to.equal(2);
    expect(badName.stderr).to.contain('the name "vhd/\\u0001" contains a control character').and.not.contain('could not be opened');
  });

  it('finds a held key whose name JSON escapes (a backslash, a quote) or holds a format character, and takes a name with a glob character as a name', async () => {
    const store = ['--store', f('store-odd'), '--key-file', f('held.key')];
    expect((await cu(['create-store', ...store])).status).to.equal(0);
    for (const tag of ['api/a\\b', 'vhd/*', 'db/"main"', 'fmt/a\u0600b']) expect((await run('cert-utility', ['put-item', ...store, '--tag', tag, '--in', '-'], { cwd: tmp.dir, input: 'v' })).status).to.equal(0);
    const port = await closedPort();
    const base = args(f('a/cert.pem'), port, port, 'x').filter((a, i, all) => !['--store', '--keys'].includes(a) && !['--store', '--keys'].includes(all[i - 1]!));
    mkdirSync(f('vhd'));
    writeFileSync(f('vhd/not-a-key'), ''); // in the working directory, "vhd/*" would match it as a pattern
    const r = await runScript('first-boot.sh', [...base, ...store, '--keys', 'api/a\\b vhd/* db/"main" fmt/a\u0600b'], { cwd: tmp.dir });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.contain('every key is already in the cryptstore');
  });

  it('counts a key as held only under its exact name: a store holding vhd/disk-10 still fetches vhd/disk-1', async () => {
    const store = ['--store', f('store-prefix'), '--key-file', f('held.key')];
    expect((await cu(['create-store', ...store])).status).to.equal(0);
    expect((await run('cert-utility', ['put-item', ...store, '--tag', 'vhd/disk-10', '--in', '-'], { cwd: tmp.dir, input: 'v' })).status).to.equal(0);
    const port = await closedPort();
    const base = args(f('a/cert.pem'), port, port, 'x').filter((a, i, all) => a !== '--store' && all[i - 1] !== '--store');
    const r = await firstBoot([...base.map((a) => (a === '3' ? '1' : a)), ...store]);
    expect(r.status, r.stderr).to.equal(3);
    expect(r.stderr).to.contain('step 1/2').and.not.contain('nothing to do');
  });

  it('counts a key name\'s length as key-client does, in UTF-16 units: 256 characters with emoji among them are refused before certifying, a name of 256 units goes on', async () => {
    const port = await closedPort();
    const base = args(f('a/cert.pem'), port, port, 'store-long').map((a) => (a === '3' ? '1' : a)).filter((a, i, all) => a !== '--keys' && all[i - 1] !== '--keys');
    const tooLong = `vhd/${'\u{1f600}'.repeat(252)}`; // 256 code points, 508 units
    const longest = `vhd/${'\u{1f600}'.repeat(125)}x\u00e9`; // 256 units
    expect(tagProblem(tooLong)).to.contain('longer than 256');
    expect(tagProblem(longest)).to.equal(undefined);
    const refused = await firstBoot([...base, '--keys', tooLong]);
    expect(refused.status, refused.stderr).to.equal(2);
    expect(refused.stderr).to.contain(`key-client: error: the name "vhd/${'\u{1f600}'.repeat(126)}..." (508 characters) is longer than 256 characters (counted in UTF-16 units: a character beyond U+FFFF, such as an emoji, counts as two) [USAGE]`);
    expect(refused.stderr).to.contain(`first-boot: ${KEY_CLIENT_REFUSES}`).and.not.contain('step 1/2');
    const taken = await firstBoot([...base, '--keys', longest]);
    expect(taken.status, taken.stderr).to.equal(3);
    expect(taken.stderr).to.contain('step 1/2');
  });

  it('refuses a key name that is not valid UTF-8 (exit 2) before certifying, as key-client would only after', async () => {
    const port = await closedPort();
    const base = args(f('a/cert.pem'), port, port, 'store-bytes').map((a) => (a === '3' ? '1' : a)).filter((a, i, all) => a !== '--keys' && all[i - 1] !== '--keys');
    // Bytes no JavaScript string passes as an argument: a wrapper adds the name.
    for (const [i, bytes] of ["abc\\xff", "\\xed\\xa0\\x80", "\\xf4\\x90\\x80\\x80", `${'a'.repeat(255)}\\xf0`, "x\\xef\\xbf\\xbdy"].entries()) {
      const wrapper = f(`bad-name-${i}`);
      writeFileSync(wrapper, `#!/bin/bash\nexec "${join(ROOT, 'scripts', 'first-boot.sh')}" "$@" --keys $'${bytes}'\n`, { mode: 0o755 });
      const r = await runScript({ path: wrapper }, base);
      expect(r.status, r.stderr).to.equal(2);
      // key-client's own decoding (each bad byte becomes U+FFFD) and rule, the name as it read it.
      expect(r.stderr).to.contain(i === 0 ? 'key-client: error: the name "abc\ufffd" is not valid UTF-8 [USAGE]' : 'is not valid UTF-8 [USAGE]');
      expect(r.stderr).to.contain(`first-boot: ${KEY_CLIENT_REFUSES}`).and.not.contain('step 1/2');
    }
  });

  it('refuses a FIFO or a directory given as a file it reads (exit 2) before running anything, where the programs would wait for ever', async () => {
    const port = await closedPort();
    execFileSync('mkfifo', [f('fifo')]);
    mkdirSync(f('a-directory'));
    const cases: [string, string, string][] = [
      ['--policy-cert', f('fifo'), 'is a FIFO, not a regular file'],
      ['--measurement-file', f('a-directory'), 'is a directory, not a regular file'],
      ['--key-file', f('fifo'), 'is a FIFO, not a regular file'],
    ];
    for (const [flag, file, message] of cases) {
      // A program left waiting in open() is let go (the FIFO opened and closed for writing), so
      // that the test fails instead of hanging.
      let waited = false;
      const letGo = setInterval(() => {
        try {
          closeSync(openSync(f('fifo'), constants.O_WRONLY | constants.O_NONBLOCK));
          waited = true;
        } catch { /* no reader yet */ }
      }, 2000);
      const base = args(f('a/cert.pem'), port, port, 'store-fifo').filter((a, i, all) => a !== flag && all[i - 1] !== flag);
      const r = await firstBoot([...base, flag, file]).finally(() => clearInterval(letGo));
      expect(waited, `${flag}: a program waited on the FIFO`).to.equal(false);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.contain(`first-boot: ${flag}: ${file} ${message}`).and.not.contain('step 1/2');
      expect(existsSync(f('store-fifo')), 'no store made').to.equal(false);
    }
  });

  it('refuses to run without its required arguments (exit 2), and --help is no error', async () => {
    const r = await firstBoot(['--host', '127.0.0.1']);
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain('missing --certifier-port');
    const help = await firstBoot(['--help']);
    expect(help.status).to.equal(0);
    expect(help.out).to.contain('usage: first-boot.sh'); // asked for: a result, on stdout
    expect(help.stderr).to.equal('');
    expect(r.out).to.equal('');
    // Every flag of the usage lines is described below them (--passphrase-file and --key-file were not).
    const [usage, described] = help.out.split('\n\n');
    for (const flag of new Set(usage!.replace(/\([^)]*\)/gs, '').match(/--[a-z-]+/g))) expect(described, flag).to.match(new RegExp(`^  ${flag} `, 'm'));
  });

  it('refuses a flag given twice, and two protections (exit 2): the last would have won silently', async () => {
    for (const [args, message] of [
      [['--keys', 'a', '--keys', 'b'], '--keys is given twice'],
      [['--key-file', 'k', '--passphrase-file', 'p'], '--key-file/--passphrase-file is given twice'],
    ] as const) {
      const r = await firstBoot([...args]);
      expect(r.status).to.equal(2);
      expect(r.stderr).to.contain(`first-boot: ${message}; it takes one value`);
    }
  });

  it('refuses a flag given without its value (exit 2), rather than failing on an unset variable', async () => {
    const r = await firstBoot(['--host', '127.0.0.1', '--keys']);
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain('first-boot: --keys needs a value');
    expect(r.stderr).not.to.contain('unbound variable');
  });

  it('names a program it cannot run (CERT_UTILITY, KEY_CLIENT) before anything, rather than blaming the store (exit 1)', async () => {
    const port = await closedPort();
    for (const env of [{ CERT_UTILITY: f('no-such-cert-utility') }, { KEY_CLIENT: f('a/cert.pem') }]) {
      const r = await runScript('first-boot.sh', args(f('a/cert.pem'), port, port, 'store-noprog'), { env });
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.contain('first-boot: cannot run').and.contain('(CERT_UTILITY and KEY_CLIENT name the programs)').and.not.contain('step 1/2');
    }
    // One that runs but fails at the check (an older key-client, say) is not taken for a refusal of the flags.
    const failing = f('failing-key-client.sh');
    writeFileSync(failing, '#!/bin/sh\necho "key-client: error: something else [INTERNAL]" >&2\nexit 1\n', { mode: 0o755 });
    const r = await runScript('first-boot.sh', args(f('a/cert.pem'), port, port, 'store-noprog'), { env: { KEY_CLIENT: failing } });
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.contain('first-boot: key-client retrieve could not check the flags (exit 1, above); not certifying').and.not.contain('step 1/2');
  });

  it('refuses platform flags that do not go together before running anything (exit 2), by cert-utility init-trust\'s own check', async () => {
    const base = ['--host', '127.0.0.1', '--certifier-port', '1', '--keyserver-port', '1', '--keys', 'k', '--domain', 'datica', '--policy-cert', f('a/cert.pem'), '--store', f('store-flags')];
    const cases: [string[], string][] = [
      // Which go together is init-trust's rule (tested in test/cli/check-only.test.ts), asked of it
      // with --check-only: bash's copy of it said the same only for the flags it knew.
      [['--platform', 'sev-snp', '--key-file', f('k'), '--platform-dir', f('vm')], `cert-utility: error: --platform sev-snp takes no --platform-dir or --measurement-file: the hardware reports the measurement [USAGE]\nfirst-boot: ${CERT_UTILITY_REFUSES}`],
      [['--platform', 'sev-snp'], `cert-utility: error: --platform sev-snp cannot seal the store yet: give --key-file or --passphrase-file [USAGE]\nfirst-boot: ${CERT_UTILITY_REFUSES}`],
      // Refused by key-client's check too, since it parses --platform (the two lines in either order).
      [['--platform', 'tdx', '--key-file', f('k')], 'cert-utility: error: unknown --platform "tdx"; choose simulated, sev-snp [USAGE]'],
      [['--platform', 'tdx', '--key-file', f('k')], 'key-client: error: unknown --platform "tdx"; choose simulated, sev-snp [USAGE]'],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--tsm-dir', f('tsm')], `cert-utility: error: --tsm-dir and --vcek are for --platform sev-snp [USAGE]\nfirst-boot: ${CERT_UTILITY_REFUSES}`],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--vcek', ''], 'key-client: error: --vcek needs a value, not an empty string [USAGE]'],
      // Given empty (a unit's variable set to nothing), each was taken for not given: the default report directory, no VCEK.
      [['--platform', 'sev-snp', '--key-file', f('k'), '--tsm-dir', ''], 'key-client: error: --tsm-dir needs a value, not an empty string [USAGE]'],
      [['--platform-dir', f('vm')], `cert-utility: error: --platform simulated needs --platform-dir and --measurement-file [USAGE]\nfirst-boot: ${CERT_UTILITY_REFUSES}`],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--server-measurement', 'set-in-first-boot.env'], 'key-client: error: --server-measurement "set-in-first-boot.env" is not a measurement (64 or 96 hex digits) [USAGE]'],
      // An empty pin (a unit's variable set to nothing) is no pin: refused, never run unpinned.
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--server-measurement', ''], '--server-measurement takes the key-server\'s measurement, 64 or 96 hex digits (several separated by spaces or commas), not ""'],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--server-measurement', ' , '], '--server-measurement takes the key-server\'s measurement'],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--server-measurement', `${'ab'.repeat(32)},nothex`], '--server-measurement "nothex" is not a measurement'],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--server-measurement', `${'ab'.repeat(32)} ${'a'.repeat(63)}\x1b`], `--server-measurement "${'a'.repeat(63)}\\u001b" is not a measurement`],
      // Repeated, as key-client's: an empty one among them is still no pin.
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--server-measurement', 'ab'.repeat(32), '--server-measurement', ''], '--server-measurement takes the key-server\'s measurement'],
      // "08" is bad octal to bash's arithmetic, which then skipped a step and reported success.
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--max-delay', '08'], '--max-delay takes a whole number of seconds from 1 to 9999, not "08"'],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--retries', ''], '--retries takes a whole number from 1 to 999, not ""'],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--retries', '99999999999999999999'], '--retries takes a whole number from 1 to 999'],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--keyserver-port', 'x'], `key-client: error: --server must be HOST:PORT with a port from 1 to 65535, not "127.0.0.1:x" [USAGE]\nfirst-boot: ${KEY_CLIENT_REFUSES}`],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--certifier-port', '65536'], `cert-utility: error: --server must be HOST:PORT with a port from 1 to 65535, not "127.0.0.1:65536" [USAGE]\nfirst-boot: ${CERT_UTILITY_REFUSES}`],
      // Checked before certifying: a bad key-server address would be found only at step 2. (What
      // HOST:PORT takes, the programs' rule, is tested in test/cli/host-port.test.ts.)
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--keyserver-host', '10.0.0.7:8120'], 'key-client: error: --server must be HOST:PORT with a port from 1 to 65535, not "10.0.0.7:8120:1"'],
      // Empty (a unit's variable set to nothing) is refused, never taken for --host.
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--keyserver-host', ''], 'key-client: error: --server must be HOST:PORT, a host before the port (the server\'s address: 10.0.0.5:1), not ":1"'],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--host', '-v'], `cert-utility: error: --server ${NO_HOST}, not "-v:1"`],
      // Passed by the bash copy of the rule first-boot kept (two to seven colons), refused by the programs only on connecting.
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--keyserver-host', '[1:2:3]'], `key-client: error: --server ${NO_HOST}, not "[1:2:3]:1"`],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--host', 'kms\x1b.internal'], `cert-utility: error: --server ${NO_HOST}, not "kms\\u001b.internal:1"`],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--keys', '  '], '--keys names no key'],
      // An empty pin among valid ones is named as such, not the valid one.
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--server-measurement', '\t', '--server-measurement', 'ab'.repeat(32)], 'not "" (an empty value'],
      // Refused by key-client too, but only once the machine is certified. (Its rule for names is
      // tested in test/cli/check-input.test.ts; a name's length in UTF-16 units above.) Held from
      // the first certification on, it would make every later boot "done" without the keys.
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--keys', 'vhd/disk-1 datica-admission-certificate'], 'key-client: error: "datica-admission-certificate" is where init-trust keeps a machine\'s identity in the cryptstore'],
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--keys', 'key-server-storage-key vhd/disk-1'], 'key-client: error: "key-server-storage-key" is a key-server\'s storage key'],
      // Passed on to key-client, it would have been an option (--out=FILE took the key elsewhere).
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--keys', 'vhd/disk-1 --out=leak'], 'first-boot: --keys names "--out=leak", which begins with "-": a key name, not an option'],
      // key-client would refuse it too, but only once the machine is certified.
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--keys', 'vhd/disk-1 vhd/\x1b[2Jdisk'], 'key-client: error: the name "vhd/\\u001b[2Jdisk" contains a control character [USAGE]'],
      // More than one retrieve fetches: it would fail only once the machine is certified.
      [['--platform-dir', f('vm'), '--measurement-file', f('measurement'), '--keys', Array.from({ length: 1001 }, (_, i) => `vhd/${i}`).join(' ')], 'key-client: error: 1001 names is too many for one run'],
    ];
    for (const [more, message] of cases) {
      // A flag of the case replaces the base's (each flag may be given once).
      const kept = base.filter((_, i) => !more.includes(base[i - (i % 2)]!));
      const r = await firstBoot([...kept, ...more]);
      expect(r.status, more.join(' ')).to.equal(2);
      expect(r.stderr).to.contain(message);
      expect(r.stderr).not.to.contain('step 1/2');
      expect(r.stderr, 'no control character reaches the console raw').not.to.match(/[\x00-\x09\x0b-\x1f\x7f]/);
    }
  });
});

describe('scripts/first-boot.sh and deployment-setup.sh in a Turkish locale', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  let turkish: Record<string, string> | undefined;
  before(function () {
    tmp = tempDir('turkish-');
    turkish = turkishLocale(tmp.dir);
    if (!turkish) this.skip(); // neither installed nor buildable here (no localedef or no tr_TR source)
  });
  after(() => tmp?.cleanup());

  it('checks a host name and a measurement by ASCII ranges: "kms.internal" is a host (it was refused), "\u00e9" is no hex digit (it passed)', async () => {
    const base = ['--certifier-port', '1', '--keyserver-port', '1', '--keys', 'k', '--domain', 'datica', '--policy-cert', 'p', '--store', 's', '--platform-dir', 'v', '--measurement-file', 'm', '--retries', '1'];
    const host = await runScript('first-boot.sh', [...base, '--host', 'kms.internal', '--server-measurement', 'zz'], { cwd: tmp.dir, env: turkish });
    expect(host.status).to.equal(2);
    expect(host.stderr).to.contain('--server-measurement "zz" is not a measurement').and.not.contain('must be HOST:PORT');
    const pin = await runScript('first-boot.sh', [...base, '--host', '127.0.0.1', '--server-measurement', `${'a'.repeat(63)}\u00e9`], { cwd: tmp.dir, env: turkish });
    expect(pin.status).to.equal(2);
    expect(pin.stderr).to.contain(`--server-measurement "${'a'.repeat(63)}\u00e9" is not a measurement`).and.not.contain('step 1/2');
    const setup = await runScript('deployment-setup.sh', ['--dir', 'setup', '--domain', 'datica', '--trust-measurement', `${'a'.repeat(63)}\u00e9`], { cwd: tmp.dir, env: turkish });
    expect(setup.status).to.equal(2);
    expect(setup.stderr).to.contain(`cert-utility: error: --trust-measurement "${'a'.repeat(63)}\u00e9" is not a measurement (64 or 96 hex digits)`);
    expect(existsSync(join(tmp.dir, 'setup')), 'nothing made').to.equal(false);
  });
});

describe('scripts/first-boot.sh against running servers', function () {
  this.timeout(120_000);
  let d: Domain;
  let server: KeyServer;
  let operator: Machine;
  const keys = { 'vhd/disk-1': randomBytes(32), 'api/token': randomBytes(32) };

  before(async () => {
    // "vm" is trusted but not certified here: first-boot.sh certifies each VM's store itself.
    ({ d, server, machines: { operator } } = await Domain.setUp({ ks: 'key-server', operator: 'operator' }, { programs: ['key-server', 'operator', 'vm'], serve: 'ks' }));
    for (const [name, key] of Object.entries(keys)) expectSuccess(await d.kc(operator, server, 'store', [name, '--in', '-'], key));
  });
  after(() => d?.close());

  type BootOptions = { keys?: string; khost?: string; kport?: number; pin?: string; extra?: string[]; retries?: number };
  /** first-boot.sh's arguments as a VM running the "vm" program; `kport` defaults to the running key-server. */
  const bootArgs = (store: string, o: BootOptions = {}) => [
    '--host', '127.0.0.1', '--certifier-port', String(d.certifierPort), ...(o.khost ? ['--keyserver-host', o.khost] : []), '--keyserver-port', String(o.kport ?? server.port), '--keys', o.keys ?? Object.keys(keys).join(' '),
    '--domain', d.name, '--policy-cert', d.policyCertFile, '--store', store, '--key-file', d.keyFile,
    '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile('vm'), '--server-measurement', o.pin ?? server.measurementHex, ...(o.extra ?? []), '--retries', String(o.retries ?? 1),
  ];
  const boot = (store: string, o: BootOptions & { stderrClosed?: boolean } = {}) => runScript(...withStderr(o.stderrClosed, bootArgs(store, o)));
  /** first-boot.sh with `args`, or run by a shell that closes its standard error first (2>&-). */
  const withStderr = (closed: boolean | undefined, args: string[]): Parameters<typeof runScript> =>
    closed ? [{ path: '/bin/sh' }, ['-c', '"$@" 2>&-', 'sh', join(ROOT, 'scripts', 'first-boot.sh'), ...args]] : ['first-boot.sh', args];
  const held = async (store: string, tag: string) => (await run('cert-utility', ['get-item', '--tag', tag, '--out', '-', '--store', store, '--key-file', d.keyFile])).stdout;

  it('finishes a first boot cut short after making the store\'s directory (at a path with a space): certifies into it and fetches every key', async () => {
    const store = d.path('vm store');
    mkdirSync(store);
    const r = await boot(store);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.contain(`done: vhd/disk-1 api/token kept in ${store}`);
    for (const [name, key] of Object.entries(keys)) expect((await held(store, name)).equals(key), name).to.equal(true);
    const again = await boot(store, { kport: await closedPort() });
    expect(again.status, again.stderr).to.equal(0);
    expect(again.stderr).to.contain('nothing to do');
  });

  it('with standard error closed (2>&-) certifies and fetches every key, where its programs\' output, sent to a stream bash had put its script in, failed them (exit 1)', async () => {
    const store = d.path('vm-stderr-closed');
    const r = await boot(store, { stderrClosed: true });
    expect(r.status).to.equal(0);
    for (const [name, key] of Object.entries(keys)) expect((await held(store, name)).equals(key), name).to.equal(true);
  });

  it('never reports success without the keys: certified but the key-server unreachable, it exits 3, and the next boot fetches them', async () => {
    const store = d.path('vm-half');
    const r = await boot(store, { kport: await closedPort() });
    expect(r.status, r.stderr).to.equal(3);
    expect(r.stderr).to.contain('step 2/2').and.contain('the server still unreachable or not answering in time').and.not.contain('done:');
    const next = await boot(store);
    expect(next.status, next.stderr).to.equal(0);
    expect((await held(store, 'vhd/disk-1')).equals(keys['vhd/disk-1'])).to.equal(true);
  });

  it('reaches a key-server at an address of its own (--keyserver-host, Scenario 2: in a cloud VM), simpleserver still at --host', async () => {
    // Listening on 127.0.0.2 only: nothing answers at --host's 127.0.0.1 on its port.
    const apart = await d.startKeyServer(await d.certify('ks-apart', 'key-server'), { listen: '127.0.0.2:0' });
    expectSuccess(await d.kc(operator, apart, 'store', ['vhd/disk-1', '--in', '-'], keys['vhd/disk-1']));
    const store = d.path('vm-apart');
    const there = await boot(store, { keys: 'vhd/disk-1', kport: apart.port });
    expect(there.status, 'at --host, the key-server is not there').to.equal(3);
    const r = await boot(store, { keys: 'vhd/disk-1', khost: '127.0.0.2', kport: apart.port });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.contain(`step 2/2: fetching vhd/disk-1 from 127.0.0.2:${apart.port}`);
    expect((await held(store, 'vhd/disk-1')).equals(keys['vhd/disk-1'])).to.equal(true);
  });

  it('fetches only the keys still missing, leaving a key already held as it is', async () => {
    const store = d.path('vm-partial');
    expectSuccess(await run('cert-utility', ['create-store', '--store', store, '--key-file', d.keyFile]));
    expectSuccess(await run('cert-utility', ['put-item', '--tag', 'vhd/disk-1', '--in', '-', '--store', store, '--key-file', d.keyFile], { input: 'the local disk key' }));
    const r = await boot(store);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.contain('step 2/2: fetching api/token from').and.contain('done: api/token kept in');
    expect((await held(store, 'vhd/disk-1')).toString()).to.equal('the local disk key');
    expect((await held(store, 'api/token')).equals(keys['api/token'])).to.equal(true);
  });

  it('takes a name given twice in --keys as one: fetched once, and named once in its lines (they said "fetching vhd/disk-1 api/token vhd/disk-1")', async () => {
    const store = d.path('vm-twice');
    const r = await boot(store, { keys: 'vhd/disk-1 api/token vhd/disk-1' });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.contain('step 2/2: fetching vhd/disk-1 api/token from').and.contain('done: vhd/disk-1 api/token kept in');
    expect((await held(store, 'vhd/disk-1')).equals(keys['vhd/disk-1'])).to.equal(true);
  });

  it('refuses a key-server that is not the pinned measurement (exit 4), keeping no key', async () => {
    const store = d.path('vm-pinned');
    const r = await boot(store, { pin: d.measurementHex('operator') });
    expect(r.status, r.stderr).to.equal(4);
    expect(r.stderr).to.contain('not one of those pinned: check that --server names the key-server, and, for a new key-server program, pin its measurement too (--server-measurement, repeatable; README "Upgrading") [UNTRUSTED_PEER]').and.contain('not retrying').and.not.contain('done:');
    const list = await run('cert-utility', ['list-items', '--json', '--store', store, '--key-file', d.keyFile]);
    expect(list.out).not.to.contain('"tag":"vhd/disk-1"');
  });

  it('takes several pinned measurements (a key-server moving to a new program): one of them is enough', async () => {
    const store = d.path('vm-two-pins');
    const r = await boot(store, { pin: `${d.measurementHex('operator')}, ${server.measurementHex}` });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.contain('done: vhd/disk-1 api/token kept in');
    // Or repeated, as key-client takes them.
    const again = await boot(d.path('vm-two-pins-repeated'), { pin: d.measurementHex('operator'), extra: ['--server-measurement', server.measurementHex] });
    expect(again.status, again.stderr).to.equal(0);
  });

  it('retries a key-server that takes the connection and says nothing (stopped: TIMEOUT after --timeout, exit 3), and fetches every key once it goes on', async () => {
    const store = d.path('vm-stopped-server');
    const stopped = await d.startKeyServer(await d.certify('ks-stopped', 'key-server'));
    for (const [name, key] of Object.entries(keys)) expectSuccess(await d.kc(operator, stopped, 'store', [name, '--in', '-'], key));
    process.kill(stopped.child.pid, 'SIGSTOP');
    const vm = new Child('first-boot', spawn(join(ROOT, 'scripts', 'first-boot.sh'), bootArgs(store, { kport: stopped.port, pin: stopped.measurementHex, extra: ['--timeout', '1', '--max-delay', '1'], retries: 20 }), { stdio: ['ignore', 'pipe', 'pipe'] }));
    try {
      await vm.waitForLog(/retrieve from .*: the server unreachable or not answering in time \(attempt 1 of 20; the line above says which\)/, 0, 60_000);
    } finally {
      process.kill(stopped.child.pid, 'SIGCONT');
    }
    const { code } = await vm.exited;
    expect(code, vm.stderr).to.equal(0);
    expect(vm.stderr).to.contain('timed out after 1000 ms (--timeout 1)').and.contain('[TIMEOUT]').and.contain(`done: vhd/disk-1 api/token kept in ${store}`);
    for (const [name, key] of Object.entries(keys)) expect((await held(store, name)).equals(key), name).to.equal(true);
  });

  it('fetches every key when its key-server is killed as it reads the VM\'s handshake and is restarted: the close, which reads as a refusal, is asked again and found a hang-up', async () => {
    const store = d.path('vm-killed-server');
    const ks = await d.certify('ks-killed', 'key-server');
    const data = d.path('ks-killed-data');
    const armed = d.path('ks-killed-armed');
    // Killed (SIGKILL) once it has read the VM's whole side of the handshake: test/support/die-in-handshake.mjs.
    const dying = await d.startKeyServer(ks, { data, env: { NODE_OPTIONS: `--import=${join(ROOT, 'test/support/die-in-handshake.mjs')}`, DIE_IN_HANDSHAKE: 'finished', DIE_ARMED_FILE: armed } });
    for (const [name, key] of Object.entries(keys)) expectSuccess(await d.kc(operator, dying, 'store', [name, '--in', '-'], key));
    writeFileSync(armed, '');
    const vm = new Child('first-boot', spawn(join(ROOT, 'scripts', 'first-boot.sh'), bootArgs(store, { kport: dying.port, pin: dying.measurementHex, extra: ['--max-delay', '1'], retries: 20 }), { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect((await dying.child.exited).signal).to.equal('SIGKILL');
    await d.startKeyServer(ks, { data, listen: `127.0.0.1:${dying.port}` });
    const { code } = await vm.exited;
    expect(code, vm.stderr).to.equal(0);
    // key-client's second try finds nobody (exit 3, and first-boot tries again), or the restarted
    // server when it is up within the pause.
    expect(vm.stderr, vm.stderr).not.to.contain('refused our certificate').and.not.contain('not retrying');
    for (const [name, key] of Object.entries(keys)) expect((await held(store, name)).equals(key), name).to.equal(true);
  });

  it('takes --timeout only as its programs do (exit 2 before certifying)', async () => {
    const r = await boot(d.path('vm-bad-timeout'), { extra: ['--timeout', '0'] });
    expect(r.status, r.stderr).to.equal(2);
    expect(r.stderr).to.contain("option '--timeout <seconds>' argument '0' is invalid").and.not.contain('step 1/2');
  });

  it('takes --deadline only as key-client does (exit 2 before certifying)', async () => {
    const r = await boot(d.path('vm-bad-deadline'), { extra: ['--deadline', '0'] });
    expect(r.status, r.stderr).to.equal(2);
    expect(r.stderr).to.contain("option '--deadline <seconds>' argument '0' is invalid").and.not.contain('step 1/2');
  });

  it('gives each attempt of step 2 --deadline in all: a key-server answering each key just inside --timeout is cut off (DEADLINE, exit 3), tried again, and given up on by the script itself', async () => {
    const store = d.path('vm-slow-server');
    const slow = await scriptedKeyServer(await d.identity(await d.certify('ks-slow', 'key-server')), d.policyCert);
    const timers: NodeJS.Timeout[] = [];
    // Each answer 1.5 s after the one before on its connection: inside --timeout 2 each, 3 s for the two keys.
    const due = new WeakMap<object, number>();
    slow.script = (req, answer, socket) => {
      due.set(socket, (due.get(socket) ?? 0) + 1500);
      const entry = encode('cryptstore_entry', { type: 'binary-blob', tag: req.name, version: 1, blob: randomBytes(32), timeEntered: Buffer.from('2026-12-05T00:00:00Z'), exportable: true });
      timers.push(setTimeout(() => answer(succeeded(req.name, { data: entry })), due.get(socket)));
    };
    try {
      const r = await boot(store, { kport: slow.port, pin: d.measurementHex('key-server'), extra: ['--timeout', '2', '--deadline', '2', '--max-delay', '1'], retries: 2 });
      expect(r.status, r.stderr).to.equal(3);
      expect(r.stderr.match(/\[DEADLINE\]/g), r.stderr).to.have.length(2);
      // Its words fit key-client's line above them (DEADLINE: the server answered, too slowly), never "could not reach".
      expect(r.stderr).to.contain(`retrieve from 127.0.0.1:${slow.port}: the server still unreachable or not answering in time after 2 attempts (the line above says which); giving up`);
      expect(r.stderr).to.contain('(attempt 1 of 2; the line above says which); retrying in 1s').and.not.contain('could not reach').and.not.contain('server unreachable (');
      for (const name of Object.keys(keys)) expect((await held(store, name)).length, name).to.equal(0);
    } finally {
      timers.forEach(clearTimeout);
      await slow.close();
    }
  });

  it('run twice at once on one store: the second stops on the store\'s lock (STORE_LOCKED, exit 1), neither certifying nor fetching nor reporting success, and the first fetches every key', async () => {
    const store = d.path('vm-twice');
    // The first boot's key-client reaches the key-server through a relay that holds its
    // connection until the second boot has run: meanwhile it holds the store open.
    let pass = () => {};
    const passing = new Promise<void>((r) => (pass = r));
    let reached = () => {};
    const reaching = new Promise<void>((r) => (reached = r));
    const relay = createServer({ pauseOnConnect: true }, (from) => {
      reached();
      void passing.then(() => {
        const to = connect(server.port, '127.0.0.1');
        for (const [a, b] of [[from, to], [to, from]] as const) a.on('error', () => b.destroy()).pipe(b);
      });
    }).listen(0, '127.0.0.1');
    try {
      await new Promise((r) => relay.once('listening', r));
      const first = boot(store, { kport: (relay.address() as AddressInfo).port });
      await Promise.race([reaching, first.then((r) => { throw new Error(`the first boot ended before fetching: ${r.stderr}`); })]);
      const second = await boot(store);
      pass();
      expect(second.status, second.stderr).to.equal(1);
      expect(second.stderr).to.contain('STORE_LOCKED').and.contain('could not be opened (exit 1: see above); not certifying again over it').and.not.contain('step 1/2').and.not.contain('done:');
      const r = await first;
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.contain(`done: vhd/disk-1 api/token kept in ${store}`);
      for (const [name, key] of Object.entries(keys)) expect((await held(store, name)).equals(key), name).to.equal(true);
    } finally {
      pass();
      relay.close();
    }
  });

  it('stops (exit 4) on its sealed store after an image update (another measurement), saying in words what that means and how to go on; doing so certifies the new image', async () => {
    const store = d.path('vm-sealed');
    const measurement = d.path('measurement');
    copyFileSync(d.measurementFile('vm'), measurement);
    const sealedBoot = () => runScript('first-boot.sh', [
      '--host', '127.0.0.1', '--certifier-port', String(d.certifierPort), '--keyserver-port', String(server.port), '--keys', 'vhd/disk-1',
      '--domain', d.name, '--policy-cert', d.policyCertFile, '--store', store, '--platform-dir', d.platformDir, '--measurement-file', measurement,
      '--server-measurement', server.measurementHex, '--retries', '1',
    ]);
    expectSuccess(await sealedBoot());
    copyFileSync(d.measurementFile('operator'), measurement); // the new image: another measurement the policy trusts
    const r = await sealedBoot();
    expect(r.status, r.stderr).to.equal(4);
    expect(r.stderr, 'the error in words, not its JSON document').not.to.contain('{"ok"');
    expect(r.stderr).to.contain('wrong platform or measurement, or damaged metadata (a sealed store opens only on the platform, and under the measurement, it was sealed to: check --platform-dir and --measurement-file; a new image or program cannot open it, README "Upgrading") [WRONG_KEY]');
    expect(r.stderr).to.contain(`the cryptstore ${store} is sealed to another measurement`).and.contain('an image update changed the measurement');
    expect(r.stderr).not.to.contain('step 1/2');
    const mv = /move the store aside .* and run first-boot again: mv (\S+) (\S+)$/m.exec(r.stderr);
    expect(mv, r.stderr).not.to.equal(null);
    expect(mv![1]).to.equal(store);
    renameSync(mv![1]!, mv![2]!);
    const fresh = await sealedBoot();
    expect(fresh.status, fresh.stderr).to.equal(0);
    expect(fresh.stderr).to.contain('done: vhd/disk-1 kept in');
    const got = await run('cert-utility', ['get-item', '--tag', 'vhd/disk-1', '--out', '-', '--store', store, '--sealed', '--platform-dir', d.platformDir, '--measurement-file', measurement]);
    expect(got.stdout.equals(keys['vhd/disk-1'])).to.equal(true);
    expect(existsSync(mv![2]!), 'the earlier store kept').to.equal(true);
  });

  it('shows a key name holding a right-to-left override escaped in its own lines, never raw', async () => {
    const r = await boot(d.path('vm-odd'), { keys: 'vhd/disk-1 evil\u202ename' });
    expect(r.status, r.stderr).to.equal(1); // no such key on the key-server
    expect(r.stderr).to.contain("step 2/2: fetching vhd/disk-1 $'evil\\342\\200\\256name'");
    expect(r.stderr).not.to.contain('\u202e');
  });
});

describe('scripts/deployment-setup.sh', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  const f = (p: string) => join(tmp.dir, p);
  const setup = (args: string[]) => runScript('deployment-setup.sh', args, { cwd: tmp.dir });
  before(() => {
    tmp = tempDir('deployment-setup-');
    mkdirSync(f('x'));
    mkdirSync(f('y'));
    for (const p of ['app', 'x/prog', 'y/prog']) writeFileSync(f(p), `${p}\n`);
  });
  after(() => tmp.cleanup());

  it('checks every input before making any key: a missing program or two programs of one name leave nothing behind (exit 1)', async () => {
    for (const [measure, message] of [[['missing.program'], '--measure missing.program: no such readable file'], [['x/prog', 'y/prog'], 'two --measure files are named prog']] as const) {
      const r = await setup(['--dir', 'setup', '--domain', 'datica', ...measure.flatMap((m) => ['--measure', m])]);
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.contain(message);
      expect(existsSync(f('setup')), 'nothing made').to.equal(false);
    }
    // One of each command's refusals: what each flag takes is cert-utility's rule, tested with it
    // (test/cli/check-only.test.ts, test/cli/certification.test.ts).
    for (const bad of [
      ['--policy-days', '100000'], ['--trust-measurement', 'nothex'], ['--alg', 'ed25519'],
      ['--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:08:999'],
      // Given empty (a variable set to nothing), it was taken for not given: a policy without it.
      ['--snp-min-tcb', ''],
    ]) {
      const r = await setup(['--dir', 'setup', '--domain', 'datica', '--measure', 'app', ...bad]);
      expect(r.status, bad.join(' ')).to.equal(2);
      // cert-utility's own refusal, asked with --check-only of the command that would refuse it.
      expect(r.stderr, bad.join(' ')).to.match(/^cert-utility: error: .* \[USAGE\]\ndeployment-setup: cert-utility (generate-policy-key|make-policy) would not take the flags given \(above.*\); nothing made\n$/);
      expect(existsSync(f('setup')), 'nothing made').to.equal(false);
    }
    // A measurement named twice (make-policy refuses it) is found before any key is made, too.
    writeFileSync(f('app-copy'), 'app\n');
    const sha = createHash('sha256').update('app\n').digest('hex');
    for (const twice of [['--measure', 'app-copy'], ['--trust-measurement', sha.toUpperCase()]]) {
      const r = await setup(['--dir', 'setup', '--domain', 'datica', '--measure', 'app', ...twice]);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.contain(`cert-utility: error: --trust-measurement ${sha} is given twice: the policy would say it twice [USAGE]`);
      expect(r.stderr).to.contain("deployment-setup: cert-utility make-policy would not take the flags given (above; its --trust-measurement is each --trust-measurement and --measure file's measurement, its --days --policy-days); nothing made");
      expect(existsSync(f('setup')), 'nothing made').to.equal(false);
    }
    const empty = await setup(['--dir', '', '--domain', 'datica', '--measure', 'app']);
    expect(empty.status).to.equal(2);
    expect(empty.stderr).to.contain('deployment-setup: --dir is missing or empty');
    // An empty --measure is a usage mistake too (it read as a file that is not there, exit 1).
    const emptyMeasure = await setup(['--dir', 'setup', '--domain', 'datica', '--measure', 'app', '--measure', '']);
    expect(emptyMeasure.status, emptyMeasure.stderr).to.equal(2);
    expect(emptyMeasure.stderr).to.contain('deployment-setup: a --measure is empty');
    const flag = await setup(['--dir', 'setup', '--domain']);
    expect(flag.status).to.equal(2);
    expect(flag.stderr).to.contain('--domain needs a value').and.contain('usage: deployment-setup.sh');
    expect(flag.out, 'usage after a mistake: on stderr').to.equal('');
    expect((await setup(['--dir', 'setup', '--measure', 'app'])).status, 'no --domain').to.equal(2);
    expect(existsSync(f('setup')), 'nothing made').to.equal(false);
    // A setup cut short after its platform keys: found before a policy key is made beside them.
    for (const [made, message] of [['platform', 'already holds platform/platform-key.pem'], ['measurements', 'measurements/app.measurement exists']] as const) {
      rmSync(f('half'), { recursive: true, force: true });
      mkdirSync(f(`half/${made}`), { recursive: true });
      writeFileSync(f(made === 'platform' ? 'half/platform/platform-key.pem' : 'half/measurements/app.measurement'), 'from before\n');
      const half = await setup(['--dir', 'half', '--domain', 'datica', '--measure', 'app']);
      expect(half.status, made).to.equal(1);
      expect(half.stderr).to.contain(`${message}; not overwriting`);
      expect(existsSync(f('half/policy-key.pem')), 'no policy key made').to.equal(false);
    }
    const twice = await setup(['--dir', 'setup', '--dir', 'other', '--domain', 'datica', '--measure', 'app']);
    expect(twice.status).to.equal(2);
    expect(twice.stderr).to.contain('deployment-setup: --dir is given twice');
    expect(existsSync(f('setup')) || existsSync(f('other')), 'nothing made').to.equal(false);
    const help = await setup(['--help']);
    expect([help.status, help.stderr]).to.deep.equal([0, '']);
    expect(help.out).to.contain('usage: deployment-setup.sh');
  });

  it('refuses a bad --policy-days or --snp-min-tcb (exit 2) by make-policy\'s own rules before measuring anything (they were found only once every file was measured)', async () => {
    // cert-utility as it is, noting each command it is asked to run.
    const asked = f('asked-policy');
    const cu = f('noting-cert-utility.sh');
    writeFileSync(cu, `#!/bin/sh\necho "$1" >>'${asked}'\nexec "${process.execPath}" "${join(ROOT, 'cmd', 'bin', 'cert-utility.js')}" "$@"\n`, { mode: 0o755 });
    writeFileSync(f('app-days'), 'the program\n'); // not 'app', which the tests after this one measure
    const cases: [string[], string][] = [
      ...['0', '36601', '30d', ''].map((d): [string[], string] => [['--policy-days', d], `option '--days <n>' argument '${d}' is invalid. expected an integer from 1 to 36600`]),
      [['--snp-min-tcb', '1:2'], ''],
    ];
    for (const [flags, message] of cases) {
      rmSync(asked, { force: true });
      const r = await runScript('deployment-setup.sh', ['--dir', 'setup', '--domain', 'datica', '--measure', 'app-days', ...flags], { cwd: tmp.dir, env: { CERT_UTILITY: cu } });
      expect([r.status, r.out], flags.join(' ')).to.deep.equal([2, '']);
      if (message) expect(r.stderr).to.match(new RegExp(`^cert-utility: error: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\[USAGE\\]\n`));
      expect(r.stderr).to.match(/\ndeployment-setup: cert-utility make-policy would not take the flags given \(above; its --days is --policy-days, its --trust-measurement each --trust-measurement\); nothing made\n$/);
      expect(readFileSync(asked, 'utf8').split('\n'), 'nothing measured').to.deep.equal(['generate-policy-key', 'make-policy', '']);
      expect(existsSync(f('setup')), 'nothing made').to.equal(false);
    }
  });

  it('measures each file once, and asks make-policy --check-only once (before measuring) where no measurement is named twice: the measurement files are written from that one run (each file was measured again to write it, and the flags asked again)', async () => {
    const asked = f('asked-once');
    const cu = f('noting-cert-utility-once.sh');
    writeFileSync(cu, `#!/bin/sh\necho "$1" >>'${asked}'\nexec "${process.execPath}" "${join(ROOT, 'cmd', 'bin', 'cert-utility.js')}" "$@"\n`, { mode: 0o755 });
    // One measurement whose digest holds a zero byte (written as the byte, not cut short).
    let zero = 0;
    while (!createHash('sha256').update(`image ${zero}\n`).digest().includes(0)) zero++;
    writeFileSync(f('image-a'), `image ${zero}\n`);
    writeFileSync(f('image-b'), 'image b\n');
    const r = await runScript('deployment-setup.sh', ['--dir', 'once', '--domain', 'datica', '--measure', 'image-a', '--measure', 'image-b', '--trust-measurement', 'AB'.repeat(32)], { cwd: tmp.dir, env: { CERT_UTILITY: cu, KEY_SERVER: f('no-key-server') } });
    expect(r.status, r.stderr).to.equal(0);
    expect(readFileSync(asked, 'utf8').split('\n')).to.deep.equal(['generate-policy-key', 'make-policy', 'measure', 'generate-policy-key', 'generate-platform-keys', 'make-policy', '']);
    for (const image of ['image-a', 'image-b']) {
      const file = f(`once/measurements/${image}.measurement`);
      expect(readFileSync(file).equals(createHash('sha256').update(readFileSync(f(image))).digest()), image).to.equal(true);
      expect(statSync(file).mode & 0o777).to.equal(0o644);
      expect(r.stderr).to.contain(`deployment-setup: measured ${image}: ${createHash('sha256').update(readFileSync(f(image))).digest('hex')}\n`);
    }
    const policy = await run('cert-utility', ['print-policy', '--policy', 'once/policy.bin', '--policy-cert', 'once/policy-cert.pem'], { cwd: tmp.dir });
    for (const m of [...['image-a', 'image-b'].map((i) => createHash('sha256').update(readFileSync(f(i))).digest('hex')), 'ab'.repeat(32)]) expect(policy.out).to.contain(m);
  });

  it('refuses a --domain cert-utility would refuse (exit 2) by the same rule, before making anything', async () => {
    for (const domain of ['datica', 'd'.repeat(253), 'a.b_c-1', 'd'.repeat(254), '-datica', '.datica', 'dat ica', 'dat\u00e9ica', 'datica\n']) {
      // A missing program is found after the domain is checked: a domain taken goes on to it.
      const r = await setup(['--dir', 'setup', '--domain', domain, '--measure', 'missing.program']);
      if (domainProblem(domain)) {
        expect(r.status, domain).to.equal(2);
        expect(r.stderr).to.contain(`cert-utility: error: option '--domain <name>' argument '${domain.replace('\n', '\\u000a')}' is invalid. expected letters, digits, ".", "_" or "-" (at most 253, starting with a letter or digit) [USAGE]`);
        expect(r.stderr).to.contain('deployment-setup: cert-utility generate-policy-key would not take the flags given (above); nothing made');
      } else {
        expect(r.status, domain).to.equal(1);
        expect(r.stderr).to.contain('no such readable file');
      }
      expect(existsSync(f('setup')), 'nothing made').to.equal(false);
    }
    const r = await setup(['--dir', 'setup', '--domain', 'dat ica', '--measure', 'app']);
    expect(r.status, r.stderr).to.equal(2);
    expect(r.stderr).to.contain("argument 'dat ica' is invalid").and.not.contain('policy key and certificate');
    expect(existsSync(f('setup')), 'nothing made').to.equal(false);
    // A cert-utility that cannot run is named as such, not taken for a refusal of the flags.
    const missing = await runScript('deployment-setup.sh', ['--dir', 'setup', '--domain', 'datica', '--measure', 'app'], { cwd: tmp.dir, env: { CERT_UTILITY: f('no-such-cert-utility') } });
    expect(missing.status, missing.stderr).to.equal(127);
    expect(missing.stderr).to.contain(`deployment-setup: could not ask ${f('no-such-cert-utility')} to check the flags (exit 127, above; CERT_UTILITY names the program); nothing made`);
    expect(existsSync(f('setup')), 'nothing made').to.equal(false);
  });

  it('makes a private directory (0700, the policy key 0600) with the --alg and --policy-days asked for, prints commands quoting a path with a space, and never sets up over it', async () => {
    const r = await setup(['--dir', 'my setup', '--domain', 'datica', '--measure', 'app', '--alg', 'p384', '--policy-days', '30']);
    expect(r.status, r.stderr).to.equal(0);
    expect(statSync(f('my setup')).mode & 0o777).to.equal(0o700);
    expect(statSync(f('my setup/policy-key.pem')).mode & 0o777).to.equal(0o600);
    expect(new X509Certificate(readFileSync(f('my setup/policy-cert.pem'))).publicKey.asymmetricKeyDetails?.namedCurve).to.equal('secp384r1');
    const p = await run('cert-utility', ['print-policy', '--policy', 'my setup/policy.bin', '--policy-cert', 'my setup/policy-cert.pem'], { cwd: tmp.dir });
    const [, from, to] = /\[(\S+) \.\. (\S+)\]/.exec(p.out)!;
    expect((Date.parse(to!) - Date.parse(from!)) / 86_400_000).to.be.within(30, 30.1);
    expect(r.out).to.contain(`--policy-key ${tmp.dir}/my\\ setup/policy-key.pem `);
    const key = readFileSync(f('my setup/policy-key.pem'));
    const again = await setup(['--dir', 'my setup', '--domain', 'datica', '--measure', 'app']);
    expect(again.status).to.equal(1);
    // It says what to do instead: another directory, or the README's way to change this setup.
    expect(again.stderr).to.contain(`already holds a policy key; not overwriting. ${OTHER_SETUP}\n`);
    expect(readFileSync(f('my setup/policy-key.pem')).equals(key), 'the policy key kept').to.equal(true);
  });

  it('with standard error and output closed (2>&- >&-) makes the whole setup, where it stopped at its first line and removed what it had made', async () => {
    const r = await runScript({ path: '/bin/sh' }, ['-c', '"$@" 2>&- >&-', 'sh', join(ROOT, 'scripts', 'deployment-setup.sh'), '--dir', 'closed streams', '--domain', 'datica', '--measure', 'app'], { cwd: tmp.dir });
    expect(r.status).to.equal(0);
    expect(readdirSync(f('closed streams')).sort()).to.deep.equal(['measurements', 'platform', 'policy-cert.pem', 'policy-key.pem', 'policy.bin']);
  });

  it('under umask 000 leaves nothing it makes writable by others: measurements/ is 0755, and a folder above the directory too (they were 0777, where another user could replace a measurement, and the folder above made it refuse itself)', async () => {
    const r = await runScript({ path: '/bin/sh' }, ['-c', 'umask 000 && exec "$@"', 'sh', join(ROOT, 'scripts', 'deployment-setup.sh'), '--dir', 'open parent/open umask', '--domain', 'datica', '--measure', 'app'], { cwd: tmp.dir });
    expect(r.status, r.stderr).to.equal(0);
    expect(statSync(f('open parent')).mode & 0o777).to.equal(0o755);
    const modes = ['', '/measurements', '/measurements/app.measurement', '/platform', '/policy-key.pem', '/policy-cert.pem', '/policy.bin'].map((p) => `${p} ${(statSync(f(`open parent/open umask${p}`)).mode & 0o777).toString(8)}`);
    expect(modes).to.deep.equal([' 700', '/measurements 755', '/measurements/app.measurement 644', '/platform 700', '/policy-key.pem 600', '/policy-cert.pem 644', '/policy.bin 644']);
  });

  it('prints the README\'s next steps ready to paste: the measurement files it wrote, the key-server renewing through simpleserver and given the ACL it wrote (the key-client stores, the VM images only retrieve), the key-client storing keys', async () => {
    mkdirSync(f('progs'));
    for (const p of ['key-server.program', 'key-client.program', 'vm-image']) writeFileSync(f(`progs/${p}`), `${p}\n`);
    // A VM image measured elsewhere (a SEV-SNP launch digest) is one the ACL lets retrieve too.
    const snp = 'ab'.repeat(48);
    const r = await setup(['--dir', 'next steps', '--domain', 'datica', ...['key-server.program', 'key-client.program', 'vm-image'].flatMap((p) => ['--measure', `progs/${p}`]), '--trust-measurement', snp]);
    expect(r.status, r.stderr).to.equal(0);
    // The ACL was read by key-server check-acl, as serve --acl will read it, before the printout.
    expect(r.stderr).to.contain(`deployment-setup: wrote key-server's ACL: ${f('next steps')}/acl.json (key-server check-acl: ok: 2 rule(s))`);
    expect(r.out, 'no placeholder such as <key-server program>').not.to.match(/<[^>\n]*>/);
    const lines = r.out.split('\n');
    for (const p of ['key-server.program', 'key-client.program', 'vm-image']) expect(lines).to.include(`#   ${f('next steps')}/measurements/${p}.measurement`);
    const serve = lines.find((l) => l.startsWith('key-server serve '));
    expect(serve).to.contain(' --certifier 127.0.0.1:8123').and.contain('--measurement-file "$ks_measurement"').and.contain(' --acl "$acl"');
    // The server is started in a terminal of its own, where the variables it names are not set
    // (pasted there alone, it was refused an empty --measurement-file): the step says to set them.
    expect(lines.find((l) => l.startsWith('# 3. '))).to.contain('in a terminal of its own, where the variable lines above are pasted first');
    expect(lines.find((l) => l.includes('| key-client store '))).to.contain('--server-measurement "$ks_hex"').and.contain('--measurement-file "$kc_measurement"');
    // Step 5: first-boot.sh runs the suite's cert-utility and key-client, so the image holds the
    // suite (the script and common.sh alone stop at once), and the unit reads the key-server's
    // measurement from first-boot.env.
    const step5 = r.out.slice(r.out.indexOf('# 5. ')).replace(/\n#\s+/g, ' ');
    expect(step5).to.contain('the suite (in /opt/certifier-keys').and.contain('SERVER_MEASUREMENT=$ks_hex').and.contain('first-boot.env');
    // Pasted into a shell: the variables name the files written, and the key-server's
    // certification (its port put right) goes through against a simpleserver.
    const { child, port } = await startServer('simpleserver', ['serve', '--policy-key', f('next steps/policy-key.pem'), '--policy-cert', f('next steps/policy-cert.pem'), '--policy', f('next steps/policy.bin'), '--listen', '127.0.0.1:0']);
    try {
      const pasted = [
        ...['cert-utility', 'key-server'].map((p) => `${p}() { "${process.execPath}" "${join(ROOT, `cmd/bin/${p}.js`)}" "$@"; }`),
        ...lines.filter((l) => /^(ks_measurement|kc_measurement|ks_hex|acl)=/.test(l)),
        'echo "$ks_hex"',
        // The ACL it wrote, as key-server serve --acl would read it.
        'key-server check-acl "$acl"',
        lines.find((l) => l.startsWith('cert-utility init-trust ') && l.includes('keyserver-store'))!.replace('127.0.0.1:8123', `127.0.0.1:${port}`),
      ].join('\n');
      const sh = await runScript({ path: '/bin/bash' }, ['-eu', '-c', pasted], { cwd: tmp.dir });
      expect(sh.status, sh.stderr).to.equal(0);
      expect(sh.out.split('\n')[0]).to.equal(createHash('sha256').update('key-server.program\n').digest('hex'));
      expect(sh.out.split('\n')[1]).to.equal('ok: 2 rule(s)');
      expect(existsSync(f('next steps/keyserver-store')), 'the key-server certified into its store').to.equal(true);
    } finally {
      await child.stop();
    }
    // The key-client's measurement may store every key, the VM image's only retrieve them, the key-server's nothing.
    const acl = parseAcl(readFileSync(f('next steps/acl.json'), 'utf8'));
    const by = (p: string) => ({ measurementHex: p === snp ? snp : createHash('sha256').update(`${p}\n`).digest('hex'), serialHex: '1', roles: [] });
    const allowed = (p: string) => ACL_ACTIONS.filter((action) => decide(acl, { action, resource: action === 'list' ? '' : 'vhd/disk-1' }, by(p)).allow);
    expect(['key-client.program', 'vm-image', snp, 'key-server.program'].map(allowed)).to.deep.equal([['store', 'retrieve', 'delete', 'list'], ['retrieve'], ['retrieve'], []]);
    // A program not named like key-server or key-client: the variable is left empty to set, never a
    // guess, and no ACL is written (whose measurement may store is not known) but key-server is
    // still given --acl, which it refuses empty, under a line saying why.
    const unnamed = await setup(['--dir', 'unnamed', '--domain', 'datica', '--measure', 'app']);
    expect(unnamed.out.split('\n')).to.include('ks_measurement=').and.include('kc_measurement=').and.include('acl=');
    expect(unnamed.out).to.contain('# No ACL written: not exactly one --measure file\'s name holds "key-client"');
    expect(unnamed.out.split('\n').find((l) => l.startsWith('key-server serve '))).to.contain(' --acl "$acl"');
    expect(existsSync(f('unnamed/acl.json'))).to.equal(false);
  });

  it('stops at the first step that fails, printing no next commands, rather than reporting the machine ready', async () => {
    mkdirSync(f('blocked'));
    writeFileSync(f('blocked/platform'), 'a file where the platform keys would go\n');
    const r = await setup(['--dir', 'blocked', '--domain', 'datica', '--measure', 'app']);
    expect(r.status, r.stderr).not.to.equal(0);
    expect(r.out).to.equal('');
    expect(existsSync(f('blocked/policy.bin')), 'no policy signed').to.equal(false);
    // What the run made is gone (the policy key above all), what was there stays, and once the
    // cause is mended a new run goes through rather than refusing a half setup.
    expect(r.stderr).to.contain('removed what this run had made');
    expect(readdirSync(f('blocked')).sort()).to.deep.equal(['platform']);
    rmSync(f('blocked/platform'));
    const again = await setup(['--dir', 'blocked', '--domain', 'datica', '--measure', 'app']);
    expect(again.status, again.stderr).to.equal(0);
    expect(readdirSync(f('blocked')).sort()).to.deep.equal(['measurements', 'platform', 'policy-cert.pem', 'policy-key.pem', 'policy.bin']);
  });

  it('removes the directory it made, policy key and all, when its last step fails', async () => {
    // cert-utility as it is, except that signing the policy fails (a full disk, say); checking its flags does not.
    const cu = f('failing-make-policy.sh');
    writeFileSync(cu, `#!/bin/sh\n[ "$1" = make-policy ] && [ "$2" != --check-only ] && { echo "make-policy: no space left" >&2; exit 1; }\nexec "${process.execPath}" "${join(ROOT, 'cmd', 'bin', 'cert-utility.js')}" "$@"\n`, { mode: 0o755 });
    const r = await runScript('deployment-setup.sh', ['--dir', 'fresh/deploy', '--domain', 'datica', '--measure', 'app'], { cwd: tmp.dir, env: { CERT_UTILITY: cu } });
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.contain('make-policy: no space left').and.contain('removed what this run had made');
    expect(readdirSync(f('fresh')), 'its directory gone, the parent mkdir -p made left').to.deep.equal([]);
  });

  it('stops (exit 1) when key-server check-acl refuses the ACL it wrote, printing no commands and removing what it made, never what was there', async () => {
    const progs = ['key-server.program', 'key-client.program', 'vm-image'];
    mkdirSync(f('acl-progs'));
    for (const p of progs) writeFileSync(f(`acl-progs/${p}`), `${p}\n`);
    const measure = progs.flatMap((p) => ['--measure', `acl-progs/${p}`]);
    // key-server as it is, handed an ACL broken as a fault of the writer would break it: a rule
    // naming nobody, which the real check-acl then refuses.
    const breaking = f('breaking-key-server.sh');
    writeFileSync(breaking, `#!/bin/sh\n[ "$1" = check-acl ] && printf '{ "version": 1, "rules": [{ "resources": ["**"], "actions": ["retrieve"] }] }\\n' >"$2"\nexec "${process.execPath}" "${join(ROOT, 'cmd', 'bin', 'key-server.js')}" "$@"\n`, { mode: 0o755 });
    mkdirSync(f('operator-dir'), { mode: 0o700 });
    writeFileSync(f('operator-dir/notes.txt'), 'the operator\'s own\n');
    const r = await runScript('deployment-setup.sh', ['--dir', 'operator-dir', '--domain', 'datica', ...measure], { cwd: tmp.dir, env: { KEY_SERVER: breaking } });
    expect(r.status, r.stderr).to.equal(1);
    expect(r.out, 'no commands printed').to.equal('');
    expect(r.stderr).to.match(/key-server: error: invalid ACL: rules\[0\] names no measurements, subjects or roles.* \[INVALID_INPUT\]\n/);
    expect(r.stderr).to.contain(`deployment-setup: key-server check-acl refuses the ACL this run wrote, ${f('operator-dir')}/acl.json (above), as serve --acl would`);
    expect(r.stderr).to.contain('removed what this run had made');
    expect(readdirSync(f('operator-dir')), 'what was there kept, what it made removed').to.deep.equal(['notes.txt']);
    // A key-server that cannot run is named as such, not taken for a refusal.
    const missing = await runScript('deployment-setup.sh', ['--dir', 'operator-dir', '--domain', 'datica', ...measure], { cwd: tmp.dir, env: { KEY_SERVER: f('no-such-key-server') } });
    expect(missing.status, missing.stderr).to.equal(127);
    expect(missing.stderr).to.contain(`deployment-setup: could not ask ${f('no-such-key-server')} to check the ACL this run wrote (exit 127, above; KEY_SERVER names the program)`);
    expect(readdirSync(f('operator-dir'))).to.deep.equal(['notes.txt']);
  });

  it('two runs at once in one directory: one makes the setup, the other stops (exit 1) and removes nothing of it', async () => {
    for (let i = 0; i < 20; i++) writeFileSync(f(`many-${i}`), `program ${i}\n`);
    const many = Array.from({ length: 20 }, (_, i) => ['--measure', `many-${i}`]).flat();
    for (const [k, other] of [['a', ['--measure', 'app']], ['b', many]] as const) {
      const dir = `together-${k}`;
      const [one, two] = await Promise.all([setup(['--dir', dir, '--domain', 'datica', '--measure', 'app']), setup(['--dir', dir, '--domain', 'datica', ...other])]);
      const runs = [one, two];
      expect(runs.map((r) => r.status).sort(), runs.map((r) => r.stderr).join('\n')).to.deep.equal([0, 1]);
      const lost = runs.find((r) => r.status === 1)!;
      expect(lost.stderr).to.match(/another deployment-setup is running in|already holds a policy key/);
      expect(readdirSync(f(dir)).sort()).to.deep.equal(['measurements', 'platform', 'policy-cert.pem', 'policy-key.pem', 'policy.bin']);
      expect(readdirSync(f(`${dir}/platform`)).sort()).to.deep.equal(['attest-key.pem', 'endorsement.bin', 'platform-cert.pem', 'platform-key.pem']);
      const p = await run('cert-utility', ['print-policy', '--policy', `${dir}/policy.bin`, '--policy-cert', `${dir}/policy-cert.pem`], { cwd: tmp.dir });
      expect(p.status, p.stderr).to.equal(0);
    }
  });

  it('a run that made the directory but finds another holding it stops, removing nothing: the other finishes', async () => {
    // Stand-ins for a busy machine's scheduling: A makes the directory, then takes the lock only
    // once B, started once the directory is there, has taken it (B's checks before it, programs
    // each, take longer than any fixed delay on a loaded machine); B is then slow to go on.
    const slow = (name: string, tools: Record<string, string>) => {
      mkdirSync(f(name), { recursive: true });
      for (const [tool, before] of Object.entries(tools)) {
        const real = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
        writeFileSync(f(`${name}/${tool}`), `#!/bin/sh\n${before}\nexec ${real} "$@"\n`, { mode: 0o755 });
      }
      return { PATH: `${f(name)}:${process.env.PATH}` };
    };
    const dir = f('raced/setup');
    const locked = f('raced-b-locks'); // B is taking the lock
    const waitForB = `i=0; while [ ! -e '${locked}' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done; sleep 0.2`;
    const a = runScript('deployment-setup.sh', ['--dir', dir, '--domain', 'datica', '--measure', 'app'], { cwd: tmp.dir, env: slow('slow-a', { flock: waitForB }) });
    while (!existsSync(dir)) await new Promise((r) => setTimeout(r, 10));
    const b = runScript('deployment-setup.sh', ['--dir', dir, '--domain', 'datica', '--measure', 'app'], { cwd: tmp.dir, env: slow('slow-b', { flock: `touch '${locked}'`, mkdir: 'sleep 2' }) });
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.status, ra.stderr).to.equal(1);
    expect(ra.stderr).to.contain('another deployment-setup is running in').and.not.contain('removed what this run had made');
    expect(rb.status, rb.stderr).to.equal(0);
    expect(readdirSync(dir).sort()).to.deep.equal(['measurements', 'platform', 'policy-cert.pem', 'policy-key.pem', 'policy.bin']);
  });

  it('refuses what could turn its printout into commands, or let another user into the setup, and never removes a file it did not make', async () => {
    // A newline in --dir or in a measured file's name would end a comment line of the printout
    // and start a command when it is pasted.
    const nl = await setup(['--dir', 'd1\ntouch INJECTED #', '--domain', 'datica', '--measure', 'app']);
    expect(nl.status, nl.stderr).to.equal(2);
    expect(nl.stderr).to.contain('--dir holds a control character');
    writeFileSync(f('vm\ntouch INJECTED2 #'), 'x');
    const named = await setup(['--dir', 'd2', '--domain', 'datica', '--measure', 'app', '--measure', f('vm\ntouch INJECTED2 #')]);
    expect(named.status, named.stderr).to.equal(2);
    expect(named.stderr).to.contain('a --measure file name holds a control character');
    expect(existsSync(f('d2')), 'nothing made').to.equal(false);
    // A directory others may write in: they could put their platform key where the policy trusts it.
    mkdirSync(f('shared'), { mode: 0o777 });
    chmodSync(f('shared'), 0o777);
    const shared = await setup(['--dir', 'shared', '--domain', 'datica', '--measure', 'app']);
    expect(shared.status, shared.stderr).to.equal(1);
    expect(shared.stderr).to.contain('is writable by others (mode 0777)');
    expect(readdirSync(f('shared'))).to.deep.equal([]);
    // Another user's: a symbolic link they could point elsewhere, or a directory above it they could
    // put another in place of. (Run as root, as CI runs: uid 65534 stands for the other user.)
    if (process.getuid?.() === 0) {
      mkdirSync(f('mine'), { mode: 0o700 });
      symlinkSync(f('mine'), f('their-link'));
      lchownSync(f('their-link'), 65534, 65534);
      const link = await setup(['--dir', 'their-link', '--domain', 'datica', '--measure', 'app']);
      expect(link.status, link.stderr).to.equal(1);
      expect(link.stderr).to.contain('is a symbolic link of another user\'s');
      mkdirSync(f('theirs'));
      chownSync(f('theirs'), 65534, 65534);
      const above = await setup(['--dir', 'theirs/setup', '--domain', 'datica', '--measure', 'app']);
      expect(above.status, above.stderr).to.equal(1);
      expect(above.stderr).to.contain(`${f('theirs')}, above theirs/setup, belongs to another user (uid 65534)`);
      expect(readdirSync(f('theirs')), 'the directory it made removed again').to.deep.equal([]);
    }
    // Something not a directory where the measurements go: refused, and kept.
    mkdirSync(f('has-file'));
    writeFileSync(f('has-file/measurements'), 'precious');
    const file = await setup(['--dir', 'has-file', '--domain', 'datica', '--measure', 'app']);
    expect(file.status, file.stderr).to.equal(1);
    expect(readFileSync(f('has-file/measurements'), 'utf8')).to.equal('precious');
    // A FIFO is no directory (and is not waited on).
    execFileSync('mkfifo', [f('fifo')]);
    const fifo = await setup(['--dir', 'fifo', '--domain', 'datica', '--measure', 'app']);
    expect(fifo.status, fifo.stderr).to.equal(1);
    expect(fifo.stderr).to.contain('cannot use fifo as the setup directory: it is not a directory');
    // A policy certificate already there is refused before anything, and kept.
    mkdirSync(f('has-cert'));
    writeFileSync(f('has-cert/policy-cert.pem'), 'an earlier certificate');
    const cert = await setup(['--dir', 'has-cert', '--domain', 'datica', '--measure', 'app']);
    expect(cert.status, cert.stderr).to.equal(1);
    expect(cert.stderr).to.contain('already holds policy-cert.pem; not overwriting');
    expect(readFileSync(f('has-cert/policy-cert.pem'), 'utf8')).to.equal('an earlier certificate');
    // So is an ACL already there, which the setup would write.
    mkdirSync(f('has-acl'));
    writeFileSync(f('has-acl/acl.json'), 'an earlier ACL');
    const acl = await setup(['--dir', 'has-acl', '--domain', 'datica', '--measure', 'app']);
    expect([acl.status, acl.stderr]).to.deep.equal([1, `deployment-setup: has-acl already holds acl.json; not overwriting. ${OTHER_SETUP}\n`]);
    expect(readdirSync(f('has-acl'))).to.deep.equal(['acl.json']);
    // A file named like a flag is measured as a file.
    writeFileSync(f('-k.pem'), 'dash');
    const dash = await setup(['--dir', '-dashdir', '--domain', 'datica', '--measure', '-k.pem']);
    expect(dash.status, dash.stderr).to.equal(0);
    expect(readdirSync(f('-dashdir/measurements'))).to.deep.equal(['-k.pem.measurement']);
    // The printout names the directory by its absolute path: it is pasted elsewhere.
    expect(dash.out).to.contain(`--policy-cert ${f('-dashdir')}/policy-cert.pem`);
  });

  it('writes a policy for SEV-SNP VMs with --trust-amd-root and --snp-min-tcb, which go together', async () => {
    const alone = await setup(['--dir', 'snp', '--domain', 'datica', '--measure', 'app', '--trust-amd-root', 'milan']);
    expect(alone.status).to.equal(2);
    expect(alone.stderr).to.contain('cert-utility: error: trusting an AMD root needs --snp-min-tcb');
    // 255 is the highest a TCB part goes, and 08 is eight (bash's arithmetic would take it for bad octal).
    const r = await setup(['--dir', 'snp', '--domain', 'datica', '--measure', 'app', '--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:08:255', '--trust-measurement', 'ab'.repeat(48)]);
    expect(r.status, r.stderr).to.equal(0);
    const p = await run('cert-utility', ['print-policy', '--policy', 'snp/policy.bin', '--policy-cert', 'snp/policy-cert.pem'], { cwd: tmp.dir });
    // LAUNCH_TCB held to the minimum too, in the same claim; make-policy's printout (on stderr) as print-policy's.
    const held = 'tcb-snp >= 8, tcb-microcode >= 255, launch-tcb-bootloader >= 3, launch-tcb-tee >= 0, launch-tcb-snp >= 8, launch-tcb-microcode >= 255]';
    expect(p.out).to.contain('platform[amd-sev-snp, ARK-Milan').and.to.contain(held).and.to.contain(`measurement:${'ab'.repeat(48)} is-trusted`);
    expect(r.stderr).to.contain(held);
    expect(p.out, 'the --measure program trusted too').to.contain(`measurement:${createHash('sha256').update('app\n').digest('hex')} is-trusted`);
  });

  it('takes --snp-min-tcb once in each form for a fleet of Milan and Turin machines (make-policy refuses a form given twice)', async () => {
    const snp = ['--domain', 'datica', '--measure', 'app', '--trust-amd-root', 'milan', '--trust-amd-root', 'turin', '--trust-measurement', 'ab'.repeat(48), '--snp-min-tcb', '3:0:8:115'];
    const twice = await setup(['--dir', 'snp-twice', ...snp, '--snp-min-tcb', '3:0:8:116']);
    expect(twice.status).to.equal(2);
    expect(twice.stderr).to.contain('cert-utility: error: option \'--snp-min-tcb <bl:tee:snp:ucode|turin=fmc:bl:tee:snp:ucode>\' argument \'3:0:8:116\' is invalid. the family 19h minimum (Milan, Genoa) is given twice');
    const r = await setup(['--dir', 'snp-both', ...snp, '--snp-min-tcb', 'turin=0:1:0:2:71']);
    expect(r.status, r.stderr).to.equal(0);
    const p = await run('cert-utility', ['print-policy', '--policy', 'snp-both/policy.bin', '--policy-cert', 'snp-both/policy-cert.pem'], { cwd: tmp.dir });
    expect(p.out).to.contain('vmpl = 0, tcb-bootloader >= 3, tcb-tee >= 0, tcb-snp >= 8, tcb-microcode >= 115, launch-tcb-bootloader >= 3, launch-tcb-tee >= 0, launch-tcb-snp >= 8, launch-tcb-microcode >= 115]')
      .and.contain('vmpl = 0, tcb-fmc >= 0, tcb-bootloader >= 1, tcb-tee >= 0, tcb-snp >= 2, tcb-microcode >= 71, launch-tcb-fmc >= 0, launch-tcb-bootloader >= 1, launch-tcb-tee >= 0, launch-tcb-snp >= 2, launch-tcb-microcode >= 71]');
  });

  it('passes --snp-property on to make-policy: a LAUNCH_TCB minimum for one product of a mixed fleet, checked before anything is made', async () => {
    const snp = ['--domain', 'datica', '--measure', 'app', '--trust-amd-root', 'milan', '--trust-amd-root', 'turin', '--trust-measurement', 'ab'.repeat(48), '--snp-min-tcb', '3:0:8:115', '--snp-min-tcb', 'turin=0:1:0:2:71'];
    const bare = await setup(['--dir', 'snp-bare', ...snp, '--snp-property', 'launch-tcb-snp>=2']);
    expect(bare.status, bare.stderr).to.equal(2);
    expect(bare.stderr).to.match(/cert-utility: error: .*turin:launch-tcb-snp/);
    expect(existsSync(f('snp-bare')), 'nothing made').to.equal(false);
    const r = await setup(['--dir', 'snp-prop', ...snp, '--snp-property', 'turin:launch-tcb-snp>=2']);
    expect(r.status, r.stderr).to.equal(0);
    const p = await run('cert-utility', ['print-policy', '--policy', 'snp-prop/policy.bin', '--policy-cert', 'snp-prop/policy-cert.pem'], { cwd: tmp.dir });
    const claims = p.out.split('\n').filter((l) => l.includes('platform[amd-sev-snp'));
    expect(claims.filter((l) => l.includes('launch-tcb-snp >= 2')), p.out).to.have.length(1);
    expect(claims.find((l) => l.includes('launch-tcb-snp >= 2'))).to.contain('tcb-fmc >= 0');
  });

  it('passes --snp-any-launch-tcb on to make-policy, a flag without a value (last, or given twice): no LAUNCH_TCB minimums, and make-policy\'s warning', async () => {
    const snp = ['--domain', 'datica', '--measure', 'app', '--trust-amd-root', 'milan', '--trust-measurement', 'ab'.repeat(48), '--snp-min-tcb', '3:0:8:115'];
    const r = await setup(['--dir', 'snp-any', ...snp, '--snp-any-launch-tcb', '--snp-any-launch-tcb']);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/^cert-utility: warning: --snp-any-launch-tcb: /m).and.contain('tcb-microcode >= 115]');
    const p = await run('cert-utility', ['print-policy', '--policy', 'snp-any/policy.bin', '--policy-cert', 'snp-any/policy-cert.pem'], { cwd: tmp.dir });
    expect(p.out).to.contain('tcb-microcode >= 115]').and.not.contain('launch-tcb');
    // A level below the minimum is refused before anything is made, and taken beside it.
    const low = await setup(['--dir', 'snp-low', ...snp, '--snp-property', 'launch-tcb-snp>=7']);
    expect(low.status, low.stderr).to.equal(2);
    expect(low.stderr).to.contain('--snp-any-launch-tcb');
    expect(existsSync(f('snp-low')), 'nothing made').to.equal(false);
    expect((await setup(['--dir', 'snp-low', ...snp, '--snp-property', 'launch-tcb-snp>=7', '--snp-any-launch-tcb'])).status).to.equal(0);
  });
});

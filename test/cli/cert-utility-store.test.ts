// Transcript tests of cert-utility's cryptstore commands: the real program, a temporary
// directory, exit status, stdout and stderr. Unhappy paths first.

import { expect } from 'chai';
import { chmodSync, chownSync, closeSync, cpSync, existsSync, mkdirSync, readdirSync, openSync, promises as fs, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { exportPublicKey, fromKeyMessage, keyAlgOf, randomBytes, utf8 } from '../../lib/crypto/index.ts';
import { decode, type KeyMessage } from '../../lib/wire/index.ts';
import { Cryptstore, PassphraseProtector, sealBundle } from '../../cryptstore/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { ROOT, VECTORS, closedPort, linkToDeep, run, runScript, supportScript, tempDir, type RunResult } from '../support/helpers.ts';

const CHEAP = ['--scrypt-log-n', '10'];
const PASSPHRASE = 'correct horse battery staple\n';

function expectFailure(r: RunResult, status: number, code: string): void {
  expect(r.status, r.stderr).to.equal(status);
  expect(r.stderr).to.contain(`[${code}]`);
  expect(r.stderr).to.match(/^cert-utility: error: /m);
  expect(r.stderr, 'no stack trace').not.to.match(/\n\s+at /);
  expect(r.out).to.equal('');
}

describe('cert-utility store commands (transcripts)', function () {
  let tmp: ReturnType<typeof tempDir>;
  let store: string;
  let passFile: string;
  const cu = (args: string[], options: Parameters<typeof run>[2] = {}) => run('cert-utility', args, { cwd: tmp.dir, ...options });
  const withPass = (...args: string[]) => [...args, '--store', store, '--passphrase-file', passFile];

  beforeEach(() => {
    tmp = tempDir();
    store = join(tmp.dir, 'store');
    passFile = join(tmp.dir, 'pass.txt');
    writeFileSync(passFile, PASSPHRASE, { mode: 0o600 });
  });
  afterEach(() => tmp.cleanup());

  /**
   * The store every test of a describe begins with, made once by `make` (cert-utility in a folder
   * of its own, with the same passphrase) and copied into each test's folder before the test:
   * a test changes only its copy, and the describe runs cert-utility once or twice, not per test.
   */
  const storeMadeOnce = (make: (cuMade: (...args: string[]) => Promise<RunResult>, dir: string) => Promise<void>) => {
    let made: ReturnType<typeof tempDir> | undefined;
    before(async () => {
      made = tempDir();
      writeFileSync(join(made.dir, 'pass.txt'), PASSPHRASE, { mode: 0o600 });
      await make((...args) => run('cert-utility', [...args, '--store', join(made!.dir, 'store'), '--passphrase-file', join(made!.dir, 'pass.txt')], { cwd: made!.dir }), made.dir);
    });
    after(() => made?.cleanup());
    beforeEach(() => cpSync(join(made!.dir, 'store'), store, { recursive: true }));
  };

  it('makes a passphrase store at the cost the threat model gives by default: scrypt N = 2^17, r = 8, p = 1', async () => {
    const r = await cu([...withPass('create-store'), '--json']);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.json().store.protection).to.deep.equal({ kind: 'passphrase', scrypt: { logN: 17, r: 8, p: 1 } });
    expect(r.stderr).not.to.contain('weak');
  });

  it('warns of a --scrypt-log-n below 15, and not of 15', async () => {
    const low = await cu(withPass('create-store', '--scrypt-log-n', '14'));
    expect(low.status, low.stderr).to.equal(0);
    expect(low.stderr).to.contain('scrypt cost 2^14 is weak');
    const fifteen = await cu(['create-store', '--store', join(tmp.dir, 'other'), '--passphrase-file', passFile, '--scrypt-log-n', '15']);
    expect(fifteen.status, fifteen.stderr).to.equal(0);
    expect(fifteen.stderr).not.to.contain('weak');
  });

  describe('usage errors (exit 2)', () => {
    it('prints help on stderr and exits 2 without a command', async () => {
      const r = await cu([]);
      expect(r.status).to.equal(2);
      expect(r.stderr).to.contain('Usage: cert-utility');
    });

    it('names a missing required option', async () => {
      expectFailure(await cu(['get-item', '--store', store, '--out', '-']), 2, 'USAGE');
    });

    it('refuses a version that is not a number', async () => {
      const r = await cu(withPass('get-item', '--tag', 'k', '--version', 'latest', '--out', '-'));
      expectFailure(r, 2, 'USAGE');
      expect(r.stderr).to.contain('version');
    });

    it('refuses to run without a passphrase or key and says how to give one', async () => {
      const r = await cu(['create-store', '--store', store]);
      expectFailure(r, 2, 'USAGE');
      expect(r.stderr).to.contain('CRYPTSTORE_PASSPHRASE');
    });

    it('says of an empty CRYPTSTORE_PASSPHRASE that it is set but empty, not to set it', async () => {
      const r = await cu(['create-store', '--store', store], { env: { CRYPTSTORE_PASSPHRASE: '' } });
      expectFailure(r, 2, 'USAGE');
      expect(r.stderr).to.contain('CRYPTSTORE_PASSPHRASE is set but empty').and.not.contain('or set CRYPTSTORE_PASSPHRASE');
    });

    it('refuses two ways of unlocking a store at once: a passphrase file and a key file, or either with --sealed', async () => {
      for (const args of [withPass('create-store', '--key-file', passFile), withPass('list-items', '--sealed'), ['list-items', '--store', store, '--key-file', passFile, '--sealed']]) {
        const r = await cu(args);
        expectFailure(r, 2, 'USAGE');
        expect(r.stderr, args.join(' ')).to.contain('give one of --passphrase-file, --key-file or --sealed');
      }
    });

    it('refuses --scrypt-log-n where no key is derived from a passphrase (a key file), rather than ignoring it', async () => {
      for (const args of [['create-store', '--store', store, '--key-file', passFile, ...CHEAP], withPass('rekey-store', '--new-key-file', 'nk', ...CHEAP)]) {
        const r = await cu(args);
        expectFailure(r, 2, 'USAGE');
        expect(r.stderr).to.contain('--scrypt-log-n sets the cost of deriving a key from a passphrase');
      }
      expect(existsSync(store)).to.equal(false);
    });

    it('warns of a key file or passphrase file every user can read (as ssh would refuse it), and not of one only its group reads', async () => {
      writeFileSync(join(tmp.dir, 'shared.key'), Buffer.alloc(32, 7), { mode: 0o644 });
      chmodSync(join(tmp.dir, 'shared.key'), 0o644);
      const shared = await cu(['create-store', '--store', join(tmp.dir, 'shared-store'), '--key-file', join(tmp.dir, 'shared.key')]);
      expect(shared.status, shared.stderr).to.equal(0);
      expect(shared.stderr).to.contain(`warning: the key file ${join(tmp.dir, 'shared.key')} can be read by every user of the machine (mode 0644): chmod 600`);
      chmodSync(join(tmp.dir, 'shared.key'), 0o640); // a group that reads it: a layout of its own
      const own = await cu(['list-items', '--store', join(tmp.dir, 'shared-store'), '--key-file', join(tmp.dir, 'shared.key')]);
      expect(own.status, own.stderr).to.equal(0);
      expect(own.stderr).to.equal('');
    });

    it('warns of a passphrase file its group can change (0620), a key file every user can change (0602) and a policy key every user can read (0604), each named with its mode', async () => {
      const [pass, key, policyKey] = ['group.pass', 'world.key', 'policy-key.pem'].map((f) => join(tmp.dir, f));
      writeFileSync(pass!, 'a passphrase\n');
      writeFileSync(key!, Buffer.alloc(32, 5));
      const made = await cu(['generate-policy-key', '--domain', 'd', '--key-out', policyKey!, '--cert-out', 'policy-cert.pem']);
      expect(made.status, made.stderr).to.equal(0);
      writeFileSync(join(tmp.dir, 'role.pub.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));
      chmodSync(pass!, 0o620);
      chmodSync(key!, 0o602);
      chmodSync(policyKey!, 0o604);
      const [byPass, byKey, role] = await Promise.all([
        cu(['create-store', '--store', join(tmp.dir, 'pass-store'), '--passphrase-file', pass!, ...CHEAP]),
        cu(['create-store', '--store', join(tmp.dir, 'key-store'), '--key-file', key!]),
        cu(['issue-role-cert', '--policy-key', policyKey!, '--policy-cert', 'policy-cert.pem', '--public-key', 'role.pub.pem', '--role', 'operator', '--out', 'role.pem']),
      ]);
      for (const r of [byPass, byKey, role]) expect(r.status, r.stderr).to.equal(0);
      expect(byPass.stderr).to.contain(`cert-utility: warning: the passphrase file ${pass} can be changed by its group (mode 0620): chmod 600 ${pass} (or 640 for a group that reads it)\n`);
      expect(byKey.stderr).to.contain(`cert-utility: warning: the key file ${key} can be changed by every user of the machine (mode 0602): chmod 600 ${key}`);
      expect(role.stderr).to.contain(`cert-utility: warning: the private key ${policyKey} can be read by every user of the machine (mode 0604): chmod 600 ${policyKey}`);
    });

    it('refuses an unknown --type and an unknown --alg', async () => {
      expectFailure(await cu(withPass('put-item', '--tag', 'k', '--type', 'pdf', '--in', passFile)), 2, 'USAGE');
      expectFailure(await cu(withPass('generate-key', '--tag', 'k', '--alg', 'des')), 2, 'USAGE');
    });

    it('reports usage errors as JSON under --json', async () => {
      const r = await cu(['get-item', '--store', store, '--json']);
      expect(r.status).to.equal(2);
      expect(r.json()).to.deep.include({ ok: false });
      expect(r.json().error.code).to.equal('USAGE');
    });
  });

  describe('operation failures (exit 1) and integrity failures (exit 4)', () => {
    it('reports a store that does not exist with STORE_NOT_FOUND', async () => {
      expectFailure(await cu(withPass('list-items')), 1, 'STORE_NOT_FOUND');
    });

    it('says in words why a file cannot be read or a store made, without Node\'s raw error', async () => {
      mkdirSync(join(tmp.dir, 'adir'));
      writeFileSync(join(tmp.dir, 'unreadable'), 'x', { mode: 0o000 });
      const cases: [string[], string][] = [
        [['measure', 'missing'], 'cannot read missing: no such file'],
        [['measure', 'adir'], 'cannot read adir: is a directory'],
        [withPass('create-store', ...CHEAP).map((a) => (a === store ? 'dangling' : a)), 'cannot create the cryptstore directory dangling: it is a symbolic link to nowhere, which does not exist'],
      ];
      // root reads any file
      if (process.getuid?.() !== 0) cases.push([['measure', 'unreadable'], 'cannot read unreadable: permission denied']);
      symlinkSync('nowhere', join(tmp.dir, 'dangling'));
      for (const [args, message] of cases) {
        const r = await cu(args);
        expectFailure(r, 1, 'FILE_ERROR');
        expect(r.stderr).to.contain(message).and.not.match(/E[A-Z]+:/);
      }
    });

    it('create-store and init-trust say which name on the way is a file where a store\'s directory cannot be made (FILE_ERROR), not that the store exists; nothing is made', async () => {
      writeFileSync(join(tmp.dir, 'afile'), 'x');
      expect((await cu(['generate-platform-keys', '--out-dir', 'plat'])).status).to.equal(0);
      expect((await cu(['generate-policy-key', '--domain', 'd', '--key-out', 'pk.pem', '--cert-out', 'pc.pem'])).status).to.equal(0);
      writeFileSync(join(tmp.dir, 'm'), 'ab'.repeat(32));
      writeFileSync(join(tmp.dir, 'store.key'), Buffer.alloc(32, 9), { mode: 0o600 });
      for (const dir of ['afile/store', 'afile/a/store']) {
        const runs = [
          ['create-store', '--store', dir, '--passphrase-file', passFile, ...CHEAP],
          ['init-trust', '--domain', 'd', '--policy-cert', 'pc.pem', '--server', `127.0.0.1:${await closedPort()}`, '--store', dir, '--key-file', 'store.key',
            '--platform-dir', 'plat', '--measurement-file', 'm'],
        ];
        for (const args of runs) {
          const r = await cu(args);
          expectFailure(r, 1, 'FILE_ERROR');
          expect(r.stderr, `${args[0]} ${dir}`).to.contain(`cannot create the cryptstore directory ${dir}: afile is not a directory`);
        }
      }
      expect(readFileSync(join(tmp.dir, 'afile'), 'utf8')).to.equal('x');
    });

    it('generate-platform-keys refuses an --out-dir other users can write in, and writes nothing there', async () => {
      const dir = join(tmp.dir, 'shared');
      mkdirSync(dir);
      chmodSync(dir, 0o777);
      const r = await cu(['generate-platform-keys', '--out-dir', 'shared']);
      expectFailure(r, 1, 'FILE_ERROR');
      expect(r.stderr).to.contain('cannot use shared as the output directory: it is writable by other users (mode 0777)');
      expect(readdirSync(dir)).to.deep.equal([]);
    });

    it('generate-platform-keys writes in the --out-dir it checked when that is named through "link/..", not in the one of that name beside the link', async () => {
      linkToDeep(tmp.dir);
      mkdirSync(join(tmp.dir, 'plat'));
      chmodSync(join(tmp.dir, 'plat'), 0o777); // writable by every user: never a place for private keys
      const r = await cu(['generate-platform-keys', '--out-dir', 'link/../plat']); // the kernel's real/plat
      expect(r.status, r.stderr).to.equal(0);
      expect(readdirSync(join(tmp.dir, 'real', 'plat'))).to.include('platform-key.pem').and.include('attest-key.pem');
      expect(readdirSync(join(tmp.dir, 'plat')), 'the directory beside the link').to.deep.equal([]);
    });

    it('init-trust reads the simulated platform in the --platform-dir named through "link/..", where the link leads, as generate-platform-keys writes it', async () => {
      linkToDeep(tmp.dir);
      expect((await cu(['generate-platform-keys', '--out-dir', 'link/../plat'])).status).to.equal(0);
      expect((await cu(['generate-policy-key', '--domain', 'd', '--key-out', 'pk.pem', '--cert-out', 'pc.pem'])).status).to.equal(0);
      writeFileSync(join(tmp.dir, 'm'), 'ab'.repeat(32));
      writeFileSync(join(tmp.dir, 'store.key'), Buffer.alloc(32, 9), { mode: 0o600 });
      const r = await cu(['init-trust', '--domain', 'd', '--policy-cert', 'pc.pem', '--server', `127.0.0.1:${await closedPort()}`, '--store', 'st', '--key-file', 'store.key',
        '--platform-dir', 'link/../plat', '--measurement-file', 'm']);
      // The platform was read, and evidence made: only the server could not be reached.
      expectFailure(r, 3, 'UNREACHABLE');
    });

    it('writes no private key or key file under a directory other users may write in without the sticky bit (FILE_ERROR, nothing made); a sticky one is taken', async () => {
      for (const [name, mode] of [['open', 0o777], ['sticky', 0o1777]] as const) {
        mkdirSync(join(tmp.dir, name));
        chmodSync(join(tmp.dir, name), mode);
      }
      const runs = [
        ['generate-policy-key', '--domain', 'd', '--key-out', 'DIR/policy-key.pem', '--cert-out', 'policy-cert.pem'],
        ['new-key-file', '--out', 'DIR/store.key'],
        ['generate-platform-keys', '--out-dir', 'DIR/platform'],
      ];
      for (const args of runs) {
        const r = await cu(args.map((a) => a.replace('DIR', 'open')));
        expectFailure(r, 1, 'FILE_ERROR');
        expect(r.stderr, args[0]).to.contain(`${join(tmp.dir, 'open')} is writable by other users (mode 0777), who could replace what is written there; chmod go-w it, or use another directory; nothing was written`);
      }
      expect(readdirSync(join(tmp.dir, 'open'))).to.deep.equal([]);
      expect(existsSync(join(tmp.dir, 'policy-cert.pem')), 'the policy certificate beside its key').to.equal(false);
      for (const args of runs) {
        const r = await cu(args.map((a) => a.replace('DIR', 'sticky')));
        expect(r.status, r.stderr).to.equal(0);
      }
      expect(readdirSync(join(tmp.dir, 'sticky')).sort()).to.deep.equal(['platform', 'policy-key.pem', 'store.key']);
    });

    it('create-store and init-trust refuse a store under a directory other users may write in without the sticky bit, or another user\'s (FILE_ERROR, before anything is made); a sticky one is taken', async () => {
      for (const [name, mode] of [['open', 0o777], ['sticky', 0o1777], ['theirs', 0o755]] as const) {
        mkdirSync(join(tmp.dir, name));
        chmodSync(join(tmp.dir, name), mode);
      }
      const theirs = process.getuid?.() === 0; // only root can give a directory away
      if (theirs) chownSync(join(tmp.dir, 'theirs'), 65534, 65534);
      const runs = [
        ['create-store', '--store', 'DIR/store', '--passphrase-file', passFile, ...CHEAP],
        ['init-trust', '--domain', 'd', '--policy-cert', 'none.pem', '--server', '127.0.0.1:1', '--store', 'DIR/a/store', '--passphrase-file', passFile, '--platform-dir', 'p', '--measurement-file', 'm'],
      ];
      mkdirSync(join(tmp.dir, 'open', 'a'), { mode: 0o700 }); // one above it open to others is enough
      for (const args of runs) {
        const r = await cu(args.map((a) => a.replace('DIR', 'open')));
        expectFailure(r, 1, 'FILE_ERROR');
        expect(r.stderr, args[0]).to.contain(`${join(tmp.dir, 'open')} is writable by other users (mode 0777), who could replace what is written there; chmod go-w it, or use another directory; nothing was written`);
        if (!theirs) continue;
        const t = await cu(args.map((a) => a.replace('DIR', 'theirs')));
        expectFailure(t, 1, 'FILE_ERROR');
        expect(t.stderr, args[0]).to.contain(`${join(tmp.dir, 'theirs')} belongs to another user (uid 65534), who could replace what is written there`);
      }
      expect(readdirSync(join(tmp.dir, 'open'))).to.deep.equal(['a']);
      expect(readdirSync(join(tmp.dir, 'open', 'a'))).to.deep.equal([]);
      expect(readdirSync(join(tmp.dir, 'theirs'))).to.deep.equal([]);
      // Through a link, where the link leads is looked at too.
      symlinkSync(join(tmp.dir, 'open', 'a'), join(tmp.dir, 'link'));
      expectFailure(await cu(['create-store', '--store', 'link', '--passphrase-file', passFile, ...CHEAP]), 1, 'FILE_ERROR');
      expect(readdirSync(join(tmp.dir, 'open', 'a'))).to.deep.equal([]);
      expect((await cu(runs[0]!.map((a) => a.replace('DIR', 'sticky')))).status).to.equal(0);
      const r = await cu(runs[1]!.map((a) => a.replace('DIR', 'sticky')));
      expect(r.stderr, 'on to the policy certificate').to.contain('none.pem').and.not.contain('who could replace');
    });

    it('refuses to create a store twice', async () => {
      expect((await cu(withPass('create-store', ...CHEAP))).status).to.equal(0);
      expectFailure(await cu(withPass('create-store', ...CHEAP)), 1, 'STORE_EXISTS');
    });

    describe('with a store holding one item', () => {
      storeMadeOnce(async (cuMade, dir) => {
        expect((await cuMade('create-store', ...CHEAP)).status).to.equal(0);
        writeFileSync(join(dir, 'secret'), 'top secret value');
        expect((await cuMade('put-item', '--tag', 'k', '--in', 'secret')).status).to.equal(0);
      });

      it('refuses a wrong passphrase with exit 4 and one line', async () => {
        writeFileSync(join(tmp.dir, 'wrong.txt'), 'nope\n', { mode: 0o600 });
        const r = await cu(['get-item', '--store', store, '--passphrase-file', 'wrong.txt', '--tag', 'k', '--out', '-']);
        expectFailure(r, 4, 'WRONG_KEY');
        expect(r.stderr.trim().split('\n')).to.have.length(1);
      });

      it('reports a missing item, or a missing version to get or delete, with NOT_FOUND', async () => {
        expectFailure(await cu(withPass('get-item', '--tag', 'nope', '--out', '-')), 1, 'NOT_FOUND');
        expectFailure(await cu(withPass('get-item', '--tag', 'k', '--version', '9', '--out', '-')), 1, 'NOT_FOUND');
        expectFailure(await cu(withPass('delete-item', '--tag', 'nope')), 1, 'NOT_FOUND');
        expectFailure(await cu(withPass('delete-item', '--tag', 'k', '--version', '9')), 1, 'NOT_FOUND');
      });

      it('names a missing tag not in form C escaped, so it cannot pass for another', async () => {
        for (const args of [['get-item', '--tag', 'cafe\u0301', '--out', '-'], ['delete-item', '--tag', 'cafe\u0301']]) {
          const r = await cu(withPass(...args));
          expectFailure(r, 1, 'NOT_FOUND');
          expect(r.stderr, args[0]).to.include('"cafe\\u0301"');
          expect(r.stderr, args[0]).not.to.include('\u0301');
        }
      });

      it('says the store is in use by another process with exit 1, and what to do (it said only that)', async () => {
        const held = await Cryptstore.open(store, new PassphraseProtector(utf8('correct horse battery staple')));
        try {
          const r = await cu(withPass('list-items'));
          expectFailure(r, 1, 'STORE_LOCKED');
          expect(r.stderr).to.contain(`the cryptstore is in use by another process (${store}): a program that opened it holds it while it runs (a key-server serving it, another key-client or cert-utility command, first-boot); let it finish, or stop it, and run this again`);
        } finally {
          await held.close();
        }
      });

      it('refuses to overwrite an existing --out file without --force', async () => {
        writeFileSync(join(tmp.dir, 'out'), 'keep me');
        expectFailure(await cu(withPass('get-item', '--tag', 'k', '--out', 'out')), 1, 'ALREADY_EXISTS');
        expect(await fs.readFile(join(tmp.dir, 'out'), 'utf8')).to.equal('keep me');
        expect((await cu(withPass('get-item', '--tag', 'k', '--out', 'out', '--force'))).status).to.equal(0);
        expect(await fs.readFile(join(tmp.dir, 'out'), 'utf8')).to.equal('top secret value');
      });

      it('get-item refuses an --out already there (without --force) or in no directory before the store is opened, as export-store does: no key derived, no value decrypted for nothing', async () => {
        writeFileSync(join(tmp.dir, 'out'), 'keep me');
        writeFileSync(join(tmp.dir, 'wrong-pass'), 'not the passphrase', { mode: 0o600 });
        const wrong = ['--store', store, '--passphrase-file', 'wrong-pass'];
        const taken = await cu(['get-item', ...wrong, '--tag', 'k', '--out', 'out']);
        expectFailure(taken, 1, 'ALREADY_EXISTS');
        expect(await fs.readFile(join(tmp.dir, 'out'), 'utf8')).to.equal('keep me');
        const nowhere = await cu(['get-item', ...wrong, '--tag', 'k', '--out', join('none', 'out')]);
        expectFailure(nowhere, 1, 'FILE_ERROR');
        expect(nowhere.stderr).to.contain('no directory none');
        // Given --force, the file there is no refusal: the store is opened (and here refuses the passphrase).
        expectFailure(await cu(['get-item', ...wrong, '--tag', 'k', '--out', 'out', '--force']), 4, 'WRONG_KEY');
      });

      it('get-item and export-store refuse an --out in a directory other users may write in without the sticky bit, before the key is derived (FILE_ERROR, nothing written); a sticky one is taken', async () => {
        for (const [name, mode] of [['open', 0o777], ['sticky', 0o1777]] as const) {
          mkdirSync(join(tmp.dir, name));
          chmodSync(join(tmp.dir, name), mode);
        }
        writeFileSync(join(tmp.dir, 'bundle-pass'), 'bundle secret\n');
        const getItem = (pass: string, out: string) => ['get-item', '--store', store, '--passphrase-file', pass, '--tag', 'k', '--out', out];
        const exportStore = (pass: string, out: string) => ['export-store', '--store', store, '--passphrase-file', pass, '--out', out, '--bundle-passphrase-file', 'bundle-pass', ...CHEAP];
        // A wrong passphrase would be WRONG_KEY (exit 4) once the key was derived: refused before.
        writeFileSync(join(tmp.dir, 'wrong.txt'), 'nope\n', { mode: 0o600 });
        for (const args of [getItem('wrong.txt', 'open/k'), exportStore('wrong.txt', 'open/bundle.bin')]) {
          const r = await cu(args);
          expectFailure(r, 1, 'FILE_ERROR');
          expect(r.stderr, args[0]).to.contain(`cannot write ${args[args.indexOf('--out') + 1]}: ${join(tmp.dir, 'open')} is writable by other users (mode 0777), who could replace what is written there; chmod go-w it, or use another directory; nothing was written`);
        }
        expect(readdirSync(join(tmp.dir, 'open'))).to.deep.equal([]);
        // Standard output is not a directory: --out - is as before.
        expect((await cu(getItem(passFile, '-'))).out).to.equal('top secret value');
        for (const args of [getItem(passFile, 'sticky/k'), exportStore(passFile, 'sticky/bundle.bin')]) {
          const r = await cu(args);
          expect(r.status, r.stderr).to.equal(0);
        }
        expect(readFileSync(join(tmp.dir, 'sticky', 'k'), 'utf8')).to.equal('top secret value');
        expect(existsSync(join(tmp.dir, 'sticky', 'bundle.bin'))).to.equal(true);
      });

      it('refuses a key file shorter than 32 bytes, saying how to make one (new-key-file), and makes no store', async () => {
        writeFileSync(join(tmp.dir, 'short.key'), 'x\n', { mode: 0o600 });
        const r = await cu(['create-store', '--store', 'short-store', '--key-file', 'short.key']);
        expectFailure(r, 1, 'INVALID_INPUT');
        expect(r.stderr).to.contain('the key file short.key holds 2 bytes; a key file needs at least 32 random bytes: make one with cert-utility new-key-file --out FILE');
        expect(existsSync(join(tmp.dir, 'short-store'))).to.equal(false);
      });

      it('names the missing directory of an --out file', async () => {
        for (const args of [withPass('get-item', '--tag', 'k', '--out', 'nodir/x'), ['new-key-file', '--out', 'nodir/x']]) {
          const r = await cu(args);
          expectFailure(r, 1, 'FILE_ERROR');
          expect(r.stderr).to.contain('cannot write nodir/x: no directory nodir');
        }
      });

      it('gives exit 4 for a flipped byte in a stored value, and verify-store names it, each saying how to remove it', async () => {
        const db = new Level<string, Uint8Array>(store, { valueEncoding: 'view' });
        await db.open();
        const [key] = await db.keys({ gt: 'e!', lt: 'e"' }).all();
        const v = new Uint8Array((await db.get(key!))!);
        v[20]! ^= 0x04;
        await db.put(key!, v);
        await db.close();
        const r = await cu(withPass('get-item', '--tag', 'k', '--out', '-'));
        expectFailure(r, 4, 'INTEGRITY');
        expect(r.stderr.trim().split('\n')).to.have.length(1);
        const remedy = `: its value cannot be read back; delete-item --tag "k" --version ${parseInt(key!.slice(-8), 16)} removes the record`;
        expect(r.stderr).to.contain(remedy);
        const v2 = await cu(withPass('verify-store'));
        expectFailure(v2, 4, 'INTEGRITY');
        expect(v2.stderr).to.contain('"k"').and.to.contain(remedy);
      });

      it('verify-store names at most 20 damaged records, each key cut short, and counts the rest', async () => {
        const db = new Level<string, Uint8Array>(store, { valueEncoding: 'view' });
        await db.open();
        await db.batch(Array.from({ length: 30 }, (_, i) => ({ type: 'put' as const, key: `e!${String(i).padStart(2, '0')}${'x'.repeat(5000)}\u000000000001`, value: new Uint8Array(40) })));
        await db.close();
        const r = await cu(withPass('verify-store'));
        expectFailure(r, 4, 'INTEGRITY');
        expect(r.stderr.trim().split('\n')).to.have.length(1);
        expect(r.stderr).to.contain('30 damaged record(s): "e!00x');
        expect(r.stderr).to.contain('"e!19x');
        expect(r.stderr).not.to.contain('"e!20x');
        expect(r.stderr).to.match(/; and 10 more \[INTEGRITY\]$/m);
        expect(r.stderr.length).to.be.below(20_000);
      });

      it('delete-item of every version removes a record not written here whose key names no version (here past 2147483647), as verify-store says', async () => {
        const db = new Level<string, Uint8Array>(store, { valueEncoding: 'view' });
        await db.open();
        await db.put('e!k\u0000ffffffff', new Uint8Array(40));
        await db.close();
        expectFailure(await cu(withPass('list-items')), 4, 'INTEGRITY');
        const v = await cu(withPass('verify-store'));
        expectFailure(v, 4, 'INTEGRITY');
        expect(v.stderr).to.contain('"e!k\\u0000ffffffff": a record of "k" whose key names no version this store writes (1 to 2147483647): verify-store --repair --yes removes it (as delete-item --tag "k" does, with every version of the tag)');
        const d = await cu(withPass('delete-item', '--tag', 'k'));
        expect(d.status, d.stderr).to.equal(0);
        expect(d.out).to.equal('deleted k version 1 and 1 record whose key named no version\n');
        expect((await cu(withPass('verify-store', '--json'))).json()).to.deep.equal({ ok: true, entries: 0, tags: 0, problems: [] });
      });

      it('verify-store names records no command could remove (under no tag, a damaged version record) with the remedy, and --repair --yes carries it out, keeping every item', async () => {
        const db = new Level<string, Uint8Array>(store, { valueEncoding: 'view' });
        await db.open();
        const before = await db.keys({ gt: 'e!', lt: 'e"' }).all();
        await db.batch([
          { type: 'put', key: 'e!junk', value: new Uint8Array(40) },
          { type: 'put', key: 'zz!elsewhere', value: new Uint8Array(40) },
          { type: 'put', key: 'h!k', value: new Uint8Array(40) }, // k's high-water mark, damaged
        ]);
        await db.close();
        const put = await cu(withPass('put-item', '--tag', 'k', '--in', '-'), { input: 'next' });
        expectFailure(put, 4, 'INTEGRITY');
        expect(put.stderr).to.contain('verify-store --repair --yes replaces it');
        const v = await cu(withPass('verify-store'));
        expectFailure(v, 4, 'INTEGRITY');
        expect(v.stderr).to.contain('"e!junk": a record under no tag, with a key this store never writes: verify-store --repair --yes removes it');
        expect(v.stderr).to.contain('"zz!elsewhere": a record under no tag');
        expect(v.stderr).to.contain('"h!k": the version record of "k" (its high-water mark) failed its integrity check: verify-store --repair --yes replaces it');
        expectFailure(await cu(withPass('verify-store', '--repair')), 2, 'USAGE');
        const r = await cu(withPass('verify-store', '--repair', '--yes', '--json'));
        expect(r.status, r.stderr).to.equal(0);
        expect(r.json().repaired).to.deep.equal([
          { key: '"e!junk"', done: 'removed' }, { key: '"h!k"', done: `replaced (versions from ${before.length + 1} on)` }, { key: '"zz!elsewhere"', done: 'removed' },
        ]);
        expect(r.json().problems).to.deep.equal([]);
        const next = await cu(withPass('put-item', '--tag', 'k', '--in', '-', '--json'), { input: 'next' });
        expect(next.json().item.version).to.equal(before.length + 1);
        expect((await cu(withPass('list-items', '--json'))).json().items).to.have.length(before.length + 1);
      });

      it('delete-item of every version replaces a damaged high-water mark too, retiring the tag, and says so', async () => {
        const db = new Level<string, Uint8Array>(store, { valueEncoding: 'view' });
        await db.open();
        const versions = (await db.keys({ gt: 'e!k\u0000', lt: 'e!k\u0001' }).all()).length;
        await db.put('h!k', new Uint8Array(40)); // k's high-water mark, damaged
        await db.put('h!gone', new Uint8Array(40)); // a tag with no version left but its mark, damaged
        await db.close();
        const d = await cu(withPass('delete-item', '--tag', 'k', '--json'));
        expect(d.status, d.stderr).to.equal(0);
        expect(d.json()).to.deep.equal({ ok: true, tag: 'k', deleted: Array.from({ length: versions }, (_, i) => i + 1), retired: true });
        expect(d.stderr).to.contain('cert-utility: k is retired: its version record was damaged');
        const put = await cu(withPass('put-item', '--tag', 'k', '--in', '-'), { input: 'next' });
        expectFailure(put, 1, 'INVALID_INPUT');
        expect(put.stderr).to.contain('(or was retired: deleted while its record of the numbers used was damaged)');
        const gone = await cu(withPass('delete-item', '--tag', 'gone'));
        expect(gone.status, gone.stderr).to.equal(0);
        expect(gone.out).to.equal('deleted the damaged version record of gone\n');
        expect((await cu(withPass('verify-store', '--json'))).json().problems).to.deep.equal([]);
      });

      it('verify-store --repair --yes that leaves damage gives exit 4 with what it repaired in the --json error document', async () => {
        const db = new Level<string, Uint8Array>(store, { valueEncoding: 'view' });
        await db.open();
        const [key] = await db.keys({ gt: 'e!', lt: 'e"' }).all();
        const v = new Uint8Array((await db.get(key!))!);
        v[20]! ^= 0x04; // a damaged version: delete-item's, not repair's
        await db.batch([{ type: 'put', key: key!, value: v }, { type: 'put', key: 'e!junk', value: new Uint8Array(40) }]);
        await db.close();
        const r = await cu(withPass('verify-store', '--repair', '--yes', '--json'));
        expect(r.status, r.stderr).to.equal(4);
        expect(r.json().error).to.include({ code: 'INTEGRITY', exitStatus: 4 });
        expect(r.json().error.repaired).to.deep.equal([{ key: '"e!junk"', done: 'removed' }]);
        expect(r.stderr).to.equal('cert-utility: "e!junk": removed\n');
      });

      it('verify-store --json that finds damage gives exit 4 with the problems in the --json error document, as the success document has them', async () => {
        const db = new Level<string, Uint8Array>(store, { valueEncoding: 'view' });
        await db.open();
        await db.put('e!junk', new Uint8Array(40));
        await db.close();
        const r = await cu(withPass('verify-store', '--json'));
        expect(r.status, r.stderr).to.equal(4);
        expect(r.json().error).to.include({ code: 'INTEGRITY', exitStatus: 4 });
        expect(r.json().error.problems).to.deep.equal([{ key: '"e!junk"', problem: 'a record under no tag, with a key this store never writes: verify-store --repair --yes removes it' }]);
      });

      it('gives exit 4 for a swapped pair of records', async () => {
        writeFileSync(join(tmp.dir, 'other'), 'another value');
        expect((await cu(withPass('put-item', '--tag', 'j', '--in', 'other'))).status).to.equal(0);
        const db = new Level<string, Uint8Array>(store, { valueEncoding: 'view' });
        await db.open();
        const [a, b] = await db.keys({ gt: 'e!', lt: 'e"' }).all();
        const [va, vb] = [await db.get(a!), await db.get(b!)];
        await db.batch([{ type: 'put', key: a!, value: vb! }, { type: 'put', key: b!, value: va! }]);
        await db.close();
        expectFailure(await cu(withPass('get-item', '--tag', 'k', '--out', '-')), 4, 'INTEGRITY');
        expectFailure(await cu(withPass('list-items')), 4, 'INTEGRITY');
      });
    });
  });

  describe('happy paths', () => {
    storeMadeOnce(async (cuMade) => {
      const r = await cuMade('create-store', ...CHEAP);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.out).to.contain('created cryptstore');
    });

    it('names a path holding a control character escaped in what it prints, never raw (a newline would forge a line)', async () => {
      writeFileSync(join(tmp.dir, 'odd.key'), randomBytes(32));
      const odd = 'st\nfirst-boot: done: forged';
      const r = await cu(['create-store', '--store', odd, '--key-file', 'odd.key']);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.out).to.equal('created cryptstore "st\\nfirst-boot: done: forged" (protected by key-file)\n');
      await cu(['put-item', '--store', odd, '--key-file', 'odd.key', '--tag', 'k', '--in', '-'], { input: 'v' });
      const got = await cu(['get-item', '--store', odd, '--key-file', 'odd.key', '--tag', 'k', '--out', 'out\nforged']);
      expect(got.out).to.equal('wrote "out\\nforged": k version 1 (1 bytes)\n');
    });

    it('round-trips a 32-byte secret and a 1 MiB blob through put-item and get-item', async () => {
      const small = randomBytes(32);
      const big = randomBytes(1024 * 1024);
      writeFileSync(join(tmp.dir, 'big'), big);
      expect((await cu(withPass('put-item', '--tag', 'small', '--in', '-'), { input: small })).status).to.equal(0);
      expect((await cu(withPass('put-item', '--tag', 'big', '--in', 'big'))).status).to.equal(0);
      const r1 = await cu(withPass('get-item', '--tag', 'small', '--out', '-'));
      expect(r1.status).to.equal(0);
      expect(new Uint8Array(r1.stdout)).to.deep.equal(small);
      const r2 = await cu(withPass('get-item', '--tag', 'big', '--out', 'big.out'));
      expect(r2.status).to.equal(0);
      expect(r2.out).to.equal(`wrote big.out: big version 1 (${big.length} bytes)\n`);
      expect(new Uint8Array(await fs.readFile(join(tmp.dir, 'big.out')))).to.deep.equal(big);
      expect(statSync(join(tmp.dir, 'big.out')).mode & 0o777).to.equal(0o600);
    });

    it('ends quietly with status 141 when the reader of --out - stops early (| head), as a tool killed by SIGPIPE', async () => {
      writeFileSync(join(tmp.dir, 'big'), randomBytes(1024 * 1024));
      expect((await cu(withPass('put-item', '--tag', 'big', '--in', 'big'))).status).to.equal(0);
      const child = spawn(process.execPath, [join(ROOT, 'cmd', 'bin', 'cert-utility.js'), ...withPass('get-item', '--tag', 'big', '--out', '-')], { cwd: tmp.dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      child.stdout.once('data', () => child.stdout.destroy()); // read a little, then hang up
      const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(status, err).to.equal(141);
      expect(err).to.equal('');
    });

    it('exits 141 for the README\'s example of a reader gone before the result is written, with a 32-byte value', async () => {
      const reader = /^\| 141 \| .*?`\.\.\. --out - \\\| ([^`]+)`/m.exec(readFileSync(join(ROOT, 'README.md'), 'utf8'))?.[1];
      expect(reader, 'the README\'s example for status 141').to.be.a('string');
      writeFileSync(join(tmp.dir, 'key32'), randomBytes(32));
      expect((await cu(withPass('put-item', '--tag', 'key32', '--in', 'key32'))).status).to.equal(0);
      const r = spawnSync('bash', ['-c', `"$0" "$@" | ${reader} >/dev/null; echo "exit \${PIPESTATUS[0]}"`, process.execPath, join(ROOT, 'cmd', 'bin', 'cert-utility.js'), ...withPass('get-item', '--tag', 'key32', '--out', '-')], { cwd: tmp.dir, encoding: 'utf8' });
      expect(r.stdout, r.stderr).to.equal('exit 141\n');
    });

    it('says so, with a code, when standard output cannot be written (a full disk), and exits 1', async function () {
      if (!existsSync('/dev/full')) this.skip();
      writeFileSync(join(tmp.dir, 'small'), 'a secret');
      expect((await cu(withPass('put-item', '--tag', 'small', '--in', 'small'))).status).to.equal(0);
      const out = openSync('/dev/full', 'w');
      try {
        const child = spawn(process.execPath, [join(ROOT, 'cmd', 'bin', 'cert-utility.js'), ...withPass('get-item', '--tag', 'small', '--out', '-')], { cwd: tmp.dir, stdio: ['ignore', out, 'pipe'] });
        let err = '';
        child.stderr!.on('data', (d) => (err += d));
        const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
        expect(status, err).to.equal(1);
        expect(err).to.match(/cert-utility: error: cannot write standard output: ENOSPC \[FILE_ERROR\]/);
      } finally {
        closeSync(out);
      }
    });

    it('refuses --out - into a file every user may read (a shell\'s "> f" under umask 022) before the store is opened, and writes into one made 0600 or 0640', async () => {
      writeFileSync(join(tmp.dir, 'kept'), 'a secret');
      expect((await cu(withPass('put-item', '--tag', 'kept', '--in', 'kept'))).status).to.equal(0);
      const cmd = [process.execPath, join(ROOT, 'cmd', 'bin', 'cert-utility.js'), ...withPass('get-item', '--tag', 'kept', '--out', '-')].map((a) => `'${a}'`).join(' ');
      const into = (umask: string, file: string, json = '') => spawnSync('bash', ['-c', `umask ${umask}; exec ${cmd} ${json} > ${file}`], { cwd: tmp.dir, encoding: 'utf8' });
      for (const json of ['', '--json']) {
        const refused = into('022', 'open.bin', json);
        expect(refused.status, refused.stderr).to.equal(1);
        // The error, on stderr or (--json) as the document on stdout: neither holds the value.
        const said = json ? readFileSync(join(tmp.dir, 'open.bin'), 'utf8') : refused.stderr;
        expect(said).to.contain(`standard output is ${join(tmp.dir, 'open.bin')}, a file every user of the machine may read (mode 0644)`).and.contain('umask 077').and.contain('FILE_ERROR');
        expect(said).not.to.contain('a secret').and.not.contain(Buffer.from('a secret').toString('base64'));
      }
      for (const [umask, mode] of [['077', 0o600], ['027', 0o640]] as const) {
        const written = into(umask, `ok-${umask}.bin`);
        expect(written.status, written.stderr).to.equal(0);
        expect(readFileSync(join(tmp.dir, `ok-${umask}.bin`), 'utf8')).to.equal('a secret');
        expect(statSync(join(tmp.dir, `ok-${umask}.bin`)).mode & 0o777).to.equal(mode);
      }
    });

    it('says so (FILE_ERROR, exit 1) when a file on stdout fills up mid-write, rather than exit 0 with the secret cut short', async () => {
      writeFileSync(join(tmp.dir, 'mid'), randomBytes(500_000));
      expect((await cu(withPass('put-item', '--tag', 'mid', '--in', 'mid'))).status).to.equal(0);
      expect((await cu(withPass('list-items'))).status).to.equal(0); // LevelDB settles its files first
      // A file size limit of 100 KiB stands in for a disk that fills up: the first write is short.
      const cmd = [process.execPath, join(ROOT, 'cmd', 'bin', 'cert-utility.js'), ...withPass('get-item', '--tag', 'mid', '--out', '-')].map((a) => `'${a}'`).join(' ');
      const r = spawnSync('bash', ['-c', `ulimit -f 100; umask 077; exec ${cmd} > out.bin`], { cwd: tmp.dir });
      expect(r.status, r.stderr.toString()).to.equal(1);
      expect(r.stderr.toString()).to.contain('cannot write standard output: EFBIG; what was written there is incomplete [FILE_ERROR]');
    });

    it('says a store it only reads cannot be opened on a full disk (LevelDB writes to open it), not that it cannot be written, and put-item leaves it as it was', async () => {
      writeFileSync(join(tmp.dir, 'kept'), 'kept');
      expect((await cu(withPass('put-item', '--tag', 'kept', '--in', 'kept'))).status).to.equal(0);
      // A file size limit of 0 stands in for a full disk: LevelDB cannot write its new manifest.
      const limited = (...args: string[]) => {
        const cmd = [process.execPath, join(ROOT, 'cmd', 'bin', 'cert-utility.js'), ...withPass(...args)].map((a) => `'${a}'`).join(' ');
        return spawnSync('bash', ['-c', `ulimit -f 0; exec ${cmd}`], { cwd: tmp.dir, encoding: 'utf8' });
      };
      const read = limited('list-items');
      expect(read.status, read.stderr).to.equal(1);
      expect(read.stderr).to.contain(`the cryptstore at ${store} cannot be opened, as LevelDB writes to a store to open it (what it holds is unchanged): a file size limit is reached`).and.contain('[FILE_ERROR]');
      expect(limited('put-item', '--tag', 'more', '--in', 'kept').status).to.equal(1);
      expect((await cu(withPass('list-items'))).out).to.match(/^kept\tv1\t/).and.not.contain('more');
    });

    it('never writes over its own store or the files that unlock it, even with --force (INVALID_INPUT)', async () => {
      writeFileSync(join(tmp.dir, 'bundle-pass-2'), 'bundle secret\n');
      const before = readFileSync(passFile);
      expect((await cu(withPass('put-item', '--tag', 'k-item', '--in', 'bundle-pass-2'))).status).to.equal(0);
      const cases = [
        withPass('export-store', '--out', passFile, '--force', '--bundle-passphrase-file', 'bundle-pass-2', ...CHEAP),
        withPass('export-store', '--out', 'bundle-pass-2', '--force', '--bundle-passphrase-file', 'bundle-pass-2', ...CHEAP),
        withPass('generate-key', '--tag', 'k-own', '--alg', 'p256', '--public-key-out', join(store, 'CURRENT'), '--force'),
        withPass('get-item', '--tag', 'k-item', '--out', passFile, '--force'),
      ];
      cases.push(withPass('rekey-store', '--new-key-file', join(store, 'LOG'))); // LevelDB rewrites its LOG at every open
      for (const args of cases) expectFailure(await cu(args), 1, 'INVALID_INPUT');
      expect(readFileSync(passFile)).to.deep.equal(before);
      expect((await cu(withPass('list-items'))).status).to.equal(0);
    });

    it('refuses to store nothing (stdin closed or empty, an empty file): INVALID_INPUT, nothing stored', async () => {
      writeFileSync(join(tmp.dir, 'empty'), '');
      expectFailure(await cu(withPass('put-item', '--tag', 'e', '--in', '-'), { input: '' }), 1, 'INVALID_INPUT');
      const r = await cu(withPass('put-item', '--tag', 'e', '--in', 'empty'));
      expectFailure(r, 1, 'INVALID_INPUT');
      expect(r.stderr).to.contain('nothing to store: empty is empty');
      expectFailure(await cu(withPass('get-item', '--tag', 'e', '--out', '-')), 1, 'NOT_FOUND');
    });

    it('refuses an item over 16 MiB (INVALID_INPUT) and stores nothing', async () => {
      writeFileSync(join(tmp.dir, 'big'), '');
      truncateSync(join(tmp.dir, 'big'), 16 * 1024 * 1024 + 1); // sparse: nothing written to disk
      const r = await cu(withPass('put-item', '--tag', 'big', '--in', 'big'));
      expectFailure(r, 1, 'INVALID_INPUT');
      expect(r.stderr).to.contain('big is larger than 16777216 bytes, the most an item holds (16 MiB): keep a larger value elsewhere, under a key stored here');
      expectFailure(await cu(withPass('get-item', '--tag', 'big', '--out', '-')), 1, 'NOT_FOUND');
    });

    it('refuses a new tag that would display as another (a zero-width space), for put-item and generate-key', async () => {
      const put = await cu(withPass('put-item', '--tag', 'db-key\u200b', '--in', '-'), { input: 'v' });
      expectFailure(put, 1, 'INVALID_INPUT');
      expect(put.stderr).to.contain('invisible character');
      expectFailure(await cu(withPass('generate-key', '--tag', 'k\u00ad', '--alg', 'p256')), 1, 'INVALID_INPUT');
    });

    it('refuses a tag given as bytes that are not UTF-8 (61 ff), which would read as U+FFFD: INVALID_INPUT, nothing stored', async () => {
      // Through sh, so the argument reaches the program as the raw byte, not as text.
      const tagged = `program="$1"; shift; exec "$0" "$program" put-item --tag "$(printf 'a\\377')" "$@"`;
      const r = await runScript({ path: '/bin/sh' }, ['-c', tagged, process.execPath, join(ROOT, 'cmd', 'bin', 'cert-utility.js'), '--in', '-', '--store', store, '--passphrase-file', passFile], { cwd: tmp.dir, input: 'v' });
      expectFailure(r, 1, 'INVALID_INPUT');
      expect(r.stderr).to.contain('not valid UTF-8');
      const listed = await cu(withPass('list-items'));
      expect(listed.status, listed.stderr).to.equal(0);
      expect(listed.out.trim()).to.equal('');
    });

    it('gives a tag made before that rule (here: by the library, which only reads) its next version', async () => {
      const old = 'vhd/cafe\u0301'; // not in Unicode form C
      const s = await Cryptstore.open(store, new PassphraseProtector(utf8('correct horse battery staple')));
      try {
        await s.put(old, utf8('v1'));
      } finally {
        await s.close();
      }
      const put = await cu(withPass('put-item', '--tag', old, '--in', '-', '--json'), { input: 'v2' });
      expect(put.status, put.stderr).to.equal(0);
      expect(put.json().item.version).to.equal(2);
      expectFailure(await cu(withPass('put-item', '--tag', 'vhd/new\u0301', '--in', '-'), { input: 'v' }), 1, 'INVALID_INPUT');
      // Shown escaped; and a new tag typed as that escaped text is shown otherwise (quoted again).
      const lookalike = '"vhd/cafe\\u0301"';
      expect((await cu(withPass('put-item', '--tag', lookalike, '--in', '-'), { input: 'v' })).out).to.equal('stored "\\"vhd/cafe\\\\u0301\\"" version 1\n');
      const listed = (await cu(withPass('list-items'))).out.split('\n').filter((l) => l.includes('cafe')).map((l) => l.split('\t')[0]);
      expect([...new Set(listed)].sort()).to.deep.equal(['"vhd/cafe\\u0301"', '"\\"vhd/cafe\\\\u0301\\""'].sort());
    });

    it('numbers versions per tag, reads older ones, deletes one or all', async () => {
      for (const v of ['one', 'two', 'three']) {
        const r = await cu(withPass('put-item', '--tag', 'k', '--in', '-', '--json'), { input: v });
        expect(r.json().item.version).to.equal(['one', 'two', 'three'].indexOf(v) + 1);
      }
      expect((await cu(withPass('get-item', '--tag', 'k', '--out', '-'))).out).to.equal('three');
      expect((await cu(withPass('get-item', '--tag', 'k', '--version', '1', '--out', '-'))).out).to.equal('one');
      const d = await cu(withPass('delete-item', '--tag', 'k', '--version', '3', '--json'));
      expect(d.json()).to.deep.equal({ ok: true, tag: 'k', deleted: [3] });
      expect((await cu(withPass('get-item', '--tag', 'k', '--out', '-'))).out).to.equal('two');
      const list = (await cu(withPass('list-items', '--json'))).json().items;
      expect(list.map((i: { version: number }) => i.version)).to.deep.equal([1, 2]);
      expect((await cu(withPass('delete-item', '--tag', 'k'))).out).to.contain('versions 1, 2');
      expect((await cu(withPass('list-items', '--json'))).json().items).to.deep.equal([]);
    });

    it('returns the value in base64 under --json only when --out - asks for it', async () => {
      await cu(withPass('put-item', '--tag', 'k', '--in', '-'), { input: 'abc' });
      const toStdout = (await cu(withPass('get-item', '--tag', 'k', '--out', '-', '--json'))).json();
      expect(toStdout.valueBase64).to.equal(Buffer.from('abc').toString('base64'));
      const toFile = (await cu(withPass('get-item', '--tag', 'k', '--out', 'f', '--json'))).json();
      expect(toFile).not.to.have.property('valueBase64');
      expect(toFile.item).to.include({ tag: 'k', version: 1, size: 3 });
    });

    it('exports exactly the exportable items and imports them, versions kept, into a new store', async () => {
      await cu(withPass('put-item', '--tag', 'shared', '--exportable', '--in', '-'), { input: 's1' });
      await cu(withPass('put-item', '--tag', 'shared', '--exportable', '--in', '-'), { input: 's2' });
      await cu(withPass('put-item', '--tag', 'private', '--in', '-'), { input: 'p1' });
      writeFileSync(join(tmp.dir, 'bundle-pass'), 'bundle secret\n');
      const e = await cu(withPass('export-store', '--out', 'bundle.bin', '--bundle-passphrase-file', 'bundle-pass', ...CHEAP, '--json'));
      expect(e.status, e.stderr).to.equal(0);
      expect(e.json().items.map((i: { tag: string; version: number }) => `${i.tag}@${i.version}`)).to.deep.equal(['shared@1', 'shared@2']);
      expect(statSync(join(tmp.dir, 'bundle.bin')).mode & 0o777).to.equal(0o600);

      const other = join(tmp.dir, 'other');
      writeFileSync(join(tmp.dir, 'other-pass'), 'other');
      const o = (...args: string[]) => [...args, '--store', other, '--passphrase-file', 'other-pass'];
      expect((await cu(o('create-store', ...CHEAP))).status).to.equal(0);
      // --in - reads the bundle from standard input, as the README and --help say.
      const i = await cu(o('import-store', '--in', '-', '--bundle-passphrase-file', 'bundle-pass'), { input: readFileSync(join(tmp.dir, 'bundle.bin')) });
      expect(i.status, i.stderr).to.equal(0);
      const items = (await cu(o('list-items', '--json'))).json().items;
      expect(items.map((x: { tag: string; version: number }) => `${x.tag}@${x.version}`)).to.deep.equal(['shared@1', 'shared@2']);
      expect((await cu(o('get-item', '--tag', 'shared', '--version', '1', '--out', '-'))).out).to.equal('s1');
      expectFailure(await cu(o('import-store', '--in', 'bundle.bin', '--bundle-passphrase-file', 'bundle-pass')), 1, 'ALREADY_EXISTS');
      expectFailure(await cu(o('import-store', '--in', 'bundle.bin', '--bundle-passphrase-file', 'other-pass')), 4, 'WRONG_KEY');
    });

    it('says so when the bundle it writes holds no item, as none is exportable (exit 0: a bundle of nothing imports as nothing)', async () => {
      await cu(withPass('put-item', '--tag', 'private', '--in', '-'), { input: 'p1' });
      writeFileSync(join(tmp.dir, 'bundle-pass'), 'bundle secret\n');
      const e = await cu(withPass('export-store', '--out', 'empty.bin', '--bundle-passphrase-file', 'bundle-pass', ...CHEAP));
      expect([e.status, e.out], e.stderr).to.deep.equal([0, 'exported 0 item version(s) to empty.bin\n']);
      expect(e.stderr).to.contain('cert-utility: the bundle holds no item: none of the store\'s items is exportable (an item is exportable only if it was stored with --exportable)');
    });

    it('says a bundle of an empty store holds no item as the store holds none, not that its items are not exportable', async () => {
      writeFileSync(join(tmp.dir, 'bundle-pass'), 'bundle secret\n');
      const e = await cu(withPass('export-store', '--out', 'empty.bin', '--bundle-passphrase-file', 'bundle-pass', ...CHEAP));
      expect([e.status, e.out], e.stderr).to.deep.equal([0, 'exported 0 item version(s) to empty.bin\n']);
      expect(e.stderr, e.stderr).to.contain('cert-utility: the bundle holds no item: the store holds none');
      expect(e.stderr).not.to.contain('exportable');
    });

    it('refuses to import the last version number (2147483647) without --force; once forced, put-item says no later version can be stored under the tag', async () => {
      const last = { tag: 'maxed', type: 'binary-blob' as const, version: 2147483647, timeEntered: new Date().toISOString(), blob: utf8('m'), exportable: true, size: 1 };
      writeFileSync(join(tmp.dir, 'bundle.bin'), await sealBundle([last], utf8('bundle secret'), { logN: 10, r: 8, p: 1 }));
      writeFileSync(join(tmp.dir, 'bundle-pass'), 'bundle secret\n');
      const imported = (...extra: string[]) => cu(withPass('import-store', '--in', 'bundle.bin', '--bundle-passphrase-file', 'bundle-pass', ...extra));
      const refused = await imported();
      expectFailure(refused, 1, 'INVALID_INPUT');
      expect(refused.stderr).to.contain('"maxed" v2147483647 is the highest version number');
      expect((await imported('--force')).status).to.equal(0);
      const put = await cu(withPass('put-item', '--tag', 'maxed', '--in', '-'), { input: 'next' });
      expectFailure(put, 1, 'INVALID_INPUT');
      expect(put.stderr).to.contain('"maxed" has used every version number, up to 2147483647, the highest (or was retired: deleted while its record of the numbers used was damaged): no later version can be stored under this tag');
    });

    it('put-item --type X509-der-cert stores a PEM certificate as its DER and refuses bytes not shaped as one; a machine\'s certificate tag without that type is refused (USAGE); nothing refused is stored', async () => {
      const der = readFileSync(join(VECTORS, 'certifier-original', 'policy_cert_file.datica'));
      writeFileSync(join(tmp.dir, 'cert.pem'), toPem(der));
      const stored = await cu(withPass('put-item', '--tag', 'ca', '--type', 'X509-der-cert', '--in', 'cert.pem'));
      expect(stored.status, stored.stderr).to.equal(0);
      expect((await cu(withPass('get-item', '--tag', 'ca', '--out', 'ca.der'))).status).to.equal(0);
      expect(readFileSync(join(tmp.dir, 'ca.der'))).to.deep.equal(der);
      // One DER element, but a key, not a certificate.
      writeFileSync(join(tmp.dir, 'key.der'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'der' }));
      const notCert = await cu(withPass('put-item', '--tag', 'not-a-cert', '--type', 'X509-der-cert', '--in', 'key.der'));
      expectFailure(notCert, 1, 'BAD_CERTIFICATE');
      const untyped = await cu(withPass('put-item', '--tag', 'datica-admission-certificate', '--in', 'cert.pem'));
      expectFailure(untyped, 2, 'USAGE');
      expect(untyped.stderr).to.contain('give --type X509-der-cert');
      const tags = (await cu(withPass('list-items', '--json'))).json().items.map((i: { tag: string }) => i.tag);
      expect(tags).to.include('ca').and.not.include('not-a-cert').and.not.include('datica-admission-certificate');
    });

    it("refuses to import a machine's identity tags (another machine's certificate would become this one's) without --force", async () => {
      // (a certificate of the original tools stands in for a machine's: the tag takes only certificates)
      const stored = await cu(withPass('put-item', '--tag', 'datica-admission-certificate', '--type', 'X509-der-cert', '--exportable', '--in', join(VECTORS, 'certifier-original', 'policy_cert_file.datica')));
      expect(stored.status, stored.stderr).to.equal(0);
      writeFileSync(join(tmp.dir, 'bundle-pass'), 'bundle secret\n');
      // A bundle of everything leaves the identity out, and says so; asked for by name, it goes in.
      const all = await cu(withPass('export-store', '--out', 'all.bin', '--bundle-passphrase-file', 'bundle-pass', ...CHEAP));
      expect(all.status, all.stderr).to.equal(0);
      expect(all.stderr).to.contain('left out "datica-admission-certificate"');
      expect((await cu(withPass('export-store', '--out', 'id.bin', '--tag', 'datica-admission-certificate', '--bundle-passphrase-file', 'bundle-pass', ...CHEAP))).status).to.equal(0);
      const other = join(tmp.dir, 'other');
      const o = (...args: string[]) => [...args, '--store', other, '--passphrase-file', passFile];
      expect((await cu(o('create-store', ...CHEAP))).status).to.equal(0);
      expect((await cu(o('import-store', '--in', 'all.bin', '--bundle-passphrase-file', 'bundle-pass'))).status).to.equal(0);
      const r = await cu(o('import-store', '--in', 'id.bin', '--bundle-passphrase-file', 'bundle-pass'));
      expectFailure(r, 1, 'DENIED');
      expect(r.stderr).to.contain('"datica-admission-certificate", where a machine keeps its identity');
      expect((await cu(o('list-items', '--json'))).json().items).to.deep.equal([]);
      expect((await cu(o('import-store', '--in', 'id.bin', '--bundle-passphrase-file', 'bundle-pass', '--force'))).status).to.equal(0);
    });

    it('a Ctrl-C during the write of a change waits for it and says it was made, even one handled once the write ended; one before the write stops with nothing changed', async () => {
      writeFileSync(join(tmp.dir, 'held.key'), randomBytes(32));
      expect((await cu(['create-store', '--store', 'held-store', '--key-file', 'held.key'])).status).to.equal(0);
      // The child waits on its signal, never on a clock (see it); the limit only keeps a signal that
      // failed to end it from hanging the test (it then ends with SIGTERM, and the test fails).
      const child = (when: string) => spawnSync(process.execPath, supportScript('signal-in-store-change.ts', [join(tmp.dir, 'held-store'), join(tmp.dir, 'held.key'), when]), { cwd: ROOT, encoding: 'utf8', timeout: 45_000 });
      const held = async () => (await cu(['list-items', '--store', 'held-store', '--key-file', 'held.key', '--json'])).json().items.map((i: { version: number }) => i.version);
      const before = child('before');
      expect([before.status, before.signal], before.stderr).to.deep.equal([null, 'SIGINT']);
      expect(before.stderr).not.to.contain('came as the store was being changed');
      expect(await held()).to.deep.equal([]);
      const during = child('during');
      expect([during.status, during.signal], during.stderr).to.deep.equal([null, 'SIGINT']);
      expect(during.stderr).to.contain('cert-utility: SIGINT came as the store was being changed: "held" version 1 was stored; stopping');
      expect(during.stdout).to.equal('');
      expect(await held()).to.deep.equal([1]);
      // Sent during the write and handled only after it ended: still held, and said, not lost.
      const racing = child('racing');
      expect([racing.status, racing.signal], racing.stderr).to.deep.equal([null, 'SIGINT']);
      expect(racing.stderr).to.contain('cert-utility: SIGINT came as the store was being changed: "held" version 2 was stored; stopping');
      expect(await held()).to.deep.equal([1, 2]);
    });

    it('a Ctrl-C during the write of a delete or a rekey waits for the compaction after it too: the files hold neither the version deleted nor the data key wrapped for the old key file', async () => {
      writeFileSync(join(tmp.dir, 'held.key'), randomBytes(32));
      const held = ['--store', 'held-store', '--key-file', 'held.key'];
      expect((await cu(['create-store', ...held])).status).to.equal(0);
      expect((await cu(['put-item', ...held, '--tag', 'gone', '--in', '-'], { input: 'deleted value' })).status).to.equal(0);
      const dir = join(tmp.dir, 'held-store');
      const raw = async (key: string) => {
        const db = new Level<string, Uint8Array>(dir, { valueEncoding: 'view' });
        try {
          return (await db.get(key))!;
        } finally {
          await db.close();
        }
      };
      // Read through LevelDB, which moves its log into a table on opening: the record is in a table, as in any store used for a while.
      const sealed = await raw('e!gone\u000000000001');
      const child = (change: string) => spawnSync(process.execPath, supportScript('signal-in-store-change.ts', [dir, join(tmp.dir, 'held.key'), 'during', change]), { cwd: ROOT, encoding: 'utf8', timeout: 45_000 });
      const holding = (bytes: Uint8Array) => readdirSync(dir).filter((f) => readFileSync(join(dir, f)).indexOf(bytes) >= 0);
      const deleted = child('delete');
      expect([deleted.status, deleted.signal], deleted.stderr).to.deep.equal([null, 'SIGINT']);
      expect(deleted.stderr).to.contain('cert-utility: SIGINT came as the store was being changed: "gone" version 1 was deleted; stopping');
      expect(holding(sealed), 'files holding the version deleted').to.deep.equal([]);
      const meta = await raw('!meta');
      const rekeyed = child('rekey');
      expect([rekeyed.status, rekeyed.signal], rekeyed.stderr).to.deep.equal([null, 'SIGINT']);
      expect(rekeyed.stderr).to.contain('cert-utility: SIGINT came as the store was being changed: the store was rekeyed');
      expect(holding(meta), 'files holding the data key wrapped for the old key file').to.deep.equal([]);
      writeFileSync(join(tmp.dir, 'new-pass'), 'new passphrase');
      expect((await cu(['list-items', '--store', 'held-store', '--passphrase-file', 'new-pass', '--json'])).json().items).to.deep.equal([]);
    });

    it('a Ctrl-C during a delete whose compaction then fails still says the version was deleted, and that the files may hold it, before it stops', async () => {
      writeFileSync(join(tmp.dir, 'held.key'), randomBytes(32));
      const held = ['--store', 'held-store', '--key-file', 'held.key'];
      expect((await cu(['create-store', ...held])).status).to.equal(0);
      expect((await cu(['put-item', ...held, '--tag', 'gone', '--in', '-'], { input: 'deleted value' })).status).to.equal(0);
      const r = spawnSync(process.execPath, supportScript('signal-in-store-change.ts', [join(tmp.dir, 'held-store'), join(tmp.dir, 'held.key'), 'during', 'delete-uncompacted']), { cwd: ROOT, encoding: 'utf8', timeout: 45_000 });
      expect([r.status, r.signal], r.stderr).to.deep.equal([null, 'SIGINT']);
      // Held for the write and its compaction, the signal ended the program silently when the compaction failed: the delete had been made.
      expect(r.stderr).to.contain('cert-utility: SIGINT came as the store was being changed: "gone" version 1 was deleted, but LevelDB\'s files may still hold what was deleted');
      expect((await cu(['list-items', ...held, '--json'])).json().items).to.deep.equal([]);
    });

    it('a Ctrl-C during a put whose write then fails says it failed, and why, before it stops', async () => {
      writeFileSync(join(tmp.dir, 'held.key'), randomBytes(32));
      const held = ['--store', 'held-store', '--key-file', 'held.key'];
      expect((await cu(['create-store', ...held])).status).to.equal(0);
      const r = spawnSync(process.execPath, supportScript('signal-in-store-change.ts', [join(tmp.dir, 'held-store'), join(tmp.dir, 'held.key'), 'during', 'put-failed']), { cwd: ROOT, encoding: 'utf8', timeout: 45_000 });
      expect([r.status, r.signal], r.stderr).to.deep.equal([null, 'SIGINT']);
      // The signal ended the program with nothing said: the operator could not tell the put from one made.
      expect(r.stderr).to.match(/^cert-utility: SIGINT came as the store was being changed, and the change failed: .*i\/o error.*; stopping$/m);
      expect((await cu(['list-items', ...held, '--json'])).json().items).to.deep.equal([]);
    });

    it('rekeys to a new passphrase; the old one then fails with exit 4', async () => {
      await cu(withPass('put-item', '--tag', 'k', '--in', '-'), { input: 'v' });
      writeFileSync(join(tmp.dir, 'new-pass'), 'brand new');
      const r = await cu(withPass('rekey-store', '--new-passphrase-file', 'new-pass', ...CHEAP));
      expect(r.status, r.stderr).to.equal(0);
      expectFailure(await cu(withPass('list-items')), 4, 'WRONG_KEY');
      expect((await cu(['get-item', '--store', store, '--passphrase-file', 'new-pass', '--tag', 'k', '--out', '-'])).out).to.equal('v');
    });

    it('verifies and prints the store without printing values', async () => {
      await cu(withPass('put-item', '--tag', 'k', '--in', '-'), { input: 'hidden-value' });
      const v = await cu(withPass('verify-store', '--json'));
      expect(v.json()).to.deep.equal({ ok: true, entries: 1, tags: 1, problems: [] });
      const p = await cu(withPass('print-store'));
      expect(p.status).to.equal(0);
      expect(p.out).to.contain('protection  passphrase (scrypt N=2^10, r=8, p=1)');
      expect(p.out).not.to.contain('hidden-value');
    });

    it('prints a sealed store\'s platform, as --json has it', async () => {
      writeFileSync(join(tmp.dir, 'program'), 'a program\n');
      for (const args of [['generate-platform-keys', '--out-dir', 'platform'], ['measure', 'program', '--out', 'program.measurement']]) expect((await cu(args)).status).to.equal(0);
      const sealed = ['--store', 'sealed-store', '--sealed', '--platform-dir', 'platform', '--measurement-file', 'program.measurement'];
      expect((await cu(['create-store', ...sealed])).status).to.equal(0);
      const p = await cu(['print-store', ...sealed]);
      expect(p.status, p.stderr).to.equal(0);
      expect(p.out).to.contain('protection  sealed (platform simulated-enclave)\n');
      expect((await cu(['print-store', ...sealed, '--json'])).json().store.protection).to.deep.equal({ kind: 'sealed', platform: 'simulated-enclave' });
    });

    // Whoever reads attest-key.pem opens every store sealed on that platform, its measurement being no secret.
    it('warns of an attestation key every user can read, as of a key file, when it opens a sealed store', async () => {
      writeFileSync(join(tmp.dir, 'program'), 'a program\n');
      for (const args of [['generate-platform-keys', '--out-dir', 'platform'], ['measure', 'program', '--out', 'program.measurement']]) expect((await cu(args)).status).to.equal(0);
      const sealed = ['--store', 'sealed-store', '--sealed', '--platform-dir', 'platform', '--measurement-file', 'program.measurement'];
      expect((await cu(['create-store', ...sealed])).stderr).not.to.contain('attest-key.pem');
      chmodSync(join(tmp.dir, 'platform', 'attest-key.pem'), 0o644);
      const r = await cu(['list-items', ...sealed]);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.contain(`cert-utility: warning: the attestation key ${join('platform', 'attest-key.pem')} can be read by every user of the machine (mode 0644): chmod 600`);
    });

    it('names the attestation key file that holds no private key', async () => {
      writeFileSync(join(tmp.dir, 'program'), 'a program\n');
      for (const args of [['generate-platform-keys', '--out-dir', 'platform'], ['measure', 'program', '--out', 'program.measurement']]) expect((await cu(args)).status).to.equal(0);
      writeFileSync(join(tmp.dir, 'platform', 'attest-key.pem'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
      const r = await cu(['list-items', '--store', 'sealed-store', '--sealed', '--platform-dir', 'platform', '--measurement-file', 'program.measurement']);
      expectFailure(r, 1, 'INVALID_KEY');
      expect(r.stderr).to.contain(`error: ${join('platform', 'attest-key.pem')}: not a private key`);
    });

    it('generates keys of every algorithm as serialized key_messages', async () => {
      for (const alg of ['aes-256-gcm', 'p256', 'p384', 'rsa2048']) {
        const r = await cu(withPass('generate-key', '--tag', `key-${alg}`, '--alg', alg, '--json'));
        expect(r.status, r.stderr).to.equal(0);
        const j = r.json();
        expect(j.item).to.include({ tag: `key-${alg}`, version: 1, type: 'key-message-serialized-protobuf', exportable: false });
        // What is stored is a Certifier key_message of that key, the printed half its public key.
        expect((await cu(withPass('get-item', '--tag', `key-${alg}`, '--out', `key-${alg}.bin`))).status).to.equal(0);
        const km = decode<KeyMessage>('key_message', readFileSync(join(tmp.dir, `key-${alg}.bin`)));
        if (alg === 'aes-256-gcm') {
          expect(j).not.to.have.property('publicKeyPem');
          expect(km).to.include({ keyType: 'aes-256-gcm', keyName: `key-${alg}` });
          expect(km.secretKeyBits).to.have.length(32);
        } else {
          const key = fromKeyMessage(km);
          expect([key.type, keyAlgOf(key)]).to.deep.equal(['private', alg]);
          expect(j.publicKeyPem).to.equal(Buffer.from(exportPublicKey(key, 'pem')).toString());
        }
      }
      const types = (await cu(withPass('list-items', '--json'))).json().items.map((i: { type: string }) => i.type);
      expect(new Set(types)).to.deep.equal(new Set(['key-message-serialized-protobuf']));
    });

    it('stores no key when its --public-key-out cannot be written (taken, or no such directory), and refuses it for a secret key', async () => {
      expect((await cu(withPass('generate-key', '--tag', 'auth', '--alg', 'p256', '--public-key-out', 'auth.pub.pem'))).status).to.equal(0);
      expect(statSync(join(tmp.dir, 'auth.pub.pem')).mode & 0o777, 'a public key, readable by all, as the README says').to.equal(0o644);
      expectFailure(await cu(withPass('generate-key', '--tag', 'auth', '--alg', 'p256', '--public-key-out', 'auth.pub.pem')), 1, 'ALREADY_EXISTS');
      expectFailure(await cu(withPass('generate-key', '--tag', 'auth', '--alg', 'p256', '--public-key-out', 'none/auth.pub.pem')), 1, 'FILE_ERROR');
      expectFailure(await cu(withPass('generate-key', '--tag', 'sym', '--alg', 'aes-256-gcm', '--public-key-out', 'sym.pub.pem')), 2, 'USAGE');
      const items = (await cu(withPass('list-items', '--json'))).json().items.map((i: { tag: string; version: number }) => `${i.tag}@${i.version}`);
      expect(items).to.deep.equal(['auth@1']);
      expect((await fs.readdir(tmp.dir)).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
    });

    it('stores no key when its --public-key-out is taken between the check and the write (a race), and leaves the file found there', async () => {
      const env = { NODE_OPTIONS: `--import ${join(ROOT, 'test/support/plant-before-link.mjs')}`, PLANT_BEFORE_LINK: 'raced.pub.pem' };
      expectFailure(await cu(withPass('generate-key', '--tag', 'raced', '--alg', 'p256', '--public-key-out', 'raced.pub.pem'), { env }), 1, 'ALREADY_EXISTS');
      expect(readFileSync(join(tmp.dir, 'raced.pub.pem'), 'utf8')).to.equal('planted');
      expectFailure(await cu(withPass('get-item', '--tag', 'raced', '--out', '-')), 1, 'NOT_FOUND');
      expect((await fs.readdir(tmp.dir)).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
      // Nothing of the failed run remains: a run once the name is free stores version 1.
      rmSync(join(tmp.dir, 'raced.pub.pem'));
      const r = await cu(withPass('generate-key', '--tag', 'raced', '--alg', 'p256', '--public-key-out', 'raced.pub.pem', '--json'));
      expect(r.json().item.version).to.equal(1);
    });

    it('keeps the key and its public key file together when the store reports a failed write: both when the key is in the store opened again, neither when it is not, and both, saying what to check, when that cannot be learnt', async () => {
      const failing = (when: string, reopenFails = false) => ({ env: { NODE_OPTIONS: `--import ${join(ROOT, 'test/support/level-put-fails.mjs')}`, LEVEL_PUT_FAILS: when, ...(reopenFails ? { LEVEL_REOPEN_FAILS: '1' } : {}) } });
      const generate = (tag: string, o: { env: Record<string, string> }, ...extra: string[]) => cu(withPass('generate-key', '--tag', tag, '--alg', 'p256', '--public-key-out', `${tag}.pub.pem`, ...extra), o);
      const versions = async (tag: string) => (await cu(withPass('list-items', '--json'))).json().items.filter((i: { tag: string }) => i.tag === tag).map((i: { version: number }) => i.version);
      // The write reached LevelDB's log and its sync failed: the store, opened again, holds the key.
      const landed = await generate('landed', failing('after-write'), '--json');
      expect(landed.status, landed.stderr).to.equal(0);
      expect(landed.json().item).to.include({ tag: 'landed', version: 1 });
      expect(landed.stderr).to.contain('the store holds it all the same');
      expect(existsSync(join(tmp.dir, 'landed.pub.pem'))).to.equal(true);
      expect(await versions('landed')).to.deep.equal([1]);
      // Nothing was written: no key, no public key file.
      const lost = await generate('lost', failing('before-write'));
      expectFailure(lost, 1, 'FILE_ERROR');
      expect(lost.stderr).to.contain('the store, opened again, does not hold it: nothing was stored');
      expect(existsSync(join(tmp.dir, 'lost.pub.pem'))).to.equal(false);
      expect(await versions('lost')).to.deep.equal([]);
      // The store cannot be opened again to tell: the public key file stays, and the message says what to check.
      const unknown = await generate('unknown', failing('after-write', true));
      expectFailure(unknown, 1, 'FILE_ERROR');
      expect(unknown.stderr).to.contain('list-items shows whether "unknown" has a new version');
      expect(unknown.stderr).to.contain('unknown.pub.pem is kept');
      expect(existsSync(join(tmp.dir, 'unknown.pub.pem'))).to.equal(true);
      expect(await versions('unknown')).to.deep.equal([1]);
    });

    it('takes the passphrase from CRYPTSTORE_PASSPHRASE', async () => {
      const env = { CRYPTSTORE_PASSPHRASE: 'correct horse battery staple' };
      expect((await cu(['put-item', '--store', store, '--tag', 'k', '--in', '-'], { input: 'env', env })).status).to.equal(0);
      expect((await cu(['get-item', '--store', store, '--tag', 'k', '--out', '-'], { env })).out).to.equal('env');
    });
  });

  it('makes a store again over a create-store that was interrupted, and explains such a store when opened', async () => {
    // Stopped while it derives the store's key (scrypt at 2^20: seconds), before anything is
    // written: the signal goes once the child says the derivation has begun, not after a guessed time.
    const env = { ...process.env, NODE_OPTIONS: `--import ${join(ROOT, 'test/support/announce-scrypt.mjs')}` };
    const child = spawn(process.execPath, [join(ROOT, 'cmd/bin/cert-utility.js'), 'create-store', '--store', store, '--passphrase-file', passFile, '--scrypt-log-n', '20'], { cwd: tmp.dir, env });
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('exit', (code, signal) => r([code, signal])));
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (stderr.includes('SCRYPT_STARTED\n')) resolve();
      });
      void exited.then(() => reject(new Error(`cert-utility ended before it began deriving the key: ${stderr}`)));
    });
    child.kill('SIGINT');
    expect(await exited, stderr).to.deep.equal([null, 'SIGINT']);
    const open = await cu(withPass('list-items'));
    expect(open.status).to.equal(1);
    expect(open.stderr).to.match(/STORE_NOT_FOUND/);
    // The unfinished form: LevelDB's files without a record, as a kill just after opening leaves them.
    const db = new Level(store, { createIfMissing: true });
    await db.open();
    await db.close();
    expectFailure(await cu(withPass('list-items')), 1, 'STORE_NOT_FOUND');
    expect((await cu(withPass('list-items'))).stderr).to.contain('interrupted');
    expect((await cu(withPass('create-store', ...CHEAP))).status).to.equal(0);
    expect((await cu(withPass('list-items'))).status).to.equal(0);
  });

  it('opens a store made with a passphrase file ending in CRLF with the same passphrase in CRYPTSTORE_PASSPHRASE; a lone CR, or a CRLF in the variable, is part of the passphrase', async () => {
    writeFileSync(passFile, 'crlf passphrase\r\n');
    expect((await cu(withPass('create-store', ...CHEAP))).status).to.equal(0);
    const list = (passphrase: string) => cu(['list-items', '--store', store], { env: { CRYPTSTORE_PASSPHRASE: passphrase } });
    expect((await list('crlf passphrase')).status).to.equal(0);
    // One trailing LF or CRLF is left out of a file; the variable is taken whole.
    expectFailure(await list('crlf passphrase\r\n'), 4, 'WRONG_KEY');
    writeFileSync(passFile, 'crlf passphrase\r');
    expectFailure(await cu(withPass('list-items')), 4, 'WRONG_KEY');
    writeFileSync(passFile, 'crlf passphrase\n');
    expect((await cu(withPass('list-items'))).status).to.equal(0);
  });

  it('creates and uses a key-file store', async () => {
    const r = await cu(['new-key-file', '--out', 'store.key']);
    expect(r.status, r.stderr).to.equal(0);
    expect(statSync(join(tmp.dir, 'store.key')).mode & 0o777).to.equal(0o600);
    expect(readFileSync(join(tmp.dir, 'store.key'))).to.have.length(32); // README, "The cryptstore"
    const k = (...args: string[]) => [...args, '--store', store, '--key-file', 'store.key'];
    expect((await cu(k('create-store'))).status).to.equal(0);
    expect((await cu(k('put-item', '--tag', 'k', '--in', '-'), { input: 'kf' })).status).to.equal(0);
    expect((await cu(k('get-item', '--tag', 'k', '--out', '-'))).out).to.equal('kf');
    expectFailure(await cu(withPass('list-items')), 4, 'WRONG_KEY');
  });
});

// key-server serve --certifier with the real programs: a key-server whose certificate is in its
// last days certifies itself again through simpleserver at start, and then serves with the new
// certificate, or fails with the cause when it cannot and has no certificate that serves.
// (Renewal while it runs: test/keyservice/renewal.test.ts.) And init-trust, whose
// renewal ahead of time may fail while the certificate it would replace still serves.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { closedPort, ROOT, run, runScript } from '../support/helpers.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { exportPrivateKey, fromKeyMessage, generateKeyPair, publicKeyOf } from '../../lib/crypto/index.ts';
import { decode, type KeyMessage } from '../../lib/wire/index.ts';
import { createPolicyCert, issueAdmissionCert, parseCertificate, readCertificate, toPem } from '../../lib/pki/index.ts';
import { admissionCertTag, authKeyTag } from '../../lib/certifier/index.ts';
import { SIMULATED_ENCLAVE } from '../../lib/attest/index.ts';
import { readPrivateKeyFile } from '../../cmd/common/keys.ts';
import { Child, Domain, expectFailure, expectSuccess, sleep, startServer, type Machine } from './domain.ts';

describe('e2e: key-server renews its certificate through simpleserver (--certifier)', function () {
  let d: Domain;
  let alice: Machine;
  let shortPort = 0;

  before(async () => {
    ({ d, machines: { alice } } = await Domain.setUp({ alice: 'client-alice' }, { programs: ['key-server', 'client-alice'] }));
    // A simpleserver that issues certificates of one day.
    const { child, port } = await startServer('simpleserver', [...d.simpleserverArgs(), '--cert-days', '1']);
    d.adopt(child);
    shortPort = port;
  });
  after(async () => d?.close());

  const platform = (program = 'key-server') => ['--platform', 'simulated', '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile(program)];

  it('certifies itself again at start when its certificate is in its last days, then serves with the new one', async () => {
    const ks: Machine = { name: 'ks-short', program: 'key-server', store: d.path('ks-short'), storeArgs: [] };
    ks.storeArgs = ['--store', ks.store, '--key-file', d.keyFile];
    const first = expectSuccess(await run('cert-utility', ['init-trust', '--domain', d.name, '--policy-cert', d.policyCertFile, '--server', `127.0.0.1:${shortPort}`, ...ks.storeArgs, ...platform(), '--json'])).json();
    // A fresh short certificate is renewed only past half its life: store one that is.
    await ageCertificate(ks.store);
    await d.withKeyServer(ks, { args: ['--certifier', `127.0.0.1:${shortPort}`, ...platform()] }, async (server) => {
      const renewed = /identity-renewed serial=([0-9a-f]+) notAfter=(\S+)/.exec(server.child.stderr);
      expect(renewed, server.child.stderr).to.not.equal(null);
      expect(renewed![1]).to.not.equal(first.serial);
      expect(server.child.stderr).to.contain(`serving as serial ${renewed![1]} `);
      // A routine renewal: no why.
      expect(server.child.stderr).to.not.match(/identity-renewed .*why=/);
      expectSuccess(await d.kc(alice, server, 'store', ['renewed/k', '--in', '-'], randomBytes(32)));
    });
  });

  it('certifies itself again at start when its stored certificate is another policy key\'s (the key replaced), logged identity-renewed why=other-policy-key, not as a routine renewal', async () => {
    const ks = await d.certify('ks-old-policy', 'key-server');
    // The certificate in the store, still valid for days, issued under a policy key it was not started with.
    await ageCertificate(ks.store, { policy: await otherPolicy('old-policy', 30, 86_400_000), endsInMs: 10 * 86_400_000 });
    await d.withKeyServer(ks, { args: ['--certifier', `127.0.0.1:${shortPort}`, ...platform()] }, async (server) => {
      expect(server.child.stderr).to.match(/ identity-renewed serial=[0-9a-f]+ notAfter=\S+ why=other-policy-key\n/);
      expectSuccess(await d.kc(alice, server, 'store', ['old-policy/k', '--in', '-'], randomBytes(32)));
    });
  });

  it('serves no more requests on a connection once its own certificate has ended (without --certifier): CERT_EXPIRED there, and at the handshake of the new connection the client then tries, naming the server\'s certificate', async () => {
    const ks = await d.certify('ks-ending', 'key-server');
    await ageCertificate(ks.store, { endsInMs: 3_000 });
    await d.withKeyServer(ks, {}, async (server) => {
      await d.withClient(server, alice, async (c) => {
        await c.store('ending/k', randomBytes(8));
        await server.child.waitForLog(/ identity-expired /, 0, 10_000);
        // Refused on its connection, then sent again on a new one, whose handshake meets the ended certificate.
        const e = await c.store('ending/k', randomBytes(8)).then(() => undefined, (err: unknown) => err as { code?: string; message?: string });
        expect(e?.code).to.equal('CERT_EXPIRED');
        expect(e?.message).to.match(/^127\.0\.0\.1:\d+ presented a certificate that ended at \S+ \(CERT_HAS_EXPIRED/).and.contain("a key-server: cert-utility init-trust, or --certifier");
      });
      const refused = / request conn=(\S+) .*decision=deny code=CERT_EXPIRED .*detail="this key-server's own certificate ended at /.exec(server.child.stderr);
      expect(refused, server.child.stderr).to.not.equal(null);
      // The server closed that connection once the refusal was written (a client that does not
      // look at the code is made to connect again), not its client.
      await server.child.waitForLog(new RegExp(` closed conn=${refused![1]} .*reason=last-answer requests=2 answered=2 dropped=0 `));
    });
  });

  /**
   * Replaces the store's admission certificate by one for the same key past half its life: issued
   * as early as the policy certificate allows (its start, a few minutes back), lasting 1.5 times
   * its age, so that a third of its life (a minute or more) is left; `expired`, lasting a second.
   * Under `policy` (key and certificate files) instead of the domain's.
   */
  /** A policy key and certificate of the domain other than d's, valid for `days` from `agoMs` ago: their files. */
  async function otherPolicy(name: string, days: number, agoMs: number): Promise<{ key: string; cert: string }> {
    const privateKey = (await generateKeyPair('p256')).privateKey;
    const files = { key: d.path(`${name}-key.pem`), cert: d.path(`${name}-cert.pem`) };
    writeFileSync(files.key, exportPrivateKey(privateKey), { mode: 0o600 });
    writeFileSync(files.cert, toPem(await createPolicyCert({ privateKey, domain: d.name, days, now: new Date(Date.now() - agoMs) })));
    return files;
  }

  async function ageCertificate(store: string, o: { program?: string; expired?: boolean; endsInMs?: number; policy?: { key: string; cert: string } } = {}): Promise<void> {
    const s = await Cryptstore.open(store, new KeyFileProtector(readFileSync(d.keyFile), 'the key file'));
    try {
      const key = fromKeyMessage(decode<KeyMessage>('key_message', (await s.get(authKeyTag(d.name))).blob));
      const policyCert = readCertificate(readFileSync(o.policy?.cert ?? d.policyCertFile));
      const issued = parseCertificate(policyCert).notBefore.getTime() + 1_000;
      const cert = await issueAdmissionCert({
        policyKey: await readPrivateKeyFile(o.policy?.key ?? d.policyKey), policyCert, subjectPublicKey: publicKeyOf(key),
        measurement: Buffer.from(d.measurementHex(o.program ?? 'key-server'), 'hex'), platform: SIMULATED_ENCLAVE, domain: d.name,
        validitySeconds: o.expired ? 1 : o.endsInMs ? Math.ceil((Date.now() + o.endsInMs - issued) / 1000) : Math.floor((1.5 * (Date.now() - issued)) / 1000), now: new Date(issued),
      });
      await s.put(admissionCertTag(d.name), cert, { type: 'X509-der-cert', exportable: true });
    } finally {
      await s.close();
    }
  }

  it('init-trust replaces a stored certificate of another policy key (the key replaced) and says so: a line on stderr, why under --json', async () => {
    const m = await d.certify('vm-old-policy', 'client-alice');
    const old = (await d.identity(m)).peer.serialHex;
    await ageCertificate(m.store, { program: 'client-alice', policy: await otherPolicy('old-policy', 30, 86_400_000), endsInMs: 10 * 86_400_000 });
    const r = expectSuccess(await run('cert-utility', [...d.initTrustArgs(m), '--json']));
    expect(r.json()).to.include({ status: 'certified', why: 'other-policy-key' });
    expect(r.json().serial).to.not.equal(old);
    expect(r.stderr).to.contain(`\ncert-utility: replaced this machine's admission certificate for "${d.name}": the stored one was issued under another policy key than --policy-cert's (as after the policy key is replaced; see "Replacing the policy key")\n`);
    // Certified again for another reason (--force here), or not at all: no why, no line.
    const again = expectSuccess(await run('cert-utility', [...d.initTrustArgs(m), '--force', '--json']));
    expect(again.json()).to.include({ status: 'certified' }).and.not.have.property('why');
    const text = expectSuccess(await run('cert-utility', d.initTrustArgs(m)));
    for (const o of [again, text]) expect(o.stderr).to.not.contain('replaced');
  });

  describe('init-trust with simpleserver down', () => {
    const initTrust = async (m: Machine, more: string[] = []) => run('cert-utility', ['init-trust', '--domain', d.name, '--policy-cert', d.policyCertFile, '--server', `127.0.0.1:${await closedPort()}`,
      ...m.storeArgs, ...platform('client-alice'), ...more]);

    it('keeps a certificate due for renewal but still valid: a warning saying until when, exit 0, renewalFailed under --json', async () => {
      const m = await d.certify('due', 'client-alice');
      await ageCertificate(m.store, { program: 'client-alice' });
      const r = expectSuccess(await initTrust(m, ['--json']));
      expect(r.json()).to.include({ status: 'already-certified' }).and.to.have.nested.property('renewalFailed.code', 'UNREACHABLE');
      expect(r.stderr).to.match(/warning: could not renew this machine's certificate through 127\.0\.0\.1:\d+ \(.*\[UNREACHABLE\]\); it is still valid until \S+Z/);
    });

    it('still fails when the certificate must be renewed (expired): UNREACHABLE, exit 3', async () => {
      const m = await d.certify('expired', 'client-alice');
      await ageCertificate(m.store, { program: 'client-alice', expired: true });
      expectFailure(await initTrust(m), 3, 'UNREACHABLE');
    });

    it('lets first-boot go on to fetch the keys from key-server with the certificate still valid', async () => {
      await d.withKeyServer(await d.certify('ks-boot', 'key-server'), {}, async (server) => {
        expectSuccess(await d.kc(alice, server, 'store', ['boot/k', '--in', '-'], randomBytes(32)));
        const vm = await d.certify('vm-due', 'client-alice');
        await ageCertificate(vm.store, { program: 'client-alice' });
        const r = await runScript('first-boot.sh', ['--host', '127.0.0.1', '--certifier-port', String(await closedPort()), '--keyserver-port', String(server.port),
          '--keys', 'boot/k', '--domain', d.name, '--policy-cert', d.policyCertFile, ...vm.storeArgs, ...platform('client-alice'),
          '--server-measurement', server.measurementHex, '--retries', '1']);
        expect(r.status, r.stderr).to.equal(0);
        expect(r.stderr).to.contain('still valid until').and.contain('done: boot/k kept in');
      });
    });
  });

  it('with no store at all, makes it and certifies itself, as init-trust would, then serves, and keeps that store when stopped', async () => {
    const ks: Machine = { name: 'ks-new', program: 'key-server', store: d.path('ks-new'), storeArgs: [] };
    ks.storeArgs = ['--store', ks.store, '--key-file', d.keyFile];
    const server = await d.startKeyServer(ks, { args: ['--certifier', `127.0.0.1:${shortPort}`, ...platform()] });
    const key = randomBytes(32);
    try {
      // its first certificate: certified, not renewed
      expect(server.child.stderr).to.match(/identity-certified serial=[0-9a-f]+/).and.not.contain('identity-renewed');
      expectSuccess(await d.kc(alice, server, 'store', ['new-store/k', '--in', '-'], key));
    } finally {
      // Once it serves, the store it made is its own: SIGTERM stops it gracefully and takes nothing away.
      expect(await server.child.stop()).to.deep.equal({ code: 0, signal: null });
    }
    expect(server.child.stderr).to.match(/\nkey-server: stopped\n$/);
    await d.withKeyServer(ks, { data: server.data }, async (again) => {
      expect(expectSuccess(await d.kc(alice, again, 'retrieve', ['new-store/k', '--out', '-'])).stdout.equals(key)).to.equal(true);
    });
  });

  describe('with simpleserver down at start', () => {
    const serve = async (ks: Machine, data: string) => run('key-server', [...d.keyServerArgs(ks, data), '--certifier', `127.0.0.1:${await closedPort()}`, ...platform()]);

    it('serves with a stored certificate due for renewal but still valid, and says until when', async () => {
      const ks = await d.certify('ks-due', 'key-server');
      await ageCertificate(ks.store);
      await d.withKeyServer(ks, { args: ['--certifier', `127.0.0.1:${await closedPort()}`, ...platform()] }, async (server) => {
        expect(server.child.stderr).to.match(/warning: could not certify through 127\.0\.0\.1:\d+ at start \(.*\[UNREACHABLE\]\); serving with the certificate in the store, valid until \S+Z/);
        expectSuccess(await d.kc(alice, server, 'store', ['due/k', '--in', '-'], randomBytes(32)));
      });
    });

    it('with no store, fails UNREACHABLE (exit 3, worth a retry) without claiming to serve, and leaves neither the store nor --data', async () => {
      const ks: Machine = { name: 'ks-none', program: 'key-server', store: d.path('ks-none'), storeArgs: [] };
      ks.storeArgs = ['--store', ks.store, '--key-file', d.keyFile];
      const data = d.path('none-data');
      const r = await serve(ks, data);
      expectFailure(r, 3, 'UNREACHABLE');
      expect(r.stderr).to.contain('has no certificate yet').and.not.contain('serving');
      expect(existsSync(ks.store), 'store').to.equal(false);
      expect(existsSync(data), '--data').to.equal(false);
    });

    it('with no store, removes the store it made when it is stopped (SIGTERM) while simpleserver does not answer', async () => {
      // Accepts, then says nothing: the TLS handshake waits. A connection means the store is made.
      let connected = false;
      const hang = net.createServer(() => void (connected = true));
      await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
      try {
        const store = d.path('ks-stopped');
        const data = d.path('stopped-data');
        const child = new Child('key-server', spawn(process.execPath, [join(ROOT, 'cmd', 'bin', 'key-server.js'), 'serve', '--domain', d.name, '--policy-cert', d.policyCertFile,
          '--data', data, '--listen', '127.0.0.1:0', '--store', store, '--key-file', d.keyFile, '--certifier', `127.0.0.1:${(hang.address() as net.AddressInfo).port}`, ...platform()]));
        for (let i = 0; i < 400 && !connected && child.running; i++) await sleep(50);
        expect(existsSync(join(store, 'CURRENT')), `the store was made; stderr:\n${child.stderr}`).to.equal(true);
        expect(await child.stop()).to.deep.equal({ code: null, signal: 'SIGTERM' });
        expect(existsSync(store), 'the store it made is gone').to.equal(false);
        expect(existsSync(data), '--data').to.equal(false);
      } finally {
        hang.close();
      }
    });

    describe('simpleserver stopped (SIGSTOP): it takes the connection and says nothing', () => {
      let stopped: Child;
      let stoppedPort = 0;
      before(async () => {
        const { child, port } = await startServer('simpleserver', d.simpleserverArgs());
        d.adopt(child);
        process.kill(child.pid, 'SIGSTOP');
        [stopped, stoppedPort] = [child, port];
      });
      after(() => {
        if (stopped.running) process.kill(stopped.pid, 'SIGCONT');
      });
      const certifier = () => ['--certifier', `127.0.0.1:${stoppedPort}`, ...platform(), '--timeout', '1'];

      it('waits --timeout for it at start, then serves with a stored certificate due for renewal, to try again later', async () => {
        const ks = await d.certify('ks-due-stopped', 'key-server');
        await ageCertificate(ks.store);
        await d.withKeyServer(ks, { args: certifier() }, async (server) => {
          expect(server.child.stderr).to.contain(`warning: could not certify through 127.0.0.1:${stoppedPort} at start (TLS handshake with 127.0.0.1:${stoppedPort} timed out after 1000 ms [TIMEOUT]); serving with the certificate in the store, valid until `)
            .and.contain(', and trying again later');
          expectSuccess(await d.kc(alice, server, 'store', ['due-stopped/k', '--in', '-'], randomBytes(32)));
        });
      });

      it('with no store, fails TIMEOUT (exit 3, worth a retry) naming --timeout, and leaves neither the store nor --data', async () => {
        const store = d.path('ks-none-stopped');
        const data = d.path('none-stopped-data');
        const r = await run('key-server', ['serve', '--domain', d.name, '--policy-cert', d.policyCertFile, '--data', data, '--listen', '127.0.0.1:0', '--store', store, '--key-file', d.keyFile, ...certifier()]);
        expectFailure(r, 3, 'TIMEOUT');
        expect(r.stderr).to.contain(`has no certificate yet: TLS handshake with 127.0.0.1:${stoppedPort} timed out after 1000 ms (--timeout 1)`);
        expect(existsSync(store), 'store').to.equal(false);
        expect(existsSync(data), '--data').to.equal(false);
      });
    });

    it('takes --timeout only with --certifier, from 1 to 3600 seconds (USAGE)', async () => {
      const ks = await d.certify('ks-timeout-flag', 'key-server');
      const serve = (more: string[]) => run('key-server', [...d.keyServerArgs(ks, d.path('timeout-data')), ...more]);
      const alone = await serve(['--timeout', '5']);
      expectFailure(alone, 2, 'USAGE');
      expect(alone.stderr).to.contain('--timeout goes with --certifier');
      for (const bad of ['0', '3601']) expectFailure(await serve(['--certifier', `127.0.0.1:${shortPort}`, ...platform(), '--timeout', bad]), 2, 'USAGE');
    });

    it('with an expired certificate, fails UNREACHABLE (exit 3) naming it, and keeps the store', async () => {
      const ks = await d.certify('ks-expired', 'key-server');
      await ageCertificate(ks.store, { expired: true });
      const r = await serve(ks, d.path('expired-data'));
      expectFailure(r, 3, 'UNREACHABLE');
      expect(r.stderr).to.contain('cannot serve').and.contain('expired').and.not.contain('serving');
      expect((await d.store(ks, 'list-items')).status).to.equal(0);
    });
  });

  describe('a certificate due for renewal that ends with the policy certificate', () => {
    // A one-day policy certificate (of the same domain) with four hours left: a certificate aged
    // under it lasts to its end, and no renewal would take it further.
    const policy = { key: '', cert: '' };
    before(async () => {
      Object.assign(policy, await otherPolicy('ending-policy', 1, 20 * 3_600_000));
    });
    const capped = async (name: string, program = 'key-server') => {
      const m = await d.certify(name, program);
      await ageCertificate(m.store, { program, policy });
      return m;
    };
    /** key-server serve --certifier (simpleserver down) with `ks`'s store and that policy certificate: its stderr once it listens. */
    const serve = async (ks: Machine) => {
      const { child } = await startServer('key-server', ['serve', '--domain', d.name, '--policy-cert', policy.cert, '--data', d.path('capped-data'), '--listen', '127.0.0.1:0',
        ...ks.storeArgs, '--certifier', `127.0.0.1:${await closedPort()}`, ...platform()]);
      await child.stop();
      return child.stderr;
    };

    it('init-trust keeps it without asking simpleserver, and says that no renewal extends it', async () => {
      const m = await capped('vm-capped', 'client-alice');
      const r = expectSuccess(await run('cert-utility', ['init-trust', '--domain', d.name, '--policy-cert', policy.cert, '--server', `127.0.0.1:${await closedPort()}`,
        ...m.storeArgs, ...platform('client-alice'), '--json']));
      expect(r.json()).to.include({ status: 'already-certified' }).and.not.have.property('renewalFailed');
      expect(r.json().endsWithPolicyCert).to.equal(r.json().notAfter);
      expect(r.stderr).to.contain('is due for renewal, but it ends with the policy certificate').and.contain('no renewal extends it').and.not.contain('run init-trust again');
    });

    it('key-server serve --certifier starts with it, not renewing it, and says so', async () => {
      const stderr = await serve(await capped('ks-capped'));
      expect(stderr).to.contain('is due for renewal, but it ends with the policy certificate').and.not.contain('could not certify').and.not.contain('identity-renewed');
    });

    it('key-server serve --certifier that cannot certify itself anew (another measurement) does not promise to try again', async () => {
      const stderr = await serve(await capped('ks-capped-other', 'client-alice'));
      expect(stderr).to.match(/warning: could not certify through 127\.0\.0\.1:\d+ at start .*; serving with the certificate in the store, valid until \S+Z; it ends with the policy certificate .*no renewal extends it/);
      expect(stderr).to.not.contain('trying again later');
    });
  });

  it('needs the platform to certify with: --certifier without it is a usage error', async () => {
    const ks = await d.certify('ks-noplatform', 'key-server');
    const r = await run('key-server', [...d.keyServerArgs(ks, d.path('np-data')), '--certifier', `127.0.0.1:${shortPort}`]);
    expectFailure(r, 2, 'USAGE');
  });
});

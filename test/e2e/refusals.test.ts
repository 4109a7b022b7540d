// Every refusal of the key-server, with the real programs on loopback: each fails with its own code
// and exit status, and the same server process goes on serving a good client right after it.

import { expect } from 'chai';
import type { KeyObject } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { generateKeyPair, sign } from '../../lib/crypto/index.ts';
import { createPolicyCert, issueAdmissionCert, parseCertificate, readCertificate, toPem } from '../../lib/pki/index.ts';
import type { MachineIdentity } from '../../lib/certifier/index.ts';
import { connect } from '../../lib/channel/index.ts';
import { CHALLENGE_EXPORTER_LABEL, challengeMessage, encodeKeyRequest, parseKeyResponse } from '../../lib/keyservice/protocol.ts';
import { readPrivateKeyFile } from '../../cmd/common/keys.ts';
import { Domain, expectFailure, expectSuccess, type KeyServer, type Machine } from './domain.ts';
import { rejects } from '../support/rejects.ts';
import { ROOT, run, runScript } from '../support/helpers.ts';


describe('e2e: key-server refusals, each with its own code, while it keeps serving', function () {
  let d: Domain;
  let other: Domain; // a second domain of the same name, under another policy key
  let server: KeyServer;
  let good: Machine;
  let denied: Machine;
  let stranger: Machine;
  let goodIdentity: MachineIdentity;
  const canary = randomBytes(32);
  let role: { cert: string; key: string; der: Uint8Array; wrongKey: string; oldCert?: string; oldDer?: Uint8Array };

  before(async () => {
    let ks: Machine;
    [{ d, machines: { keyserver: ks, good, denied } }, { d: other, machines: { stranger } }] = await Promise.all([
      Domain.setUp({ keyserver: 'key-server', good: 'client-good', denied: 'client-denied' }), Domain.setUp({ stranger: 'client-stranger' }),
    ]);
    server = await d.startKeyServer(ks, {
      acl: {
        version: 1,
        rules: [
          { comment: 'the good client does everything but delete', resources: ['**'], actions: ['store', 'retrieve', 'list'], measurements: [d.measurementHex('client-good')] },
          { comment: 'operators delete', resources: ['**'], actions: ['delete'], roles: ['operator'] },
        ],
      },
    });
    goodIdentity = await d.identity(good);
    await d.withClient(server, goodIdentity, (c) => c.store('canary', canary));

    // A role credential: cert-utility issue-role-cert for a key of our own; and a key that is not its key.
    const { privateKey, publicKey } = await generateKeyPair('p256');
    const wrong = await generateKeyPair('p256');
    role = { cert: d.path('operator-cert.pem'), key: d.path('operator-key.pem'), wrongKey: d.path('wrong-key.pem'), der: new Uint8Array() };
    const pub = d.path('operator-pub.pem');
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(role.key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(role.wrongKey, wrong.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const issued = await d.cu(['issue-role-cert', '--policy-key', d.policyKey, '--policy-cert', d.policyCertFile, '--public-key', pub, '--role', 'operator', '--out', role.cert]);
    expect(issued.out).to.contain('role operator');
    role.der = readCertificate(readFileSync(role.cert));
    // One as issue-role-cert made them before 2026-12-05, with the TLS purposes: only our own checks refuse it as a TLS identity.
    role.oldDer = await issueAdmissionCert({
      policyKey: await readPrivateKeyFile(d.policyKey), policyCert: d.policyCert, subjectPublicKey: publicKey,
      measurement: createHash('sha256').update('role:operator').digest(), platform: 'role:operator', domain: d.name, validitySeconds: 86_400,
    });
    role.oldCert = d.path('operator-old-cert.pem');
    writeFileSync(role.oldCert, toPem(role.oldDer));
  });
  after(async () => {
    await d?.close();
    await other?.close();
  });

  let pid = 0;
  /** The same key-server process still serves the good client. */
  async function stillServes(): Promise<void> {
    pid ||= server.child.pid;
    const r = expectSuccess(await d.kc(good, server, 'retrieve', ['canary', '--out', '-']));
    expect(r.stdout.equals(canary), 'the good client got the canary').to.equal(true);
    expect(server.child.running).to.equal(true);
    expect(server.child.pid).to.equal(pid);
  }

  describe('servers key-client refuses before it sends anything', () => {
    it('refuses a key-server that runs a measurement other than the pinned one: UNTRUSTED_PEER, exit 4, nothing written', async () => {
      const out = d.path('unpinned.out');
      const r = await d.kc(good, { ...server, measurementHex: '00'.repeat(32) }, 'retrieve', ['canary', '--out', out]);
      expectFailure(r, 4, 'UNTRUSTED_PEER');
      expect(r.stderr).to.contain(`runs measurement ${server.measurementHex}, not one of those pinned: check that --server names the key-server, and, for a new key-server program, pin its measurement too (--server-measurement, repeatable; README "Upgrading")`);
      expect(existsSync(out)).to.equal(false);
      await stillServes();
    });

    it('refuses simpleserver as a key-server, pinned or not: its certificate is the policy authority\'s (UNTRUSTED_PEER, exit 4)', async () => {
      const args = ['retrieve', 'canary', '--out', '-', '--server', `127.0.0.1:${d.certifierPort}`, '--domain', d.name, '--policy-cert', d.policyCertFile, ...good.storeArgs];
      const unpinned = await run('key-client', args, { cwd: d.dir });
      expectFailure(unpinned, 4, 'UNTRUSTED_PEER');
      expect(unpinned.stderr).to.contain("the server presented the policy authority's (simpleserver's) certificate, not a certified machine's certificate: --server names simpleserver, the certifier (init-trust's --server), not a key-server [UNTRUSTED_PEER]");
      expect(unpinned.stdout.length).to.equal(0);
      // Even pinned to the authority's own measurement (the policy certificate's hash).
      const authority = createHash('sha256').update(d.policyCert).digest('hex');
      const pinned = await run('key-client', [...args, '--server-measurement', authority], { cwd: d.dir });
      expectFailure(pinned, 4, 'UNTRUSTED_PEER');
      expect(pinned.stderr).to.contain("not a certified machine's certificate");
    });

    it('init-trust refuses a key-server as its certifier, saying --server names a certified machine (UNTRUSTED_PEER, exit 4), and certifies nothing', async () => {
      const r = await run('cert-utility', ['init-trust', '--server', server.address, '--domain', d.name, '--policy-cert', d.policyCertFile, ...good.storeArgs, '--force',
        '--platform', 'simulated', '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile('client-good')], { cwd: d.dir });
      expectFailure(r, 4, 'UNTRUSTED_PEER');
      expect(r.stderr).to.contain('the server is a certified machine (platform simulated-enclave), not the policy authority: --server names a key-server or another certified machine, not simpleserver [UNTRUSTED_PEER]');
      await stillServes();
    });

    it('refuses an ended policy certificate before connecting, saying the policy key must be replaced: CERT_EXPIRED, exit 4 (key-client, init-trust, join)', async () => {
      // The domain's, as it would be once its days are over: one of a day that ended a day ago.
      const ended = d.path('ended-policy-cert.pem');
      writeFileSync(ended, toPem(await createPolicyCert({ privateKey: (await generateKeyPair('p256')).privateKey, domain: d.name, days: 1, now: new Date(Date.now() - 2 * 86_400_000) })));
      const pinned = ['--domain', d.name, '--policy-cert', ended, ...good.storeArgs];
      const runs = await Promise.all([
        run('key-client', ['retrieve', 'canary', '--out', '-', '--server', server.address, '--server-measurement', server.measurementHex, ...pinned], { cwd: d.dir }),
        run('cert-utility', ['init-trust', '--server', `127.0.0.1:${d.certifierPort}`, ...pinned, '--platform', 'simulated', '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile('client-good')], { cwd: d.dir }),
        run('key-server', ['join', '--from', server.address, ...pinned], { cwd: d.dir }),
      ]);
      for (const r of runs) {
        expectFailure(r, 4, 'CERT_EXPIRED');
        expect(r.stderr).to.contain('the policy certificate expired at').and.contain('the policy key must be replaced (README "Replacing the policy key")');
      }
    });

    it('refuses a --server-measurement that is not 64 or 96 hex digits before connecting: USAGE, exit 2', async () => {
      const from = server.child.mark();
      for (const bad of ['00', 'zz'.repeat(32), '0'.repeat(65)]) {
        const r = await run('key-client', ['retrieve', 'canary', '--out', '-', ...d.clientArgs(good, server), '--server-measurement', bad], { cwd: d.dir });
        expectFailure(r, 2, 'USAGE');
        expect(r.stderr).to.contain('is not a measurement (64 or 96 hex digits)');
      }
      // Upper-case hex is the same measurement.
      expectSuccess(await d.kc(good, { ...server, measurementHex: server.measurementHex.toUpperCase() }, 'retrieve', ['canary', '--out', '-']));
      expect(server.child.stderr.slice(from)).not.to.match(/ refused /);
    });
  });

  describe('peers the TLS layer refuses', () => {
    it('refuses a client certified under another policy key of the same domain name: UNTRUSTED_PEER, exit 4', async () => {
      // key-client itself will not present a certificate its pinned policy certificate does not vouch for.
      const r = await d.kc(stranger, server, 'retrieve', ['canary', '--out', '-']);
      expectFailure(r, 4, 'UNTRUSTED_PEER');
      expect(r.stdout.length).to.equal(0);
      expect(r.stderr).to.contain('this machine\'s own admission certificate').and.contain('init-trust and the new policy certificate');
      // Presented anyway (from this process), the key-server refuses it in the handshake.
      const from = server.child.mark();
      const e = await rejects(d.connect(server, await other.identity(stranger)).then((c) => c.retrieve('canary')), 'UNTRUSTED_PEER');
      expect(e.exitStatus).to.equal(4);
      const line = await server.child.waitForLog(/ refused .*reason=untrusted-peer/, from);
      expect(line).to.contain('code=UNTRUSTED_PEER');
      await stillServes();
    });

    it('refuses an expired admission certificate: CERT_EXPIRED (exit 4) at the client, UNTRUSTED_PEER from the server, which logs CERT_EXPIRED', async () => {
      // Signed by the real policy key for the good client's measurement, valid for one minute two minutes ago.
      const { machine: expired, key: privateKey, certificate } = await d.issuedMachine('expired', 'client-good', 60, new Date(Date.now() - 120_000));

      const r = await d.kc(expired, server, 'retrieve', ['canary', '--out', '-']);
      expectFailure(r, 4, 'CERT_EXPIRED');
      expect(r.stderr).to.match(/expired at /);

      // Past the local check, the server refuses it.
      const identity: MachineIdentity = { ...goodIdentity, key: privateKey, certificate };
      const from = server.child.mark();
      const e = await rejects(d.connect(server, identity).then((c) => c.retrieve('canary')), 'UNTRUSTED_PEER');
      expect(e.exitStatus).to.equal(4);
      const line = await server.child.waitForLog(/ refused /, from);
      expect(line).to.match(/ reason=untrusted-peer code=CERT_EXPIRED /);
      await stillServes();
    });

    it('refuses a role credential presented as the TLS identity: it stands for an operator, not an attested machine (UNTRUSTED_PEER)', async () => {
      const key = await readPrivateKeyFile(role.key);
      // One of today: TLS itself refuses it (its extended key usage is neither TLS purpose).
      let from = server.child.mark();
      let e = await rejects(d.connect(server, { ...goodIdentity, key, certificate: role.der }).then((c) => c.retrieve('canary')), 'UNTRUSTED_PEER');
      expect(e.exitStatus).to.equal(4);
      await server.child.waitForLog(/ refused .*code=UNTRUSTED_PEER tlsError=INVALID_PURPOSE/, from);
      // One issued before, with the TLS purposes: our check refuses it.
      from = server.child.mark();
      e = await rejects(d.connect(server, { ...goodIdentity, key, certificate: role.oldDer! }).then((c) => c.retrieve('canary')), 'UNTRUSTED_PEER');
      expect(e.exitStatus).to.equal(4);
      await server.child.waitForLog(/ refused .*code=UNTRUSTED_PEER .*a role credential \(role:operator\)/, from);
      await stillServes();
    });

    it('key-client refuses a server presenting a role credential as its certificate, before sending anything', async () => {
      // A TLS server with the operator's role certificate: whoever holds that key could pose as key-server otherwise.
      const { serve } = await import('../../lib/channel/index.ts');
      // Today's (TLS refuses its purpose) and one issued before, with the TLS purposes (our check refuses it).
      for (const [cert, says] of [[role.cert, 'INVALID_PURPOSE'], [role.oldCert!, 'a role credential (role:operator)']] as const) {
        let asked = 0;
        const fake = await serve({
          host: '127.0.0.1', port: 0, handler: async (req: Uint8Array) => (asked++, req),
          tls: { key: readFileSync(role.key, 'utf8'), cert: readFileSync(cert, 'utf8'), ca: toPem(d.policyCert), requestCert: true },
        });
        try {
          const r = await run('key-client', ['store', 'vhd/planted', '--in', '-', '--server', `127.0.0.1:${fake.address.port}`, '--domain', d.name, '--policy-cert', d.policyCertFile, ...good.storeArgs], { cwd: d.dir, input: 'secret' });
          expectFailure(r, 4, 'UNTRUSTED_PEER');
          expect(r.stderr).to.contain(says);
          expect(asked).to.equal(0);
        } finally {
          await fake.close();
        }
      }
    });

    it('refuses a client that presents no certificate: UNTRUSTED_PEER', async () => {
      const from = server.child.mark();
      const conn = await connect({ host: '127.0.0.1', port: server.port, tls: { ca: toPem(d.policyCert) } });
      const e = await rejects(conn.request(encodeKeyRequest({ action: 'retrieve', name: 'canary' })), 'UNTRUSTED_PEER');
      expect(e.exitStatus).to.equal(4);
      await conn.close().catch(() => {});
      await server.child.waitForLog(/ refused .*code=UNTRUSTED_PEER .*PEER_DID_NOT_RETURN_A_CERTIFICATE/, from);
      await stillServes();
    });
  });

  describe('requests the key service refuses', () => {
    it('denies a client whose measurement the ACL does not name: ACL_DENIED, exit 1', async () => {
      const r = await d.kc(denied, server, 'retrieve', ['canary', '--out', '-']);
      expectFailure(r, 1, 'ACL_DENIED');
      expect(r.stdout.length).to.equal(0);
      expectFailure(await d.kc(denied, server, 'store', ['denied/new', '--in', '-'], Buffer.from('x')), 1, 'ACL_DENIED');
      const line = await server.child.waitForLog(new RegExp(`measurement=${d.measurementHex('client-denied')} action=retrieve resource=canary decision=deny code=ACL_DENIED`));
      // The client got the code alone; the server's line says why.
      expect(line).to.contain(String.raw`detail="retrieve of \"canary\" denied: no ACL rule for measurement ${d.measurementHex('client-denied')} or serial number `).and.contain('allows retrieve with a pattern that matches the name; to allow it, add one to the ACL and reload it (SIGHUP)"');
      expect(r.stderr).not.to.contain('denied:');
      await stillServes();
    });

    it('keeps a value stored with --not-exportable but never releases it: NOT_EXPORTABLE, exit 1', async () => {
      expectSuccess(await d.kc(good, server, 'store', ['sealed/key', '--in', '-', '--not-exportable'], randomBytes(32)));
      const r = await d.kc(good, server, 'retrieve', ['sealed/key', '--out', '-']);
      expectFailure(r, 1, 'NOT_EXPORTABLE');
      expect(r.stdout.length).to.equal(0);
      const listed = expectSuccess(await d.kc(good, server, 'list', ['sealed/', '--json'])).json().items;
      expect(listed).to.have.length(1);
      expect(listed[0]).to.include({ name: 'sealed/key', exportable: false });
      await stillServes();
    });

    it("refuses to address the server's own keys: RESERVED_NAME, exit 1", async () => {
      for (const name of [`${d.name}-private-auth-key`, `${d.name}-admission-certificate`]) {
        const r = await d.kc(good, server, 'retrieve', [name, '--out', '-']);
        expectFailure(r, 1, 'RESERVED_NAME');
        expect(r.stdout.length).to.equal(0);
      }
      // The storage key: key-client will not even ask for it (USAGE); the server refuses it to a store.
      expectFailure(await d.kc(good, server, 'retrieve', ['key-server-storage-key', '--out', '-']), 2, 'USAGE');
      expectFailure(await d.kc(good, server, 'store', ['key-server-storage-key', '--in', '-'], randomBytes(32)), 1, 'RESERVED_NAME');
      await stillServes();
    });
  });

  describe('role credentials and the auth-challenge', () => {
    /** A mutual-TLS connection of the good client, made by hand (as a faulty or hostile client would); closed after `fn`. */
    const byHand = async (fn: (conn: Awaited<ReturnType<typeof connect>>) => Promise<void>) => {
      const conn = await connect({ host: '127.0.0.1', port: server.port, tls: { key: goodIdentity.key, cert: toPem(goodIdentity.certificate), ca: toPem(d.policyCert) } });
      try {
        await fn(conn);
      } finally {
        await conn.close();
      }
    };
    /** Sends `ask` with the role credential and returns the request that answers its challenge, signed by `key`. */
    const answered = async (conn: Awaited<ReturnType<typeof connect>>, ask: Parameters<typeof encodeKeyRequest>[0], key: KeyObject) => {
      const challenged = parseKeyResponse(await conn.request(encodeKeyRequest(ask)));
      expect(challenged.status).to.equal('auth-challenge');
      const signature = sign(key, challengeMessage(challenged.data!, conn.exportKeyingMaterial(CHALLENGE_EXPORTER_LABEL, 32)!));
      return encodeKeyRequest({ ...ask, challengeNonce: challenged.data!, challengeSignature: signature });
    };

    it('lets a role credential delete under an ACL rule for its role, and denies the same delete without it (ACL_DENIED)', async () => {
      expectSuccess(await d.kc(good, server, 'store', ['role/victim', '--in', '-'], Buffer.from('to be deleted')));
      expectFailure(await d.kc(good, server, 'delete', ['role/victim']), 1, 'ACL_DENIED');
      const r = expectSuccess(await d.kc(good, server, 'delete', ['role/victim', '--credential-cert', role.cert, '--credential-key', role.key]));
      expect(r.out).to.equal('deleted role/victim version(s) 1\n');
      await server.child.waitForLog(/ role=operator credentialSerial=[0-9a-f]+ action=delete resource=role\/victim .*decision=allow/);
      expectFailure(await d.kc(good, server, 'retrieve', ['role/victim', '--out', '-']), 1, 'NOT_FOUND');
      // A credential issued before role credentials had an extended key usage of their own (clientAuth) still works.
      expectSuccess(await d.kc(good, server, 'store', ['role/victim', '--in', '-'], Buffer.from('to be deleted again')));
      expectSuccess(await d.kc(good, server, 'delete', ['role/victim', '--credential-cert', role.oldCert!, '--credential-key', role.key]));
      await stillServes();
    });

    it('retrieves more names in one run with a role credential than the server keeps nonces for a connection (16)', async () => {
      const names = Array.from({ length: 40 }, (_, i) => `role/many-${i}`);
      await d.withClient(server, goodIdentity, (c) => Promise.all(names.map((n) => c.store(n, Buffer.from(n)))));
      const r = expectSuccess(await d.kc(good, server, 'retrieve', [...names, '--credential-cert', role.cert, '--credential-key', role.key]));
      expect(r.stderr).not.to.contain('NONCE_INVALID');
      await stillServes();
    });

    it('never writes a retrieved value over the credential it was given, even with --force, and releases nothing then', async () => {
      const keyBefore = readFileSync(role.key);
      for (const target of [role.key, role.cert]) {
        const r = await d.kc(good, server, 'retrieve', ['role/many-0', '--out', target, '--force', '--credential-cert', role.cert, '--credential-key', role.key]);
        expectFailure(r, 1, 'INVALID_INPUT');
        expect(r.stderr).to.contain('which this command needs: nothing was written');
      }
      expect(readFileSync(role.key).equals(keyBefore)).to.equal(true);
      await stillServes();
    });

    it('refuses an auth-challenge signed by a key that is not the credential\'s: CHALLENGE_FAILED', async () => {
      expectSuccess(await d.kc(good, server, 'store', ['role/kept', '--in', '-'], Buffer.from('stays')));
      // key-client will not sign with a key that is not its credential's (below), so the wrong
      // signature is sent by hand, as a faulty or hostile client would.
      const wrongKey = await readPrivateKeyFile(role.wrongKey);
      const from = server.child.mark();
      await byHand(async (conn) => {
        const answer = await answered(conn, { action: 'delete', name: 'role/kept', credentials: [role.der] }, wrongKey);
        expect(parseKeyResponse(await conn.request(answer))).to.include({ status: 'failed', errorCode: 'CHALLENGE_FAILED' });
      });
      await server.child.waitForLog(/ action=delete resource=role\/kept version=0 decision=deny code=CHALLENGE_FAILED/, from);
      const kept = expectSuccess(await d.kc(good, server, 'retrieve', ['role/kept', '--out', '-']));
      expect(kept.out).to.equal('stays');
      await stillServes();
    });

    it('key-client refuses a credential key that is not the certificate\'s before connecting: INVALID_KEY, exit 1', async () => {
      const from = server.child.mark();
      const r = await d.kc(good, server, 'delete', ['role/kept', '--credential-cert', role.cert, '--credential-key', role.wrongKey]);
      expectFailure(r, 1, 'INVALID_KEY');
      expect(r.stderr).to.contain(`${role.wrongKey} is not the key of ${role.cert}`);
      expect(server.child.stderr.slice(from)).not.to.contain('role/kept');
    });

    it('key-client checks its role credential\'s dates before connecting: an ended one is CERT_EXPIRED (exit 4) with its end, not a bare CREDENTIAL_INVALID', async () => {
      const { issueRoleCert } = await import('../../lib/keyservice/roles.ts');
      const roleKey = await readPrivateKeyFile(role.key);
      const ended = await issueRoleCert({
        policyKey: await readPrivateKeyFile(d.policyKey), policyCert: d.policyCert, subjectPublicKey: roleKey, role: 'operator', domain: d.name,
        validitySeconds: 60, now: new Date(Date.now() - 4 * 60_000), // ended three minutes ago, within the policy certificate's life
      });
      const file = d.path('operator-ended.pem');
      writeFileSync(file, toPem(ended));
      const from = server.child.mark();
      const r = await d.kc(good, server, 'list', ['--credential-cert', file, '--credential-key', role.key]);
      expectFailure(r, 4, 'CERT_EXPIRED');
      expect(r.stderr).to.match(/the role credential certificate expired at \S+ \(checked at /)
        .and.to.contain('(expired): have the policy key\'s holder issue a new one (cert-utility issue-role-cert), or set this machine\'s clock right if it is wrong (README "Clocks") [CERT_EXPIRED]');
      expect(server.child.stderr.slice(from)).not.to.contain(' action=list ');
    });

    it('key-client says its role credential not valid yet means this machine\'s clock is behind, and by how much (CERT_EXPIRED, exit 4)', async () => {
      const { issueRoleCert } = await import('../../lib/keyservice/roles.ts');
      const later = await issueRoleCert({
        policyKey: await readPrivateKeyFile(d.policyKey), policyCert: d.policyCert, subjectPublicKey: await readPrivateKeyFile(role.key), role: 'operator', domain: d.name,
        validitySeconds: 86_400, now: new Date(Date.now() + 2 * 3_600_000), // issued on a clock two hours ahead of this one
      });
      const file = d.path('operator-later.pem');
      writeFileSync(file, toPem(later));
      const r = await d.kc(good, server, 'list', ['--credential-cert', file, '--credential-key', role.key]);
      expectFailure(r, 4, 'CERT_EXPIRED');
      expect(r.stderr).to.match(/the role credential certificate is not valid before \S+ \(checked at \S+ by this machine's clock\) \(not-yet-valid\): this machine's clock is at least 2 hours behind that of the machine that issued it: set it right \(NTP, e\.g\. chrony; README "Clocks"\) \[CERT_EXPIRED\]/);
    });

    describe('with key-client\'s clock three hours ahead of the key-server\'s (faketime)', () => {
      // faketime runs key-client with its clock shifted (its timers, on the monotonic clock, are not).
      const aheadRun = (args: string[]) => runScript({ path: 'faketime' }, ['-f', '+3h', process.execPath, join(ROOT, 'cmd', 'bin', 'key-client.js'), ...args], { cwd: d.dir, env: { DONT_FAKE_MONOTONIC: '1' } });
      const later = () => new Date(Date.now() + 3 * 3_600_000); // issued on a clock as far ahead
      before(function () {
        if (spawnSync('faketime', ['-f', '+0', 'true']).status !== 0) this.skip();
      });

      it("key-client, refused CERT_EXPIRED for a role credential not valid yet by the key-server's clock, says how far apart the clocks are and that the key-server's is likely wrong", async () => {
        const { issueRoleCert } = await import('../../lib/keyservice/roles.ts');
        const credential = await issueRoleCert({
          policyKey: await readPrivateKeyFile(d.policyKey), policyCert: d.policyCert, subjectPublicKey: await readPrivateKeyFile(role.key), role: 'operator', domain: d.name,
          validitySeconds: 86_400, now: later(),
        });
        const file = d.path('operator-made-ahead.pem');
        writeFileSync(file, toPem(credential));
        const r = await aheadRun(['list', '--credential-cert', file, '--credential-key', role.key, ...d.clientArgs(good, server)]);
        expectFailure(r, 4, 'CERT_EXPIRED');
        expect(r.stderr).to.match(/; the key-server's clock read \S+, 3 hours behind this machine's: by it, the role credential is not valid before \S+, while by this machine's clock it is in force: the key-server's clock is likely the wrong one: set it right \(NTP, e\.g\. chrony; README "Clocks"\) \[CERT_EXPIRED\]/);
        await stillServes();
      });
    });

    it('refuses a replayed signed nonce on the same connection: NONCE_INVALID', async () => {
      const roleKey = await readPrivateKeyFile(role.key);
      const from = server.child.mark();
      await byHand(async (conn) => {
        const answer = await answered(conn, { action: 'retrieve', name: 'canary', credentials: [role.der] }, roleKey);
        const first = parseKeyResponse(await conn.request(answer));
        expect(first).to.include({ status: 'succeeded', name: 'canary', version: 1 });
        const replayed = parseKeyResponse(await conn.request(answer));
        expect(replayed).to.include({ status: 'failed', errorCode: 'NONCE_INVALID' });
        expect(replayed.data).to.equal(undefined);
      });
      const credential = `role=operator credentialSerial=${parseCertificate(role.der).serialHex}`;
      await server.child.waitForLog(new RegExp(` ${credential} action=retrieve resource=canary version=1 decision=allow`), from);
      await server.child.waitForLog(new RegExp(` ${credential} action=retrieve resource=canary decision=deny code=NONCE_INVALID`), from); // the role sought, not granted
      await stillServes();
    });
  });
});

// SIGHUP on loopback with the real programs: key-server reloads its ACL and simpleserver its
// policy, each only when the new file is good (a bad one is logged and the old one serves on);
// a key-server without an ACL says there is nothing to reload. No server stops on SIGHUP.

import { expect } from 'chai';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { ROOT, run } from '../support/helpers.ts';
import { makePolicy as makeSignedPolicy } from '../../lib/policy/index.ts';
import { generateKeyPair } from '../../lib/crypto/index.ts';
import { createPolicyCert } from '../../lib/pki/index.ts';
import { readPrivateKeyFile, readPublicKeyFile } from '../../cmd/common/keys.ts';
import { Domain, expectFailure, expectSuccess, startServer, type Machine } from './domain.ts';

describe('e2e: SIGHUP reloads, and never stops a server', function () {
  let d: Domain;
  let ks: Machine;
  let alice: Machine;
  let bob: Machine;

  before(async () => {
    ({ d, machines: { keyserver: ks, alice, bob } } = await Domain.setUp({ keyserver: 'key-server', alice: 'client-alice', bob: 'client-bob' }, { programs: ['key-server', 'client-alice', 'client-bob', 'client-carol'] }));
  });
  after(async () => d?.close());

  const aclFor = (...programs: string[]) => ({
    version: 1, rules: programs.map((p) => ({ resources: ['reload/**'], actions: ['store', 'retrieve', 'list'], measurements: [d.measurementHex(p)] })),
  });
  const hangUp = (server: { child: { pid: number } }) => process.kill(server.child.pid, 'SIGHUP');

  it('key-server: a good ACL is in force from the SIGHUP on; a bad one is refused and the old one stays', async () => {
    await d.withKeyServer(ks, { acl: aclFor('client-alice') }, async (server) => {
      expect(await server.child.waitForLog(/ acl-loaded .*$/m), 'the ACL in force from the start').to.contain(` acl-loaded acl=${server.aclFile} rules=1`);
      expectSuccess(await d.kc(alice, server, 'store', ['reload/k', '--in', '-'], randomBytes(32)));
      expectFailure(await d.kc(bob, server, 'retrieve', ['reload/k', '--out', '-']), 1, 'ACL_DENIED');

      writeFileSync(server.aclFile!, JSON.stringify(aclFor('client-alice', 'client-bob')));
      let from = server.child.mark();
      hangUp(server);
      expect(await server.child.waitForLog(/ reloaded .*$/m, from)).to.contain(`acl=${server.aclFile} rules=2`);
      expectSuccess(await d.kc(bob, server, 'retrieve', ['reload/k', '--out', '-']));

      writeFileSync(server.aclFile!, '{"version": 1, "rules": [');
      from = server.child.mark();
      hangUp(server);
      // Which file was refused, named as the reloaded line names it, and that the ACL in force stays (not none, nor the file's).
      expect(await server.child.waitForLog(/ reload-failed .*$/m, from)).to.match(/code=[A-Z_]+ reason=".*acl/i).and.match(new RegExp(` acl=${server.aclFile} kept="the one in force before serves on: fix the file, then send SIGHUP again"$`));
      expectSuccess(await d.kc(bob, server, 'retrieve', ['reload/k', '--out', '-']));

      // A pattern no key name stored since can match (not in Unicode form C) is refused, naming it.
      writeFileSync(server.aclFile!, JSON.stringify({ version: 1, rules: [{ resources: ['reload/cafe\u0301/*'], actions: ['retrieve'], measurements: [d.measurementHex('client-alice')] }] }));
      from = server.child.mark();
      hangUp(server);
      expect(await server.child.waitForLog(/ reload-failed .*$/m, from)).to.contain('code=INVALID_INPUT reason="invalid ACL: rules[0].resources[0] \\"reload/cafe\\\\u0301/*\\" is not in Unicode normalization form C')
        .and.contain('a pattern is held to the rule on new key names');
      expectSuccess(await d.kc(bob, server, 'retrieve', ['reload/k', '--out', '-']));

      // One every user may change is refused (they could give themselves any key); its group, warned of.
      writeFileSync(server.aclFile!, JSON.stringify(aclFor('client-alice')));
      chmodSync(server.aclFile!, 0o666);
      from = server.child.mark();
      hangUp(server);
      expect(await server.child.waitForLog(/ reload-failed .*$/m, from)).to.match(/code=INVALID_INPUT reason=".*can be changed by every user of the machine \(mode 0666\)/);
      expectSuccess(await d.kc(bob, server, 'retrieve', ['reload/k', '--out', '-']));
      chmodSync(server.aclFile!, 0o664);
      from = server.child.mark();
      hangUp(server);
      expect(await server.child.waitForLog(/ reloaded .*$/m, from)).to.match(/rules=1 warning=".*can be changed by its group \(mode 0664\)/);
      expectFailure(await d.kc(bob, server, 'retrieve', ['reload/k', '--out', '-']), 1, 'ACL_DENIED');
      expect(server.child.running).to.equal(true);
    });
  });

  it('key-server: a SIGHUP while it starts neither stops it nor is lost: the ACL is read again once it serves', async () => {
    const aclFile = d.path('early-acl.json');
    writeFileSync(aclFile, JSON.stringify(aclFor('client-alice')));
    let sent = false;
    const { child } = await startServer('key-server', [
      'serve', '--domain', d.name, '--policy-cert', d.policyCertFile, '--data', d.path('early-data'), '--listen', '127.0.0.1:0', '--acl', aclFile, ...ks.storeArgs,
    ], (c) => {
      // Sent as soon as the process catches SIGHUP (bit 0 of SigCgt), before it listens.
      const poll = setInterval(() => {
        if (!c.running || / listening /.test(c.stderr)) return clearInterval(poll);
        const caught = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${c.pid}/status`, 'utf8'))?.[1];
        if (caught && (BigInt(`0x${caught}`) & 1n) === 1n) {
          clearInterval(poll);
          process.kill(c.pid, 'SIGHUP');
          sent = true;
        }
      }, 2);
    });
    try {
      expect(sent, 'the SIGHUP went before the server listened').to.equal(true);
      expect(await child.waitForLog(/ reloaded .*$/m)).to.contain(`acl=${aclFile} rules=1`);
      expect(child.running).to.equal(true);
    } finally {
      expect(await child.stop()).to.deep.equal({ code: 0, signal: null });
    }
  });

  it('key-server join (not a server) still ends on SIGHUP, as a command does when its terminal goes', async function () {
    // A peer that accepts and never answers: join would wait out its 10 s handshake timeout.
    const silent = createServer(() => {}).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const port = (silent.address() as AddressInfo).port;
      const child = spawn(process.execPath, [join(ROOT, 'cmd/bin/key-server.js'), 'join', '--from', `127.0.0.1:${port}`, '--domain', d.name, '--policy-cert', d.policyCertFile, ...ks.storeArgs], { stdio: 'ignore' });
      const exited = once(child, 'exit');
      await sleep(1500);
      child.kill('SIGHUP');
      const [code, signal] = await exited;
      expect({ code, signal }).to.deep.equal({ code: null, signal: 'SIGHUP' });
    } finally {
      silent.close();
    }
  });

  it('key-server refuses to start with an ACL every user may change, or in a directory where any user may replace it, or with a pattern no key name stored since can match', async () => {
    const aclFile = d.path('open-acl.json');
    writeFileSync(aclFile, JSON.stringify(aclFor('client-alice')));
    chmodSync(aclFile, 0o666);
    const serve = d.keyServerArgs(ks, d.path('open-acl-data'));
    const r = await run('key-server', [...serve, '--acl', aclFile]);
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.contain('INVALID_INPUT').and.to.contain(`chmod o-w ${aclFile}`);
    const open = d.path('open-dir');
    mkdirSync(open);
    chmodSync(open, 0o777);
    writeFileSync(join(open, 'acl.json'), JSON.stringify(aclFor('client-alice')), { mode: 0o644 });
    const inOpen = await run('key-server', [...serve, '--acl', join(open, 'acl.json')]);
    expect(inOpen.status, inOpen.stderr).to.equal(1);
    expect(inOpen.stderr).to.contain('may put another file in its place (mode 0777)');
    // A pattern no key name stored since can match (not in Unicode form C).
    const nfdFile = d.path('nfd-acl.json');
    writeFileSync(nfdFile, JSON.stringify({ version: 1, rules: [{ resources: ['cafe\u0301/*'], actions: ['retrieve'], measurements: [d.measurementHex('client-alice')] }] }), { mode: 0o644 });
    const nfd = await run('key-server', [...serve, '--acl', nfdFile]);
    expect(nfd.status, nfd.stderr).to.equal(1);
    expect(nfd.stderr).to.contain('"cafe\\u0301/*" is not in Unicode normalization form C').and.contain('held to the rule on new key names').and.contain('[INVALID_INPUT]');
  });

  it('key-server without an ACL: SIGHUP is logged and ignored', async () => {
    const server = await d.startKeyServer(ks);
    const from = server.child.mark();
    hangUp(server);
    expect(await server.child.waitForLog(/ reload-ignored .*$/m, from)).to.contain('started without --acl');
    expectSuccess(await d.kc(alice, server, 'list', ['reload/']));
    const stopped = await server.child.stop();
    expect(stopped).to.deep.equal({ code: 0, signal: null });
  });

  it('simpleserver: a new signed policy admits a new measurement from the SIGHUP on, and refuses one it leaves out; a bad file changes nothing', async () => {
    const policy = d.path('policy.bin');
    const makePolicy = (...programs: string[]) => d.cu(['make-policy', '--policy-key', d.policyKey, '--policy-cert', d.policyCertFile, '--force',
      '--trust-platform', `${d.platformDir}/platform-cert.pem`, ...programs.flatMap((p) => ['--trust-measurement', d.measurementHex(p)]), '--out', policy]);
    await makePolicy('client-alice');
    const { child, port } = await startServer('simpleserver', d.simpleserverArgs(policy));
    try {
      const initTrust = (store: string) => run('cert-utility', ['init-trust', '--domain', d.name, '--policy-cert', d.policyCertFile, '--server', `127.0.0.1:${port}`,
        '--store', store, '--key-file', d.keyFile, '--platform', 'simulated', '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile('client-carol')]);
      expectFailure(await initTrust(d.path('carol-1')), 1, 'MEASUREMENT_NOT_TRUSTED');

      await makePolicy('client-alice', 'client-carol');
      let from = child.mark();
      process.kill(child.pid, 'SIGHUP');
      expect(await child.waitForLog(/ reloaded .*$/m, from)).to.contain(`policy=${policy} platforms=1 measurements=2`);
      await child.waitForLog(/ identity-renewed serial=[0-9a-f]+ /, from); // and a fresh certificate of its own
      expectSuccess(await initTrust(d.path('carol-2')));

      writeFileSync(policy, 'not a policy');
      from = child.mark();
      process.kill(child.pid, 'SIGHUP');
      expect(await child.waitForLog(/ reload-failed .*$/m, from)).to.match(/code=[A-Z_]+/).and.match(new RegExp(` policy=${policy} kept="the one in force before serves on: [^"]*"$`));
      expectSuccess(await initTrust(d.path('carol-3')));

      // Signed, but by a clock an hour ahead: none of its claims is in force yet. Refused too.
      const policyKey = await readPrivateKeyFile(d.policyKey);
      const platformKey = readPublicKeyFile(`${d.platformDir}/platform-cert.pem`);
      const ahead = Date.now() + 3_600_000;
      writeFileSync(policy, makeSignedPolicy({
        policyKey, policyCert: d.policyCert, platforms: [{ key: await platformKey }], measurements: [Buffer.from(d.measurementHex('client-carol'), 'hex')],
        notBefore: new Date(ahead), notAfter: new Date(ahead + 86_400_000),
      }));
      from = child.mark();
      process.kill(child.pid, 'SIGHUP');
      const refused = await child.waitForLog(/ reload-failed .*$/m, from);
      expect(refused).to.contain('code=CLAIM_EXPIRED').and.to.contain('none of its platform claims is in force at');
      expectSuccess(await initTrust(d.path('carol-4')));

      // Signed by another policy key (the one before a replacement, say): refused, saying the files do not go together.
      const otherKey = (await generateKeyPair('p256')).privateKey;
      writeFileSync(policy, makeSignedPolicy({
        policyKey: otherKey, policyCert: await createPolicyCert({ privateKey: otherKey, domain: d.name, days: 1 }), platforms: [{ key: await platformKey }],
        measurements: [Buffer.from(d.measurementHex('client-carol'), 'hex')], notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000),
      }));
      from = child.mark();
      process.kill(child.pid, 'SIGHUP');
      expect(await child.waitForLog(/ reload-failed .*$/m, from)).to.contain('code=POLICY_INVALID').and.to.contain(`was made under another policy key than the one of ${d.policyCertFile}`);
      expectSuccess(await initTrust(d.path('carol-4b')));

      // Revoked: a new policy without the measurement refuses it from the SIGHUP on.
      await makePolicy('client-alice');
      from = child.mark();
      process.kill(child.pid, 'SIGHUP');
      expect(await child.waitForLog(/ reloaded .*$/m, from)).to.contain(`policy=${policy} platforms=1 measurements=1`);
      expectFailure(await initTrust(d.path('carol-5')), 1, 'MEASUREMENT_NOT_TRUSTED');
    } finally {
      expect(await child.stop()).to.deep.equal({ code: 0, signal: null });
    }
  });
});

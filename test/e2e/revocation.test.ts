// Revoking one certificate by its serial number (the ACL's "revoked"), with the real programs on
// loopback: a machine's admission certificate (CERT_REVOKED, exit 4, the connection's last answer),
// or a role credential (CREDENTIAL_REVOKED, exit 4), is refused from the reload on, an open
// connection at its next request; the same measurement under
// another serial is served; a malformed list is refused and the one in force stays.

import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { generateKeyPair } from '../../lib/crypto/index.ts';
import { readCertificate, readCertificateSummary, toPem } from '../../lib/pki/index.ts';
import { Domain, expectFailure, expectSuccess, type KeyServer, type Machine } from './domain.ts';
import { rejects } from '../support/rejects.ts';
import { connect } from '../../lib/channel/index.ts';
import { parseKeyResponse } from '../../lib/keyservice/protocol.ts';
import { run } from '../support/helpers.ts';

describe('e2e: revoking one certificate by its serial number', function () {
  let d: Domain;
  let server: KeyServer;
  let good: Machine;
  let twin: Machine; // certified with the same measurement as good: another certificate, another serial
  let goodSerial: string;
  let role: { cert: string; key: string; serial: string };
  const value = randomBytes(32);

  const rules = () => [
    { comment: 'the clients', resources: ['rev/**'], actions: ['store', 'retrieve', 'list'], measurements: [d.measurementHex('client-good')] },
    { comment: 'operators delete', resources: ['rev/**'], actions: ['delete'], roles: ['operator'] },
  ];
  /** Writes the ACL with these revoked entries, sends SIGHUP and returns the reloaded (or reload-failed) line. */
  async function reload(revoked: unknown, outcome = 'reloaded'): Promise<string> {
    writeFileSync(server.aclFile!, JSON.stringify({ version: 1, rules: rules(), ...(revoked === undefined ? {} : { revoked }) }));
    const from = server.child.mark();
    process.kill(server.child.pid, 'SIGHUP');
    return server.child.waitForLog(new RegExp(` ${outcome} .*$`, 'm'), from);
  }
  const auditRecords = () => readFileSync(join(server.data, 'audit.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const withRole = ['--credential-cert', '', '--credential-key', ''];

  before(async () => {
    let ks: Machine;
    ({ d, machines: { keyserver: ks, good, twin } } = await Domain.setUp({ keyserver: 'key-server', good: 'client-good', twin: 'client-good' }));
    server = await d.startKeyServer(ks, { acl: { version: 1, rules: rules() } });
    goodSerial = (await d.identity(good)).peer.serialHex;
    expect((await d.identity(twin)).peer.serialHex).not.to.equal(goodSerial);
    const { privateKey, publicKey } = await generateKeyPair('p256');
    role = { cert: d.path('operator-cert.pem'), key: d.path('operator-key.pem'), serial: '' };
    const pub = d.path('operator-pub.pem');
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(role.key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    expectSuccess(await d.cu(['issue-role-cert', '--policy-key', d.policyKey, '--policy-cert', d.policyCertFile, '--public-key', pub, '--role', 'operator', '--out', role.cert]));
    role.serial = readCertificateSummary(readCertificate(readFileSync(role.cert))).serialHex;
    withRole[1] = role.cert;
    withRole[3] = role.key;
    expectSuccess(await d.kc(good, server, 'store', ['rev/k', '--in', '-'], value));
  });
  after(async () => d?.close());

  it("cuts off a machine's certificate at the open connection's next request after the reload: CERT_REVOKED (exit 4), its serial and the comment logged and audited", async () => {
    const c = await d.connect(server, good);
    try {
      expect(Buffer.from((await c.retrieve('rev/k')).blob).equals(value)).to.equal(true);
      // Written as an operator may copy it: upper case, with a leading zero.
      expect(await reload([{ serial: `0${goodSerial.toUpperCase()}`, comment: 'disk image copied off the host, ticket 42' }])).to.contain(`acl=${server.aclFile} rules=2 revoked=1`);
      const from = server.child.mark();
      const e = await rejects(c.retrieve('rev/k'), 'CERT_REVOKED');
      expect(e.exitStatus).to.equal(4);
      const line = await server.child.waitForLog(/ request .*code=CERT_REVOKED.*$/m, from);
      expect(line).to.contain(`peerSerial=${goodSerial} `).and.contain('action=retrieve resource=rev/k decision=deny code=CERT_REVOKED')
        .and.contain(`this machine's admission certificate, serial ${goodSerial}, is revoked by the ACL (revoked[0]: \\"disk image copied off the host, ticket 42\\")`);
      // Its last answer there: the server closes the connection rather than refuse request after request on it.
      await server.child.waitForLog(/ closed .*reason=last-answer/, from);
      const record = auditRecords().at(-1)!;
      expect(record).to.include({ peerSerial: goodSerial, action: 'retrieve', resource: 'rev/k', decision: 'deny', code: 'CERT_REVOKED' });
    } finally {
      await c.close();
    }
    // key-client says its certificate was revoked, and what to do.
    const r = await d.kc(good, server, 'retrieve', ['rev/k', '--out', '-']);
    expectFailure(r, 4, 'CERT_REVOKED');
    expect(r.stdout.length).to.equal(0);
    expect(r.stderr).to.contain(`this machine's admission certificate (serial ${goodSerial}) is revoked by the key-server's ACL: its operator cut this machine off`).and.contain('cert-utility init-trust')
      .and.not.contain('role credential');
    // The same measurement under another certificate is served, and so is the revoked one once the entry goes.
    expectSuccess(await d.kc(twin, server, 'retrieve', ['rev/k', '--out', '-']));
    expect(await reload(undefined)).to.match(/ rules=2$/);
    expectSuccess(await d.kc(good, server, 'retrieve', ['rev/k', '--out', '-']));
  });

  it('refuses every store pipelined on a connection when its machine is revoked, and one sent after those answers (on a new connection, not the one closing): CERT_REVOKED each, none OUTCOME_UNKNOWN or UNREACHABLE, none made', async () => {
    const c = await d.connect(server, good);
    const names = [...Array.from({ length: 80 }, (_, i) => `rev/piped-${i}`), 'rev/after'];
    try {
      await c.retrieve('rev/k'); // the connection open, accepted
      await reload([{ serial: goodSerial }]);
      const results = await Promise.allSettled(names.map((n) => c.store(n, value)));
      // And one sent after those answers, on the same client: a new connection, refused there.
      results.push(...(await Promise.allSettled([c.store('rev/after', value)])));
      const codes = new Set(results.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'stored')));
      expect([...codes]).to.deep.equal(['CERT_REVOKED']);
    } finally {
      await c.close();
    }
    expect(auditRecords().filter((r) => names.includes(r.resource as string) && r.decision !== 'deny')).to.deep.equal([]);
    expect(await reload(undefined)).to.match(/ rules=2$/);
  });

  it("refuses a revoked machine's malformed request CERT_REVOKED, not DECODE_FAILED, audited, as the connection's last answer; another machine's is DECODE_FAILED still", async () => {
    /** A framed connection of `who`, and a send of 200 bytes on it that are no request. */
    const garbageOn = async (who: Machine) => {
      const id = await d.identity(who);
      const c = await connect({ host: '127.0.0.1', port: server.port, tls: { key: id.key, cert: toPem(id.certificate), ca: toPem(d.policyCert) } });
      return { c, send: async () => parseKeyResponse(await c.request(randomBytes(200))) };
    };
    const twinSide = await garbageOn(twin);
    const goodSide = await garbageOn(good);
    try {
      await reload([{ serial: goodSerial }]);
      const from = server.child.mark();
      expect(await goodSide.send()).to.include({ status: 'failed', errorCode: 'CERT_REVOKED' });
      const line = await server.child.waitForLog(/ request .*code=CERT_REVOKED.*$/m, from);
      expect(line).to.contain(`peerSerial=${goodSerial} `).and.contain('decision=deny');
      await server.child.waitForLog(/ closed .*reason=last-answer/, from);
      expect(auditRecords().at(-1)).to.include({ peerSerial: goodSerial, decision: 'deny', code: 'CERT_REVOKED' });
      expect(await twinSide.send()).to.include({ status: 'failed', errorCode: 'DECODE_FAILED' });
      expect(await twinSide.send()).to.include({ status: 'failed', errorCode: 'DECODE_FAILED' }); // still open
    } finally {
      await Promise.all([goodSide.c.close().catch(() => {}), twinSide.c.close()]);
    }
    expect(await reload(undefined)).to.match(/ rules=2$/);
  });

  it("with a role credential, takes a CERT_REVOKED for the machine's certificate, the connection's last answer: stores pipelined behind it are CERT_REVOKED each, none UNREACHABLE or OUTCOME_UNKNOWN, none made", async () => {
    const credential = { chain: [readCertificate(readFileSync(role.cert))], key: createPrivateKey(readFileSync(role.key)) };
    const c = await d.connect(server, good, credential);
    const names = Array.from({ length: 60 }, (_, i) => `rev/role-piped-${i}`);
    try {
      await c.retrieve('rev/k'); // the connection open, accepted
      await reload([{ serial: goodSerial }]);
      const results = await Promise.allSettled(names.map((n) => c.store(n, value)));
      const codes = new Set(results.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'stored')));
      expect([...codes]).to.deep.equal(['CERT_REVOKED']);
      const messages = results.map((r) => (r as PromiseRejectedResult).reason.message as string);
      expect(messages[0]).to.contain(`this machine's admission certificate (serial ${goodSerial}) is revoked`);
    } finally {
      await c.close();
      await reload(undefined);
    }
    expect(auditRecords().filter((r) => names.includes(r.resource as string) && r.decision !== 'deny')).to.deep.equal([]);
  });

  it('sends a request made after a CERT_REVOKED with a role credential on a new connection, as the one refused may be closing: CERT_REVOKED again, not UNREACHABLE', async () => {
    const credential = { chain: [readCertificate(readFileSync(role.cert))], key: createPrivateKey(readFileSync(role.key)) };
    const c = await d.connect(server, good, credential);
    try {
      await c.retrieve('rev/k'); // the connection open, accepted
      await reload([{ serial: goodSerial }]);
      await rejects(c.delete('rev/k'), 'CERT_REVOKED');
      await rejects(c.delete('rev/k'), 'CERT_REVOKED');
    } finally {
      await c.close();
    }
    expect(await reload(undefined)).to.match(/ rules=2$/);
    expectSuccess(await d.kc(good, server, 'retrieve', ['rev/k', '--out', '-']));
  });

  it('refuses a revoked role credential before its challenge (CREDENTIAL_REVOKED, exit 4), the connection left open; the machine presenting it is served without it', async () => {
    expectSuccess(await d.kc(good, server, 'store', ['rev/victim', '--in', '-'], value));
    await reload([{ serial: role.serial, comment: 'operator laptop lost' }]);
    const from = server.child.mark();
    const r = await d.kc(good, server, 'delete', ['rev/victim', ...withRole]);
    expectFailure(r, 4, 'CREDENTIAL_REVOKED');
    expect(r.stderr).to.contain(`the role credential sent with it (serial ${role.serial}) is revoked`).and.contain('cert-utility issue-role-cert')
      .and.not.contain("this machine's admission certificate");
    const line = await server.child.waitForLog(/ request .*code=CREDENTIAL_REVOKED.*$/m, from);
    expect(line).to.contain(`credentialSerial=${role.serial} `).and.contain(`the role credential, serial ${role.serial}, is revoked by the ACL (revoked[0]: \\"operator laptop lost\\")`);
    expect(server.child.stderr.slice(from)).not.to.match(/decision=challenge/);
    expect(auditRecords().at(-1)).to.include({ peerSerial: goodSerial, role: 'operator', credentialSerial: role.serial, action: 'delete', decision: 'deny', code: 'CREDENTIAL_REVOKED' });
    expect(server.child.stderr.slice(from)).not.to.match(/reason=last-answer/);
    expectSuccess(await d.kc(good, server, 'retrieve', ['rev/victim', '--out', '-']));
    await reload(undefined);
    expectSuccess(await d.kc(good, server, 'delete', ['rev/victim', ...withRole]));
  });

  it('refuses a malformed revoked list, in check-acl and at a reload, and the list in force stays', async () => {
    expect(await reload([{ serial: goodSerial, comment: 'kept' }])).to.contain('revoked=1');
    const failed = await reload([{ serial: '7f:e7:01' }, { comment: 'no serial' }, 'abc', { serial: goodSerial, by: 'me' }, { serial: 'ab', comment: 3 }, { serial: `00${goodSerial}` }], 'reload-failed');
    for (const problem of ['revoked[0].serial \\"7f:e7:01\\" is not a certificate serial number in hex: write it without the colons (7fe701)', 'revoked[1].serial is missing', 'revoked[2] is not an object',
      'revoked[3]: unknown field \\"by\\"', 'revoked[4].comment is not a string', 'revoked[5].serial names the same serial number as revoked[3]']) {
      expect(failed).to.contain(problem);
    }
    expectFailure(await d.kc(good, server, 'retrieve', ['rev/k', '--out', '-']), 4, 'CERT_REVOKED');
    const checked = await run('key-server', ['check-acl', server.aclFile!], { cwd: d.dir });
    expectFailure(checked, 1, 'INVALID_INPUT');
    expect(checked.stderr).to.contain('revoked[1].serial is missing');
    writeFileSync(server.aclFile!, JSON.stringify({ version: 1, rules: rules(), revoked: [{ serial: goodSerial }, { serial: role.serial }] }));
    expect(expectSuccess(await run('key-server', ['check-acl', server.aclFile!], { cwd: d.dir })).stdout.toString()).to.equal('ok: 2 rule(s), 2 revoked serial number(s)\n');
    await reload(undefined);
  });
});

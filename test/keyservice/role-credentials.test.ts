// A role credential by the key-server's clock: one outside its dates is CERT_EXPIRED (which end,
// and when, in the server's log), as a machine certificate would be, whether it ended before the
// challenge or between the challenge and its answer; any other fault stays CREDENTIAL_INVALID.

import { expect } from 'chai';
import { join } from 'node:path';
import { generateKeyPair, randomBytes, sign } from '../../lib/crypto/index.ts';
import { createPolicyCert, issueAdmissionCert, ROLE_CREDENTIAL_EKU } from '../../lib/pki/index.ts';
import { KeyService, type Connection } from '../../lib/keyservice/handlers.ts';
import { KeyStore } from '../../lib/keyservice/keystore.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { issueRoleCert } from '../../lib/keyservice/roles.ts';
import { challengeMessage, encodeKeyRequest, parseKeyResponse, type KeyRequest } from '../../lib/keyservice/protocol.ts';
import { tempDir } from '../support/helpers.ts';
import { member } from './member.ts';

describe('key service: a role credential outside its dates by the server\'s clock', () => {
  const DAY = 86_400_000;
  const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
  let tmp: ReturnType<typeof tempDir>;
  let backend: LevelBackend;
  let service: KeyService;
  let clock: Date;
  let logs: Record<string, unknown>[];
  let credential: Uint8Array;
  let roleKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  let machineCert: Uint8Array;
  let machineKey: typeof roleKey;
  let policy: Awaited<ReturnType<typeof generateKeyPair>>;
  let policyCert: Uint8Array;
  const exporter = randomBytes(32);
  const { acl, conn } = member('aa'.repeat(32), '1f');
  // The machine's own certificate valid all along: only the credential's dates are at stake.
  const machine = conn('c1');
  const [from, until] = [new Date(issuedAt.getTime() - 30 * DAY), new Date(issuedAt.getTime() + 30 * DAY)];
  const c: Connection = {
    ...machine, exportKeyingMaterial: () => exporter,
    peer: { ...machine.peer!, notBefore: from, notAfter: until, validFrom: from, validUntil: until },
  };
  const ask = async (r: Partial<KeyRequest> & { action: KeyRequest['action']; name: string }) => {
    const staged = await service.handleStaged(encodeKeyRequest(r), c);
    return parseKeyResponse(staged instanceof Uint8Array ? staged : await staged.later);
  };
  const list = { action: 'list', name: '' } as const;

  before(async () => {
    policy = await generateKeyPair('p256');
    policyCert = await createPolicyCert({ privateKey: policy.privateKey, domain: 'datica', now: new Date(issuedAt.getTime() - 30 * DAY) });
    const role = await generateKeyPair('p256');
    roleKey = role.privateKey;
    credential = await issueRoleCert({ policyKey: policy.privateKey, policyCert, subjectPublicKey: role.publicKey, role: 'operator', domain: 'datica', validitySeconds: 86_400, now: issuedAt });
    const machineKeys = await generateKeyPair('p256');
    machineKey = machineKeys.privateKey;
    machineCert = await issueAdmissionCert({
      policyKey: policy.privateKey, policyCert, subjectPublicKey: machineKeys.publicKey, measurement: randomBytes(32), platform: 'sev-snp', domain: 'datica',
      validitySeconds: 86_400, extKeyUsage: ['1.3.6.1.5.5.7.3.2'], now: issuedAt,
    });
    tmp = tempDir('keyservice-roles-');
    backend = await LevelBackend.open(join(tmp.dir, 'data'));
    service = new KeyService({
      keystore: new KeyStore(backend, randomBytes(32)), policyCert, acl, reserved: { names: [], prefixes: [] }, log: (r) => logs.push(r), now: () => clock,
    });
  });
  beforeEach(() => {
    clock = new Date(issuedAt.getTime() + 60_000);
    logs = [];
  });
  after(async () => {
    await backend.close();
    tmp.cleanup();
  });

  it('refuses one ended, or not yet valid, as CERT_EXPIRED with which end and the server\'s time', async () => {
    clock = new Date(issuedAt.getTime() + 2 * DAY);
    expect(await ask({ ...list, credentials: [credential] })).to.include({ status: 'failed', errorCode: 'CERT_EXPIRED' });
    expect(logs[0]).to.include({ decision: 'deny', code: 'CERT_EXPIRED' });
    expect(logs[0]!.detail).to.match(new RegExp(`^the role credential certificate expired at \\S+ \\(checked at ${clock.toISOString()}`));
    clock = new Date(issuedAt.getTime() - DAY);
    expect(await ask({ ...list, credentials: [credential] })).to.include({ status: 'failed', errorCode: 'CERT_EXPIRED' });
    expect(logs[1]!.detail).to.match(new RegExp(`^the role credential certificate is not valid before \\S+ \\(checked at ${clock.toISOString()}`))
      .and.match(/: the key-server's clock is at least 24 hours behind that of the machine that issued it: set it right \(NTP, e\.g\. chrony; README "Clocks"\)$/);
  });

  it("tells the client the time its clock read with a CERT_EXPIRED refusal (server_time), and with no other answer", async () => {
    clock = new Date(issuedAt.getTime() + 2 * DAY);
    expect((await ask({ ...list, credentials: [credential] })).serverTime?.toISOString()).to.equal(clock.toISOString());
    clock = new Date(issuedAt.getTime() + 60_000);
    const stranger = await createPolicyCert({ privateKey: (await generateKeyPair('p256')).privateKey, domain: 'datica' });
    expect(await ask({ ...list, credentials: [stranger] })).to.include({ errorCode: 'CREDENTIAL_INVALID' }).and.not.have.property('serverTime');
    expect(await ask({ ...list, credentials: [credential] })).to.include({ status: 'auth-challenge' }).and.not.have.property('serverTime');
  });

  it('refuses the answer to a challenge as CERT_EXPIRED when the credential ended in between', async () => {
    const challenged = await ask({ ...list, credentials: [credential] });
    expect(challenged.status).to.equal('auth-challenge');
    clock = new Date(issuedAt.getTime() + DAY + 1_000);
    const signature = sign(roleKey, challengeMessage(challenged.data!, exporter));
    expect(await ask({ ...list, credentials: [credential], challengeNonce: challenged.data!, challengeSignature: signature })).to.include({ status: 'failed', errorCode: 'CERT_EXPIRED' });
  });

  it('still serves it within its dates, and refuses what is not a credential as CREDENTIAL_INVALID', async () => {
    const challenged = await ask({ ...list, credentials: [credential] });
    const signature = sign(roleKey, challengeMessage(challenged.data!, exporter));
    expect(await ask({ ...list, credentials: [credential], challengeNonce: challenged.data!, challengeSignature: signature })).to.include({ status: 'succeeded' });
    const stranger = await createPolicyCert({ privateKey: (await generateKeyPair('p256')).privateKey, domain: 'datica' });
    expect(await ask({ ...list, credentials: [stranger] })).to.include({ status: 'failed', errorCode: 'CREDENTIAL_INVALID' });
  });

  it('refuses a machine\'s own admission certificate offered as a role credential (CREDENTIAL_INVALID), with or without a challenge answered by its key', async () => {
    expect(await ask({ ...list, credentials: [machineCert] })).to.include({ status: 'failed', errorCode: 'CREDENTIAL_INVALID' });
    const nonce = randomBytes(32);
    const signature = sign(machineKey, challengeMessage(nonce, exporter));
    expect(await ask({ ...list, credentials: [machineCert], challengeNonce: nonce, challengeSignature: signature })).to.include({ status: 'failed', errorCode: 'CREDENTIAL_INVALID' });
    expect(logs[0]!.detail).to.equal('the credential is a machine certificate, not a role certificate');
  });

  it('refuses a credential naming a role no ACL can name (CREDENTIAL_INVALID), made by hand rather than by issue-role-cert: case, wildcards, "/", length', async () => {
    const role = await generateKeyPair('p256');
    // A platform is printable ASCII (the certificate's own rule), so no look-alike letters get this far.
    for (const name of ['Operator', 'operator*', '**', 'ops/admin', '', '9lives', 'o'.repeat(64)]) {
      const odd = await issueAdmissionCert({
        policyKey: policy.privateKey, policyCert, subjectPublicKey: role.publicKey, measurement: randomBytes(32), platform: `role:${name}`, domain: 'datica',
        validitySeconds: 86_400, extKeyUsage: [ROLE_CREDENTIAL_EKU], now: issuedAt,
      });
      expect(await ask({ ...list, credentials: [odd] }), JSON.stringify(name)).to.include({ status: 'failed', errorCode: 'CREDENTIAL_INVALID' });
    }
    expect(logs.map((l) => l.decision)).to.deep.equal(Array(7).fill('deny'));
  });

  it('refuses a credential issued under another policy key, or under a policy certificate of the same key for another domain (CREDENTIAL_INVALID), its chain given or not', async () => {
    const role = await generateKeyPair('p256');
    const otherKey = await generateKeyPair('p256');
    const issuers = [
      { key: otherKey.privateKey, cert: await createPolicyCert({ privateKey: otherKey.privateKey, domain: 'datica', now: issuedAt }) },
      { key: policy.privateKey, cert: await createPolicyCert({ privateKey: policy.privateKey, domain: 'elsewhere', now: issuedAt }) },
    ];
    for (const [i, { key, cert }] of issuers.entries()) {
      const domain = i === 0 ? 'datica' : 'elsewhere';
      const foreign = await issueRoleCert({ policyKey: key, policyCert: cert, subjectPublicKey: role.publicKey, role: 'operator', domain, validitySeconds: 86_400, now: issuedAt });
      for (const credentials of [[foreign], [foreign, cert], [foreign, policyCert]]) {
        expect(await ask({ ...list, credentials }), `issuer ${i}, chain of ${credentials.length}`).to.include({ status: 'failed', errorCode: 'CREDENTIAL_INVALID' });
      }
    }
  });
});

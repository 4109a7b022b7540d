// The key service carries out only what the ACL allows the request's client: its machine's
// measurement, or a role whose credential answered the request's challenge with its key; and it
// never releases a value stored not exportable. decide() itself is tested in acl.test.ts; here,
// that the service asks it, with the right principal, and obeys.

import { expect } from 'chai';
import { join } from 'node:path';
import { generateKeyPair, randomBytes, sign } from '../../lib/crypto/index.ts';
import { createPolicyCert } from '../../lib/pki/index.ts';
import { parseAcl } from '../../lib/keyservice/acl.ts';
import { KeyService, type Connection } from '../../lib/keyservice/handlers.ts';
import { KeyStore } from '../../lib/keyservice/keystore.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { issueRoleCert } from '../../lib/keyservice/roles.ts';
import { challengeMessage, encodeKeyRequest, parseKeyResponse, type KeyRequest } from '../../lib/keyservice/protocol.ts';
import { tempDir } from '../support/helpers.ts';
import { member } from './member.ts';

type Ask = Partial<KeyRequest> & { action: KeyRequest['action']; name: string };

describe('key service: what the ACL does not allow is refused and not carried out', () => {
  const [M1, M2, M3] = ['aa'.repeat(32), 'bb'.repeat(32), 'cc'.repeat(32)];
  const aclText = (rules: object[]) => parseAcl(JSON.stringify({ version: 1, rules }));
  const ownRule = { resources: ['own/**'], actions: ['store', 'retrieve', 'list'], measurements: [M1] };
  const readerRule = { resources: ['own/*'], actions: ['retrieve'], measurements: [M2] };
  const operatorRule = { resources: ['**'], actions: ['delete'], roles: ['operator'] };
  const serialRule = { resources: ['by-serial/*'], actions: ['store', 'retrieve'], subjects: ['00ABC1'] };
  const rules = [ownRule, readerRule, operatorRule, serialRule];
  const exporter = randomBytes(32);
  /** A connection of the machine of measurement `m` (and certificate serial number `serial`), over a TLS session whose exporter is `exporter`. */
  const machine = (m: string, id: string, serial = '1f'): Connection => ({ ...member(m, serial).conn(id), exportKeyingMaterial: () => exporter });
  let tmp: ReturnType<typeof tempDir>;
  let backend: LevelBackend;
  let service: KeyService;
  let credential: Uint8Array;
  let roleKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

  const ask = async (c: Connection, r: Ask) => {
    const staged = await service.handleStaged(encodeKeyRequest(r), c);
    return parseKeyResponse(staged instanceof Uint8Array ? staged : await staged.later);
  };
  /** Sends `r` with the role credential, and the answer to its challenge signed by `key`; returns that answer's request and the response to it. */
  const withRole = async (c: Connection, r: Ask, key = roleKey) => {
    const challenged = await ask(c, { ...r, credentials: [credential] });
    expect(challenged.status).to.equal('auth-challenge');
    const answer: Ask = { ...r, credentials: [credential], challengeNonce: challenged.data!, challengeSignature: sign(key, challengeMessage(challenged.data!, exporter)) };
    return { answer, response: await ask(c, answer) };
  };
  const has = async (name: string) => (await backend.get(name, 0)) !== undefined;

  before(async () => {
    const policy = await generateKeyPair('p256');
    const policyCert = await createPolicyCert({ privateKey: policy.privateKey, domain: 'datica' });
    const role = await generateKeyPair('p256');
    roleKey = role.privateKey;
    credential = await issueRoleCert({ policyKey: policy.privateKey, policyCert, subjectPublicKey: role.publicKey, role: 'operator', domain: 'datica', validitySeconds: 3_600 });
    tmp = tempDir('keyservice-enforcement-');
    backend = await LevelBackend.open(join(tmp.dir, 'data'));
    service = new KeyService({ keystore: new KeyStore(backend, randomBytes(32)), policyCert, acl: aclText(rules), reserved: { names: [], prefixes: [] } });
  });
  after(async () => {
    await backend.close();
    tmp.cleanup();
  });

  it('refuses with ACL_DENIED a store, retrieve, delete or list no rule for the client allows, carrying none of it out', async () => {
    const c = machine(M1, 'e1');
    expect(await ask(c, { action: 'store', name: 'own/a', data: new Uint8Array([1]) })).to.include({ status: 'succeeded' });
    expect(await ask(c, { action: 'store', name: 'other/a', data: new Uint8Array([1]) })).to.include({ status: 'failed', errorCode: 'ACL_DENIED' });
    expect(await has('other/a'), 'the refused store was carried out').to.equal(false);
    expect(await ask(c, { action: 'delete', name: 'own/a' })).to.include({ status: 'failed', errorCode: 'ACL_DENIED' });
    expect(await has('own/a'), 'the refused delete was carried out').to.equal(true);
    const denied = await ask(c, { action: 'list', name: '' });
    expect(denied).to.include({ status: 'failed', errorCode: 'ACL_DENIED' });
    expect(denied.data).to.equal(undefined);
    const stranger = machine(M3, 'e2');
    for (const r of [{ action: 'retrieve', name: 'own/a' }, { action: 'list', name: 'own/' }] as const) {
      const refused = await ask(stranger, r);
      expect(refused, r.action).to.include({ status: 'failed', errorCode: 'ACL_DENIED' });
      expect(refused.data).to.equal(undefined);
    }
  });

  it('gives a client allowed only to retrieve no store, and no listing (its rule has no list, and "own/*" would not cover "own/a/b")', async () => {
    const reader = machine(M2, 'e11');
    await ask(machine(M1, 'e12'), { action: 'store', name: 'own/r', data: new Uint8Array([6]) });
    expect(await ask(reader, { action: 'retrieve', name: 'own/r' })).to.include({ status: 'succeeded', version: 1 });
    expect(await ask(reader, { action: 'store', name: 'own/r', data: new Uint8Array([7]) })).to.include({ status: 'failed', errorCode: 'ACL_DENIED' });
    expect((await backend.get('own/r', 0))?.version, 'the refused store made a version').to.equal(1);
    const listed = await ask(reader, { action: 'list', name: 'own/' });
    expect(listed).to.include({ status: 'failed', errorCode: 'ACL_DENIED' });
    expect(listed.data).to.equal(undefined);
  });

  it('applies a rule naming a subject to the machine whose certificate has that serial number, and to no other', async () => {
    expect(await ask(machine(M2, 'e8', 'abc1'), { action: 'store', name: 'by-serial/k', data: new Uint8Array([5]) })).to.include({ status: 'succeeded' });
    expect(await ask(machine(M2, 'e9', 'abc2'), { action: 'retrieve', name: 'by-serial/k' })).to.include({ status: 'failed', errorCode: 'ACL_DENIED' });
    expect(await ask(machine(M1, 'e10'), { action: 'retrieve', name: 'by-serial/k' })).to.include({ status: 'failed', errorCode: 'ACL_DENIED' });
  });

  it('never releases a value stored not exportable (NOT_EXPORTABLE), latest or by its version', async () => {
    const c = machine(M1, 'e3');
    expect(await ask(c, { action: 'store', name: 'own/sealed', data: new Uint8Array([7]), exportable: false })).to.include({ status: 'succeeded', version: 1 });
    for (const version of [0, 1]) {
      const r = await ask(c, { action: 'retrieve', name: 'own/sealed', version });
      expect(r, `version ${version}`).to.include({ status: 'failed', errorCode: 'NOT_EXPORTABLE' });
      expect(r.data).to.equal(undefined);
    }
  });

  it('gives a role\'s rights to a request whose challenge the credential\'s key answered, once, and not otherwise', async () => {
    const c = machine(M2, 'e4');
    await ask(machine(M1, 'e5'), { action: 'store', name: 'own/b', data: new Uint8Array([2]) });
    expect(await ask(c, { action: 'delete', name: 'own/b' })).to.include({ status: 'failed', errorCode: 'ACL_DENIED' });
    const wrongKey = (await generateKeyPair('p256')).privateKey;
    expect((await withRole(c, { action: 'delete', name: 'own/b' }, wrongKey)).response).to.include({ status: 'failed', errorCode: 'CHALLENGE_FAILED' });
    expect(await has('own/b'), 'deleted under a challenge answered by another key').to.equal(true);
    const { answer, response } = await withRole(c, { action: 'delete', name: 'own/b' });
    expect(response).to.include({ status: 'succeeded' });
    expect(await has('own/b')).to.equal(false);
    await ask(machine(M1, 'e5'), { action: 'store', name: 'own/b', data: new Uint8Array([3]) });
    expect(await ask(c, answer), 'the answer sent again').to.include({ status: 'failed', errorCode: 'NONCE_INVALID' });
    expect(await has('own/b')).to.equal(true);
  });

  it('decides each request by the ACL in force when it comes (setAcl, as a SIGHUP reload does)', async () => {
    const [c1, c2] = [machine(M1, 'e6'), machine(M2, 'e7')];
    await ask(c1, { action: 'store', name: 'own/c', data: new Uint8Array([4]) });
    service.setAcl(aclText([{ resources: ['own/**'], actions: ['retrieve'], measurements: [M2] }]));
    try {
      expect(await ask(c2, { action: 'retrieve', name: 'own/c' })).to.include({ status: 'succeeded' });
      expect(await ask(c1, { action: 'retrieve', name: 'own/c' }), 'a rule the reload removed still applied').to.include({ status: 'failed', errorCode: 'ACL_DENIED' });
    } finally {
      service.setAcl(aclText(rules));
    }
  });
});

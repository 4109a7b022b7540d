// A certified member the ACL gives little (retrieve of app/*, list of pub/**), and a narrow role
// credential, against a real key-server on loopback: names spelt to look like allowed ones, frames
// written by hand, listings past the prefix allowed, and challenges answered where they were not
// issued. Each gets no more than the ACL says, and no value reaches the logs.

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCertificate, toPem } from '../../lib/pki/index.ts';
import { connect, type ClientConnection } from '../../lib/channel/index.ts';
import { generateKeyPair, sign } from '../../lib/crypto/index.ts';
import { readPrivateKeyFile } from '../../cmd/common/keys.ts';
import { issueRoleCert } from '../../lib/keyservice/roles.ts';
import { CHALLENGE_EXPORTER_LABEL, challengeMessage, encodeKeyRequest, parseKeyResponse, type KeyRequest } from '../../lib/keyservice/protocol.ts';
import { decode, type KeyServiceList } from '../../lib/wire/index.ts';
import type { MachineIdentity } from '../../lib/certifier/index.ts';
import { Domain, type KeyServer } from './domain.ts';

describe('e2e: a member with little in the ACL gets no more from a real key-server', function () {
  let d: Domain;
  let server: KeyServer;
  let attacker: MachineIdentity;
  const values = { 'app/x': 'app-x value', 'app/ne': 'app-ne value', 'secret/x': 'secret-x value', 'app/sub/y': 'app-sub-y value', 'pub/a': 'pub-a value', 'pubx/b': 'pubx-b value', 'ops/one': 'ops-one value', 'ops/audited': 'ops-audited value', 'App/x': 'App-x value' };

  before(async () => {
    const set = await Domain.setUp({ keyserver: 'key-server', owner: 'owner', attacker: 'attacker' });
    d = set.d;
    const { keyserver: ks, owner, attacker: member } = set.machines;
    server = await d.startKeyServer(ks, {
      acl: {
        version: 1, rules: [
          { resources: ['**'], actions: ['store', 'retrieve', 'delete', 'list'], measurements: [d.measurementHex('owner')] },
          { resources: ['app/*'], actions: ['retrieve'], measurements: [d.measurementHex('attacker')] },
          { resources: ['pub/**'], actions: ['list'], measurements: [d.measurementHex('attacker')] },
          { resources: ['ops/**'], actions: ['retrieve'], roles: ['reader'] },
        ],
      },
    });
    attacker = await d.identity(member);
    await d.withClient(server, owner, async (c) => {
      for (const [name, value] of Object.entries(values)) await c.store(name, Buffer.from(value), { exportable: name !== 'app/ne' });
    });
  });
  after(async () => {
    await d?.close();
  });

  const open = (): Promise<ClientConnection<unknown>> =>
    connect({ host: '127.0.0.1', port: server.port, tls: { key: attacker.key, cert: toPem(attacker.certificate), ca: toPem(d.policyCert) } });
  const ask = async (c: ClientConnection<unknown>, r: Partial<KeyRequest> & { action: KeyRequest['action']; name: string }) => parseKeyResponse(await c.request(encodeKeyRequest(r)));
  /** What a request came to: the error code, or the value (retrieve) or names (list) it got. */
  const outcome = (r: ReturnType<typeof parseKeyResponse>, action: string) => {
    if (r.status !== 'succeeded') return r.errorCode;
    if (action === 'list') return decode<KeyServiceList>('key_service_list', r.data!).resources?.map((i) => i.resourceName) ?? [];
    return 'released';
  };

  it('releases only names app/* matches as written: no case folding, normalising, path resolving or segment crossing', async () => {
    const c = await open();
    const asked = ['app/x', 'app/../secret/x', 'app//x', 'App/x', 'app/x/', '\uff41\uff50\uff50/x', 'app', 'app/sub/y', 'app/*', 'secret/x', 'app/ne', 'key-server-storage-key'];
    const got = Object.fromEntries(await Promise.all(asked.map(async (name) => [name, outcome(await ask(c, { action: 'retrieve', name }), 'retrieve')])));
    await c.close();
    expect(got).to.deep.equal({
      'app/x': 'released', 'app/../secret/x': 'ACL_DENIED', 'app//x': 'ACL_DENIED', 'App/x': 'ACL_DENIED', 'app/x/': 'ACL_DENIED', '\uff41\uff50\uff50/x': 'ACL_DENIED', 'app': 'ACL_DENIED',
      'app/sub/y': 'ACL_DENIED', 'app/*': 'NOT_FOUND', 'secret/x': 'ACL_DENIED', 'app/ne': 'NOT_EXPORTABLE', 'key-server-storage-key': 'RESERVED_NAME',
    });
  });

  it('decides a frame naming the resource twice on the name it is carried out on (the last), and refuses store, delete and a store\'s version probe alike', async () => {
    const c = await open();
    const name = (n: string) => Buffer.concat([Buffer.from([0x0a, n.length]), Buffer.from(n)]); // field 1, resource_name
    const allowedLast = parseKeyResponse(await c.request(Buffer.concat([name('secret/x'), encodeKeyRequest({ action: 'retrieve', name: 'app/x' })])));
    const deniedLast = parseKeyResponse(await c.request(Buffer.concat([encodeKeyRequest({ action: 'retrieve', name: 'app/x' }), name('secret/x')])));
    expect([allowedLast.name, outcome(allowedLast, 'retrieve'), deniedLast.name, outcome(deniedLast, 'retrieve')]).to.deep.equal(['app/x', 'released', 'secret/x', 'ACL_DENIED']);
    const refused = await Promise.all([
      ask(c, { action: 'store', name: 'app/x', data: Buffer.from('x') }), ask(c, { action: 'store', name: 'secret/x', data: Buffer.from('x'), expectedVersion: 1 }),
      ask(c, { action: 'store', name: 'secret/none', data: Buffer.from('x'), expectedVersion: 0 }), ask(c, { action: 'delete', name: 'app/x' }), ask(c, { action: 'delete', name: 'app/x', version: 1 }),
    ]);
    await c.close();
    expect(refused.map((r) => r.errorCode)).to.deep.equal(Array(5).fill('ACL_DENIED'));
  });

  it('lists only under a prefix pub/** covers, whatever list_after says', async () => {
    const c = await open();
    const lists: [string, string | undefined][] = [['', undefined], ['p', undefined], ['pub', undefined], ['pubx/', undefined], ['app/', undefined], ['pub/', undefined], ['pub/', 'a'], ['pub/', 'pub/a'], ['pub/', 'pubx/']];
    const got = await Promise.all(lists.map(async ([name, after]) => outcome(await ask(c, { action: 'list', name, ...(after ? { listAfter: after } : {}) }), 'list')));
    await c.close();
    expect(got).to.deep.equal(['ACL_DENIED', 'ACL_DENIED', 'ACL_DENIED', 'ACL_DENIED', 'ACL_DENIED', ['pub/a'], ['pub/a'], [], []]);
  });

  it('gives a role\'s rights only to a challenge answered on its own connection, with that connection\'s exporter, once', async () => {
    const role = await generateKeyPair('p256');
    const credential = await issueRoleCert({ policyKey: await readPrivateKeyFile(d.policyKey), policyCert: d.policyCert, subjectPublicKey: role.publicKey, role: 'reader', domain: d.name, validitySeconds: 3600 });
    const [c, other] = await Promise.all([open(), open()]);
    const req = { action: 'retrieve' as const, name: 'ops/one', credentials: [credential] };
    const answer = (nonce: Uint8Array, on: ClientConnection<unknown>) => ({ ...req, challengeNonce: nonce, challengeSignature: sign(role.privateKey, challengeMessage(nonce, on.exportKeyingMaterial(CHALLENGE_EXPORTER_LABEL, 32)!)) });
    const issued = async () => (await ask(c, req)).data!;
    const elsewhere = await ask(other, answer(await issued(), other));
    const otherExporter = await ask(c, answer(await issued(), other));
    const good = answer(await issued(), c);
    const [once, again] = [await ask(c, good), await ask(c, good)];
    const withoutCredential = await ask(c, { action: 'retrieve', name: 'ops/one' });
    await Promise.all([c.close(), other.close()]);
    expect([elsewhere, otherExporter, once, again, withoutCredential].map((r) => outcome(r, 'retrieve'))).to.deep.equal(['NONCE_INVALID', 'CHALLENGE_FAILED', 'released', 'NONCE_INVALID', 'ACL_DENIED']);
  });

  it('gives a role\'s rights to the request that answered its challenge alone: not to those pipelined beside it, nor on a connection opened after its own closed', async () => {
    const role = await generateKeyPair('p256');
    const credential = await issueRoleCert({ policyKey: await readPrivateKeyFile(d.policyKey), policyCert: d.policyCert, subjectPublicKey: role.publicKey, role: 'reader', domain: d.name, validitySeconds: 3600 });
    const req = { action: 'retrieve' as const, name: 'ops/one', credentials: [credential] };
    const answer = (nonce: Uint8Array, on: ClientConnection<unknown>) => ({ ...req, challengeNonce: nonce, challengeSignature: sign(role.privateKey, challengeMessage(nonce, on.exportKeyingMaterial(CHALLENGE_EXPORTER_LABEL, 32)!)) });
    const c = await open();
    const nonce = (await ask(c, req)).data!;
    const batch = await Promise.all([
      ask(c, { action: 'retrieve', name: 'ops/one' }), ask(c, answer(nonce, c)), ask(c, { action: 'retrieve', name: 'ops/one' }), ask(c, { action: 'list', name: 'ops/' }),
    ]);
    const left = (await ask(c, req)).data!; // outstanding when its connection closes
    await c.close();
    const next = await open();
    const afterClose = await ask(next, answer(left, next));
    await next.close();
    expect([...batch.map((r, i) => outcome(r, i === 3 ? 'list' : 'retrieve')), outcome(afterClose, 'retrieve')]).to.deep.equal(['ACL_DENIED', 'released', 'ACL_DENIED', 'ACL_DENIED', 'NONCE_INVALID']);
  });

  it('says in its log which rule allowed a request made with a role credential, and whom it named: the role, or the machine itself where its own rule was enough', async () => {
    const role = await generateKeyPair('p256');
    const credential = await issueRoleCert({ policyKey: await readPrivateKeyFile(d.policyKey), policyCert: d.policyCert, subjectPublicKey: role.publicKey, role: 'reader', domain: d.name, validitySeconds: 3600 });
    const from = server.child.mark();
    const c = await open();
    for (const name of ['ops/one', 'app/x']) {
      const req = { action: 'retrieve' as const, name, credentials: [credential] };
      const nonce = (await ask(c, req)).data!;
      const signed = sign(role.privateKey, challengeMessage(nonce, c.exportKeyingMaterial(CHALLENGE_EXPORTER_LABEL, 32)!));
      expect(outcome(await ask(c, { ...req, challengeNonce: nonce, challengeSignature: signed }), 'retrieve'), name).to.equal('released');
    }
    await c.close();
    await server.child.waitForLog(/ role=reader .*resource=ops\/one .*decision=allow .*detail=.*rule 3 allows retrieve of .*ops\/one.* to role reader/, from);
    await server.child.waitForLog(new RegExp(` role=reader .*resource=app/x .*decision=allow .*detail=.*rule 1 allows retrieve of .*app/x.* to measurement ${d.measurementHex('attacker')}`), from);
  });

  it('names in its audit log the role a credential asked for, and the credential (its serial number): at the challenge, and where the answer to it is refused', async () => {
    const role = await generateKeyPair('p256');
    const wrong = await generateKeyPair('p256');
    const credential = await issueRoleCert({ policyKey: await readPrivateKeyFile(d.policyKey), policyCert: d.policyCert, subjectPublicKey: role.publicKey, role: 'reader', domain: d.name, validitySeconds: 3600 });
    const c = await open();
    const req = { action: 'retrieve' as const, name: 'ops/audited', credentials: [credential] };
    const answer = (nonce: Uint8Array, key = role.privateKey) => ({ ...req, challengeNonce: nonce, challengeSignature: sign(key, challengeMessage(nonce, c.exportKeyingMaterial(CHALLENGE_EXPORTER_LABEL, 32)!)) });
    const issued = async () => (await ask(c, req)).data!;
    await ask(c, answer(await issued(), wrong.privateKey));
    const good = answer(await issued());
    await ask(c, good);
    await ask(c, good);
    await ask(c, { ...req, credentials: [attacker.certificate] }); // not a credential: no role to name
    await c.close();
    const lines = readFileSync(join(server.data, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const seen = lines.filter((l) => l.resource === 'ops/audited' && l.measurement === d.measurementHex('attacker')).map((l) => [l.decision, l.code, l.role, l.credentialSerial]);
    const serial = parseCertificate(credential).serialHex;
    expect(seen).to.deep.equal([
      ['challenge', undefined, 'reader', serial], ['deny', 'CHALLENGE_FAILED', 'reader', serial],
      ['challenge', undefined, 'reader', serial], ['allow', undefined, 'reader', serial], ['deny', 'NONCE_INVALID', 'reader', serial],
      ['deny', 'CREDENTIAL_INVALID', undefined, undefined],
    ]);
  });

  it('writes no value into its audit log or its log lines, released or refused', () => {
    const audit = readFileSync(join(server.data, 'audit.jsonl'), 'utf8');
    expect(audit).to.contain('"resource":"secret/x"'); // the search finds what is there
    for (const v of Object.values(values)) {
      expect(audit, v).not.to.contain(v);
      expect(server.child.stderr, v).not.to.contain(v);
    }
  });
});

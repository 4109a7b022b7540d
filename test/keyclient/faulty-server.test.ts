// key-client checks what a key-server answers: a retrieve must bring back a valid entry for the
// name and version asked, and an auth-challenge it cannot or should not answer is an error. Here
// against a faulty key-server on 127.0.0.1 (the channel's serve() with a chosen handler),
// presenting a real admission certificate made with the policy key.

import { expect } from 'chai';
import { encode } from '../../lib/wire/index.ts';
import { generateKeyPair, sha256, utf8 } from '../../lib/crypto/index.ts';
import { createPolicyCert, issueAdmissionCert, toPem, validateAdmission } from '../../lib/pki/index.ts';
import { SIMULATED_ENCLAVE } from '../../lib/attest/index.ts';
import { serve, type ChannelServer } from '../../lib/channel/index.ts';
import { challenge, DELETE_LISTED, expired, failed, LIST_PAGE, MAX_VALUE_BYTES, parseKeyRequest, succeeded, type KeyRequest } from '../../lib/keyservice/protocol.ts';
import { KeyClient } from '../../lib/keyclient/index.ts';
import { joinReplica } from '../../lib/keyclient/replica-join.ts';
import type { MachineIdentity } from '../../lib/certifier/index.ts';
import { STORAGE_KEY_TAG } from '../../lib/keyservice/server.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { randomBytes } from '../../lib/crypto/index.ts';
import { join } from 'node:path';
import { tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';

describe('keyclient: answers from a faulty key-server', function () {
  this.timeout(30_000);
  const domain = 'faulty';
  let answer: (req: KeyRequest) => Uint8Array = (req) => succeeded(req.name);
  let server: ChannelServer;
  let client: KeyClient;
  let policyCert: Uint8Array;
  /** Another instance of the key-server program: the one machine `key-server join` takes a storage key from this server for. */
  let replica: MachineIdentity;

  before(async () => {
    const policyKey = (await generateKeyPair('p256')).privateKey;
    policyCert = await createPolicyCert({ privateKey: policyKey, domain, now: new Date(Date.now() - 3_600_000) });
    const machine = async (program: string) => {
      const key = (await generateKeyPair('p256')).privateKey;
      const cert = await issueAdmissionCert({ policyKey, policyCert, subjectPublicKey: key, measurement: sha256(utf8(program)), platform: SIMULATED_ENCLAVE, domain, validitySeconds: 86_400 });
      return { key, cert };
    };
    const keyServer = await machine('key-server');
    server = await serve({
      host: '127.0.0.1', port: 0,
      tls: { key: keyServer.key, cert: toPem(keyServer.cert), ca: toPem(policyCert), requestCert: true },
      handler: async (bytes) => answer(parseKeyRequest(bytes)),
    });
    const identity = async (program: string): Promise<MachineIdentity> => {
      const own = await machine(program);
      return { key: own.key, certificate: own.cert, peer: validateAdmission({ chain: [own.cert], policyCert, at: new Date(), usage: 'any', role: "machine's stored" }) };
    };
    client = await KeyClient.connect({ host: '127.0.0.1', port: server.address.port, identity: await identity('client'), policyCert });
    replica = await identity('key-server');
  });
  after(async () => {
    await client?.close();
    await server?.close();
  });

  const entry = (fields: { tag: string; version: number; blob?: Uint8Array; exportable?: boolean }) =>
    encode('cryptstore_entry', { type: 'binary-blob', blob: utf8('secret'), timeEntered: utf8('2026-12-05T00:00:00Z'), exportable: true, ...fields });

  it('accepts the entry asked for', async () => {
    answer = (req) => succeeded(req.name, { data: entry({ tag: req.name, version: 2 }) });
    expect(await client.retrieve('k', 2)).to.include({ tag: 'k', version: 2 });
  });

  it('refuses an entry for another name (INTEGRITY)', async () => {
    answer = (req) => succeeded(req.name, { data: entry({ tag: 'other', version: 1 }) });
    await rejects(client.retrieve('k'), 'INTEGRITY');
  });

  it('refuses an entry of another version than the one asked (INTEGRITY)', async () => {
    answer = (req) => succeeded(req.name, { data: entry({ tag: req.name, version: 3 }) });
    await rejects(client.retrieve('k', 2), 'INTEGRITY');
  });

  it('refuses a malformed entry, here of version 0 (DECODE_FAILED)', async () => {
    answer = (req) => succeeded(req.name, { data: entry({ tag: req.name, version: 0 }) });
    await rejects(client.retrieve('k'), 'DECODE_FAILED');
  });

  it('refuses an entry with an empty value, which no key-server holds (BAD_FIELD)', async () => {
    answer = (req) => succeeded(req.name, { data: entry({ tag: req.name, version: 1, blob: new Uint8Array() }) });
    expect((await rejects(client.retrieve('k'), 'BAD_FIELD')).message).to.contain('holds an empty value');
  });

  it('refuses an entry with a value past what a key-server takes (BAD_FIELD), its size named and none of it', async () => {
    answer = (req) => succeeded(req.name, { data: entry({ tag: req.name, version: 1, blob: new Uint8Array(MAX_VALUE_BYTES + 1).fill(0x41) }) });
    const e = await rejects(client.retrieve('k'), 'BAD_FIELD');
    expect(e.message).to.equal(`the key-server's answer for "k" holds a value of ${MAX_VALUE_BYTES + 1} bytes, more than the ${MAX_VALUE_BYTES} a key-server takes: a fault of the key-server`);
  });

  it('refuses an entry marked not exportable, which a key-server never releases (NOT_EXPORTABLE), naming the server\'s fault', async () => {
    answer = (req) => succeeded(req.name, { data: entry({ tag: req.name, version: 1, exportable: false }) });
    expect((await rejects(client.retrieve('k'), 'NOT_EXPORTABLE')).message).to.equal('the key-server released "k" version 1, which it holds not exportable and so never releases: a fault of the key-server; it was not kept');
  });

  it('refuses an auth-challenge whose nonce is not 32 bytes (BAD_FIELD)', async () => {
    answer = (req) => challenge(req.name, new Uint8Array(31));
    await rejects(client.retrieve('k'), 'BAD_FIELD');
  });

  it('says a store or delete refused with FILE_ERROR changed nothing, and one carried out unrecorded (NOT_RECORDED) must not be repeated', async () => {
    answer = (req) => failed(req.name, 'FILE_ERROR');
    for (const attempt of [client.store('k', utf8('v')), client.delete('k')]) {
      expect((await rejects(attempt, 'FILE_ERROR')).message).to.contain('its key database or its audit log cannot be written; nothing was changed');
    }
    expect((await rejects(client.retrieve('k'), 'FILE_ERROR')).message).to.equal('the key-server refused to retrieve "k"');
    const deleted = (...versions: number[]) => encode('key_service_list', { resources: versions.map((version) => ({ version })), deleted: versions.length });
    answer = (req) => failed(req.name, 'NOT_RECORDED', 7, req.action === 'delete' ? deleted(7) : undefined);
    expect((await rejects(client.store('k', utf8('v')), 'NOT_RECORDED')).message).to.contain('the key-server stored "k" as version 7, but its audit log could not record it: do not store it again');
    expect((await rejects(client.delete('k', 7), 'NOT_RECORDED')).message).to.contain('the key-server deleted version 7 of "k", but');
    answer = (req) => failed(req.name, 'NOT_RECORDED', 0, deleted(1, 2, 3));
    const all = await rejects(client.delete('k'), 'NOT_RECORDED');
    expect(all.message).to.contain('the key-server deleted 3 versions of "k", but');
    expect(all.details).to.deep.equal({ version: 0, deleted: 3 });
  });

  it('says a store or delete answered OUTCOME_UNKNOWN may or may not have been made, to be looked at before it is tried again', async () => {
    answer = (req) => failed(req.name, 'OUTCOME_UNKNOWN', req.action === 'store' ? 5 : 0);
    const stored = await rejects(client.store('k', utf8('v')), 'OUTCOME_UNKNOWN');
    expect(stored.message).to.equal('the key-server\'s key database failed while writing "k" version 5: the store may or may not have been made; list "k" to see, and do not store it again blindly');
    expect(stored.details).to.deep.equal({ version: 5 });
    expect((await rejects(client.delete('k', 2), 'OUTCOME_UNKNOWN')).message).to.equal('the key-server\'s key database failed while deleting version 2 of "k": the delete may or may not have been made; list "k" to see, and do not delete it again blindly');
    expect((await rejects(client.delete('k'), 'OUTCOME_UNKNOWN')).message).to.contain('while deleting every version of "k"');
    expect((await rejects(client.retrieve('k'), 'DENIED')).message).to.contain('(a code no such server sends: "OUTCOME_UNKNOWN")');
  });

  it('checks what a NOT_RECORDED answer says as it would a success: only for a store or a delete, with a version that request could make', async () => {
    answer = (req) => failed(req.name, 'NOT_RECORDED', 4);
    expect((await rejects(client.retrieve('k'), 'DENIED')).message).to.contain('(a code no such server sends: "NOT_RECORDED")');
    await rejects(client.store('k', utf8('v'), { expectedVersion: 6 }), 'INTEGRITY');
    answer = (req) => failed(req.name, 'NOT_RECORDED', 0);
    await rejects(client.store('k', utf8('v')), 'BAD_FIELD');
    answer = (req) => failed(req.name, 'NOT_RECORDED', 5, encode('key_service_list', { resources: [{ version: 5 }], deleted: 1 }));
    await rejects(client.delete('k', 3), 'INTEGRITY');
  });

  it('stops a listing at the first answer without names that says more are to come, rather than asking for ever (DECODE_FAILED)', async () => {
    let asked = 0;
    answer = (req) => (asked++, succeeded(req.name, { data: encode('key_service_list', { resources: [], nextAfter: `p${asked}` }) }));
    await rejects(client.list(''), 'DECODE_FAILED');
    expect(asked).to.equal(1);
  });

  it('refuses a listing that names one of the key-server\'s own names, which no key-server lists (BAD_FIELD)', async () => {
    const listed = { valueType: 'binary-blob', timeEntered: '2026-12-05T00:00:00Z', size: 6, version: 1, exportable: false };
    for (const own of ['key-server/k', STORAGE_KEY_TAG, `${domain}-private-auth-key`, `${domain}-admission-certificate`]) {
      answer = (req) => succeeded(req.name, { data: encode('key_service_list', { resources: [{ ...listed, resourceName: own }] }) });
      expect((await rejects(client.list(''), 'BAD_FIELD')).message).to.equal(`the key-server's listing of "" named "${own}", one of its own names, which a key-server never lists: a fault of the key-server`);
    }
    // Another domain's identity tags are names like any other.
    answer = (req) => succeeded(req.name, { data: encode('key_service_list', { resources: [{ ...listed, resourceName: 'other-private-auth-key' }] }) });
    expect(await client.list('')).to.have.length(1);
  });

  it('takes a code no key-server sends for DENIED, naming it cut short and escaped; a server\'s INTERNAL says the key-server failed', async () => {
    answer = (req) => failed(req.name, 'USAGE');
    expect((await rejects(client.retrieve('k'), 'DENIED')).message).to.equal('the key-server refused to retrieve "k" (a code no such server sends: "USAGE")');
    answer = (req) => failed(req.name, `\u001b[2J${'X'.repeat(1_000_000)}`);
    const long = await rejects(client.store('k', utf8('v')), 'DENIED');
    expect(long.message.length).to.be.below(200);
    expect(long.message).to.contain('"\\u001b[2JXXX').and.contain('(1000004 characters)').and.not.contain('\u001b');
    answer = (req) => failed(req.name, 'INTERNAL');
    const internal = await rejects(client.delete('k'), 'INTERNAL');
    expect(internal.message).to.equal('the key-server failed to delete "k": a fault of the key-server, not of this request; its log says what (internal-error)');
    expect(internal.details).to.deep.equal({ remote: true });
  });

  it("says, of a CERT_EXPIRED carrying the key-server's time, how far apart the two clocks are and which is likely wrong; without one, what it said before", async () => {
    const HOUR = 3_600_000;
    const said = "the key-server refused to retrieve \"k\": by its clock, a certificate the request rests on (this machine's, the policy certificate, a role credential, or the key-server's own that this connection was opened with, which a new connection replaces) is outside its validity; its log says which and when";
    // Two days ahead: by it, this machine's one-day certificate has ended.
    answer = (req) => expired(req.name, new Date(Date.now() + 48 * HOUR));
    const ahead = await rejects(client.retrieve('k'), 'CERT_EXPIRED');
    expect(ahead.message.startsWith(said)).to.equal(true);
    expect(ahead.message.slice(said.length)).to.match(/^; the key-server's clock read \S+, 2 days ahead of this machine's: by it, this machine's certificate ended at \S+, while by this machine's clock it is in force: the key-server's clock is likely the wrong one: set it right \(NTP, e\.g\. chrony; README "Clocks"\)$/);
    // Three hours behind: this machine's certificate, made minutes ago, has not begun by it.
    answer = (req) => expired(req.name, new Date(Date.now() - 3 * HOUR));
    expect((await rejects(client.retrieve('k'), 'CERT_EXPIRED')).message.slice(said.length)).to.match(/^; the key-server's clock read \S+, 3 hours behind this machine's: by it, this machine's certificate is not valid before \S+, while by this machine's clock it is in force: the key-server's clock is likely the wrong one: set it right/);
    // Within a minute of this machine's, and every certificate this machine knows of in force by it: the clocks agree.
    answer = (req) => expired(req.name, new Date());
    expect((await rejects(client.retrieve('k'), 'CERT_EXPIRED')).message.slice(said.length)).to.match(/^; the key-server's clock read \S+, within a minute of this machine's$/);
    // A key-server of an earlier version sends no time.
    answer = (req) => failed(req.name, 'CERT_EXPIRED');
    expect((await rejects(client.retrieve('k'), 'CERT_EXPIRED')).message).to.equal(said);
    // A time that is no RFC 3339 one is refused as any malformed field.
    answer = (req) => encode('key_service_message_response', { resourceName: req.name, responseType: 'final', status: 'failed', errorCode: 'CERT_EXPIRED', serverTime: 'Mon Dec  7 12:00:00 2026' });
    await rejects(client.retrieve('k'), 'BAD_FIELD');
  });

  it('says what to do about a refusal by the ACL (ACL_DENIED), of a reserved name (RESERVED_NAME) or of a value never released (NOT_EXPORTABLE)', async () => {
    answer = (req) => failed(req.name, 'ACL_DENIED');
    expect((await rejects(client.delete('k'), 'ACL_DENIED')).message).to.equal('the key-server\'s ACL does not allow this machine to delete "k": the key-server\'s log names the machine (and role) in the request\'s line; to allow it, its operator adds a rule to the ACL, checks it with key-server check-acl and sends key-server SIGHUP (a key-server started without --acl, which lets nobody delete, is restarted with one)');
    // Only a delete is refused by a key-server without an ACL: the hint of a restart with one is a delete's.
    const store = (await rejects(client.store('k', utf8('v')), 'ACL_DENIED')).message;
    expect(store).to.equal('the key-server\'s ACL does not allow this machine to store "k": the key-server\'s log names the machine (and role) in the request\'s line; to allow it, its operator adds a rule to the ACL, checks it with key-server check-acl and sends key-server SIGHUP');
    answer = (req) => failed(req.name, 'RESERVED_NAME');
    expect((await rejects(client.store('key-server/k', utf8('v')), 'RESERVED_NAME')).message).to.equal('the key-server refused to store "key-server/k": the name is one of the key-server\'s own (its identity, its storage key, or under key-server/), which no client may address; choose another name');
    answer = (req) => failed(req.name, 'NOT_EXPORTABLE');
    expect((await rejects(client.retrieve('k'), 'NOT_EXPORTABLE')).message).to.equal('the key-server never releases "k": it was stored not exportable (key-client store --not-exportable); to let machines fetch a value, store it without --not-exportable');
  });

  it('refuses an answer that names another resource than the request did (INTEGRITY), nothing taken from it', async () => {
    answer = () => succeeded('other', { version: 3, data: encode('key_service_list', { resources: [{ version: 3 }], deleted: 1 }) });
    for (const [what, attempt] of [['store', () => client.store('k', utf8('v'))], ['delete', () => client.delete('k')], ['list', () => client.list('k')]] as const) {
      expect((await rejects(attempt(), 'INTEGRITY')).message).to.equal(`the key-server answered the ${what} of "k" with an answer for "other": a fault of the key-server; nothing in it was taken`);
    }
    // A refusal of a request a server could not read names no resource: taken as the refusal it is.
    answer = () => failed('', 'BAD_FIELD');
    await rejects(client.store('k', utf8('v')), 'BAD_FIELD');
    // But not one saying the request was carried out (NOT_RECORDED) or may have been (OUTCOME_UNKNOWN): a request not read was not.
    for (const code of ['NOT_RECORDED', 'OUTCOME_UNKNOWN']) {
      answer = () => failed('', code, 7);
      expect((await rejects(client.store('k', utf8('v')), 'INTEGRITY')).message).to.equal('the key-server answered the store of "k" with an answer for "": a fault of the key-server; nothing in it was taken');
    }
    answer = (req) => failed(`${req.name}x`, 'NOT_FOUND');
    await rejects(client.retrieve('k'), 'INTEGRITY');
  });

  it('refuses a store\'s answer without a version a store makes (BAD_FIELD), or not after the expected one (INTEGRITY)', async () => {
    for (const version of [undefined, 0, -5]) {
      answer = (req) => succeeded(req.name, version === undefined ? {} : { version });
      await rejects(client.store('k', utf8('v')), 'BAD_FIELD');
    }
    answer = (req) => succeeded(req.name, { version: 3 });
    expect((await rejects(client.store('k', utf8('v'), { expectedVersion: 7 }), 'INTEGRITY')).message).to.contain('as version 3, though asked to store only after version 7');
    answer = (req) => succeeded(req.name, { version: 9 }); // 8 was made and deleted since: never given again
    expect(await client.store('k', utf8('v'), { expectedVersion: 7 })).to.equal(9);
    expect(await client.store('k', utf8('v'))).to.equal(9);
  });

  it('refuses a delete\'s answer naming versions no delete makes (BAD_FIELD), or others than the one asked (INTEGRITY)', async () => {
    const deleted = (resources: { version?: number }[], count?: number) => (req: KeyRequest) => succeeded(req.name, { data: encode('key_service_list', { resources, ...(count === undefined ? {} : { deleted: count }) }) });
    for (const [resources, count] of [[[{ version: 3 }, { version: -5 }], 2], [[{}], 1], [[{ version: 3 }], -7], [[{ version: 3 }, { version: 4 }], 1], [[{ version: 3 }, { version: 3 }], 2], [[], 0]] as const) {
      answer = deleted([...resources], count);
      await rejects(client.delete('k'), 'BAD_FIELD');
    }
    answer = deleted([{ version: 3 }], 1);
    expect((await rejects(client.delete('k', 4), 'INTEGRITY')).message).to.contain('deleted version 3 of "k", though asked to delete version 4');
    expect(await client.delete('k', 3)).to.deep.equal({ versions: [3], count: 1 });
    answer = deleted([{ version: 1 }, { version: 2 }], 20_000);
    expect(await client.delete('k')).to.deep.equal({ versions: [1, 2], count: 20_000 });
    answer = deleted([{ version: 1 }, { version: 2 }]); // a server before the count
    expect(await client.delete('k')).to.deep.equal({ versions: [1, 2], count: 2 });
  });

  it('counts the names of a list or delete answer before decoding them: more than a key-server sends is refused as such, whatever they hold', async () => {
    // Decoded first, 1 MiB of entries made half a million objects before the count refused them;
    // these entries would not decode (a wire type 7 inside each), so the refusal shows which came first.
    const entries = (n: number) => {
      const b = new Uint8Array(n * 4);
      for (let i = 0; i < b.length; i += 4) b.set([0x0a, 0x02, 0x0f, 0x00], i);
      return b;
    };
    answer = (req) => succeeded(req.name, { data: entries(LIST_PAGE + 1) });
    expect((await rejects(client.list('p/'), 'DECODE_FAILED')).message).to.equal(`the key-server's listing of "p/" sent more than ${LIST_PAGE} names in one answer, the most a key-server sends`);
    answer = (req) => succeeded(req.name, { data: entries(DELETE_LISTED + 1) });
    expect((await rejects(client.delete('k'), 'BAD_FIELD')).message).to.equal(`the key-server's answer to the delete of "k" names more than ${DELETE_LISTED} versions, the most a key-server names`);
    answer = (req) => succeeded(req.name, { data: entries(2) });
    await rejects(client.list('p/'), 'DECODE_FAILED'); // as few: decoded, and refused for what they hold
  });

  it('fails with CHALLENGE_FAILED when challenged without a credential to answer with', async () => {
    answer = (req) => challenge(req.name, new Uint8Array(32));
    await rejects(client.retrieve('k'), 'CHALLENGE_FAILED');
  });

  it('key-server join keeps no storage key that is not 32 bytes (INTEGRITY), and keeps a 32-byte one not exportable', async () => {
    const tmp = tempDir('faulty-join-');
    const store = await Cryptstore.create(join(tmp.dir, 'store'), new KeyFileProtector(randomBytes(32)));
    const joinWith = (blob: Uint8Array) => {
      answer = (req) => succeeded(req.name, { data: entry({ tag: req.name, version: 1, blob, exportable: false }) });
      return joinReplica({ store, identity: replica, policyCert, host: '127.0.0.1', port: server.address.port });
    };
    try {
      for (const length of [31, 33]) {
        expect((await rejects(joinWith(randomBytes(length)), 'INTEGRITY')).message).to.contain(`is ${length} bytes, not 32`);
        await rejects(store.get(STORAGE_KEY_TAG), 'NOT_FOUND');
      }
      expect(await joinWith(randomBytes(32))).to.include({ outcome: 'joined' });
      expect(await store.get(STORAGE_KEY_TAG)).to.include({ exportable: false, version: 1 });
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });
});

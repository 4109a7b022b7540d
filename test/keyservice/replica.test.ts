// Replicas sharing one database, without a database: the key service releases its storage key
// only to another instance of itself and only when told to (key-server join), the storage key is
// checked against the one a shared backend records, and a replica's data directory has one owner.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertifierError } from '../../lib/errors/index.ts';
import type { LaterAnswer } from '../../lib/channel/index.ts';
import { generateKeyPair, randomBytes, sign } from '../../lib/crypto/index.ts';
import { createPolicyCert } from '../../lib/pki/index.ts';
import { decode, type CryptstoreEntry, type KeyServiceList } from '../../lib/wire/index.ts';
import type { ValidatedPeer } from '../../lib/pki/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { AuditLog } from '../../lib/keyservice/audit.ts';
import type { KeyBackend } from '../../lib/keyservice/backend.ts';
import { KeyService } from '../../lib/keyservice/handlers.ts';
import { parseAcl } from '../../lib/keyservice/acl.ts';
import { KeyStore, storageKeyId } from '../../lib/keyservice/keystore.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { challengeMessage, encodeKeyRequest, parseKeyResponse, type Action } from '../../lib/keyservice/protocol.ts';
import { lockDataDir, ReplicaJoin } from '../../lib/keyservice/replica.ts';
import { issueRoleCert } from '../../lib/keyservice/roles.ts';
import { STORAGE_KEY_TAG, storageKeyFrom } from '../../lib/keyservice/server.ts';
import { ROOT, tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';
import { member } from './member.ts';

const OWN = 'aa'.repeat(32);
const OTHER = 'bb'.repeat(32);


describe('key service: releasing the storage key to a joining replica', () => {
  let tmp: ReturnType<typeof tempDir>;
  let backend: LevelBackend;
  let audit: AuditLog;
  const storageKey = randomBytes(32);
  const service = (join_: boolean) => new KeyService({
    keystore: new KeyStore(backend, storageKey), policyCert: new Uint8Array(), audit,
    reserved: { names: [STORAGE_KEY_TAG], prefixes: ['key-server/'] },
    ...(join_ ? { replicaJoin: new ReplicaJoin({ name: STORAGE_KEY_TAG, measurementHex: OWN, storageKey }) } : {}),
  });
  const ask = async (s: KeyService, measurementHex: string, action: Action, version = 0, name = STORAGE_KEY_TAG) => parseKeyResponse(await s.handle(
    encodeKeyRequest({ action, name, version, ...(action === 'store' ? { data: new Uint8Array(32) } : {}) }),
    { id: 'c0ffee', remote: '127.0.0.1:1', peer: { measurementHex, serialHex: '1f', notAfter: new Date(Date.now() + 3_600_000), validUntil: new Date(Date.now() + 3_600_000) } as ValidatedPeer, exportKeyingMaterial: () => undefined },
  ));

  beforeEach(async () => {
    tmp = tempDir('replica-join-');
    backend = await LevelBackend.open(join(tmp.dir, 'data'));
    audit = await AuditLog.open(join(tmp.dir, 'audit.jsonl'));
  });
  afterEach(async () => {
    await audit.close();
    await backend.close();
    tmp.cleanup();
  });

  it('keeps the name reserved, even for its own measurement, unless started with --allow-replica-join', async () => {
    expect(await ask(service(false), OWN, 'retrieve')).to.include({ status: 'failed', errorCode: 'RESERVED_NAME' });
  });

  it('refuses the key to a peer of its own measurement whose certificate the ACL revokes: CERT_REVOKED, recorded', async () => {
    const s = service(true);
    s.setAcl(parseAcl(JSON.stringify({ version: 1, rules: [{ resources: ['*'], actions: ['retrieve'], measurements: [OTHER] }], revoked: [{ serial: '1F', comment: 'copied off the replica host' }] })));
    const r = await ask(s, OWN, 'retrieve');
    expect(r).to.include({ status: 'failed', errorCode: 'CERT_REVOKED' });
    expect(r.data).to.equal(undefined);
    await audit.close();
    const { readFileSync } = await import('node:fs');
    expect(JSON.parse(readFileSync(join(tmp.dir, 'audit.jsonl'), 'utf8').split('\n')[0]!)).to.include({ peerSerial: '1f', resource: STORAGE_KEY_TAG, decision: 'deny', code: 'CERT_REVOKED' });
  });

  it('releases the key, not exportable, to a peer with exactly its own measurement, and audits it', async () => {
    const r = await ask(service(true), OWN, 'retrieve');
    expect(r).to.include({ status: 'succeeded', version: 1 });
    const entry = decode<CryptstoreEntry>('cryptstore_entry', r.data!);
    expect(entry).to.include({ tag: STORAGE_KEY_TAG, type: 'binary-blob', version: 1 });
    expect(entry.exportable ?? false).to.equal(false);
    expect(Buffer.from(entry.blob!).equals(Buffer.from(storageKey))).to.equal(true);
    // Its one version asked for by number: the same key.
    const one = await ask(service(true), OWN, 'retrieve', 1);
    expect(one).to.include({ status: 'succeeded', version: 1 });
    expect(Buffer.from(decode<CryptstoreEntry>('cryptstore_entry', one.data!).blob!).equals(Buffer.from(storageKey))).to.equal(true);
    await audit.close();
    const { readFileSync } = await import('node:fs');
    const line = JSON.parse(readFileSync(join(tmp.dir, 'audit.jsonl'), 'utf8').split('\n')[0]!);
    expect(line).to.include({ action: 'retrieve', resource: STORAGE_KEY_TAG, measurement: OWN, decision: 'allow', version: 1 });
    expect(JSON.stringify(line)).not.to.contain(Buffer.from(storageKey).toString('hex'));
  });

  it('gives the channel the answer holding the key as a secret one, to overwrite once written, and overwrites it itself when a refusal goes instead (its audit record not written)', async () => {
    const join_ = new ReplicaJoin({ name: STORAGE_KEY_TAG, measurementHex: OWN, storageKey });
    const made: Uint8Array[] = [];
    const answer = join_.answer.bind(join_);
    join_.answer = (...args) => {
      const a = answer(...args);
      if (a) made.push(a.response);
      return a;
    };
    const s = new KeyService({ keystore: new KeyStore(backend, storageKey), policyCert: new Uint8Array(), audit, reserved: { names: [STORAGE_KEY_TAG], prefixes: [] }, replicaJoin: join_ });
    const later = new Date(Date.now() + 3_600_000);
    const conn = { id: 'c0ffee', remote: '127.0.0.1:1', peer: { measurementHex: OWN, serialHex: '1f', notAfter: later, validUntil: later } as ValidatedPeer, exportKeyingMaterial: () => undefined };
    const request = encodeKeyRequest({ action: 'retrieve', name: STORAGE_KEY_TAG, version: 0 });
    const staged = (await s.handleStaged(request, conn)) as LaterAnswer;
    expect(staged.secret).to.equal(true);
    const sent = await staged.later;
    expect(sent, 'the bytes the channel overwrites are the answer made').to.equal(made[0]);
    expect(Buffer.from(decode<CryptstoreEntry>('cryptstore_entry', parseKeyResponse(sent).data!).blob!).equals(Buffer.from(storageKey))).to.equal(true);
    rmSync(audit.path); // the next release's record is the write that finds the log gone
    const refused = (await s.handleStaged(request, conn)) as LaterAnswer;
    expect(parseKeyResponse(await refused.later)).to.include({ status: 'failed', errorCode: 'FILE_ERROR' });
    expect(made).to.have.length(2);
    expect(made[1]!.every((x) => x === 0), 'the answer withheld, overwritten').to.equal(true);
  });

  it('once wiped (the server stopping), releases no key, zeroed or not: UNREACHABLE, as the key store', async () => {
    const join_ = new ReplicaJoin({ name: STORAGE_KEY_TAG, measurementHex: OWN, storageKey });
    const s = new KeyService({ keystore: new KeyStore(backend, storageKey), policyCert: new Uint8Array(), audit, reserved: { names: [STORAGE_KEY_TAG], prefixes: ['key-server/'] }, replicaJoin: join_ });
    join_.wipe();
    expect(await ask(s, OWN, 'retrieve')).to.include({ status: 'failed', errorCode: 'UNREACHABLE' });
    expect(storageKey.some((b) => b !== 0), "the caller's key is its own").to.equal(true);
  });

  it('refuses every other measurement, action and version with RESERVED_NAME', async () => {
    const s = service(true);
    expect(await ask(s, OTHER, 'retrieve')).to.include({ status: 'failed', errorCode: 'RESERVED_NAME' });
    for (const action of ['store', 'delete'] as const) expect(await ask(s, OWN, action), action).to.include({ status: 'failed', errorCode: 'RESERVED_NAME' });
    // Listing under its name shows nothing of it (a prefix is not a name: reserved names are left out).
    const list = await ask(s, OWN, 'list');
    expect(list.status).to.equal('succeeded');
    expect(decode<KeyServiceList>('key_service_list', list.data!).resources ?? []).to.deep.equal([]);
    expect(await ask(s, OWN, 'retrieve', 2)).to.include({ status: 'failed', errorCode: 'RESERVED_NAME' });
  });

  it('answers its own measurement\'s retrieve of any other name as usual, with that name\'s value, never the storage key', async () => {
    const value = randomBytes(24);
    await new KeyStore(backend, storageKey).store('app/key', value, { type: 'binary-blob', exportable: true });
    const s = service(true);
    const got = await ask(s, OWN, 'retrieve', 0, 'app/key');
    expect(got).to.include({ status: 'succeeded', version: 1 });
    expect(Buffer.from(decode<CryptstoreEntry>('cryptstore_entry', got.data!).blob!).equals(Buffer.from(value))).to.equal(true);
    expect(await ask(s, OWN, 'retrieve', 0, 'app/absent')).to.include({ status: 'failed', errorCode: 'NOT_FOUND' });
  });

  it('releases nothing to its own measurement that also shows a role credential: RESERVED_NAME', async () => {
    const policy = await generateKeyPair('p256');
    const policyCert = await createPolicyCert({ privateKey: policy.privateKey, domain: 'datica', now: new Date(Date.now() - 3_600_000) });
    const role = await generateKeyPair('p256');
    const credential = await issueRoleCert({ policyKey: policy.privateKey, policyCert, subjectPublicKey: role.publicKey, role: 'operator', domain: 'datica', validitySeconds: 86_400 });
    const s = new KeyService({
      keystore: new KeyStore(backend, storageKey), policyCert, audit, reserved: { names: [STORAGE_KEY_TAG], prefixes: ['key-server/'] },
      replicaJoin: new ReplicaJoin({ name: STORAGE_KEY_TAG, measurementHex: OWN, storageKey }),
    });
    const exporter = randomBytes(32);
    const { conn } = member(OWN, '1f');
    const c = { ...conn('c1'), exportKeyingMaterial: () => exporter };
    const req = { action: 'retrieve' as const, name: STORAGE_KEY_TAG, credentials: [credential] };
    const challenged = parseKeyResponse(await s.handle(encodeKeyRequest(req), c));
    expect(challenged.status).to.equal('auth-challenge');
    const challengeSignature = sign(role.privateKey, challengeMessage(challenged.data!, exporter));
    const r = parseKeyResponse(await s.handle(encodeKeyRequest({ ...req, challengeNonce: challenged.data!, challengeSignature }), c));
    expect(r).to.include({ status: 'failed', errorCode: 'RESERVED_NAME' });
    expect(r).not.to.have.property('data');
  });
});

describe('storageKeyFrom with a backend shared by replicas', () => {
  let tmp: ReturnType<typeof tempDir>;
  let store: Cryptstore;
  let bound: string | undefined;
  // What PgBackend does, in memory.
  const shared = {
    list: async () => [],
    boundStorageKey: async () => bound,
    bindStorageKey: async (id: string) => {
      bound ??= id;
      if (bound !== id) throw new CertifierError('WRONG_KEY', 'another key');
    },
  } as unknown as KeyBackend;

  beforeEach(async () => {
    tmp = tempDir('replica-key-');
    store = await Cryptstore.create(join(tmp.dir, 'store'), new KeyFileProtector(randomBytes(32)));
    bound = undefined;
  });
  afterEach(async () => {
    await store.close();
    tmp.cleanup();
  });

  it('makes the key on the first start of a deployment and records its id', async () => {
    const key = await storageKeyFrom(store, shared);
    expect(bound).to.equal(storageKeyId(key));
    expect(await storageKeyFrom(store, shared)).to.deep.equal(key);
  });

  it('makes no key for a replica of a running deployment, and tells it to join', async () => {
    bound = '00'.repeat(16);
    const e = await rejects(storageKeyFrom(store, shared), 'NOT_FOUND');
    expect(e.message).to.match(/key-server join/);
    await rejects(store.get(STORAGE_KEY_TAG), 'NOT_FOUND');
  });

  it('refuses a key that is not the deployment\'s with WRONG_KEY', async () => {
    await storageKeyFrom(store, shared);
    bound = '00'.repeat(16);
    await rejects(storageKeyFrom(store, shared), 'WRONG_KEY');
  });

  it('loses a race with a replica starting at the same moment cleanly: no key kept, told to join', async () => {
    // The other replica binds between our look at the database and our bind.
    const racing = { ...shared, boundStorageKey: async () => undefined } as unknown as KeyBackend;
    bound = 'ab'.repeat(16);
    const e = await rejects(storageKeyFrom(store, racing), 'NOT_FOUND');
    expect(e.message).to.contain('another replica bound its storage key').and.contain('key-server join');
    await rejects(store.get(STORAGE_KEY_TAG), 'NOT_FOUND'); // so join needs no --force
  });
});

describe('storageKeyFrom with a LevelDB key database', () => {
  let tmp: ReturnType<typeof tempDir>;
  let store: Cryptstore;
  let backend: LevelBackend;
  beforeEach(async () => {
    tmp = tempDir('level-key-');
    store = await Cryptstore.create(join(tmp.dir, 'store'), new KeyFileProtector(randomBytes(32)));
    backend = await LevelBackend.open(join(tmp.dir, 'data'));
  });
  afterEach(async () => {
    await backend.close();
    await store.close();
    tmp.cleanup();
  });

  it('binds the database to its key, and refuses a store without it or with another', async () => {
    const key = await storageKeyFrom(store, backend);
    expect(await backend.boundStorageKey()).to.equal(storageKeyId(key));
    const other = await Cryptstore.create(join(tmp.dir, 'other'), new KeyFileProtector(randomBytes(32)));
    try {
      expect((await rejects(storageKeyFrom(other, backend), 'NOT_FOUND')).message).to.contain('key-server join');
      await other.put(STORAGE_KEY_TAG, randomBytes(32), { type: 'binary-blob', exportable: false });
      await rejects(storageKeyFrom(other, backend), 'WRONG_KEY');
    } finally {
      await other.close();
    }
  });

  it('binds a database written before keys were bound only to a key that opens its records', async () => {
    const key = randomBytes(32);
    await new KeyStore(backend, key).store('old/key', randomBytes(16), { type: 'binary-blob', exportable: true });
    expect(await backend.boundStorageKey()).to.equal(undefined);
    await rejects(storageKeyFrom(store, backend), 'NOT_FOUND'); // records, and no key: never a new one
    await store.put(STORAGE_KEY_TAG, randomBytes(32), { type: 'binary-blob', exportable: false });
    await rejects(storageKeyFrom(store, backend), 'WRONG_KEY');
    expect(await backend.boundStorageKey()).to.equal(undefined);
    await store.put(STORAGE_KEY_TAG, key, { type: 'binary-blob', exportable: false });
    expect(await storageKeyFrom(store, backend)).to.deep.equal(key);
    expect(await backend.boundStorageKey()).to.equal(storageKeyId(key));
  });
});

describe('lockDataDir', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('replica-lock-');
  });
  afterEach(() => tmp.cleanup());

  it('gives a replica\'s data directory to one holder at a time, and back once released', async () => {
    const dir = join(tmp.dir, 'data');
    const { release } = await lockDataDir(dir);
    expect(statSync(dir).mode & 0o777, 'made for its owner only: it holds the audit log').to.equal(0o700);
    const e = await rejects(lockDataDir(dir), 'STORE_LOCKED');
    expect(e.message).to.match(/give each replica its own --data/);
    await release();
    await (await lockDataDir(dir)).release();
  });

  it('names, in words, the file on the way where a --data cannot be made', async () => {
    const file = join(tmp.dir, 'a-file');
    writeFileSync(file, 'x');
    const e = await rejects(lockDataDir(join(file, 'data')), 'FILE_ERROR');
    expect(e.message).to.equal(`cannot use ${join(file, 'data')} as the key-server data directory: ${file} is not a directory`);
  });

  it('keeps, refused, the lock directory of a data directory that was there, however it is named ("x/new/..")', async () => {
    const dir = join(tmp.dir, 'data');
    await (await lockDataDir(dir)).release();
    await (await lockDataDir(`${dir}/new/..`)).releaseUnused(); // not join(), which takes the .. as text
    expect(readdirSync(dir)).to.deep.equal(['replica-lock']);
  });

  it('removes, refused, every folder it made for a data directory named "up/new/../data", the one ".." passed through too', async () => {
    await (await lockDataDir(`${tmp.dir}/up/new/../data`)).releaseUnused(); // not join(), which takes the .. as text
    expect(readdirSync(tmp.dir)).to.not.include('up');
  });

  it('takes a data directory named through "link/.." where the link leads: the one a replica naming it there meets', async () => {
    mkdirSync(join(tmp.dir, 'elsewhere', 'deep'), { recursive: true });
    mkdirSync(join(tmp.dir, 'here', 'data'), { recursive: true }); // another replica's, beside the link
    symlinkSync(join(tmp.dir, 'elsewhere', 'deep'), join(tmp.dir, 'here', 'link'));
    const { release } = await lockDataDir(`${tmp.dir}/here/link/../data`); // not join(), which takes the .. as text
    try {
      // (In one process LevelDB tells its locks apart by path: another process is kept out by the lock's file.)
      expect(readdirSync(join(tmp.dir, 'elsewhere', 'data', 'replica-lock'))).to.include('LOCK');
      expect(readdirSync(join(tmp.dir, 'here', 'data')), 'beside the link').to.deep.equal([]);
    } finally {
      await release();
    }
  });

  it('keeps another process out while held, and is free again the moment its holder is killed', async function () {
    this.timeout(20_000);
    const dir = join(tmp.dir, 'data');
    const holder = spawn(process.execPath, ['--import', 'tsx', '-e',
      `const { lockDataDir } = await import(${JSON.stringify(join(ROOT, 'lib/keyservice/replica.ts'))}); await lockDataDir(process.argv[1]); console.log('held'); setInterval(() => {}, 1000);`, dir],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout!.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
        holder.once('exit', (code) => reject(new Error(`the holder exited (${code}) before taking the lock`)));
      });
      await rejects(lockDataDir(dir), 'STORE_LOCKED');
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => (holder.exitCode !== null || holder.signalCode !== null ? r(undefined) : holder.once('exit', r)));
    }
    await (await lockDataDir(dir)).release();
  });
});

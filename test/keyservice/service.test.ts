// The key service's ordering on one connection: reads (retrieve, list) run alongside the requests
// after them, and a store or delete waits for the reads sent before it, so no read sees a write
// sent after it. The backend is a real LevelBackend whose reads can be held at a gate.

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from '../../lib/crypto/index.ts';
import { decode, type CryptstoreEntry, type KeyServiceList } from '../../lib/wire/index.ts';
import type { LaterAnswer } from '../../lib/channel/index.ts';
import type { ValidatedPeer } from '../../lib/pki/index.ts';
import { AuditLog, verifyAudit } from '../../lib/keyservice/audit.ts';
import type { KeyBackend, ListOptions, StoredRecord } from '../../lib/keyservice/backend.ts';
import { KeyService, type Connection } from '../../lib/keyservice/handlers.ts';
import { KeyStore, STORAGE_KEY_TAG } from '../../lib/keyservice/keystore.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { encodeKeyRequest, LIST_PAGE, parseKeyResponse } from '../../lib/keyservice/protocol.ts';
import { collectPages } from '../../lib/keyclient/index.ts';
import { withEnv } from '../support/canaries.ts';
import { tempDir } from '../support/helpers.ts';
import { member } from './member.ts';

/** A LevelBackend whose reads wait until the gate opens; it records the order of operations. */
class GatedBackend implements KeyBackend {
  readonly events: string[] = [];
  private gate: Promise<void> = Promise.resolve();
  private openGate: () => void = () => {};
  constructor(private readonly inner: LevelBackend) {}
  hold(): void {
    this.gate = new Promise((r) => (this.openGate = r));
  }
  release(): void {
    this.openGate();
  }
  async get(name: string, version: number): Promise<StoredRecord | undefined> {
    const r = await this.inner.get(name, version);
    await this.gate;
    this.events.push(`get ${name} -> ${r?.version ?? 'none'}`);
    return r;
  }
  async append(name: string, build: (version: number) => StoredRecord, expectedLatest?: number): Promise<StoredRecord> {
    this.events.push(`append ${name}`);
    return this.inner.append(name, build, expectedLatest);
  }
  delete(name: string, version: number, listed?: number) {
    this.events.push(`delete ${name}`);
    return this.inner.delete(name, version, listed);
  }
  list(prefix: string, options?: ListOptions) {
    return this.inner.list(prefix, options);
  }
  close() {
    return this.inner.close();
  }
}

const settledSoon = <T>(p: Promise<T>, ms = 200): Promise<T | 'pending'> =>
  Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))]);

describe('key service: ordering of the requests of one connection', () => {
  let tmp: ReturnType<typeof tempDir>;
  let inner: LevelBackend;
  let backend: GatedBackend;
  let audit: AuditLog;
  let service: KeyService;
  const M = 'aa'.repeat(32);
  const { acl, conn } = member(M, '1f');
  const ask = (c: Connection, r: Parameters<typeof encodeKeyRequest>[0]) => service.handleStaged(encodeKeyRequest(r), c);
  const answer = async (staged: Uint8Array | LaterAnswer) => parseKeyResponse(staged instanceof Uint8Array ? staged : await staged.later);
  /** On `c`: stores `name`, holds the backend's reads, then sends a retrieve and a store of `name` (which waits for the retrieve). */
  const writeBehindRead = async (c: Connection, name: string) => {
    await answer(await ask(c, { action: 'store', name, data: new Uint8Array([1]) }));
    backend.hold();
    const read = await ask(c, { action: 'retrieve', name, version: 0 });
    return { read, write: ask(c, { action: 'store', name, data: new Uint8Array([2]) }) };
  };
  /** Records put straight into the backend (a listing never opens their ciphertext). */
  const plant = (names: string[]) => Promise.all(names.map((name) => inner.append(name, (version) => ({
    name, version, type: 'binary-blob', exportable: true, timeEntered: '2026-12-01T00:00:00.000Z', size: 1, ciphertext: new Uint8Array(17),
  }))));
  const listNames = async (svc: KeyService, c: Connection, prefix: string) => (await collectPages(prefix, async (after) => {
    const r = await answer(await svc.handleStaged(encodeKeyRequest({ action: 'list', name: prefix, ...(after !== undefined ? { listAfter: after } : {}) }), c));
    expect(r.status).to.equal('succeeded');
    return decode<KeyServiceList>('key_service_list', r.data!);
  })).map((i) => i.name);

  beforeEach(async () => {
    tmp = tempDir('keyservice-order-');
    inner = await LevelBackend.open(join(tmp.dir, 'data'));
    backend = new GatedBackend(inner);
    audit = await AuditLog.open(join(tmp.dir, 'audit.jsonl'));
    service = new KeyService({ keystore: new KeyStore(backend, randomBytes(32)), policyCert: new Uint8Array(), acl, audit, reserved: { names: [], prefixes: [] } });
  });
  afterEach(async () => {
    backend.release();
    await audit.close();
    await backend.close();
    tmp.cleanup();
  });

  it('lets the next request start while a retrieve is still reading', async () => {
    const c = conn('c1');
    await answer(await ask(c, { action: 'store', name: 'a', data: new Uint8Array([1]) }));
    backend.hold();
    // Held, they would wait for the release, which waits for the test: a generous bound tells them apart on a slow machine too.
    const staged = await settledSoon(ask(c, { action: 'retrieve', name: 'a', version: 0 }), 10_000);
    expect(staged, 'the retrieve held the connection until its read finished').not.to.equal('pending');
    const second = await settledSoon(ask(c, { action: 'list', name: '', version: 0 }), 10_000);
    expect(second).not.to.equal('pending');
    backend.release();
    const r = await answer(staged as LaterAnswer);
    expect(r.status).to.equal('succeeded');
    expect(decode<CryptstoreEntry>('cryptstore_entry', r.data!).blob).to.deep.equal(new Uint8Array([1]));
    expect((await answer(second as LaterAnswer)).status).to.equal('succeeded');
  });

  it('starts a store or delete only after the reads sent before it on its connection', async () => {
    const c = conn('c2');
    const { read, write } = await writeBehindRead(c, 'a');
    expect(await settledSoon(write), 'the store went ahead of an earlier read').to.equal('pending');
    expect(backend.events).to.deep.equal(['append a']);
    // Another connection's store is not held by this connection's read.
    const other = await settledSoon(ask(conn('c3'), { action: 'store', name: 'b', data: new Uint8Array([3]) }), 10_000);
    expect(other).not.to.equal('pending');
    backend.release();
    const first = await answer(read);
    expect(first.version, 'the earlier retrieve saw the later store').to.equal(1);
    expect((await answer(await write)).version).to.equal(2);
    expect(backend.events).to.deep.equal(['append a', 'append b', 'get a -> 1', 'append a']);

    backend.hold();
    const read2 = await ask(c, { action: 'retrieve', name: 'a', version: 1 });
    const del = ask(c, { action: 'delete', name: 'a', version: 1 });
    expect(await settledSoon(del)).to.equal('pending');
    backend.release();
    expect((await answer(read2)).status).to.equal('succeeded');
    expect((await answer(await del)).status).to.equal('succeeded');
    expect(backend.events.slice(-2)).to.deep.equal(['get a -> 1', 'delete a']);
  });

  it('refuses (CERT_EXPIRED, audited) a request on a connection that outlived its client certificate', async () => {
    const ended = new Date(Date.now() - 1_000);
    const c: Connection = { ...conn('c5'), peer: { measurementHex: M, serialHex: '1f', notAfter: ended, validUntil: ended } as ValidatedPeer };
    expect(await answer(await ask(c, { action: 'list', name: '', version: 0 }))).to.include({ status: 'failed', errorCode: 'CERT_EXPIRED' });
    // The leaf still valid, the policy certificate above it ended: the path has ended.
    const later = new Date(Date.now() + 3_600_000);
    const policyEnded: Connection = { ...conn('c5b'), peer: { measurementHex: M, serialHex: '1f', notAfter: later, validUntil: new Date(Date.now() - 1_000) } as ValidatedPeer };
    expect(await answer(await ask(policyEnded, { action: 'list', name: '', version: 0 }))).to.include({ status: 'failed', errorCode: 'CERT_EXPIRED' });
    await audit.close();
    expect(readFileSync(audit.path, 'utf8')).to.contain('"code":"CERT_EXPIRED"');
  });

  it('gives the refusal (CERT_EXPIRED) of a request on a connection that outlived its client certificate as the connection\'s last answer, so the channel closes it; any other refusal is not', async () => {
    const ended = new Date(Date.now() - 1_000);
    const later = new Date(Date.now() + 3_600_000);
    const list = { action: 'list', name: '', version: 0 } as const;
    const expired: Connection = { ...conn('c5c'), peer: { measurementHex: M, serialHex: '1f', notAfter: ended, validUntil: ended } as ValidatedPeer };
    for (let i = 0; i < 2; i++) {
      const staged = await ask(expired, list);
      expect((staged as LaterAnswer).last, `request ${i + 1}`).to.equal(true);
      expect(await answer(staged)).to.include({ status: 'failed', errorCode: 'CERT_EXPIRED' });
    }
    const valid: Connection = { ...conn('c5d'), peer: { measurementHex: M, serialHex: '1f', notAfter: later, validUntil: later } as ValidatedPeer };
    const missing = await ask(valid, { action: 'retrieve', name: 'missing', version: 0 });
    expect(await answer(missing)).to.include({ status: 'failed', errorCode: 'NOT_FOUND' });
    expect((missing as LaterAnswer).last).to.equal(undefined);
    expect(await answer(await ask(valid, list))).to.include({ status: 'succeeded' });
  });

  it('refuses (CERT_EXPIRED, logged with when) a request on a connection that outlived the key-server\'s own certificate; a renewed one serves new connections', async () => {
    const logs: Record<string, unknown>[] = [];
    let clock = Date.now();
    let ownEnd = new Date(clock + 60_000);
    const svc = new KeyService({
      keystore: new KeyStore(backend, randomBytes(32)), policyCert: new Uint8Array(), acl, audit, reserved: { names: [], prefixes: [] },
      log: (r) => logs.push(r), now: () => new Date(clock), ownCertEnd: () => ownEnd,
    });
    const later = new Date(clock + 86_400_000);
    const peer = { measurementHex: M, serialHex: '1f', notAfter: later, validUntil: later } as ValidatedPeer;
    const list = { action: 'list', name: '', version: 0 } as const;
    const old: Connection = { ...conn('c8'), peer };
    expect(await answer(await svc.handleStaged(encodeKeyRequest(list), old))).to.include({ status: 'succeeded' });
    const ended = ownEnd;
    ownEnd = new Date(clock + 3 * 86_400_000); // renewed (--certifier): new connections get this one
    clock += 120_000; // the old certificate, which the old connection was opened with, has ended
    expect(await answer(await svc.handleStaged(encodeKeyRequest(list), old))).to.include({ status: 'failed', errorCode: 'CERT_EXPIRED' });
    expect(logs.at(-1)).to.include({ decision: 'deny', code: 'CERT_EXPIRED', detail: `this key-server's own certificate ended at ${ended.toISOString()}, after this connection was opened (checked at ${new Date(clock).toISOString()} by the key-server's clock): a new connection gets the one in force` });
    expect(await answer(await svc.handleStaged(encodeKeyRequest(list), { ...conn('c9'), peer }))).to.include({ status: 'succeeded' });
  });

  it('refuses (CERT_EXPIRED, audited, logged with when) a request on a connection whose certificates are not yet valid by the server\'s clock', async () => {
    // The clock set back a day after the connection was opened: the leaf, then the policy certificate above it, not valid yet.
    const logs: Record<string, unknown>[] = [];
    const dayAgo = new Date(Date.now() - 86_400_000);
    const svc = new KeyService({ keystore: new KeyStore(backend, randomBytes(32)), policyCert: new Uint8Array(), acl, audit, reserved: { names: [], prefixes: [] }, log: (r) => logs.push(r), now: () => dayAgo });
    const hourAgo = new Date(Date.now() - 3_600_000);
    const later = new Date(Date.now() + 3_600_000);
    const leafNotYet = { measurementHex: M, serialHex: '1f', notBefore: hourAgo, notAfter: later, validFrom: hourAgo, validUntil: later } as ValidatedPeer;
    const policyNotYet = { ...leafNotYet, notBefore: new Date(Date.now() - 2 * 86_400_000), validFrom: hourAgo };
    for (const [id, peer] of [['c7', leafNotYet], ['c7b', policyNotYet]] as const) {
      const c: Connection = { ...conn(id), peer };
      for (const r of [{ action: 'retrieve', name: 'a', version: 0 }, { action: 'store', name: 'a', data: new Uint8Array([1]) }, { action: 'list', name: '', version: 0 }] as const) {
        expect(await answer(await svc.handleStaged(encodeKeyRequest(r), c)), `${id} ${r.action}`).to.include({ status: 'failed', errorCode: 'CERT_EXPIRED' });
      }
    }
    expect(logs.map((l) => [l.decision, l.code])).to.deep.equal(Array(6).fill(['deny', 'CERT_EXPIRED']));
    expect(logs[0]!.detail).to.equal(`the client's certificate (or the policy certificate above it) is not valid before ${hourAgo.toISOString()} (checked at ${dayAgo.toISOString()} by the key-server's clock): the key-server's clock is at least 23 hours 5 minutes behind that of the machine that issued it, gone back since this connection was opened: set it right (NTP, e.g. chrony; README "Clocks")`);
    expect((await inner.list('', {})).length, 'a refused store stored nothing').to.equal(0);
    await audit.close();
    expect(readFileSync(audit.path, 'utf8').match(/"code":"CERT_EXPIRED"/g)).to.have.length(6);
  });

  it('logs how long a request took by a monotonic clock: the wall clock set back a day meanwhile does not make it negative', async () => {
    const logs: Record<string, unknown>[] = [];
    const svc = new KeyService({ keystore: new KeyStore(backend, randomBytes(32)), policyCert: new Uint8Array(), acl, reserved: { names: [], prefixes: [] }, log: (r) => logs.push(r) });
    const c = conn('c8');
    await answer(await svc.handleStaged(encodeKeyRequest({ action: 'store', name: 'a', data: new Uint8Array([1]) }), c));
    const wall = Date.now;
    backend.hold();
    try {
      const read = await svc.handleStaged(encodeKeyRequest({ action: 'retrieve', name: 'a', version: 0 }), c);
      Date.now = () => wall() - 86_400_000;
      backend.release();
      expect((await answer(read)).status).to.equal('succeeded');
    } finally {
      Date.now = wall;
    }
    expect(logs.map((l) => l.ms)).to.satisfy((ms: number[]) => ms.length === 2 && ms.every((m) => m >= 0 && m < 60_000));
  });

  it('lists under a prefix that is itself a reserved name, leaving the reserved names out', async () => {
    const reserved = { names: ['x-private-auth-key'], prefixes: ['key-server/'] };
    const svc = new KeyService({ keystore: new KeyStore(backend, randomBytes(32)), policyCert: new Uint8Array(), acl, reserved });
    const c = conn('c6');
    await answer(await svc.handleStaged(encodeKeyRequest({ action: 'store', name: 'x-private-auth-key-old', data: new Uint8Array([1]) }), c));
    const r = await answer(await svc.handleStaged(encodeKeyRequest({ action: 'list', name: 'x-private-auth-key' }), c));
    expect(r.status).to.equal('succeeded');
    expect(decode<KeyServiceList>('key_service_list', r.data!).resources!.map((e) => e.resourceName)).to.deep.equal(['x-private-auth-key-old']);
    expect(await answer(await svc.handleStaged(encodeKeyRequest({ action: 'retrieve', name: 'x-private-auth-key' }), c))).to.include({ status: 'failed', errorCode: 'RESERVED_NAME' });
  });

  it('lists more names than fit in one answer in full, each answer naming where the next one starts', async () => {
    const names = Array.from({ length: LIST_PAGE + 1 }, (_, i) => `n/${String(i).padStart(4, '0')}`);
    await plant(names);
    const first = await answer(await ask(conn('c9'), { action: 'list', name: 'n/' }));
    expect(decode<KeyServiceList>('key_service_list', first.data!)).to.include({ nextAfter: names[LIST_PAGE - 1] });
    expect(await listNames(service, conn('c9'), 'n/')).to.deep.equal(names);
  });

  it('leaves the server\'s own keys out of every listing, and refuses any name under its reserved prefix (RESERVED_NAME)', async () => {
    const reserved = { names: [STORAGE_KEY_TAG, 'x-private-auth-key'], prefixes: ['key-server/'] };
    const svc = new KeyService({ keystore: new KeyStore(backend, randomBytes(32)), policyCert: new Uint8Array(), acl, reserved });
    const c = conn('c10');
    await plant(['a', 'key-server/x', 'key-server/y/z', STORAGE_KEY_TAG, 'x-private-auth-key', 'z']);
    expect(await listNames(svc, c, '')).to.deep.equal(['a', 'z']);
    expect(await listNames(svc, c, 'key-server/')).to.deep.equal([]);
    for (const r of [{ action: 'store', name: 'key-server/anything', data: new Uint8Array([1]) }, { action: 'retrieve', name: 'key-server/x' }, { action: 'delete', name: 'key-server/y/z' }, { action: 'retrieve', name: STORAGE_KEY_TAG }] as const) {
      expect(await answer(await svc.handleStaged(encodeKeyRequest(r), c)), `${r.action} ${r.name}`).to.include({ status: 'failed', errorCode: 'RESERVED_NAME' });
    }
  });

  it('passes over a page of nothing but the server\'s own names: no answer is empty with more to come', async () => {
    const svc = new KeyService({ keystore: new KeyStore(backend, randomBytes(32)), policyCert: new Uint8Array(), acl, reserved: { names: [], prefixes: ['key-server/'] } });
    await plant([...Array.from({ length: LIST_PAGE + 1 }, (_, i) => `key-server/${String(i).padStart(4, '0')}`), 'z']);
    const first = await answer(await svc.handleStaged(encodeKeyRequest({ action: 'list', name: '' }), conn('c12')));
    expect(decode<KeyServiceList>('key_service_list', first.data!)).to.deep.equal({ resources: [{ resourceName: 'z', version: 1, valueType: 'binary-blob', timeEntered: '2026-12-01T00:00:00.000Z', exportable: true, size: 1 }] });
  });

  it('names the last name it answers in next_after, never one of the server\'s own that ended the page', async () => {
    const svc = new KeyService({ keystore: new KeyStore(backend, randomBytes(32)), policyCert: new Uint8Array(), acl, reserved: { names: [STORAGE_KEY_TAG], prefixes: ['key-server/'] } });
    const names = Array.from({ length: LIST_PAGE - 2 }, (_, i) => `a/${String(i).padStart(4, '0')}`);
    await plant([...names, STORAGE_KEY_TAG, 'key-server/secret-name', 'z']);
    const first = decode<KeyServiceList>('key_service_list', (await answer(await svc.handleStaged(encodeKeyRequest({ action: 'list', name: '' }), conn('c14')))).data!);
    expect(first.nextAfter).to.equal(names.at(-1));
    expect(await listNames(svc, conn('c14'), '')).to.deep.equal([...names, 'z']);
  });

  it('names a reserved name in its refusal\'s log line as every other name is shown: a name not in form C escaped', async () => {
    const lines: Record<string, unknown>[] = [];
    const reserved = { names: [], prefixes: ['key-server/'] };
    const svc = new KeyService({ keystore: new KeyStore(backend, randomBytes(32)), policyCert: new Uint8Array(), acl, reserved, log: (l) => void lines.push(l) });
    expect(await answer(await svc.handleStaged(encodeKeyRequest({ action: 'retrieve', name: 'key-server/e\u0301x' }), conn('c11')))).to.include({ errorCode: 'RESERVED_NAME' });
    expect(String(lines.find((l) => l.code === 'RESERVED_NAME')?.detail)).to.equal('"key-server/e\\u0301x" names one of the key-server\'s own keys, which are never served');
  });

  it('refuses with INTERNAL, and logs it, what fails with a code no key-server sends', async () => {
    const lines: Record<string, unknown>[] = [];
    const locked: KeyBackend = { ...inner, get: async () => { throw new CertifierError('STORE_LOCKED', 'held by another process'); }, list: inner.list.bind(inner), delete: inner.delete.bind(inner), append: inner.append.bind(inner), close: async () => {} };
    const svc = new KeyService({ keystore: new KeyStore(locked, randomBytes(32)), policyCert: new Uint8Array(), acl, reserved: { names: [], prefixes: [] }, log: (l) => void lines.push(l) });
    expect(await answer(await svc.handleStaged(encodeKeyRequest({ action: 'retrieve', name: 'a' }), conn('c13')))).to.include({ status: 'failed', errorCode: 'INTERNAL' });
    expect(lines.find((l) => l.event === 'internal-error')).to.include({ detail: 'held by another process' });
  });

  it('logs a fault not of ours by its class only, its message (which may quote a secret) only with CERTIFIER_DEBUG=1', async () => {
    const lines: Record<string, unknown>[] = [];
    const broken: KeyBackend = { ...inner, get: async () => JSON.parse('{"k":hush-canary}'), list: inner.list.bind(inner), delete: inner.delete.bind(inner), append: inner.append.bind(inner), close: async () => {} };
    const svc = new KeyService({ keystore: new KeyStore(broken, randomBytes(32)), policyCert: new Uint8Array(), acl, reserved: { names: [], prefixes: [] }, log: (l) => void lines.push(l) });
    const ask = async (id: string) => {
      expect(await answer(await svc.handleStaged(encodeKeyRequest({ action: 'retrieve', name: 'a' }), conn(id)))).to.include({ status: 'failed', errorCode: 'INTERNAL' });
      return lines.find((l) => l.event === 'internal-error' && l.conn === id);
    };
    expect(await ask('c15')).to.include({ detail: 'SyntaxError' });
    expect(JSON.stringify(lines)).not.to.contain('hush-canary');
    expect(String((await withEnv('CERTIFIER_DEBUG', '1', () => ask('c16')))?.detail)).to.match(/^SyntaxError: .*hush-canary/);
  });

  it('drain() waits for a store still executing (past a shutdown\'s grace), until its audit record is appended', async () => {
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    const slow: KeyBackend = { ...inner, get: inner.get.bind(inner), list: inner.list.bind(inner), delete: inner.delete.bind(inner), close: async () => {},
      append: async (name, build, expected) => { await held; return inner.append(name, build, expected); } };
    const svc = new KeyService({ keystore: new KeyStore(slow, randomBytes(32)), policyCert: new Uint8Array(), acl, audit, reserved: { names: [], prefixes: [] } });
    const staged = svc.handleStaged(encodeKeyRequest({ action: 'store', name: 'late', data: new Uint8Array([1]) }), conn('c7'));
    let drained = false;
    const draining = svc.drain(5_000).then(() => (drained = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(drained, 'drain returned while the store was still running').to.equal(false);
    release();
    await draining;
    expect((await answer(await staged)).status).to.equal('succeeded');
    await audit.close();
    expect(readFileSync(audit.path, 'utf8')).to.contain('"resource":"late"');
  });

  it('audits a refused read, and answers it in its turn', async () => {
    const c = conn('c4');
    const missing = await ask(c, { action: 'retrieve', name: 'nothing-here', version: 0 });
    const r = await answer(missing);
    expect(r).to.include({ status: 'failed', errorCode: 'NOT_FOUND' });
    await audit.close();
    expect(await verifyAudit(audit.path)).to.deep.equal({ ok: true, lines: 1 });
  });

  it('carries out nothing once its audit log cannot be written: a store is refused before it takes effect', async () => {
    const c = conn('c-audit');
    expect((await answer(await ask(c, { action: 'store', name: 'k', data: randomBytes(8) }))).status).to.equal('succeeded');
    rmSync(audit.path); // the log, removed while in use: the next write finds it so and breaks the log
    const first = await answer(await ask(c, { action: 'store', name: 'k', data: randomBytes(8) }));
    // That store was carried out before its record failed: the client is told so, with its version.
    expect(first).to.include({ status: 'failed', errorCode: 'NOT_RECORDED', version: 2 });
    expect((await inner.get('k', 2))?.version).to.equal(2);
    const events = backend.events.length;
    for (const r of [{ action: 'store' as const, name: 'k', data: randomBytes(8) }, { action: 'delete' as const, name: 'k', version: 1 }, { action: 'retrieve' as const, name: 'k', version: 1 }]) {
      expect(await answer(await ask(c, r))).to.include({ status: 'failed', errorCode: 'FILE_ERROR' });
    }
    expect(backend.events.length, backend.events.join(', ')).to.equal(events); // nothing reached the backend
    expect((await inner.get('k', 1))?.version).to.equal(1);
    expect(await inner.get('k', 3)).to.equal(undefined);
  });

  it('withholds a retrieved value whose audit record could not be written: FILE_ERROR, no data', async () => {
    const c = conn('c-withheld');
    const value = randomBytes(8);
    expect((await answer(await ask(c, { action: 'store', name: 'k', data: value }))).status).to.equal('succeeded');
    rmSync(audit.path); // the retrieve's record is the write that finds the log gone
    const r = await answer(await ask(c, { action: 'retrieve', name: 'k', version: 0 }));
    expect(r).to.include({ status: 'failed', errorCode: 'FILE_ERROR' });
    expect(r.data ?? new Uint8Array()).to.have.length(0);
    expect(backend.events).to.include('get k -> 1'); // it was read, and held back
  });

  it('answers NOT_RECORDED, naming the version, for a delete carried out whose record could not be written, and logs it', async () => {
    const lines: Record<string, unknown>[] = [];
    const logged = new KeyService({ keystore: new KeyStore(backend, randomBytes(32)), policyCert: new Uint8Array(), acl, audit, reserved: { names: [], prefixes: [] }, log: (l) => void lines.push(l) });
    const c = conn('c-unrecorded');
    const store = async () => answer(await logged.handleStaged(encodeKeyRequest({ action: 'store', name: 'd', data: randomBytes(8) }), c));
    await store();
    await store();
    rmSync(audit.path);
    const r = await answer(await logged.handleStaged(encodeKeyRequest({ action: 'delete', name: 'd', version: 1 }), c));
    expect(r).to.include({ status: 'failed', errorCode: 'NOT_RECORDED', version: 1 });
    expect(decode<KeyServiceList>('key_service_list', r.data!)).to.deep.include({ deleted: 1 }); // as a success would say
    expect(await inner.get('d', 1), 'the delete was carried out').to.equal(undefined);
    expect(lines.filter((l) => l.event === 'not-recorded')).to.deep.equal([{ event: 'not-recorded', conn: 'c-unrecorded', action: 'delete', resource: 'd', version: 1, deleted: 1 }]);
    // A refused request is still FILE_ERROR: nothing was carried out.
    expect(await answer(await logged.handleStaged(encodeKeyRequest({ action: 'delete', name: 'd', version: 2 }), c))).to.include({ status: 'failed', errorCode: 'FILE_ERROR' });
    expect((await inner.get('d', 2))?.version).to.equal(2);
  });

  /** The backend's next put (or batch: a delete) reaches LevelDB's log, and then fails as a sync the disk refused (EIO) does. */
  const failPutAfterWrite = (method: 'put' | 'batch' = 'put') => {
    const db = (inner as unknown as { db: Record<'put' | 'batch', (...args: unknown[]) => Promise<void>> }).db;
    const write = db[method].bind(db);
    db[method] = async (...args: unknown[]) => {
      db[method] = write;
      await write(...args);
      throw Object.assign(new Error('IO error: 000005.log: Input/output error'), { code: 'LEVEL_IO_ERROR' });
    };
  };

  it('answers OUTCOME_UNKNOWN, audited as unknown, for a store whose write failed after LevelDB had it, which is there once the database is opened again', async () => {
    const c = conn('c-unknown');
    expect((await answer(await ask(c, { action: 'store', name: 'k', data: randomBytes(8) }))).status).to.equal('succeeded');
    failPutAfterWrite();
    expect(await answer(await ask(c, { action: 'store', name: 'k', data: randomBytes(8) }))).to.include({ status: 'failed', errorCode: 'OUTCOME_UNKNOWN', version: 2 });
    const lines = readFileSync(audit.path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.at(-1)).to.include({ action: 'store', resource: 'k', version: 2, decision: 'unknown', code: 'OUTCOME_UNKNOWN' });
    await inner.close();
    inner = await LevelBackend.open(join(tmp.dir, 'data'));
    backend = new GatedBackend(inner);
    expect((await inner.get('k', 0))?.version, 'the store whose write failed was made').to.equal(2);
    await audit.close();
    expect(await verifyAudit(audit.path)).to.deep.equal({ ok: true, lines: 2 });
  });

  it('audits a delete of every version whose write failed after LevelDB had it as unknown, with how many versions it may have removed', async () => {
    const c = conn('c-unknown-delete');
    for (let i = 0; i < 2; i++) await ask(c, { action: 'store', name: 'd', data: randomBytes(8) });
    failPutAfterWrite('batch');
    expect(await answer(await ask(c, { action: 'delete', name: 'd', version: 0 }))).to.include({ status: 'failed', errorCode: 'OUTCOME_UNKNOWN' });
    const lines = readFileSync(audit.path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.at(-1)).to.include({ action: 'delete', resource: 'd', version: 0, deleted: 2, decision: 'unknown', code: 'OUTCOME_UNKNOWN' });
  });

  it('answers OUTCOME_UNKNOWN, not FILE_ERROR, for a store whose write failed after LevelDB had it when its audit record cannot be written either', async () => {
    const c = conn('c-unknown-unrecorded');
    expect((await answer(await ask(c, { action: 'store', name: 'k', data: randomBytes(8) }))).status).to.equal('succeeded');
    failPutAfterWrite();
    rmSync(audit.path); // the record of the failed store finds the log gone
    expect(await answer(await ask(c, { action: 'store', name: 'k', data: randomBytes(8) }))).to.include({ status: 'failed', errorCode: 'OUTCOME_UNKNOWN', version: 2 });
    expect((await inner.get('k', 0))?.version).to.equal(2);
  });

  it('carries out no store that waited for a read of its connection while the audit log broke', async () => {
    const { read, write } = await writeBehindRead(conn('c11'), 'k');
    rmSync(audit.path); // then another connection's store finds the log gone, and breaks it
    // (that store is carried out; its record is not)
    expect(await answer(await ask(conn('c12'), { action: 'store', name: 'other', data: new Uint8Array([3]) }))).to.include({ status: 'failed', errorCode: 'NOT_RECORDED', version: 1 });
    backend.release();
    expect(await answer(await write)).to.include({ status: 'failed', errorCode: 'FILE_ERROR' });
    expect((await answer(read)).status).to.equal('failed');
    expect(await inner.get('k', 2), 'the store reached the backend').to.equal(undefined);
  });

  it('refuses a request on a connection without a verified client certificate (UNTRUSTED_PEER, audited)', async () => {
    const c: Connection = { ...conn('c13'), peer: undefined };
    expect(await answer(await ask(c, { action: 'list', name: '' }))).to.include({ status: 'failed', errorCode: 'UNTRUSTED_PEER' });
    await audit.close();
    expect(readFileSync(audit.path, 'utf8')).to.contain('"code":"UNTRUSTED_PEER"');
  });
});

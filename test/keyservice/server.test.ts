// key-server's start and stop (startKeyServer), and its certification at start through
// --certifier (openCertified), with a real simpleserver and real machines on 127.0.0.1: a stop
// past its grace lets a request still executing finish, sealed and audited, before the storage
// key is wiped; it ends a renewal in flight; and the start says whether the certificate renews.

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fromKeyMessage, generateKeyPair, publicKeyOf, randomBytes, sha256, utf8 } from '../../lib/crypto/index.ts';
import { decode, type KeyMessage } from '../../lib/wire/index.ts';
import { createPolicyCert, issueAdmissionCert, parseCertificate, toPem, type ValidatedPeer } from '../../lib/pki/index.ts';
import { failed, parseKeyRequest, succeeded } from '../../lib/keyservice/protocol.ts';
import { loadPolicy, makePolicy } from '../../lib/policy/index.ts';
import { generateSimulatedPlatform, SIMULATED_ENCLAVE, SimulatedEnclave } from '../../lib/attest/index.ts';
import { admissionCertTag, authKeyTag, initTrust, loadIdentity, startCertifier } from '../../lib/certifier/index.ts';
import { serve, type ChannelServer } from '../../lib/channel/index.ts';
import { KeyClient } from '../../lib/keyclient/index.ts';
import { AuditLog } from '../../lib/keyservice/audit.ts';
import type { KeyBackend } from '../../lib/keyservice/backend.ts';
import { KeyStore } from '../../lib/keyservice/keystore.ts';
import { ReplicaJoin } from '../../lib/keyservice/replica.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { STORAGE_KEY_TAG, startKeyServer } from '../../lib/keyservice/server.ts';
import { openCertified, type Certifier } from '../../cmd/key-server/renewal.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { closedPort, tempDir } from '../support/helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('key-server: start and stop', function () {
  this.timeout(30_000);
  const domain = 'server-test';
  const [ksM, kcM] = [sha256(utf8('key-server program')), sha256(utf8('key-client program'))];
  let tmp: ReturnType<typeof tempDir>;
  let policyKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  let policyCert: Uint8Array;
  let platformKeys: Awaited<ReturnType<typeof generateSimulatedPlatform>>;
  let certifier: ChannelServer;
  const storeKey = randomBytes(32);
  const platform = (m: Uint8Array) => new SimulatedEnclave(platformKeys.attestKey, platformKeys.endorsement, m);
  /** A machine of `measurement` certified (for ten minutes) in a store of its own, closed. */
  const certified = async (name: string, measurement: Uint8Array): Promise<string> => {
    const dir = join(tmp.dir, name);
    const store = await Cryptstore.create(dir, new KeyFileProtector(storeKey));
    try {
      await initTrust({ store, domain, policyCert, platform: platform(measurement), host: '127.0.0.1', port: certifier.address.port });
    } finally {
      await store.close();
    }
    return dir;
  };
  const open = (dir: string) => Cryptstore.open(dir, new KeyFileProtector(storeKey));
  /**
   * Puts in `ks` a certificate of its key ending in under five seconds (issued 56 s back, a minute
   * being the shortest a certifier gives), time enough for a busy machine to start the server and
   * renew; returns the identity it held, the ten-minute one, for the renewal to bring.
   */
  const endingSoon = async (ks: Cryptstore) => {
    const renewed = await loadIdentity(ks, domain, policyCert);
    const issued = Math.floor(Date.now() / 1000) * 1000 - 56_000;
    await ks.put(admissionCertTag(domain), await issueAdmissionCert({
      policyKey, policyCert, subjectPublicKey: publicKeyOf(renewed.key), measurement: ksM, platform: SIMULATED_ENCLAVE, domain, validitySeconds: 60, now: new Date(issued),
    }), { type: 'X509-der-cert', exportable: true });
    return renewed;
  };

  before(async () => {
    tmp = tempDir('ks-server-');
    policyKey = (await generateKeyPair('p256')).privateKey;
    policyCert = await createPolicyCert({ privateKey: policyKey, domain });
    platformKeys = await generateSimulatedPlatform({ alg: 'p256' });
    const policy = loadPolicy(makePolicy({
      policyKey, policyCert, platforms: [{ key: platformKeys.platformKey }], measurements: [ksM, kcM],
      notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000),
    }), publicKeyOf(policyKey));
    certifier = await startCertifier({ policyKey, policyCert, policy, domain, host: '127.0.0.1', port: 0, certValiditySeconds: 600, log: () => {} });
  });
  after(async () => {
    await certifier?.close();
    tmp?.cleanup();
  });

  it('stopping past its grace waits for a store still executing: sealed under the storage key, audited, then the key wiped and the stop done', async () => {
    const ks = await open(await certified('ks-drain', ksM));
    const kc = await open(await certified('kc-drain', kcM));
    const inner = await LevelBackend.open(join(tmp.dir, 'drain-data'));
    const audit = await AuditLog.open(join(tmp.dir, 'drain-audit.jsonl'));
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    let holding = false;
    const slow: KeyBackend = {
      get: inner.get.bind(inner), list: inner.list.bind(inner), delete: inner.delete.bind(inner), close: async () => {},
      append: async (name, build, expected) => { holding = true; await held; return inner.append(name, build, expected); },
    };
    const events: Record<string, unknown>[] = [];
    const client: { c?: KeyClient } = {};
    let server: ChannelServer | undefined;
    try {
      const started = await startKeyServer({ store: ks, domain, policyCert, backend: slow, audit, host: '127.0.0.1', port: 0, log: (r) => void events.push(r as Record<string, unknown>) });
      // Without --certifier, its certificate's end is warned of with what to do about it.
      const expiring = events.find((e) => e.event === 'identity-expiring');
      server = started.server;
      expect(expiring?.warning).to.contain('give it --certifier').and.not.contain('renews it through --certifier');
      client.c = await KeyClient.connect({ host: '127.0.0.1', port: started.server.address.port, identity: await loadIdentity(kc, domain, policyCert), policyCert });
      const value = randomBytes(16);
      void client.c.store('late/k', value).catch(() => {}); // its connection goes at the grace's end
      for (let i = 0; i < 100 && !holding; i++) await sleep(20);
      expect(holding, 'the store reached the backend').to.equal(true);
      let stopped = false;
      const stopping = started.server.close(50).then(() => (stopped = true));
      await sleep(300);
      expect(stopped, 'the stop returned while the store was still executing').to.equal(false);
      release();
      await stopping;
      await audit.close();
      expect(readFileSync(audit.path, 'utf8')).to.match(/"action":"store".*"resource":"late\/k"|"resource":"late\/k".*"action":"store"/);
      // Sealed under the storage key before it was wiped: it opens.
      const key = (await ks.get(STORAGE_KEY_TAG)).blob;
      expect(Buffer.from((await new KeyStore(inner, key).fetch('late/k', 1)).value).equals(value)).to.equal(true);
    } finally {
      release();
      await server?.close(0).catch(() => {});
      await client.c?.close().catch(() => {});
      await audit.close().catch(() => {});
      await inner.close();
      await ks.close();
      await kc.close();
    }
  });

  it('stopping wipes every copy of the storage key it held: the key store\'s, and the one it releases to a joining replica (--allow-replica-join)', async () => {
    const ks = await open(await certified('ks-wipe', ksM));
    const [joiner, kc] = await Promise.all([open(await certified('ks-wipe-joiner', ksM)), open(await certified('kc-wipe', kcM))]);
    const backend = await LevelBackend.open(join(tmp.dir, 'wipe-data'));
    // The objects holding a copy, found as they serve (each keeps its own, apart from the caller's).
    const copies: Record<string, Uint8Array> = {};
    const store = KeyStore.prototype.store;
    const answer = ReplicaJoin.prototype.answer;
    KeyStore.prototype.store = function (this: KeyStore, ...args: Parameters<typeof store>) {
      copies['key store'] = (this as unknown as { key: Uint8Array }).key;
      return store.apply(this, args);
    };
    ReplicaJoin.prototype.answer = function (this: ReplicaJoin, ...args: Parameters<typeof answer>) {
      copies['replica join'] = (this as unknown as { key: Uint8Array }).key;
      return answer.apply(this, args);
    };
    let server: ChannelServer | undefined;
    try {
      ({ server } = await startKeyServer({ store: ks, domain, policyCert, backend, allowReplicaJoin: true, host: '127.0.0.1', port: 0, log: () => {} }));
      const port = server.address.port;
      const client = await KeyClient.connect({ host: '127.0.0.1', port, identity: await loadIdentity(kc, domain, policyCert), policyCert });
      await client.store('app/k', utf8('v')).finally(() => client.close());
      const other = await KeyClient.connect({ host: '127.0.0.1', port, identity: await loadIdentity(joiner, domain, policyCert), policyCert });
      const released = await other.retrieve(STORAGE_KEY_TAG).finally(() => other.close());
      const key = (await ks.get(STORAGE_KEY_TAG)).blob;
      expect(Buffer.from(released.blob).equals(key), 'the key released to the joining replica').to.equal(true);
      const each = (f: (c: Uint8Array) => boolean) => Object.fromEntries(Object.entries(copies).map(([what, c]) => [what, f(c)]));
      expect(each((c) => Buffer.from(c).equals(key)), 'the copies held while serving').to.deep.equal({ 'key store': true, 'replica join': true });
      await server.close(1_000);
      expect(each((c) => c.every((b) => b === 0)), 'each copy wiped once stopped').to.deep.equal({ 'key store': true, 'replica join': true });
    } finally {
      KeyStore.prototype.store = store;
      ReplicaJoin.prototype.answer = answer;
      await server?.close(0).catch(() => {});
      await backend.close();
      await Promise.all([ks.close(), joiner.close(), kc.close()]);
    }
  });

  it('a start refused at its port (in use) wipes the copies of the storage key it made, as a stop does: the key store\'s and the replica join\'s', async () => {
    const ks = await open(await certified('ks-wipe-refused', ksM));
    const backend = await LevelBackend.open(join(tmp.dir, 'wipe-refused-data'));
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    // Each copy, as it is wiped; those never wiped stay out.
    const wiped: Record<string, Uint8Array> = {};
    const storeWipe = KeyStore.prototype.wipe;
    const joinWipe = ReplicaJoin.prototype.wipe;
    KeyStore.prototype.wipe = function (this: KeyStore) {
      storeWipe.call(this);
      wiped['key store'] = (this as unknown as { key: Uint8Array }).key;
    };
    ReplicaJoin.prototype.wipe = function (this: ReplicaJoin) {
      joinWipe.call(this);
      wiped['replica join'] = (this as unknown as { key: Uint8Array }).key;
    };
    try {
      const port = (taken.address() as { port: number }).port;
      const started = startKeyServer({ store: ks, domain, policyCert, backend, allowReplicaJoin: true, host: '127.0.0.1', port, log: () => {} });
      expect(await started.then(() => 'started', () => 'refused')).to.equal('refused');
      expect(Object.fromEntries(Object.entries(wiped).map(([what, c]) => [what, c.every((b) => b === 0)]))).to.deep.equal({ 'key store': true, 'replica join': true });
    } finally {
      KeyStore.prototype.wipe = storeWipe;
      ReplicaJoin.prototype.wipe = joinWipe;
      await new Promise((r) => taken.close(r));
      await backend.close();
      await ks.close();
    }
  });

  it('stopping abandons a renewal attempt in flight (a certifier that does not answer does not hold the process)', async () => {
    const ks = await open(await certified('ks-renewing', ksM));
    const backend = await LevelBackend.open(join(tmp.dir, 'renewing-data'));
    const signals: AbortSignal[] = [];
    let server: ChannelServer | undefined;
    try {
      // Its clock a second before the end: the first attempt comes at once, and never ends by itself.
      const offset = (await loadIdentity(ks, domain, policyCert)).peer.notAfter.getTime() - 1_000 - Date.now();
      ({ server } = await startKeyServer({
        store: ks, domain, policyCert, backend, host: '127.0.0.1', port: 0, log: () => {},
        renewal: { recertify: (signal) => (signals.push(signal), new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('abandoned'))))), now: () => Date.now() + offset, minGapMs: 50, justFailed: true },
      }));
      for (let i = 0; i < 100 && signals.length === 0; i++) await sleep(20);
      expect(signals, 'a renewal attempt began').to.have.length(1);
      await server.close(1_000);
      expect(signals[0]!.aborted, 'the attempt was abandoned at the stop').to.equal(true);
    } finally {
      await server?.close(0).catch(() => {});
      await backend.close();
      await ks.close();
    }
  });

  it('once a renewal presents a new certificate, the old one is watched no more: its end passes without identity-expired', async () => {
    const ks = await open(await certified('ks-renewed', ksM));
    const backend = await LevelBackend.open(join(tmp.dir, 'renewed-data'));
    const events: Record<string, unknown>[] = [];
    let server: ChannelServer | undefined;
    try {
      // The renewal brings the ten-minute certificate; it starts with one ending in under five seconds.
      const renewed = await endingSoon(ks);
      const started = await startKeyServer({
        store: ks, domain, policyCert, backend, host: '127.0.0.1', port: 0, log: (r) => void events.push(r as Record<string, unknown>),
        renewal: { recertify: async () => renewed, minGapMs: 50, justFailed: true },
      });
      server = started.server;
      for (let i = 0; i < 200 && !events.some((e) => e.event === 'identity-renewed'); i++) await sleep(20);
      expect(events.map((e) => e.event), 'renewed before the first certificate ended').to.include('identity-renewed');
      await sleep(started.identity.notAfter.getTime() - Date.now() + 500);
      expect(events.filter((e) => e.event === 'identity-expired'), 'the first certificate ended').to.deep.equal([]);
    } finally {
      await server?.close(0).catch(() => {});
      await backend.close();
      await ks.close();
    }
  });

  it('a client whose connection outlives the server\'s certificate, renewed meanwhile, is served on a new connection: the refusals (CERT_EXPIRED) of the requests under way there are each sent again there, once, and the server closes the old one', async () => {
    const ks = await open(await certified('ks-across', ksM));
    const kc = await open(await certified('kc-across', kcM));
    const backend = await LevelBackend.open(join(tmp.dir, 'across-data'));
    const events: Record<string, unknown>[] = [];
    let server: ChannelServer | undefined;
    let client: KeyClient | undefined;
    let renew = () => {};
    const renewing = new Promise<void>((r) => (renew = r));
    try {
      // It starts with a certificate ending in under five seconds; the renewal waits until the
      // client's connection is open, so that connection keeps the first certificate.
      const renewed = await endingSoon(ks);
      const started = await startKeyServer({
        store: ks, domain, policyCert, backend, host: '127.0.0.1', port: 0, log: (r) => void events.push(r as Record<string, unknown>),
        renewal: { recertify: async () => (await renewing, renewed), minGapMs: 50, justFailed: true },
      });
      server = started.server;
      client = await KeyClient.connect({ host: '127.0.0.1', port: server.address.port, identity: await loadIdentity(kc, domain, policyCert), policyCert });
      expect(await client.store('across/k', utf8('one'))).to.equal(1);
      renew();
      for (let i = 0; i < 200 && !events.some((e) => e.event === 'identity-renewed'); i++) await sleep(20);
      expect(events.map((e) => e.event), 'renewed').to.include('identity-renewed');
      await sleep(started.identity.notAfter.getTime() - Date.now() + 500);
      // The first connection is refused now (its certificate ended); the requests sent on it
      // together go again on a new one.
      const stored = await Promise.all([client.store('across/k', utf8('two')), client.store('across/a', utf8('a')), client.store('across/b', utf8('b'))]);
      expect(stored).to.deep.equal([2, 1, 1]);
      expect(Buffer.from((await client.retrieve('across/k')).blob).toString()).to.equal('two');
      const refused = events.filter((e) => e.event === 'request' && e.code === 'CERT_EXPIRED');
      expect(refused.length, 'refusals, on the first connection').to.be.within(1, 3);
      for (const r of refused) expect(String(r.detail)).to.contain("this key-server's own certificate ended at");
      const first = refused[0]!.conn;
      expect(new Set(refused.map((r) => r.conn)), 'one connection').to.deep.equal(new Set([first]));
      // Closed by the server once its refusals were written, however the client goes on.
      const closed = events.find((e) => e.event === 'closed' && e.conn === first);
      expect(closed?.reason, JSON.stringify(closed)).to.equal('last-answer');
    } finally {
      renew();
      await client?.close().catch(() => {});
      await server?.close(0).catch(() => {});
      await backend.close();
      await ks.close();
      await kc.close();
    }
  });

  it('a request sent on a connection that the server closes after refusing one there for outliving its certificate, and never read there, is sent again on a new connection, as the refused one is', async () => {
    const ks = await open(await certified('ks-unread', ksM));
    const kc = await open(await certified('kc-unread', kcM));
    let server: ChannelServer | undefined;
    let client: KeyClient | undefined;
    try {
      const renewed = await endingSoon(ks);
      const ending = await loadIdentity(ks, domain, policyCert);
      let firstConn: string | undefined;
      // The first connection's refusal is its last answer, sent late: a request the client sends
      // meanwhile is not read. Any other connection stores.
      server = await serve<ValidatedPeer>({
        host: '127.0.0.1', port: 0, log: () => {}, tls: { key: ending.key, cert: toPem(ending.certificate), ca: toPem(policyCert), requestCert: true },
        handler: async (bytes, conn) => {
          const { name } = parseKeyRequest(bytes);
          firstConn ??= conn.id;
          if (conn.id !== firstConn) return succeeded(name, { version: 1 });
          return { later: sleep(300).then(() => failed(name, 'CERT_EXPIRED')), last: true };
        },
      });
      client = await KeyClient.connect({ host: '127.0.0.1', port: server.address.port, identity: await loadIdentity(kc, domain, policyCert), policyCert });
      server.setIdentity(renewed.key, toPem(renewed.certificate));
      await sleep(ending.peer.validUntil.getTime() - Date.now() + 500);
      const a = client.store('unread/a', utf8('a'));
      await sleep(100);
      const b = client.store('unread/b', utf8('b'));
      expect(await Promise.all([a, b])).to.deep.equal([1, 1]);
    } finally {
      await client?.close().catch(() => {});
      await server?.close(0).catch(() => {});
      await ks.close();
      await kc.close();
    }
  });

  describe('certified through --certifier at start (openCertified)', () => {
    const through = (port: number): Certifier => ({ host: '127.0.0.1', port, domain, policyCert, policyCertEnds: parseCertificate(policyCert).notAfter, platform: platform(ksM), waits: {} });
    const quietly = async <T>(f: () => Promise<T>): Promise<T> => {
      const write = process.stderr.write;
      process.stderr.write = (() => true) as typeof process.stderr.write;
      try {
        return await f();
      } finally {
        process.stderr.write = write;
      }
    };

    it('renews, once serving, a certificate not yet due: every renewal brings a new certificate', async () => {
      const dir = await certified('ks-not-due', ksM);
      const { store, renewal } = await openCertified('key-server', dir, new KeyFileProtector(storeKey), through(certifier.address.port), () => {});
      try {
        const first = await loadIdentity(store, domain, policyCert);
        expect(renewal.justFailed).to.equal(false);
        const next = await renewal.recertify(new AbortController().signal);
        expect(next.peer.serialHex).to.not.equal(first.peer.serialHex);
      } finally {
        await store.close();
      }
    });

    it('with simpleserver away and a certificate due but valid, serves with it and has the renewal try again soon', async () => {
      const dir = await certified('ks-due', ksM);
      // Its certificate past half its life: issued five minutes back (as early as the policy certificate allows), ending in about two.
      const s = await open(dir);
      try {
        const key = fromKeyMessage(decode<KeyMessage>('key_message', (await s.get(authKeyTag(domain))).blob));
        const issued = parseCertificate(policyCert).notBefore.getTime() + 1_000;
        await s.put(admissionCertTag(domain), await issueAdmissionCert({
          policyKey, policyCert, subjectPublicKey: publicKeyOf(key), measurement: ksM, platform: SIMULATED_ENCLAVE, domain,
          validitySeconds: Math.floor((1.4 * (Date.now() - issued)) / 1000), now: new Date(issued),
        }), { type: 'X509-der-cert', exportable: true });
      } finally {
        await s.close();
      }
      const { store, renewal } = await quietly(async () => openCertified('key-server', dir, new KeyFileProtector(storeKey), through(await closedPort()), () => {}));
      try {
        expect(renewal.justFailed, 'the attempt at start failed: the next comes as after any failure').to.equal(true);
      } finally {
        await store.close();
      }
    });
  });
});

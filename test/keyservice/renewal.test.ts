// key-server renews its own certificate while it runs (key-server serve --certifier): a real
// simpleserver certifies it again, and the next client meets the new certificate. The clock the
// scheduler reads is moved to the last second of the certificate, so the test need not wait for
// the minimum lifetime of an admission certificate (a minute). Stopping abandons an attempt in flight.

import { expect } from 'chai';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { generateKeyPair, publicKeyOf, randomBytes, sha256, utf8 } from '../../lib/crypto/index.ts';
import { CertifierError } from '../../lib/errors/index.ts';
import { createPolicyCert, type ValidatedPeer } from '../../lib/pki/index.ts';
import { loadPolicy, makePolicy } from '../../lib/policy/index.ts';
import { generateSimulatedPlatform, SimulatedEnclave } from '../../lib/attest/index.ts';
import { initTrust, loadIdentity, startCertifier, type MachineIdentity } from '../../lib/certifier/index.ts';
import type { ChannelServer, Waits } from '../../lib/channel/index.ts';
import { KeyClient } from '../../lib/keyclient/index.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { renewalDelay, renewIdentity } from '../../lib/keyservice/renewal.ts';
import { startKeyServer } from '../../lib/keyservice/server.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { tempDir } from '../support/helpers.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;

/** An identity as the scheduler sees it: its end, and a serial. */
const identityUntil = (at: number, serialHex = 'ab') => ({ peer: { notAfter: new Date(at), serialHex } }) as unknown as MachineIdentity;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits (two seconds at most) until `done` holds. */
const until = async (done: () => boolean) => {
  for (let i = 0; i < 40 && !done(); i++) await sleep(50);
};
/** Timers that keep the process alive (an unref'ed one does not count). */
const heldTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('key-server: its own certificate renewed while it runs', function () {
  this.timeout(30_000);

  it('waits until a few hours before the warnings for long certificates, half the rest for short ones', () => {
    expect(renewalDelay(90 * DAY, 60_000)).to.equal(90 * DAY - 3 * DAY - HOUR);
    expect(renewalDelay(DAY, 60_000)).to.equal(DAY / 2);
    expect(renewalDelay(30_000, 60_000)).to.equal(60_000);
  });

  it('after a failed attempt at start, tries again soon (as after any failure), not at the usual time', async () => {
    const peer = (ms: number) => ({ peer: { notAfter: new Date(Date.now() + ms), serialHex: 'ab' } }) as unknown as MachineIdentity;
    const events: Record<string, unknown>[] = [];
    let attempts = 0;
    // Ten seconds left: the usual wait is half of it (5 s), the wait after a failure a tenth (1 s).
    const stop = renewIdentity(peer(10_000), {
      recertify: async () => (attempts++, peer(2 * DAY)), present: () => {}, log: (r) => void events.push(r), minGapMs: 50, justFailed: true,
    });
    try {
      for (let i = 0; i < 40 && attempts === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(attempts, 'retried within two seconds, not after five').to.equal(1);
    } finally {
      stop();
    }
  });

  it('renews no more once the certificate ends with the policy certificate, and says to replace the policy key', async () => {
    const start = Date.now();
    const policyCertEnds = new Date(start + 2_000);
    const ending = (at: number) => ({ peer: { notAfter: new Date(at), serialHex: 'ab' } }) as unknown as MachineIdentity;
    const events: Record<string, unknown>[] = [];
    let attempts = 0;
    // Half of the first second left: a renewal after half a second, reaching the policy certificate's end.
    const stop = renewIdentity(ending(start + 1_000), {
      recertify: async () => (attempts++, ending(policyCertEnds.getTime())), present: () => {}, log: (r) => void events.push(r), minGapMs: 50, policyCertEnds,
    });
    try {
      for (let i = 0; i < 40 && attempts === 0; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 1_200));
      expect(attempts, 'one renewal, none at half of the rest').to.equal(1);
      expect(events.map((e) => e.event)).to.deep.equal(['identity-renewed']);
      expect(events[0]!.warning).to.contain(`ends with the policy certificate (${policyCertEnds.toISOString()})`).and.contain('Replacing the policy key').and.not.contain('sign a new policy');
    } finally {
      stop();
    }
  });

  it('does not renew a certificate that already ends with the policy certificate', async () => {
    const policyCertEnds = new Date(Date.now() + 1_000);
    let attempts = 0;
    const stop = renewIdentity({ peer: { notAfter: policyCertEnds, serialHex: 'ab' } } as unknown as MachineIdentity, {
      recertify: async () => { attempts++; throw new Error('not expected'); }, present: () => {}, log: () => {}, minGapMs: 50, policyCertEnds,
    });
    await new Promise((r) => setTimeout(r, 800));
    stop();
    expect(attempts).to.equal(0);
  });

  it('once stopped, tries nothing more, and an attempt that ends after the stop presents and logs nothing, renewed or failed', async () => {
    // Stopped before its first attempt is due (in 100 ms): none comes.
    let attempts = 0;
    renewIdentity(identityUntil(Date.now() + 200), { recertify: async () => (attempts++, identityUntil(Date.now() + DAY)), present: () => {}, log: () => {}, minGapMs: 50 })();
    await sleep(400);
    expect(attempts, 'an attempt after the stop').to.equal(0);
    for (const outcome of ['renewed', 'failed'] as const) {
      let settle: ((ok: boolean) => void) | undefined;
      const presented: MachineIdentity[] = [];
      const events: Record<string, unknown>[] = [];
      const stop = renewIdentity(identityUntil(Date.now() + 1_000), {
        recertify: () => new Promise((resolve, reject) => (settle = (ok) => (ok ? resolve(identityUntil(Date.now() + DAY, 'cd')) : reject(new CertifierError('UNREACHABLE', 'abandoned'))))),
        present: (next) => void presented.push(next), log: (r) => void events.push(r), minGapMs: 50, justFailed: true,
      });
      await until(() => settle !== undefined);
      expect(settle, 'an attempt began').to.not.equal(undefined);
      stop();
      settle!(outcome === 'renewed');
      await sleep(100);
      expect(presented, `${outcome} after the stop: nothing presented`).to.deep.equal([]);
      expect(events, `${outcome} after the stop: nothing logged`).to.deep.equal([]);
    }
  });

  it('warns when a renewal does not take the certificate further (the policy\'s claims end then), and not when it does', async () => {
    const end = Date.now() + 1_000;
    const events: Record<string, unknown>[] = [];
    const answers = [identityUntil(end, 'cd'), identityUntil(end + DAY, 'ef')];
    const stop = renewIdentity(identityUntil(end), { recertify: async () => answers.shift()!, present: () => {}, log: (r) => void events.push(r), minGapMs: 50, justFailed: true });
    try {
      await until(() => events.length >= 2);
      expect(events.map((e) => [e.event, e.serial])).to.deep.equal([['identity-renewed', 'cd'], ['identity-renewed', 'ef']]);
      expect(events[0]!.warning).to.contain('ends no later than the one before').and.contain('sign a new policy');
      expect(events[1]).to.not.have.property('warning');
    } finally {
      stop();
    }
  });

  it('after a failure, tries again within the hour, however far the end (a tenth of three days would be seven hours)', async () => {
    const end = Date.now() + 1_000;
    let clock = 0; // the scheduler's clock, against the real one
    const events: Record<string, unknown>[] = [];
    const stop = renewIdentity(identityUntil(end), {
      // The attempt fails three days before the end: the clock the scheduler reads says so.
      recertify: async () => { clock = end - 3 * DAY - Date.now(); throw new CertifierError('UNREACHABLE', 'simpleserver is away'); },
      present: () => {}, log: (r) => void events.push(r), now: () => Date.now() + clock, minGapMs: 50, justFailed: true,
    });
    try {
      await until(() => events.length > 0);
      expect(events[0]).to.include({ event: 'identity-renewal-failed', code: 'UNREACHABLE', retryInSeconds: 3_600 });
    } finally {
      stop();
    }
  });

  it('logs a failure not of ours by its class only (INTERNAL): its message may quote a secret', async () => {
    const events: Record<string, unknown>[] = [];
    const stop = renewIdentity(identityUntil(Date.now() + 1_000), {
      recertify: async () => JSON.parse('{"k":hush-canary}'), present: () => {}, log: (r) => void events.push(r), minGapMs: 50, justFailed: true,
    });
    try {
      await until(() => events.length > 0);
      expect(events[0]).to.include({ event: 'identity-renewal-failed', code: 'INTERNAL', reason: 'SyntaxError' });
    } finally {
      stop();
    }
  });

  it('renews no earlier than its clock says: a timer that fires before then (the clock set back, or a wait longer than one timer holds) waits on', async () => {
    let clock = 0;
    let attempts = 0;
    // Its first attempt is due in 500 ms (half the second left); the clock is then set back ten seconds.
    const stop = renewIdentity(identityUntil(Date.now() + 1_000), { recertify: async () => (attempts++, identityUntil(Date.now() + DAY)), present: () => {}, log: () => {}, now: () => Date.now() + clock, minGapMs: 50 });
    clock = -10_000;
    try {
      await sleep(1_200);
      expect(attempts, 'an attempt ten seconds early by its clock').to.equal(0);
    } finally {
      stop();
    }
  });

  it('waits months for a long certificate without a busy loop (timers hold about 24.8 days) and without keeping the process alive', async () => {
    let reads = 0;
    const held = heldTimers();
    const stop = renewIdentity(identityUntil(Date.now() + 90 * DAY), { recertify: async () => { throw new Error('not expected'); }, present: () => {}, log: () => {}, now: () => (reads++, Date.now()) });
    try {
      expect(heldTimers(), 'timers keeping the process alive').to.equal(held);
      await sleep(300);
      expect(reads, 'times its clock was read in 300 ms').to.be.below(10);
    } finally {
      stop();
    }
  });

  /**
   * Runs `test` with a certifier that accepts the connection and never says a word (TLS handshake
   * included): its sockets, and an init-trust against it of a key-server's store.
   */
  async function withSilentCertifier(test: (o: { sockets: Socket[]; certify: (signal: AbortSignal, waits?: Waits) => Promise<unknown> }) => Promise<void>): Promise<void> {
    const sockets: Socket[] = [];
    const silent = createServer((s) => void sockets.push(s.resume()));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const tmp = tempDir('ks-renewal-silent-');
    const store = await Cryptstore.create(join(tmp.dir, 'store'), new KeyFileProtector(randomBytes(32)));
    try {
      const policyKey = (await generateKeyPair('p256')).privateKey;
      const policyCert = await createPolicyCert({ privateKey: policyKey, domain: 'renewal' });
      const keys = await generateSimulatedPlatform({ alg: 'p256' });
      const platform = new SimulatedEnclave(keys.attestKey, keys.endorsement, sha256(utf8('key-server program')));
      const port = (silent.address() as AddressInfo).port;
      await test({ sockets, certify: (signal, waits) => initTrust({ store, domain: 'renewal', policyCert, platform, host: '127.0.0.1', port, force: true, signal, ...(waits ? { waits } : {}) }) });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
      await store.close();
      tmp.cleanup();
    }
  }

  it('stopping abandons an attempt in flight: its connection to a certifier that never answers closes at once', async () => {
    await withSilentCertifier(async ({ sockets, certify }) => {
      const outcome: string[] = [];
      const peer = { peer: { notAfter: new Date(Date.now() + 500), serialHex: 'ab' } } as unknown as MachineIdentity;
      const stop = renewIdentity(peer, {
        recertify: (signal) => certify(signal).then(() => peer, (e: Error) => (outcome.push(e.message), peer)),
        present: () => {}, log: () => {}, minGapMs: 50, justFailed: true,
      });
      for (let i = 0; i < 400 && sockets.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(sockets, 'a renewal attempt connected').to.have.length(1);
      const closed = new Promise<void>((r) => sockets[0]!.once('close', () => r()));
      stop();
      // Half the handshake timeout (10 s): room for a busy machine, and still not that timeout.
      let timer: NodeJS.Timeout | undefined;
      const within = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 5_000)))]);
      clearTimeout(timer);
      expect(within, 'the connection closed well before the handshake timeout').to.equal(true);
      for (let i = 0; i < 200 && outcome.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(outcome.join()).to.contain('abandoned');
    });
  });

  it('an attempt that times out (a certifier that takes the connection and says nothing) is logged with its code and reason alone, and tried again as any failure is', async () => {
    await withSilentCertifier(async ({ sockets, certify }) => {
      const events: Record<string, unknown>[] = [];
      const peer = identityUntil(Date.now() + 500);
      // The waits key-server serve --timeout gives: here a fifth of a second each.
      const waits = { connectTimeoutMs: 200, handshakeTimeoutMs: 200, readTimeoutMs: 200 };
      const stop = renewIdentity(peer, { recertify: async (signal) => (await certify(signal, waits), peer), present: () => {}, log: (r) => void events.push(r), minGapMs: 50, justFailed: true });
      try {
        for (let i = 0; i < 200 && events.length < 2; i++) await sleep(50);
      } finally {
        stop();
      }
      expect(events.length, JSON.stringify(events)).to.be.at.least(2);
      for (const e of events.slice(0, 2)) {
        expect(Object.keys(e)).to.deep.equal(['event', 'code', 'reason', 'retryInSeconds']);
        expect(e).to.include({ event: 'identity-renewal-failed', code: 'TIMEOUT' });
        expect(e.reason).to.match(/^TLS handshake with 127\.0\.0\.1:\d+ timed out after 200 ms$/);
      }
      expect(sockets.length, 'a connection per attempt').to.be.at.least(2);
    });
  });

  it('presents a new certificate from the renewal on, and serves on with the old one while simpleserver is away', async () => {
    const tmp = tempDir('ks-renewal-');
    const closers: (() => Promise<unknown>)[] = [];
    try {
      const domain = 'renewal';
      const policyKey = (await generateKeyPair('p256')).privateKey;
      const policyCert = await createPolicyCert({ privateKey: policyKey, domain });
      const platformKeys = await generateSimulatedPlatform({ alg: 'p256' });
      const [ksM, kcM] = [sha256(utf8('key-server program')), sha256(utf8('key-client program'))];
      const now = Date.now();
      const policy = loadPolicy(makePolicy({
        policyKey, policyCert, platforms: [{ key: platformKeys.platformKey }], measurements: [ksM, kcM],
        notBefore: new Date(now - 60_000), notAfter: new Date(now + HOUR),
      }), publicKeyOf(policyKey));
      let certifier: ChannelServer | undefined = await startCertifier({ policyKey, policyCert, policy, domain, host: '127.0.0.1', port: 0, certValiditySeconds: 600, log: () => {} });
      const certifierPort = certifier.address.port;
      closers.push(() => certifier?.close() ?? Promise.resolve());
      const machine = async (name: string, m: Uint8Array) => {
        const store = await Cryptstore.create(join(tmp.dir, name), new KeyFileProtector(randomBytes(32)));
        closers.push(() => store.close());
        const platform = new SimulatedEnclave(platformKeys.attestKey, platformKeys.endorsement, m);
        await initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port: certifierPort });
        return { store, platform };
      };
      const ks = await machine('ks', ksM);
      const kc = await machine('kc', kcM);
      const backend = await LevelBackend.open(join(tmp.dir, 'data'));
      closers.push(() => backend.close());

      const events: Record<string, unknown>[] = [];
      const recertify = async (): Promise<MachineIdentity> => {
        await initTrust({ store: ks.store, domain, policyCert, platform: ks.platform, host: '127.0.0.1', port: certifierPort, force: true });
        return loadIdentity(ks.store, domain, policyCert);
      };
      // The scheduler's clock runs a second behind the end of whatever certificate it holds.
      const lastSecondOf = (id: MachineIdentity) => id.peer.notAfter.getTime() - 1_000 - Date.now();
      let offset = lastSecondOf(await loadIdentity(ks.store, domain, policyCert));
      const started = await startKeyServer({
        store: ks.store, domain, policyCert, backend, host: '127.0.0.1', port: 0,
        renewal: { recertify: async () => { const id = await recertify(); offset = lastSecondOf(id); return id; }, now: () => Date.now() + offset, minGapMs: 300 },
        log: (r) => void events.push(r as Record<string, unknown>),
      });
      closers.push(() => started.server.close(1_000));
      const presented = async (): Promise<ValidatedPeer> => {
        const client = await KeyClient.connect({ host: '127.0.0.1', port: started.server.address.port, identity: await loadIdentity(kc.store, domain, policyCert), policyCert });
        try {
          await client.store('renewal/k', randomBytes(16));
          return client.server;
        } finally {
          await client.close();
        }
      };
      const waitFor = async (event: string, after: number) => {
        for (let i = 0; i < 100 && !events.slice(after).some((e) => e.event === event); i++) await new Promise((r) => setTimeout(r, 100));
        const found = events.slice(after).find((e) => e.event === event);
        expect(found, `${event} in ${JSON.stringify(events)}`).to.not.equal(undefined);
        return found!;
      };

      const first = started.identity;
      const renewed = await waitFor('identity-renewed', 0);
      const second = await presented();
      expect(second.serialHex).to.not.equal(first.serialHex);
      expect(renewed.serial).to.equal(second.serialHex);
      expect(second.measurementHex).to.equal(first.measurementHex);
      // A ten-minute certificate is within three days of its end from the start, but a server
      // renewing it warns only once the renewal is overdue: not here, where each one is renewed.
      expect(events.filter((e) => e.event === 'identity-expiring')).to.deep.equal([]);

      // simpleserver goes away: renewals fail, are retried, and the certificate in force serves on.
      await certifier.close();
      certifier = undefined;
      const failedAt = events.length;
      const failed = await waitFor('identity-renewal-failed', failedAt);
      expect(failed).to.include({ code: 'UNREACHABLE' });
      expect(failed.retryInSeconds).to.be.a('number');
      const third = await presented();
      expect(third.notAfter.getTime()).to.be.at.least(second.notAfter.getTime());
    } finally {
      for (const c of closers.reverse()) await c().catch(() => {});
      tmp.cleanup();
    }
  });
});

// Only peers chained to the pinned root and accepted by verifyPeer get through, on either side;
// a refused client learns it as UNTRUSTED_PEER (exit 4), not as a retryable hang-up.

import { expect } from 'chai';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls from 'node:tls';
import { CertifierError } from '../../lib/errors/index.ts';
import { Harness, bytes, fieldOrder, rejectsWith, testPki, waitFor, type TestPeer } from './harness.ts';
import { makeCa } from './certs.ts';
import { generateKeyPair } from '../../lib/crypto/index.ts';
import { createPolicyCert, toPem } from '../../lib/pki/index.ts';
import { issueAuthorityIdentity } from '../../lib/certifier/index.ts';
import type { ChannelServer } from '../../lib/channel/index.ts';

/** Listens on a free port of 127.0.0.1, closed after the test; returns the port. */
const listening: net.Server[] = [];
async function listen(server: net.Server): Promise<number> {
  listening.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('channel: peer verification', () => {
  const h = new Harness();
  afterEach(() => h.stop());
  afterEach(() => listening.splice(0).forEach((s) => s.close()));

  const refusals = () => h.logs.filter((r) => r.event === 'refused');
  /**
   * A refusal as ours are made (a close after the handshake, no word) is what a server killed in
   * its handshake looks like too: the client asks a second time, and the server refuses and logs
   * it as it did the first, and is asked no more.
   */
  const refusedTwice = (line: Record<string, unknown>) => {
    expect(refusals()).to.have.length(2);
    for (const r of refusals()) expect(r).to.include(line);
  };

  it('refuses a client certificate from another root, and the client sees UNTRUSTED_PEER', async () => {
    const p = await testPki();
    let called = 0;
    const server = await h.serve('mtls', { handler: async (r) => (called++, r) });
    const e = await rejectsWith(h.connect(server, 'mtls', { identity: p.strangerClient }).then((c) => c.request(bytes('hi'))), 'UNTRUSTED_PEER');
    expect(e.exitStatus).to.equal(4);
    await waitFor(() => refusals().length === 2, 20_000, 'both refusals to be logged');
    refusedTwice({ reason: 'untrusted-peer', code: 'UNTRUSTED_PEER' });
    expect(refusals().map(fieldOrder)).to.deep.equal(Array(2).fill(['event', 'remote', 'transport', 'reason', 'code', 'tlsError']));
    expect(called).to.equal(0);
  });

  it("logs a client certificate not valid yet by this server's clock with what to check: this server's clock first", async () => {
    const p = await testPki();
    const later = await p.ca.issue('later-client', { notBefore: new Date(Date.now() + 3_600_000), notAfter: new Date(Date.now() + 48 * 3_600_000) });
    const server = await h.serve('mtls');
    await rejectsWith(h.connect(server, 'mtls', { identity: later }).then((c) => c.request(bytes('hi'))), 'UNTRUSTED_PEER');
    await waitFor(() => refusals().length === 2, 20_000, 'both refusals to be logged');
    refusedTwice({ reason: 'untrusted-peer', code: 'CERT_EXPIRED', tlsError: 'CERT_NOT_YET_VALID' });
    expect(refusals()[0]!.detail).to.match(/^the client's certificate is not valid yet by this server's clock \(checked at \S+\): this server's clock is probably behind that of the machine that issued it: set it right \(NTP, e\.g\. chrony; README "Clocks"\), or, if this clock is right, the issuer's is ahead$/);
    // An expired one is the client's to renew: no word on this clock.
    const ended = await p.ca.issue('ended-client', { notBefore: new Date(Date.now() - 48 * 3_600_000), notAfter: new Date(Date.now() - 3_600_000) });
    await rejectsWith(h.connect(server, 'mtls', { identity: ended }).then((c) => c.request(bytes('hi'))), 'UNTRUSTED_PEER');
    await waitFor(() => refusals().length === 4, 20_000, 'the next refusals to be logged');
    expect(refusals()[3]).to.include({ tlsError: 'CERT_HAS_EXPIRED' }).and.not.have.property('detail');
  });

  it('refuses a client that presents no certificate when one is required', async () => {
    const server = await h.serve('mtls');
    const e = await rejectsWith(h.connect(server, 'mtls', { identity: null }).then((c) => c.request(bytes('hi'))), 'UNTRUSTED_PEER');
    expect(e.message).to.match(/certificate/);
    await waitFor(() => refusals().length === 1, 20_000, 'the refusal to be logged');
    expect(refusals()[0]).to.include({ code: 'UNTRUSTED_PEER' });
  });

  it("refuses a client that the server's verifyPeer rejects, before reading its request", async () => {
    const p = await testPki();
    let called = 0;
    const server = await h.serve('mtls', { handler: async (r) => (called++, r) });
    const conn = h.connect(server, 'mtls', { identity: p.refusedClient });
    await rejectsWith(conn.then((c) => c.request(bytes('secret request'))), 'UNTRUSTED_PEER');
    await waitFor(() => refusals().length === 2, 20_000, 'both refusals to be logged');
    refusedTwice({ reason: 'untrusted-peer', code: 'UNTRUSTED_PEER' });
    expect(called).to.equal(0);
    // The accepted client next to it is served.
    const good = await h.connect(server, 'mtls');
    expect(await good.request(bytes('ok'))).to.have.length(2);
  });

  for (const how of ['closes', 'resets'] as const) {
    it(`says UNREACHABLE (exit 3, worth a retry), not a refusal, when a server that accepted our certificate ${how} the connection in the tick it reads the request`, async () => {
      // As a key-server whose process dies on the request does: the session tickets it queued
      // at the end of the handshake go down with it, unsent.
      const p = await testPki();
      const server = tls.createServer({ key: p.server.key, cert: p.server.cert, ca: p.ca.cert, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
      const under = new Map<string, Socket>();
      server.on('connection', (raw: Socket) => under.set(`${raw.remotePort}`, raw));
      server.on('secureConnection', (s) => {
        s.on('error', () => {});
        s.on('data', () => (how === 'closes' ? s.destroy() : under.get(`${s.remotePort}`)!.resetAndDestroy()));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const conn = await h.connect({ address: { host: '127.0.0.1', port: (server.address() as AddressInfo).port } } as ChannelServer, 'mtls');
        const e = await rejectsWith(conn.request(bytes('hi')), 'UNREACHABLE');
        expect(e.exitStatus).to.equal(3);
        expect(e.message).not.to.contain('refused');
      } finally {
        server.close();
      }
    });
  }

  // How a handshake is cut after the client's side of it is done, with no session ticket and no
  // request yet: none is how a server refuses (a clean close, or an alert about a certificate).
  const cuts: { how: string; serve: (server: ChannelServer) => Promise<number> }[] = [
    {
      how: 'resets the connection (a server cutting a handshake it had not finished)',
      serve: async () => {
        const p = await testPki();
        const server = tls.createServer({ key: p.server.key, cert: p.server.cert, ca: p.ca.cert, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
        const under = new Map<string, Socket>();
        server.on('connection', (raw: Socket) => under.set(`${raw.remotePort}`, raw));
        server.on('secureConnection', (s) => (s.on('error', () => {}), under.get(`${s.remotePort}`)!.resetAndDestroy()));
        return listen(server);
      },
    },
    {
      how: 'sends an alert not about certificates (bad_record_mac: our last flight damaged on the way)',
      serve: (server) => listen(net.createServer((client) => {
        const upstream = net.connect(server.address.port, '127.0.0.1');
        let flight = 0;
        client.on('data', (d: Buffer) => upstream.write(flight++ === 1 ? Buffer.concat([d.subarray(0, -1), Buffer.from([d.at(-1)! ^ 1])]) : d));
        upstream.on('data', (d: Buffer) => client.write(d));
        for (const s of [client, upstream]) s.on('close', () => (client.destroy(), upstream.destroy())).on('error', () => {});
      })),
    },
  ];
  for (const { how, serve } of cuts) {
    it(`says UNREACHABLE (exit 3, worth a retry), not a refusal, when a server ${how} as the handshake ends`, async () => {
      const port = await serve(await h.serve('mtls'));
      const conn = await h.connect({ address: { host: '127.0.0.1', port } } as ChannelServer, 'mtls');
      const e = await rejectsWith(conn.request(bytes('hi')), 'UNREACHABLE');
      expect(e.exitStatus).to.equal(3);
    });
  }

  it('says TIMEOUT (exit 3) in accepted() when the server neither sends its tickets nor closes within the handshake\'s time', async () => {
    // What the server sends once the client's side of the handshake is done (its tickets) is lost on the way.
    const server = await h.serve('mtls');
    const port = await listen(net.createServer((client) => {
      const upstream = net.connect(server.address.port, '127.0.0.1');
      let flights = 0;
      client.on('data', (d: Buffer) => (flights++, upstream.write(d)));
      upstream.on('data', (d: Buffer) => flights < 2 && client.write(d));
      for (const s of [client, upstream]) s.on('close', () => (client.destroy(), upstream.destroy())).on('error', () => {});
    }));
    const conn = await h.connect({ address: { host: '127.0.0.1', port } } as ChannelServer, 'mtls', { limits: { handshakeTimeoutMs: 500 } });
    const e = await rejectsWith(conn.accepted(), 'TIMEOUT');
    expect(e.exitStatus).to.equal(3);
    expect(e.message).to.contain('waiting for the verdict on our certificate from').and.contain('timed out after 500 ms');
  });

  /**
   * A server refusing as ours do, by closing before its session tickets leave, but only after 1.3 s
   * of a busy event loop: the client's held request has gone out by then. `thenGone`: it stops
   * listening as it refuses, so the client's second try finds nobody.
   */
  async function lateRefuser(o: { thenGone?: boolean } = {}): Promise<tls.Server> {
    const p = await testPki();
    const server = tls.createServer({ key: p.server.key, cert: p.server.cert, ca: p.ca.cert, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
    server.on('secureConnection', (s) => {
      s.on('error', () => {});
      const until = performance.now() + 1300;
      while (performance.now() < until);
      s.destroy();
      if (o.thenGone) server.close();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return server;
  }

  it('says a refusal that comes after the client stopped waiting for it (a server busy past a second) is one, to a request and to accepted(): UNTRUSTED_PEER, exit 4', async () => {
    const server = await lateRefuser();
    try {
      const address = { address: { host: '127.0.0.1', port: (server.address() as AddressInfo).port } } as ChannelServer;
      const conn = await h.connect(address, 'mtls');
      const e = await rejectsWith(conn.request(bytes('hi')), 'UNTRUSTED_PEER');
      expect(e.exitStatus).to.equal(4);
      // accepted() (key-client check), sending nothing, waits for it as long: never a pass.
      await rejectsWith((await h.connect(address, 'mtls')).accepted(), 'UNTRUSTED_PEER');
    } finally {
      server.close();
    }
  });

  // key-client's store takes a request written and then unanswered for one that may have been
  // carried out (OUTCOME_UNKNOWN, not retried): a refusal reads no request, so one written to a
  // connection that then closed as a refusal does was not, whatever its second try meets.
  it('does not count as written a request that went out on a connection then closed as a refusal, when the second try finds nobody: UNREACHABLE', async () => {
    const server = await lateRefuser({ thenGone: true });
    try {
      const conn = await h.connect({ address: { host: '127.0.0.1', port: (server.address() as AddressInfo).port } } as ChannelServer, 'mtls');
      let written = 0;
      await rejectsWith(conn.request(bytes('hi'), () => void written++), 'UNREACHABLE');
      expect(written, 'told it was written').to.equal(0);
    } finally {
      server.close();
    }
  });

  // A request that must not go twice (`once`) is not sent again on the second try; but that try,
  // sending nothing, still tells a refusal from a server that read it and hung up.
  it('says a refusal, not written, of a once request that went out on a connection then closed as a refusal, when the second connection is refused too: UNTRUSTED_PEER; told written where the second try finds nobody', async () => {
    for (const thenGone of [false, true]) {
      const server = await lateRefuser({ thenGone });
      try {
        const conn = await h.connect({ address: { host: '127.0.0.1', port: (server.address() as AddressInfo).port } } as ChannelServer, 'mtls');
        let written = 0;
        await rejectsWith(conn.request(bytes('hi'), () => void written++, true), thenGone ? 'UNREACHABLE' : 'UNTRUSTED_PEER');
        expect(written, 'told it was written').to.equal(thenGone ? 1 : 0);
      } finally {
        server.close();
      }
    }
  });

  it('tells with accepted(), sending nothing, whether the server took our certificate: it logs a closed line with no request, or its refusal (UNTRUSTED_PEER)', async () => {
    const p = await testPki();
    let called = 0;
    const server = await h.serve('mtls', { handler: async (r) => (called++, r) });
    const good = await h.connect(server, 'mtls');
    await good.accepted();
    await good.close();
    await waitFor(() => h.logs.some((r) => r.event === 'closed'), 5_000, 'the closed line');
    expect(h.logs.find((r) => r.event === 'closed')).to.include({ reason: 'client-closed', requests: 0, answered: 0, dropped: 0 }).and.not.have.property('code');
    const refused = await h.connect(server, 'mtls', { identity: p.refusedClient });
    const e = await rejectsWith(refused.accepted(), 'UNTRUSTED_PEER');
    expect(e.exitStatus).to.equal(4);
    expect(e.message, 'asked again, as a request would be').to.contain('asked twice');
    await waitFor(() => refusals().length === 2, 20_000, 'both refusals to be logged');
    expect(called).to.equal(0);
  });

  it('resolves accepted() for a server that took our certificate and then hung up before it was asked (its tickets came first): a pass, not UNREACHABLE', async () => {
    const server = await h.serve('mtls', { limits: { idleTimeoutMs: 50 } });
    const conn = await h.connect(server, 'mtls');
    await waitFor(() => h.logs.some((r) => r.event === 'closed'), 5_000, 'the idle close');
    await new Promise((r) => setTimeout(r, 100)); // the close has reached the client
    await conn.accepted();
  });

  it('treats an asynchronous verifyPeer as a refusal, never as a pass', async () => {
    let called = 0;
    const p = await testPki();
    const asyncVerify = (async () => ({ subject: 'x' })) as unknown as (chain: Uint8Array[]) => TestPeer;
    const server = await h.serve('mtls', {
      handler: async (r) => (called++, r),
      tls: { key: p.server.key, cert: p.server.cert, ca: p.ca.cert, requestCert: true, verifyPeer: asyncVerify },
    });
    await rejectsWith(h.connect(server, 'mtls').then((c) => c.request(bytes('hi'))), 'UNTRUSTED_PEER');
    await waitFor(() => refusals().length === 2, 20_000, 'both refusals to be logged');
    refusedTwice({ reason: 'untrusted-peer', code: 'INTERNAL' });
    expect(refusals().map(fieldOrder)).to.deep.equal(Array(2).fill(['event', 'conn', 'remote', 'transport', 'reason', 'code', 'detail']));
    expect(called).to.equal(0);
  });

  it("throws the very error the client's verifyPeer threw about the server", async () => {
    const server = await h.serve('tls');
    const mine = new CertifierError('UNTRUSTED_PEER', 'measurement not in policy');
    try {
      await h.connect(server, 'tls', { verifyPeer: () => { throw mine; } });
      expect.fail('connect succeeded');
    } catch (e) {
      expect(e).to.equal(mine);
    }
    // The client drops the connection as soon as its handshake ends: the server logs it either
    // as a failed handshake or as a connection closed before any request.
    await waitFor(() => h.logs.some((r) => r.event === 'refused' || r.event === 'closed'), 20_000, 'the server to see the close');
    expect(h.logs.find((r) => r.event === 'closed')?.requests ?? 0).to.equal(0);
    await waitFor(() => server.connections === 0, 20_000, 'the connection to be gone');
  });

  it('refuses a server whose certificate is not under the trusted root', async () => {
    const server = await h.serve('tls');
    const stranger = await makeCa('stranger');
    const e = await rejectsWith(h.connect(server, 'tls', { tls: { ca: stranger.cert } }), 'UNTRUSTED_PEER');
    expect(e.exitStatus).to.equal(4);
  });

  it('says of a server presenting a certificate for TLS clients only that it is not a server\'s (INVALID_PURPOSE), not that it is of another root', async () => {
    const p = await testPki();
    const clientOnly = await p.ca.issue('client-only', {}, ['clientAuth']);
    const server = await h.serve('tls', { tls: { key: clientOnly.key, cert: clientOnly.cert, ca: p.ca.cert, requestCert: false } });
    const e = await rejectsWith(h.connect(server, 'tls'), 'UNTRUSTED_PEER');
    expect(e.exitStatus).to.equal(4);
    expect(e.message).to.contain('presented a certificate not made for a TLS server (INVALID_PURPOSE: its extended key usage lacks serverAuth)');
    expect(e.message).to.not.contain('not issued under the trusted root');
    // The server hears the client's alert: its line, logged now, not in the next test's logs.
    await waitFor(() => refusals().length === 1, 20_000, 'the server\'s line');
  });

  it('logs of a client presenting a certificate for TLS servers only that it is not a client\'s: a role credential goes in the auth-challenge', async () => {
    const p = await testPki();
    const serverOnly = await p.ca.issue('server-only', {}, ['serverAuth']);
    const server = await h.serve('mtls');
    await rejectsWith(h.connect(server, 'mtls', { identity: serverOnly }).then((c) => c.request(bytes('hi'))), 'UNTRUSTED_PEER');
    // Only its own lines: an earlier test's server may log the alert its client sent after that test.
    const refused = () => refusals().filter((r) => r.reason === 'untrusted-peer');
    await waitFor(() => refused().length === 2, 20_000, 'both refusals to be logged');
    for (const r of refused()) expect(r).to.include({ code: 'UNTRUSTED_PEER', tlsError: 'INVALID_PURPOSE' });
    expect(refused()[0]!.detail).to.equal('the client\'s certificate is not made for a TLS client (its extended key usage lacks clientAuth): a role credential, shown in the auth-challenge and never as the TLS certificate, or a certificate issued for TLS servers only');
  });

  it('says CERT_EXPIRED (exit 4) for a server certificate under the trusted root but outside its validity', async () => {
    const { ca } = await testPki();
    const expired = await ca.issue('expired-server', { notBefore: new Date(Date.now() - 48 * 3_600_000), notAfter: new Date(Date.now() - 3_600_000) });
    const server = await h.serve('tls', { tls: { key: expired.key, cert: expired.cert, ca: ca.cert, requestCert: false } });
    const e = await rejectsWith(h.connect(server, 'tls'), 'CERT_EXPIRED');
    expect(e.exitStatus).to.equal(4);
    // Ended an hour ago by this clock: when it ended, and by how much, so that a clock far ahead (a VM's first boot, before NTP) shows.
    expect(e.message).to.match(/presented a certificate that ended at \S+ \(CERT_HAS_EXPIRED, checked at \S+ by this machine's clock, 1 hour later\): it needs a new one \(a key-server: cert-utility init-trust, or --certifier; simpleserver: a restart\), or this machine's clock is that far ahead: set it right \(NTP, e\.g\. chrony; README "Clocks"\)$/);
    // A certificate not valid yet (one of the clocks is wrong) gets the same code.
    const later = await ca.issue('later-server', { notBefore: new Date(Date.now() + 3_600_000), notAfter: new Date(Date.now() + 48 * 3_600_000) });
    const early = await h.serve('tls', { tls: { key: later.key, cert: later.cert, ca: ca.cert, requestCert: false } });
    const notYet = await rejectsWith(h.connect(early, 'tls'), 'CERT_EXPIRED');
    expect(notYet.exitStatus).to.equal(4);
    // Not valid for an hour yet: this machine's clock is the likely fault, and by how much it lags.
    expect(notYet.message).to.match(/presented a certificate not valid before \S+ \(CERT_NOT_YET_VALID, checked at \S+ by this machine's clock\): this machine's clock is probably at least 1 hour 5 minutes behind that of the machine that issued it: set it right \(NTP, e\.g\. chrony; README "Clocks"\)$/);
  });

  it('names the policy certificate, not the peer, when the trusted root itself has ended', async () => {
    // A one-day policy certificate made two days ago, and simpleserver's certificate under it, ending with it.
    const policyKey = (await generateKeyPair('p256')).privateKey;
    const issued = new Date(Date.now() - 48 * 3_600_000);
    const policyCert = await createPolicyCert({ privateKey: policyKey, domain: 'ended', days: 1, now: issued });
    const identity = await issueAuthorityIdentity({ policyKey, policyCert, domain: 'ended', now: issued, validitySeconds: 7 * 86_400 });
    const ca = toPem(policyCert);
    const server = await h.serve('tls', { tls: { key: identity.key, cert: toPem(identity.cert), ca, requestCert: false } });
    const e = await rejectsWith(h.connect(server, 'tls', { tls: { ca }, verifyPeer: () => ({ subject: 'x' }) }), 'CERT_EXPIRED');
    expect(e.message).to.contain('the policy certificate, which ended at').and.contain('Replacing the policy key').and.not.contain('a restart');
  });

  it('resumes no TLS session: a client offering one from an earlier connection gets a full handshake, its chain checked anew', async () => {
    const p = await testPki();
    const server = await h.serve('mtls');
    const dial = (session?: Buffer) => {
      const socket = tls.connect({ host: '127.0.0.1', port: server.address.port, ca: p.ca.cert, key: p.client.key, cert: p.client.cert, checkServerIdentity: () => undefined, session });
      h.track(socket);
      return socket;
    };
    const first = dial();
    // TLS 1.3 sends its session tickets after the handshake; the client keeps the last one.
    const session = await new Promise<Buffer>((resolve) => first.once('session', resolve));
    first.destroy();
    const second = dial(session);
    await new Promise((resolve) => second.once('secureConnect', resolve));
    expect(second.isSessionReused(), 'the session was resumed').to.equal(false);
  });

  it('speaks only TLS 1.3', async () => {
    const p = await testPki();
    const server = await h.serve('tls');
    const old = h.track(tls.connect({ host: '127.0.0.1', port: server.address.port, ca: p.ca.cert, maxVersion: 'TLSv1.2', checkServerIdentity: () => undefined }));
    const err = await new Promise<Error>((resolve, reject) => {
      old.once('error', resolve);
      old.once('secureConnect', () => reject(new Error('a TLS 1.2 handshake succeeded')));
    });
    expect((err as NodeJS.ErrnoException).code).to.match(/ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/);
  });

  it('speaks only TLS 1.3 as a client too: a server of the same PKI that offers at most TLS 1.2 is refused (UNSUPPORTED)', async () => {
    const p = await testPki();
    let served = false;
    const server = tls.createServer({ key: p.server.key, cert: p.server.cert, ca: p.ca.cert, requestCert: true, maxVersion: 'TLSv1.2' }, (s) => {
      served = true;
      s.destroy();
    });
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const e = await rejectsWith(h.connect({ address: { host: '127.0.0.1', port: (server.address() as AddressInfo).port } } as ChannelServer, 'mtls'), 'UNSUPPORTED');
      expect(e.message).to.contain('does not speak TLS 1.3');
      expect(served, 'a TLS 1.2 handshake completed').to.equal(false);
    } finally {
      server.close();
    }
  });

  it('fails at once when a TLS client meets a plain server, not as retryable (UNSUPPORTED, exit 1), and the server says why in its log', async () => {
    // A ClientHello read as a frame would announce about 64 KiB and wait out the read timeout;
    // a bare close would read as a network fault (UNREACHABLE, exit 3: retried for nothing).
    const server = await h.serve('plain');
    const t0 = Date.now();
    const e = await rejectsWith(h.connect(server, 'tls'), 'UNSUPPORTED');
    expect(e.exitStatus).to.equal(1);
    expect(e.message).to.contain('what answered is no TLS server (a simpleserver --plain');
    expect(Date.now() - t0, 'ms to fail, against the 10 s of the read and handshake timeouts').to.be.lessThan(5_000);
    await waitFor(() => h.closedRecords('frame-error').length === 1, 20_000, 'the frame-error close');
    expect(h.closedRecords('frame-error')[0]).to.include({ code: 'DECODE_FAILED' });
    expect(String(h.closedRecords('frame-error')[0]!.message)).to.contain('TLS handshake on the plain protocol');
  });
});

// Misbehaving clients (garbage, absurd lengths, cut-off frames, one byte a second, throwing
// handlers) each lose only their own connection, with one log record, while others are served; and
// a server announcing an answer over the client's frame limit fails the client at once.

import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import type net from 'node:net';
import tls from 'node:tls';
import { CertifierError } from '../../lib/errors/index.ts';
import { connect } from '../../lib/channel/index.ts';
import { encodeFrame, FrameDecoder } from '../../lib/wire/index.ts';
import { Harness, bytes, closed, prefix, rejectsWith, testPki, text, verifyPeer, waitFor, type Transport } from './harness.ts';

describe('channel: hostile clients', () => {
  const h = new Harness();
  afterEach(() => h.stop());

  for (const transport of ['plain', 'mtls'] as Transport[]) {
    it(`keeps serving a good ${transport} client, fast, while bad ones are connected`, async () => {
      // The slow client is cut off at the read timeout, counted from its first byte: the good client
      // must be served before then, so it is long enough for a busy machine to connect and answer.
      const server = await h.serve(transport, { limits: { readTimeoutMs: 5_000 } });

      const tcpGarbage = h.track((await h.raw(server, 'plain')));
      tcpGarbage.write('GET / HTTP/1.1\r\nHost: example\r\n\r\n'); // "GET " read as a length is ~540 MB
      const huge = await h.raw(server, transport);
      huge.write(prefix(0xffffffff)); // the largest length 4 bytes can announce
      const truncated = await h.raw(server, transport);
      truncated.end(Buffer.concat([prefix(100), Buffer.alloc(10)]));
      const slow = await h.raw(server, transport);
      const frame = Buffer.concat([prefix(10), Buffer.from('0123456789')]);
      let sent = 0;
      const drip = setInterval(() => sent < frame.length && slow.write(frame.subarray(sent, ++sent)), 1000);
      slow.write(frame.subarray(0, ++sent));
      const bad: net.Socket[] = [tcpGarbage, huge, truncated, slow];

      try {
        await new Promise((r) => setTimeout(r, 100)); // let every bad client reach the server
        expect(slow.destroyed, 'the slow client is still connected').to.equal(false);
        // Served while the attackers are connected (the slow one sends a byte a second for far
        // longer): no timing asserted, which a busy machine would make flaky.
        const good = await h.connect(server, transport);
        expect(text(await good.request(bytes('still here')))).to.equal('still here');
        expect(slow.destroyed, 'the slow client was still connected during the good request').to.equal(false);

        await Promise.all(bad.map(closed)); // the server ends every bad connection itself
      } finally {
        clearInterval(drip);
      }
      if (transport === 'plain') {
        expect(h.closedRecords('frame-error').map((r) => r.code).sort()).to.deep.equal(['FRAME_TOO_LARGE', 'FRAME_TOO_LARGE', 'FRAME_TRUNCATED']);
      } else {
        // An HTTP request where TLS was expected is a client speaking something else (README: UNSUPPORTED), not a network fault.
        expect(h.logs.filter((r) => r.event === 'refused' && r.reason === 'tls-handshake').map((r) => [r.code, r.tlsError])).to.deep.equal([['UNSUPPORTED', 'ERR_SSL_HTTP_REQUEST']]);
        expect(h.closedRecords('frame-error').map((r) => r.code).sort()).to.deep.equal(['FRAME_TOO_LARGE', 'FRAME_TRUNCATED']);
      }
      expect(h.closedRecords('read-timeout')).to.have.length(1);
      expect(h.closedRecords('read-timeout')[0]).to.include({ code: 'TIMEOUT' });
      // Nothing of what they sent reached the log (patterns a random port, id or duration cannot form).
      expect(JSON.stringify(h.logs)).not.to.match(/GET \/|Host:|example|012345/);
    });
  }

  it('closes only the connection whose handler threw, logs the code and sends nothing', async () => {
    const server = await h.serve('mtls', {
      handler: async (r) => {
        if (text(r) === 'boom') throw new CertifierError('NOT_FOUND', 'no such key: top-secret-name');
        if (text(r) === 'bug') throw new TypeError('x is undefined');
        return r;
      },
    });
    const victim = await h.connect(server, 'mtls');
    const bystander = await h.connect(server, 'mtls');
    expect(text(await victim.request(bytes('first')))).to.equal('first');
    const e = await rejectsWith(victim.request(bytes('boom')), 'UNREACHABLE');
    expect(e.message).to.match(/closed the connection before answering/);
    expect(text(await bystander.request(bytes('fine')))).to.equal('fine');

    const other = await h.connect(server, 'mtls');
    await rejectsWith(other.request(bytes('bug')), 'UNREACHABLE');

    await waitFor(() => h.closedRecords('handler-error').length === 2, 20_000, 'both handler errors to be logged');
    expect(h.closedRecords('handler-error').map((r) => r.code)).to.deep.equal(['NOT_FOUND', 'TypeError']);
    expect(h.closedRecords('handler-error')[0]).to.include({ requests: 2, answered: 1 });
    expect(JSON.stringify(h.logs)).not.to.match(/top-secret-name/);
  });

  it('takes a request of exactly the configured frame limit, and closes a connection that sends one a byte over', async () => {
    const sizes: number[] = [];
    const server = await h.serve('plain', { limits: { frameLimit: 1024 }, handler: async (r) => (sizes.push(r.length), bytes('ok')) });
    const conn = await h.connect(server, 'plain', { limits: { frameLimit: 4096 } });
    expect(text(await conn.request(new Uint8Array(1024)))).to.equal('ok');
    await rejectsWith(conn.request(new Uint8Array(1025)), 'UNREACHABLE');
    await waitFor(() => h.closedRecords().length === 1, 20_000, 'the close');
    expect(h.closedRecords()[0]).to.include({ reason: 'frame-error', code: 'FRAME_TOO_LARGE' });
    expect(sizes, 'requests the handler saw').to.deep.equal([1024]);
  });

  it('sends an answer of exactly the configured frame limit, and closes the connection rather than send one a byte over', async () => {
    const server = await h.serve('plain', { limits: { frameLimit: 1024 }, handler: async (r) => new Uint8Array(Number(text(r))) });
    const conn = await h.connect(server, 'plain', { limits: { frameLimit: 4096 } });
    expect((await conn.request(bytes('1024'))).length).to.equal(1024);
    await rejectsWith(conn.request(bytes('1025')), 'UNREACHABLE');
    await waitFor(() => h.closedRecords().length === 1, 20_000, 'the close');
    expect(h.closedRecords()[0]).to.include({ reason: 'handler-error', code: 'FRAME_TOO_LARGE', answered: 1 });
  });

  it('refuses to send a request larger than its own frame limit', async () => {
    const server = await h.serve('plain');
    const conn = await h.connect(server, 'plain', { limits: { frameLimit: 16 } });
    await rejectsWith(conn.request(new Uint8Array(17)), 'FRAME_TOO_LARGE');
    expect(text(await conn.request(bytes('small')))).to.equal('small');
  });

  it('reports an answer over the client frame limit as FRAME_TOO_LARGE', async () => {
    const server = await h.serve('plain', { handler: async () => new Uint8Array(100) });
    const conn = await h.connect(server, 'plain', { limits: { frameLimit: 50 } });
    await rejectsWith(conn.request(bytes('x')), 'FRAME_TOO_LARGE');
  });

  it('answers the requests a TLS server answered before a length over the limit, and fails the rest at once (FRAME_TOO_LARGE), the connection left open by the server', async () => {
    // [answers the server writes, in one write with 4 bytes announcing `announced` bytes after them]
    const rows: [number, number][] = [[0, 0xffffffff], [1, 51], [2, 0xffffffff]];
    const p = await testPki();
    for (const [good, announced] of rows) {
      // A raw TLS server: once three requests are in, echoes the first `good`, then the bad length, then nothing (it never closes).
      const sockets = new Set<tls.TLSSocket>();
      const server = tls.createServer({ key: p.server.key, cert: p.server.cert, minVersion: 'TLSv1.3' }, (socket) => {
        sockets.add(socket);
        socket.on('error', () => {});
        const decoder = new FrameDecoder();
        const seen: Uint8Array[] = [];
        socket.on('data', (chunk: Buffer) => {
          seen.push(...decoder.push(chunk));
          if (seen.length < 3) return;
          const header = Buffer.alloc(4);
          header.writeUInt32LE(announced);
          socket.write(Buffer.concat([...seen.slice(0, good).map((b) => encodeFrame(b)), header]));
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      try {
        const port = (server.address() as net.AddressInfo).port;
        const conn = await connect({ host: '127.0.0.1', port, tls: { ca: p.ca.cert }, verifyPeer, limits: { frameLimit: 50, readTimeoutMs: 30_000 } });
        const outcomes = await Promise.all(['a', 'b', 'c'].map((x) => conn.request(bytes(x)).then(text, (e: CertifierError) => e.code)));
        expect(outcomes, `${good} answered, then ${announced}`).to.deep.equal(['a', 'b', 'c'].map((x, i) => (i < good ? x : 'FRAME_TOO_LARGE')));
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      }
    }
  });

  it('logs a plain connection its client resets with the client\'s address, taken at accept; one reset while it waited to be accepted has none left to take: unknown:0', async () => {
    const server = await h.serve('plain');
    const port = server.address.port;
    const reset = (n: number) => `const net = require('node:net'); for (let i = 0; i < ${n}; i++) { const c = net.connect(${port}, '127.0.0.1', () => c.resetAndDestroy()); c.on('error', () => {}); }`;
    // Accepted, then reset: its address was read when it came.
    const accepted = h.track(await h.raw(server, 'plain'));
    const local = `127.0.0.1:${accepted.localPort}`;
    accepted.resetAndDestroy();
    await waitFor(() => h.closedRecords().some((r) => r.remote === local), 3000, 'the accepted connection\'s closed line');
    // Reset while this process, busy, had not yet accepted them: the kernel no longer knows the
    // peer (getpeername fails), and Node accepts without asking for its address.
    execFileSync(process.execPath, ['-e', reset(3)]);
    await waitFor(() => h.closedRecords().length === 4, 3000, 'three more closed lines');
    expect(h.closedRecords().slice(1).map((r) => [r.remote, r.code])).to.deep.equal(Array(3).fill(['unknown:0', 'ECONNRESET']));
  });
});

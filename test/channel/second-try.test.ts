// A close right after the handshake, without tickets or a word, is a refusal of ours or a server
// killed in its handshake: the client asks once more before it says which (second-try.ts).

import { expect } from 'chai';
import type { AddressInfo } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { CertifierError } from '../../lib/errors/index.ts';
import { SECOND_TRY_PAUSE_MS } from '../../lib/channel/second-try.ts';
import type { ChannelServer } from '../../lib/channel/index.ts';
import { Harness, bytes, rejectsWith, testPki, text } from './harness.ts';

describe('channel: a second try after a close that may be a refusal', () => {
  const h = new Harness();
  afterEach(() => h.stop());
  const servers: tls.Server[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.close()));
  /** TCP connections the last rawServer took. */
  let accepted = 0;

  /**
   * A TLS server whose connections go to `serve` in turn, numbered from 1; one that destroys its
   * socket at once closes it as our refusals do (no ticket, no alert).
   */
  async function rawServer(serve: (s: TLSSocket, n: number, server: tls.Server) => void): Promise<ChannelServer> {
    const p = await testPki();
    const server = tls.createServer({ key: p.server.key, cert: p.server.cert, ca: p.ca.cert, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
    servers.push(server);
    let n = 0;
    accepted = 0;
    server.on('connection', () => accepted++);
    server.on('secureConnection', (s) => (s.on('error', () => {}), serve(s, ++n, server)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { address: { host: '127.0.0.1', port: (server.address() as AddressInfo).port } } as ChannelServer;
  }

  it('says UNREACHABLE (exit 3) when the server closed as a refusal would and is gone on the second try (a process killed in its handshake)', async () => {
    const server = await rawServer((s, _n, listener) => (listener.close(), s.destroy()));
    const conn = await h.connect(server, 'mtls');
    const e = await rejectsWith(conn.request(bytes('hi')), 'UNREACHABLE');
    expect(e.exitStatus).to.equal(3);
    expect(e.message).to.contain('connection refused');
  });

  it('sends the requests again, in order, on the second connection when the first closed as a refusal would, and they are answered', async () => {
    const seen: string[] = [];
    const server = await rawServer((s, n) => {
      if (n === 1) return s.destroy();
      s.on('data', (d: Buffer) => (seen.push(d.toString('latin1')), s.write(d)));
    });
    const conn = await h.connect(server, 'mtls');
    const answers = await Promise.all(['one', 'two', 'three'].map((m) => conn.request(bytes(m))));
    expect(answers.map(text)).to.deep.equal(['one', 'two', 'three']);
    expect(conn.peer?.subject).to.contain('server');
    expect(await conn.request(bytes('four')).then(text)).to.equal('four');
    await conn.close();
  });

  it('gives the second connection\'s TLS exporter once its requests went there, so an auth-challenge answered after the switch signs the connection it is sent on', async () => {
    const exporters: string[] = [];
    const server = await rawServer((s, n) => {
      if (n === 1) return s.destroy();
      exporters.push(Buffer.from(s.exportKeyingMaterial(32, 'probe', Buffer.alloc(0))).toString('hex'));
      s.on('data', (d: Buffer) => s.write(d));
    });
    const conn = await h.connect(server, 'mtls');
    expect(text(await conn.request(bytes('challenge me')))).to.equal('challenge me');
    expect(Buffer.from(conn.exportKeyingMaterial('probe', 32)!).toString('hex')).to.equal(exporters[0]);
    await conn.close();
  });

  it('asks accepted() again on the second connection, and close() made while the second try is pending waits for the requests sent again there', async () => {
    const server = await rawServer((s, n) => {
      if (n === 1 || n === 3) return s.destroy();
      s.on('data', (d: Buffer) => s.write(d));
    });
    const checked = await h.connect(server, 'mtls');
    await checked.accepted();
    await checked.close();
    const conn = await h.connect(server, 'mtls');
    const answer = conn.request(bytes('one'));
    await new Promise((r) => setTimeout(r, SECOND_TRY_PAUSE_MS / 5)); // the first connection is closed, the pause runs
    const closed = conn.close();
    expect(text(await answer)).to.equal('one');
    await closed;
    expect(accepted).to.equal(4);
  });

  it('never sends again a request a server read after its tickets, then closed without answering (a store it may have made): UNREACHABLE, one connection', async () => {
    const seen: string[] = [];
    const server = await rawServer((s) => s.on('data', (d: Buffer) => (seen.push(d.toString('latin1')), s.end())));
    const conn = await h.connect(server, 'mtls');
    const e = await rejectsWith(conn.request(bytes('store once')), 'UNREACHABLE');
    expect(e.message).to.contain('closed the connection before answering');
    await new Promise((r) => setTimeout(r, 2 * SECOND_TRY_PAUSE_MS));
    expect(seen.length).to.equal(1);
    expect(accepted).to.equal(1);
  });

  it('takes a second such close for a refusal (UNTRUSTED_PEER, exit 4, saying it asked twice), after the pause, and asks no third time', async () => {
    let connections = 0;
    const server = await rawServer((s) => (connections++, s.destroy()));
    const conn = await h.connect(server, 'mtls');
    const started = performance.now();
    const e = await rejectsWith(conn.request(bytes('hi')), 'UNTRUSTED_PEER');
    expect(performance.now() - started).to.be.at.least(SECOND_TRY_PAUSE_MS);
    expect(e.exitStatus).to.equal(4);
    expect(e.message).to.contain('closed the connection right after the TLS handshake without accepting it').and.to.contain('asked twice');
    await new Promise((r) => setTimeout(r, 2 * SECOND_TRY_PAUSE_MS));
    expect(connections).to.equal(2);
  });

  it('asks no second time when its own check of the server refuses it, which is certain', async () => {
    const server = await rawServer((s) => s.on('data', (d: Buffer) => s.write(d)));
    const mine = new CertifierError('UNTRUSTED_PEER', 'measurement not pinned');
    const e = await rejectsWith(h.connect(server, 'mtls', { verifyPeer: () => { throw mine; } }), 'UNTRUSTED_PEER');
    expect(e).to.equal(mine);
    await new Promise((r) => setTimeout(r, 2 * SECOND_TRY_PAUSE_MS));
    expect(accepted).to.equal(1);
  });

  it('gives up when its caller abandons the connection (the AbortSignal) before the second try: UNREACHABLE, no second connection', async () => {
    const abort = new AbortController();
    // Aborted as the server closes (client and server are this process): the client reads the
    // close in the pause or after the abort, and either way makes no second connection.
    const server = await rawServer((s) => (s.destroy(), abort.abort()));
    const conn = await h.connect(server, 'mtls', { signal: abort.signal });
    const e = await rejectsWith(conn.request(bytes('hi')), 'UNREACHABLE');
    expect(e.message).to.contain('abandoned');
    await new Promise((r) => setTimeout(r, 2 * SECOND_TRY_PAUSE_MS));
    expect(accepted).to.equal(1);
  });
});

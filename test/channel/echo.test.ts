// Requests reach the handler and answers come back, in order, over every transport; the TLS
// exporter gives both ends the same per-connection secret.

import { expect } from 'chai';
import net from 'node:net';
import { bytesEqual, randomBytes } from '../../lib/crypto/index.ts';
import { connect } from '../../lib/channel/index.ts';
import { channelError, listenError } from '../../lib/channel/errors.ts';
import { CertifierError } from '../../lib/errors/index.ts';
import { Harness, bytes, rejectsWith, testPki, text, waitFor, type Transport } from './harness.ts';

describe('channel: request and answer', () => {
  const h = new Harness();
  afterEach(() => h.stop());

  for (const transport of ['plain', 'tls', 'mtls'] as Transport[]) {
    it(`echoes a request over ${transport}`, async () => {
      const server = await h.serve(transport);
      const conn = await h.connect(server, transport);
      expect(text(await conn.request(bytes('hello')))).to.equal('hello');
      expect(await conn.request(new Uint8Array(0))).to.have.length(0);
      const big = randomBytes(512 * 1024);
      expect(bytesEqual(await conn.request(big), big)).to.equal(true);
    });
  }

  it('refuses to start on an address in use with one error, and logs nothing of it besides', async () => {
    const first = await h.serve('plain');
    const e = await h.serve('plain', { port: first.address.port }).then(() => undefined, (x: Error) => x);
    expect(e?.message).to.contain('address already in use');
    expect((e as CertifierError | undefined)?.code).to.equal('ADDRESS_IN_USE');
    expect(h.logs.filter((r) => r.event === 'server-error')).to.deep.equal([]);
  });

  it('says why it cannot listen with a code of its own: a port taken, a port it may not take (EACCES, a low port without the right), else the address given', () => {
    const errno = (code: string, message: string) => Object.assign(new Error(message), { code });
    const cases: [Error, number, string, string][] = [
      [errno('EADDRINUSE', 'listen EADDRINUSE: address already in use 127.0.0.1:8123'), 8123, 'ADDRESS_IN_USE', 'cannot listen on 127.0.0.1:8123: address already in use: another process holds that port (stop it, or give --listen another port)'],
      [errno('EACCES', 'listen EACCES: permission denied 127.0.0.1:443'), 443, 'ADDRESS_NOT_PERMITTED', 'cannot listen on 127.0.0.1:443: permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)'],
      [errno('EACCES', 'listen EACCES: permission denied 127.0.0.1:8123'), 8123, 'ADDRESS_NOT_PERMITTED', 'cannot listen on 127.0.0.1:8123: permission denied'],
      [errno('EADDRNOTAVAIL', 'listen EADDRNOTAVAIL: address not available 127.0.0.1:8123'), 8123, 'INVALID_INPUT', 'cannot listen on 127.0.0.1:8123: 127.0.0.1 is not an address of this machine (listen on one of its own, or 0.0.0.0 for all of them)'],
    ];
    for (const [cause, port, code, message] of cases) {
      const e = listenError(cause, '127.0.0.1', port);
      expect([e.code, e.message, e.cause]).to.deep.equal([code, message, cause]);
    }
  });

  it('says of a refused connection that nothing listens at the address, and what to check', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8120'), { code: 'ECONNREFUSED' });
    const e = channelError(cause, '127.0.0.1:8120');
    expect([e.code, e.message]).to.deep.equal(['UNREACHABLE', 'cannot reach 127.0.0.1:8120: connection refused (nothing listens there: check the address, and that the server runs)']);
  });

  it('says of a name its name server failed for for good (EAI_FAIL) to check the name server, not that the network is not up yet', () => {
    const cause = Object.assign(new Error('getaddrinfo EAI_FAIL keys.example'), { code: 'EAI_FAIL', hostname: 'keys.example' });
    const e = channelError(cause, 'keys.example:8120');
    expect([e.code, e.message]).to.deep.equal(['UNREACHABLE', 'cannot reach keys.example:8120: the name server failed for the name keys.example (EAI_FAIL): check the name server (/etc/resolv.conf) and the name; a retry may succeed once it answers']);
  });

  it('tells the handler who the mutual-TLS peer is, and the client who the server is', async () => {
    let seen: unknown;
    const server = await h.serve('mtls', { handler: async (r, c) => ((seen = c.peer), r) });
    const conn = await h.connect(server, 'mtls');
    await conn.request(bytes('x'));
    expect(seen).to.deep.equal({ subject: 'O=Measured-client\nCN=CertifierUsers' });
    expect(conn.peer).to.deep.equal({ subject: 'O=Measured-server\nCN=CertifierUsers' });
  });

  it('gives each connection a 64-bit id of its own (an auth-challenge nonce is good only on the connection of its id)', async () => {
    const ids: string[] = [];
    const server = await h.serve('mtls', { handler: async (r, c) => (ids.push(c.id), r) });
    for (let i = 0; i < 2; i++) await (await h.connect(server, 'mtls')).request(bytes('x'));
    expect(ids).to.have.length(2);
    for (const id of ids) expect(id).to.match(/^[0-9a-f]{16}$/);
    expect(ids[0]).to.not.equal(ids[1]);
  });

  it('tells onClosed once of each connection that reached the handler\'s side, with the id its requests had, and never of a refused one', async () => {
    const seen: string[] = [];
    const closed: string[] = [];
    const server = await h.serve('mtls', { handler: async (r, c) => (seen.push(c.id), r), onClosed: (c) => closed.push(c.id) });
    for (let i = 0; i < 2; i++) {
      const conn = await h.connect(server, 'mtls');
      await conn.request(bytes('x'));
      await conn.close();
    }
    const p = await testPki();
    await rejectsWith(h.connect(server, 'mtls', { identity: p.refusedClient }).then((c) => c.request(bytes('x'))), 'UNTRUSTED_PEER');
    await waitFor(() => closed.length === 2, 3000, 'both closes');
    await server.close();
    expect(closed).to.deep.equal(seen);
  });

  it('logs how long a connection lasted by a monotonic clock: the wall clock set back a day meanwhile does not make it negative', async () => {
    const wall = Date.now;
    const server = await h.serve('plain', { handler: async (r) => ((Date.now = () => wall() - 86_400_000), r) });
    try {
      const conn = await h.connect(server, 'plain');
      await conn.request(bytes('x'));
      await conn.close();
      await waitFor(() => h.closedRecords().length > 0, 20_000, 'the close to be logged');
    } finally {
      Date.now = wall;
    }
    const ms = h.closedRecords()[0]!.durationMs as number;
    expect(ms).to.be.within(0, 60_000);
  });

  it('answers 100 pipelined requests on one connection in order', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const server = await h.serve('mtls', {
      handler: async (r) => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await new Promise((res) => setImmediate(res));
        inFlight--;
        return r;
      },
    });
    const conn = await h.connect(server, 'mtls');
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => conn.request(bytes(`request ${i}`))));
    expect(answers.map(text)).to.deep.equal(Array.from({ length: 100 }, (_, i) => `request ${i}`));
    expect(maxInFlight, 'handler calls on one connection never overlap').to.equal(1);
    expect(h.closedRecords()).to.have.length(0);
  });

  it('starts the next request while a LaterAnswer waits, and still answers in order', async () => {
    const releases: (() => void)[] = [];
    const started: string[] = [];
    const server = await h.serve('mtls', {
      handler: async (r) => {
        started.push(text(r));
        // The first answers wait until released, in reverse order; the rest are immediate.
        if (started.length > 3) return r;
        return { later: new Promise<Uint8Array>((res) => releases.push(() => res(r))) };
      },
    });
    const conn = await h.connect(server, 'mtls');
    const answers = Promise.all(Array.from({ length: 6 }, (_, i) => conn.request(bytes(`r${i}`))));
    await waitFor(() => started.length === 6, 20_000, 'every request to start while three answers wait');
    expect(started).to.deep.equal(['r0', 'r1', 'r2', 'r3', 'r4', 'r5']);
    for (const release of releases.reverse()) release();
    expect((await answers).map(text)).to.deep.equal(['r0', 'r1', 'r2', 'r3', 'r4', 'r5']);
  });

  it('overwrites an answer said to hold a secret, and the frame made of it, once written; and one the connection ended before writing', async () => {
    const secret = randomBytes(48);
    const frames: Uint8Array[] = [];
    const write = net.Socket.prototype.write;
    net.Socket.prototype.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]) {
      if (chunk instanceof Uint8Array && Buffer.from(chunk).includes(Buffer.from(secret))) frames.push(chunk);
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof write;
    try {
      for (const transport of ['plain', 'tls'] as Transport[]) {
        frames.length = 0;
        const answer = Uint8Array.from(secret);
        const server = await h.serve(transport, { handler: async (request) => (text(request) === 'key' ? { later: Promise.resolve(answer), secret: true } : request) });
        const conn = await h.connect(server, transport);
        const [got, after] = await Promise.all([conn.request(bytes('key')), conn.request(bytes('after'))]);
        expect(bytesEqual(got, secret), transport).to.equal(true);
        expect(text(after)).to.equal('after');
        expect(frames.length, `${transport}: frames written`).to.be.at.least(1);
        expect([answer, ...frames].every((b) => b.every((x) => x === 0)), `${transport}: the answer and its frame overwritten`).to.equal(true);
      }
      // Never written: the connection was gone before the answer was ready.
      const unsent = Uint8Array.from(secret);
      let ready: (() => void) | undefined;
      const server = await h.serve('plain', { handler: async () => ({ later: new Promise<Uint8Array>((r) => (ready = () => r(unsent))), secret: true }) });
      const socket = await h.raw(server, 'plain');
      socket.write(Uint8Array.of(3, 0, 0, 0, 0x6b, 0x65, 0x79));
      await waitFor(() => ready !== undefined, 3000, 'the request handed to the handler');
      socket.resetAndDestroy(); // not a half-close, after which the answer would still be written
      await waitFor(() => h.closedRecords().length > 0, 3000, 'the close');
      ready!();
      await waitFor(() => unsent.every((x) => x === 0), 3000, 'the unsent answer overwritten');
    } finally {
      net.Socket.prototype.write = write;
    }
  });

  it('gives back the budget an answer said to hold a secret took, once written: a connection asks for one after another', async () => {
    // A budget of 4 KiB (an address may hold half of it) and answers of 1,000 bytes: had each kept
    // its bytes once written, the third request would never start.
    const server = await h.serve('plain', { limits: { answerBytesHeld: 4096 }, handler: async () => ({ later: Promise.resolve(new Uint8Array(1000).fill(7)), secret: true }) });
    const conn = await h.connect(server, 'plain');
    // A request never started is never answered: the test's own timeout is what fails it.
    for (let i = 0; i < 10; i++) expect((await conn.request(bytes('key'))).length, `answer ${i + 1}`).to.equal(1000);
  });

  it('writes the answers before a failed request, then closes without answering it', async () => {
    let calls = 0;
    const server = await h.serve('mtls', {
      handler: async (r) => {
        if (++calls === 3) throw new Error('handler failure');
        return { later: new Promise<Uint8Array>((res) => setTimeout(() => res(r), 50)) };
      },
    });
    const conn = await h.connect(server, 'mtls');
    const answers = await Promise.allSettled(Array.from({ length: 4 }, (_, i) => conn.request(bytes(`r${i}`))));
    expect(answers.slice(0, 2).map((a) => a.status === 'fulfilled' && text(a.value))).to.deep.equal(['r0', 'r1']);
    expect(answers.slice(2).map((a) => a.status)).to.deep.equal(['rejected', 'rejected']);
    expect(calls, 'nothing after the failed request is started').to.equal(3);
    await waitFor(() => h.closedRecords('handler-error').length === 1, 20_000, 'the handler-error close');
  });

  it('serves one request per connection, as the original Certifier clients do', async () => {
    const server = await h.serve('mtls');
    for (let i = 0; i < 20; i++) {
      const conn = await h.connect(server, 'mtls');
      expect(text(await conn.request(bytes(`n${i}`)))).to.equal(`n${i}`);
      await conn.close();
    }
    await waitFor(() => h.closedRecords().length === 20, 20_000, 'every connection to be logged');
    expect(h.closedRecords().every((r) => r.reason === 'client-closed' && r.answered === 1)).to.equal(true);
  });

  it('makes no error when a connection closed by its client ends with nothing pending, and still says it is closed when asked', async () => {
    const server = await h.serve('mtls');
    const conn = await h.connect(server, 'mtls');
    expect(text(await conn.request(bytes('x')))).to.equal('x');
    // Every CertifierError names itself in its constructor: count them by that assignment.
    let made = 0;
    Object.defineProperty(CertifierError.prototype, 'name', {
      configurable: true,
      set(this: Error, v: string) {
        made++;
        Object.defineProperty(this, 'name', { value: v, writable: true, enumerable: true, configurable: true });
      },
    });
    try {
      await conn.close();
      await waitFor(() => h.closedRecords().length === 1, 20_000, 'the server to see the close');
    } finally {
      delete (CertifierError.prototype as { name?: string }).name;
    }
    expect(made, 'errors made by closing').to.equal(0);
    const e = await conn.request(bytes('y')).then(() => undefined, (x: CertifierError) => x);
    expect([e?.code, e?.message]).to.deep.equal(['UNREACHABLE', `the connection to 127.0.0.1:${server.address.port} is closed`]);
  });

  it('on close, answers what is pending, refuses a request made after close() as closing, and says so when the server closes first', async () => {
    const server = await h.serve('mtls');
    const target = `127.0.0.1:${server.address.port}`;
    const conn = await h.connect(server, 'mtls');
    const pending = conn.request(bytes('pending'));
    const closing = conn.close();
    const late = conn.request(bytes('late')).then(() => undefined, (x: CertifierError) => x);
    expect(text(await pending)).to.equal('pending');
    await closing;
    expect([(await late)?.code, (await late)?.message]).to.deep.equal(['UNREACHABLE', `the connection to ${target} is closing`]);
    // The server closing an idle connection first: its end is a failure, said as the server's doing
    // (the connection's own `failed`, which connect() reads, is not in ClientConnection).
    const idle = await h.connect(server, 'mtls');
    const failed = () => (idle as unknown as { failed: CertifierError | undefined }).failed;
    expect(text(await idle.request(bytes('x')))).to.equal('x');
    await server.close(0);
    await waitFor(() => failed() !== undefined, 20_000, 'the client to see the close');
    expect([failed()?.code, failed()?.message]).to.deep.equal(['UNREACHABLE', `${target} closed the connection`]);
    const after = await idle.request(bytes('y')).then(() => undefined, (x: CertifierError) => x);
    expect(after).to.equal(failed());
  });

  it('answers a client that half-closes right after its request', async () => {
    const server = await h.serve('plain');
    const socket = await h.raw(server, 'plain');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.end(Buffer.from([3, 0, 0, 0, 0x61, 0x62, 0x63]));
    await new Promise((r) => socket.once('close', r));
    expect(Buffer.concat(chunks).toString('latin1')).to.equal('\x03\x00\x00\x00abc');
  });

  it('gives both ends the same exporter value, different on every connection', async () => {
    const label = 'EXPERIMENTAL-certifier-keys channel test';
    const serverSide: Uint8Array[] = [];
    const server = await h.serve('mtls', {
      handler: async (r, c) => {
        serverSide.push(c.exportKeyingMaterial(label, 32)!);
        return r;
      },
    });
    const a = await h.connect(server, 'mtls');
    const b = await h.connect(server, 'mtls');
    await a.request(bytes('a'));
    await b.request(bytes('b'));
    const ea = a.exportKeyingMaterial(label, 32)!;
    const eb = b.exportKeyingMaterial(label, 32)!;
    expect(ea).to.have.length(32);
    expect(bytesEqual(ea, serverSide[0]!)).to.equal(true);
    expect(bytesEqual(eb, serverSide[1]!)).to.equal(true);
    expect(bytesEqual(ea, eb)).to.equal(false);
    expect(bytesEqual(ea, a.exportKeyingMaterial('EXPERIMENTAL-other label', 32)!)).to.equal(false);
  });

  it('has no exporter on plain TCP', async () => {
    let serverSide: Uint8Array | undefined = new Uint8Array(1);
    const server = await h.serve('plain', { handler: async (r, c) => ((serverSide = c.exportKeyingMaterial('EXPERIMENTAL-x', 32)), r) });
    const conn = await h.connect(server, 'plain');
    await conn.request(bytes('x'));
    expect(serverSide).to.equal(undefined);
    expect(conn.exportKeyingMaterial('EXPERIMENTAL-x', 32)).to.equal(undefined);
  });

  it('refuses to run without tls unless plain is explicit', async () => {
    await rejectsWith(h.serve('plain', { plain: false }), 'INVALID_INPUT');
    await rejectsWith(connect({ host: '127.0.0.1', port: 1 }), 'INVALID_INPUT');
  });

  it('binds 127.0.0.1 by default', async () => {
    const server = await h.serve('plain');
    expect(server.address.host).to.equal('127.0.0.1');
    expect(server.address.port).to.be.greaterThan(0);
    expect(h.logs.find((r) => r.event === 'listening')).to.include({ transport: 'plain' }).and.to.have.property('warning');
  });
});

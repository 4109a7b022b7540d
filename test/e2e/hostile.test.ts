// Hostile peers against the real key-server on loopback: garbage, a 4 GiB length prefix, a
// truncated frame and a connection that sends one byte a second. None of them stops the process
// from serving a good client while they are still connected.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { toPem } from '../../lib/pki/index.ts';
import { connect } from '../../lib/channel/index.ts';
import { FrameDecoder, encodeFrame } from '../../lib/wire/index.ts';
import { encodeKeyRequest, parseKeyResponse, type KeyResponse } from '../../lib/keyservice/protocol.ts';
import type { MachineIdentity } from '../../lib/certifier/index.ts';
import { Domain, expectSuccess, sleep, type KeyServer, type Machine } from './domain.ts';

describe('e2e: hostile connections do not stop key-server from serving', function () {
  let d: Domain;
  let server: KeyServer;
  let good: Machine;
  let goodIdentity: MachineIdentity;
  const canary = randomBytes(32);
  const sockets: net.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];

  before(async () => {
    ({ d, server, machines: { good } } = await Domain.setUp({ keyserver: 'key-server', good: 'client-good' }, { serve: 'keyserver' }));
    goodIdentity = await d.identity(good);
    await d.withClient(server, goodIdentity, (c) => c.store('canary', canary));
  });
  after(async () => {
    for (const t of timers) clearInterval(t);
    for (const s of sockets) s.destroy();
    await d?.close();
  });

  /**
   * Every socket is destroyed after the tests; `closed` (a stream's own flag) tells when the server
   * ended it. Each one drains what it is sent: a socket with unread bytes (such as a TLS alert) never
   * sees the end of the stream, so it would stay open whatever the server did.
   */
  const track = <S extends net.Socket>(s: S): S => {
    s.on('error', () => {});
    s.resume();
    sockets.push(s);
    return s;
  };
  /** A raw TCP connection to the key-server's port. */
  const rawTcp = () => new Promise<net.Socket>((resolve) => {
    const s = track(net.connect({ host: '127.0.0.1', port: server.port }));
    s.once('connect', () => resolve(s));
  });
  /** A mutual-TLS connection as the good client, with nothing framed for us: we write the bytes. */
  const rawMtls = () => new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = track(tls.connect({
      host: '127.0.0.1', port: server.port, minVersion: 'TLSv1.3',
      key: goodIdentity.key.export({ type: 'pkcs8', format: 'pem' }), cert: toPem(goodIdentity.certificate), ca: toPem(d.policyCert),
      checkServerIdentity: () => undefined,
    }));
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
  const lengthPrefix = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };

  /** The answers the server sends on `s`, decoded as they come. */
  const answersOn = (s: net.Socket) => {
    const answers: KeyResponse[] = [];
    const decoder = new FrameDecoder();
    s.on('data', (chunk: Buffer) => answers.push(...decoder.push(chunk).map(parseKeyResponse)));
    return answers;
  };
  /** A framed request storing 16 random bytes under `name`, or, without `name`, retrieving the canary. */
  const request = (name?: string) => encodeFrame(encodeKeyRequest(name ? { action: 'store', name, data: randomBytes(16), valueType: 'binary-blob' } : { action: 'retrieve', name: 'canary' }));
  /** The audit records of the connection from client port `port`, found by its `closed` line. */
  const auditedOn = async (port: number | undefined, from: number) => {
    const closed = await server.child.waitForLog(new RegExp(` closed conn=\\w+ remote=127\\.0\\.0\\.1:${port} `), from);
    const conn = / conn=(\w+) /.exec(closed)![1];
    const records = readFileSync(join(server.data, 'audit.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    return { closed, records: records.filter((r) => r.conn === conn).map((r) => `${String(r.action)} ${String(r.resource)} ${String(r.decision)}`) };
  };

  /** Sends a 100-byte frame one byte a second; returns how many bytes went so far. */
  const dripFeed = (s: net.Socket) => {
    const drip = Buffer.concat([lengthPrefix(100), randomBytes(100)]);
    let sent = 1;
    s.write(drip.subarray(0, 1));
    timers.push(setInterval(() => !s.closed && sent < drip.length && s.write(drip.subarray(sent, ++sent)), 1000));
    return () => sent;
  };

  it('serves a good client while garbage, a 4 GiB length prefix, a truncated frame and a one-byte-a-second sender are connected', async () => {
    const from = server.child.mark();

    // Garbage where a TLS handshake should be; and garbage behind a TLS handshake record's header,
    // which the server answers with an alert before it closes.
    // (It starts with text, as a stray HTTP client's would: random bytes a few times in a thousand
    // runs began like a record header OpenSSL waits to complete, 10 s, past this test's wait.)
    const garbage = await rawTcp();
    garbage.write(Buffer.concat([Buffer.from('GET / HTTP/1.1\r\n'), randomBytes(4080)]));
    const lookalike = await rawTcp();
    lookalike.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10]), randomBytes(4096)]));
    const refusedPorts = [garbage.localPort, lookalike.localPort]; // a closed socket forgets its port
    // Garbage inside an accepted connection, framed: a request that is not a key-service message.
    const framed = await connect({ host: '127.0.0.1', port: server.port, tls: { key: goodIdentity.key, cert: toPem(goodIdentity.certificate), ca: toPem(d.policyCert) } });
    const answer = parseKeyResponse(await framed.request(randomBytes(200)));
    expect(answer.status).to.equal('failed');
    expect(answer.errorCode).to.be.oneOf(['DECODE_FAILED', 'MISSING_FIELD', 'BAD_FIELD']);
    // Garbage inside an accepted connection, unframed.
    const unframed = await rawMtls();
    unframed.write(Buffer.concat([lengthPrefix(0x7fffffff), randomBytes(4096)]));
    // A length prefix of 4 GiB (the largest a 32-bit prefix holds).
    const huge = await rawMtls();
    huge.write(lengthPrefix(0xffffffff));
    // A frame announced as 1000 bytes, 10 sent, then the sender's end of the stream.
    const truncated = await rawMtls();
    truncated.end(Buffer.concat([lengthPrefix(1000), randomBytes(10)]));
    // The same, but the connection is held open and silent.
    const held = await rawMtls();
    held.write(Buffer.concat([lengthPrefix(1000), randomBytes(10)]));
    // One byte a second of a 100-byte frame.
    const slow = await rawMtls();
    const dripped = dripFeed(slow);

    // The good client comes once the slow sender is inside its frame (past the 4-byte length).
    while (dripped() < 5) await sleep(100);
    await server.child.waitForLog(/ closed .*reason=frame-error .*code=FRAME_TOO_LARGE message="peer announced a 4294967295-byte message/, from);
    await server.child.waitForLog(/ closed .*reason=frame-error .*code=FRAME_TRUNCATED /, from);

    const started = Date.now();
    const r = expectSuccess(await d.kc(good, server, 'retrieve', ['canary', '--out', '-']));
    const took = Date.now() - started;
    expect(r.stdout.equals(canary), 'the good client got its key').to.equal(true);
    expect(took, 'the good retrieve was not held up').to.be.below(5_000);

    // They were still connected while it was served, and the server is the same process.
    expect(slow.closed, 'the slow sender is still connected').to.equal(false);
    expect(held.closed, 'the held truncated frame is still connected').to.equal(false);
    expect(dripped()).to.be.within(5, 10);
    expect(server.child.running).to.equal(true);

    // Each hostile connection ended only itself.
    for (const port of refusedPorts) await server.child.waitForLog(new RegExp(` refused .*remote=127\\.0\\.0\\.1:${port} .*reason=tls-handshake`), from);
    for (const [name, s] of Object.entries({ garbage, lookalike, huge, truncated, unframed })) {
      for (let i = 0; i < 100 && !s.closed; i++) await sleep(20);
      expect(s.closed, `the server closed the ${name} connection`).to.equal(true);
    }
    await framed.close();
  });

  it('answers, in order and audited, every request before bytes that make no frame (a length over the limit, a frame cut short by the end), then closes', async () => {
    const from = server.child.mark();
    // Ten pipelined requests and an announced 2 GiB frame in one write (one TCP segment).
    const names = Array.from({ length: 5 }, (_, i) => `pipelined/oversize-${i}`);
    const oversize = await rawMtls();
    const oversizePort = oversize.localPort; // a closed socket forgets its port
    const oversizeAnswers = answersOn(oversize);
    oversize.write(Buffer.concat([...names.flatMap((n) => [request(n), request()]), lengthPrefix(0x7fffffff)]));
    // Ten requests, and ten more with a cut-short frame and the end of the stream while the first are in flight.
    const cut = await rawMtls();
    const cutPort = cut.localPort;
    const cutNames = Array.from({ length: 10 }, (_, i) => `pipelined/cut-${i}`);
    const cutAnswers = answersOn(cut);
    cut.write(Buffer.concat(cutNames.slice(0, 5).flatMap((n) => [request(n), request()])));
    cut.end(Buffer.concat([...cutNames.slice(5).flatMap((n) => [request(n), request()]), lengthPrefix(1000), randomBytes(10)]));

    for (const [s, port, answers, stored, code] of [[oversize, oversizePort, oversizeAnswers, names, 'FRAME_TOO_LARGE'], [cut, cutPort, cutAnswers, cutNames, 'FRAME_TRUNCATED']] as const) {
      const { closed, records } = await auditedOn(port, from);
      for (let i = 0; i < 100 && !s.closed; i++) await sleep(20);
      expect(s.closed, 'closed after its answers').to.equal(true);
      expect(closed).to.match(new RegExp(` reason=frame-error requests=${2 * stored.length} answered=${2 * stored.length} .*code=${code} `));
      expect(answers.map((a) => `${a.status} ${a.name}`)).to.deep.equal(stored.flatMap((n) => [`succeeded ${n}`, 'succeeded canary']));
      expect(records).to.deep.equal(stored.flatMap((n) => [`store ${n} allow`, 'retrieve canary allow']));
    }
  });

  it('answers and audits every request of a client that half-closes with them in flight, and keeps, each audited once, every store told to one that hangs up mid-pipeline', async () => {
    const from = server.child.mark();
    const half = await rawMtls();
    const halfPort = half.localPort;
    const halfNames = Array.from({ length: 20 }, (_, i) => `pipelined/half-${i}`);
    const halfAnswers = answersOn(half);
    half.end(Buffer.concat(halfNames.flatMap((n) => [request(n), request()])));
    // Gone at its first answers, with 200 stores sent.
    const gone = await rawMtls();
    const gonePort = gone.localPort;
    const goneNames = Array.from({ length: 200 }, (_, i) => `pipelined/gone-${String(i).padStart(3, '0')}`);
    const goneAnswers = answersOn(gone);
    gone.once('data', () => gone.destroy());
    gone.write(Buffer.concat(goneNames.map((n) => request(n))));

    const { closed, records } = await auditedOn(halfPort, from);
    expect(closed).to.match(/ reason=client-closed requests=40 answered=40 /);
    expect(halfAnswers.map((a) => `${a.status} ${a.name}`)).to.deep.equal(halfNames.flatMap((n) => [`succeeded ${n}`, 'succeeded canary']));
    expect(records).to.deep.equal(halfNames.flatMap((n) => [`store ${n} allow`, 'retrieve canary allow']));
    for (let i = 0; i < 100 && !half.closed; i++) await sleep(20);
    expect(half.closed, 'closed once answered').to.equal(true);

    // The stores under way when it went still land: wait until the key database and the audit log agree.
    const told = goneAnswers.map((a) => `${a.status} ${a.name}`);
    let stored: string[] = [];
    let audited: string[] = [];
    for (let i = 0; i < 100; i++) {
      stored = (await d.withClient(server, goodIdentity, (c) => c.list('pipelined/gone-'))).map((e) => e.name);
      audited = (await auditedOn(gonePort, from)).records;
      if (audited.length === stored.length) break;
      await sleep(50);
    }
    // Started in order, so what was done is the first of them, each recorded once as allowed.
    expect(stored).to.deep.equal(goneNames.slice(0, stored.length));
    expect(audited).to.deep.equal(stored.map((n) => `store ${n} allow`));
    expect(told).to.deep.equal(goneNames.slice(0, told.length).map((n) => `succeeded ${n}`));
    expect(told.length).to.be.above(0).and.at.most(stored.length);
  });

  it('cuts off a one-byte-a-second sender and a stalled truncated frame within the read timeout of a started frame (10 s; the clock starts once the length prefix is in), and a connection that never begins its handshake within the handshake timeout (10 s), and serves on', async function () {
    this.timeout(30_000);
    const from = server.child.mark();
    const slow = await rawMtls();
    const dripped = dripFeed(slow);
    const held = await rawMtls();
    held.write(Buffer.concat([lengthPrefix(1000), randomBytes(10)]));
    // And a TCP connection that never begins its TLS handshake, cut off in the same 10 s.
    const silent = await rawTcp();
    const silentPort = silent.localPort; // a closed socket forgets its port
    const opened = Date.now();

    // The server's log names each connection by its remote address: our local port.
    const cutOff = (sock: net.Socket) => server.child.waitForLog(new RegExp(` closed .*remote=127\\.0\\.0\\.1:${sock.localPort} .*reason=read-timeout .*code=TIMEOUT\\b`), from, 20_000);
    const handshakeCut = server.child.waitForLog(new RegExp(` refused remote=127\\.0\\.0\\.1:${silentPort} .*reason=handshake-timeout code=TIMEOUT\\b`), from, 20_000);
    await Promise.all([cutOff(slow), cutOff(held), handshakeCut]);
    for (let i = 0; i < 50 && !(slow.closed && held.closed && silent.closed); i++) await sleep(20);
    expect([slow.closed, held.closed, silent.closed]).to.deep.equal([true, true, true]);
    expect(Date.now() - opened).to.be.above(9_000);
    expect(dripped()).to.be.below(100 + 4);

    const r = expectSuccess(await d.kc(good, server, 'retrieve', ['canary', '--out', '-']));
    expect(r.stdout.equals(canary)).to.equal(true);
  });
});

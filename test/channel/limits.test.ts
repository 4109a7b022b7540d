// Timeouts, connection and request limits, failure codes seen by clients, and graceful close:
// every wait is bounded, and every failure says whether a retry can help.

import { expect } from 'chai';
import net from 'node:net';
import { connect, DEFAULT_LIMITS } from '../../lib/channel/index.ts';
import { AnswerBudget } from '../../lib/channel/session.ts';
import { Harness, bytes, closed, fieldOrder, prefix, rejectsWith, sleep, testPki, text, waitFor } from './harness.ts';

/** A TCP server that accepts connections and then behaves as `onConnection` says. */
async function rawServer(onConnection: (s: net.Socket) => void): Promise<{ port: number; stop: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    onConnection(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    stop: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

describe('channel: limits and timeouts', () => {
  const h = new Harness();
  afterEach(() => h.stop());

  it('closes a connection idle for longer than idleTimeoutMs, not before', async () => {
    // The idle time well above the pauses, so that a busy machine stretching a pause does not close the connection.
    const server = await h.serve('mtls', { limits: { idleTimeoutMs: 2_000, readTimeoutMs: 100 } });
    const conn = await h.connect(server, 'mtls');
    let asked = 0;
    for (let i = 0; i < 3; i++) {
      await sleep(150); // longer than the read timeout, shorter than the idle one
      asked = performance.now();
      expect(text(await conn.request(bytes(`r${i}`)))).to.equal(`r${i}`);
    }
    await waitFor(() => h.closedRecords('idle-timeout').length === 1, 20_000, 'the idle close');
    expect(performance.now() - asked, 'ms from the last request to the idle close').to.be.at.least(1_990);
    await rejectsWith(conn.request(bytes('late')), 'UNREACHABLE');
    expect(h.closedRecords('idle-timeout')[0]).to.include({ code: 'TIMEOUT', answered: 3 });
  });

  // Requests are counted before each start, so tiny ones stop at exactly 32; bytes are counted as
  // they are read, and what one read from the socket brings in can overshoot by its own frames.
  for (const [what, size, most, over] of [['requests', 1, 32, 0], ['bytes', 64 * 1024, 16, 2]] as const) {
    it(`stops reading a pipelining client at its budget of unanswered ${what}, and reads on as answers leave`, async () => {
      // Every answer waits at a gate: the handler starts each request and returns at once.
      let started = 0;
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const server = await h.serve('plain', {
        // The server-wide budget set out of the way: its default share for one address (32
        // answers in flight) would otherwise stand in for the connection's own count.
        limits: { answersInFlight: 100_000 },
        handler: async (r: Uint8Array) => {
          started++;
          return { later: gate.then(() => r.subarray(0, 1)) };
        },
      });
      const total = 120;
      const socket = await h.raw(server, 'plain');
      let answers = 0;
      socket.on('data', (d: Buffer) => (answers += d.length / 5));
      const frame = Buffer.concat([prefix(size), Buffer.alloc(size, 7)]);
      socket.write(Buffer.concat(Array.from({ length: total }, () => frame)));
      await waitFor(() => started >= most, 20_000, `the first ${most} requests started`);
      await sleep(300); // time to start more, which it must not
      expect(started, 'requests started before any answer left').to.be.within(most, most + over);
      open();
      await waitFor(() => answers === total, 20_000, 'every answer');
      expect(started).to.equal(total);
    });
  }

  it('stops reading a client that asks for large answers and does not read them', async function () {
    this.timeout(120_000); // 50 MiB of answers, which a busy machine writes slowly
    let started = 0;
    const big = new Uint8Array(256 * 1024);
    const server = await h.serve('plain', {
      handler: async () => {
        started++;
        return big;
      },
    });
    const socket = await h.raw(server, 'plain');
    socket.pause(); // asks, never reads
    const total = 200;
    socket.write(Buffer.concat(Array.from({ length: total }, () => Buffer.concat([prefix(1), Buffer.from([1])]))));
    await sleep(500);
    // What the kernel's socket buffers take is gone from ours; after that, 1 MiB of answers waits.
    expect(started, 'requests started for a client that reads nothing').to.be.lessThan(64);
    let received = 0;
    socket.on('data', (d: Buffer) => (received += d.length));
    socket.resume();
    await waitFor(() => received === total * (4 + big.length), 50_000, 'every answer once the client reads');
    expect(started).to.equal(total);
  });

  it('cuts off a client that never reads its answers once a write has waited idleTimeoutMs', async () => {
    const big = new Uint8Array(1024 * 1024);
    // The idle time (which the write timeout uses too) well above a stall between connecting and the requests being read.
    const server = await h.serve('plain', { limits: { idleTimeoutMs: 2_000 }, handler: async () => big });
    const socket = await h.raw(server, 'plain');
    socket.pause(); // asks, never reads
    // 40 MiB of answers: far more than the kernel's socket buffers on loopback take.
    socket.write(Buffer.concat(Array.from({ length: 40 }, () => Buffer.concat([prefix(1), Buffer.from([1])]))));
    await waitFor(() => h.closedRecords().length === 1, 20_000, 'the connection to be closed');
    const [record] = h.closedRecords();
    expect(record).to.include({ reason: 'write-timeout', code: 'TIMEOUT' });
    expect(record!.answered, 'answers written before the cut').to.be.below(40);
    await closed(socket);
  });

  it('holds a server-wide budget of answers being made and waiting: many connections asking for large values they never read start far fewer, then all are served', async function () {
    this.timeout(120_000); // 120 MiB of answers, which a busy machine writes slowly
    const big = new Uint8Array(256 * 1024);
    /** Answers made for 6 clients that ask for 40 large values each and read nothing (the kernel's socket buffers take some). */
    const scenario = async (limits: { answersInFlight: number; answerBytesHeld: number }, settled: (started: () => number) => Promise<void>) => {
      let started = 0;
      const server = await h.serve('plain', { limits, handler: async () => (started++, { later: sleep(10).then(() => big) }) });
      const clients = await Promise.all(Array.from({ length: 6 }, () => h.raw(server, 'plain')));
      for (const socket of clients) {
        socket.pause();
        socket.write(Buffer.concat(Array.from({ length: 40 }, () => Buffer.concat([prefix(1), Buffer.from([1])]))));
      }
      await settled(() => started);
      const before = started;
      let received = 0;
      for (const socket of clients) {
        socket.on('data', (d: Buffer) => (received += d.length));
        socket.resume();
      }
      await waitFor(() => received === 6 * 40 * (4 + big.length), 50_000, 'every answer once the clients read');
      expect(started).to.equal(6 * 40);
      return before;
    };
    // Without the budget, every request is started before any answer is read: waited for, however slow the machine.
    const unbounded = await scenario({ answersInFlight: 100_000, answerBytesHeld: 2 ** 40 }, (started) => waitFor(() => started() === 6 * 40, 20_000, 'every request started'));
    // With it, what starts in half a second (a slower machine only starts fewer).
    const bounded = await scenario({ answersInFlight: 4, answerBytesHeld: 512 * 1024 }, () => sleep(500));
    // Without it all 240 start at once (60 MiB of answers held), beyond what the kernel's buffers take.
    expect(bounded, `with the budget ${bounded}, without ${unbounded}`).to.be.below(unbounded - 60);
  });

  it('counts an answer handed to a socket against the budget until the socket has passed it on: connections that never read do not each keep one more outside it', async function () {
    this.timeout(60_000);
    // Answers of 6 MiB: more than the kernel's socket buffers take on loopback (some 4 MiB for a
    // client that reads nothing), so what is written to each connection stays in the server's
    // memory. Counted only until it was handed to the socket, every connection got one, whatever
    // the budget (on key-server, 256 connections from four addresses asking for a 1 MiB value 32
    // times each and reading nothing took it from 74 to 563 MiB resident; counted until the socket
    // passes them on, to 361 MiB).
    const big = new Uint8Array(6 * 1024 * 1024);
    let started = 0;
    const server = await h.serve('plain', { limits: { frameLimit: 8 * 1024 * 1024, answersInFlight: 2, answerBytesHeld: 24 * 1024 * 1024 }, handler: async () => (started++, big) });
    const clients = await Promise.all(Array.from({ length: 8 }, () => h.raw(server, 'plain')));
    for (const socket of clients) {
      socket.pause(); // asks once, never reads
      socket.write(Buffer.concat([prefix(1), Buffer.from([1])]));
    }
    await waitFor(() => started >= 1, 20_000, 'a first answer');
    await sleep(500); // time to start more, which it must not
    // The address's half of the 24 MiB budget holds two answers; one more may start while one is made.
    expect(started, 'answers started for 8 connections that read nothing').to.be.at.most(3);
    for (const socket of clients) socket.destroy();
  });

  it('gives one address at most half of what others leave of that budget: hosts that never read their large answers do not stall another', async () => {
    const big = new Uint8Array(256 * 1024);
    let peakInFlight = 0;
    const take = AnswerBudget.prototype.take;
    AnswerBudget.prototype.take = function (this: AnswerBudget, ...args: Parameters<typeof take>) {
      take.apply(this, args);
      peakInFlight = Math.max(peakInFlight, this.inFlight);
    };
    // The handler takes a moment before it hands back its answer's promise, as key-server's does
    // for a store: the starts of many connections then overlap.
    const server = await h.serve('plain', { limits: { answersInFlight: 8, answerBytesHeld: 2 * 1024 * 1024 }, handler: async (req: Uint8Array) => {
      await sleep(2);
      return { later: sleep(5).then(() => (req[0] === 2 ? bytes('small') : big)) };
    } });
    // 127.0.0.2 to 127.0.0.7 are loopback too, and other addresses: six greedy hosts (with a
    // fixed half each, two of them held the whole budget; with shares alone, four did).
    // Ten connections each, all writing in the same turn: each start must see the others'
    // (counted only after the handler, they all found room and passed every limit together).
    const greedy = await Promise.all(Array.from({ length: 60 }, (_, i) => new Promise<net.Socket>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: server.address.port, localAddress: `127.0.0.${2 + (i % 6)}` }, () => resolve(s));
    })));
    for (const socket of greedy) {
      socket.pause();
      socket.write(Buffer.concat(Array.from({ length: 40 }, () => Buffer.concat([prefix(1), Buffer.from([1])]))));
    }
    await sleep(300);
    // The greedy hosts read nothing until the end: a server they stalled would never answer, and the
    // request would time out (its time generous, so that only a stall, not a slow machine, fails it, and
    // short of the 30 s after which the server cuts off hosts that do not read).
    const good = await h.connect(server, 'plain', { limits: { readTimeoutMs: 20_000 } });
    expect(text(await good.request(new Uint8Array([2]))), 'served while the greedy hosts hold their share').to.equal('small');
    AnswerBudget.prototype.take = take; // (the stand-in only records; left in place on failure, it does no harm)
    expect(peakInFlight, 'answers being made at once, against the 8 allowed').to.be.at.most(8);
    for (const socket of greedy) socket.destroy();
  });

  it('with the default budget, lets a host that never reads hold half of it (32 MiB, an answer being made counted as 1 MiB), the next host half the rest, and so on; hosts holding none start one each from a reserve as large again', () => {
    const MiB = 1024 * 1024;
    const b = new AnswerBudget(DEFAULT_LIMITS.answerBytesHeld, DEFAULT_LIMITS.answersInFlight);
    /** An answer of `bytes` made for `host` and left unread. */
    const unread = (host: string, bytes = MiB) => {
      b.take(host, 0, 1);
      b.take(host, bytes, 0);
      b.release(host, 0, 1);
    };
    /** MiB of answers `host` gets to hold before the budget stops it. */
    const fill = (host: string) => {
      let n = 0;
      for (; !b.full(host); n++) unread(host);
      return n;
    };
    expect(['a', 'b', 'c', 'd', 'e', 'f', 'g'].map(fill)).to.deep.equal([32, 16, 8, 4, 2, 1, 1]);
    expect(b.held).to.equal(64 * MiB);
    // The reserve: 64 MiB more, one answer for each host holding none.
    const reserve = Array.from({ length: 64 }, (_, i) => `r${i}`);
    expect(reserve.map(fill)).to.deep.equal(reserve.map(() => 1));
    expect(b.full('one more')).to.equal(true);

    // An answer being made weighs 1 MiB: 30 MiB held and one being made leave room, 31 do not.
    const alone = new AnswerBudget(DEFAULT_LIMITS.answerBytesHeld, DEFAULT_LIMITS.answersInFlight);
    alone.take('h', 30 * MiB, 1);
    expect(alone.full('h')).to.equal(false);
    alone.take('h', MiB, 0);
    expect(alone.full('h')).to.equal(true);
  });

  it('starts no more answers server-wide than answersInFlight, though each address still has a share left', async () => {
    let started = 0;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const server = await h.serve('plain', { limits: { answersInFlight: 2 }, handler: async (r: Uint8Array) => (started++, { later: gate.then(() => r) }) });
    // Three hosts, one request each: two take the two answers; the third, holding none, still
    // has a share of its own, but the server has no answer left to give.
    const clients = await Promise.all([2, 3, 4].map((n) => new Promise<net.Socket>((resolve) => {
      const s = h.track(net.connect({ host: '127.0.0.1', port: server.address.port, localAddress: `127.0.0.${n}` }, () => resolve(s)));
    })));
    let answers = 0;
    for (const socket of clients) {
      socket.on('data', (d: Buffer) => (answers += d.length / 5));
      socket.write(Buffer.concat([prefix(1), Buffer.from([1])]));
    }
    await waitFor(() => started >= 2, 20_000, 'the answers the budget allows');
    await sleep(200);
    expect(started, 'answers being made at once, against the 2 allowed').to.equal(2);
    open();
    await waitFor(() => answers === 3, 20_000, 'every answer once the first ones leave');
  });

  it('gives back the answers a cut connection was making, though its handler never settles: new connections are not starved by answers that can never be delivered', async () => {
    // Storage that hangs: a handler that never returns, and one whose later answer never comes.
    const started: string[] = [];
    const server = await h.serve('plain', { limits: { answersInFlight: 2, idleTimeoutMs: 500 }, handler: async (r: Uint8Array) => {
      started.push(text(r));
      if (text(r) === 'hang-start') return new Promise<Uint8Array>(() => {});
      if (text(r) === 'hang-later') return { later: new Promise<Uint8Array>(() => {}) };
      return r;
    } });
    // Two hosts each take one of the two answers and go while it is being made: one resets the
    // connection, the other ends its side (all the server sees of a client that gave up waiting),
    // which is cut the idle time later since nothing more is read and no answer comes.
    for (const [n, what, how] of [[2, 'hang-start', 'reset'], [3, 'hang-later', 'end']] as const) {
      const s = await new Promise<net.Socket>((resolve) => {
        const socket = h.track(net.connect({ host: '127.0.0.1', port: server.address.port, localAddress: `127.0.0.${n}` }, () => resolve(socket)));
      });
      s.write(Buffer.concat([prefix(what.length), Buffer.from(what)]));
      await waitFor(() => started.includes(what), 20_000, `${what} handed to the handler`);
      if (how === 'reset') s.resetAndDestroy();
      else s.destroy();
      await waitFor(() => h.closedRecords().length === n - 1, 20_000, `the ${how} seen`);
    }
    expect(h.closedRecords().map((r) => [r.reason, r.unanswered])).to.deep.equal([['connection-error', 1], ['client-closed', 1]]);
    // A third host is answered: the cut connections hold no answer any more.
    const third = h.track(net.connect({ host: '127.0.0.1', port: server.address.port, localAddress: '127.0.0.4' }));
    let received = Buffer.alloc(0);
    third.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    third.write(Buffer.concat([prefix(2), Buffer.from('ok')]));
    await waitFor(() => received.length === 6, 10_000, 'the third host answered');
    expect(received.equals(Buffer.concat([prefix(2), Buffer.from('ok')]))).to.equal(true);
  });

  it('answers a client that ended its side for as long as its answers keep coming, though together they take longer than idleTimeoutMs', async () => {
    // Each answer comes 300 ms after the one before: 12 take 3.6 s, past the 3 s the last answer written leaves each.
    let previous = Promise.resolve();
    const server = await h.serve('plain', { limits: { idleTimeoutMs: 3_000 }, handler: async (r: Uint8Array) => {
      const ready = previous.then(() => sleep(300));
      previous = ready;
      return { later: ready.then(() => r) };
    } });
    const socket = await h.raw(server, 'plain');
    let received = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    const frames = Array.from({ length: 12 }, (_, i) => Buffer.concat([prefix(1), Buffer.from([i])]));
    socket.end(Buffer.concat(frames));
    await closed(socket);
    expect(received.equals(Buffer.concat(frames)), 'every answer').to.equal(true);
    expect(h.closedRecords()[0]).to.include({ reason: 'client-closed', requests: 12, answered: 12 });
  });

  it('closes a connection whose started frame does not complete within readTimeoutMs', async () => {
    // Not before the read timeout; after it, as late as a busy machine makes it, but well short of the idle timeout (30 s).
    const server = await h.serve('plain', { limits: { readTimeoutMs: 200, idleTimeoutMs: 30_000 } });
    const socket = await h.raw(server, 'plain');
    const t0 = Date.now();
    socket.write(Buffer.concat([prefix(5), Buffer.from('ab')]));
    await closed(socket);
    expect(Date.now() - t0).to.be.within(150, 10_000);
    expect(h.closedRecords('read-timeout')).to.have.length(1);
    // A header alone, and nothing after it, is a frame started too: not an idle connection.
    const idleLong = await h.serve('plain', { limits: { readTimeoutMs: 200, idleTimeoutMs: 30_000 } });
    const headerOnly = await h.raw(idleLong, 'plain');
    const t1 = Date.now();
    headerOnly.write(prefix(100));
    await closed(headerOnly);
    expect(Date.now() - t1).to.be.within(150, 10_000);
    expect(h.closedRecords('read-timeout')).to.have.length(2);
  });

  it('answers the requests carried out before a frame that does not complete within readTimeoutMs, then closes', async () => {
    let done = 0;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    // The answer waits (as for its audit sync) past the stalled frame's read timeout.
    const server = await h.serve('plain', { limits: { readTimeoutMs: 200 }, handler: async (r: Uint8Array) => (done++, { later: gate.then(() => r) }) });
    const socket = await h.raw(server, 'plain');
    let received = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    socket.write(Buffer.concat([prefix(4), Buffer.from('done'), prefix(5), Buffer.from('ab')]));
    await waitFor(() => done === 1, 20_000, 'the first request carried out');
    await sleep(400);
    open();
    await closed(socket);
    expect(received.equals(Buffer.concat([prefix(4), Buffer.from('done')])), 'the answer to the request carried out').to.equal(true);
    expect(h.closedRecords()).to.have.length(1);
    expect(h.closedRecords()[0]).to.include({ reason: 'read-timeout', code: 'TIMEOUT', requests: 1, answered: 1, dropped: 0 });
    // One that stalls a frame and never reads its answers is still cut off, at the write timeout.
    const big = await h.serve('plain', { limits: { readTimeoutMs: 100, idleTimeoutMs: 2_000 }, handler: async () => new Uint8Array(1024 * 1024) });
    const deaf = await h.raw(big, 'plain');
    deaf.pause();
    deaf.write(Buffer.concat([...Array.from({ length: 40 }, () => Buffer.concat([prefix(1), Buffer.from([1])])), prefix(5)]));
    await waitFor(() => h.closedRecords().length === 2, 20_000, 'the deaf client cut off');
    expect(h.closedRecords()[1]).to.include({ reason: 'write-timeout', code: 'TIMEOUT' });
    await closed(deaf);
  });

  it('closes a connection whose frame stalled past readTimeoutMs while a handler that never answers is pending, idleTimeoutMs later (it stayed open until the server stopped)', async () => {
    let started = 0;
    const server = await h.serve('plain', { limits: { readTimeoutMs: 200, idleTimeoutMs: 600 }, handler: () => (started++, new Promise<Uint8Array>(() => {})) });
    const socket = await h.raw(server, 'plain');
    let received = 0;
    socket.on('data', (d: Buffer) => (received += d.length));
    const t0 = Date.now();
    socket.write(Buffer.concat([prefix(4), Buffer.from('hang'), prefix(5), Buffer.from('ab')]));
    await waitFor(() => started === 1, 20_000, 'the request handed to the handler');
    let open = true;
    void closed(socket).then(() => (open = false));
    await waitFor(() => !open, 15_000, 'the connection closed');
    // The read timeout, then the grace (idleTimeoutMs); well short of the 20 s a busy machine could take.
    expect(Date.now() - t0, 'ms until closed').to.be.within(700, 15_000);
    expect(received, 'bytes answered').to.equal(0);
    expect(h.closedRecords()).to.have.length(1);
    expect(h.closedRecords()[0]).to.include({ reason: 'read-timeout', code: 'TIMEOUT', requests: 1, answered: 0, dropped: 0, unanswered: 1 });
    expect(server.connections).to.equal(0);
  });

  it('closes a TLS connection that never finishes its handshake', async () => {
    const server = await h.serve('mtls', { limits: { handshakeTimeoutMs: 200 } });
    const socket = await h.raw(server, 'plain'); // TCP only: never says hello
    await closed(socket);
    await waitFor(() => h.logs.some((r) => r.reason === 'handshake-timeout'), 20_000, 'the handshake timeout record');
    expect(h.logs.find((r) => r.reason === 'handshake-timeout')).to.include({ event: 'refused', code: 'TIMEOUT' });
  });

  it('refuses connections beyond maxConnections at once, and accepts again when one leaves', async () => {
    const server = await h.serve('mtls', { limits: { maxConnections: 2 } });
    const a = await h.connect(server, 'mtls');
    const b = await h.connect(server, 'mtls');
    await a.request(bytes('a'));
    await b.request(bytes('b'));
    const t0 = Date.now();
    await rejectsWith(h.connect(server, 'mtls'), 'UNREACHABLE');
    expect(Date.now() - t0, 'refused at once, not held until a handshake timeout (10 s)').to.be.lessThan(5_000);
    expect(h.logs.filter((r) => r.reason === 'max-connections').map(fieldOrder)).to.deep.equal([['event', 'remote', 'transport', 'reason']]);
    await a.close();
    await waitFor(() => server.connections === 1, 20_000, 'the closed connection to be counted out');
    const c = await h.connect(server, 'mtls');
    expect(text(await c.request(bytes('c')))).to.equal('c');
  });

  it('refuses connections from one address beyond maxConnectionsPerAddress, before any handshake, and takes them again when some leave', async () => {
    const server = await h.serve('mtls', { limits: { maxConnectionsPerAddress: 3 } });
    // Three hosts' worth of sockets that never say anything (the handshake is still ahead of them).
    const quiet = await Promise.all([0, 1, 2].map(() => new Promise<net.Socket>((resolve) => {
      const s = net.connect(server.address.port, '127.0.0.1', () => resolve(s));
    })));
    await waitFor(() => server.connections === 3, 20_000, 'three held connections');
    await rejectsWith(h.connect(server, 'mtls'), 'UNREACHABLE');
    expect(h.logs.filter((r) => r.reason === 'max-connections-per-address').map(fieldOrder)).to.deep.equal([['event', 'remote', 'transport', 'reason']]);
    quiet[0]!.destroy();
    await waitFor(() => server.connections === 2, 20_000, 'the closed one counted out');
    const c = await h.connect(server, 'mtls');
    expect(text(await c.request(bytes('c')))).to.equal('c');
    for (const q of quiet) q.destroy();
  });

  it('logs at most ten refusals of one reason a second, the next line saying how many it left out', async () => {
    const server = await h.serve('mtls', { limits: { maxConnectionsPerAddress: 1 } });
    const held = await new Promise<net.Socket>((resolve) => {
      const s = net.connect(server.address.port, '127.0.0.1', () => resolve(s));
    });
    await waitFor(() => server.connections === 1, 20_000, 'the held connection');
    const refused = () => new Promise<void>((resolve) => {
      const s = net.connect(server.address.port, '127.0.0.1');
      s.on('close', () => resolve());
      s.on('error', () => {});
    });
    await Promise.all(Array.from({ length: 40 }, refused));
    const lines = () => h.logs.filter((r) => r.reason === 'max-connections-per-address');
    // A line is one refusal and carries the count of those left out before it; a summary line is only a count.
    const counted = () => lines().reduce((n, r) => {
      const { suppressed = 0, summary = false } = r as unknown as { suppressed?: number; summary?: boolean };
      return n + suppressed + (summary ? 0 : 1);
    }, 0);
    // The count comes a second later in a line of its own, though no refusal follows.
    await waitFor(() => counted() === 40, 20_000, 'every refusal logged or counted');
    expect(lines().some((r) => (r as { suppressed?: number }).suppressed! > 0), 'a count of refusals left out').to.equal(true);
    // Ten a second by the clock of the lines' own times, however slowly a busy machine makes the refusals come.
    const perSecond = new Map<string, number>();
    for (const r of lines().filter((line) => !(line as { summary?: boolean }).summary)) {
      const second = String(r.time).slice(0, 19); // 2026-12-07T05:46:26
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    }
    expect(Math.max(...perSecond.values()), `refusal lines in each second: ${[...perSecond.values()].join(', ')}`).to.be.at.most(10);
    // Turned away before the handshake, a TLS connection is one refusal, not also a failed handshake.
    expect(h.logs.filter((r) => r.reason === 'tls-handshake')).to.deep.equal([]);
    held.destroy();
  });

  it('closes a connection after maxRequestsPerConnection answers', async () => {
    const server = await h.serve('mtls', { limits: { maxRequestsPerConnection: 3 } });
    const conn = await h.connect(server, 'mtls');
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((i) => conn.request(bytes(`q${i}`))));
    expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected']);
    await waitFor(() => h.closedRecords('max-requests').length === 1, 20_000, 'the max-requests close');
    expect(h.closedRecords('max-requests')[0]).to.include({ answered: 3 });
    const next = await h.connect(server, 'mtls');
    expect(text(await next.request(bytes('again')))).to.equal('again');
  });

  it('counts in its closed line the frames read past maxRequestsPerConnection, and those behind a failed request, as dropped', async () => {
    const server = await h.serve('plain', {
      limits: { maxRequestsPerConnection: 3 },
      handler: async (r: Uint8Array) => {
        if (text(r) === 'fail') throw new Error('handler failure');
        return r;
      },
    });
    const frame = (s: string) => Buffer.concat([prefix(s.length), Buffer.from(s)]);
    // One write, so one read: all five frames come in together, two past the limit.
    const connecting = performance.now();
    const over = await h.raw(server, 'plain');
    over.resume();
    over.write(Buffer.concat(['a', 'b', 'c', 'd', 'e'].map(frame)));
    await waitFor(() => h.closedRecords('max-requests').length === 1, 20_000, 'the max-requests close');
    expect(h.closedRecords('max-requests')[0]).to.include({ requests: 5, answered: 3, dropped: 2 });
    expect(h.closedRecords('max-requests')[0]!.durationMs, 'the connection\'s own duration').to.be.at.most(Math.ceil(performance.now() - connecting));
    // The second fails: the third, read but never started, is dropped too.
    const failing = await h.raw(server, 'plain');
    failing.resume();
    failing.write(Buffer.concat(['a', 'fail', 'c'].map(frame)));
    await waitFor(() => h.closedRecords('handler-error').length === 1, 20_000, 'the handler-error close');
    expect(h.closedRecords('handler-error')[0]).to.include({ requests: 3, answered: 1, dropped: 1 });
  });

  it('gives the client TIMEOUT (exit 3) when a server accepts but never answers', async () => {
    const silent = await rawServer((s) => s.resume());
    try {
      const conn = await connect({ host: '127.0.0.1', port: silent.port, plain: true, limits: { readTimeoutMs: 200 } });
      const e = await rejectsWith(conn.request(bytes('hello?')), 'TIMEOUT');
      expect(e.exitStatus).to.equal(3);
      const p = await testPki();
      await rejectsWith(connect({ host: '127.0.0.1', port: silent.port, tls: { ca: p.ca.cert }, limits: { handshakeTimeoutMs: 200 } }), 'TIMEOUT');
    } finally {
      await silent.stop();
    }
  });

  it('gives each answer readTimeoutMs from when it is the one waited for: the second of two, after the first came late, times out then, not with the first one\'s time', async () => {
    let requests = 0;
    const slow = await rawServer((s) => s.on('data', () => {
      // Answers only the first request, 200 ms late (the rest of the read timeout is room for a
      // busy machine to be late in); never the second.
      if (requests++ === 0) setTimeout(() => s.write(Buffer.concat([prefix(2), Buffer.from('ok')])), 200);
    }));
    try {
      const conn = await connect({ host: '127.0.0.1', port: slow.port, plain: true, limits: { readTimeoutMs: 2_000 } });
      const first = conn.request(bytes('one'));
      const second = conn.request(bytes('two'));
      const settled = second.then(() => 'answered', (e: { code?: string }) => e.code);
      expect(text(await first)).to.equal('ok');
      const answeredAt = performance.now();
      expect(await settled).to.equal('TIMEOUT');
      const waited = performance.now() - answeredAt;
      // Counted from its sending, it would have had some 1800 ms left; the upper bound only says it did time out.
      expect(waited, 'the second answer got its own 2000 ms').to.be.at.least(1_990).and.below(20_000);
    } finally {
      await slow.stop();
    }
  });

  it('gives the client UNREACHABLE (exit 3) for a closed port or an unknown host', async () => {
    const gone = await rawServer(() => {});
    await gone.stop();
    const e = await rejectsWith(connect({ host: '127.0.0.1', port: gone.port, plain: true }), 'UNREACHABLE');
    expect(e.exitStatus).to.equal(3);
    expect(e.message).to.match(/refused/);
    const p = await testPki();
    await rejectsWith(connect({ host: '127.0.0.1', port: gone.port, tls: { ca: p.ca.cert } }), 'UNREACHABLE');
    await rejectsWith(connect({ host: 'no-such-host.invalid', port: 1, plain: true }), 'UNREACHABLE');
  });

  it('says the connection closed when the server hangs up in the middle of an answer', async () => {
    const rude = await rawServer((s) => s.once('data', () => {
      s.write(Buffer.concat([prefix(100), Buffer.alloc(10)]));
      s.end();
    }));
    try {
      const conn = await connect({ host: '127.0.0.1', port: rude.port, plain: true });
      const e = await rejectsWith(conn.request(bytes('hi')), 'UNREACHABLE');
      expect(e.message).to.match(/closed the connection before answering \(14 bytes/); // its header and 10 of its 100 bytes
    } finally {
      await rude.stop();
    }
  });

  it('on close, answers the request in flight, closes idle connections and stops accepting', async () => {
    let started!: () => void;
    const inHandler = new Promise<void>((r) => (started = r));
    const server = await h.serve('mtls', {
      handler: async (r) => {
        if (text(r) === 'slow') {
          started();
          await sleep(300);
        }
        return r;
      },
    });
    const busy = await h.connect(server, 'mtls');
    const idle = await h.connect(server, 'mtls');
    await idle.request(bytes('warm-up'));
    const answer = busy.request(bytes('slow'));
    await inHandler;
    const t0 = Date.now();
    await server.close(30_000);
    expect(Date.now() - t0, 'close waited for the handler, not the grace period').to.be.within(200, 15_000);
    expect(text(await answer)).to.equal('slow');
    await rejectsWith(idle.request(bytes('after close')), 'UNREACHABLE');
    await rejectsWith(h.connect(server, 'mtls'), 'UNREACHABLE');
    expect(h.closedRecords('server-closing')).to.have.length(2);
    expect(h.logs.at(-1)).to.include({ event: 'stopped' });
  });

  it('on close, drops a connection still in its TLS handshake at once, not after the grace period', async () => {
    const server = await h.serve('mtls', { limits: { handshakeTimeoutMs: 30_000 } });
    const socket = await h.raw(server, 'plain'); // TCP only: never says hello
    let error: string | undefined;
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    await waitFor(() => server.connections === 1, 20_000, 'the connection to be counted');
    const t0 = Date.now();
    await server.close(30_000);
    expect(Date.now() - t0, 'close with a connection mid-handshake (ms), against a grace period of 30 s').to.be.lessThan(15_000);
    await closed(socket);
    // Reset, not closed: a client whose side of the handshake ends only now hears a cut, not the
    // clean close with which a server refuses a certificate.
    expect(error).to.equal('ECONNRESET');
  });

  it('on close, logs a connection it drops in its TLS handshake as refused server-closing, before stopped, not as a client that reset it', async () => {
    const server = await h.serve('mtls', { limits: { handshakeTimeoutMs: 30_000 } });
    const socket = await h.raw(server, 'plain'); // TCP only: never says hello
    socket.on('error', () => {});
    await waitFor(() => server.connections === 1, 20_000, 'the connection to be counted');
    await server.close(30_000);
    await closed(socket);
    await sleep(200); // a failed handshake's record, were one to come, comes after the close
    const refused = h.logs.filter((r) => r.event === 'refused');
    expect(refused.map((r) => r.reason)).to.deep.equal(['server-closing']);
    expect(fieldOrder(refused[0]!)).to.deep.equal(['event', 'remote', 'transport', 'reason']);
    expect(h.logs.at(-1)).to.include({ event: 'stopped' });
  });

  it('on close, lets a client that has done its half of the handshake hear that the server is closing (UNREACHABLE, worth a retry), not take it for a refusal of its certificate', async () => {
    const server = await h.serve('mtls');
    // A proxy that passes the client's hello at once and holds the rest (its certificate and
    // Finished) until told: the client has its side of the handshake done, the server not yet.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const proxy = net.createServer((client) => {
      const upstream = net.connect(server.address.port, '127.0.0.1');
      let hello = true;
      client.on('data', (d: Buffer) => (hello ? ((hello = false), upstream.write(d)) : void released.then(() => upstream.write(d))));
      upstream.on('data', (d: Buffer) => client.write(d));
      const end = () => (client.destroy(), upstream.destroy());
      for (const s of [client, upstream]) s.on('close', end).on('error', () => {});
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const conn = await h.connect({ address: { host: '127.0.0.1', port: (proxy.address() as net.AddressInfo).port } } as Parameters<typeof h.connect>[0], 'mtls');
      const answer = conn.request(bytes('hi'));
      const closing = server.close(5000);
      release();
      const e = await rejectsWith(answer, 'UNREACHABLE');
      expect(e.exitStatus).to.equal(3);
      await closing;
    } finally {
      proxy.close();
    }
  });

  it('on close, finishes a handshake whose last flight waited out a stall of its event loop longer than the half second it gives: the client hears a hang-up (UNREACHABLE), not a refusal', async () => {
    const server = await h.serve('mtls');
    // The client's side of the handshake is done, its Finished not yet read by the server, whose
    // event loop (the same as the client's here) is then held 700 ms, as a busy machine holds it.
    const conn = await h.connect(server, 'mtls');
    const closing = server.close(5000);
    const until = performance.now() + 700;
    while (performance.now() < until);
    const e = await rejectsWith(conn.request(bytes('hi')), 'UNREACHABLE');
    expect(e.exitStatus).to.equal(3);
    await closing;
    // It finished the handshake and was told the server is closing, after its session tickets.
    expect(h.logs.filter((r) => r.event === 'refused').map((r) => r.reason)).to.deep.equal(['server-closing']);
    expect(fieldOrder(h.logs.find((r) => r.event === 'refused')!)).to.deep.equal(['event', 'conn', 'remote', 'transport', 'reason']);
  });

  it('on close, cuts a handler that outlives the grace period', async () => {
    let called!: () => void;
    const inHandler = new Promise<void>((r) => (called = r));
    const server = await h.serve('plain', { handler: () => (called(), new Promise<Uint8Array>(() => {})) });
    const conn = await h.connect(server, 'plain');
    const answer = conn.request(bytes('never'));
    await inHandler;
    const t0 = Date.now();
    await server.close(200);
    // The handler never ends: only the grace period ends the close (the upper bound says it did).
    expect(Date.now() - t0).to.be.within(150, 15_000);
    await rejectsWith(answer, 'UNREACHABLE');
  });
});

// The bounds the README's threat model gives, held by the real programs on loopback, not only by
// the channel with the limits a test passes it: 256 connections, 64 from one address (counted
// before any handshake), 1,000 requests a connection and frames of 1 MiB on key-server, one
// request and frames of 64 KiB on simpleserver, its waits (a handshake of 10 s, a frame's bytes
// within 10 s, 30 s of idleness or for a write), and its certificates of 90 days by default.
// Other loopback addresses (127.0.0.2 ...) stand in for other hosts.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { toPem } from '../../lib/pki/index.ts';
import { connect, DEFAULT_LIMITS } from '../../lib/channel/index.ts';
import { FrameDecoder } from '../../lib/wire/index.ts';
import { CERTIFIER_FRAME_LIMIT, type MachineIdentity } from '../../lib/certifier/index.ts';
import { Domain, sleep, type Child, type KeyServer } from './domain.ts';

const { maxConnections, maxConnectionsPerAddress, maxRequestsPerConnection, frameLimit } = DEFAULT_LIMITS;

describe('e2e: the limits the threat model states, held by the real servers', function () {
  this.timeout(60_000);
  let d: Domain;
  let server: KeyServer;
  let identity: MachineIdentity;
  const certified = { from: 0, to: 0 };
  const sockets: net.Socket[] = [];

  before(async () => {
    d = await Domain.create({ programs: ['key-server', 'client'] });
    certified.from = Date.now();
    const [ks, client] = await Promise.all([d.certify('keyserver', 'key-server'), d.certify('client', 'client')]);
    certified.to = Date.now();
    server = await d.startKeyServer(ks);
    identity = await d.identity(client);
    await d.withClient(server, identity, (c) => c.store('canary', randomBytes(16)));
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.destroy();
  });
  after(async () => {
    await d?.close();
  });

  const simpleserver = (): { child: Child; port: number } => ({ child: d.servers[0]!, port: d.certifierPort });
  const servers = (): [string, { child: Child; port: number }][] => [['key-server', server], ['simpleserver', simpleserver()]];

  /** A TCP connection from `localAddress` that says nothing: it holds a slot while its handshake is ahead of it. */
  const quiet = (port: number, localAddress: string) => new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    sockets.push(s);
    s.once('connect', () => {
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
  const closedSoon = async (s: net.Socket) => {
    for (let i = 0; i < 200 && !s.closed; i++) await sleep(20);
    return s.closed;
  };
  /** A mutual-TLS connection as the client machine whose bytes the test writes itself. */
  const rawMtls = (port: number) => new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1', port, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined,
      key: identity.key.export({ type: 'pkcs8', format: 'pem' }), cert: toPem(identity.certificate), ca: toPem(d.policyCert),
    });
    sockets.push(s);
    s.once('secureConnect', () => {
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
  /** simpleserver takes any TLS client: its certificate is the authority's. */
  const rawTls = (port: number) => new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined, ca: toPem(d.policyCert) });
    sockets.push(s);
    s.once('secureConnect', () => {
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
  const lengthPrefix = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  const frame = (body: Uint8Array) => Buffer.concat([lengthPrefix(body.length), body]);
  /** How many frames the server sent on `s`, counted as they come. */
  const framesOn = (s: net.Socket) => {
    const seen = { frames: 0 };
    const decoder = new FrameDecoder(16 * 1024 * 1024);
    s.on('data', (chunk: Buffer) => (seen.frames += decoder.push(chunk).length));
    return seen;
  };
  const closedLine = (child: Child, s: net.Socket, from: number) =>
    child.waitForLog(new RegExp(` closed (?=.* remote=127\\.0\\.0\\.1:${s.localPort} )`), from, 20_000);

  it(`holds at most ${maxConnectionsPerAddress} connections from one address and ${maxConnections} in all, counted before any handshake, and takes one again when one leaves`, async () => {
    expect([maxConnections, maxConnectionsPerAddress]).to.deep.equal([256, 64]); // README, "Threat model"
    for (const [name, { child, port }] of servers()) {
      const from = child.mark();
      const hosts = Array.from({ length: maxConnections / maxConnectionsPerAddress }, (_, i) => `127.0.0.${i + 1}`);
      const held = await Promise.all(Array.from({ length: maxConnectionsPerAddress }, () => quiet(port, hosts[0]!)));
      const overHost = await quiet(port, hosts[0]!);
      await child.waitForLog(new RegExp(` refused remote=127\\.0\\.0\\.1:${overHost.localPort} .*reason=max-connections-per-address(?![\\w-])`), from);
      expect(await closedSoon(overHost), `${name}: the ${maxConnectionsPerAddress + 1}th from one address is closed`).to.equal(true);
      // Three more hosts fill the server.
      for (const host of hosts.slice(1)) held.push(...await Promise.all(Array.from({ length: maxConnectionsPerAddress }, () => quiet(port, host))));
      const overAll = await quiet(port, '127.0.0.99');
      await child.waitForLog(/ refused remote=127\.0\.0\.99:\d+ .*reason=max-connections(?![\w-])/, from);
      expect(await closedSoon(overAll), `${name}: the ${maxConnections + 1}th connection is closed`).to.equal(true);
      expect(held.filter((s) => s.closed), `${name}: the ${maxConnections} held are still open`).to.deep.equal([]);
      // One leaves: a TLS client from a new host is served again.
      held[0]!.destroy();
      let served = false;
      for (let i = 0; i < 100 && !served; i++) {
        try {
          const c = await connect({ host: '127.0.0.1', port, tls: name === 'key-server'
            ? { key: identity.key, cert: toPem(identity.certificate), ca: toPem(d.policyCert) }
            : { ca: toPem(d.policyCert) } });
          await c.close();
          served = true;
        } catch {
          await sleep(50);
        }
      }
      expect(served, `${name}: a connection taken once one left`).to.equal(true);
      for (const s of sockets.splice(0)) s.destroy();
    }
  });

  it(`key-server answers ${maxRequestsPerConnection.toLocaleString('en-US')} requests on a connection, then closes it`, async () => {
    expect(maxRequestsPerConnection).to.equal(1000); // README, "Threat model"
    const from = server.child.mark();
    const s = await rawMtls(server.port);
    const answers = framesOn(s);
    // Bytes that make no request: each is answered with a refusal, none is audited.
    s.write(Buffer.concat(Array.from({ length: maxRequestsPerConnection + 5 }, () => frame(randomBytes(8)))));
    const closed = await closedLine(server.child, s, from);
    expect(closed).to.match(new RegExp(` reason=max-requests requests=\\d+ answered=${maxRequestsPerConnection} `));
    expect(await closedSoon(s)).to.equal(true);
    expect(answers.frames).to.equal(maxRequestsPerConnection);
  });

  it('key-server reads a frame of 1 MiB and closes a connection announcing one a byte longer (FRAME_TOO_LARGE)', async () => {
    expect(frameLimit).to.equal(1024 * 1024); // README, "Threat model"
    const from = server.child.mark();
    const at = await rawMtls(server.port);
    const read = framesOn(at);
    at.write(frame(randomBytes(frameLimit)));
    for (let i = 0; i < 250 && read.frames === 0; i++) await sleep(20);
    expect(read.frames, 'the frame of 1 MiB was read and answered').to.equal(1);
    expect(at.closed).to.equal(false);
    const over = await rawMtls(server.port);
    over.write(lengthPrefix(frameLimit + 1));
    expect(await closedLine(server.child, over, from)).to.match(/ reason=frame-error .*code=FRAME_TOO_LARGE /);
    expect(await closedSoon(over)).to.equal(true);
  });

  it('simpleserver answers one request on a connection, then closes it, and closes one announcing a request over 64 KiB (FRAME_TOO_LARGE)', async () => {
    expect(CERTIFIER_FRAME_LIMIT).to.equal(64 * 1024); // README, "Threat model"
    const { child, port } = simpleserver();
    const from = child.mark();
    const two = await rawTls(port);
    const answers = framesOn(two);
    // Its closed line is left out: the refusal of an unreadable request stands for the connection.
    two.write(Buffer.concat([frame(randomBytes(8)), frame(randomBytes(8))]));
    expect(await closedSoon(two)).to.equal(true);
    expect(answers.frames).to.equal(1);
    const over = await rawTls(port);
    over.write(lengthPrefix(CERTIFIER_FRAME_LIMIT + 1));
    expect(await closedLine(child, over, from)).to.match(/ reason=frame-error .*code=FRAME_TOO_LARGE /);
    expect(await closedSoon(over)).to.equal(true);
  });

  it('each server holds its connections to a handshake of 10 s, a frame\'s bytes within 10 s and 30 s of idleness or of a write not taken, as it says when it listens', async () => {
    // The channel's tests show what each wait does (a write waits the idle time); this shows which
    // waits the real programs resolved, with no clock: the listening line is built from them.
    for (const [name, { child }] of servers()) {
      const line = await child.waitForLog(/ listening host=/, 0, 20_000);
      const waits = Object.fromEntries([...line.matchAll(/ (\w+TimeoutMs)=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
      expect(waits, name).to.deep.equal({ handshakeTimeoutMs: 10_000, readTimeoutMs: 10_000, idleTimeoutMs: 30_000 }); // README, "Threat model", "Design"
    }
  });

  it('simpleserver certifies a machine for 90 days by default, within policy claims of a year', () => {
    const DAY = 86_400_000;
    const ends = identity.peer.notAfter.getTime();
    // Certificate times are whole seconds.
    expect(ends).to.be.within(certified.from + 90 * DAY - 1_000, certified.to + 90 * DAY);
  });
});

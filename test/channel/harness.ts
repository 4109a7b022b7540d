// Shared set-up for the channel tests: one set of throwaway certificates, servers that are
// always stopped, raw sockets for misbehaving clients, and small waiting helpers.

import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { expect } from 'chai';
import { CertifierError, type ErrorCode } from '../../lib/errors/index.ts';
import { connect, serve, type ChannelServer, type ClientConnection, type ConnectOptions, type LogRecord, type ServeOptions } from '../../lib/channel/index.ts';
import { makeCa, type TestCa, type TestLeaf } from './certs.ts';

export interface Pki {
  ca: TestCa;
  server: TestLeaf;
  client: TestLeaf;
  /** Issued under the same root, but refused by the test verifyPeer. */
  refusedClient: TestLeaf;
  /** Issued under another root: OpenSSL refuses it. */
  strangerClient: TestLeaf;
}

let pki: Promise<Pki> | undefined;
export function testPki(): Promise<Pki> {
  pki ??= (async () => {
    const ca = await makeCa('channel-test');
    const other = await makeCa('someone-else');
    return { ca, server: await ca.issue('server'), client: await ca.issue('client'), refusedClient: await ca.issue('refuse-me'), strangerClient: await other.issue('stranger') };
  })();
  return pki;
}

export interface TestPeer {
  subject: string;
}

/** The test's verifyPeer: accepts any leaf whose subject does not contain "refuse". */
export function verifyPeer(chain: Uint8Array[]): TestPeer {
  const leaf = new X509Certificate(chain[0]!);
  if (leaf.subject.includes('refuse')) throw new CertifierError('UNTRUSTED_PEER', 'test policy refuses this measurement');
  return { subject: leaf.subject };
}

export const echo = async (request: Uint8Array) => request;
export const bytes = (s: string) => new TextEncoder().encode(s);
export const text = (b: Uint8Array) => new TextDecoder().decode(b);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type Transport = 'plain' | 'tls' | 'mtls';

/**
 * A record's fields in the order its text line shows them (its time apart): every `refused` line
 * reads as a `closed` one does, the connection first (`conn`, when it has one, `remote`,
 * `transport`), then why (`reason`, `code`, ...).
 */
export const fieldOrder = (r: object): string[] => Object.keys(r).filter((k) => k !== 'time');

/** Starts servers and client connections and stops every one of them after each test. */
export class Harness {
  readonly logs: LogRecord[] = [];
  private servers: ChannelServer[] = [];
  private clients: ClientConnection<unknown>[] = [];
  private sockets: net.Socket[] = [];

  async serve(transport: Transport, options: Partial<ServeOptions<TestPeer>> = {}): Promise<ChannelServer> {
    const p = await testPki();
    const base: ServeOptions<TestPeer> = { port: 0, handler: echo, log: (r) => this.logs.push(r as LogRecord) };
    if (transport === 'plain') base.plain = true;
    else base.tls = { key: p.server.key, cert: p.server.cert, ca: p.ca.cert, requestCert: transport === 'mtls', ...(transport === 'mtls' ? { verifyPeer } : {}) };
    const server = await serve<TestPeer>({ ...base, ...options });
    this.servers.push(server);
    return server;
  }

  /** A well-behaved client of the given transport, presenting `identity` under mutual TLS. */
  async connect(server: ChannelServer, transport: Transport, options: Partial<ConnectOptions<TestPeer>> & { identity?: TestLeaf | null } = {}): Promise<ClientConnection<TestPeer>> {
    const p = await testPki();
    const { identity, ...rest } = options;
    const base: ConnectOptions<TestPeer> = { host: '127.0.0.1', port: server.address.port };
    if (transport === 'plain') base.plain = true;
    else {
      const id = identity === undefined ? (transport === 'mtls' ? p.client : null) : identity;
      base.tls = id ? { key: id.key, cert: id.cert, ca: p.ca.cert } : { ca: p.ca.cert };
      base.verifyPeer = verifyPeer;
    }
    const conn = await connect<TestPeer>({ ...base, ...rest });
    this.clients.push(conn as ClientConnection<unknown>);
    return conn;
  }

  /** A raw TCP socket, or a TLS socket holding a valid client certificate, for sending bad bytes. */
  async raw(server: ChannelServer, transport: Transport): Promise<net.Socket> {
    const p = await testPki();
    const port = server.address.port;
    const socket = transport === 'plain'
      ? net.connect({ host: '127.0.0.1', port })
      : tls.connect({ host: '127.0.0.1', port, ca: p.ca.cert, key: p.client.key, cert: p.client.cert, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
    this.sockets.push(socket);
    socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      socket.once(transport === 'plain' ? 'connect' : 'secureConnect', () => resolve());
      socket.once('close', () => reject(new Error('raw socket closed before it connected')));
    });
    return socket;
  }

  track(socket: net.Socket): net.Socket {
    this.sockets.push(socket);
    socket.on('error', () => {});
    return socket;
  }

  closedRecords(reason?: string): LogRecord[] {
    return this.logs.filter((r) => r.event === 'closed' && (reason === undefined || r.reason === reason));
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.allSettled(this.clients.map((c) => c.close()));
    await Promise.all(this.servers.map((s) => s.close(100)));
    this.servers = [];
    this.clients = [];
    this.logs.length = 0;
    this.sockets = [];
  }
}

/**
 * Resolves when `socket` is closed (by either end). Drains it first: a socket holding bytes nobody
 * read (a TLS alert, say) never sees the end of its stream, and would wait forever.
 */
export function closed(socket: net.Socket): Promise<void> {
  socket.resume();
  return socket.destroyed && socket.closed ? Promise.resolve() : new Promise((r) => socket.once('close', () => r()));
}

/** Polls until `predicate` holds; fails the test after `ms`. */
export async function waitFor(predicate: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Awaits `p`, expecting a CertifierError with `code`; returns it. */
export async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<CertifierError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof CertifierError)) throw new Error(`expected CertifierError ${code}, got ${String(e)}`, { cause: e });
    expect(e.code, e.message).to.equal(code);
    return e;
  }
  throw new Error(`expected CertifierError ${code}, but it succeeded`);
}

/** A 4-byte little-endian length prefix. */
export function prefix(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

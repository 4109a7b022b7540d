// The channel's public shapes and default limits, shared by the server and the client.
// Peer verification is a callback so this layer never depends on how certificates are judged.

import type { KeyObject } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import { CertifierError } from '../errors/index.ts';
import { DEFAULT_FRAME_LIMIT } from '../wire/index.ts';
import type { RefusalKind } from './refusals.ts';

/** Our TLS identity: private key, certificate (PEM, leaf first) and the one trust anchor. */
export interface TlsIdentity {
  key: KeyObject | string;
  cert: string;
  /** PEM of the pinned root (e.g. the policy certificate): the only certificate trusted. */
  ca: string;
}

/** Server-only TLS as seen by a client: it trusts `ca` and presents no certificate. */
export interface TlsTrust {
  ca: string;
}

/**
 * A client's TLS made once (prepareClientTls) into OpenSSL's context, for several connections to
 * save making it again (about 2 ms each): each connection still verifies the server in full.
 */
export interface PreparedClientTls {
  readonly ca: string;
  /** Whether it presents a certificate (a TlsIdentity), not only trusts `ca`. */
  readonly mutual: boolean;
  readonly context: SecureContext;
}

/**
 * Judges the peer's chain (DER, leaf first, as OpenSSL built it up to `ca`) after OpenSSL has
 * verified it. Returns what the application wants to know about the peer; throws to refuse.
 */
export type VerifyPeer<P> = (chain: Uint8Array[]) => P;

export interface Limits {
  /** Largest frame body accepted or sent (default 1 MiB). */
  frameLimit?: number;
  /** Server: connections beyond this are closed at once (default 256). */
  maxConnections?: number;
  /**
   * Server: connections from one address (in the handshake or established) beyond this are
   * closed at once (default 64), so one host cannot take every slot of maxConnections.
   */
  maxConnectionsPerAddress?: number;
  /** Server: a connection is closed after answering this many requests (default 1000). */
  maxRequestsPerConnection?: number;
  /** Time allowed for the TLS handshake (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Server: a started frame must complete within this. Client: each response must (default 10 s). */
  readTimeoutMs?: number;
  /** Server: time allowed between requests before an idle connection is closed (default 30 s). */
  idleTimeoutMs?: number;
  /** Server, all connections together: bytes of ready answers not yet written before nothing more starts (default 64 MiB). */
  answerBytesHeld?: number;
  /** Server, all connections together: answers being made at once (default 64). */
  answersInFlight?: number;
}

export type ResolvedLimits = Required<Limits>;

export const DEFAULT_LIMITS: ResolvedLimits = Object.freeze({
  frameLimit: DEFAULT_FRAME_LIMIT,
  maxConnections: 256,
  maxConnectionsPerAddress: 64,
  maxRequestsPerConnection: 1000,
  handshakeTimeoutMs: 10_000,
  readTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  answerBytesHeld: 64 * 1024 * 1024,
  answersInFlight: 64,
});

/** Fills in defaults and refuses nonsense early, so a typo in a config cannot disable a limit. */
export function resolveLimits(limits: Limits | undefined): ResolvedLimits {
  const out = { ...DEFAULT_LIMITS, ...stripUndefined(limits ?? {}) };
  for (const [name, value] of Object.entries(out)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new CertifierError('INVALID_INPUT', `channel limit ${name} must be a positive integer, got ${String(value)}`);
    }
  }
  if (out.frameLimit > 0xffffffff) throw new CertifierError('INVALID_INPUT', 'channel limit frameLimit must fit in 32 bits');
  return out;
}

function stripUndefined(o: Limits): Limits {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Limits;
}

/** What a handler knows about the connection a request came on. */
export interface ConnectionInfo<P> {
  /** Short random hex naming the connection in logs. */
  id: string;
  /** Remote address and port, e.g. `127.0.0.1:53412`. */
  remote: string;
  /** What verifyPeer returned; undefined without a verified client certificate. */
  peer: P | undefined;
  /** TLS exporter (RFC 8446 section 7.5) with an empty context; undefined on plain TCP. */
  exportKeyingMaterial(label: string, length: number): Uint8Array | undefined;
}

/**
 * An answer that is decided but may not leave yet (say, until its audit record is on disk). A
 * handler returns one once the request's effects are in place: the next request on the
 * connection starts then, while this answer waits. Answers still leave in request order.
 */
export interface LaterAnswer {
  readonly later: Promise<Uint8Array>;
  /**
   * The connection's last answer (key-server: it outlived the server's certificate): nothing more
   * is read; the requests received before the close are answered, then it closes (last-answer).
   */
  readonly last?: boolean;
  /**
   * The answer holds a secret (key-server: its storage key, to a joining replica): the channel
   * writes it alone and overwrites it, and the frame made of it, once written, or once the
   * connection ends without writing it.
   */
  readonly secret?: boolean;
}

/**
 * Answers one request. The requests of one connection start one at a time, in order; throwing,
 * or a LaterAnswer that rejects, closes the connection without an answer.
 */
export type Handler<P> = (request: Uint8Array, conn: ConnectionInfo<P>) => Promise<Uint8Array | LaterAnswer>;

/** One structured log record; never holds payload bytes or secrets. */
export type LogRecord = Record<string, unknown> & { event: string };
export type ChannelLog = (event: LogRecord) => void;

export interface ServeOptions<P> {
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  tls?: TlsIdentity & { requestCert: boolean; verifyPeer?: VerifyPeer<P> };
  /** Plain TCP, only for the original Certifier's plain protocol; must be asked for explicitly. */
  plain?: boolean;
  limits?: Limits;
  handler: Handler<P>;
  /** Called once for each connection that reached the handler's side, when its socket has closed. */
  onClosed?: (conn: ConnectionInfo<P>) => void;
  log?: ChannelLog;
  /** The service's own refusals among the channel's records, held to the same rate as the channel's own (channelRefusal). */
  refusal?: RefusalKind;
}

export interface ChannelServer {
  readonly address: { host: string; port: number };
  /** Open TCP connections, including those still in the TLS handshake. */
  readonly connections: number;
  /** TLS only: presents this key and certificate on the connections that come after. */
  setIdentity(key: KeyObject | string, cert: string): void;
  /** Stops accepting, lets received requests be answered, closes everything; then resolves. */
  close(graceMs?: number): Promise<void>;
}

/**
 * How long a client waits for its server at each step (10 s each unless given): a server that
 * takes the connection and then says nothing (stopped, say) costs at most one of them, TIMEOUT.
 */
export interface Waits {
  /** The TCP connection. */
  connectTimeoutMs?: number;
  /** The TLS handshake, from the TCP connection. */
  handshakeTimeoutMs?: number;
  /** Each answer, from when it becomes the one waited for. */
  readTimeoutMs?: number;
}

/** `waits` as connect takes them: the handshake's and the answers' among the limits. */
export function connectWaits(waits: Waits | undefined, limits?: Limits): Pick<ConnectOptions<unknown>, 'limits' | 'connectTimeoutMs'> {
  const { connectTimeoutMs, handshakeTimeoutMs, readTimeoutMs } = waits ?? {};
  return { limits: { ...limits, ...stripUndefined({ handshakeTimeoutMs, readTimeoutMs }) }, ...(connectTimeoutMs !== undefined ? { connectTimeoutMs } : {}) };
}

export interface ConnectOptions<P> {
  host: string;
  port: number;
  /** A full identity for mutual TLS, or only `ca` for server-only TLS; or either prepared once for several connections. */
  tls?: TlsIdentity | TlsTrust | PreparedClientTls;
  verifyPeer?: VerifyPeer<P>;
  plain?: boolean;
  limits?: Limits;
  /** Time allowed for the TCP connection (default 10 s); the handshake has its own limit. */
  connectTimeoutMs?: number;
  /** Abandons the connection when aborted, connecting or waiting for an answer: it fails with the signal's reason where that is a CertifierError, else UNREACHABLE. */
  signal?: AbortSignal;
}

export interface ClientConnection<P> {
  /** What verifyPeer returned for the server; undefined on plain TCP or without verifyPeer. */
  readonly peer: P | undefined;
  /** 1, or 2 for the second try after an unsure refusal (second-try.ts): the connection that counted. */
  readonly attempt: 1 | 2;
  /** When that connection began connecting (performance.now()). */
  readonly startedAt: number;
  /**
   * Sends one request; answers come back in order, and calls may overlap (pipelining). `written`
   * is called once the request has been handed to the socket: from then on the server may have
   * read it (and carried it out) however the connection ends; never called, it was not sent, or
   * went only to a first try closed as a refusal is (which reads no request), by the time the
   * request settles (a first try's write is told once its connection ended otherwise).
   * `once`: a request that must not be sent a second time once written (one whose repeat would
   * change something again: a store), which a second try (second-try.ts) then does not send again,
   * telling `written` of its write, unless the second connection refuses our certificate (then
   * failing with that refusal, as a server that refuses it carries nothing out).
   */
  request(body: Uint8Array, written?: () => void, once?: boolean): Promise<Uint8Array>;
  exportKeyingMaterial(label: string, length: number): Uint8Array | undefined;
  /** Resolves once the server has accepted our certificate (mutual TLS), sending nothing; rejects as a request would fail. */
  accepted(): Promise<void>;
  /** Waits for outstanding answers, then closes. */
  close(): Promise<void>;
}

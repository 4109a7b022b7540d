// The channel server: accepts TCP or TLS 1.3 connections, checks the peer before reading a
// byte of request, and hands each connection to its own ServerSession.

import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { constants as cryptoConstants, type KeyObject } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';
import { randomBytes, toHex } from '../crypto/index.ts';
import { isoNow, SET_CLOCK } from '../util/clock.ts';
import { channelError, CLIENT_WRONG_PURPOSE, errnoOf, listenError, logCode, OUTSIDE_VALIDITY, WRONG_PURPOSE } from './errors.ts';
import { channelRefusal, limitRefusals } from './refusals.ts';
import { AnswerBudget, ServerSession } from './session.ts';
import { baseTlsOptions, exporterFor, remoteOf, runVerifyPeer } from './tlsutil.ts';
import { resolveLimits, type ChannelLog, type ChannelServer, type ConnectionInfo, type ServeOptions } from './types.ts';

const DEFAULT_GRACE_MS = 5_000;
/** At close, how long a connection still in its TLS handshake has to finish it. */
const HANDSHAKE_FINISH_MS = 500;

export async function serve<P>(opts: ServeOptions<P>): Promise<ChannelServer> {
  const limits = resolveLimits(opts.limits);
  const host = opts.host ?? '127.0.0.1';
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new CertifierError('INVALID_INPUT', `bad port ${String(opts.port)}`);
  if (opts.tls && opts.plain) throw new CertifierError('INVALID_INPUT', 'choose either tls or plain, not both');
  if (!opts.tls && opts.plain !== true) throw new CertifierError('INVALID_INPUT', 'a server without tls must say plain: true');
  if (opts.tls?.verifyPeer && !opts.tls.requestCert) throw new CertifierError('INVALID_INPUT', 'verifyPeer needs requestCert: true');
  const log = limitRefusals(safeLog(opts.log), opts.refusal ? (r) => channelRefusal(r) ?? opts.refusal!(r) : channelRefusal);
  const transport = opts.tls ? (opts.tls.requestCert ? 'mtls' : 'tls') : 'plain';

  const raws = new Set<Socket>(); // every TCP connection, for counting and shutdown
  // The TCP connection under a TLS one, found by remote address. A socket reset before we asked for
  // its address has none ("unknown:0"), so two such keys can meet: only the socket a key names removes it.
  const rawByRemote = new Map<string, Socket>();
  const budget = new AnswerBudget(limits.answerBytesHeld, limits.answersInFlight); // shared by this server's connections
  const established = new Set<Socket>(); // raw sockets whose handshake is done (with a session, or being told the server is closing)
  const sessions = new Set<ServerSession<P>>();
  let closing: Promise<void> | undefined;

  const accept = (socket: Socket, raw: Socket | undefined, tlsSocket: TLSSocket | undefined) => {
    const remote = remoteOf(socket);
    // 64 bits: ids that never meet, as an auth-challenge nonce is good only on the connection of its id.
    const id = toHex(randomBytes(8));
    if (closing) {
      log({ event: 'refused', conn: id, remote, transport, reason: 'server-closing' });
      if (raw) established.add(raw); // its handshake is done: not one for close() to drop
      // Not in this tick: the session tickets OpenSSL queued at the handshake's end go first, so
      // the client knows its certificate was taken and hears a close, not a refusal (exit 3, not 4).
      setImmediate(() => socket.destroy());
      return;
    }
    let peer: P | undefined;
    const verify = opts.tls?.verifyPeer;
    if (tlsSocket && verify) {
      // Synchronous on purpose: refusing here, in the same tick as the handshake, means the
      // refused client receives no session ticket and no byte of ours after the handshake.
      try {
        peer = runVerifyPeer(verify, tlsSocket);
      } catch (e) {
        log({ event: 'refused', conn: id, remote, transport, reason: 'untrusted-peer', code: logCode(e), ...(e instanceof CertifierError ? { detail: e.message } : {}) });
        tlsSocket.destroy();
        return;
      }
    }
    if (raw) established.add(raw);
    // A client may half-close after its last request and still read the answers.
    socket.allowHalfOpen = true;
    const info: ConnectionInfo<P> = { id, remote, peer, exportKeyingMaterial: exporterFor(tlsSocket) };
    const session: ServerSession<P> = new ServerSession(socket, info, opts.handler, limits, log, transport, () => {
      sessions.delete(session);
      opts.onClosed?.(info);
    }, budget);
    sessions.add(session);
  };

  let server: net.Server;
  let tlsServer: tls.Server | undefined;
  // The secure context, at start and whenever setIdentity replaces the key and certificate.
  // No resumption: every connection gets a full handshake, so every peer chain is checked now,
  // not when some earlier session was made. (TLS 1.3 still sends tickets; they just cannot be
  // redeemed without a session cache.)
  const contextOptions = (ca: string, key: KeyObject | string, cert: string) => ({ ...baseTlsOptions(ca, key, cert), secureOptions: cryptoConstants.SSL_OP_NO_TICKET });
  if (opts.tls) {
    const t = opts.tls;
    tlsServer = tls.createServer({
      ...contextOptions(t.ca, t.key, t.cert),
      requestCert: t.requestCert,
      // OpenSSL checks the chain against `ca`; Node then drops unauthorized clients before
      // 'secureConnection'. verifyPeer runs only on chains that passed.
      rejectUnauthorized: t.requestCert,
      handshakeTimeout: limits.handshakeTimeoutMs,
      // Not during the handshake: there, a half-open socket would hide a client that went away
      // until the handshake timeout. accept() allows it once the connection is established.
      allowHalfOpen: false,
    });
    tlsServer.on('secureConnection', (s: TLSSocket) => accept(s, rawByRemote.get(remoteOf(s)), s));
    tlsServer.on('tlsClientError', (err: Error, s: TLSSocket) => {
      // A TLS socket that failed its handshake may have lost its address already; the plain
      // socket under it (Node's _parent) keeps the one read when the connection arrived.
      const under = (s as TLSSocket & { _parent?: Socket })._parent;
      if (under && turnedAway.has(under)) {
        s.destroy();
        return;
      }
      const remote = s.remoteAddress === undefined && under ? remoteOf(under) : remoteOf(s);
      const record: Record<string, unknown> = { event: 'refused', remote, transport };
      // OpenSSL's verdict in our codes: a certificate outside its validity is CERT_EXPIRED (README, exit 4).
      if (s.authorizationError) {
        const tlsError = String(s.authorizationError);
        Object.assign(record, { reason: 'untrusted-peer', code: OUTSIDE_VALIDITY.has(tlsError) ? 'CERT_EXPIRED' : 'UNTRUSTED_PEER', tlsError });
        // Node has dropped the certificate by now, so no amount (the client's messages give one):
        // a client certificate not valid yet is most often this clock behind (a VM before NTP).
        if (tlsError === 'CERT_NOT_YET_VALID') record.detail = `the client's certificate is not valid yet by this server's clock (checked at ${isoNow()}): this server's clock is probably behind that of the machine that issued it: ${SET_CLOCK}, or, if this clock is right, the issuer's is ahead`;
        else if (tlsError === WRONG_PURPOSE) record.detail = CLIENT_WRONG_PURPOSE;
      } else if (errnoOf(err) === 'ERR_TLS_HANDSHAKE_TIMEOUT') Object.assign(record, { reason: 'handshake-timeout', code: 'TIMEOUT' });
      else Object.assign(record, { reason: 'tls-handshake', code: channelError(err, 'client').code, tlsError: errnoOf(err) ?? err.name });
      log(record as { event: string });
      // Node leaves the socket open after a handshake timeout: closing it is our job.
      s.destroy();
    });
    server = tlsServer;
  } else {
    server = net.createServer({ allowHalfOpen: true });
  }
  server.maxConnections = limits.maxConnections;
  server.on('drop', (d?: net.DropArgument) => {
    log({ event: 'refused', remote: remoteOf({ remoteAddress: d?.remoteAddress, remotePort: d?.remotePort }), transport, reason: 'max-connections' });
  });
  const perAddress = new Map<string, number>(); // open TCP connections by remote address
  const turnedAway = new WeakSet<Socket>();
  server.on('connection', (raw: Socket) => {
    const key = remoteOf(raw);
    const address = raw.remoteAddress ?? 'unknown';
    const held = perAddress.get(address) ?? 0;
    if (held >= limits.maxConnectionsPerAddress) {
      log({ event: 'refused', remote: key, transport, reason: 'max-connections-per-address' });
      turnedAway.add(raw); // its TLS socket's failure that follows is no second refusal
      raw.destroy();
      return;
    }
    perAddress.set(address, held + 1);
    raw.once('close', () => {
      const n = (perAddress.get(address) ?? 1) - 1;
      if (n > 0) perAddress.set(address, n);
      else perAddress.delete(address);
    });
    raws.add(raw);
    rawByRemote.set(key, raw);
    raw.setNoDelay(true); // small request/response frames: do not wait for Nagle
    raw.on('error', () => {}); // reported through the TLS socket or the session
    raw.on('close', () => {
      raws.delete(raw);
      if (rawByRemote.get(key) === raw) rawByRemote.delete(key);
      established.delete(raw);
    });
    if (!opts.tls) accept(raw, raw, undefined);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => reject(listenError(e, host, opts.port));
    server.once('error', onError);
    server.listen({ port: opts.port, host }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // Once listening (a failure to listen is the start's error, said once, not logged as well).
  server.on('error', (e) => log({ event: 'server-error', code: logCode(e) }));
  const bound = server.address() as net.AddressInfo;
  const address = { host: bound.address, port: bound.port };
  const listening: Record<string, unknown> = { event: 'listening', host: address.host, port: address.port, transport };
  if (transport === 'plain') listening.warning = 'plain TCP: no encryption and no peer authentication (compatibility mode)';
  // The waits this server holds its connections to (a write waits the idle time), as resolved
  // here: what the programs state is then shown by the programs themselves, not only by defaults.
  Object.assign(listening, { handshakeTimeoutMs: limits.handshakeTimeoutMs, readTimeoutMs: limits.readTimeoutMs, idleTimeoutMs: limits.idleTimeoutMs });
  log(listening as { event: string });

  const close = (graceMs = DEFAULT_GRACE_MS): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const stopped = () => {
        clearTimeout(hard);
        log({ event: 'stopped', host: address.host, port: address.port });
        resolve();
      };
      server.close(stopped); // stop listening; calls back once every connection has closed
      // Connections still in their handshake get a moment to finish it and be told (above) that
      // the server is closing: a client whose side of it is done would take a bare close for a
      // refusal of its certificate. Then one more turn of reading: after a stall of this event
      // loop (a busy machine) longer than the moment, a client's last flight can be waiting
      // unread, and the handshake it ends is told as the others were. Those still at it then (a
      // silent one, a slow client) are reset, not closed: a client whose side ends only now
      // hears a cut (UNREACHABLE), never the bare close with which a server refuses.
      const inHandshake = [...raws].filter((raw) => !established.has(raw));
      const dropHandshakes = setTimeout(() => setImmediate(() => {
        for (const raw of inHandshake) {
          if (established.has(raw) || raw.destroyed) continue;
          // Ours, not the client's: said as such now, before stopped, and its failed
          // handshake (ECONNRESET, which would blame the client) is not logged after it.
          log({ event: 'refused', remote: remoteOf(raw), transport, reason: 'server-closing' });
          turnedAway.add(raw);
          raw.resetAndDestroy();
        }
      }), Math.min(HANDSHAKE_FINISH_MS, Math.max(0, graceMs)));
      dropHandshakes.unref();
      for (const s of sessions) s.drain();
      const hard = setTimeout(() => {
        for (const s of sessions) s.destroy();
        for (const raw of raws) raw.destroy();
      }, Math.max(0, graceMs));
    });
    return closing;
  };

  const setIdentity = (key: KeyObject | string, cert: string): void => {
    if (!tlsServer || !opts.tls) throw new CertifierError('INVALID_INPUT', 'a plain server has no TLS identity');
    // Connections from now on get the new certificate; those established keep theirs.
    tlsServer.setSecureContext(contextOptions(opts.tls.ca, key, cert));
  };

  return {
    address,
    get connections() {
      return raws.size;
    },
    setIdentity,
    close,
  };
}

/** `server`, with `cleanup` run when it is closed (timers of the service around it). */
export function closingAlso(server: ChannelServer, cleanup: () => void): ChannelServer {
  return {
    address: server.address,
    get connections() {
      return server.connections;
    },
    setIdentity: server.setIdentity,
    close: (graceMs?: number) => {
      cleanup();
      return server.close(graceMs);
    },
  };
}

/** A logger that throws must not take a connection (or the server) down with it. */
function safeLog(log: ChannelLog | undefined): ChannelLog {
  if (!log) return () => {};
  return (record) => {
    try {
      log({ time: isoNow(), ...record });
    } catch {
      // logging is best effort
    }
  };
}

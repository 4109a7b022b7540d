// Turns socket and TLS failures into CertifierErrors with stable codes, so a caller's exit
// status says whether retrying can help (3) or the peer's identity is the problem (4).

import { X509Certificate } from 'node:crypto';
import { CertifierError, type ErrorCode } from '../errors/index.ts';
import { hostPort } from './tlsutil.ts';
import { clockBehind } from '../pki/index.ts';
import { roughly, SET_CLOCK } from '../util/clock.ts';

// errno values that mean "nobody answered at that address": a retry may well succeed.
const UNREACHABLE_ERRNOS = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN',
  'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME', 'EPIPE', 'ETIMEDOUT', 'EADDRNOTAVAIL',
]);

// Those the kernel answers at once where this machine's own network is not up (a VM at first boot,
// before its interface has an address or a route), said in words: Node's message names only the
// errno ("connect ENETUNREACH 10.0.0.5:8123 - Local (0.0.0.0:0)", "read ECONNRESET").
const NOT_UP = 'its network is not up yet, or not configured for that address';
const CUT = 'the server stopped or restarted as it answered, or something between cut the connection; a retry may succeed';
const IN_WORDS: Readonly<Record<string, string>> = {
  ENETUNREACH: `this machine has no route to its network (ENETUNREACH): ${NOT_UP}`,
  ENETDOWN: `this machine's network interface is down (ENETDOWN): ${NOT_UP}`,
  EADDRNOTAVAIL: `this machine has no address to connect from (EADDRNOTAVAIL): ${NOT_UP}`,
  EHOSTUNREACH: 'no route to the host (EHOSTUNREACH): it is down or cut off, or this machine\'s network is not up yet',
  // And those of a connection the server ended under us: killed or restarting, most often.
  ECONNRESET: `the connection was reset (ECONNRESET): ${CUT}`,
  ECONNABORTED: `the connection was aborted (ECONNABORTED): ${CUT}`,
  EPIPE: 'the connection closed as this machine wrote to it (EPIPE): the server stopped or restarted; a retry may succeed',
};

/**
 * A host name getaddrinfo did not resolve: none knows it (ENOTFOUND), the name server failed for it
 * (EAI_FAIL), or no name server could be asked or answered now (EAI_AGAIN: before the network is
 * up, say), which a retry may mend.
 */
function unresolved(code: string, hostname: unknown): string {
  const name = typeof hostname === 'string' ? `the name ${hostname}` : 'the name';
  if (code === 'ENOTFOUND' || code === 'EAI_NONAME' || code === 'EAI_NODATA') return `${name} is not known (${code}): check it, and /etc/hosts or the name server that should know it`;
  // A name server that answered with a failure (SERVFAIL for good, REFUSED): not the network.
  if (code === 'EAI_FAIL') return `the name server failed for ${name} (${code}): check the name server (/etc/resolv.conf) and the name; a retry may succeed once it answers`;
  return `${name} could not be looked up now (${code}): no name server could be reached or answered, as before the network is up`;
}

// TLS alerts a peer sends when it does not accept our certificate (or we sent none). TLS 1.3
// clients see these only after their own handshake finished, on the first read.
const CERT_ALERT = /^ERR_SSL_(SSLV3|TLSV1|TLSV13)_ALERT_(CERTIFICATE_\w+|BAD_CERTIFICATE|UNSUPPORTED_CERTIFICATE|UNKNOWN_CA|ACCESS_DENIED|DECRYPT_ERROR)$/;
// An HTTP request, or a proxy's CONNECT, where a TLS handshake should be is a peer speaking another protocol too.
const VERSION_FAILURE = /^ERR_SSL_(TLSV1_ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|WRONG_VERSION_NUMBER|NO_PROTOCOLS_AVAILABLE|HTTP_REQUEST|HTTPS_PROXY_REQUEST)$/;

/**
 * OpenSSL's verdict on a certificate whose extended key usage does not allow its end of TLS: a
 * role credential (neither purpose), or a certificate made for the other end.
 */
export const WRONG_PURPOSE = 'INVALID_PURPOSE';

/** What a server logs of a client refused for its purpose (WRONG_PURPOSE). */
export const CLIENT_WRONG_PURPOSE = 'the client\'s certificate is not made for a TLS client (its extended key usage lacks clientAuth): a role credential, shown in the auth-challenge and never as the TLS certificate, or a certificate issued for TLS servers only';

/** OpenSSL's verdicts on a certificate outside its validity period: our CERT_EXPIRED (exit 4). */
export const OUTSIDE_VALIDITY: ReadonlySet<string> = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

export function errnoOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** When the trusted root `ca` (PEM) ends, or undefined if it cannot be read. */
function rootEnds(ca: string): Date | undefined {
  try {
    const end = new Date(new X509Certificate(ca).validTo);
    return Number.isFinite(end.getTime()) ? end : undefined;
  } catch {
    return undefined;
  }
}

/** The dates of the certificate a peer presented, where they could be read. */
export interface PeerDates {
  notBefore?: Date | undefined;
  notAfter?: Date | undefined;
}

/**
 * A CertifierError for a failure talking to `target`; our own errors pass through unchanged.
 * `ca` is the trusted root (the policy certificate), which names itself when it has ended;
 * `peer` the dates of the certificate the peer presented, where they were read, which say by how
 * much this machine's clock lags when that certificate is not valid yet, or may run ahead when it
 * has ended.
 */
export function channelError(e: unknown, target: string, authorizationError?: string, ca?: string, peer?: PeerDates): CertifierError {
  if (e instanceof CertifierError) return e;
  const code = errnoOf(e);
  const detail = (e as Error | undefined)?.message ?? String(e);
  const make = (c: ErrorCode, message: string) => new CertifierError(c, message, { cause: e, details: { target, cause: code } });
  // Node sets authorizationError when OpenSSL could not chain the peer's certificate to `ca`.
  if (authorizationError && OUTSIDE_VALIDITY.has(authorizationError)) {
    const now = new Date();
    const root = authorizationError === 'CERT_HAS_EXPIRED' && ca ? rootEnds(ca) : undefined;
    if (root && root <= now) {
      return make('CERT_EXPIRED', `${target} presented a certificate under the policy certificate, which ended at ${root.toISOString()} (checked at ${now.toISOString()} by this machine's clock): no certificate issued under it lasts longer, so no new one or restart helps: replace the policy key (README "Replacing the policy key"), or a clock is wrong`);
    }
    // Our certificates are issued valid from 5 minutes before they are made: one not valid yet is
    // far more often a clock behind here (a VM's first boot, before NTP) than one issued ahead.
    const { notBefore, notAfter } = peer ?? {};
    if (authorizationError === 'CERT_NOT_YET_VALID' && notBefore && notBefore > now) {
      return make('CERT_EXPIRED', `${target} presented a certificate not valid before ${notBefore.toISOString()} (${authorizationError}, checked at ${now.toISOString()} by this machine's clock): this machine's clock is probably ${clockBehind(notBefore, now)} behind that of the machine that issued it: ${SET_CLOCK}`);
    }
    const renew = 'it needs a new one (a key-server: cert-utility init-trust, or --certifier; simpleserver: a restart)';
    // Ended: the server's fault, or this clock far ahead (a VM's first boot, before NTP), which how long ago says.
    if (authorizationError === 'CERT_HAS_EXPIRED' && notAfter && notAfter < now) {
      return make('CERT_EXPIRED', `${target} presented a certificate that ended at ${notAfter.toISOString()} (${authorizationError}, checked at ${now.toISOString()} by this machine's clock, ${roughly(now.getTime() - notAfter.getTime())} later): ${renew}, or this machine's clock is that far ahead: ${SET_CLOCK}`);
    }
    return make('CERT_EXPIRED', `${target} presented a certificate outside its validity (${authorizationError}, checked at ${now.toISOString()} by this machine's clock): ${renew}, or a clock is wrong`);
  }
  // Refused for its purpose: most often a certificate of this very root made for the other end of TLS.
  if (authorizationError === WRONG_PURPOSE) {
    return make('UNTRUSTED_PEER', `${target} presented a certificate not made for a TLS server (INVALID_PURPOSE: its extended key usage lacks serverAuth): a role credential, or a certificate issued for TLS clients only, is no server's: check that --server names a key-server or simpleserver`);
  }
  if (authorizationError) {
    return make('UNTRUSTED_PEER', `${target} presented a certificate not issued under the trusted root (${authorizationError}): it is not of this policy domain, or one side has the other policy certificate (after the policy key was replaced: README "Replacing the policy key")`);
  }
  if (code !== undefined && CERT_ALERT.test(code)) {
    return make('UNTRUSTED_PEER', `${target} refused our TLS certificate (${code.replace(/^ERR_SSL_/, '').toLowerCase()})`);
  }
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return make('UNTRUSTED_PEER', `${target} presented no certificate`);
  if (code !== undefined && VERSION_FAILURE.test(code)) {
    const plain = code === 'ERR_SSL_WRONG_VERSION_NUMBER' ? ': what answered is no TLS server (a simpleserver --plain, to which only init-trust --plain speaks, or another service on that port)' : '';
    return make('UNSUPPORTED', `${target} does not speak TLS 1.3 (${code})${plain}`);
  }
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return make('TIMEOUT', `TLS handshake with ${target} timed out`);
  if (code !== undefined && UNREACHABLE_ERRNOS.has(code)) {
    const why = code === 'ECONNREFUSED' ? 'connection refused (nothing listens there: check the address, and that the server runs)'
      : code === 'ENOTFOUND' || code.startsWith('EAI_') ? unresolved(code, (e as { hostname?: unknown }).hostname)
      : IN_WORDS[code] ?? detail;
    return make('UNREACHABLE', `cannot reach ${target}: ${why}`);
  }
  if (code !== undefined && code.startsWith('ERR_SSL_')) return make('UNREACHABLE', `TLS with ${target} failed: ${code}`);
  return make('UNREACHABLE', `connection to ${target} failed: ${detail}`);
}

export function timeoutError(what: string, target: string, ms: number): CertifierError {
  return new CertifierError('TIMEOUT', `${what} ${target} timed out after ${ms} ms`, { details: { target, timeoutMs: ms } });
}

/**
 * The connection's wait ran out before `host`, a name, was looked up: no name server answered (at
 * a first boot, often the network or DNS not up yet), and no server was asked; details.lookup says
 * so. (The resolver's call, which cannot be called off, still holds the process, even in exit, until
 * the resolver gives up: /etc/resolv.conf's timeout, 5 s, times its attempts, 2.)
 */
export function lookupTimeoutError(host: string, target: string, ms: number): CertifierError {
  return new CertifierError('TIMEOUT', `looking up the name ${host} (of ${target}) timed out after ${ms} ms`, { details: { target, timeoutMs: ms, lookup: true } });
}

/** The log-safe summary of an error: its stable code, never its payload. */
export function logCode(e: unknown): string {
  if (e instanceof CertifierError) return e.code;
  return errnoOf(e) ?? (e instanceof Error ? e.name : 'UNKNOWN');
}

/**
 * Why a server cannot listen on host:port. A port another process holds, or one this process may
 * not take (below 1024 without CAP_NET_BIND_SERVICE), is a resource the machine withholds, not bad
 * input, and has a code saying which; any other failure (an address not this machine's, a name not
 * resolved) is the address given.
 */
export function listenError(e: unknown, host: string, port: number): CertifierError {
  const errno = errnoOf(e);
  const [code, why]: [ErrorCode, string] = errno === 'EADDRINUSE' ? ['ADDRESS_IN_USE', 'address already in use: another process holds that port (stop it, or give --listen another port)']
    : errno === 'EACCES' ? ['ADDRESS_NOT_PERMITTED', `permission denied${port > 0 && port < 1024 ? ' (a port below 1024 needs root or CAP_NET_BIND_SERVICE)' : ''}`]
    : errno === 'ENOTFOUND' ? ['INVALID_INPUT', `the name ${host} is not resolved (listen on an address of this machine)`]
    : errno === 'EADDRNOTAVAIL' ? ['INVALID_INPUT', `${host} is not an address of this machine (listen on one of its own, or 0.0.0.0 for all of them)`]
    : ['INVALID_INPUT', (e as Error).message];
  return new CertifierError(code, `cannot listen on ${hostPort(host, port)}: ${why}`, { cause: e });
}

// TLS settings shared by both ends, the peer chain as DER, and the keying-material exporter.
// One place pins TLS 1.3 and the single trust anchor, so the server and client cannot drift.

import { KeyObject } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate, SecureContextOptions, TLSSocket } from 'node:tls';
import { CertifierError } from '../errors/index.ts';

/** Options every socket of ours gets: TLS 1.3 only, and `ca` replaces the system roots. */
export function baseTlsOptions(ca: string, key?: KeyObject | string, cert?: string): SecureContextOptions {
  if (typeof ca !== 'string' || !ca.includes('-----BEGIN CERTIFICATE-----')) {
    throw new CertifierError('INVALID_INPUT', 'the TLS trust anchor (ca) must be a PEM certificate');
  }
  const options: SecureContextOptions = { ca, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' };
  if (key !== undefined || cert !== undefined) {
    if (key === undefined || cert === undefined) throw new CertifierError('INVALID_INPUT', 'a TLS identity needs both key and cert');
    // Older Node versions accept only PEM or DER here, not a KeyObject.
    options.key = key instanceof KeyObject ? (key.export({ type: 'pkcs8', format: 'pem' }) as string) : key;
    options.cert = cert;
  }
  return options;
}

/** The DER of a peer-certificate object and its issuers, leaf first, each once (at most 16). */
export function chainOf(cert: PeerCertificate | undefined): Uint8Array[] {
  const chain: Uint8Array[] = [];
  let c: PeerCertificate | undefined = cert;
  while (c?.raw && chain.length < 16) {
    const der = new Uint8Array(c.raw);
    // A self-signed root is given as its own issuer: stop at the first repeat.
    if (chain.some((d) => Buffer.compare(d, der) === 0)) break;
    chain.push(der);
    c = (c as DetailedPeerCertificate).issuerCertificate;
  }
  return chain;
}

/**
 * The peer's leaf certificate, as the chain verifyPeer judges: the only other certificate an
 * admission chain may hold is the pinned root, which the verifier has already. Read through
 * getPeerCertificate(false) (about 0.15 ms here under OpenSSL 3), not getPeerX509Certificate
 * (about 0.35 ms: it copies the certificate, decoding its public key again). Call it once per
 * socket: on Node 20 the getPeer*Certificate calls can empty the session's chain as they read it.
 */
export function peerChain(socket: TLSSocket): Uint8Array[] {
  const leaf = socket.getPeerCertificate(false) as PeerCertificate | Record<string, never>;
  return leaf.raw ? [new Uint8Array(leaf.raw)] : [];
}

/**
 * Runs a verifyPeer callback. It must be synchronous: an async one would hand back a promise
 * whose rejection nobody awaits, and the peer would be let in. So a promise is a refusal.
 */
export function runVerifyPeer<P>(verify: (chain: Uint8Array[]) => P, socket: TLSSocket, chain?: Uint8Array[]): P {
  const peer = verify(chain ?? peerChain(socket));
  if (typeof (peer as { then?: unknown } | null)?.then === 'function') {
    (peer as unknown as Promise<unknown>).catch(() => {});
    throw new CertifierError('INTERNAL', 'verifyPeer returned a promise; it must decide synchronously');
  }
  return peer;
}

/** Checks the arguments of an exporter call the same way on both ends. */
function checkExporterArgs(label: string, length: number): void {
  if (typeof label !== 'string' || label.length === 0) throw new CertifierError('INVALID_INPUT', 'exporter label must be a non-empty string');
  if (!Number.isInteger(length) || length < 1 || length > 16 * 1024) {
    throw new CertifierError('INVALID_INPUT', 'exporter length must be between 1 and 16384 bytes');
  }
}

/**
 * RFC 8446 section 7.5 exporter with an empty context (in TLS 1.3 "no context" and "empty
 * context" give the same value). Undefined for plain TCP.
 */
export function exporterFor(socket: TLSSocket | undefined): (label: string, length: number) => Uint8Array | undefined {
  return (label, length) => {
    checkExporterArgs(label, length);
    if (socket === undefined) return undefined;
    if (socket.destroyed) throw new CertifierError('UNREACHABLE', 'the connection is closed; its keying material is gone');
    return new Uint8Array(socket.exportKeyingMaterial(length, label, Buffer.alloc(0)));
  };
}

/** `host:port` as --server and --listen take it: an IPv6 address in brackets, `[::1]:8120`. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** `host:port` of the remote end, for logs. */
export function remoteOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return hostPort(socket.remoteAddress ?? 'unknown', socket.remotePort ?? 0);
}

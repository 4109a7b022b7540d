// key-client check: the connection every key-client command opens (mutual TLS, the key-server
// checked as for a request), held until the server has accepted this machine's certificate, and
// closed with no request sent: no key is asked for, so the server decides about none.

import type { ValidatedPeer } from '../pki/index.ts';
import { KeyClient, type KeyClientOptions } from './client.ts';

export interface ServerCheck {
  /** The key-server as verified: its measurement, platform, serial and dates. */
  server: ValidatedPeer;
  /** This machine's own admission certificate, which the server accepted. */
  own: ValidatedPeer;
  /**
   * From the first TCP packet to the server's acceptance of our certificate, in milliseconds, on
   * the connection accepted: a second try's own, without the first and the pause before it.
   */
  handshakeMs: number;
  /** 2 when the first connection ended as a refusal does and the second was accepted (second-try.ts). */
  attempts: 1 | 2;
}

/**
 * Connects as a request would, waits for the server's verdict on this machine's certificate, and
 * closes. Fails as a request would on the same fault: UNREACHABLE or TIMEOUT (the server down or
 * silent), UNTRUSTED_PEER (its certificate or measurement, or ours refused), CERT_EXPIRED.
 */
export async function checkServer(o: Omit<KeyClientOptions, 'credential'>): Promise<ServerCheck> {
  const client = await KeyClient.connect(o);
  try {
    await client.accepted();
    const { attempt, at } = client.opened; // the connection accepted, once it is
    return { server: client.server, own: o.identity.peer, handshakeMs: performance.now() - at, attempts: attempt };
  } finally {
    await client.close().catch(() => {});
  }
}


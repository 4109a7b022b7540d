// The sockets under the pg driver's connections, made here (its `stream` option) so that closing
// is bounded. The driver ends a connection by sending Terminate and waiting for the database to
// close the socket, which a frozen database, or one across a network partition, never does: the
// open socket kept a stopped key-server alive for ever after it said "stopped" (and its --data
// locked). Past a short grace, the sockets still open are destroyed.
//
// The driver has no limit on the size of a message: it reads each one whole, up to 4 GiB (its
// length field). boundMessages() reads the length of each message the database sends and cuts the
// connection at one longer than any key-server asks for, before its body is read.

import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Client } from 'pg';
import { CertifierError } from '../errors/index.ts';
import { within } from '../util/within.ts';

/** How long an orderly close of the database's connections is given before they are cut. */
export const CLOSE_GRACE_MS = 2_000;

export class PgSockets {
  private readonly live = new Set<Socket>();

  /** The driver's `stream` option: a new socket, tracked until it closes. */
  readonly make = (): Socket => {
    const s = new Socket();
    this.live.add(s);
    s.once('close', () => this.live.delete(s));
    return s;
  };

  /**
   * Runs `end` (the driver's orderly close) and waits for every socket to close, for at most
   * `graceMs`; then destroys those still open, which ends whatever waited on them.
   */
  async endWithin(end: () => Promise<unknown>, graceMs = CLOSE_GRACE_MS): Promise<void> {
    const ended = end().catch(() => {}).then(() => Promise.all([...this.live].map((s) => new Promise((r) => s.once('close', r)))));
    if (await within(ended, graceMs)) return;
    for (const s of this.live) s.destroy();
    await ended;
  }
}

/**
 * Cuts `client`'s connection, failing what it waits for with INTEGRITY, at a message from the
 * database longer than `maxBytes`, once its header says so. Call before connecting. The messages
 * read are the protocol's, under TLS when the connection has it (the raw socket then carries the
 * TLS negotiation and records, which this does not read).
 */
export function boundMessages(client: Client, maxBytes: number): void {
  const connection = client.connection as Client['connection'] & { ssl?: unknown };
  const watch = (stream: Duplex) => {
    const header = Buffer.alloc(5);
    let filled = 0;
    let skip = 0;
    stream.on('data', (chunk: Buffer) => {
      for (let i = 0; i < chunk.length;) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - i);
          skip -= n;
          i += n;
          continue;
        }
        const n = Math.min(header.length - filled, chunk.length - i);
        chunk.copy(header, filled, i, i + n);
        filled += n;
        i += n;
        if (filled < header.length) return;
        filled = 0;
        // The length counts itself (4 bytes), not the type byte.
        const length = header.readUInt32BE(1);
        if (1 + length > maxBytes) {
          stream.destroy(new CertifierError('INTEGRITY', `the key database sent a message of ${1 + length} bytes, more than the ${maxBytes} of any answer key-server asks for: the connection was cut before it was read (a compromised or misconfigured database, or a trigger or rule added to key-server's tables?)`, { details: { storage: 'postgres' } }));
          return;
        }
        skip = Math.max(0, length - 4);
      }
    });
  };
  if (connection.ssl) connection.once('sslconnect', () => watch(connection.stream));
  else watch(connection.stream);
}

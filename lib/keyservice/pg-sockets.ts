// The sockets under the pg driver's connections, made here (its `stream` option) so that closing
// is bounded. The driver ends a connection by sending Terminate and waiting for the database to
// close the socket, which a frozen database, or one across a network partition, never does: the
// open socket kept a stopped key-server alive for ever after it said "stopped" (and its --data
// locked). Past a short grace, the sockets still open are destroyed.
//
// The driver has no limit on the size of a message: it reads each one whole, up to 4 GiB (its
// length field), nor on how many rows an answer holds, or results (one per statement, as many
// as the database says there were): it keeps them all. boundMessages() reads the header of each
// message the database sends and cuts the connection at one longer than any key-server asks for,
// before its body is read, or at a row or result past the most the query asks for (expectRows),
// before the driver keeps it, or at one the driver would answer though key-server asked for none.

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

/** What a query asks for when nothing else is said (expectRows): one row at most, of one statement. */
const ONE = 1;
/** Each bounded client's most rows and statements for its next query (expectRows), until that query's ReadyForQuery. */
const rowBounds = new WeakMap<object, { rows: number; statements: number }>();

/**
 * Says that the next query sent on `client` is answered with at most `rows` rows in all (its
 * statements together), and the results of at most `statements` statements; past them the
 * connection is cut (boundMessages). Call just before sending it, the one before answered: each
 * ReadyForQuery puts the bound back to one row of one statement. Does nothing for a client that
 * boundMessages does not watch.
 */
export function expectRows(client: object, rows: number, statements = ONE): void {
  const bound = rowBounds.get(client);
  if (bound) Object.assign(bound, { rows, statements });
}

const TYPE_DATA_ROW = 0x44; // 'D'
/** 'C': a statement's end, after which the driver starts (and keeps) another result. */
const TYPE_COMMAND_COMPLETE = 0x43;
const TYPE_READY = 0x5a; // 'Z': the end of a query's answer
/**
 * Messages that answer no query key-server sends (it never asks for a portal's rows in parts, nor
 * COPYs), to each of which the driver replies with one of its own: PortalSuspended ('s') with
 * another Execute, CopyInResponse ('G') with a CopyFail. Sent by a database that does not read
 * its side, those replies would pile up in the replica's memory.
 */
const UNASKED = new Map([[0x73, 'PortalSuspended'], [0x47, 'CopyInResponse']]);

/**
 * Cuts `client`'s connection, failing what it waits for with INTEGRITY, at a message from the
 * database longer than `maxBytes`, once its header says so, at a row or a statement's result
 * past the most the query it answers asks for (expectRows; one unless said), or at a message that
 * answers no query key-server sends (UNASKED). Call before connecting. The messages read are the
 * protocol's, under TLS when the connection has it (the raw socket then carries the TLS
 * negotiation and records, which this does not read).
 *
 * It reads each chunk before the driver does (in the stream's emit of it), and hands the driver
 * only what came before the message it cuts at: a listener beside the driver's saw a chunk
 * together with it, and an answer whose last row and end came in the chunk that held the row too
 * many was taken whole before the connection's error arrived.
 */
export function boundMessages(client: Client, maxBytes: number): void {
  const connection = client.connection as Client['connection'] & { ssl?: unknown };
  const bound = { rows: ONE, statements: ONE };
  rowBounds.set(client, bound);
  const watch = (stream: Duplex) => {
    const header = Buffer.alloc(5);
    let filled = 0;
    let skip = 0;
    let rows = 0;
    let results = 0;
    /** Where in `chunk` the first message to cut at starts, and why; undefined when there is none. */
    const read = (chunk: Buffer): { at: number; why: string } | undefined => {
      for (let i = 0; i < chunk.length;) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - i);
          skip -= n;
          i += n;
          continue;
        }
        const at = i - filled; // negative: the header began in an earlier chunk
        const n = Math.min(header.length - filled, chunk.length - i);
        chunk.copy(header, filled, i, i + n);
        filled += n;
        i += n;
        if (filled < header.length) return undefined;
        filled = 0;
        // The length counts itself (4 bytes), not the type byte.
        const length = header.readUInt32BE(1);
        if (1 + length > maxBytes) return { at, why: `sent a message of ${1 + length} bytes, more than the ${maxBytes} of any answer key-server asks for` };
        const unasked = UNASKED.get(header[0]!);
        if (unasked) return { at, why: `sent a message of type '${String.fromCharCode(header[0]!)}' (${unasked}), which answers no query key-server sends` };
        if (header[0] === TYPE_DATA_ROW && ++rows > bound.rows) return { at, why: `answered a query with more rows than the ${bound.rows} key-server asks for` };
        if (header[0] === TYPE_COMMAND_COMPLETE && ++results > bound.statements) {
          return { at, why: `answered a query with more results than the ${bound.statements} statement${bound.statements === 1 ? '' : 's'} key-server sends` };
        }
        if (header[0] === TYPE_READY) {
          rows = 0;
          results = 0;
          Object.assign(bound, { rows: ONE, statements: ONE });
        }
        skip = Math.max(0, length - 4);
      }
      return undefined;
    };
    const emit = stream.emit;
    const cutOff = (why: string, cause?: unknown): false => {
      stream.destroy(new CertifierError('INTEGRITY', `the key database ${why}: the connection was cut before it was read (a compromised or misconfigured database, or a trigger or rule added to key-server's tables?)`, { cause, details: { storage: 'postgres' } }));
      return false;
    };
    // The driver parses what it is handed in this emit: a message shorter than what it announces
    // (a DataRow of more fields than it holds) threw from the socket's 'data' handler, where
    // nothing catches it, and ended the key-server. Such a message ends the connection instead.
    const handOn = (self: Duplex, chunk: Buffer): boolean => {
      try {
        return emit.call(self, 'data', chunk);
      } catch (e) {
        return cutOff('sent a message the driver cannot read', e);
      }
    };
    stream.emit = function (this: Duplex, event: string | symbol, ...args: unknown[]): boolean {
      if (event !== 'data') return emit.call(this, event, ...args);
      const cut = read(args[0] as Buffer);
      if (!cut) return handOn(this, args[0] as Buffer);
      if (cut.at > 0) handOn(this, (args[0] as Buffer).subarray(0, cut.at));
      return cutOff(cut.why); // a second destroy (the part before threw) changes nothing
    } as Duplex['emit'];
  };
  if (connection.ssl) connection.once('sslconnect', () => watch(connection.stream));
  else watch(connection.stream);
}

// The sockets under the pg driver's connections, made here (its `stream` option) so that closing
// is bounded. The driver ends a connection by sending Terminate and waiting for the database to
// close the socket, which a frozen database, or one across a network partition, never does: the
// open socket kept a stopped key-server alive for ever after it said "stopped" (and its --data
// locked). Past a short grace, the sockets still open are destroyed.

import { Socket } from 'node:net';

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
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([ended.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
    clearTimeout(timer);
    if (!late) return;
    for (const s of this.live) s.destroy();
    await ended;
  }
}

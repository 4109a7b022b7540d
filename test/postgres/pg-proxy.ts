// A loopback TCP proxy between the pg driver and a real PostgreSQL that hands each message the
// database sends to `rewrite`, with the text of the query it answers: a database answering with
// crafted messages (more rows than a query asks for), without a protocol of our own to serve.
// No TLS: the driver's messages are read as they are sent.

import { createServer, connect, type Server, type Socket } from 'node:net';

/** A message of the database's to forward as it is, or replaced (by none, or by several). */
export type Rewrite = (query: string, type: string, message: Buffer) => Buffer[] | undefined;

/** One protocol message: its type byte, the length (itself included), the body. */
export function pgMessage(type: string, body: Buffer): Buffer {
  const m = Buffer.alloc(5 + body.length);
  m.write(type, 0, 'latin1');
  m.writeUInt32BE(4 + body.length, 1);
  body.copy(m, 5);
  return m;
}

/** Splits `buffered` into whole messages (the first `untyped` have no type byte); returns what is left. */
function split(buffered: Buffer, untyped: () => boolean, each: (type: string, message: Buffer) => void): Buffer {
  let at = 0;
  for (;;) {
    const typed = !untyped();
    const head = typed ? 5 : 4;
    if (buffered.length - at < head) break;
    const end = at + (typed ? 1 : 0) + buffered.readUInt32BE(at + (typed ? 1 : 0));
    if (end > buffered.length) break;
    each(typed ? String.fromCharCode(buffered[at]!) : '', buffered.subarray(at, end));
    at = end;
  }
  return buffered.subarray(at);
}

export class PgProxy {
  private readonly pairs = new Set<Socket>();

  private constructor(private readonly server: Server, readonly port: number) {}

  /** Listens on a free 127.0.0.1 port, forwarding to `target` (a port there) through `rewrite`. */
  static async start(target: number, rewrite: Rewrite): Promise<PgProxy> {
    const server = createServer();
    const proxy = await new Promise<PgProxy>((resolve) => server.listen(0, '127.0.0.1', () => resolve(new PgProxy(server, (server.address() as { port: number }).port))));
    server.on('connection', (client) => proxy.pipe(client, target, rewrite));
    return proxy;
  }

  /** `url` (of the real server) through this proxy. */
  url(url: string): string {
    return url.replace(/@127\.0\.0\.1:\d+\//, `@127.0.0.1:${this.port}/`);
  }

  async close(): Promise<void> {
    for (const s of this.pairs) s.destroy();
    await new Promise((r) => this.server.close(r));
  }

  private pipe(client: Socket, target: number, rewrite: Rewrite): void {
    const db = connect(target, '127.0.0.1');
    for (const s of [client, db]) {
      this.pairs.add(s);
      s.on('error', () => {});
      s.once('close', () => {
        this.pairs.delete(s);
        client.destroy();
        db.destroy();
      });
    }
    // The queries sent, each answered up to its ReadyForQuery: a simple query's text, or an extended one's Parse.
    const asked: string[] = [];
    let started = false;
    let fromClient: Buffer = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      fromClient = split(Buffer.concat([fromClient, chunk]), () => !started, (type, m) => {
        started = true;
        if (type === 'Q') asked.push(m.toString('utf8', 5, m.indexOf(0, 5)));
        if (type === 'P') {
          const text = m.indexOf(0, 5) + 1;
          asked.push(m.toString('utf8', text, m.indexOf(0, text)));
        }
        db.write(m);
      });
    });
    let fromDb: Buffer = Buffer.alloc(0);
    db.on('data', (chunk: Buffer) => {
      fromDb = split(Buffer.concat([fromDb, chunk]), () => false, (type, m) => {
        const query = asked[0] ?? '';
        if (type === 'Z') asked.shift();
        for (const out of rewrite(query, type, m) ?? [m]) client.write(out);
      });
    });
  }
}

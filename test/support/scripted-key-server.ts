// A stand-in key-server for tests of what key-client does with a slow or hostile one: a bare TLS
// listener on 127.0.0.1 presenting a key-server's admission certificate of the domain, handing
// each request to a script as it comes, which answers as it likes (late, never, by halves).

import net from 'node:net';
import tls from 'node:tls';
import type { MachineIdentity } from '../../lib/certifier/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { encodeFrame, FrameDecoder } from '../../lib/wire/index.ts';
import { parseKeyRequest, type KeyRequest } from '../../lib/keyservice/protocol.ts';

/** What the server does with each request as it comes; `answer` writes one answer on its connection. */
export type Script = (req: KeyRequest, answer: (body: Uint8Array) => void, socket: tls.TLSSocket) => void;

export interface ScriptedKeyServer {
  port: number;
  /** The script each request is handed to: set by each test. */
  script: Script;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 (port 0) as `identity`, trusting clients of `policyCert`'s domain. */
export async function scriptedKeyServer(identity: MachineIdentity, policyCert: Uint8Array): Promise<ScriptedKeyServer> {
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ key: identity.key.export({ type: 'pkcs8', format: 'pem' }), cert: toPem(identity.certificate), ca: toPem(policyCert), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (socket) => {
    const frames = new FrameDecoder();
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      for (const frame of frames.read(chunk).frames) scripted.script(parseKeyRequest(frame), (body) => void (socket.writable && socket.write(encodeFrame(body))), socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const scripted: ScriptedKeyServer = {
    port: (server.address() as { port: number }).port,
    script: () => {},
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
  return scripted;
}

/**
 * Resets `socket`'s TCP connection (RST), as the kernel does for a process killed with bytes
 * unread: a TLS socket has no resetAndDestroy of its own, its TCP socket (Node's _parent) has.
 */
export function reset(socket: tls.TLSSocket): void {
  const tcp = (socket as unknown as { _parent?: net.Socket })._parent;
  if (!tcp) throw new TypeError('no TCP socket under this TLS socket');
  tcp.resetAndDestroy();
  socket.destroy();
}

/** A proxy in front of a server whose first connection hides the server's acceptance (ticketlessProxy). */
export interface TicketlessProxy {
  port: number;
  /** Ends the first connection towards the client cleanly (a FIN), nothing more said to it. */
  endFirst(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 to `port` that passes every connection through untouched but the
 * first, on which it passes nothing more of the server's once the client has sent its finished
 * handshake (its first encrypted record): the session tickets, the server's acceptance, never
 * arrive, so the client's requests go only after it stops waiting for them, and a close then
 * (endFirst) looks like the close of a server refusing the client's certificate after reading
 * what it sent, as a server of another make might close a connection it read a request on.
 */
export async function ticketlessProxy(port: number): Promise<TicketlessProxy> {
  const sockets = new Set<net.Socket>();
  let first: net.Socket | undefined;
  let n = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) (sockets.add(s), s.on('error', () => {}), s.on('close', () => sockets.delete(s)));
    const muted = ++n === 1;
    if (muted) first = client;
    let finished = false;
    let pending = Buffer.alloc(0); // the client's bytes, read record by record (5-byte headers)
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      if (!muted || finished) return;
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5) {
        if (pending[0] === 0x17) return void (finished = true); // application data: the encrypted handshake
        pending = pending.subarray(5 + pending.readUInt16BE(3));
      }
    });
    upstream.on('data', (chunk: Buffer) => void (!finished && client.write(chunk)));
    client.on('end', () => upstream.end());
    upstream.on('end', () => void (!muted && client.end()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    endFirst: () => void first?.end(),
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

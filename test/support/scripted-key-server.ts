// A stand-in key-server for tests of what key-client does with a slow or hostile one: a bare TLS
// listener on 127.0.0.1 presenting a key-server's admission certificate of the domain, handing
// each request to a script as it comes, which answers as it likes (late, never, by halves).

import type net from 'node:net';
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

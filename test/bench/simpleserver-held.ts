// What unverified connections make a real `simpleserver serve` hold: it starts (with the original
// tools' policy key, certificate and policy), N connections each send the first bytes of a frame
// of B bytes and stop one byte short, and its RSS is read before and after (/proc/<pid>/status).
// Not part of `npm run bench`; run by hand, on loopback, e.g. 256 TLS connections at the limit:
//   node --import ./test/support/tsx.mjs test/bench/simpleserver-held.ts tls 256 65536
// Connections come from 127.0.0.2 on, 60 to an address (simpleserver takes 64 from one). The
// server is stopped by its pid.

import { spawn } from 'node:child_process';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { ROOT } from '../support/helpers.ts';
import { readRss } from './keyserver-memory.ts';

const [transport = 'tls', connections = '256', frameBytes = String(64 * 1024)] = process.argv.slice(2);
const n = Number(connections);
const bytes = Number(frameBytes);
const vector = (f: string) => join(ROOT, 'test', 'vectors', 'certifier-original', f);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const child = spawn(process.execPath, [join(ROOT, 'cmd', 'bin', 'simpleserver.js'), 'serve', ...(transport === 'plain' ? ['--plain'] : []),
  '--policy-key', vector('policy_key_file'), '--policy-cert', vector('policy_cert_file.datica'), '--policy', vector('policy.bin'), '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
child.stderr.resume();
const port = await new Promise<number>((resolve, reject) => {
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8');
    const m = /^listening \S+:(\d+)$/m.exec(out);
    if (m) resolve(Number(m[1]));
  });
  child.once('exit', () => reject(new Error('simpleserver exited before it listened')));
});
try {
  await sleep(1500);
  const idle = readRss(child.pid!);
  const header = Buffer.alloc(4);
  header.writeUInt32LE(bytes);
  const body = Buffer.alloc(bytes - 1, 0x41);
  const sockets: Socket[] = [];
  await Promise.race([sleep(8000), Promise.all(Array.from({ length: n }, (_, i) => new Promise<void>((resolve) => {
    const localAddress = `127.0.0.${2 + Math.floor(i / 60)}`;
    const raw = net.connect({ host: '127.0.0.1', port, localAddress });
    const s = transport === 'plain' ? raw : tls.connect({ socket: raw, rejectUnauthorized: false });
    sockets.push(s);
    s.on('error', () => resolve());
    s.once(transport === 'plain' ? 'connect' : 'secureConnect', () => s.write(Buffer.concat([header, body]), () => resolve()));
  })))]);
  await sleep(1500);
  const held = readRss(child.pid!);
  for (const s of sockets) s.destroy();
  const mib = (kib: number) => Math.round(kib / 102.4) / 10;
  process.stdout.write(`${JSON.stringify({ transport, connections: n, frameBytes: bytes, idleMiB: mib(idle.rssKiB), heldMiB: mib(held.rssKiB), perConnectionKiB: Math.round((held.rssKiB - idle.rssKiB) / n) })}\n`);
} finally {
  child.kill('SIGTERM');
}

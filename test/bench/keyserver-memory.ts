// Resident memory of real `key-server serve` children, started together and read from
// /proc/<pid>/status after the same pause: "idle" left with an empty database (the baseline),
// "loaded" given N distinct names through KeyClient, and "busy" given as many requests on a
// single name, so that what N names cost is told apart from what serving N requests leaves behind
// (a grown V8 heap, allocator caches). The identity is built in-process (domain.ts: an admission
// certificate in a cryptstore opened with --key-file) and the real program started from cmd/bin,
// so what is measured is what an operator runs, tsx loader included.
// Each child is stopped by its pid (SIGTERM, SIGKILL if it lingers).

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIMULATED_ENCLAVE } from '../../lib/attest/index.ts';
import { randomBytes, sha256, utf8 } from '../../lib/crypto/index.ts';
import { KeyClient, type KeyClientOptions } from '../../lib/keyclient/index.ts';
import { certifiedStore, issueLeaf, machineIdentity, type BenchDomain } from './domain.ts';

const KEY_SERVER = fileURLToPath(new URL('../../cmd/bin/key-server.js', import.meta.url));
/** Parallel connections storing the names, each with this many requests in flight. */
const CONNECTIONS = 16;
const IN_FLIGHT = 8;

/** The memory lines of /proc/<pid>/status, in KiB. */
export interface Rss {
  rssKiB: number;
  anonKiB: number;
  fileKiB: number;
  peakKiB: number;
}

export function readRss(pid: number): Rss {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
    if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { rssKiB: kib('VmRSS'), anonKiB: kib('RssAnon'), fileKiB: kib('RssFile'), peakKiB: kib('VmHWM') };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// Children still running if the run ends abruptly (a crash, Ctrl-C): killed by pid on the way out.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

/** A started key-server: its port, and a stop that waits for the exit. */
export interface Child {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/** Starts `key-server serve ARGS` from cmd/bin (its log read and dropped but for the end), resolved once it listens. */
export function spawnKeyServer(args: string[], cwd: string): Promise<Child> {
  const env = { ...process.env };
  delete env.CRYPTSTORE_PASSPHRASE;
  const proc: ChildProcess = spawn(process.execPath, [KEY_SERVER, 'serve', ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  // It logs a line per request to stderr: read it all (a full pipe would block the server), keep the end.
  let err = '';
  let out = '';
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString('utf8')).slice(-4000)));
  live.add(proc);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => {
    live.delete(proc);
    resolve();
  }));
  const running = () => proc.exitCode === null && proc.signalCode === null;
  const stop = async () => {
    if (proc.pid === undefined || !running()) return;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => running() && proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => void stop().then(() => reject(new Error(`key-server did not listen within 30 s:\n${err}`))), 30_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const m = /^listening \S+:(\d+)$/m.exec(out);
      if (!m) return;
      clearTimeout(timer);
      resolve({ pid: proc.pid!, port: Number(m[1]), stop });
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`key-server exited before listening:\n${err}`));
    });
    proc.once('error', (e) => {
      clearTimeout(timer);
      live.delete(proc);
      reject(e);
    });
  });
}

export interface MemoryResult {
  idle: Rss;
  /** After as many requests as `loaded`, all on one name. */
  busy: Rss;
  loaded: Rss;
  connections: number;
  storesPerSecond: number;
  /** The children's pids, all stopped (and waited for) by the time this returns. */
  pids: number[];
  detail: string;
}

/** Runs op(client, i) for i < n over CONNECTIONS connections, IN_FLIGHT requests each. */
async function drive(options: KeyClientOptions, n: number, op: (client: KeyClient, i: number) => Promise<void>): Promise<void> {
  await Promise.all(Array.from({ length: CONNECTIONS }, async (_, c) => {
    const client = await KeyClient.connect(options);
    try {
      // Connection c takes i = c, c + CONNECTIONS, ...: at most ceil(n / CONNECTIONS) requests,
      // under the server's default limit of 1000 per connection for 10,000 names.
      let next = c;
      await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
        for (let i = next; i < n; i = next) {
          next += CONNECTIONS;
          await op(client, i);
        }
      }));
    } finally {
      await client.close();
    }
  }));
}

/** pauseMs: the time without requests after the load, before RSS is read. */
export async function measureKeyServerMemory(o: { domain: BenchDomain; dir: string; names: number; pauseMs: number; log: (m: string) => void }): Promise<MemoryResult> {
  const d = o.domain;
  const ksMeasurement = sha256(utf8('the key-server program whose memory is measured'));
  const [serverLeaf, clientLeaf] = await Promise.all([
    issueLeaf(d, { measurement: ksMeasurement, platform: SIMULATED_ENCLAVE }),
    issueLeaf(d, { measurement: sha256(utf8('the provisioning key-client')), platform: SIMULATED_ENCLAVE }),
  ]);
  const policyFile = join(o.dir, 'policy-cert.pem');
  writeFileSync(policyFile, d.policyPem);
  const kinds = ['idle', 'busy', 'loaded'] as const;
  // A store each: a child holds its cryptstore's LevelDB lock for as long as it runs.
  for (const k of kinds) await (await certifiedStore(d, serverLeaf, join(o.dir, `${k}-store`), join(o.dir, `${k}-store.key`))).close();
  const args = (k: string) => [
    '--domain', d.name, '--policy-cert', policyFile, '--data', join(o.dir, `${k}-data`), '--listen', '127.0.0.1:0',
    '--store', join(o.dir, `${k}-store`), '--key-file', join(o.dir, `${k}-store.key`),
  ];

  const children: Child[] = [];
  try {
    // Started together, so all have been up as long when they are measured.
    const settled = await Promise.allSettled(kinds.map((k) => spawnKeyServer(args(k), o.dir)));
    for (const s of settled) if (s.status === 'fulfilled') children.push(s.value);
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
    const [idle, busy, loaded] = children as [Child, Child, Child];
    const before = { idle: readRss(idle.pid), busy: readRss(busy.pid), loaded: readRss(loaded.pid) };

    const identity = machineIdentity(d, clientLeaf);
    const pins = [Buffer.from(ksMeasurement).toString('hex')];
    const options = (c: Child): KeyClientOptions => ({ host: '127.0.0.1', port: c.port, identity, policyCert: d.policyCert, serverMeasurements: pins });
    const values = Array.from({ length: o.names }, () => randomBytes(32));
    const nameOf = (i: number) => `bench/vm-${String(i).padStart(6, '0')}/disk-key`;
    o.log(`storing ${o.names} names in one child, as many retrieves of one name in another, ${CONNECTIONS} connections each`);
    const first = await KeyClient.connect(options(busy));
    await first.store(nameOf(0), values[0]!).finally(() => first.close());
    let storesPerSecond = 0;
    await Promise.all([
      (async () => {
        const t0 = process.hrtime.bigint();
        await drive(options(loaded), o.names, async (client, i) => {
          const version = await client.store(nameOf(i), values[i]!);
          if (version !== 1) throw new Error(`${nameOf(i)} was stored as version ${version}, not 1`);
        });
        storesPerSecond = o.names / (Number(process.hrtime.bigint() - t0) / 1e9);
      })(),
      drive(options(busy), o.names - 1, async (client) => {
        if ((await client.retrieve(nameOf(0))).blob.length !== 32) throw new Error('the busy key-server returned another value');
      }),
    ]);
    // A pause for the collections that follow a burst. V8's memory reducer, which shrinks the heap
    // grown under load, comes 5 s to more than 25 s after a process goes quiet (it did not come at
    // all in some runs here), too late and too unevenly to wait for: "busy" is the control instead.
    await sleep(o.pauseMs);
    const after = { idle: readRss(idle.pid), busy: readRss(busy.pid), loaded: readRss(loaded.pid) };

    // Afterwards (so it cannot disturb the reading): the names really are there.
    const check = await KeyClient.connect(options(loaded));
    try {
      const i = o.names >> 1;
      if (Buffer.compare((await check.retrieve(nameOf(i))).blob, values[i]!) !== 0) throw new Error(`${nameOf(i)} came back different`);
    } finally {
      await check.close();
    }
    const m = (kib: number) => (kib / 1024).toFixed(1);
    const show = (k: (typeof kinds)[number]) =>
      `${k} ${m(before[k].rssKiB)} -> ${m(after[k].rssKiB)} (anon ${m(before[k].anonKiB)} -> ${m(after[k].anonKiB)}, file ${m(after[k].fileKiB)}, peak ${m(after[k].peakKiB)})`;
    return { ...after, connections: CONNECTIONS, storesPerSecond, pids: children.map((c) => c.pid), detail: kinds.map(show).join('; ') };
  } finally {
    for (const c of children) await c.stop();
  }
}

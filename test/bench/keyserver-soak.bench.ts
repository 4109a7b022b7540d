// The soak: one real `key-server serve` child (LevelDB, an ACL, its audit log rotated and the
// segments archived as an operator would) under a steady mixed load for --minutes N, its RSS read
// from /proc/<pid>/status every 30 s. Not part of a plain `npm run bench`: only
// `npm run bench -- --only soak [--minutes N]` runs it (2 minutes unless told; 30 s with --quick).
// What it answers: does RSS level off, or keep growing with time and with requests? The verdict
// is the slope over the second half of the run (a least-squares line through those samples).
// The load, each stream paced to its own rate and this process held to about half a core:
//   boots      a new connection per retrieve, each with another VM's certificate (a pool of them,
//              larger than lib/pki's caches), as VMs at boot
//   agent      one long VM connection pipelining retrieves, with refusals among them: unknown
//              names (NOT_FOUND) and names or actions its ACL rule does not give it (ACL_DENIED)
//   operator   two long pipelined connections retrieving, storing new versions of a few names,
//              listing, and storing ever new names while deleting the ones stored 10,000 before,
//              so the names passing through LevelBackend's 20,000-name cache keep changing

import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SIMULATED_ENCLAVE } from '../../lib/attest/index.ts';
import { randomBytes, sha256, utf8 } from '../../lib/crypto/index.ts';
import { isCertifierError } from '../../lib/errors/index.ts';
import { KeyClient, type KeyClientOptions } from '../../lib/keyclient/index.ts';
import { certifiedStore, issueLeaf, machineIdentity, makeDomain, presentedIdentity, type Leaf } from './domain.ts';
import { readRss, sleep, spawnKeyServer, type Child } from './keyserver-memory.ts';
import { formatTable, section, slope, stat, type SectionContext } from './harness.ts';

const SAMPLE_MS = 30_000;
/** This process's CPU, as a share of one core, that the load may take. */
const CPU_SHARE = 0.5;
const VM_NAMES = 500;
const ROTATED_NAMES = 50;
/** A churned name is deleted once this many newer ones were stored. */
const CHURN_KEPT = 10_000;
/** Requests per second of each stream, and how many each keeps in flight. */
const LOAD = {
  boots: { rate: 5, inFlight: 4, vmCerts: 1_000 },
  agent: { rate: 20, inFlight: 4 },
  retrieves: { rate: 80, inFlight: 8 },
  versions: { rate: 5, inFlight: 1 },
  churn: { rate: 25, inFlight: 4 },
  lists: { rate: 0.5, inFlight: 1 },
};

const vmName = (i: number) => `vhd/vm-${String(i % VM_NAMES).padStart(4, '0')}/disk-key`;
const rotatedName = (i: number) => `rotate/key-${i % ROTATED_NAMES}`;
const churnName = (i: number) => `churn/${String(i).padStart(8, '0')}`;

/** Holds this process to `share` of a core: callers wait while it used more over the last few seconds. */
function cpuCap(share: number): () => Promise<void> {
  let since = { wall: performance.now(), cpu: process.cpuUsage() };
  return async () => {
    for (;;) {
      const wall = performance.now() - since.wall;
      const used = process.cpuUsage(since.cpu);
      const cpuMs = (used.user + used.system) / 1000;
      if (wall > 5_000) since = { wall: performance.now(), cpu: process.cpuUsage() };
      const ahead = cpuMs / share - wall;
      if (ahead <= 0) return;
      await sleep(Math.min(ahead, 1_000));
    }
  };
}

interface Tally {
  ok: number;
  /** Refusals the load asked for (NOT_FOUND, ACL_DENIED). */
  refused: number;
  failed: number;
  firstFailures: string[];
}

/** Runs op(k) for k = 0, 1, ... at `rate` per second, `inFlight` at a time, until `end` (ms since the epoch). */
async function paced(rate: number, inFlight: number, end: number, cap: () => Promise<void>, tally: Tally, op: (k: number) => Promise<'ok' | 'refused'>): Promise<void> {
  const start = Date.now();
  let k = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    for (;;) {
      const mine = k++;
      // A stream held back (by the cap, or a slow server) does not catch up in a burst.
      const at = Math.max(start + (mine / rate) * 1000, Date.now() - 1_000);
      if (at >= end) return;
      await sleep(at - Date.now());
      await cap();
      try {
        tally[await op(mine)]++;
      } catch (e) {
        tally.failed++;
        if (tally.firstFailures.length < 5) tally.firstFailures.push(String((e as Error).stack ?? e).split('\n').slice(0, 2).join(' '));
      }
    }
  }));
}

/** ok, or 'refused' if `e` is one of the refusals expected. */
async function expecting(p: Promise<unknown>, ...codes: ('NOT_FOUND' | 'ACL_DENIED')[]): Promise<'ok' | 'refused'> {
  try {
    await p;
    if (codes.length && !codes.includes('NOT_FOUND')) throw new Error(`expected ${codes.join(' or ')}, but the request was carried out`);
    return 'ok';
  } catch (e) {
    if (codes.some((c) => isCertifierError(e, c))) return 'refused';
    throw e;
  }
}

interface Sample {
  seconds: number;
  requests: number;
  rssKiB: number;
  anonKiB: number;
}

function bytesUnder(dir: string): number {
  return readdirSync(dir, { withFileTypes: true, recursive: true }).reduce((a, e) => a + (e.isFile() ? statSync(join(e.parentPath, e.name)).size : 0), 0);
}

async function soak(ctx: SectionContext) {
  const minutes = ctx.options.minutes ?? (ctx.options.quick ? 0.5 : 2);
  const durationMs = minutes * 60_000;
  const sampleMs = Math.min(SAMPLE_MS, durationMs / 8);
  const dir = ctx.tempDir('keyserver-soak');
  const auditDir = join(dir, 'audit');
  mkdirSync(auditDir, { recursive: true });

  const domain = await makeDomain('soak');
  const ksMeasurement = sha256(utf8('the soaked key-server'));
  const vmMeasurement = sha256(utf8('a VM image'));
  const opMeasurement = sha256(utf8('the provisioning operator'));
  const hex = (m: Uint8Array) => Buffer.from(m).toString('hex');
  const serverLeaf = await issueLeaf(domain, { measurement: ksMeasurement, platform: SIMULATED_ENCLAVE });
  const opLeaf = await issueLeaf(domain, { measurement: opMeasurement, platform: SIMULATED_ENCLAVE });
  const vmCount = ctx.options.quick ? 50 : LOAD.boots.vmCerts;
  ctx.log(`issuing ${vmCount} VM certificates`);
  const vms: Leaf[] = [];
  for (let i = 0; i < vmCount; i++) vms.push(await issueLeaf(domain, { measurement: vmMeasurement, platform: SIMULATED_ENCLAVE }));
  await (await certifiedStore(domain, serverLeaf, join(dir, 'store'), join(dir, 'store.key'))).close();
  writeFileSync(join(dir, 'policy-cert.pem'), domain.policyPem);
  writeFileSync(join(dir, 'acl.json'), JSON.stringify({
    version: 1,
    rules: [
      { resources: ['vhd/**'], actions: ['retrieve'], measurements: [hex(vmMeasurement)] },
      { resources: ['**'], actions: ['store', 'retrieve', 'delete', 'list'], measurements: [hex(opMeasurement)] },
    ],
  }), { mode: 0o600 });
  const audit = join(auditDir, 'audit.jsonl');
  const child: Child = await spawnKeyServer([
    '--domain', domain.name, '--policy-cert', join(dir, 'policy-cert.pem'), '--data', join(dir, 'data'), '--listen', '127.0.0.1:0',
    '--store', join(dir, 'store'), '--key-file', join(dir, 'store.key'), '--acl', join(dir, 'acl.json'), '--audit', audit, '--audit-rotate-mb', '4',
  ], dir);
  const clients: KeyClient[] = [];
  try {
    const options = (identity = machineIdentity(domain, opLeaf)): KeyClientOptions =>
      ({ host: '127.0.0.1', port: child.port, identity, policyCert: domain.policyCert, serverMeasurements: [hex(ksMeasurement)] });
    const open = async (o: KeyClientOptions) => {
      const c = await KeyClient.connect(o);
      clients.push(c);
      return c;
    };
    const [op1, op2, agent] = [await open(options()), await open(options()), await open(options(presentedIdentity(vms[0]!)))];
    const value = () => randomBytes(32);
    for (let i = 0; i < VM_NAMES; i++) await op1.store(vmName(i), value());
    for (let i = 0; i < ROTATED_NAMES; i++) await op1.store(rotatedName(i), value());

    const tally: Tally = { ok: 0, refused: 0, failed: 0, firstFailures: [] };
    const cap = cpuCap(CPU_SHARE);
    const t0 = Date.now();
    const end = t0 + durationMs;
    let churned = 0;
    const load = [
      paced(LOAD.boots.rate, LOAD.boots.inFlight, end, cap, tally, async (k) => {
        const c = await KeyClient.connect(options(presentedIdentity(vms[k % vms.length]!)));
        return expecting(c.retrieve(vmName(k)).finally(() => c.close()));
      }),
      // One in ten names no key; one in ten is outside the VM's rule, by name or by action.
      paced(LOAD.agent.rate, LOAD.agent.inFlight, end, cap, tally, (k) =>
        k % 10 === 3 ? expecting(agent.retrieve(`vhd/vm-gone-${k}/disk-key`), 'NOT_FOUND')
        : k % 20 === 7 ? expecting(agent.retrieve(rotatedName(k)), 'ACL_DENIED')
        : k % 20 === 17 ? expecting(agent.store(vmName(k), value()), 'ACL_DENIED')
        : expecting(agent.retrieve(vmName(k)))),
      paced(LOAD.retrieves.rate, LOAD.retrieves.inFlight, end, cap, tally, (k) => expecting((k % 2 ? op1 : op2).retrieve(k % 3 ? vmName(k) : rotatedName(k)))),
      paced(LOAD.versions.rate, LOAD.versions.inFlight, end, cap, tally, (k) => expecting(op2.store(rotatedName(k), value()))),
      // Stores of new names, each followed by the delete of the one CHURN_KEPT before it and the
      // retrieve of one of the last 15,000 (a third of them deleted by then: NOT_FOUND).
      paced(LOAD.churn.rate, LOAD.churn.inFlight, end, cap, tally, async (k) => {
        const c = k % 2 ? op1 : op2;
        await c.store(churnName(k), value());
        tally.ok++;
        churned = Math.max(churned, k + 1);
        if (k >= CHURN_KEPT) tally[await expecting(c.delete(churnName(k - CHURN_KEPT)))]++;
        return expecting(c.retrieve(churnName(Math.max(0, k - ((k * 7919) % 15_000)))), 'NOT_FOUND');
      }),
      paced(LOAD.lists.rate, LOAD.lists.inFlight, end, cap, tally, (k) => expecting((k % 2 ? op1.list('vhd/') : op2.list('rotate/')))),
    ];

    // Sampling, and the operator's archiving of rotated audit segments (verify-audit first, in real life).
    const samples: Sample[] = [];
    const segments = new Set<string>();
    const requests = () => tally.ok + tally.refused + tally.failed;
    const sample = () => {
      const r = readRss(child.pid);
      samples.push({ seconds: (Date.now() - t0) / 1000, requests: requests(), rssKiB: r.rssKiB, anonKiB: r.anonKiB });
      for (const f of readdirSync(auditDir).filter((f) => /^audit\.jsonl\.\d/.test(f))) {
        segments.add(f);
        rmSync(join(auditDir, f));
      }
      ctx.log(`${(samples.at(-1)!.seconds / 60).toFixed(1)} min: ${requests()} requests (${tally.failed} failed), RSS ${(r.rssKiB / 1024).toFixed(1)} MiB`);
    };
    sample();
    let finished = false;
    const done = Promise.all(load).finally(() => (finished = true));
    while (!finished) {
      await Promise.race([sleep(Math.max(0, Math.min(sampleMs, end - Date.now()))), done]);
      sample();
    }
    await done;
    const peakKiB = readRss(child.pid).peakKiB;

    const mib = (kib: number) => kib / 1024;
    const second = samples.filter((s) => s.seconds >= durationMs / 2000);
    const perHour = slope(second.map((s) => [s.seconds / 3600, mib(s.rssKiB)]));
    const perMillion = slope(second.map((s) => [s.requests / 1e6, mib(s.rssKiB)]));
    const rows = samples.map((s) => [(s.seconds / 60).toFixed(1), String(s.requests), mib(s.rssKiB).toFixed(1), mib(s.anonKiB).toFixed(1)]);
    for (const line of formatTable(['minute', 'requests', 'RSS MiB', 'anon MiB'], rows, [true, true, true, true]).split('\n')) ctx.note(line);
    const at = (f: number) => samples[Math.round(f * (samples.length - 1))]!;
    ctx.note(`${minutes} min, ${requests()} requests (${tally.ok} carried out, ${tally.refused} refused as asked, ${tally.failed} failed${tally.failed ? `: ${tally.firstFailures.join(' | ')}` : ''}); ${churned} churned names stored (${Math.max(0, churned - CHURN_KEPT)} deleted again)`);
    ctx.note(`RSS at start ${mib(at(0).rssKiB).toFixed(1)}, half-way ${mib(at(0.5).rssKiB).toFixed(1)}, end ${mib(at(1).rssKiB).toFixed(1)} MiB; peak (VmHWM) ${mib(peakKiB).toFixed(1)} MiB`);
    ctx.note(`verdict: over the second half RSS moved ${perHour.toFixed(2)} MiB per hour, ${perMillion.toFixed(2)} MiB per million requests (least squares over ${second.length} samples)`);
    ctx.note(`audit segments rotated at 4 MiB (and archived): ${segments.size}; key database (LevelDB files under --data) ${(bytesUnder(join(dir, 'data')) / 2 ** 20).toFixed(1)} MiB; key-server pid ${child.pid} stopped`);
    if (tally.failed) throw new Error(`${tally.failed} requests failed: ${tally.firstFailures.join(' | ')}`);
    return [
      { case: `${minutes} min`, op: 'requests per second', subject: stat([requests() / (durationMs / 1000)]) },
      { case: `${minutes} min`, op: 'RSS slope, second half (MiB per hour)', subject: stat([perHour]) },
      { case: `${minutes} min`, op: 'RSS slope, second half (MiB per million requests)', subject: stat([perMillion]) },
      { case: `${minutes} min`, op: 'peak RSS (MiB)', subject: stat([mib(peakKiB)]) },
    ];
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    await child.stop();
  }
}

section('soak: key-server serve RSS under a mixed load', { columns: { case: 'run', subject: 'value' }, selectedBy: 'soak' }, soak);

// The key-server against the transport it runs on, in the same run, and its memory per name.
//
// Rows 1-2: lib/keyservice startKeyServer in this process (what `key-server serve` runs: a
// LevelBackend and a synced audit log in a temp dir, its identity loaded from a cryptstore),
// against lib/channel serve/connect echo servers with the same kind of P-256 admission
// certificates. In-process, so each rate is the inverse of the CPU time both ends spend on this
// one thread (as in the certification section); no process noise, but no second core either.
//   1. one retrieve per connection, 8 concurrent clients: KeyClient.connect (mutual TLS, both ends
//      validating the other's admission certificate, the client pinning the server's measurement)
//      + retrieve of an existing 32-byte key + close, against mutual TLS + a 1-byte echo + close.
//      Every connection presents a certificate of its own, as a fleet of VMs would: one shared
//      certificate would let lib/pki's certificate cache skip the server's checks.
//   2. pipelined on one connection: many retrieves in flight on one KeyClient, against 32-byte
//      echo requests in flight on one mutual-TLS channel connection.
//   3. row 2 against a key-server without its audit log, which key-server serve never runs: what
//      the synced audit record of every retrieve costs a pipelined connection.
// Rows 4-6: RSS of real `key-server serve` children (keyserver-memory.ts).

import { mkdirSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { SIMULATED_ENCLAVE } from '../../lib/attest/index.ts';
import { randomBytes, sha256, utf8 } from '../../lib/crypto/index.ts';
import { connect, serve, type ChannelServer, type Limits } from '../../lib/channel/index.ts';
import { KeyClient, type KeyClientOptions } from '../../lib/keyclient/index.ts';
import { AuditLog } from '../../lib/keyservice/audit.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { startKeyServer } from '../../lib/keyservice/server.ts';
import type { Cryptstore } from '../../cryptstore/index.ts';
import { renderLogLine } from '../../cmd/common/server.ts';
import { certifiedStore, issueLeaf, machineIdentity, makeDomain, presentedIdentity, type Leaf } from './domain.ts';
import { measureKeyServerMemory } from './keyserver-memory.ts';
import { formatStages, retrieveStages } from './keyserver-stages.ts';
import { compare, rate, section, stat, type Row } from './harness.ts';

const CLIENTS = 8;
const IN_FLIGHT = 16;
const KEY_NAME = 'bench/disk-key';
const FULL = { connIters: 160, pipeIters: 10_000, repeats: 7, warm: 48, names: 10_000, pauseMs: 2_000, stageMs: 100, chainConns: 40 };
const QUICK = { connIters: 16, pipeIters: 100, repeats: 2, warm: 8, names: 400, pauseMs: 300, stageMs: 10, chainConns: 4 };
// One connection carries every pipelined run (default: closed after 1000 requests). The limit
// only decides when a connection ends; it changes nothing per request. Same for both servers,
// and the KeyClients are told it (they would otherwise open a new connection every 1,000).
const PER_CONNECTION = 1_000_000;
const LIMITS: Limits = { maxRequestsPerConnection: PER_CONNECTION };

section(
  'key-server: retrieves vs mutual TLS (loopback, in-process), and RSS of key-server serve',
  { columns: { case: 'case', baseline: 'baseline', subject: 'key-server' } },
  async (ctx) => {
    const cfg = ctx.options.quick ? QUICK : FULL;
    ctx.log('setting up: policy domain, certificates, key-server in-process');
    const domain = await makeDomain('bench');
    const serverLeaf = await issueLeaf(domain, { measurement: sha256(utf8('the benchmarked key-server program')), platform: SIMULATED_ENCLAVE });
    // A certificate per connection of row 1 (the same one for its baseline), and some for the stages.
    const clientMeasurement = sha256(utf8('the benchmarked key-client program'));
    const pool: Leaf[] = [];
    for (let i = 0; i < cfg.repeats * cfg.connIters + cfg.warm + 100; i++) pool.push(await issueLeaf(domain, { measurement: clientMeasurement, platform: SIMULATED_ENCLAVE }));
    const stageCerts = pool.splice(-100);
    const clientLeaf = pool.at(-1)!; // the warm-up's last: pipelined clients and the provisioner
    const clientIdentity = machineIdentity(domain, clientLeaf);
    const dir = ctx.tempDir('keyserver');
    mkdirSync(dir, { recursive: true });
    const servers: ChannelServer[] = [];
    const conns: { close(): Promise<void> }[] = [];
    let store: Cryptstore | undefined;
    let backend: LevelBackend | undefined;
    let audit: AuditLog | undefined;
    try {
      store = await certifiedStore(domain, serverLeaf, join(dir, 'store'), join(dir, 'store.key'));
      backend = await LevelBackend.open(join(dir, 'data'));
      audit = await AuditLog.open(join(dir, 'data', 'audit.jsonl'));
      // key-server serve writes one log line per request (text, on stderr): rendering it with the
      // program's own renderer, not printing it, keeps that cost.
      let logged = 0;
      const render = renderLogLine('key-server', false);
      const log = (r: object) => void (logged += render(r).length);
      const ks = await startKeyServer({ store, domain: domain.name, policyCert: domain.policyCert, backend, audit, host: '127.0.0.1', port: 0, limits: LIMITS, log });
      servers.push(ks.server);
      // The same server without its audit log (not something key-server serve can run): what the
      // synced audit costs a pipelined connection, for row 3.
      const unaudited = await startKeyServer({ store, domain: domain.name, policyCert: domain.policyCert, backend, host: '127.0.0.1', port: 0, limits: LIMITS, log });
      servers.push(unaudited.server);
      const echo = await serve({
        host: '127.0.0.1', port: 0, limits: LIMITS, handler: async (req: Uint8Array) => req,
        tls: { key: serverLeaf.key, cert: serverLeaf.pem, ca: domain.policyPem, requestCert: true },
      });
      servers.push(echo);

      const clientOptions = (identity = clientIdentity, port = ks.server.address.port): KeyClientOptions => ({
        host: '127.0.0.1', port, identity, policyCert: domain.policyCert, serverMeasurements: [ks.identity.measurementHex],
        // As the servers' limit: a KeyClient opens a new connection (a handshake, with requests
        // waiting for it) after the servers' default 1,000 requests unless told the limit.
        requestsPerConnection: PER_CONNECTION,
      });
      const value = randomBytes(32);
      const provisioner = await KeyClient.connect(clientOptions());
      await provisioner.store(KEY_NAME, value).finally(() => provisioner.close());
      const checkEntry = (blob: Uint8Array) => {
        if (blob.length !== 32 || Buffer.compare(blob, value) !== 0) throw new Error('the key-server returned another value');
      };

      // Row 1: a connection (and a client certificate) per operation.
      const echoTls = (leaf: Leaf) => ({ key: leaf.key, cert: leaf.pem, ca: domain.policyPem });
      const handshake = async (i: number) => {
        const conn = await connect({ host: '127.0.0.1', port: echo.address.port, tls: echoTls(pool[i]!) });
        const answer = await conn.request(new Uint8Array([i & 0xff]));
        await conn.close();
        if (answer.length !== 1 || answer[0] !== (i & 0xff)) throw new Error('the echo server answered something else');
      };
      const retrieveOnce = async (i: number) => {
        const client = await KeyClient.connect(clientOptions(presentedIdentity(pool[i]!)));
        await client.retrieve(KEY_NAME).then((e) => checkEntry(e.blob)).finally(() => client.close());
      };
      const timed = cfg.repeats * cfg.connIters;
      ctx.log(`warm-up x${cfg.warm}`);
      await rate(cfg.warm, (i) => retrieveOnce(timed + i), 0, CLIENTS);
      await rate(cfg.warm, (i) => handshake(timed + i), 0, CLIENTS);
      ctx.log(`one retrieve per connection vs mTLS + echo: ${cfg.connIters} x${cfg.repeats}, ${CLIENTS} concurrent`);
      const loadBefore = loadavg()[0]!;
      const perConn = await compare({ repeats: cfg.repeats, iterations: cfg.connIters, baseline: handshake, subject: retrieveOnce, concurrency: CLIENTS });

      // Row 2: one connection each, IN_FLIGHT requests outstanding at any time.
      const client = await KeyClient.connect(clientOptions());
      conns.push(client);
      const bare = await KeyClient.connect(clientOptions(clientIdentity, unaudited.server.address.port));
      conns.push(bare);
      const channel = await connect({ host: '127.0.0.1', port: echo.address.port, tls: echoTls(clientLeaf) });
      conns.push(channel);
      const payload = randomBytes(32);
      const echoPipelined = async () => {
        if ((await channel.request(payload)).length !== 32) throw new Error('the echo server answered something else');
      };
      const retrievePipelined = async () => checkEntry((await client.retrieve(KEY_NAME)).blob);
      const retrieveUnaudited = async () => checkEntry((await bare.retrieve(KEY_NAME)).blob);
      await rate(cfg.warm * 4, retrievePipelined, 0, IN_FLIGHT);
      await rate(cfg.warm * 4, retrieveUnaudited, 0, IN_FLIGHT);
      await rate(cfg.warm * 4, echoPipelined, 0, IN_FLIGHT);
      ctx.log(`pipelined retrieves vs pipelined echo: ${cfg.pipeIters} x${cfg.repeats}, ${IN_FLIGHT} in flight`);
      const piped = await compare({ repeats: cfg.repeats, iterations: cfg.pipeIters, baseline: echoPipelined, subject: retrievePipelined, concurrency: IN_FLIGHT });
      const pipedBare = await compare({ repeats: cfg.repeats, iterations: cfg.pipeIters, baseline: echoPipelined, subject: retrieveUnaudited, concurrency: IN_FLIGHT });

      ctx.log('stage costs');
      const stages = await retrieveStages({
        backend, audit, store, policyCert: domain.policyCert, policyPem: domain.policyPem, peer: clientIdentity.peer, serverCert: serverLeaf.cert,
        unseen: stageCerts.map((l) => l.cert), tlsPort: echo.address.port, client: clientLeaf, name: KEY_NAME, runMs: cfg.stageMs, connections: cfg.chainConns,
      });

      // Rows 4-6: real key-server children.
      const memDir = ctx.tempDir('keyserver-memory');
      mkdirSync(memDir, { recursive: true });
      ctx.log(`memory: three key-server serve children, ${cfg.names} names stored in one`);
      const mem = await measureKeyServerMemory({ domain, dir: memDir, names: cfg.names, pauseMs: cfg.pauseMs, log: ctx.log });
      const mib = (kib: number) => kib / 1024;
      const perName = (fromKiB: number) => stat([((mem.loaded.rssKiB - fromKiB) * 1024) / cfg.names]);
      const names = `${cfg.names.toLocaleString('en-US')} names`;

      const per = (s: { median: number }) => (1000 / s.median).toFixed(3);
      ctx.note(`rows 1-2: key-server in this process (startKeyServer, LevelBackend, synced audit log, no ACL; its log lines rendered by key-server's renderer, not printed: ${(logged / 2 ** 20).toFixed(1)} MiB), KeyClient pinning its measurement; baseline: lib/channel serve/connect, mutual TLS 1.3, P-256 admission certificates of the same P-256 policy key, no verifyPeer on either end`);
      ctx.note(`row 1: ${CLIENTS} concurrent clients, a new connection and a new client certificate per operation, the client closes; per operation on this shared thread: retrieve ${per(perConn.subject)} ms, mTLS + echo ${per(perConn.baseline)} ms`);
      // The retrieve side alone has work off the event loop (the audit's synced write, LevelDB, GC
      // helpers): on a machine busy with other work it competes for a core, and the ratio falls
      // while the CPU per operation stays put. These tell such a run from a regression.
      ctx.note(`row 1's CPU per operation, every thread of this process (median of the repeats): retrieve ${perConn.cpu.subject.toFixed(3)} ms, mTLS + echo ${perConn.cpu.baseline.toFixed(3)} ms (${(perConn.cpu.baseline / perConn.cpu.subject).toFixed(2)} in the rates' terms); event loop utilization ${perConn.loop.subject.toFixed(2)} and ${perConn.loop.baseline.toFixed(2)}; load average (1 min) ${loadBefore.toFixed(2)} as row 1 began, on ${availableParallelism()} cores`);
      ctx.note(`row 2: ${IN_FLIGHT} requests in flight on one connection (the server starts a connection's requests in order, its reads running alongside each other; their answers wait for their audit records together, group-committed, and leave in order); per operation: retrieve ${per(piped.subject)} ms, echo ${per(piped.baseline)} ms`);
      // What the audit alone allows: every answer waits for a synced write, and a connection with
      // IN_FLIGHT requests outstanding has at most IN_FLIGHT answers in each.
      const syncMs = stages.find((st) => st.stage.startsWith('audit append alone'))?.ms;
      if (syncMs) {
        const ceiling = IN_FLIGHT / (syncMs / 1000);
        ctx.note(`row 2's ceiling from the audit sync alone (${syncMs.toFixed(3)} ms here, below): at most ${IN_FLIGHT} answers per synced write, so at most ${ceiling.toFixed(0)} retrieves/s with no CPU spent at all, ${(ceiling / piped.baseline.median).toFixed(2)} of this echo; the CPU of ${IN_FLIGHT} requests comes on top, since a client keeping ${IN_FLIGHT} in flight sends the next ones only as answers arrive`);
      }
      ctx.note(`row 3: the same pipelined retrieves from a second in-process key-server over the same database, started without an audit log; per operation ${per(pipedBare.subject)} ms`);
      ctx.note(`median of ${cfg.repeats} interleaved repeats (${cfg.connIters} / ${cfg.pipeIters} operations); maxRequestsPerConnection raised on both servers so one connection carries every pipelined run`);
      ctx.note(`stage costs on this thread, each alone (ms): ${formatStages(stages)}`);
      ctx.note(`rows 4-6: three \`key-server serve\` children (--key-file store, LevelDB data dir, audit log), started together: "idle" left empty, "loaded" given ${cfg.names} distinct 32-byte keys (${mem.storesPerSecond.toFixed(0)} stores/s over ${mem.connections} connections), "busy" as many requests on one name (1 store, then retrieves); VmRSS from /proc/<pid>/status at start, and ${cfg.pauseMs / 1000} s after the last request (no forced GC)`);
      ctx.note(`RSS at start -> at the end, MiB: ${mem.detail}; children (pids ${mem.pids.join(', ')}) stopped`);
      const growth = (k: number) => `${(k / 1024).toFixed(1)} MiB`;
      ctx.note(`of the loaded child's ${growth(mem.loaded.rssKiB - mem.idle.rssKiB)} over idle, ${growth(mem.busy.rssKiB - mem.idle.rssKiB)} is there in busy too (what serving that many requests leaves: in a probe with a forced GC, V8's young generation grown from 16 to 32 MiB, and allocator caches), ${growth(mem.loaded.rssKiB - mem.busy.rssKiB)} comes with the names (LevelBackend's latest/highest version per name, kept for the 20,000 names used most recently, about 170 B each of V8 heap in that probe, and LevelDB's memtable, which holds the records until 4 MiB of writes are flushed)`);
      return [
        { case: 'P-256 mTLS', op: 'retrieve, 1 per connection vs mTLS + 1-byte echo (/s)', baseline: perConn.baseline, subject: perConn.subject, paired: perConn.paired, target: { minRatio: 0.8 } },
        { case: 'one connection', op: `retrieve, ${IN_FLIGHT} in flight vs 32-byte echo (/s)`, baseline: piped.baseline, subject: piped.subject, paired: piped.paired, target: { minRatio: 0.5 } },
        { case: 'one connection', op: 'the same, server without an audit log (/s)', baseline: pipedBare.baseline, subject: pipedBare.subject, paired: pipedBare.paired },
        { case: names, op: 'RSS of key-server serve: empty idle vs loaded (MiB)', baseline: stat([mib(mem.idle.rssKiB)]), subject: stat([mib(mem.loaded.rssKiB)]) },
        { case: names, op: 'RSS growth per stored name, vs idle (bytes)', subject: perName(mem.idle.rssKiB) },
        { case: names, op: 'RSS growth per stored name, vs as many requests (bytes)', subject: perName(mem.busy.rssKiB) },
      ] satisfies Row[];
    } finally {
      for (const c of conns) await c.close().catch(() => {});
      for (const s of servers) await s.close(1_000);
      await audit?.close();
      await backend?.close();
      await store?.close();
    }
  },
);

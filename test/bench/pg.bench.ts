// Key-server storage: retrieves (and stores) per second through the KeyStore layer, the same
// encryption and checks key-server runs, over the embedded LevelDB backend (baseline) and the
// shared PostgreSQL backend (subject), in one process, one after the other, interleaved. The
// PostgreSQL server is a throwaway one from Debian's package on loopback (test/postgres/
// pg-server.ts), with default durability settings; without the package the section says it
// skipped. Values are random; reads go to names that exist, in a shuffled order.

import { randomBytes } from 'node:crypto';
import { KeyStore } from '../../lib/keyservice/keystore.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { PgBackend } from '../../lib/keyservice/pg-backend.ts';
import { findPgBin, PgServer } from '../postgres/pg-server.ts';
import { compare, section, type Row } from './harness.ts';

interface Case {
  label: string;
  bytes: number;
  op: 'retrieve' | 'store';
  concurrency: number;
  iterations: number;
}

const NAMES = 100;
const FULL: Case[] = [
  { label: '32 B', bytes: 32, op: 'retrieve', concurrency: 1, iterations: 2000 },
  { label: '1 KiB', bytes: 1024, op: 'retrieve', concurrency: 1, iterations: 2000 },
  { label: '1 KiB', bytes: 1024, op: 'retrieve', concurrency: 16, iterations: 4000 },
  { label: '64 KiB', bytes: 64 * 1024, op: 'retrieve', concurrency: 16, iterations: 1000 },
  { label: '1 KiB', bytes: 1024, op: 'store', concurrency: 16, iterations: 400 },
];
const QUICK: Case[] = FULL.map((c) => ({ ...c, iterations: Math.max(20, c.iterations / 50) }));

/** A fixed shuffle, so reads do not walk the names in index order. */
function order(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let s = 0x2545f491;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s ^ (s >>> 13), 0x5bd1e995) + 0x6b43a9b5) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

section(
  'key-server storage: PostgreSQL vs LevelDB (through KeyStore)',
  { columns: { case: 'value / workers', baseline: 'LevelDB ops/s', subject: 'PostgreSQL ops/s' } },
  async (ctx) => {
    const bin = findPgBin();
    if (!bin) {
      ctx.note('skipped: PostgreSQL not installed (apt-get install postgresql); no rows');
      return [];
    }
    const quick = ctx.options.quick;
    ctx.log('starting a throwaway PostgreSQL');
    const pgs = await PgServer.start(bin, { fsync: true });
    const key = new Uint8Array(randomBytes(32));
    const level = await LevelBackend.open(ctx.tempDir('level'));
    let pg: PgBackend | undefined;
    try {
      pg = await PgBackend.open({ url: await pgs.createDatabase('bench'), poolSize: 16 });
      const stores = { baseline: new KeyStore(level, key), subject: new KeyStore(pg, key) };
      const rows: Row[] = [];
      for (const c of quick ? QUICK : FULL) {
        ctx.log(`${c.label} ${c.op} x${c.concurrency}`);
        const value = new Uint8Array(randomBytes(c.bytes));
        const prefix = `bench/${c.bytes}/`;
        for (const ks of [stores.baseline, stores.subject]) {
          for (let i = 0; i < NAMES; i++) await ks.store(`${prefix}${i}`, value, { type: 'binary-blob', exportable: true });
        }
        const shuffled = order(NAMES);
        const opFor = (ks: KeyStore) => c.op === 'retrieve'
          ? (i: number) => ks.fetch(`${prefix}${shuffled[i % NAMES]}`)
          : (i: number) => ks.store(`${prefix}${shuffled[i % NAMES]}`, value, { type: 'binary-blob', exportable: true });
        const r = await compare({ repeats: quick ? 2 : 7, iterations: c.iterations, baseline: opFor(stores.baseline), subject: opFor(stores.subject), concurrency: c.concurrency });
        rows.push({ case: `${c.label} / ${c.concurrency}`, op: c.op, baseline: r.baseline, subject: r.subject, paired: r.paired });
      }
      ctx.note('both through KeyStore (AES-256-GCM seal/open included); PostgreSQL on 127.0.0.1 in its own processes, default fsync and synchronous_commit');
      ctx.note('a retrieve is one network round trip and a query for PostgreSQL, an in-process read for LevelDB, which answers these few names, read again and again, from its cache of sealed records (PostgreSQL, shared by replicas, cannot cache); workers = requests in flight');
      return rows;
    } finally {
      await pg?.close();
      await level.close();
      await pgs.stop();
    }
  },
);

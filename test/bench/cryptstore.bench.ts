// Cryptstore put/get rates against raw `level` on the same machine, value sizes and access
// pattern: sequential awaited operations (as the CLI and the servers use the store), synced
// writes, gets of the latest version of keys that exist, spread over many tags.

import { randomBytes } from 'node:crypto';
import { Level } from 'level';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { entryKey } from '../../cryptstore/layout.ts';
import { compare, section, type Row } from './harness.ts';

interface SizeCase {
  label: string;
  bytes: number;
  /** Tags the puts and gets are spread over. */
  tags: number;
  putIters: number;
  getIters: number;
}

const FULL: SizeCase[] = [
  { label: '32 B', bytes: 32, tags: 100, putIters: 200, getIters: 2000 },
  { label: '1 KiB', bytes: 1024, tags: 100, putIters: 200, getIters: 2000 },
  { label: '64 KiB', bytes: 64 * 1024, tags: 100, putIters: 100, getIters: 800 },
  { label: '1 MiB', bytes: 1024 * 1024, tags: 100, putIters: 15, getIters: 120 },
];
// Many short, interleaved runs rather than a few long ones: on a shared 2-core machine the
// noise comes in bursts, and the median of many back-to-back pairs shrugs them off.
const FULL_REPEATS = 9;

const QUICK: SizeCase[] = [
  { label: '32 B', bytes: 32, tags: 20, putIters: 20, getIters: 100 },
  { label: '1 KiB', bytes: 1024, tags: 20, putIters: 20, getIters: 100 },
  { label: '64 KiB', bytes: 64 * 1024, tags: 20, putIters: 10, getIters: 50 },
  { label: '1 MiB', bytes: 1024 * 1024, tags: 10, putIters: 3, getIters: 10 },
];
const QUICK_REPEATS = 2;

const TARGET = { minRatio: 0.5 };

type Db = Level<string, Uint8Array>;

/** A deterministic shuffle, so gets do not walk the tags in key order. */
function shuffled(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let s = 0x9e3779b9;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

section(
  'cryptstore vs raw level (sequential, synced writes)',
  { columns: { case: 'size', baseline: 'raw ops/s', subject: 'cryptstore ops/s' } },
  async (ctx) => {
    const quick = ctx.options.quick;
    const cases = quick ? QUICK : FULL;
    const repeats = quick ? QUICK_REPEATS : FULL_REPEATS;
    const rows: Row[] = [];

    for (const c of cases) {
      ctx.log(`${c.label}: setting up`);
      const tagNames = Array.from({ length: c.tags }, (_, i) => `bench/secret-${i}`);
      const order = shuffled(c.tags);
      // Random (incompressible) values: LevelDB snappy-compresses table blocks, and the
      // cryptstore's ciphertext never compresses, so zeros would flatter the raw store.
      const value = new Uint8Array(randomBytes(c.bytes));

      // The raw store: the same options and write mode as the cryptstore's own LevelDB, and the
      // same in-memory "latest version per tag" the cryptstore keeps.
      const raw: Db = new Level(ctx.tempDir(`raw-${c.bytes}`), { keyEncoding: 'utf8', valueEncoding: 'view' });
      await raw.open();
      let store: Cryptstore;
      try {
        store = await Cryptstore.create(ctx.tempDir(`cryptstore-${c.bytes}`), new KeyFileProtector(new Uint8Array(randomBytes(32))));
      } catch (e) {
        await raw.close();
        throw e;
      }
      const rawLatest = new Array<number>(c.tags).fill(0);
      const rawPut = async (i: number) => {
        const t = i % c.tags;
        const v = rawLatest[t]! + 1;
        await raw.put(entryKey(tagNames[t]!, v), value, { sync: true });
        rawLatest[t] = v;
      };
      const rawGet = async (i: number) => {
        const t = order[i % c.tags]!;
        const v = await raw.get(entryKey(tagNames[t]!, rawLatest[t]!));
        if (v === undefined) throw new Error(`raw get of ${tagNames[t]} found nothing`);
      };
      // LevelDB's synchronous read, which the cryptstore itself uses: the gap to it is the
      // whole cost of decryption and decoding (an informational row, no target).
      const rawGetSync = async (i: number) => {
        const t = order[i % c.tags]!;
        await Promise.resolve();
        if (raw.getSync(entryKey(tagNames[t]!, rawLatest[t]!)) === undefined) throw new Error(`raw getSync of ${tagNames[t]} found nothing`);
      };
      const csPut = (i: number) => store.put(tagNames[i % c.tags]!, value);
      const csGet = (i: number) => store.get(tagNames[order[i % c.tags]!]!);

      try {
        // Every tag exists before anything is timed; this doubles as the put warm-up.
        for (let i = 0; i < c.tags; i++) {
          await rawPut(i);
          await csPut(i);
        }
        const warm = Math.max(5, Math.ceil(c.putIters / 5));
        for (let i = 0; i < warm; i++) {
          await rawPut(i);
          await csPut(i);
        }
        ctx.log(`${c.label}: put x${c.putIters} x${repeats}`);
        const put = await compare({ repeats, iterations: c.putIters, baseline: rawPut, subject: csPut });
        rows.push({ case: c.label, op: 'put', baseline: put.baseline, subject: put.subject, paired: put.paired, target: TARGET });

        // Get warm-up, and a check that both stores return what was written.
        for (let i = 0; i < Math.max(c.tags, Math.ceil(c.getIters / 5)); i++) {
          await rawGet(i);
          await csGet(i);
        }
        const e = await store.get(tagNames[0]!);
        const r = await raw.get(entryKey(tagNames[0]!, rawLatest[0]!));
        if (e.blob.length !== c.bytes || r?.length !== c.bytes || Buffer.compare(e.blob, value) !== 0) {
          throw new Error(`${c.label}: a get returned the wrong value`);
        }
        ctx.log(`${c.label}: get x${c.getIters} x${repeats}`);
        const get = await compare({ repeats, iterations: c.getIters, baseline: rawGet, subject: csGet });
        rows.push({ case: c.label, op: 'get', baseline: get.baseline, subject: get.subject, paired: get.paired, target: TARGET });
        const sync = await compare({ repeats, iterations: c.getIters, baseline: rawGetSync, subject: csGet });
        rows.push({ case: c.label, op: 'get vs getSync', baseline: sync.baseline, subject: sync.subject, paired: sync.paired });
      } finally {
        await store.close();
        await raw.close();
      }
    }

    ctx.note(`median of ${repeats} interleaved repeats (no full GC forced between them: see harness.ts compare); puts are { sync: true } (cryptstore durable = true), key-file protector (no scrypt)`);
    ctx.note(`puts write the next version of one of ${[...new Set(cases.map((c) => c.tags))].join('/')} tags in turn; gets read the latest version of those tags in shuffled order`);
    ctx.note('get: raw is level.get() (the usual API); the cryptstore reads with getSync, then decrypts and decodes');
    ctx.note('get vs getSync: raw is getSync too, so the gap is the whole cost of decryption and decoding (no target)');
    ctx.note('ratio = cryptstore median / raw median; paired = cryptstore/raw of each back-to-back repeat (median [min-max])');
    return rows;
  },
);

// A model-based random test of KeyStore over a real backend, its caches made small so they evict
// and read from disk again all the time: random operations on a few names that share prefixes,
// some in order, some concurrent, each answer compared with a plain in-memory model of what the
// store promises (backend.ts, keystore.ts). Run it with describeKeyStoreModel(label, factory) from
// a backend's test file. Two fixed seeds in npm test; KEYSTORE_MODEL_SECONDS=N runs longer seeds
// for N seconds per backend (from KEYSTORE_MODEL_SEED on, 1000 by default); a failure says how to
// run its seed again.

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';
import { compareNames, ENTRY_TYPES, type EntryType } from '../../lib/wire/index.ts';
import type { KeyStore } from '../../lib/keyservice/keystore.ts';
import type { ListOptions, RecordInfo } from '../../lib/keyservice/backend.ts';
import { prng } from '../support/prng.ts';

/** Names that share prefixes, and characters whose UTF-16 order is not their code point order (U+FFEE, U+1F600). */
export const NAMES = ['a', 'a/1', 'a/2', 'ab', 'b', 'b/é', 'b/\uffee', 'b/\u{1f600}', 'c'];
const PREFIXES = ['', 'a', 'a/', 'b/', 'b/\uffee', 'ab', 'c', 'z'];
/**
 * The cache sizes a fixture gives the code under test, small (chosen per seed from CACHE_SIZES) so
 * that they evict often, or now and then large enough to hold every name, so that they hit often.
 */
export interface ModelTuning { stateNames: number; compactAfter: number; cacheRecords: number; cacheBytes: number; checkedNames: number }
const CACHE_SIZES = { stateNames: [1, 3, 20], compactAfter: [1, 6, 50], cacheRecords: [1, 3, 20], cacheBytes: [4096, 65_536], checkedNames: [1, 2, 20] };

/** What the crash fixture sends a process it then kills: a store (its value in hex) or a delete. */
export type ChildOp =
  | { op: 'store'; name: string; value: string; type: EntryType; exportable: boolean; time: string }
  | { op: 'delete'; name: string; version: number };

export interface ModelFixture {
  store: KeyStore;
  /**
   * Another KeyStore, over a backend of its own on the same storage (a second replica of a shared
   * database), or undefined: each operation goes to one of the two at random.
   */
  replica?: KeyStore;
  /** Closes the backend (and the replica's) and opens new ones (and KeyStores) on the same storage. */
  reopen(): Promise<void>;
  /** Closes the backends. */
  close(): Promise<void>;
  /**
   * Closes the backend, has another process carry out `ops` (each name's in order) and kills it
   * once `killAfter` have been answered, then opens the storage again: the answers by index (a
   * store's version, a delete's versions); `store` is then the new KeyStore.
   */
  crash?(ops: ChildOp[], killAfter: number): Promise<Map<number, unknown>>;
  cleanup(): Promise<void>;
}

/**
 * A fixture's store (with `replica`, its replica's too) and reopen, over `open`, which opens a
 * backend and its KeyStore; `store` and `replica` are the ones open now.
 */
export async function reopenable(open: () => Promise<KeyStore>, replica = false): Promise<Pick<ModelFixture, 'store' | 'replica' | 'reopen' | 'close'>> {
  const fx: Pick<ModelFixture, 'store' | 'replica' | 'reopen' | 'close'> = {
    store: await open(),
    replica: replica ? await open() : undefined,
    reopen: async () => {
      await fx.close();
      fx.store = await open();
      if (replica) fx.replica = await open();
    },
    close: async () => {
      await fx.store.backend.close();
      await fx.replica?.backend.close();
    },
  };
  return fx;
}

type Op =
  | { op: 'store'; name: string; value: Uint8Array; type: EntryType; exportable: boolean; time: string; expected?: number; version?: number; onlyIfExisting?: boolean }
  | { op: 'fetch' | 'release'; name: string; version: number }
  | { op: 'delete'; name: string; version: number }
  | { op: 'list'; prefix: string; options: ListOptions }
  | { op: 'pages'; prefix: string; size: number };
type Outcome = { ok: unknown } | { code: string };
interface Version { value: Uint8Array; type: EntryType; exportable: boolean; timeEntered: string }

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const infoOf = (r: RecordInfo) => ({ name: r.name, version: r.version, type: r.type, exportable: r.exportable, timeEntered: r.timeEntered, size: r.size });
const shownOp = (o: Op) => JSON.stringify(o, (k, v: unknown) => (k === 'value' && v instanceof Uint8Array ? `<${v.length} bytes>` : v));

/** What the store promises, in memory: each name's versions and the highest number it ever gave. */
class Model {
  readonly names = new Map<string, { high: number; versions: Map<number, Version> }>();

  entry(name: string) {
    let e = this.names.get(name);
    if (!e) this.names.set(name, (e = { high: 0, versions: new Map() }));
    return e;
  }

  versions(name: string): number[] {
    return [...this.entry(name).versions.keys()].sort((a, b) => a - b);
  }

  latest(name: string): number {
    return this.versions(name).at(-1) ?? 0;
  }

  info(name: string, version: number) {
    const r = this.entry(name).versions.get(version)!;
    return { name, version, type: r.type, exportable: r.exportable, timeEntered: r.timeEntered, size: r.value.length };
  }

  opened(name: string, version: number) {
    return { info: this.info(name, version), value: hex(this.entry(name).versions.get(version)!.value) };
  }

  put(name: string, version: number, r: Version): void {
    const e = this.entry(name);
    e.versions.set(version, r);
    e.high = Math.max(e.high, version);
  }

  list(prefix: string, o: ListOptions = {}) {
    const names = [...this.names.keys()]
      .filter((n) => n.startsWith(prefix) && this.latest(n) !== 0 && (o.after === undefined || compareNames(n, o.after) > 0))
      .sort(compareNames);
    const out = names.flatMap((n) => (o.allVersions ? this.versions(n) : [this.latest(n)]).map((v) => this.info(n, v)));
    return out.slice(0, o.limit ?? out.length);
  }

  /** The outcome `op` must have, applied to the model. */
  apply(op: Op): Outcome {
    switch (op.op) {
      case 'store': {
        const e = this.entry(op.name);
        const latest = this.latest(op.name);
        if (op.expected !== undefined && op.expected !== latest) return { code: 'VERSION_CONFLICT' };
        if (op.onlyIfExisting && latest === 0) return { code: 'NOT_FOUND' };
        const version = e.high + 1;
        if (op.version !== undefined && op.version !== version) return { code: 'VERSION_CONFLICT' };
        this.put(op.name, version, { value: op.value, type: op.type, exportable: op.exportable, timeEntered: op.time });
        return { ok: this.info(op.name, version) };
      }
      case 'fetch':
      case 'release': {
        const v = op.version || this.latest(op.name);
        const r = this.entry(op.name).versions.get(v);
        if (!r) return { code: 'NOT_FOUND' };
        if (op.op === 'release' && !r.exportable) return { code: 'NOT_EXPORTABLE' };
        return { ok: this.opened(op.name, v) };
      }
      case 'delete': {
        const e = this.entry(op.name);
        const gone = op.version ? (e.versions.has(op.version) ? [op.version] : []) : this.versions(op.name);
        for (const v of gone) e.versions.delete(v);
        return { ok: gone };
      }
      case 'list':
        return { ok: this.list(op.prefix, op.options) };
      case 'pages':
        return { ok: this.list(op.prefix) };
    }
  }
}

/** Runs `op` after `turns` turns of the event loop, so that concurrent operations start at different points of each other's I/O. */
async function runLater(ks: KeyStore, op: Op, turns: number): Promise<Outcome> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
  return run(ks, op);
}

async function outcome<T>(p: Promise<T>, map: (x: T) => unknown): Promise<Outcome> {
  try {
    return { ok: map(await p) };
  } catch (e) {
    if (e instanceof CertifierError) return { code: e.code };
    throw e;
  }
}

/** What KeyStore answers to `op`, in the model's terms. */
async function run(ks: KeyStore, op: Op): Promise<Outcome> {
  const opened = (r: { info: RecordInfo; value: Uint8Array }) => ({ info: infoOf(r.info), value: hex(r.value) });
  switch (op.op) {
    case 'store':
      return outcome(ks.store(op.name, op.value, {
        type: op.type, exportable: op.exportable, time: new Date(op.time), expectedLatest: op.expected, version: op.version,
        onlyIfExisting: op.onlyIfExisting ? () => new CertifierError('NOT_FOUND', `no key named "${op.name}"`) : undefined,
      }), infoOf);
    case 'fetch':
      return outcome(ks.fetch(op.name, op.version), opened);
    case 'release':
      return outcome(ks.release(op.name, op.version), opened);
    case 'delete':
      return outcome(ks.delete(op.name, op.version), (d) => (d.count === d.versions.length ? d.versions : d));
    case 'list':
      return outcome(ks.list(op.prefix, op.options), (l) => l.map(infoOf));
    case 'pages':
      return outcome((async () => {
        const all: RecordInfo[] = [];
        for (let after: string | undefined; ;) {
          const page = await ks.list(op.prefix, { limit: op.size, after });
          all.push(...page);
          if (page.length < op.size) return all;
          after = page.at(-1)!.name;
        }
      })(), (l) => l.map(infoOf));
  }
}

/** Random operations, as data (so a failure can print them), from one seed. */
class Generator {
  private readonly rand: () => number;
  private clock = Date.UTC(2026, 0, 1);

  constructor(seed: number, private readonly model: Model) {
    this.rand = prng(seed);
  }

  int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  shuffled<T>(xs: readonly T[]): T[] {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  chance(p: number): boolean {
    return this.rand() < p;
  }

  value(): Uint8Array {
    const roll = this.rand();
    // Mostly small; some of several KiB (a few fill the record cache); a few over its byte budget.
    const size = roll < 0.85 ? this.int(200) : roll < 0.97 ? 2048 + this.int(4096) : 9000 + this.int(20_000);
    return Uint8Array.from({ length: size }, () => this.int(256));
  }

  time(): string {
    this.clock += 1000 + this.int(1000);
    return new Date(this.clock).toISOString();
  }

  /** A version of `name` worth asking for: 0 (latest), one it has, one deleted, or one never given. */
  version(name: string): number {
    const e = this.model.entry(name);
    const roll = this.rand();
    if (roll < 0.3) return 0;
    const have = this.model.versions(name);
    if (roll < 0.8 && have.length) return this.pick(have);
    return 1 + this.int(e.high + 2);
  }

  store(name: string): Op {
    const latest = this.model.latest(name);
    const op: Op = { op: 'store', name, value: this.value(), type: this.pick(ENTRY_TYPES), exportable: this.chance(0.6), time: this.time() };
    if (this.chance(0.3)) op.expected = this.chance(0.7) ? latest : this.int(latest + 3);
    if (this.chance(0.15)) op.version = this.model.entry(name).high + (this.chance(0.7) ? 1 : this.int(4) - 1 || 2);
    if (this.chance(0.1)) op.onlyIfExisting = true;
    return op;
  }

  /** Any operation (`name` for the ones on one name: concurrent batches give each a name of its own). */
  op(name = this.pick(NAMES), lists = true): Op {
    const roll = this.rand();
    if (roll < 0.4) return this.store(name);
    if (roll < 0.6) return { op: 'fetch', name, version: this.version(name) };
    if (roll < 0.68) return { op: 'release', name, version: this.version(name) };
    if (roll < 0.85 || !lists) return { op: 'delete', name, version: this.chance(0.25) ? 0 : this.version(name) || 1 };
    if (roll < 0.95) {
      const options: ListOptions = { allVersions: this.chance(0.4) };
      if (this.chance(0.4)) options.limit = this.int(5);
      if (this.chance(0.3)) options.after = this.pick(NAMES);
      return { op: 'list', prefix: this.pick(PREFIXES), options };
    }
    return { op: 'pages', prefix: this.pick(PREFIXES), size: 1 + this.int(3) };
  }
}

/** `crashes`: at most this many processes killed (each costs a process start); a crash past them is a reopen. */
export interface ModelRun { seed: number; steps: number; crashes: number }
export interface ModelCounts { operations: number; batches: number; concurrent: number; races: number; reopens: number; crashes: number }

/** Runs `steps` random batches against the fixture, throwing at the first answer the model does not allow. */
export async function runKeyStoreModel(factory: (tuning: ModelTuning) => Promise<ModelFixture>, run: ModelRun, counts: ModelCounts): Promise<void> {
  const model = new Model();
  const gen = new Generator(run.seed, model);
  const tuning = Object.fromEntries(Object.entries(CACHE_SIZES).map(([k, sizes]) => [k, gen.pick(sizes)])) as unknown as ModelTuning;
  const fx = await factory(tuning);
  try {
    await runSteps(fx, gen, model, run, counts, JSON.stringify(tuning));
  } finally {
    await fx.cleanup();
  }
}

async function runSteps(fx: ModelFixture, gen: Generator, model: Model, { seed, steps, crashes }: ModelRun, counts: ModelCounts, tuning: string): Promise<void> {
  let crashed = 0;
  /** The store an operation goes to: the fixture's, or its replica's. */
  const ks = () => (fx.replica && gen.chance(0.5) ? fx.replica : fx.store);
  const trail: string[] = [];
  const fail = (why: string): never => {
    const again = crashes === Infinity ? `KEYSTORE_MODEL_SEED=${seed} KEYSTORE_MODEL_SECONDS=1` : `KEYSTORE_MODEL_SEED=${seed}`;
    throw new Error(`seed ${seed} (caches ${tuning}; ${again} runs it again): ${why}\nlast operations:\n  ${trail.slice(-25).join('\n  ')}`);
  };
  const same = (op: Op, got: Outcome, want: Outcome) => {
    try {
      expect(got).to.deep.equal(want);
    } catch (e) {
      fail(`${shownOp(op)}: ${(e as Error).message}\n got ${JSON.stringify(got).slice(0, 600)}\nwant ${JSON.stringify(want).slice(0, 600)}`);
    }
  };
  const one = async (op: Op) => {
    trail.push(shownOp(op));
    counts.operations++;
    same(op, await run(ks(), op), model.apply(op));
  };
  /** Every record, by listing and by fetching each version, the latest and a version each name no longer has. */
  const checkAll = async (when: string) => {
    trail.push(`-- check all (${when})`);
    await one({ op: 'list', prefix: '', options: { allVersions: true } });
    await one({ op: 'list', prefix: '', options: {} });
    for (const name of NAMES) {
      // The versions it no longer has first, while a cache may still hold one of them.
      const gone = Array.from({ length: model.entry(name).high + 1 }, (_, v) => v + 1).filter((v) => !model.entry(name).versions.has(v));
      for (const version of [...gone, 0, ...model.versions(name)]) await one({ op: 'fetch', name, version });
    }
  };

  for (let step = 0; step < steps; step++) {
    counts.batches++;
    const roll = gen.int(100);
    if (roll < 45) {
      for (let i = 1 + gen.int(5); i > 0; i--) {
        const op = gen.op();
        await one(op);
        // What was just deleted, asked for again at once: a cache that kept it would answer it.
        if (op.op === 'delete' && gen.chance(0.5)) await one({ op: 'fetch', name: op.name, version: gen.chance(0.5) ? 0 : op.version });
      }
    } else if (roll < 75) {
      // Concurrent operations on different names: any order gives the same answers.
      counts.concurrent++;
      const names = gen.shuffled(NAMES).slice(0, 2 + gen.int(6));
      const ops = names.map((n) => gen.op(n, false));
      trail.push(`-- concurrently: ${ops.map(shownOp).join(' | ')}`);
      counts.operations += ops.length;
      const got = await Promise.all(ops.map((op) => runLater(ks(), op, gen.int(4))));
      ops.forEach((op, i) => same(op, got[i]!, model.apply(op)));
    } else if (roll < 93) {
      counts.races++;
      await race(gen, model, ks, trail, counts, fail);
    } else if (roll < 97 || !fx.crash || crashed >= crashes) {
      counts.reopens++;
      trail.push('-- reopen');
      await fx.reopen();
      await checkAll('after the reopen');
    } else {
      crashed++;
      counts.crashes++;
      await crash(fx, gen, model, trail, fail);
      await checkAll('after the crash');
    }
    if (step % 10 === 9) await checkAll(`step ${step}`);
  }
  await checkAll('at the end');
}

/**
 * Operations racing on one name. Which order they ran in is not known, so what is checked is what
 * holds in every order: stores acknowledged got distinct numbers, the next ones in a row; no
 * version is deleted twice or was never there; a read answers a version that was there with its
 * own value; and afterwards the name holds exactly what it held and was stored, less what was deleted.
 */
async function race(gen: Generator, model: Model, ks: () => KeyStore, trail: string[], counts: ModelCounts, fail: (why: string) => never): Promise<void> {
  const name = gen.pick(NAMES);
  const before = new Set(model.versions(name));
  const high = model.entry(name).high;
  const ops: Op[] = [];
  for (let i = 3 + gen.int(8); i > 0; i--) {
    const roll = gen.int(10);
    if (roll < 4) {
      const op = gen.store(name) as Extract<Op, { op: 'store' }>;
      // Only a condition every order may fail or meet.
      delete op.version;
      delete op.onlyIfExisting;
      ops.push(op);
    } else if (roll < 6) ops.push({ op: 'fetch', name, version: gen.version(name) });
    else if (roll < 7) ops.push({ op: 'list', prefix: name, options: { allVersions: gen.chance(0.5) } });
    else ops.push({ op: 'delete', name, version: gen.chance(0.2) ? 0 : gen.version(name) || 1 });
  }
  // Beside them, one operation on each of a few other names, which push the racing name out of small caches meanwhile.
  const others = gen.shuffled(NAMES.filter((n) => n !== name)).slice(0, gen.int(4)).map((n) => gen.op(n, false));
  trail.push(`-- racing: ${ops.map(shownOp).join(' | ')}; beside: ${others.map(shownOp).join(' | ')}`);
  counts.operations += ops.length + others.length;
  const started = (list: Op[]) => Promise.all(list.map((op) => runLater(ks(), op, gen.int(4))));
  const [got, besides] = await Promise.all([started(ops), started(others)]);
  others.forEach((op, i) => {
    const want = model.apply(op);
    if (JSON.stringify(besides[i]) !== JSON.stringify(want)) fail(`beside a race: ${shownOp(op)} -> ${JSON.stringify(besides[i]).slice(0, 300)}, not ${JSON.stringify(want).slice(0, 300)}`);
  });
  const what = (i: number) => `${shownOp(ops[i]!)} -> ${JSON.stringify(got[i]).slice(0, 300)}`;
  const stored = new Map<number, Version>();
  got.forEach((g, i) => {
    const op = ops[i]!;
    if (op.op !== 'store') return;
    if ('code' in g) {
      if (g.code !== 'VERSION_CONFLICT' || op.expected === undefined) fail(`a racing store failed: ${what(i)}`);
      return;
    }
    const v = (g.ok as RecordInfo).version;
    if (stored.has(v)) fail(`two racing stores got version ${v}`);
    stored.set(v, { value: op.value, type: op.type, exportable: op.exportable, timeEntered: op.time });
    const want = { name, version: v, type: op.type, exportable: op.exportable, timeEntered: op.time, size: op.value.length };
    if (JSON.stringify(g.ok) !== JSON.stringify(want)) fail(`a racing store answered other metadata: ${what(i)}`);
  });
  const numbers = [...stored.keys()].sort((a, b) => a - b);
  if (numbers.join() !== numbers.map((_, i) => high + 1 + i).join()) fail(`racing stores after version ${high} got ${numbers.join(', ')}`);
  const deleted = new Set<number>();
  got.forEach((g, i) => {
    const op = ops[i]!;
    if (op.op !== 'delete') return;
    if ('code' in g) fail(`a racing delete failed: ${what(i)}`);
    for (const v of g.ok as number[]) {
      if (deleted.has(v)) fail(`version ${v} deleted twice: ${what(i)}`);
      if (!before.has(v) && !stored.has(v)) fail(`a delete answered version ${v}, which was never there: ${what(i)}`);
      if (op.version !== 0 && v !== op.version) fail(`a delete of one version answered another: ${what(i)}`);
      deleted.add(v);
    }
  });
  for (const v of stored.keys()) model.put(name, v, stored.get(v)!);
  /** The versions there throughout: there before, and deleted by none of the racing deletes. */
  const kept = [...before].filter((x) => !deleted.has(x));
  got.forEach((g, i) => {
    const op = ops[i]!;
    if (op.op !== 'fetch') return;
    if ('code' in g) {
      if (g.code !== 'NOT_FOUND') fail(`a racing fetch failed: ${what(i)}`);
      // The version asked for was there throughout (it was there before, and no delete took it).
      if (op.version !== 0 && before.has(op.version) && !deleted.has(op.version)) fail(`a fetch missed a version that was there throughout: ${what(i)}`);
      if (op.version === 0 && before.size > 0 && deleted.size === 0) fail(`a fetch of the latest missed the name, which had versions throughout: ${what(i)}`);
      return;
    }
    const v = (g.ok as { info: RecordInfo }).info.version;
    if (op.version !== 0 && v !== op.version) fail(`a fetch answered another version: ${what(i)}`);
    if (!before.has(v) && !stored.has(v)) fail(`a fetch answered version ${v}, which was never stored: ${what(i)}`);
    if (JSON.stringify(g.ok) !== JSON.stringify(model.opened(name, v))) fail(`a fetch answered other contents for version ${v}: ${what(i)}`);
    // The latest can be no older than the highest version that was there throughout.
    if (op.version === 0 && kept.length && v < Math.max(...kept)) fail(`a fetch of the latest answered ${v}, older than ${Math.max(...kept)}, there throughout: ${what(i)}`);
  });
  // A listing shows one state of the name (a snapshot): only versions stored, as stored, and those there throughout.
  got.forEach((g, i) => {
    const op = ops[i]!;
    if (op.op !== 'list') return;
    if ('code' in g) fail(`a racing list failed: ${what(i)}`);
    const mine = (g.ok as RecordInfo[]).filter((r) => r.name === name);
    for (const r of mine) {
      if (!before.has(r.version) && !stored.has(r.version)) fail(`a list answered version ${r.version}, which was never stored: ${what(i)}`);
      if (JSON.stringify(r) !== JSON.stringify(model.info(name, r.version))) fail(`a list answered other metadata for version ${r.version}: ${what(i)}`);
    }
    if (op.options.allVersions) {
      const missed = kept.filter((v) => !mine.some((r) => r.version === v));
      if (missed.length) fail(`a list of every version missed ${missed.join(', ')}, there throughout: ${what(i)}`);
    } else if (mine.length > 1 || (kept.length && !(mine[0] && mine[0].version >= Math.max(...kept)))) fail(`a list answered a latest older than one there throughout: ${what(i)}`);
  });
  for (const v of deleted) model.entry(name).versions.delete(v);
  // What is there now: every version by listing, the latest, and the next number.
  const after = (await ks().list(name, { allVersions: true })).filter((r) => r.name === name).map(infoOf);
  const want = model.list(name, { allVersions: true }).filter((r) => r.name === name);
  if (JSON.stringify(after) !== JSON.stringify(want)) fail(`after the race "${name}" holds ${JSON.stringify(after.map((r) => r.version))}, not ${JSON.stringify(want.map((r) => r.version))}`);
  const latest = await run(ks(), { op: 'fetch', name, version: 0 });
  if (JSON.stringify(latest) !== JSON.stringify(model.apply({ op: 'fetch', name, version: 0 }))) fail(`after the race the latest of "${name}" is ${JSON.stringify(latest).slice(0, 300)}`);
}

/**
 * Stores and deletes carried out by a process killed part-way (those of one name in the order
 * sent): every one acknowledged answered as the model does and is there after the restart, and of
 * the ones not acknowledged the first few are there and the rest not at all.
 */
async function crash(fx: ModelFixture, gen: Generator, model: Model, trail: string[], fail: (why: string) => never): Promise<void> {
  const ops: Extract<Op, { op: 'store' | 'delete' }>[] = [];
  for (let i = 1 + gen.int(12); i > 0; i--) {
    const name = gen.pick(NAMES);
    const have = model.versions(name);
    // Deletes only of versions there before, so that each store leaves the name's versions unlike any before it.
    if (have.length && gen.chance(0.3)) ops.push({ op: 'delete', name, version: gen.pick(have) });
    else {
      const { op, value, type, exportable, time } = gen.store(name) as Extract<Op, { op: 'store' }>;
      ops.push({ op, name, value, type, exportable, time });
    }
  }
  const sent = ops.map((o): ChildOp => (o.op === 'store' ? { ...o, value: hex(o.value) } : o));
  const killAfter = gen.int(ops.length + 1);
  trail.push(`-- killed after ${killAfter} answers to: ${ops.map(shownOp).join(' | ')}`);
  const answers = await fx.crash!(sent, killAfter);
  for (const name of new Set(ops.map((o) => o.name))) {
    const mine = ops.flatMap((op, i) => (op.name === name ? [{ op, i }] : []));
    // The name after each number of its operations, and what each must answer.
    const scratch = new Model();
    scratch.names.set(name, { high: model.entry(name).high, versions: new Map(model.entry(name).versions) });
    const states = [scratch.versions(name).join()];
    mine.forEach(({ op, i }) => {
      const want = scratch.apply(op) as { ok: RecordInfo | number[] };
      states.push(scratch.versions(name).join());
      const got = answers.get(i);
      const wanted = op.op === 'store' ? (want.ok as RecordInfo).version : want.ok;
      if (got !== undefined && JSON.stringify(got) !== JSON.stringify(wanted)) fail(`the killed process answered ${shownOp(op)} with ${JSON.stringify(got)}, not ${JSON.stringify(wanted)}`);
    });
    const answered = Math.max(0, ...mine.map(({ i }, j) => (answers.has(i) ? j + 1 : 0)));
    const there = (await fx.store.list(name, { allVersions: true })).filter((r) => r.name === name).map((r) => r.version).join();
    const k = states.lastIndexOf(there);
    if (k < answered) fail(`after the kill "${name}" holds versions [${there}], not what its first ${answered} operations (answered) or more left: ${states.slice(answered).map((v) => `[${v}]`).join(' ')}`);
    for (const { op } of mine.slice(0, k)) model.apply(op);
    trail.push(`-- "${name}": ${k} of ${mine.length} operations carried out before the kill`);
  }
}

/**
 * One mocha test per backend: a few fixed seeds, or (KEYSTORE_MODEL_SECONDS) new seeds until the
 * time is up. The counts go to stderr in the long run.
 */
export function describeKeyStoreModel(label: string, factory: (tuning: ModelTuning) => Promise<ModelFixture>): void {
  const seconds = Number(process.env.KEYSTORE_MODEL_SECONDS ?? 0);
  const replay = process.env.KEYSTORE_MODEL_SEED;
  it(`${label}: answers every random sequence of operations as the model does, caches small, concurrent and after reopening`, async function () {
    this.timeout(Math.max(60, seconds * 2) * 1000);
    const counts: ModelCounts = { operations: 0, batches: 0, concurrent: 0, races: 0, reopens: 0, crashes: 0 };
    const until = Date.now() + seconds * 1000;
    // The long run's seeds follow KEYSTORE_MODEL_SEED (default 1000); without it, that seed alone.
    const first = Number(replay ?? 1000);
    const seeds = seconds ? [] : replay ? [first] : [1, 3];
    let runs = 0;
    for (let i = 0; seconds ? Date.now() < until : i < seeds.length; i++) {
      const seed = seeds[i] ?? first + i;
      await runKeyStoreModel(factory, { seed, steps: seconds ? 300 : 50, crashes: seconds ? Infinity : 1 }, counts);
      runs++;
    }
    if (seconds || replay) process.stderr.write(`${label}: ${runs} seeds, ${JSON.stringify(counts)}\n`);
  });
}

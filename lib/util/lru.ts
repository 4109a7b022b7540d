// A map that keeps at most `capacity` entries, dropping the least recently used first: for the
// caches that spare repeated work on bytes a peer sends again and again (certificates,
// endorsements), whose size a peer must not be able to grow. With `weigh` and `maxWeight` it also
// keeps the entries' total weight (bytes, say) within maxWeight; one entry heavier than that is
// not kept at all.

export interface LruWeight<V> {
  weigh: (value: V) => number;
  maxWeight: number;
}

export class LruMap<K, V> {
  private readonly entries = new Map<K, V>();
  private total = 0;

  constructor(readonly capacity: number, private readonly weighing?: LruWeight<V>) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`an LruMap needs a capacity of at least 1, not ${capacity}`);
    if (weighing && !(weighing.maxWeight > 0)) throw new RangeError(`an LruMap needs a maxWeight above 0, not ${weighing.maxWeight}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The sum of the entries' weights (0 without `weigh`). */
  get totalWeight(): number {
    return this.total;
  }

  /** The value, now the most recently used; undefined when absent. */
  get(key: K): V | undefined {
    const v = this.entries.get(key);
    if (v === undefined) return undefined;
    // A Map iterates in insertion order: re-inserting moves the key to the most recent end.
    this.entries.delete(key);
    this.entries.set(key, v);
    return v;
  }

  /** Adds or replaces `key` as the most recently used, dropping the least recently used while full. */
  set(key: K, value: V): void {
    this.delete(key);
    const w = this.weighing ? this.weighing.weigh(value) : 0;
    if (this.weighing && w > this.weighing.maxWeight) return;
    while (this.entries.size > 0 && (this.entries.size >= this.capacity || (this.weighing && this.total + w > this.weighing.maxWeight))) {
      this.delete(this.entries.keys().next().value!);
    }
    this.entries.set(key, value);
    this.total += w;
  }

  delete(key: K): boolean {
    const v = this.entries.get(key);
    if (v === undefined && !this.entries.has(key)) return false;
    this.entries.delete(key);
    if (this.weighing) this.total -= this.weighing.weigh(v as V);
    return true;
  }

  clear(): void {
    this.entries.clear();
    this.total = 0;
  }
}

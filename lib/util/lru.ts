// A map that keeps at most `capacity` entries, dropping the least recently used first: for the
// caches that spare repeated work on bytes a peer sends again and again (certificates,
// endorsements), whose size a peer must not be able to grow.

export class LruMap<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`an LruMap needs a capacity of at least 1, not ${capacity}`);
  }

  get size(): number {
    return this.entries.size;
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

  /** Adds or replaces `key` as the most recently used, dropping the least recently used if full. */
  set(key: K, value: V): void {
    if (!this.entries.delete(key) && this.entries.size >= this.capacity) {
      this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(key, value);
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }
}

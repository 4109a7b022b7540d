// The cryptstore's changes: put, delete, import, rekey and repair, each one atomic write; what one deletes or replaces is compacted away after.

import { CertifierError } from '../lib/errors/index.ts';
import { seal, wipe } from '../lib/crypto/index.ts';
import { compactRange } from '../lib/files/index.ts';
import { MAX_VERSION, encode, parseCryptstoreMetadata, shown, tagProblem, type CryptstoreMetadata, type ValidEntry } from '../lib/wire/index.ts';
import type { Protector } from './protection.ts';
import * as L from './layout.ts';
import { writeFailed } from './db.ts';
import { checkBlob, checkTag, checkVersion, describeDeleted, infoOf, unlessDamaged, usedUp } from './checks.ts';
import { StoreReads } from './reads.ts';
import type { Deleted, EntryInfo, PutOptions, Repaired } from './types.ts';

export abstract class StoreChanges extends StoreReads {
  /** Stores `blob` as the next version of `tag`. */
  async put(tag: string, blob: Uint8Array, options: PutOptions = {}): Promise<EntryInfo> {
    checkTag(tag);
    checkBlob(blob);
    return this.exclusive(async () => {
      const st = await this.state(tag);
      const version = st.next + 1;
      if (version > MAX_VERSION) throw usedUp(tag);
      const entry = this.entryOf(tag, blob, version, options);
      const sealed = this.sealEntry(entry);
      await this.write(`${shown(tag, 256)} version ${version} was stored`, () => this.db.put(L.entryKey(tag, version), sealed, { sync: this.sync }));
      st.latest = st.next = version;
      return infoOf(entry);
    });
  }

  /** Stores several items as one atomic batch: all of them or none. */
  async putAll(items: { tag: string; blob: Uint8Array; options?: PutOptions }[]): Promise<EntryInfo[]> {
    for (const i of items) {
      checkTag(i.tag);
      checkBlob(i.blob);
    }
    return this.exclusive(async () => {
      const next = new Map<string, number>();
      const entries: ValidEntry[] = [];
      for (const i of items) {
        const version = (next.get(i.tag) ?? (await this.state(i.tag)).next) + 1;
        if (version > MAX_VERSION) throw usedUp(i.tag);
        next.set(i.tag, version);
        entries.push(this.entryOf(i.tag, i.blob, version, i.options ?? {}));
      }
      const ops = entries.map((e) => ({ type: 'put' as const, key: L.entryKey(e.tag, e.version), value: this.sealEntry(e) }));
      await this.write(`${entries.length} item version(s) were stored`, () => this.db.batch(ops, { sync: this.sync }));
      for (const [tag, v] of next) {
        const st = await this.state(tag);
        st.latest = st.next = v;
      }
      return entries.map(infoOf);
    });
  }

  /**
   * Deletes one version, or every record of the tag when `version` is 0: its versions, and any
   * record under it whose key names no version (written by something else: version 0, past
   * MAX_VERSION, not a number), which no version number could reach. Every version deleted while
   * the tag's high-water mark does not open (its versions all gone, or none left but that mark)
   * retires the tag: any number up to MAX_VERSION may have been given out, so the mark is replaced
   * with one there, and a later put is refused (see Deleted). One version is refused (INTEGRITY).
   */
  async delete(tag: string, version = 0): Promise<Deleted> {
    checkTag(tag);
    checkVersion(version, true);
    return this.exclusive(async () => {
      // Loaded first, as a read meanwhile finds it and sees it change; none for a tag whose latest
      // record does not open (a damaged one may be deleted, which get and put refuse).
      const st = await unlessDamaged(this.state(tag));
      const versions: number[] = [];
      const keys: string[] = [];
      if (version) {
        if ((await this.db.get(L.entryKey(tag, version))) === undefined) {
          throw new CertifierError('NOT_FOUND', `no version ${version} of ${shown(tag, 256)}`);
        }
        versions.push(version);
        keys.push(L.entryKey(tag, version));
      } else {
        for await (const key of this.db.keys(L.entryRange(tag))) {
          keys.push(key);
          const v = this.versionIn(tag, key);
          if (v !== undefined) versions.push(v);
        }
      }
      // The whole tag going with a mark that does not open retires it (below); read once.
      const retired = !version && (await this.markDamaged(tag));
      if (!version && keys.length === 0 && !retired) throw new CertifierError('NOT_FOUND', `no item tagged ${shown(tag, 256)}`);
      const damaged = keys.length - versions.length;
      // The high-water mark goes in the same atomic batch, so a deleted version is never reused:
      // the highest version used by what opens (a damaged record's number does not count). A mark
      // that does not open could have said any number: the whole tag going, none is given again;
      // one version going, usedOnDisk refuses it (INTEGRITY), as put does.
      const used = retired ? MAX_VERSION : await this.usedOnDisk(tag);
      const ops = [
        ...keys.map((key) => ({ type: 'del' as const, key })),
        { type: 'put' as const, key: L.markKey(tag), value: this.sealMark(tag, used) },
      ];
      const what = `${shown(tag, 256)} ${describeDeleted({ versions, damaged, ...(retired ? { retired } : {}) })} ${keys.length + (retired ? 1 : 0) > 1 ? 'were' : 'was'} deleted`;
      // A version deleted stays whole in LevelDB's files, sealed under the data key, until a
      // compaction reaches it: the store's key would still open it from them. Dropped now.
      const range = L.entryRange(tag);
      await this.write(retired ? `${what} (the tag retired)` : what, () => this.db.batch(ops, { sync: this.sync }),
        () => this.compactAway(range.gt, range.lt, what, 'what was deleted, sealed as it was', 'a later compaction drops it'));
      if (st && versions.includes(st.latest)) {
        // A new latest that does not open: get and put find it again, and refuse it.
        const latest = await unlessDamaged(this.latestOnDisk(tag));
        if (latest === undefined) this.states.delete(tag);
        else Object.assign(st, { latest, next: Math.max(latest, used) });
      } else if (st) st.next = Math.max(st.latest, used);
      return { versions, damaged, ...(retired ? { retired: true as const } : {}) };
    });
  }

  /**
   * Adds entries with their own versions (import). Refuses, writing nothing, when any
   * tag+version already exists, or is a version number this store used for the tag before (a
   * deleted one: version numbers are never reused), unless `force`, which replaces and restores
   * them. The tag's high-water mark rises to the highest version imported. The last version
   * number (MAX_VERSION) is refused too unless `force`: the tag could then take no later version.
   */
  async importEntries(entries: ValidEntry[], force = false): Promise<EntryInfo[]> {
    const seen = new Set<string>();
    for (const e of entries) {
      checkTag(e.tag);
      checkBlob(e.blob);
      const k = L.entryKey(e.tag, e.version);
      if (seen.has(k)) throw new CertifierError('INVALID_INPUT', `the bundle holds version ${e.version} of ${shown(e.tag, 256)} twice`);
      seen.add(k);
    }
    const last = entries.filter((e) => e.version === MAX_VERSION).map((e) => `${shown(e.tag, 256)} v${e.version}`);
    if (!force && last.length) {
      const one = last.length === 1;
      throw new CertifierError('INVALID_INPUT', `${last.join(', ')} ${one ? 'is' : 'are'} the highest version number: imported, it would leave the tag${one ? '' : 's'} no version for a later put-item or key-client to store; nothing was imported (--force imports ${one ? 'it' : 'them'})`);
    }
    return this.exclusive(async () => {
      const marks = new Map<string, number>(); // tag -> the highest version number used, after the import
      const clashes: string[] = [];
      const replaced = new Set<string>(); // the tags of the clashes
      const reused: string[] = [];
      for (const e of entries) {
        const st = await this.state(e.tag);
        if ((await this.db.get(L.entryKey(e.tag, e.version))) !== undefined) {
          clashes.push(`${shown(e.tag, 256)} v${e.version}`);
          replaced.add(e.tag);
        } else if (e.version <= st.next) reused.push(`${shown(e.tag, 256)} v${e.version}`);
        marks.set(e.tag, Math.max(marks.get(e.tag) ?? st.next, e.version));
      }
      if (!force && clashes.length) {
        throw new CertifierError('ALREADY_EXISTS', `the store already holds ${clashes.join(', ')}; nothing was imported (--force replaces them)`);
      }
      if (!force && reused.length) {
        throw new CertifierError('ALREADY_EXISTS', `${reused.join(', ')} ${reused.length === 1 ? 'is' : 'are'} not in this store but at or below the highest version it has used for the tag: such a version may have been deleted, and a version number is never given to other bytes; nothing was imported (--force imports them)`);
      }
      const ops = entries.map((e) => ({ type: 'put' as const, key: L.entryKey(e.tag, e.version), value: this.sealEntry(e) }));
      for (const [tag, mark] of marks) ops.push({ type: 'put' as const, key: L.markKey(tag), value: this.sealMark(tag, mark) });
      const imported = `${entries.length} item version(s) were imported`;
      await this.write(imported, () => this.db.batch(ops, { sync: this.sync }), async () => {
        for (const tag of marks.keys()) this.states.delete(tag);
        // What a forced import replaced stays whole in LevelDB's files, as a version deleted does.
        for (const tag of replaced) {
          const range = L.entryRange(tag);
          await this.compactAway(range.gt, range.lt, imported, `the versions of ${shown(tag, 256)} it replaced, sealed as they were`, 'a later compaction drops them');
        }
      });
      return entries.map(infoOf);
    });
  }

  /** Re-wraps the data key for a new protector; entries are not re-encrypted. */
  async rekey(protector: Protector): Promise<void> {
    return this.exclusive(async () => {
      const { params, kek } = await protector.create();
      const meta: CryptstoreMetadata = {
        ...this.meta,
        protection: { ...params, wrappedDataKey: seal(kek, this.dataKey, L.dataKeyAad(this.meta.storeId, params)) },
      };
      wipe(kek);
      const bytes = encode('cryptstore_metadata', meta);
      const rekeyed = `the store was rekeyed: it now opens with ${protector.description} only`;
      // The metadata replaced, the data key wrapped for the old passphrase or key file, would stay
      // whole in LevelDB's files until a compaction reached it: the old one would open every item,
      // later ones too, from a copy of the files. Dropped now.
      await this.write(rekeyed, async () => {
        await this.db.put(L.META_KEY, bytes, { sync: true });
        this.meta = parseCryptstoreMetadata(bytes);
      }, () => this.compactAway(L.META_KEY, L.META_KEY, rekeyed, 'the data key wrapped for the old one', 'rekey the store again once that is fixed'));
    });
  }

  /**
   * Clears what verify finds that no delete-item can: removes every record under a key this store
   * never writes (no tag: `e!` without a NUL, a prefix it does not use, a tag no name may be; or a
   * tag's key naming no version), and replaces each high-water mark that does not open with one at
   * the highest version its tag's keys name, so the next put goes above every version present (the
   * numbers deleted above those are forgotten with the mark: it cannot be read). One atomic batch.
   * Never removes a record that opens under this store's key (an entry whose tag no name may be is
   * removed only if it does not open), nor a damaged entry under a key it writes: that is
   * delete-item's, by version. What it did, in key order; nothing is written if nothing is to do.
   */
  async repair(): Promise<Repaired[]> {
    return this.exclusive(async () => {
      const done: Repaired[] = [];
      const ops: ({ type: 'del'; key: string } | { type: 'put'; key: string; value: Uint8Array })[] = [];
      for await (const [key, raw] of this.db.iterator()) {
        if (key === L.META_KEY) continue;
        const entry = L.parseEntryKey(key);
        const markTag = key.startsWith(L.MARK_PREFIX) ? key.slice(L.MARK_PREFIX.length) : undefined;
        if (entry && !tagProblem(entry.tag)) continue; // ours, opening or not
        if (markTag !== undefined && !tagProblem(markTag)) {
          if (this.opens(() => this.openMark(markTag, raw))) continue;
          const used = await this.highestNamed(markTag);
          ops.push(used ? { type: 'put', key, value: this.sealMark(markTag, used) } : { type: 'del', key });
          done.push({ key: shown(key, 256), done: `replaced (versions from ${used + 1} on)` });
          continue;
        }
        if (entry && this.opens(() => this.checkEntry(entry.tag, entry.version, raw))) continue;
        if (markTag !== undefined && this.opens(() => this.openMark(markTag, raw))) continue;
        ops.push({ type: 'del', key });
        done.push({ key: shown(key, 256), done: 'removed' });
      }
      if (ops.length === 0) return done;
      await this.write(`${done.length} record(s) verify-store named were repaired (removed, or a damaged version record replaced)`, () => this.db.batch(ops, { sync: this.sync }));
      this.states.clear();
      return done;
    });
  }

  /**
   * After the change `done` was written: has LevelDB drop from its files what it replaced or
   * deleted between `start` and `end` (compactRange). FILE_ERROR when it cannot, saying the change
   * stands but its files may still hold `left`, and what to do (`then`).
   */
  private compactAway(start: string, end: string, done: string, left: string, then: string): Promise<void> {
    return compactRange(this.db, start, end).catch((e: unknown) => {
      this.reopener.failed();
      return writeFailed(this.path)(e).catch((failed: unknown) => {
        throw new CertifierError('FILE_ERROR', `${done}, but LevelDB's files may still hold ${left}, which could not be compacted away (${(failed as Error).message}): ${then}`, { cause: e });
      });
    });
  }
}

// The cryptstore's reads: an entry, whether a tag has one, listing, the entries export takes, and verify.

import { CertifierError } from '../lib/errors/index.ts';
import { bytesEqual, wipe } from '../lib/crypto/index.ts';
import { shown, tagProblem } from '../lib/wire/index.ts';
import * as L from './layout.ts';
import { checkTag, checkVersion, infoOf, unknownRecord } from './checks.ts';
import { StoreRecords } from './records.ts';
import type { Entry, EntryInfo, VerifyReport } from './types.ts';

export abstract class StoreReads extends StoreRecords {
  /** The entry `tag` at `version`, or its latest version when `version` is 0. */
  async get(tag: string, version = 0): Promise<Entry> {
    checkTag(tag);
    checkVersion(version, true);
    return this.reopener.using(async () => {
      const v = version || (await this.state(tag)).latest;
      if (v === 0) throw new CertifierError('NOT_FOUND', `no item tagged ${shown(tag, 256)}`);
      // A synchronous read: a cached LevelDB block is microseconds, and the asynchronous path
      // costs more than that in thread hand-offs and garbage (see the benchmark notes in the README).
      const raw = this.db.getSync(L.entryKey(tag, v));
      if (raw === undefined) throw new CertifierError('NOT_FOUND', `no version ${v} of ${shown(tag, 256)}`);
      return this.openEntry(tag, v, raw);
    });
  }

  /** Whether `tag` has any version now. */
  async has(tag: string): Promise<boolean> {
    checkTag(tag);
    return this.reopener.using(async () => (await this.state(tag)).latest > 0);
  }

  /**
   * The latest version of `tag` when it holds `blob`, else undefined, as the store on disk has it:
   * asked after a put that failed with FILE_ERROR, which may have been made all the same. The
   * database is reopened first (as before any change after a failed write), and LevelDB keeps
   * then what its log holds, a write whose sync failed included. FILE_ERROR when it cannot be
   * reopened, INTEGRITY when that latest record does not open.
   */
  async latestIf(tag: string, blob: Uint8Array): Promise<EntryInfo | undefined> {
    checkTag(tag);
    return this.exclusive(async () => {
      const { latest } = await this.state(tag);
      const raw = latest ? await this.db.get(L.entryKey(tag, latest)) : undefined;
      if (raw === undefined) return undefined;
      const { blob: held, ...info } = this.openEntry(tag, latest, raw);
      try {
        return bytesEqual(held, blob) ? info : undefined;
      } finally {
        wipe(held);
      }
    });
  }

  /** Metadata of every entry (every version of every tag), sorted by tag then version. */
  list(): Promise<EntryInfo[]> {
    return this.reopener.using(() => this.listAll());
  }

  private async listAll(): Promise<EntryInfo[]> {
    const out: EntryInfo[] = [];
    await this.eachEntry(({ blob, ...info }) => {
      wipe(blob);
      out.push(info);
    });
    return out;
  }

  /**
   * The entries `keep` takes (told of each in key order, by what its record says), each record
   * decrypted once: export reads its values in the same pass as it learns which are exportable
   * (that flag is sealed with the value). The value of an entry not taken is wiped at once; if
   * `keep` throws, so are those taken. The caller wipes the values it gets.
   */
  entriesWhere(keep: (info: EntryInfo) => boolean): Promise<Entry[]> {
    return this.reopener.using(async () => {
      const out: Entry[] = [];
      try {
        await this.eachEntry((e) => {
          let taken = false;
          try {
            taken = keep(infoOf(e));
          } finally {
            if (taken) out.push(e);
            else wipe(e.blob);
          }
        });
        return out;
      } catch (err) {
        wipe(...out.map((e) => e.blob));
        throw err;
      }
    });
  }

  /** Opens every entry in key order; INTEGRITY for one that does not open or a key that names no version. */
  private async eachEntry(fn: (e: Entry) => void): Promise<void> {
    for await (const [key, raw] of this.db.iterator(L.ALL_ENTRIES)) {
      const k = L.parseEntryKey(key);
      if (!k) throw new CertifierError('INTEGRITY', `the cryptstore holds a record with a damaged key (${shown(key, 256)}): verify-store names every such record, and verify-store --repair --yes removes them`);
      fn(this.openEntry(k.tag, k.version, raw));
    }
  }

  /** Decrypts and checks every record; never throws for a damaged record, reports it. */
  verify(): Promise<VerifyReport> {
    return this.reopener.using(() => this.verifyAll());
  }

  private async verifyAll(): Promise<VerifyReport> {
    const problems: VerifyReport['problems'] = [];
    const tags = new Set<string>();
    let entries = 0;
    for await (const [key, raw] of this.db.iterator()) {
      if (key === L.META_KEY) continue;
      // A record not written here may have a key of any length: named cut short, escaped.
      const named = shown(key, 256);
      try {
        const e = L.parseEntryKey(key);
        if (e) {
          this.checkEntry(e.tag, e.version, raw);
          entries++;
          tags.add(e.tag);
        } else if (key.startsWith(L.MARK_PREFIX) && !tagProblem(key.slice(L.MARK_PREFIX.length))) {
          this.openMark(key.slice(L.MARK_PREFIX.length), raw);
        } else {
          problems.push({ key: named, problem: unknownRecord(key) });
        }
      } catch (err) {
        problems.push({ key: named, problem: (err as Error).message });
      }
    }
    return { entries, tags: tags.size, problems };
  }
}

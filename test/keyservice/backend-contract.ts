// The contract every key-server storage backend must meet, as one mocha suite: run it with
// runBackendContract(name, factory) from each backend's test file (LevelDB now, PostgreSQL later).

import { expect } from 'chai';
import { randomBytes } from '../../lib/crypto/index.ts';
import { CertifierError } from '../../lib/errors/index.ts';
import type { KeyBackend, StoredRecord } from '../../lib/keyservice/backend.ts';
import { DELETE_LISTED } from '../../lib/keyservice/protocol.ts';
import { rejects } from '../support/rejects.ts';

export interface BackendFixture {
  backend: KeyBackend;
  /** Closes the current backend and removes its storage. */
  cleanup(): Promise<void>;
  /** Closes the backend and opens a new one on the same storage (as a restart would). */
  reopen?(): Promise<KeyBackend>;
  /**
   * Sets `name`'s high-water mark to `high`, or removes it, behind the backend's back (damage, or
   * a mistaken hand in the database), and returns the backend to go on with.
   */
  tamperMark?(name: string, high: number | undefined): Promise<KeyBackend>;
}


/** A record as KeyStore would build it, with recognizable "ciphertext". */
export function recordFor(name: string, version: number, o: { type?: string; exportable?: boolean; size?: number } = {}): StoredRecord {
  return {
    name, version, type: o.type ?? 'binary-blob', exportable: o.exportable ?? false,
    timeEntered: new Date(Date.UTC(2025, 0, 1, 0, 0, version)).toISOString(), size: o.size ?? 32, ciphertext: randomBytes(60),
  };
}

const INFO_KEYS = ['name', 'version', 'type', 'exportable', 'timeEntered', 'size'];
/** Code point order, which is what UTF-8 byte order (LevelDB, PostgreSQL "C") gives. */
const byCodePoint = (a: string, b: string) => {
  const x = Array.from(a, (c) => c.codePointAt(0)!);
  const y = Array.from(b, (c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
};

export function runBackendContract(name: string, factory: () => Promise<BackendFixture>): void {
  describe(`KeyBackend contract: ${name}`, function () {
    let fx: BackendFixture;
    let b: KeyBackend;
    const put = (n: string, o?: Parameters<typeof recordFor>[2], expected?: number) => b.append(n, (v) => recordFor(n, v, o), expected);
    const versions = async (n: string) => (await b.list(n, { allVersions: true })).filter((i) => i.name === n).map((i) => i.version);

    beforeEach(async () => {
      fx = await factory();
      b = fx.backend;
    });
    afterEach(async () => fx.cleanup());

    it('gives each name versions 1, 2, 3 ... of its own', async () => {
      expect((await put('a')).version).to.equal(1);
      expect((await put('a')).version).to.equal(2);
      expect((await put('b')).version).to.equal(1);
      expect((await put('a')).version).to.equal(3);
    });

    it('returns the record it stored, field for field, by explicit version and as the latest', async () => {
      const first = await put('k', { type: 'X509-der-cert', exportable: true, size: 7 });
      const second = await put('k', { type: 'other', exportable: false, size: 0 });
      expect(await b.get('k', 1)).to.deep.equal(first);
      expect(await b.get('k', 2)).to.deep.equal(second);
      expect(await b.get('k', 0)).to.deep.equal(second);
      expect((await b.get('k', 0))!.ciphertext).to.deep.equal(second.ciphertext);
    });

    it('answers undefined for an absent name or version', async () => {
      await put('k');
      expect(await b.get('k', 2)).to.equal(undefined);
      expect(await b.get('nothing', 0)).to.equal(undefined);
      expect(await b.get('nothing', 1)).to.equal(undefined);
    });

    it('deletes one version, leaving the others', async () => {
      for (let i = 0; i < 3; i++) await put('k');
      expect(await b.delete('k', 2)).to.deep.equal({ count: 1, versions: [2] });
      expect(await b.get('k', 2)).to.equal(undefined);
      expect((await b.get('k', 0))!.version).to.equal(3);
      expect(await versions('k')).to.deep.equal([1, 3]);
      expect(await b.delete('k', 2)).to.deep.equal({ count: 0, versions: [] });
    });

    it('falls back to the previous version when the latest is deleted, and never reuses the deleted number', async () => {
      for (let i = 0; i < 3; i++) await put('k');
      expect(await b.delete('k', 3)).to.deep.equal({ count: 1, versions: [3] });
      expect((await b.get('k', 0))!.version).to.equal(2);
      expect((await put('k')).version).to.equal(4);
    });

    it('never returns a deleted version to a read repeated after the delete', async () => {
      for (let i = 0; i < 3; i++) await put('k');
      for (let i = 0; i < 2; i++) expect([(await b.get('k', 0))?.version, (await b.get('k', 2))?.version]).to.deep.equal([3, 2]);
      await b.delete('k', 3);
      await b.delete('k', 2);
      expect([(await b.get('k', 0))?.version, await b.get('k', 2), await b.get('k', 3)]).to.deep.equal([1, undefined, undefined]);
      await b.delete('k', 0);
      expect([await b.get('k', 0), await b.get('k', 1)]).to.deep.equal([undefined, undefined]);
    });

    it('never returns a deleted version after the delete, to reads that ran alongside it', async () => {
      for (let i = 0; i < 2; i++) await put('k');
      const reads = Array.from({ length: 20 }, (_, i) => b.get('k', i % 2 ? 2 : 0));
      let done = false;
      const deleted = b.delete('k', 2).finally(() => (done = true));
      // Reads started on every turn until the delete is acknowledged: some while it is on its way to disk.
      while (!done) {
        reads.push(b.get('k', 2), b.get('k', 0));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(reads);
      expect(await deleted).to.deep.equal({ count: 1, versions: [2] });
      expect([(await b.get('k', 0))?.version, await b.get('k', 2)]).to.deep.equal([1, undefined]);
    });

    it('hands out records whose changes by the caller do not reach the stored one', async () => {
      const stored = await put('k');
      const first = (await b.get('k', 1))!;
      first.ciphertext.fill(0);
      first.size = 99;
      expect(await b.get('k', 1)).to.deep.equal(stored);
    });

    it('deletes every version with version 0, and numbering goes on after them', async () => {
      for (let i = 0; i < 3; i++) await put('k');
      expect(await b.delete('k', 0)).to.deep.equal({ count: 3, versions: [1, 2, 3] });
      expect(await b.get('k', 0)).to.equal(undefined);
      expect(await b.list('k')).to.deep.equal([]);
      expect(await b.delete('k', 0)).to.deep.equal({ count: 0, versions: [] });
      expect((await put('k')).version).to.equal(4);
    });

    it('counts every version a delete of all removes, naming only the lowest as many as asked for', async () => {
      for (let i = 0; i < 5; i++) await put('k');
      await b.delete('k', 2);
      expect(await b.delete('k', 0, 2)).to.deep.equal({ count: 4, versions: [1, 3] });
      expect(await b.list('k', { allVersions: true })).to.deep.equal([]);
      for (const listed of [0, DELETE_LISTED + 1]) {
        let thrown: unknown;
        await b.delete('k', 0, listed).catch((e: unknown) => (thrown = e));
        expect(thrown).to.be.instanceOf(RangeError);
      }
    });

    it('never reuses deleted versions across a reopen', async function () {
      if (!fx.reopen) this.skip();
      for (let i = 0; i < 3; i++) await put('all');
      for (let i = 0; i < 3; i++) await put('top');
      for (let i = 0; i < 3; i++) await put('under');
      await b.delete('all', 0);
      await b.delete('top', 3);
      // The latest deleted, then an older one: the highest number given is 3, not the latest left (2).
      await b.delete('under', 3);
      await b.delete('under', 1);
      b = await fx.reopen!();
      expect(await b.get('all', 0)).to.equal(undefined);
      expect((await b.get('top', 0))!.version).to.equal(2);
      expect((await put('all')).version).to.equal(4);
      expect((await put('top')).version).to.equal(4);
      expect((await put('under')).version).to.equal(4);
    });

    it('numbers on after the highest stored version when the high-water mark was lowered or removed', async function () {
      if (!fx.tamperMark) this.skip();
      for (let i = 0; i < 2; i++) await put('tm/a');
      for (let i = 0; i < 3; i++) await put('tm/b');
      b = await fx.tamperMark('tm/a', 0);
      b = await fx.tamperMark('tm/b', undefined);
      expect((await put('tm/a')).version).to.equal(3);
      expect((await put('tm/b')).version).to.equal(4);
      expect((await put('tm/a')).version).to.equal(4);
      expect(await versions('tm/a')).to.deep.equal([1, 2, 3, 4]);
    });

    it('deletes by the records when the high-water mark was removed, and numbers on after them', async function () {
      if (!fx.tamperMark) this.skip();
      for (let i = 0; i < 3; i++) await put('tm/c');
      b = await fx.tamperMark('tm/c', undefined);
      expect(await b.delete('tm/c', 2)).to.deep.equal({ count: 1, versions: [2] });
      b = await fx.tamperMark('tm/c', undefined);
      expect(await b.delete('tm/c', 0)).to.deep.equal({ count: 2, versions: [1, 3] });
      expect(await b.delete('never/stored', 0)).to.deep.equal({ count: 0, versions: [] });
      expect((await put('tm/c')).version, 'never a number given before').to.equal(4);
    });

    it('deletes by the records when the high-water mark was lowered below them, and numbers on after them', async function () {
      if (!fx.tamperMark) this.skip();
      for (let i = 0; i < 4; i++) await put('tm/d');
      b = await fx.tamperMark('tm/d', 1);
      expect(await b.delete('tm/d', 0)).to.deep.equal({ count: 4, versions: [1, 2, 3, 4] });
      expect((await put('tm/d')).version, 'never a number given before').to.equal(5);
    });

    it('keeps its records across a reopen', async function () {
      if (!fx.reopen) this.skip();
      const r = await put('kept', { exportable: true });
      b = await fx.reopen!();
      expect(await b.get('kept', 0)).to.deep.equal(r);
    });

    it('refuses an append whose expectedLatest is not the latest version with VERSION_CONFLICT', async () => {
      expect((await put('k', {}, 0)).version).to.equal(1);
      await rejects(put('k', {}, 0), 'VERSION_CONFLICT');
      expect((await put('k', {}, 1)).version).to.equal(2);
      await rejects(put('k', {}, 1), 'VERSION_CONFLICT');
      await rejects(put('k', {}, 3), 'VERSION_CONFLICT');
      await b.delete('k', 2);
      expect((await put('k', {}, 1)).version).to.equal(3);
      expect(await versions('k')).to.deep.equal([1, 3]);
    });

    it('stores nothing and spends no version when the record builder throws', async () => {
      await put('k');
      try {
        await b.append('k', () => {
          throw new Error('builder failed');
        });
        expect.fail('append resolved');
      } catch (e) {
        expect((e as Error).message).to.equal('builder failed');
      }
      expect(await versions('k')).to.deep.equal([1]);
      expect((await put('k')).version).to.equal(2);
    });

    it('refuses (INTERNAL) a record built for another name or version, storing nothing under either', async () => {
      await put('k');
      for (const wrong of [recordFor('other', 2), recordFor('k', 3)]) {
        const e = await rejects(b.append('k', () => wrong), 'INTERNAL');
        expect(e.message).to.contain(`"${wrong.name}" version ${wrong.version}, not version 2`);
      }
      expect(await versions('k')).to.deep.equal([1]);
      expect(await b.get('other', 0)).to.equal(undefined);
      expect((await put('k')).version).to.equal(2);
    });

    it('gives check the latest version under the append\'s lock; a check that throws stores nothing and spends no version', async () => {
      const seen: number[] = [];
      const watched = (n: string) => b.append(n, (v) => recordFor(n, v), undefined, (latest) => void seen.push(latest));
      await watched('c');
      await watched('c');
      await b.delete('c', 2);
      await watched('c');
      await b.delete('c', 0);
      await watched('c');
      expect(seen).to.deep.equal([0, 1, 1, 0]);
      const refused = await rejects(b.append('c', (v) => recordFor('c', v), undefined, () => {
        throw new CertifierError('BAD_FIELD', 'no');
      }), 'BAD_FIELD');
      expect(refused.message).to.equal('no');
      expect(await versions('c')).to.deep.equal([4]);
      expect((await put('c')).version).to.equal(5);
    });

    it('lists the latest version of each name under a prefix, sorted, without ciphertext', async () => {
      for (const n of ['b', 'a/c', 'a', 'ab', 'a/b', 'a/b', 'é', 'z', 'a/c', 'a/c']) await put(n);
      const all = await b.list('');
      expect(all.map((i) => `${i.name}@${i.version}`)).to.deep.equal(['a@1', 'a/b@2', 'a/c@3', 'ab@1', 'b@1', 'z@1', 'é@1']);
      for (const i of all) expect(Object.keys(i)).to.have.members(INFO_KEYS).and.have.length(INFO_KEYS.length);
      expect((await b.list('a/')).map((i) => i.name)).to.deep.equal(['a/b', 'a/c']);
      expect((await b.list('a')).map((i) => i.name)).to.deep.equal(['a', 'a/b', 'a/c', 'ab']);
      expect(await b.list('nothing')).to.deep.equal([]);
      const names = all.map((i) => i.name);
      expect([...names].sort(byCodePoint)).to.deep.equal(names);
    });

    it('lists the latest version of names with many versions, deleted ones among them, each name once', async () => {
      await put('a');
      for (let i = 0; i < 30; i++) await put('b');
      for (let i = 0; i < 5; i++) await put('c');
      await put('d');
      await b.delete('b', 30);
      await b.delete('c', 2);
      expect((await b.list('')).map((i) => `${i.name}@${i.version}`)).to.deep.equal(['a@1', 'b@29', 'c@5', 'd@1']);
      expect((await b.list('', { limit: 2 })).map((i) => `${i.name}@${i.version}`)).to.deep.equal(['a@1', 'b@29']);
      expect((await b.list('', { after: 'b', limit: 2 })).map((i) => `${i.name}@${i.version}`)).to.deep.equal(['c@5', 'd@1']);
    });

    it('lists every version with allVersions, sorted by name then version, and honours limit', async () => {
      for (const n of ['b', 'a', 'a', 'c', 'a', 'b']) await put(n, { size: 5 });
      await b.delete('a', 2);
      const every = await b.list('', { allVersions: true });
      expect(every.map((i) => `${i.name}@${i.version}`)).to.deep.equal(['a@1', 'a@3', 'b@1', 'b@2', 'c@1']);
      for (const i of every) {
        expect(Object.keys(i)).to.have.members(INFO_KEYS).and.have.length(INFO_KEYS.length);
        expect(i).to.include({ type: 'binary-blob', exportable: false, size: 5 });
      }
      expect((await b.list('', { allVersions: true, limit: 3 })).map((i) => `${i.name}@${i.version}`)).to.deep.equal(['a@1', 'a@3', 'b@1']);
      expect((await b.list('b', { allVersions: true })).map((i) => `${i.name}@${i.version}`), 'only the names under the prefix').to.deep.equal(['b@1', 'b@2']);
      expect((await b.list('', { limit: 2 })).map((i) => `${i.name}@${i.version}`)).to.deep.equal(['a@3', 'b@2']);
      expect(await b.list('', { limit: 0 })).to.deep.equal([]);
    });

    it('lists in pages with after: each name once, in order, whatever the page size', async () => {
      // U+FF5A sorts before U+1D4B3 by code point, after it by UTF-16 unit: the order must be the first.
      const names = ['a', 'a/b', 'a/c', 'ab', 'b', 'é', '\uff5a', '\u{1d4b3}', '\u{1d4b3}x'];
      for (const n of [...names, 'a/b', 'b']) await put(n);
      const whole = (await b.list('')).map((i) => `${i.name}@${i.version}`);
      expect(whole.map((x) => x.split('@')[0])).to.deep.equal(names);
      for (const limit of [1, 2, 4]) {
        const paged: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await b.list('', { limit, ...(after === undefined ? {} : { after }) });
          paged.push(...page.map((i) => `${i.name}@${i.version}`));
          if (page.length < limit) break;
          after = page.at(-1)!.name;
        }
        expect(paged, `pages of ${limit}`).to.deep.equal(whole);
      }
      expect((await b.list('a', { after: 'a' })).map((i) => i.name)).to.deep.equal(['a/b', 'a/c', 'ab']);
      expect((await b.list('a/', { after: '0' })).map((i) => i.name), 'after before the prefix').to.deep.equal(['a/b', 'a/c']);
      expect(await b.list('a/', { after: 'a/c' })).to.deep.equal([]);
      expect((await b.list('', { after: 'é' })).map((i) => i.name)).to.deep.equal(['\uff5a', '\u{1d4b3}', '\u{1d4b3}x']);
      await rejects(b.list('', { after: 'a\nb' }), 'INVALID_INPUT');
    });

    it('records the storage key id once and refuses another one with WRONG_KEY', async () => {
      expect(await b.boundStorageKey!()).to.equal(undefined);
      await b.bindStorageKey!('11'.repeat(16));
      await b.bindStorageKey!('11'.repeat(16));
      await rejects(b.bindStorageKey!('22'.repeat(16)), 'WRONG_KEY');
      expect(await b.boundStorageKey!()).to.equal('11'.repeat(16));
    });

    it('gives 100 concurrent appends to one name versions 1..100, no gap, no duplicate', async () => {
      const results = await Promise.all(Array.from({ length: 100 }, () => put('busy')));
      expect(results.map((r) => r.version).sort((x, y) => x - y)).to.deep.equal(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(await versions('busy')).to.deep.equal(Array.from({ length: 100 }, (_, i) => i + 1));
      for (const r of results.slice(0, 10)) expect(await b.get('busy', r.version)).to.deep.equal(r);
    });

    it('keeps concurrent appends to different names apart', async () => {
      const names = ['p', 'q', 'r', 's'];
      await Promise.all(names.flatMap((n) => Array.from({ length: 10 }, () => put(n))));
      for (const n of names) expect(await versions(n)).to.deep.equal(Array.from({ length: 10 }, (_, i) => i + 1));
    });

    it('keeps names that are prefixes of each other apart', async () => {
      await put('key');
      await put('key');
      await put('key2');
      await put('key/x');
      expect((await b.get('key', 0))!.version).to.equal(2);
      expect(await b.delete('key', 0)).to.deep.equal({ count: 2, versions: [1, 2] });
      expect((await b.get('key2', 0))!.name).to.equal('key2');
      expect((await b.get('key/x', 0))!.name).to.equal('key/x');
      expect((await put('key2')).version).to.equal(2);
      expect((await b.list('key')).map((i) => `${i.name}@${i.version}`)).to.deep.equal(['key/x@1', 'key2@2']);
    });

    it('refuses bad names, versions and expected versions with INVALID_INPUT', async () => {
      await rejects(put(''), 'INVALID_INPUT');
      await rejects(put('a\u0000b'), 'INVALID_INPUT');
      await rejects(put('x'.repeat(257)), 'INVALID_INPUT');
      await rejects(b.get('a', -1), 'INVALID_INPUT');
      await rejects(b.get('a', 1.5), 'INVALID_INPUT');
      await rejects(put('a', {}, -1), 'INVALID_INPUT');
      await rejects(put('a', {}, 1.5), 'INVALID_INPUT');
      expect(await b.get('a', 0), 'nothing stored by a refused append').to.equal(undefined);
      await rejects(b.delete('', 0), 'INVALID_INPUT');
      await rejects(b.list('a\nb'), 'INVALID_INPUT');
    });
  });
}

// key-server serve's warning of a new, empty LevelDB database for a storage key made before it
// (cmd/key-server/level.ts): told by the time the key was first stored, with an allowance for
// clocks that step.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { STORAGE_KEY_TAG } from '../../lib/keyservice/server.ts';
import { CLOCK_ALLOWANCE_MS, newEmptyDatabase } from '../../cmd/key-server/level.ts';
import { tempDir } from '../support/helpers.ts';

describe('key-server: a new, empty database for an older storage key', () => {
  let tmp: ReturnType<typeof tempDir>;
  let level: LevelBackend;
  let created: number;
  let n = 0;
  before(async () => {
    tmp = tempDir('new-empty-');
    level = await LevelBackend.open(join(tmp.dir, 'data'));
    created = (await level.created())!.getTime();
  });
  after(async () => {
    await level.close();
    tmp.cleanup();
  });

  /** A store whose storage key's versions were stored `ago` ms before the database was made. */
  async function withKey(ago: number[], fn: (store: Cryptstore) => Promise<unknown>): Promise<void> {
    const store = await Cryptstore.create(join(tmp.dir, `store-${n++}`), new KeyFileProtector(randomBytes(32)));
    try {
      for (const a of ago) await store.put(STORAGE_KEY_TAG, randomBytes(32), { time: new Date(created - a) });
      await fn(store);
    } finally {
      await store.close();
    }
  }

  it('says so of a key stored more than the clock allowance before, not of one within it', async () => {
    await withKey([CLOCK_ALLOWANCE_MS + 1_000], async (s) => expect(await newEmptyDatabase(level, s, false)).to.equal(true));
    await withKey([CLOCK_ALLOWANCE_MS - 1_000], async (s) => expect(await newEmptyDatabase(level, s, false)).to.equal(false));
    // Nor of a database that holds records (a restored backup), whatever the times.
    await withKey([CLOCK_ALLOWANCE_MS + 1_000], async (s) => expect(await newEmptyDatabase(level, s, true)).to.equal(false));
  });

  it('goes by the time the key was first stored, not by its latest version', async () => {
    await withKey([60_000, 0], async (s) => expect(await newEmptyDatabase(level, s, false)).to.equal(true));
    // Version 1 deleted: the oldest left is the latest.
    await withKey([60_000, 0], async (s) => {
      await s.delete(STORAGE_KEY_TAG, 1);
      expect(await newEmptyDatabase(level, s, false)).to.equal(false);
    });
  });
});

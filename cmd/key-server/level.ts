// `key-server serve`'s LevelDB key database (--data): whether this start serves a new, empty one
// for a storage key made before it, most likely a mistyped restore path.

import type { Cryptstore } from '../../cryptstore/index.ts';
import { isCertifierError } from '../../lib/errors/index.ts';
import type { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { STORAGE_KEY_TAG } from '../../lib/keyservice/server.ts';

/** How much later than the storage key a database must have been made to be warned of: clocks step. */
export const CLOCK_ALLOWANCE_MS = 5_000;

/**
 * Whether the key database holds no record (`holdsRecords`, level.holdsRecords(), which the caller
 * asks once for its other uses too) and was made after the storage key was first stored
 * (by more than CLOCK_ALLOWANCE_MS). Asked at every start, so a start that failed (or was killed)
 * after making the database does not keep the next one from saying so. Not said of:
 *  - a fresh deployment started again before its first store: its first start made the database,
 *    then the key (startKeyServer), so the database is the older;
 *  - a database made before its time was recorded (no "!created"): nothing to tell by;
 *  - a database that holds records (a restored backup): it is served as it is;
 *  - PostgreSQL: the caller asks only with LevelDB.
 * Said, rightly, of a LevelDB standby that joined (its key stored at join) and then serves a new,
 * empty database rather than a copy of the primary's. A clock set back by more than the allowance
 * between storing the key and making the database hides it; one set back, between a first
 * start's making the database and its storing the key, could say it of a fresh deployment.
 */
export async function newEmptyDatabase(level: LevelBackend, store: Cryptstore, holdsRecords: boolean): Promise<boolean> {
  if (holdsRecords) return false;
  const created = await level.created();
  if (created === undefined || !(await store.has(STORAGE_KEY_TAG))) return false;
  const first = await store.get(STORAGE_KEY_TAG, 1).catch((e: unknown) => {
    if (isCertifierError(e, 'NOT_FOUND')) return store.get(STORAGE_KEY_TAG); // version 1 deleted
    throw e;
  });
  // Only its time is wanted: the key itself (opened again here) is wiped at once.
  first.blob.fill(0);
  return created.getTime() - Date.parse(first.timeEntered) > CLOCK_ALLOWANCE_MS;
}

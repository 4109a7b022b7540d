// A lock a process holds until it releases it or dies, however it dies: LevelDB's (an fcntl lock
// on DIR/LOCK of an empty LevelDB in DIR). The kernel drops it with its holder, so there is no
// stale lock to take over and no race in taking one over.

import { Level } from 'level';
import { CertifierError } from '../errors/index.ts';

/**
 * Takes the lock kept in `dir` (created if missing; its parent must exist). STORE_LOCKED with
 * `inUse` as the message when another process holds it.
 */
export async function holdLock(dir: string, inUse: string): Promise<() => Promise<void>> {
  const db = new Level(dir, { createIfMissing: true });
  try {
    await db.open();
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code === 'LEVEL_LOCKED') throw new CertifierError('STORE_LOCKED', inUse, { cause: e, details: { path: dir } });
    throw new CertifierError('FILE_ERROR', `cannot take the lock ${dir}: ${cause?.message ?? (e as Error).message}`, { cause: e });
  }
  return () => db.close();
}

// `key-server serve`'s LevelDB key database (--data): made at first start, and removed again by a
// start that made it and then failed (the port taken, say). Left, it would be served at the next
// start as a database already there: empty, without the warning a new one gets.

import { promises as fs } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { dirState } from '../../cryptstore/db.ts';
import { syncDir } from '../../lib/files/index.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { warn } from '../common/cli.ts';

/** LevelDB's own files: all that a database it has just made holds. */
const LEVEL_FILE = /^(CURRENT|LOCK|LOG|LOG\.old|MANIFEST-\d+|\d+\.(ldb|log|sst|dbtmp))$/;

/**
 * Opens (making if needed) the key database in `dir`. `discard`, for a start that fails: removes
 * the database when this start made it, that is when `dir` was missing or empty before, and it
 * still holds no record. Only LevelDB's files go; the directory too, and the parents made with
 * it, if this start made them and nothing else is left in them (an audit log that was written
 * stays, and so do they). An empty directory the operator made stays. Closes the database.
 */
export async function openLevel(program: string, dir: string): Promise<{ level: LevelBackend; discard: () => Promise<void> }> {
  const before = await dirState(dir).catch(() => 'other' as const);
  const made = await outermostMissing(dir);
  const level = await LevelBackend.open(dir);
  const discard = async () => {
    if (!level.made || (before !== 'missing' && before !== 'empty')) return;
    try {
      if ((await level.list('', { limit: 1 })).length > 0) return;
      await level.close();
      for (const name of await fs.readdir(dir)) if (LEVEL_FILE.test(name)) await fs.rm(join(dir, name), { force: true });
      // The directories this start made, innermost first, each only if empty (rmdir(2) refuses
      // one that is not, and the walk stops there).
      let left = resolve(dir);
      while (made !== undefined && (await fs.rmdir(left).then(() => true, () => false))) {
        const gone = left;
        left = dirname(left);
        if (gone === made) break;
      }
      await syncDir(left).catch(() => {});
    } catch {
      warn(program, `could not remove the key database ${dir} this start made: remove it before the next start`);
    }
  };
  return { level, discard };
}

/** The outermost of `dir` and its parents that does not exist (which making `dir` makes), if any. */
async function outermostMissing(dir: string): Promise<string | undefined> {
  let missing: string | undefined;
  for (let p = resolve(dir); p !== dirname(p); p = dirname(p)) {
    const gone = await fs.lstat(p).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
    if (!gone) break;
    missing = p;
  }
  return missing;
}

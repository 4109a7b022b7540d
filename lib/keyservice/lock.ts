// A lock a process holds until it releases it or dies, however it dies: LevelDB's (an fcntl lock
// on DIR/LOCK of an empty LevelDB in DIR). The kernel drops it with its holder, so there is no
// stale lock to take over and no race in taking one over.

import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import { Level } from 'level';
import { CertifierError } from '../errors/index.ts';
import { describeLevelFailure, modeText, ownDirProblem } from '../files/index.ts';

/**
 * Takes the lock kept in `dir` (made 0700 if missing; its parent must exist). STORE_LOCKED with
 * `inUse` as the message when another process holds it.
 */
export async function holdLock(dir: string, inUse: string): Promise<() => Promise<void>> {
  await lockDir(dir);
  const db = new Level(dir, { createIfMissing: true });
  try {
    await db.open();
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code === 'LEVEL_LOCKED') throw new CertifierError('STORE_LOCKED', inUse, { cause: e, details: { path: dir } });
    throw new CertifierError('FILE_ERROR', `cannot take the lock ${dir}: ${describeLevelFailure(e)}`, { cause: e });
  }
  return () => db.close();
}

/**
 * Makes the lock's directory, or checks the one there: a directory of this user's, never a link.
 * LevelDB writes its LOCK and LOG in it and renames a LOG it finds, which through a link planted at
 * the name would be done in someone else's directory. FILE_ERROR otherwise.
 */
async function lockDir(dir: string): Promise<void> {
  const refuse = (why: string, cause?: unknown) => new CertifierError('FILE_ERROR', `cannot take the lock ${dir}: ${why}`, { ...(cause ? { cause } : {}), details: { path: dir } });
  try {
    await fs.mkdir(dir, { mode: 0o700 }); // mkdir(2): fails on anything at the name, a link too
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw refuse(`no directory ${dirname(dir)}`, e);
    if (code !== 'EEXIST') throw refuse((e as Error).message, e);
  }
  // lstat, not stat: a link is refused (ownDirProblem), not followed.
  const st = await fs.lstat(dir).catch((e: Error) => Promise.reject(refuse(e.message, e)));
  const uid = process.getuid?.();
  const problem = ownDirProblem(st, uid);
  if (problem === 'a symbolic link') throw refuse('it is a symbolic link, and a lock is never taken through one: remove the link');
  if (problem === 'not a directory') throw refuse('it is not a directory');
  if (problem === "another user's") throw refuse(`it belongs to user ${st.uid}, not to this user (${uid}): run as that user (the service's), or remove it if it is left from another`);
  // Others who may write in it could plant links where LevelDB writes its files.
  if (problem) throw refuse(`others may write in it (mode ${modeText(st.mode)}): chmod go-w ${dir}`);
}

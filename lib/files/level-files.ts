// A LevelDB directory's files: made private, and compacted so that what was replaced or deleted
// leaves them.

import { promises as fs } from 'node:fs';
import type { Level } from 'level';
import { inDir } from './places.ts';

/**
 * Makes every regular file in `dir` 0600 (each named in `dir` as read, inDir: a directory named
 * through "link/.." is listed where the link leads). A file removed meanwhile (a compaction's old
 * table) is skipped; any other failure goes through `failed` (the file's path and the error).
 */
export async function tightenFiles(dir: string, failed: (path: string, e: unknown) => Error = (_, e) => e as Error): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    const path = inDir(dir, name);
    try {
      const st = await fs.lstat(path);
      if (st.isFile() && (st.mode & 0o077) !== 0) await fs.chmod(path, st.mode & 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw failed(path, e);
    }
  }
}

/**
 * Has LevelDB rewrite every file holding keys from `start` to `end` (its memtable and every level),
 * dropping what a later write replaced or deleted: until a compaction reaches it, it stays whole in
 * its files. (Node's Level is classic-level, whose compactRange its type leaves out.)
 */
export function compactRange(db: Level<string, Uint8Array>, start: string, end: string): Promise<void> {
  return (db as Level<string, Uint8Array> & { compactRange(start: string, end: string): Promise<void> }).compactRange(start, end);
}

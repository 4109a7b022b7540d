// Where a command's input comes from (--in FILE|-) and where a secret goes (--out FILE|-).

import { readFileLimited, readStdin, writeFileAtomic } from '../../lib/files/index.ts';

export async function readInput(path: string, limit: number): Promise<Uint8Array> {
  return path === '-' ? readStdin(limit) : readFileLimited(path, limit);
}

/**
 * Writes a secret to a file (0600, atomically; an existing file only with `force`), or returns
 * it for stdout when `path` is "-".
 */
export async function writeOutput(path: string, data: Uint8Array, force = false): Promise<Uint8Array | undefined> {
  if (path === '-') return data;
  await writeFileAtomic(path, data, { exclusive: !force });
  return undefined;
}

// Where a command's input comes from (--in FILE|-) and where a secret goes (--out FILE|-).

import { fstatSync, readlinkSync, type Stats } from 'node:fs';
import { modeText, readFileLimited, readStdin, refuseOwnFiles, refuseReplaceable, writeFileAtomic, type OwnFiles } from '../../lib/files/index.ts';
import { printableName } from '../../lib/wire/index.ts';
import { CertifierError } from '../../lib/errors/index.ts';
import type { Result } from './cli.ts';

export async function readInput(path: string, limit: number): Promise<Uint8Array> {
  return path === '-' ? readStdin(limit) : readFileLimited(path, limit);
}

/**
 * Before any work (a fetch, a key derived): refuses an --out FILE that is one of the command's own
 * files, or where another user could put their own in its place (refuseReplaceable); for "-", a
 * standard output that every user may read (refuseReadableStdout).
 */
export async function refuseOutput(path: string, own: OwnFiles): Promise<void> {
  if (path === '-') return refuseReadableStdout();
  refuseOwnFiles(path, own, `--out ${path}`);
  await refuseReplaceable(path);
}

/**
 * Refuses (FILE_ERROR) a standard output that is a regular file every user of the machine may read:
 * a shell's `> f` under umask 022 makes one 0644, and the secret would be anyone's. A pipe, a
 * terminal, or a file only its owner (and its group) may read, is taken.
 */
function refuseReadableStdout(): void {
  let st: Stats;
  try {
    st = fstatSync(1);
  } catch {
    return; // closed or odd: writing it fails, as before
  }
  if (!st.isFile() || !(st.mode & 0o004)) return;
  let name = 'a file';
  try {
    name = readlinkSync('/proc/self/fd/1');
  } catch {
    // no /proc: the file goes unnamed
  }
  throw new CertifierError('FILE_ERROR', `standard output is ${name}, a file every user of the machine may read (mode ${modeText(st.mode)}): the secret is not written there; make the file with umask 077 (or chmod 600 it) first, or give --out FILE, which is made 0600`);
}

/**
 * Writes a secret to a file (0600, atomically; an existing file only with `force`, never one of
 * the command's own files), or returns it for stdout when `path` is "-".
 */
export async function writeOutput(path: string, data: Uint8Array, force = false, own: OwnFiles = { dirs: [], files: [] }): Promise<Uint8Array | undefined> {
  if (path === '-') return data;
  refuseOwnFiles(path, own, `--out ${path}`);
  await writeFileAtomic(path, data, { exclusive: !force });
  return undefined;
}

/**
 * The result of an item written where --out said (writeOutput): its bytes for stdout, with them in
 * `valueBase64` under --json, or a line naming the file written.
 */
export function outputResult(out: string, raw: Uint8Array | undefined, json: Record<string, unknown>, item: { tag: string; version: number; size: number }): Result {
  if (raw) return { json: { ...json, valueBase64: Buffer.from(raw).toString('base64') }, raw };
  return { json, text: [`wrote ${printableName(out)}: ${printableName(item.tag)} version ${item.version} (${item.size} bytes)`] };
}

/**
 * A store command's own files: the store, and whatever unlocks it (a key or passphrase file; for
 * a sealed store the platform's files and the measurement, which the seal is derived from).
 */
export function storeFiles(
  o: { store: string; keyFile?: string | undefined; passphraseFile?: string | undefined; platformDir?: string | undefined; measurementFile?: string | undefined; vcek?: string | undefined },
  ...more: (string | undefined)[]
): OwnFiles {
  const given = (xs: (string | undefined)[]) => xs.filter((f): f is string => f !== undefined);
  return { dirs: given([o.store, o.platformDir]), files: given([o.keyFile, o.passphraseFile, o.measurementFile, o.vcek, ...more]) };
}

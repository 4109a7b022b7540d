// A file that decides who gets which secret (key-server's ACL, key-client's provisioning config):
// whoever can change it decides, so it must be changeable by no one but its owner (the program's
// user or root). A file, or any directory its opening looks a name up in (its own, those above it,
// and those its links lead through), that every user may write is refused; a file its group may
// write, or another user's, is warned of (a layout some choose on purpose: an admin group editing it).

import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { CertifierError } from '../errors/index.ts';
import { modeText } from './mode.ts';
import { directoriesLookedIn } from './places.ts';
import { readFileLimited } from './read.ts';

/** A directory an opening of the file looks a name up in, and its status. */
export interface LookedIn {
  path: string;
  st: Stats;
}

/** Such a file, in words: what it is ("the ACL file"), and what whoever changes it could do ("who could then give any machine any key"). */
export interface ControlFile {
  what: string;
  who: string;
}

/**
 * Why `file` (its status `st`) is refused, or what to warn of, or nothing. `dirs`: the
 * directories its opening looks names up in (directoriesLookedIn), the file's own last.
 */
export function controlFileProblem(c: ControlFile, file: string, st: Stats, dirs: LookedIn[], uid = process.getuid?.()): { refuse?: string; warn?: string } {
  const { who } = c;
  const where = (d: LookedIn) => `${c.what} ${file} ${d === dirs.at(-1) ? 'is in' : 'is reached through'} ${d.path}`;
  if (st.mode & 0o002) return { refuse: `${c.what} ${file} can be changed by every user of the machine (mode ${modeText(st.mode)}), ${who}: chmod o-w ${file}` };
  // A directory every user may write lets them put another file in its place, unless it is
  // sticky (/tmp): its own, or one above it or on a link's way (another directory, or link, in place of the next).
  const open = dirs.find((d) => d.st.mode & 0o002 && !(d.st.mode & 0o1000));
  if (open) {
    return { refuse: `${where(open)}, where every user of the machine may put another file in its place (mode ${modeText(open.st.mode)}), ${who}: move it, or chmod o-w ${open.path}` };
  }
  if (st.mode & 0o020) return { warn: `${c.what} ${file} can be changed by its group (mode ${modeText(st.mode)}), ${who}: chmod g-w ${file} unless that group is meant to` };
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) return { warn: `${c.what} ${file} belongs to another user (uid ${st.uid}), ${who}: chown root ${file} unless that user is meant to change it` };
  // The same of a directory it is looked up in: its group, or its owner, may put another file in its place.
  const grouped = dirs.find((d) => d.st.mode & 0o020 && !(d.st.mode & 0o1000));
  if (grouped) return { warn: `${where(grouped)}, where its group may put another file in its place (mode ${modeText(grouped.st.mode)}), ${who}: chmod g-w ${grouped.path} unless that group is meant to` };
  const owned = uid === undefined ? undefined : dirs.find((d) => d.st.uid !== uid && d.st.uid !== 0);
  if (owned) return { warn: `${where(owned)}, which belongs to another user (uid ${owned.st.uid}), who may put another file in its place, ${who}: move it to a directory of root's or your own unless that user is meant to change it` };
  return {};
}

/**
 * Reads such a file (at most `limit` bytes): INVALID_INPUT for one every user may change, the
 * warning returned for one its group or another user may. Its status is the file opened's, not
 * its name's again. `regularOnly`: refuse anything but a regular file without waiting on it.
 */
export async function readControlFile(c: ControlFile, file: string, limit: number, regularOnly = false): Promise<{ bytes: Uint8Array; warning?: string }> {
  const found = await Promise.all((await directoriesLookedIn(file)).map(async (path) => ({ path, st: await stat(path).catch(() => undefined) })));
  const dirs = found.filter((d): d is LookedIn => d.st !== undefined);
  let warning: string | undefined;
  const bytes = await readFileLimited(file, limit, {
    regularOnly,
    check: (st) => {
      const p = controlFileProblem(c, file, st, dirs);
      if (p.refuse) throw new CertifierError('INVALID_INPUT', p.refuse);
      warning = p.warn;
    },
  });
  return { bytes, ...(warning ? { warning } : {}) };
}

// The ACL file key-server reads at start and on SIGHUP. Whoever can change it decides which
// machine gets which key at the next reload: held to the rule on such files (lib/files
// control-file.ts), refused where every user may change it, warned of where its group or another
// user may.

import type { Stats } from 'node:fs';
import { controlFileProblem, readControlFile, type ControlFile, type LookedIn } from '../../lib/files/index.ts';
import { parseAcl, type Acl } from '../../lib/keyservice/acl.ts';
import { utf8Text } from '../../lib/util/json.ts';

export type { LookedIn };

const ACL_LIMIT = 1024 * 1024;
const ACL_FILE: ControlFile = { what: 'the ACL file', who: 'who could then give any machine any key' };

/** Why the ACL file (its status `st`) is refused, or what to warn of, or nothing (controlFileProblem). */
export function aclFileProblem(file: string, st: Stats, dirs: LookedIn[], uid = process.getuid?.()): { refuse?: string; warn?: string } {
  return controlFileProblem(ACL_FILE, file, st, dirs, uid);
}

/**
 * Reads and parses the ACL file: INVALID_INPUT for one every user may change (a start refused, a
 * reload failed with the ACL in force kept), the warning returned for one its group may change
 * and for rules that cannot do all they read as (Acl.warnings).
 * `regularOnly`: refuse anything but a regular file without waiting on it (a reload).
 */
export async function readAclFile(file: string, regularOnly = false): Promise<{ acl: Acl; warning?: string }> {
  const read = await readControlFile(ACL_FILE, file, ACL_LIMIT, regularOnly);
  const acl = parseAcl(utf8Text(read.bytes, `invalid ACL: the file ${file}`));
  // The file's own warning, then what its rules cannot do.
  const warning = [...(read.warning ? [read.warning] : []), ...acl.warnings].join('; ');
  return { acl, ...(warning ? { warning } : {}) };
}

/** What a log line (acl-loaded, reloaded) and check-acl --json say of an ACL: its rules, and its revoked serial numbers when it has any. */
export function aclCounts(acl: Acl): { rules: number; revoked?: number } {
  return { rules: acl.rules.length, ...(acl.revoked.length ? { revoked: acl.revoked.length } : {}) };
}

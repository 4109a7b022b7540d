// Backups of a LevelDB key database kept in one directory (key-server serve --backup-dir): each is
// DIR/keys-TIME, whole or absent (LevelBackend.backupTo). Pruning keeps the newest few, and clears
// away the partial copy a process that died while writing one left behind; it never takes one a
// server is using or has used in place, nor one of another key-server sharing the directory. The
// directory must be this user's alone (backupDirProblem).
//
// Whether a backup was served in place is told by its files first, since the system's list of
// held locks (also asked, where it can be read) is blind across PID namespaces (a container) and
// on overlayfs: LevelDB renames its info log LOG to LOG.old each time it opens a database, and a
// backup as written has been opened once (its writer's), so it holds LOG alone; one holding
// LOG.old has been opened since.

import { promises as fs } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { CertifierError } from '../errors/index.ts';
import { describeErrnoAt, inDir, makeOwnDirs, modeText, ownDirProblem, type MadeDirs, readFileLimited, realLocation } from '../files/index.ts';

/** The name of a backup made at `at`: keys-2026-12-05T11-30-00-000Z, which sorts by time. */
export function backupName(at: Date): string {
  return `keys-${at.toISOString().replace(/[:.]/g, '-')}`;
}

const BACKUP = /^keys-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/;
// keys-TIME.partial-PID-XXXXXX (LevelBackend.backupTo), or keys-TIME.partial-PID from before.
const PARTIAL = /^keys-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z\.partial-(\d+)(-[A-Za-z0-9]{6})?$/;

/**
 * Why a directory with these owner and mode is no place for backups, or undefined. Anyone else who
 * can write in it could plant names there (a link where a copy is being written, a keys-TIME of
 * their own to be restored from, an old one to roll back to) or take ours away; a sticky bit (as
 * on /tmp) still lets them plant names. So it must be this user's, and writable by no one else
 * (ownDirProblem); prepareBackupDir passes a stat, so a link to such a directory is taken.
 */
export function backupDirProblem(st: { uid: number; mode: number }, uid: number): string | undefined {
  const problem = ownDirProblem(st, uid);
  if (problem === "another user's") return `it belongs to user ${st.uid}, not to this user (${uid})`;
  if (problem === 'writable by its group' || problem === 'writable by others') return `others can write in it (mode ${modeText(st.mode)})`;
  return problem && `it is ${problem}`;
}

/**
 * Makes the backup directory if missing (0700); FILE_ERROR if it is not this user's alone. Returns
 * what it made (makeOwnDirs'), for a start refused later to remove again (unmakeDirs).
 */
export async function prepareBackupDir(dir: string): Promise<MadeDirs> {
  // In words (Node's message repeats the path, raw, with the call): "x is not a directory" for a
  // file on its way.
  // mkdir meeting a file at the name fails EEXIST, which would read "already exists".
  const refused = (e: unknown): never => {
    const why = (e as NodeJS.ErrnoException)?.code === 'EEXIST' ? 'it is not a directory' : describeErrnoAt(dir, e);
    throw new CertifierError('FILE_ERROR', `cannot use --backup-dir ${dir}: ${why}`, { cause: e });
  };
  const made = await makeOwnDirs(dir, 0o700).catch(refused);
  const st = await fs.stat(dir).catch(refused);
  const uid = process.getuid?.();
  const problem = uid === undefined ? undefined : backupDirProblem(st, uid);
  if (problem) throw new CertifierError('FILE_ERROR', `--backup-dir ${dir} is not safe for backups of keys: ${problem}; use a directory only this user can write in`, { details: { path: dir } });
  return made;
}

/**
 * Whether the key-server that named a partial copy after its process id may still be writing it:
 * this process, or a live process that is a key-server. Ids are handed out again (after a reboot,
 * say), so a live process of another program under that id left nothing to finish. Where its
 * command line cannot be read, it may be one. Clocks are not asked: one stepped since could make
 * a copy being written look older than it is.
 */
async function writerAlive(pid: number): Promise<boolean> {
  // Across PID namespaces (the writer in another container) the pid names no process here, or
  // another one: recentlyWritten keeps such a copy while it is being written.
  if (pid === process.pid) return true;
  if (!alive(pid)) return false;
  const command = await fs.readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => undefined);
  return command === undefined || command.includes('key-server');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** How long after its last change a partial copy may still be being written, whatever its pid says. */
const WRITING_MS = 10 * 60_000;

/**
 * Whether anything in the partial copy at `path` (or the directory itself) changed in the last
 * WRITING_MS, or its time is ahead of the clock: a writer in another PID namespace (another
 * container sharing the directory) looks gone to writerAlive, and its copy must not be removed
 * under it. One that cannot be looked at may be being written too.
 */
async function recentlyWritten(path: string): Promise<boolean> {
  try {
    let newest = (await fs.lstat(path)).mtimeMs;
    for (const f of await fs.readdir(path)) newest = Math.max(newest, (await fs.lstat(join(path, f)).catch(() => ({ mtimeMs: Infinity }))).mtimeMs);
    return Date.now() - newest < WRITING_MS;
  } catch {
    return true;
  }
}

/**
 * The file in a backup naming the storage key its records are sealed under (storageKeyId), written
 * by backupTo beside LevelDB's files; read here without opening the copy, which would change it.
 */
export const KEY_ID_FILE = 'STORAGE-KEY-ID';

/**
 * The file in a partial copy, from before LevelDB makes its database there until just before the
 * copy is renamed whole (backupTo): LevelBackend.open refuses a directory holding it unopened.
 */
export const UNFINISHED_FILE = 'UNFINISHED-BACKUP';

/** What a backup holds until it is served in place: LevelDB's own files, KEY_ID_FILE and, while partial, UNFINISHED_FILE. */
const BACKUP_FILE = /^(CURRENT|LOCK|LOG|LOG\.old|MANIFEST-\d+|\d+\.(ldb|log|sst)|STORAGE-KEY-ID|UNFINISHED-BACKUP)$/;

/**
 * What the directory `path` holds: a backup's files as it was written ('untouched'); those and
 * LOG.old, so LevelDB opened it since it was written ('opened': served in place, or being served);
 * or anything else, or it cannot be read ('other').
 */
async function contents(path: string): Promise<'untouched' | 'opened' | 'other'> {
  const files = await fs.readdir(path).catch(() => undefined);
  if (files === undefined || !files.every((f) => BACKUP_FILE.test(f))) return 'other';
  return files.includes('LOG.old') ? 'opened' : 'untouched';
}

/** More than a storage key id (32 hex digits) takes, and little enough to read at once. */
const KEY_ID_LIMIT = 256;

/** The storage key id the backup in `path` names (its KEY_ID_FILE, a small regular file), read without opening the copy; FILE_ERROR when it cannot be read. */
export async function backupKeyId(path: string): Promise<string> {
  return Buffer.from(await readFileLimited(inDir(path, KEY_ID_FILE), KEY_ID_LIMIT, { regularOnly: true })).toString('latin1');
}

/**
 * Whose the backup in `path` is: another key-server's when its KEY_ID_FILE names another storage
 * key than `keyId`; unknown when that file cannot be read (anything but a small regular file: a
 * FIFO put there is not waited on, nor a directory taken for another server's). A backup without
 * one (made before backups had it) may be ours, as every one is when `keyId` is not known.
 */
async function owner(path: string, keyId: string | undefined): Promise<'ours' | 'another' | 'unreadable'> {
  if (keyId === undefined) return 'ours';
  try {
    return (await backupKeyId(path)) === keyId ? 'ours' : 'another';
  } catch (e) {
    return (e as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT' ? 'ours' : 'unreadable';
  }
}

/**
 * The files locked through fcntl(2), as "major:minor:inode" (decimal), from Linux's /proc/locks,
 * whose lines read "1: POSIX  ADVISORY  WRITE 12345 fe:00:3572181 0 EOF" (the device in hex); a
 * waiter's line ("1: -> POSIX ...") counts too. Undefined where the list cannot be read.
 */
async function lockedFiles(list: string): Promise<Set<string> | undefined> {
  const text = await fs.readFile(list, 'latin1').catch(() => undefined);
  if (text === undefined) return undefined;
  const locked = new Set<string>();
  for (const m of text.matchAll(/ ([0-9a-f]+):([0-9a-f]+):(\d+) /g)) locked.add(`${parseInt(m[1]!, 16)}:${parseInt(m[2]!, 16)}:${m[3]}`);
  return locked;
}

/**
 * Whether the LevelDB in `path` may be open in some process (a key-server serving a backup in
 * place): its LOCK file is locked, as LevelDB holds it while open. Asked of the list of locks, not
 * by opening the database, which would change a backup's files. Where LOCK cannot be looked at, it
 * may be. No LOCK: no LevelDB was ever opened there. Where the list cannot be read (not Linux), or
 * does not show it (another PID namespace, overlayfs), LOG.old tells (contents).
 */
async function mayBeOpen(path: string, locked: Set<string> | undefined): Promise<boolean> {
  let st;
  try {
    st = await fs.stat(join(path, 'LOCK'), { bigint: true });
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ENOENT';
  }
  // dev_t as glibc encodes it (makedev).
  const major = ((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn);
  const minor = (st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn);
  return locked !== undefined && locked.has(`${major}:${minor}:${st.ino}`);
}

export interface Pruned { removed: string[]; ahead: string[]; inUse: string[]; otherFiles: string[]; opened: string[]; otherServer: string[]; unreadable: string[] }

/** What the log says of a prune: the names removed, and those kept and why. */
export function pruneReport(p: Pruned): Record<string, string> {
  const warnings = [
    // Named after the one just made: written while the clock was ahead. Kept, not counted.
    p.ahead.length && 'backups named after the one just written were made while the clock was ahead: they are kept and not counted in --backup-keep; remove them when they are not needed',
    p.inUse.length && `kept ${p.inUse.join(', ')}: its key database may be open in another process (a key-server serving it in place), so it is not counted in --backup-keep`,
    p.otherFiles.length && `kept ${p.otherFiles.join(', ')}: it holds files a backup does not (served in place?), so it is not counted in --backup-keep; remove it once what it holds (an audit log) is kept elsewhere`,
    p.opened.length && `kept ${p.opened.join(', ')}: it has been opened since it was written (served in place?), so it is not counted in --backup-keep; remove it once no key-server serves it`,
    p.otherServer.length && `kept ${p.otherServer.join(', ')}: backups of another key-server (another storage key) share this --backup-dir; they are never removed here nor counted in --backup-keep: give each key-server a --backup-dir of its own`,
    p.unreadable.length && `kept ${p.unreadable.join(', ')}: its ${KEY_ID_FILE} cannot be read (not a small regular file), so whose backup it is is unknown; it is not counted in --backup-keep: look at it`,
  ].filter((w) => w);
  const names = Object.entries({ pruned: p.removed, datedAhead: p.ahead, inUse: p.inUse, otherFiles: p.otherFiles, opened: p.opened, otherServer: p.otherServer, unreadable: p.unreadable }).filter(([, v]) => v.length > 0);
  return { ...Object.fromEntries(names.map(([k, v]) => [k, v.join(',')])), ...(warnings.length ? { warning: warnings.join('; ') } : {}) };
}

/** Where pruneBackups must look before it removes anything (see there). */
export interface PruneOptions {
  /** The data directory being served (which may be a backup put back in place). */
  live?: string;
  /** The backup just made, which is the newest whatever its name. */
  written?: string;
  /** This server's storage key id (storageKeyId): a backup naming another is another server's. */
  keyId?: string;
  /** Linux's list of held locks. */
  locks?: string;
}

/**
 * Removes all but the newest `keep` backups in `given` (none, with `keep` undefined: no
 * --backup-keep), and partial copies whose writer is gone (no such process, or what runs under its
 * id now is no key-server: writerAlive) and that did not change lately (recentlyWritten). Returns
 * the names removed. Nothing else in `given` is touched, and never `live` (the data directory being
 * served, which may be a backup put back in place), one whose key database may be open in another
 * process (`locks`, Linux's list of held locks, says so), one holding files a backup does not (the
 * audit log of a server that served it in place), one LevelDB opened since it was written (LOG.old:
 * served in place, by a process `locks` may not show), nor one of another key-server sharing `given`
 * (its KEY_ID_FILE names another storage key than `keyId`), nor one whose KEY_ID_FILE cannot be
 * read: they neither count nor go, and the last five are returned, in `inUse`, `otherFiles`,
 * `opened`, `otherServer` and `unreadable`, for the caller to report. `written`, the backup just
 * made, is the newest whatever its name: backups are named by the clock, and one made while the
 * clock was ahead would otherwise outrank it and have it removed. Those named after it
 * (`ahead`) are older than their names say, by how much no one knows: they are kept, and not
 * counted among the N, for the caller to report.
 */
export async function pruneBackups(given: string, keep: number | undefined, o: PruneOptions = {}): Promise<Pruned> {
  if (keep !== undefined && (!Number.isInteger(keep) || keep < 1)) throw new CertifierError('INVALID_INPUT', `keep at least one backup, not ${keep}`);
  // Where it really is, once: named through "link/..", the names joined to it would be those of
  // the directory beside the link, and another's backups removed in place of ours.
  const dir = realLocation(given);
  const names = await fs.readdir(dir);
  const live = o.live;
  const serving = live === undefined ? undefined : await fs.realpath(live).catch(() => resolve(live));
  const isLive = async (n: string) => serving !== undefined && (await fs.realpath(join(dir, n)).catch(() => join(dir, n))) === serving;
  const locked = await lockedFiles(o.locks ?? '/proc/locks');
  const inUse: string[] = [];
  const otherFiles: string[] = [];
  const opened: string[] = [];
  const otherServer: string[] = [];
  const unreadable: string[] = [];
  /** Whether `n` is this server's (or may be); if not, it is put among those kept. */
  const ours = async (n: string) => {
    const whose = await owner(join(dir, n), o.keyId);
    if (whose !== 'ours') (whose === 'another' ? otherServer : unreadable).push(n);
    return whose === 'ours';
  };
  /** Puts `n`, this server's, in `into` if it may go, or among those kept. */
  // Both checks are needed: the lock list alone catches a backup served now without LOG.old (its LOG removed before it was opened); LOG.old alone, one served where that list is blind or missing, or served before.
  const sort = async (n: string, into: string[]) => {
    const path = join(dir, n);
    ((await mayBeOpen(path, locked)) ? inUse : { untouched: into, opened, other: otherFiles }[await contents(path)]).push(n);
  };
  const whole: string[] = [];
  const newest = o.written === undefined ? undefined : basename(o.written);
  const ahead: string[] = [];
  for (const n of keep === undefined ? [] : names.filter((x) => BACKUP.test(x)).sort()) {
    if (n === newest || (await isLive(n))) continue;
    if (!(await ours(n))) continue;
    if (newest !== undefined && n > newest) ahead.push(n);
    else await sort(n, whole);
  }
  if (newest !== undefined && names.includes(newest)) whole.push(newest);
  const stale: string[] = [];
  for (const n of names) {
    const m = PARTIAL.exec(n);
    if (m !== null && !(await writerAlive(Number(m[1]))) && !(await recentlyWritten(join(dir, n))) && !(await isLive(n)) && (await ours(n))) await sort(n, stale);
  }
  const remove = [...whole.slice(0, Math.max(0, whole.length - (keep ?? whole.length))), ...stale];
  for (const n of remove) await fs.rm(join(dir, n), { recursive: true, force: true });
  return { removed: remove, ahead, inUse, otherFiles, opened, otherServer, unreadable };
}

// Fetching named secrets and keeping them: into the machine's cryptstore (one atomic batch) or
// into files (0600, atomic). Nothing is written unless every secret arrived, unless partial
// results are allowed; a value already held is not written again. A re-run brings a file up to
// date (a newer server version, or a hand edit, is replaced without a copy); a tag keeps its
// older versions.

import { CertifierError, isCertifierError } from '../errors/index.ts';
import { parseJsonText, utf8Text } from '../util/json.ts';
import { bytesEqual } from '../crypto/index.ts';
import { itemProblem } from '../pki/index.ts';
import { MAX_VERSION, newNameProblem, shown, tagProblem, type ValidEntry } from '../wire/index.ts';
import { checkWritable, commitAll, DirChecks, ownFileProblem, readControlFile, readFileLimited, realLocation, refuseOwnFiles, refuseReplaceable, stageFile, sweepLeftovers, type Leftover, type OwnFiles, type Staged } from '../files/index.ts';
import { lstat, stat } from 'node:fs/promises';
import type { Cryptstore } from '../../cryptstore/index.ts';
import { isIdentityTag } from '../certifier/index.ts';
import { STORAGE_KEY_TAG } from '../keyservice/keystore.ts';
import type { KeyClient } from './client.ts';

export interface SecretSpec {
  name: string;
  version: number;
  /** A cryptstore tag, or a file path (exactly one). */
  tag?: string;
  file?: string;
  mode?: number;
}

export interface Outcome {
  spec: SecretSpec;
  entry?: ValidEntry;
  error?: CertifierError;
  written?: 'new' | 'unchanged';
  /** Kept under a tag: the version the cryptstore holds it as (it numbers versions itself). */
  storeVersion?: number;
}

const KEYS = new Set(['ID', 'Version', 'LocalPath', 'Tag', 'Mode']);

/** Whoever can change the config chooses which secret goes to which file: held to the rule on such files (readControlFile). */
const CONFIG_FILE = { what: 'the provisioning config', who: 'who could then send any secret to any file' };

/**
 * Reads and parses the provisioning config `file` (at most 1 MiB): INVALID_INPUT for one every user
 * may change, or reached through a directory every user may write in (not sticky); the warning
 * returned for one its group or another user may.
 */
export async function readProvisionConfig(file: string): Promise<{ specs: SecretSpec[]; warning?: string }> {
  const { bytes, warning } = await readControlFile(CONFIG_FILE, file, 1024 * 1024);
  return { specs: parseProvisionConfig(utf8Text(bytes, `the provisioning config ${file}`)), ...(warning ? { warning } : {}) };
}

/** The provisioning config: {"secrets": [{"ID", "Version"?, "Tag" | "LocalPath", "Mode"?}]} (Mystikos style). */
export function parseProvisionConfig(text: string): SecretSpec[] {
  const doc = parseJsonText(text, 'the provisioning config');
  const secrets = (doc as { secrets?: unknown })?.secrets;
  if (!Array.isArray(secrets) || secrets.length === 0) throw new CertifierError('INVALID_INPUT', 'the provisioning config needs a non-empty "secrets" list');
  const problems: string[] = [];
  // A misspelt list ("Secrets" beside "secrets") would be skipped without a word.
  for (const k of Object.keys(doc as object)) if (k !== 'secrets') problems.push(`the config has unknown field "${k}"`);
  const specs = secrets.map((s: Record<string, unknown>, i) => {
    const at = `secrets[${i}]`;
    if (typeof s !== 'object' || s === null || Array.isArray(s)) return problems.push(`${at} is not an object`), undefined;
    for (const k of Object.keys(s)) if (!KEYS.has(k)) problems.push(`${at} has unknown field "${k}"`);
    const name = s.ID;
    if (typeof name !== 'string') problems.push(`${at}.ID must be a resource name`);
    else if (tagProblem(name)) problems.push(`${at}.ID ${tagProblem(name)}`);
    const version = 'Version' in s ? s.Version : 0; // null is not "latest": refused with the rest
    if (!Number.isInteger(version) || (version as number) < 0 || (version as number) > MAX_VERSION) problems.push(`${at}.Version must be a whole number from 0 (latest) to ${MAX_VERSION}`);
    if ((s.Tag === undefined) === (s.LocalPath === undefined)) problems.push(`${at} needs exactly one of "Tag" or "LocalPath"`);
    if (s.Tag !== undefined && typeof s.Tag !== 'string') problems.push(`${at}.Tag must be a cryptstore tag`);
    else if (s.Tag !== undefined && tagProblem(s.Tag)) problems.push(`${at}.Tag ${tagProblem(s.Tag)}`); // a look-alike: provision, with the store
    if (s.LocalPath !== undefined && (typeof s.LocalPath !== 'string' || s.LocalPath === '' || s.LocalPath.includes('\0'))) problems.push(`${at}.LocalPath must be a path (text without NUL)`);
    else if (s.LocalPath === '-') problems.push(`${at}.LocalPath "-" would be a file named "-": provision writes files, never standard output`);
    if (s.Mode !== undefined && s.Tag !== undefined) problems.push(`${at}.Mode applies to a LocalPath, not a Tag`);
    if (s.Mode !== undefined && (typeof s.Mode !== 'string' || !/^0?[0-7]{3}$/.test(s.Mode))) problems.push(`${at}.Mode must be an octal string like "0600"`);
    else if (s.Mode !== undefined) problems.push(...modeProblems(at, s.Mode));
    return {
      name: name as string, version: version as number,
      ...(s.Tag !== undefined ? { tag: s.Tag as string } : { file: s.LocalPath as string }),
      ...(s.Mode !== undefined ? { mode: parseInt(s.Mode as string, 8) } : {}),
    };
  });
  if (problems.length === 0) problems.push(...destinationProblems(specs as SecretSpec[]));
  if (problems.length) throw new CertifierError('INVALID_INPUT', `invalid provisioning config: ${listed(problems)}`);
  return specs as SecretSpec[];
}

/**
 * Why a LocalPath's Mode is not one a secret may have: any user of the machine may read or change
 * it; its group may change it; its owner cannot read it; or it is executable. 0600, 0400, and
 * 0640 or 0440 for a group, are.
 */
function modeProblems(at: string, text: string): string[] {
  const mode = parseInt(text, 8);
  if (mode & 0o007) return [`${at}.Mode ${text} lets every user of the machine at the secret: use 0600, or 0640 for a group`];
  if (mode & 0o020) return [`${at}.Mode ${text} lets the file's group change the secret: use 0640`];
  if (!(mode & 0o400)) return [`${at}.Mode ${text} does not let the file's owner read the secret: use 0600`];
  if (mode & 0o111) return [`${at}.Mode ${text} makes the secret executable: use 0600`];
  return [];
}

/** The first 20 problems, and how many more: a config of 1,000 bad (or missing) secrets gives a readable error. */
function listed(problems: string[]): string {
  const first = problems.slice(0, 20).join('; ');
  return problems.length > 20 ? `${first}; and ${problems.length - 20} more` : first;
}

/**
 * Why these destinations cannot all be written: two secrets aimed at one tag or one file (which
 * would win?), or a tag where init-trust keeps the machine's identity. Empty when they can.
 */
export function destinationProblems(specs: SecretSpec[]): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  specs.forEach((s, i) => {
    const where = s.tag !== undefined ? `Tag ${shown(s.tag, 256)}` : `LocalPath "${s.file}"`;
    const key = s.tag !== undefined ? `tag:${s.tag}` : `file:${realLocation(s.file!)}`;
    const first = seen.get(key);
    if (first !== undefined) problems.push(`secrets[${i}] has the same ${where} as secrets[${first}]`);
    else seen.set(key, i);
    if (s.tag !== undefined && isIdentityTag(s.tag)) problems.push(`secrets[${i}].Tag ${shown(s.tag, 256)} is where init-trust keeps this machine's identity`);
    if (s.tag === STORAGE_KEY_TAG) problems.push(`secrets[${i}].Tag "${s.tag}" is where a key-server keeps its storage key`);
    // Released only to a standby or replica, which fetches it with key-server join into its cryptstore.
    if (s.name === STORAGE_KEY_TAG) problems.push(`secrets[${i}].ID "${s.name}" is a key-server's storage key: a standby or replica fetches it with key-server join`);
  });
  return problems;
}

/**
 * Retrieves every spec over the one connection (pipelined); failures are kept, not thrown. An item
 * for a tag must hold what its type says, as put-item would have it (itemValue): the cryptstore
 * would otherwise keep a "certificate" that is not one (a key-server's entry from an older client).
 */
export async function fetchAll(client: KeyClient, specs: SecretSpec[]): Promise<Outcome[]> {
  return Promise.all(specs.map(async (spec) => {
    try {
      const entry = await client.retrieve(spec.name, spec.version);
      if (spec.tag !== undefined) refuseMistyped(entry);
      return { spec, entry };
    } catch (e) {
      if (!(e instanceof CertifierError)) throw e;
      return { spec, error: e };
    }
  }));
}

/** BAD_CERTIFICATE unless `entry` holds what its type says it does. */
function refuseMistyped(entry: ValidEntry): void {
  const problem = itemProblem(entry.type, entry.blob);
  if (problem) throw new CertifierError('BAD_CERTIFICATE', `${shown(entry.tag, 256)} version ${entry.version} on the key-server is an ${entry.type} item that holds no DER certificate (${problem}): it is not put in the cryptstore`);
}

/** Where a run may write, and what it must never overwrite. */
export interface KeepOptions {
  /** The run's own store, key files, config: never a destination. */
  own?: OwnFiles;
  /** Told of a signal that came once every secret was written, just before it ends the program. */
  completedBeforeSignal?: (signal: NodeJS.Signals, failed?: string) => void;
  /** The caller ran sweepDestinations on these secrets itself (key-client does): a file written is not swept again. */
  swept?: boolean;
  /** What this run found of the LocalPaths' directories (refuseReplaceable), shared by its checks: each looked at once a run. */
  dirs?: DirChecks;
}

/**
 * Writes the fetched secrets, all or none as far as a file system allows: every destination is
 * checked first (a regular file or nothing, in a writable directory, not one of the run's own
 * files), values already held (same bytes, and for a file the same mode) are left alone, new files
 * are written and synced beside their destinations, moved into place, and only then do the tags
 * go in, as one atomic batch, while signals still wait (commitAll). A rename or a batch that
 * fails, or a signal before the batch began, undoes the files put in place (the error names any
 * that could not be put back); a signal that came once the batch began waits for it, and the run
 * is complete. (What a killed run left beside a LocalPath is swept as it is written, unless the
 * caller swept every LocalPath before: sweepDestinations, `swept`.)
 */
export async function keepAll(store: Cryptstore | undefined, outcomes: Outcome[], o: KeepOptions = {}): Promise<void> {
  const problems = destinationProblems(outcomes.map((x) => x.spec));
  if (problems.length) throw new CertifierError('INVALID_INPUT', `nothing was written: ${problems.join('; ')}`);
  const arrived = outcomes.filter((x) => x.entry);
  const dirs = o.dirs ?? new DirChecks();
  const existing = await checkLocalPaths(arrived.map((x) => x.spec), o.own, { existingMayStay: true, dirs });
  const tags: Outcome[] = [];
  const files: Outcome[] = [];
  for (const x of arrived) {
    if (x.spec.tag !== undefined) {
      const held = await heldInStore(store, x.spec.tag, x.entry!);
      if (held === undefined) tags.push(x);
      else Object.assign(x, { written: 'unchanged', storeVersion: held });
    } else if (await heldInFile(x.spec.file!, x.entry!, x.spec.mode ?? 0o600)) x.written = 'unchanged';
    else files.push(x);
  }
  // Files there already that change: their directory must be writable after all (the others were checked in full).
  await checkLocalPaths(files.map((x) => x.spec).filter((spec) => existing.has(spec)), o.own, { dirs });
  const staged: Staged[] = [];
  try {
    for (const x of files) staged.push({ file: await stageFile(x.spec.file!, x.entry!.blob, x.spec.mode ?? 0o600, { swept: o.swept === true }), exclusive: false });
  } catch (e) {
    await Promise.all(staged.map((f) => f.file.discard()));
    throw nothingWritten(e);
  }
  // The tags' batch is the last step of putting the files in place, signals still held: it
  // failing, or a signal before it, undoes the files; once it is written the run is complete.
  // Whether the batch failed once it may have been written (the cryptstore says so): the files are
  // put back all the same, and a run again finds the tags that went in and leaves them.
  let tagsUnknown = false;
  const putTags = async () => {
    try {
      return await store!.putAll(tags.map((x) => ({ tag: x.spec.tag!, blob: x.entry!.blob, options: { type: x.entry!.type, exportable: false } })));
    } catch (e) {
      tagsUnknown = isCertifierError(e) && e.details?.mayHaveBeenMade === true;
      throw e;
    }
  };
  try {
    const put = await commitAll(staged, { ...(tags.length ? { finish: putTags } : {}), ...(o.completedBeforeSignal ? { completedBeforeSignal: o.completedBeforeSignal } : {}) });
    tags.forEach((x, i) => (x.storeVersion = put![i]!.version));
  } catch (e) {
    const placed = await placedOf(files);
    if (!(e instanceof CertifierError)) throw e;
    const filesSaid = placed.length ? `written before it: ${placed.join(', ')}` : tagsUnknown ? 'no file was written' : 'nothing was written';
    const tagsSaid = tagsUnknown
      ? `the cryptstore tags (${listed(tags.map((x) => shown(x.spec.tag!, 256)))}) may or may not have been written: a run again keeps those the cryptstore holds and writes the rest`
      : 'no cryptstore tag was written';
    throw new CertifierError(e.code, `${e.message}; ${filesSaid}; ${tagsSaid}`, { cause: e });
  }
  for (const x of [...tags, ...files]) x.written = 'new';
}

/**
 * Rids every LocalPath (but the run's own files) of what a killed run left beside it
 * (sweepLeftovers: the previous value kept aside, a new one being written), whether or not the
 * file changes: on every run that knows its destinations, before it connects, so one that then
 * fails (a name missing, the server unreachable) sweeps too. Returns what stays, by file.
 */
export async function sweepDestinations(specs: SecretSpec[], own: OwnFiles | undefined): Promise<{ file: string; left: Leftover[] }[]> {
  const out: { file: string; left: Leftover[] }[] = [];
  // An own file is refused as such by the checks that follow.
  for (const file of specs.flatMap((s) => (s.file === undefined || (own && ownFileProblem(s.file, own)) ? [] : [s.file]))) {
    const left = await sweepLeftovers(file);
    if (left.length) out.push({ file, left });
  }
  return out;
}

/**
 * Refuses, with nothing written, a LocalPath that is one of the run's own files (INVALID_INPUT) or
 * where no file can be written (checkWritable: a missing directory, a directory or link in the way).
 */
async function checkLocalPaths(specs: SecretSpec[], own: OwnFiles | undefined, o: { existingMayStay?: boolean; dirs?: DirChecks } = {}): Promise<Set<SecretSpec>> {
  const dirs = o.dirs ?? new DirChecks();
  const existing = new Set<SecretSpec>();
  for (const spec of specs) {
    if (spec.file === undefined) continue;
    if (own) refuseOwnFiles(spec.file, own, `the LocalPath of ${shown(spec.name, 256)} (${spec.file})`);
    // As a Mode that lets the group change the secret is refused: nor may they put another in its place.
    await refuseReplaceable(spec.file, dirs);
    // A regular file there may already hold the value, and then nothing is written: its directory
    // need not be writable (a read-only file system on a re-run). Returned, to be checked in full
    // once it is known that it changes.
    if (o.existingMayStay && !spec.file.endsWith('/') && (await lstat(spec.file).catch(() => undefined))?.isFile()) {
      existing.add(spec);
      continue;
    }
    await checkWritable(spec.file).catch((e: unknown) => Promise.reject(nothingWritten(e)));
  }
  return existing;
}

/** `e`, saying that nothing was written (once: "nothing was replaced" in a refusal becomes that). */
function nothingWritten(e: unknown): unknown {
  return e instanceof CertifierError ? new CertifierError(e.code, `${e.message.replace(/; nothing was replaced$/, '')}; nothing was written`, { cause: e }) : e;
}

/** The files of `files` that now hold their new value (after a failed commit). */
async function placedOf(files: Outcome[]): Promise<string[]> {
  const out: string[] = [];
  for (const x of files) if (await heldInFile(x.spec.file!, x.entry!, x.spec.mode ?? 0o600)) out.push(x.spec.file!);
  return out;
}

/** The cryptstore's version of `tag` when its newest already holds `entry`, else undefined. */
async function heldInStore(store: Cryptstore | undefined, tag: string, entry: ValidEntry): Promise<number | undefined> {
  if (!store) throw new CertifierError('USAGE', 'a cryptstore is needed to keep secrets under a tag');
  const held = await store.get(tag).catch((e) => (isCertifierError(e, 'NOT_FOUND') ? undefined : Promise.reject(e)));
  // Held as this run would keep it: the bytes, their type, and not exportable (an exportable copy
  // put there by hand gets a new version that is not).
  return held !== undefined && bytesEqual(held.blob, entry.blob) && held.type === entry.type && !held.exportable ? held.version : undefined;
}

async function heldInFile(path: string, entry: ValidEntry, mode: number): Promise<boolean> {
  const existing = await readFileLimited(path, entry.blob.length + 1).catch(() => undefined);
  if (!existing || !bytesEqual(existing, entry.blob)) return false;
  const st = await stat(path).catch(() => undefined);
  return st !== undefined && (st.mode & 0o777) === mode;
}

/**
 * What can be refused before anything is fetched (and, from key-client, before it connects, so a
 * key-server releases nothing for a run that could not keep it): a Tag that would look like
 * another, a LocalPath that is the run's own file or cannot be written. A regular file already
 * at a LocalPath is fetched for even where its directory cannot be written: it may hold the value
 * (a re-run on a read-only file system), which only the fetch tells. `dirs`: the run's (KeepOptions).
 */
export async function refuseBeforeFetching(store: Cryptstore | undefined, specs: SecretSpec[], own: OwnFiles | undefined, dirs?: DirChecks): Promise<void> {
  await refuseLookAlikeTags(store, specs);
  await checkLocalPaths(specs, own, { existingMayStay: true, dirs });
}

/**
 * A Tag the config makes may not look like another; one the store holds already (made before
 * that rule) gets its new versions. INVALID_INPUT naming each.
 */
async function refuseLookAlikeTags(store: Cryptstore | undefined, specs: SecretSpec[]): Promise<void> {
  const lookAlikes: string[] = [];
  for (const spec of specs) {
    const problem = spec.tag !== undefined ? newNameProblem(spec.tag) : undefined;
    if (problem && !(store && await store.has(spec.tag!))) lookAlikes.push(`the Tag of ${shown(spec.name, 256)} ${problem}`);
  }
  if (lookAlikes.length) throw new CertifierError('INVALID_INPUT', `nothing was fetched or written: ${lookAlikes.join('; ')}`);
}

/**
 * Fetch, then keep: all or nothing unless `allowPartial`, which keeps what arrived; a run in
 * which nothing arrived fails either way (with the first failure's code: 3 when it may be retried).
 * `checked`: the caller ran refuseBeforeFetching itself, before connecting (key-client does).
 */
export async function provision(client: KeyClient, store: Cryptstore | undefined, specs: SecretSpec[], options: KeepOptions & { allowPartial?: boolean; checked?: boolean } = {}): Promise<Outcome[]> {
  // One run's look at the LocalPaths' directories, for its every check (a new one each run).
  const o = { ...options, dirs: options.dirs ?? new DirChecks() };
  if (!o.checked) await refuseBeforeFetching(store, specs, o.own, o.dirs);
  const outcomes = await fetchAll(client, specs);
  const failures = outcomes.filter((x) => x.error);
  if (failures.length && (!o.allowPartial || failures.length === outcomes.length)) {
    const first = failures[0]!.error!;
    // Each failure's code, unless all are the one this error has (printed beside its message).
    const one = failures.every((f) => f.error!.code === first.code);
    // Several with their names (and codes), and the reason too when it is the same for all (one
    // fault, such as the connection timing out or closing); one failure with its reason.
    const shared = failures.every((f) => f.error!.message === first.message);
    const names = listed(failures.map((f) => `${shown(f.spec.name, 256)}${one ? '' : ` (${f.error!.code})`}`));
    const what = shared ? `${names}: ${first.message}` : names;
    throw new CertifierError(first.code, `could not provision ${what}; nothing was written`, { cause: first });
  }
  // A signal while the tags go in ends the run before it can name what failed: say it then.
  const told = o.completedBeforeSignal;
  const failed = listed(failures.map((f) => `${shown(f.spec.name, 256)} (${f.error!.code})`));
  await keepAll(store, outcomes, failures.length && told ? { ...o, completedBeforeSignal: (signal) => told(signal, failed) } : o);
  return outcomes;
}

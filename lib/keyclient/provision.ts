// Fetching named secrets and keeping them: into the machine's cryptstore (one atomic batch) or
// into files (0600, atomic). Nothing is written unless every secret arrived, unless partial
// results are allowed; a value already held is not written again, so re-running is harmless.

import { CertifierError, isCertifierError } from '../errors/index.ts';
import { parseJsonText } from '../util/json.ts';
import { bytesEqual } from '../crypto/index.ts';
import { MAX_VERSION, tagProblem, type ValidEntry } from '../wire/index.ts';
import { readFileLimited, stageFile, type StagedFile } from '../files/index.ts';
import { stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { realpathSync } from 'node:fs';
import type { Cryptstore } from '../../cryptstore/index.ts';
import { isIdentityTag } from '../certifier/index.ts';
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
}

const KEYS = new Set(['ID', 'Version', 'LocalPath', 'Tag', 'Mode']);

/** The provisioning config: {"secrets": [{"ID", "Version"?, "Tag" | "LocalPath", "Mode"?}]} (Mystikos style). */
export function parseProvisionConfig(text: string): SecretSpec[] {
  const doc = parseJsonText(text, 'the provisioning config');
  const secrets = (doc as { secrets?: unknown })?.secrets;
  if (!Array.isArray(secrets) || secrets.length === 0) throw new CertifierError('INVALID_INPUT', 'the provisioning config needs a non-empty "secrets" list');
  const problems: string[] = [];
  const specs = secrets.map((s: Record<string, unknown>, i) => {
    const at = `secrets[${i}]`;
    if (typeof s !== 'object' || s === null) return problems.push(`${at} is not an object`), undefined;
    for (const k of Object.keys(s)) if (!KEYS.has(k)) problems.push(`${at} has unknown field "${k}"`);
    const name = s.ID;
    if (typeof name !== 'string' || tagProblem(name)) problems.push(`${at}.ID must be a resource name`);
    const version = s.Version ?? 0;
    if (!Number.isInteger(version) || (version as number) < 0 || (version as number) > MAX_VERSION) problems.push(`${at}.Version must be a whole number from 0 (latest) to ${MAX_VERSION}`);
    if ((s.Tag === undefined) === (s.LocalPath === undefined)) problems.push(`${at} needs exactly one of "Tag" or "LocalPath"`);
    if (s.Tag !== undefined && (typeof s.Tag !== 'string' || tagProblem(s.Tag))) problems.push(`${at}.Tag must be a cryptstore tag`);
    if (s.LocalPath !== undefined && (typeof s.LocalPath !== 'string' || s.LocalPath === '')) problems.push(`${at}.LocalPath must be a path`);
    if (s.Mode !== undefined && (typeof s.Mode !== 'string' || !/^0?[0-7]{3}$/.test(s.Mode))) problems.push(`${at}.Mode must be an octal string like "0600"`);
    // A secret any user of the machine may read (or change) is a mistake; a group may be meant.
    else if (s.Mode !== undefined && (parseInt(s.Mode, 8) & 0o007) !== 0) problems.push(`${at}.Mode ${s.Mode} lets every user of the machine at the secret: use 0600, or 0640 for a group`);
    return {
      name: name as string, version: version as number,
      ...(s.Tag !== undefined ? { tag: s.Tag as string } : { file: s.LocalPath as string }),
      ...(s.Mode !== undefined ? { mode: parseInt(s.Mode as string, 8) } : {}),
    };
  });
  if (problems.length === 0) problems.push(...destinationProblems(specs as SecretSpec[]));
  if (problems.length) throw new CertifierError('INVALID_INPUT', `invalid provisioning config: ${problems.join('; ')}`);
  return specs as SecretSpec[];
}

/**
 * Why these destinations cannot all be written: two secrets aimed at one tag or one file (which
 * would win?), or a tag where init-trust keeps the machine's identity. Empty when they can.
 */
export function destinationProblems(specs: SecretSpec[]): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  specs.forEach((s, i) => {
    const where = s.tag !== undefined ? `Tag "${s.tag}"` : `LocalPath "${s.file}"`;
    const key = s.tag !== undefined ? `tag:${s.tag}` : `file:${canonicalPath(s.file!)}`;
    const first = seen.get(key);
    if (first !== undefined) problems.push(`secrets[${i}] has the same ${where} as secrets[${first}]`);
    else seen.set(key, i);
    if (s.tag !== undefined && isIdentityTag(s.tag)) problems.push(`secrets[${i}].Tag "${s.tag}" is where init-trust keeps this machine's identity`);
  });
  return problems;
}

/**
 * The path with its directory's symbolic links resolved, so two names for one file (through a
 * linked directory) are seen as one. The file itself may be a link: it is replaced, not followed.
 */
function canonicalPath(file: string): string {
  const path = resolve(file);
  try {
    return join(realpathSync(dirname(path)), basename(path));
  } catch {
    return path; // no such directory yet: writing will fail anyway
  }
}

/** Retrieves every spec over the one connection (pipelined); failures are kept, not thrown. */
export async function fetchAll(client: KeyClient, specs: SecretSpec[]): Promise<Outcome[]> {
  return Promise.all(specs.map(async (spec) => {
    try {
      return { spec, entry: await client.retrieve(spec.name, spec.version) };
    } catch (e) {
      if (!(e instanceof CertifierError)) throw e;
      return { spec, error: e };
    }
  }));
}

/**
 * Writes the fetched secrets, all or none: values already held (same bytes, and for a file the
 * same mode) are left alone; new files are first written and synced beside their destinations,
 * then the tags go in as one atomic batch, then the files are moved into place. A destination
 * that cannot be written fails the whole call before anything is in place.
 */
export async function keepAll(store: Cryptstore | undefined, outcomes: Outcome[]): Promise<void> {
  const problems = destinationProblems(outcomes.map((o) => o.spec));
  if (problems.length) throw new CertifierError('INVALID_INPUT', `nothing was written: ${problems.join('; ')}`);
  const arrived = outcomes.filter((o) => o.entry);
  const tags: Outcome[] = [];
  const files: Outcome[] = [];
  for (const o of arrived) {
    const held = o.spec.tag !== undefined ? await heldInStore(store, o.spec.tag, o.entry!) : await heldInFile(o.spec.file!, o.entry!, o.spec.mode ?? 0o600);
    if (held) o.written = 'unchanged';
    else (o.spec.tag !== undefined ? tags : files).push(o);
  }
  const staged: StagedFile[] = [];
  try {
    for (const o of files) staged.push(await stageFile(o.spec.file!, o.entry!.blob, o.spec.mode ?? 0o600));
    if (tags.length) await store!.putAll(tags.map((o) => ({ tag: o.spec.tag!, blob: o.entry!.blob, options: { type: o.entry!.type, exportable: false } })));
  } catch (e) {
    await Promise.all(staged.map((f) => f.discard()));
    if (e instanceof CertifierError) throw new CertifierError(e.code, `${e.message}; nothing was written`, { cause: e });
    throw e;
  }
  for (const f of staged) await f.commit();
  for (const o of [...tags, ...files]) o.written = 'new';
}

async function heldInStore(store: Cryptstore | undefined, tag: string, entry: ValidEntry): Promise<boolean> {
  if (!store) throw new CertifierError('USAGE', 'a cryptstore is needed to keep secrets under a tag');
  const held = await store.get(tag).catch((e) => (isCertifierError(e, 'NOT_FOUND') ? undefined : Promise.reject(e)));
  return held !== undefined && bytesEqual(held.blob, entry.blob) && held.type === entry.type;
}

async function heldInFile(path: string, entry: ValidEntry, mode: number): Promise<boolean> {
  const existing = await readFileLimited(path, entry.blob.length + 1).catch(() => undefined);
  if (!existing || !bytesEqual(existing, entry.blob)) return false;
  const st = await stat(path).catch(() => undefined);
  return st !== undefined && (st.mode & 0o777) === mode;
}

/** Fetch, then keep: all or nothing unless `allowPartial`. */
export async function provision(client: KeyClient, store: Cryptstore | undefined, specs: SecretSpec[], allowPartial = false): Promise<Outcome[]> {
  const outcomes = await fetchAll(client, specs);
  const failures = outcomes.filter((o) => o.error);
  if (failures.length && !allowPartial) {
    const first = failures[0]!.error!;
    throw new CertifierError(first.code, `could not provision ${failures.map((f) => `"${f.spec.name}" (${f.error!.code})`).join(', ')}; nothing was written`, { cause: first });
  }
  await keepAll(store, outcomes);
  return outcomes;
}

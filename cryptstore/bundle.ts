// Export bundles: the exportable entries of a store, kept with their versions, as a serialized
// `cryptstore` sealed with AES-256-GCM under a key derived from a bundle passphrase (scrypt).

import { CertifierError } from '../lib/errors/index.ts';
import { DEFAULT_SCRYPT, open as aeadOpen, randomBytes, scrypt, seal, wipe, type ScryptCost } from '../lib/crypto/index.ts';
import {
  CRYPTSTORE_FORMAT_VERSION, checkCryptstoreEntry, decode, encode, encodeSecret, fieldCount, newNameProblem, parseCryptstoreBundle, shown,
  type Cryptstore as CryptstoreMessage, type ValidEntry,
} from '../lib/wire/index.ts';
import { itemProblem } from '../lib/pki/index.ts';
import { isRfc3339 } from '../lib/policy/index.ts';
import { bundleAad } from './layout.ts';
import { refuseScryptBeyondMemory } from './protection.ts';
import type { Cryptstore, Entry, EntryInfo } from './store.ts';

/** Seals entries into a bundle. */
export async function sealBundle(entries: Entry[], passphrase: Uint8Array, cost: ScryptCost = DEFAULT_SCRYPT): Promise<Uint8Array> {
  if (passphrase.length === 0) throw new CertifierError('INVALID_INPUT', 'the bundle passphrase is empty');
  refuseScryptBeyondMemory(cost, 'the bundle');
  const salt = randomBytes(32);
  const key = await scrypt(passphrase, salt, cost, 32);
  const body: CryptstoreMessage = {
    entries: entries.map((e) => ({
      tag: e.tag, type: e.type, version: e.version, timeEntered: Buffer.from(e.timeEntered, 'utf8'),
      blob: e.blob, exportable: e.exportable,
    })),
  };
  const plain = encodeSecret('cryptstore', body);
  const ciphertext = seal(key, plain, bundleAad(cost.logN, cost.r, cost.p, salt));
  wipe(key, plain);
  return encode('cryptstore_bundle', { formatVersion: CRYPTSTORE_FORMAT_VERSION, scrypt: { ...cost, salt }, ciphertext });
}

/**
 * Opens a bundle; WRONG_KEY for a wrong passphrase or a damaged bundle. The entries' values are
 * views into the one plaintext, which only they still reach: wipe them once used (a bundle
 * refused once opened is wiped here).
 */
export async function openBundle(bytes: Uint8Array, passphrase: Uint8Array): Promise<ValidEntry[]> {
  // A message written twice reads as one, each field of the second replacing the first's: bundles
  // put one after another in a file (cat a b > both) would import as the last alone, the others'
  // items left out without a word. Every field of a bundle comes once.
  if (BUNDLE_FIELDS.some((f) => (fieldCount(bytes, f, 1) ?? 0) > 1)) {
    throw new CertifierError('INTEGRITY', 'the file holds more than one bundle, written one after another (as cat a b > both writes them), or a damaged one: import each bundle from a file of its own');
  }
  let b;
  try {
    b = parseCryptstoreBundle(bytes);
  } catch (cause) {
    throw new CertifierError('INTEGRITY', 'not a cryptstore bundle, or a damaged one', { cause });
  }
  if (b.formatVersion !== CRYPTSTORE_FORMAT_VERSION) {
    throw new CertifierError('STORE_FORMAT', `the bundle has format ${b.formatVersion}; this program reads format ${CRYPTSTORE_FORMAT_VERSION}`);
  }
  refuseScryptBeyondMemory(b.scrypt, 'the bundle');
  const key = await scrypt(passphrase, b.scrypt.salt, b.scrypt, 32);
  const plain = aeadOpen(key, b.ciphertext, bundleAad(b.scrypt.logN, b.scrypt.r, b.scrypt.p, b.scrypt.salt));
  wipe(key);
  if (!plain) throw new CertifierError('WRONG_KEY', 'cannot open the bundle: wrong bundle passphrase, or a damaged bundle', { details: { unlock: 'bundle' } });
  try {
    return checkBundleEntries(plain);
  } catch (e) {
    wipe(plain);
    throw e;
  }
}

/** The fields of a cryptstore_bundle (format_version, scrypt, ciphertext), each written once. */
const BUNDLE_FIELDS = [1, 2, 3];

/** The entries of a bundle's plaintext, each checked (the values are views into `plain`). */
function checkBundleEntries(plain: Uint8Array): ValidEntry[] {
  // Counted before they are decoded: 64 MiB of tiny entries would be millions of them, each
  // decoded, checked and looked up (gigabytes, and minutes) before anything could be refused.
  const count = fieldCount(plain, 1) ?? 0; // the cryptstore message's entries; bytes that do not parse fail to decode below
  if (count > MAX_BUNDLE_ENTRIES) {
    throw new CertifierError('INVALID_INPUT', `the bundle holds ${count} item versions, and import reads at most ${MAX_BUNDLE_ENTRIES} (no bundle export writes holds more): nothing was imported`);
  }
  const entries = decode<CryptstoreMessage>('cryptstore', plain).entries ?? [];
  return entries.map((e, i) => {
    const entry = checkCryptstoreEntry(e, `bundle entry ${i}`);
    // The store writes an RFC 3339 time, and list-items writes it back as it is: a bundle's maker
    // chose these bytes, and an escape sequence among them would reach the terminal.
    if (!isRfc3339(entry.timeEntered)) throw new CertifierError('BAD_FIELD', `invalid bundle entry ${i}: time_entered ${shown(entry.timeEntered)} is not an RFC 3339 time`);
    // As put-item and key-client keep it: a "certificate" that is not one would fail only where it is used.
    const problem = itemProblem(entry.type, entry.blob);
    if (problem) throw new CertifierError('BAD_CERTIFICATE', `bundle entry ${i} (${shown(entry.tag, 256)} version ${entry.version}) is an ${entry.type} item that holds no DER certificate (${problem})`);
    return entry;
  });
}

/**
 * The largest bundle import reads (it holds one whole in memory, with its plaintext). Export
 * refuses to write a bigger one, which could never be restored.
 */
export const MAX_BUNDLE_BYTES = 64 * 1024 * 1024;
/** Room in a bundle for everything but the values: tags, times, framing, the seal (generous). */
const BUNDLE_OVERHEAD_PER_ENTRY = 1024;
/** The most item versions a bundle holds: export counts each as at least BUNDLE_OVERHEAD_PER_ENTRY bytes, and import reads no more. */
export const MAX_BUNDLE_ENTRIES = MAX_BUNDLE_BYTES / BUNDLE_OVERHEAD_PER_ENTRY;

/**
 * Exports every exportable entry (all versions) of `store`, or of the tags in `tags` when given.
 * INVALID_INPUT when a tag names no exportable item, or when the bundle would exceed MAX_BUNDLE_BYTES.
 * `tagsHeld`: how many tags the store holds items under, exportable or not (none: an empty store).
 */
export async function exportStore(
  store: Cryptstore, passphrase: Uint8Array, cost?: ScryptCost, tags?: string[], o: { leaveOut?: (tag: string) => boolean } = {},
): Promise<{ bundle: Uint8Array; entries: EntryInfo[]; leftOut: string[]; tagsHeld: number }> {
  // One pass, each record decrypted once: which entries go is known only once each is opened
  // (the exportable flag is sealed with the value), and a value not taken is wiped at once.
  const exportable = new Set<string>(); // the tags of exportable entries, taken or not
  const leftOut = new Set<string>();
  let bytes = 0;
  const present = new Set<string>(); // every tag seen, to say which of those asked for is there but not exportable
  const entries = await store.entriesWhere((e) => {
    present.add(e.tag);
    if (!e.exportable) return false;
    exportable.add(e.tag);
    if (tags?.length) {
      if (!tags.includes(e.tag)) return false;
    } else if (o.leaveOut?.(e.tag)) {
      // Tags that only the asking say go (a machine's identity): a bundle of everything leaves them out.
      leftOut.add(e.tag);
      return false;
    }
    bytes += e.size + BUNDLE_OVERHEAD_PER_ENTRY;
    if (bytes > MAX_BUNDLE_BYTES) {
      throw new CertifierError('INVALID_INPUT', `the exportable items hold more than ${MAX_BUNDLE_BYTES} bytes (counting about ${BUNDLE_OVERHEAD_PER_ENTRY} for each beside its value), and a bundle holds at most that (import-store reads it whole): export them in parts with --tag`);
    }
    return true;
  });
  try {
    const missing = (tags ?? []).filter((t) => !exportable.has(t));
    if (missing.length) throw new CertifierError('INVALID_INPUT', `no exportable item is tagged ${quoted(missing)}: ${whyMissing(missing, present)}`);
    const bundle = await sealBundle(entries, passphrase, cost);
    return { bundle, entries: entries.map(({ blob, ...info }) => info), leftOut: [...leftOut], tagsHeld: present.size };
  } finally {
    wipe(...entries.map((e) => e.blob)); // each decrypted here, for this bundle alone
  }
}

const quoted = (tags: string[]) => tags.map((t) => JSON.stringify(t)).join(', ');

/** What makes an item exportable, said where one is wanted and none is. */
export const EXPORTABLE_IF = 'an item is exportable only if it was stored with --exportable';

/** Of tags asked for with no exportable item, which are there but not exportable, and which not there at all. */
function whyMissing(missing: string[], present: Set<string>): string {
  const kept = missing.filter((t) => present.has(t));
  const absent = missing.filter((t) => !present.has(t));
  return [
    ...(kept.length ? [`${quoted(kept)} ${kept.length === 1 ? 'is' : 'are'} not exportable (${EXPORTABLE_IF})`] : []),
    ...(absent.length ? [`no item is tagged ${quoted(absent)}`] : []),
  ].join('; ');
}

/** Imports a bundle into `store`, keeping versions; refuses existing tag+versions unless `force`. */
export async function importStore(
  store: Cryptstore, bundle: Uint8Array, passphrase: Uint8Array, force = false, o: ImportOptions = {},
): Promise<EntryInfo[]> {
  const entries = await openBundle(bundle, passphrase);
  try {
    return await importOpened(store, entries, force, o);
  } finally {
    wipe(...entries.map((e) => e.blob));
  }
}

async function importOpened(store: Cryptstore, entries: ValidEntry[], force: boolean, o: ImportOptions): Promise<EntryInfo[]> {
  const guarded = o.guarded ? [...new Set(entries.map((e) => e.tag).filter(o.guarded.is))] : [];
  if (guarded.length && !force) {
    throw new CertifierError('DENIED', `the bundle holds ${guarded.map((t) => shown(t, 256)).join(', ')}, ${o.guarded!.what}; nothing was imported (--force imports it)`);
  }
  // Importing makes its tags: held to the rule on new names as put-item is (a tag the store holds
  // already gets its versions). A bundle from a store made before the rule comes in with --force.
  const lookAlikes: string[] = [];
  for (const tag of new Set(entries.map((e) => e.tag))) if (newNameProblem(tag) && !(await store.has(tag))) lookAlikes.push(tag);
  if (lookAlikes.length && !force) {
    const one = lookAlikes.length === 1;
    throw new CertifierError('INVALID_INPUT', `the bundle holds ${lookAlikes.map((t) => shown(t, 256)).join(', ')}, ${one ? 'a tag' : 'tags'} new to this store that would display as another name (${newNameProblem(lookAlikes[0]!)}); nothing was imported (--force imports ${one ? 'it' : 'them'})`);
  }
  return store.importEntries(entries, force);
}

export interface ImportOptions {
  /** Tags imported only with `force`, and what they are, for the refusal (a machine's identity, say). */
  guarded?: { is: (tag: string) => boolean; what: string };
}

// Turning the protection flags of a command into a cryptstore Protector. Secrets come from
// files or the environment, never from argv.

import type { Command } from 'commander';
import { CertifierError } from '../../lib/errors/index.ts';
import { DEFAULT_SCRYPT, wipe, type ScryptCost } from '../../lib/crypto/index.ts';
import { holdingSignals, readSecretFile } from '../../lib/files/index.ts';
import { Cryptstore, KeyFileProtector, PassphraseProtector, type ProtectionParams, type Protector, type StoreOptions } from '../../cryptstore/index.ts';
import { dirArg, intInRange, note, warn } from './cli.ts';
import { warnIfShared } from './keys.ts';
import { loadPlatform, platformOptions, type PlatformOptions } from './platform.ts';
import type { Platform } from '../../lib/attest/index.ts';

export const PASSPHRASE_ENV = 'CRYPTSTORE_PASSPHRASE';
const SECRET_FILE_LIMIT = 64 * 1024;

export interface ProtectionOptions extends PlatformOptions {
  store: string;
  passphraseFile?: string;
  keyFile?: string;
  sealed?: boolean;
  scryptLogN?: number;
}

/** Adds --store and the ways to unlock it: --passphrase-file, --key-file, --sealed (with the platform flags). */
export function storeOptions(cmd: Command): Command {
  cmd
    .requiredOption('--store <dir>', 'the cryptstore directory', dirArg)
    .option('--passphrase-file <file>', `file holding the store passphrase (or set ${PASSPHRASE_ENV})`)
    .option('--key-file <file>', 'file holding the store key (at least 32 random bytes)')
    .option('--sealed', 'the store is sealed to this platform and measurement (see --platform-dir)');
  return platformOptions(cmd);
}

/** Adds --scrypt-log-n for commands that derive a new passphrase key. */
export function scryptOption(cmd: Command): Command {
  return cmd.option('--scrypt-log-n <n>', `scrypt cost N = 2^n (default ${DEFAULT_SCRYPT.logN}; lower only for tests)`, intInRange(10, 22));
}

/**
 * Reads a passphrase file; one trailing newline (LF or CRLF) is not part of the passphrase. The
 * bytes are the only copy (see readSecretFile): wipe() them once used.
 */
export async function readPassphraseFile(path: string): Promise<Uint8Array> {
  const b = await readSecretFile(path, SECRET_FILE_LIMIT);
  await warnIfShared(path, 'the passphrase file');
  const end = b.at(-1) === 0x0a ? b.length - (b.at(-2) === 0x0d ? 2 : 1) : b.length;
  if (end === 0) throw new CertifierError('INVALID_INPUT', `the passphrase file ${path} is empty`);
  return b.subarray(0, end);
}

/**
 * Runs `fn` with the passphrase in the file at `path` (a bundle's), and wipes it however `fn` ends;
 * a bundle it did not open is said to be refused with what the file holds by mistake, if anything.
 */
export async function withPassphraseFile<T>(path: string, fn: (passphrase: Uint8Array) => Promise<T>): Promise<T> {
  const passphrase = await readPassphraseFile(path);
  try {
    return await fn(passphrase);
  } catch (e) {
    if (e instanceof CertifierError && e.code === 'WRONG_KEY' && e.details?.unlock === 'bundle') {
      const odd = passphraseOddities(path, passphrase);
      if (odd) throw new CertifierError('WRONG_KEY', `${e.message} (${odd})`, { cause: e, details: e.details });
    }
    throw e;
  } finally {
    wipe(passphrase);
  }
}

/**
 * What a passphrase (read from `path`) holds that an editor or a careless echo may have put there,
 * yet is part of it: said only when it does not unlock the store (it may be meant).
 */
function passphraseOddities(path: string, p: Uint8Array): string | undefined {
  const odd: string[] = [];
  const blank = (b: number | undefined) => b === 0x20 || b === 0x09;
  if (p[0] === 0xef && p[1] === 0xbb && p[2] === 0xbf) odd.push('begins with a byte-order mark (as some editors save UTF-8)');
  else if (blank(p[0])) odd.push('begins with a space or tab');
  const last = p.at(-1);
  const lineEnd = (b: number) => b === 0x0a || b === 0x0d;
  // A line end followed by more than line ends: a second line (line ends alone at the end are said below).
  let text = p.length;
  while (text > 0 && lineEnd(p[text - 1]!)) text--;
  if (p.subarray(0, text).some(lineEnd)) odd.push('holds a second line (a line end with text after it)');
  if (last !== undefined && lineEnd(last)) odd.push('ends with a line-end character beyond the one LF or CRLF taken off');
  else if (blank(last)) odd.push('ends with a space or tab');
  return odd.length ? `${path} ${odd.join(' and ')}, which is part of the passphrase` : undefined;
}

/**
 * A protector from a passphrase file holding what passphraseOddities finds (`odd`), which knows
 * whether a store was unlocked with it (derive): its oddities are said of that unlock's refusal
 * only, not of another file's (rekey-store's old passphrase, its new one) nor of a later WRONG_KEY.
 */
class OddPassphraseProtector extends PassphraseProtector {
  derived = false;

  constructor(passphrase: Uint8Array, cost: ScryptCost, readonly odd: string) {
    super(passphrase, cost);
  }

  override derive(params: ProtectionParams): Promise<Uint8Array> {
    this.derived = true;
    return super.derive(params);
  }
}

/** The passphrase in CRYPTSTORE_PASSPHRASE, encoded where wipe() reaches it (the string itself stays). */
function passphraseFromEnv(value: string): Uint8Array {
  const b = new Uint8Array(new ArrayBuffer(Buffer.byteLength(value, 'utf8')));
  new TextEncoder().encodeInto(value, b);
  return b;
}

export function scryptCost(program: string, logN: number | undefined): ScryptCost {
  if (logN === undefined) return DEFAULT_SCRYPT;
  if (logN < 15) warn(program, `scrypt cost 2^${logN} is weak: fine for tests, not for real secrets`);
  return { ...DEFAULT_SCRYPT, logN };
}

/**
 * The protector the flags (or CRYPTSTORE_PASSPHRASE) name; USAGE when none or several. It holds
 * the only copy of the secret read: dispose() it once done with (withProtector).
 */
export async function protectorFrom(program: string, o: ProtectionOptions, platform?: Platform): Promise<Protector> {
  if ([o.passphraseFile, o.keyFile, o.sealed].filter(Boolean).length > 1) throw new CertifierError('USAGE', 'give one of --passphrase-file, --key-file or --sealed');
  if (o.sealed) return (platform ?? (await loadPlatform(program, o))).sealingProtector();
  // Read only when it is the secret used: each read makes a string of it, which cannot be wiped.
  const env = o.keyFile || o.passphraseFile ? undefined : process.env[PASSPHRASE_ENV];
  if (!o.keyFile && !o.passphraseFile && !env) {
    // Set but empty (an unset shell variable expanded into it, say): not a passphrase, and not unset.
    if (env === '') throw new CertifierError('USAGE', `the store needs a passphrase or key: ${PASSPHRASE_ENV} is set but empty; put the passphrase in it, or give --passphrase-file F, --key-file F or --sealed`);
    throw new CertifierError('USAGE', `the store needs a passphrase or key: give --passphrase-file F, --key-file F, --sealed, or set ${PASSPHRASE_ENV}`);
  }
  const secret = o.keyFile ? await readSecretFile(o.keyFile, SECRET_FILE_LIMIT) : o.passphraseFile ? await readPassphraseFile(o.passphraseFile) : passphraseFromEnv(env!);
  try {
    if (!o.keyFile) {
      const odd = o.passphraseFile ? passphraseOddities(o.passphraseFile, secret) : undefined;
      const cost = scryptCost(program, o.scryptLogN);
      return odd ? new OddPassphraseProtector(secret, cost, odd) : new PassphraseProtector(secret, cost);
    }
    await warnIfShared(o.keyFile, 'the key file');
    return new KeyFileProtector(secret, `the key file ${o.keyFile}`);
  } finally {
    wipe(secret); // the protector has its own copy
  }
}

/** Runs `fn` with the protector the flags name, and wipes the secret it holds however `fn` ends. */
export async function withProtector<T>(program: string, o: ProtectionOptions, fn: (protector: Protector) => Promise<T>, platform?: Platform): Promise<T> {
  const protector = await protectorFrom(program, o, platform);
  try {
    return await fn(protector);
  } catch (e) {
    // A store this passphrase did not unlock (not one of another kind, whose refusal names it).
    if (protector instanceof OddPassphraseProtector && protector.derived && e instanceof CertifierError && e.code === 'WRONG_KEY' && e.details?.unlock === 'failed') {
      throw new CertifierError('WRONG_KEY', `${e.message} (${protector.odd})`, { cause: e, details: e.details });
    }
    throw e;
  } finally {
    protector.dispose?.();
  }
}

/** Opens the store the flags name; the passphrase or key file is wiped once it is open. */
export function openStore(program: string, o: ProtectionOptions, options?: StoreOptions): Promise<Cryptstore> {
  return withProtector(program, o, (protector) => Cryptstore.open(o.store, protector, options));
}

/**
 * withStore for a command that changes the store: SIGINT, SIGTERM and SIGHUP wait for the write
 * of the change (its batch is atomic: done or not) and the compaction that follows a delete or a
 * rekey (else what it drops stays in LevelDB's files), never for the key derivation before it (a
 * Ctrl-C then stops the command with nothing changed), and one that came during the write ends
 * the program only once stderr says what was done, rather than silently after the change.
 */
export function changeStore<T>(program: string, o: ProtectionOptions, fn: (store: Cryptstore) => Promise<T>, options?: StoreOptions): Promise<T> {
  // A write that resolved with an error (its compaction failed, the change made): that error says what was done.
  const done = (what: string, result: unknown) => (result instanceof CertifierError ? result.message : what);
  const guardWrite = <W>(what: string, write: () => Promise<W>) => holdingSignals(write, (signal, result) => note(program, `${signal} came as the store was being changed: ${done(what, result)}; stopping`),
    (signal, e) => note(program, `${signal} came as the store was being changed, and the change failed: ${e instanceof Error ? e.message : String(e)}; stopping`));
  return withStore(program, o, fn, { ...options, guardWrite });
}

/** Opens the store the flags name, runs `fn`, and always closes it. */
export async function withStore<T>(program: string, o: ProtectionOptions, fn: (store: Cryptstore) => Promise<T>, options?: StoreOptions): Promise<T> {
  const store = await openStore(program, o, options);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

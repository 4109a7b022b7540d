// Turning the protection flags of a command into a cryptstore Protector. Secrets come from
// files or the environment, never from argv.

import { InvalidArgumentError, type Command } from 'commander';
import { CertifierError } from '../../lib/errors/index.ts';
import { DEFAULT_SCRYPT, type ScryptCost } from '../../lib/crypto/index.ts';
import { readFileLimited } from '../../lib/files/index.ts';
import { Cryptstore, KeyFileProtector, PassphraseProtector, type Protector, type StoreOptions } from '../../cryptstore/index.ts';
import { intInRange, warn } from './cli.ts';
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
    .requiredOption('--store <dir>', 'the cryptstore directory', (v: string) => {
      if (v === '') throw new InvalidArgumentError('expected a directory, not an empty name');
      return v;
    })
    .option('--passphrase-file <file>', `file holding the store passphrase (or set ${PASSPHRASE_ENV})`)
    .option('--key-file <file>', 'file holding the store key (at least 32 random bytes)')
    .option('--sealed', 'the store is sealed to this platform and measurement (see --platform-dir)');
  return platformOptions(cmd);
}

/** Adds --scrypt-log-n for commands that derive a new passphrase key. */
export function scryptOption(cmd: Command): Command {
  return cmd.option('--scrypt-log-n <n>', `scrypt cost N = 2^n (default ${DEFAULT_SCRYPT.logN}; lower only for tests)`, intInRange(10, 22));
}

/** Reads a passphrase file; one trailing newline (LF or CRLF) is not part of the passphrase. */
export async function readPassphraseFile(path: string): Promise<Uint8Array> {
  let b = await readFileLimited(path, SECRET_FILE_LIMIT);
  await warnIfShared(path, 'the passphrase file');
  if (b.at(-1) === 0x0a) b = b.subarray(0, b.length - (b.at(-2) === 0x0d ? 2 : 1));
  if (b.length === 0) throw new CertifierError('INVALID_INPUT', `the passphrase file ${path} is empty`);
  return b;
}

export function scryptCost(program: string, logN: number | undefined): ScryptCost {
  if (logN === undefined) return DEFAULT_SCRYPT;
  if (logN < 15) warn(program, `scrypt cost 2^${logN} is weak: fine for tests, not for real secrets`);
  return { ...DEFAULT_SCRYPT, logN };
}

/** The protector the flags (or CRYPTSTORE_PASSPHRASE) name; USAGE when none or several. */
export async function protectorFrom(program: string, o: ProtectionOptions, platform?: Platform): Promise<Protector> {
  if ([o.passphraseFile, o.keyFile, o.sealed].filter(Boolean).length > 1) throw new CertifierError('USAGE', 'give one of --passphrase-file, --key-file or --sealed');
  if (o.sealed) return (platform ?? (await loadPlatform(program, o))).sealingProtector();
  if (o.keyFile) {
    const key = await readFileLimited(o.keyFile, SECRET_FILE_LIMIT);
    await warnIfShared(o.keyFile, 'the key file');
    return new KeyFileProtector(key, `the key file ${o.keyFile}`);
  }
  if (o.passphraseFile) return new PassphraseProtector(await readPassphraseFile(o.passphraseFile), scryptCost(program, o.scryptLogN));
  const env = process.env[PASSPHRASE_ENV];
  if (env) return new PassphraseProtector(new TextEncoder().encode(env), scryptCost(program, o.scryptLogN));
  throw new CertifierError('USAGE', `the store needs a passphrase or key: give --passphrase-file F, --key-file F, --sealed, or set ${PASSPHRASE_ENV}`);
}

/** Opens the store the flags name, runs `fn`, and always closes it. */
export async function withStore<T>(program: string, o: ProtectionOptions, fn: (store: Cryptstore) => Promise<T>, options?: StoreOptions): Promise<T> {
  const protector = await protectorFrom(program, o);
  let store: Cryptstore;
  try {
    store = await Cryptstore.open(o.store, protector, options);
  } finally {
    protector.dispose?.(); // the store holds its data key; the passphrase or key file is done with
  }
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

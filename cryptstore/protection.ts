// How a cryptstore's data key is protected. Each protector turns the recorded parameters into a
// key-encryption key (KEK); the store wraps its random data key with AES-256-GCM under that KEK.
// New kinds (the platform-sealed key) implement the same interface.

import { CertifierError } from '../lib/errors/index.ts';
import { totalmem } from 'node:os';
import { DEFAULT_SCRYPT, hkdfSha256, randomBytes, scrypt, scryptMemory, secretCopy, utf8, wipe, type ScryptCost } from '../lib/crypto/index.ts';
import type { ProtectionKind, ValidProtection } from '../lib/wire/index.ts';

/** Protection parameters as recorded in the metadata, without the wrapped key. */
export type ProtectionParams = Omit<ValidProtection, 'wrappedDataKey'>;

export interface Protector {
  readonly kind: ProtectionKind;
  /** A human description for messages ("a passphrase", "the key file /etc/k"). */
  readonly description: string;
  /** Fresh parameters and the KEK they give, for a new store or a rekey. */
  create(): Promise<{ params: ProtectionParams; kek: Uint8Array }>;
  /** The KEK for recorded parameters. */
  derive(params: ProtectionParams): Promise<Uint8Array>;
  /** Forgets the secret it holds (passphrase, key-file bytes); it can derive nothing after. */
  dispose?(): void;
}

export const MIN_KEY_FILE_BYTES = 32;
const KEY_FILE_INFO = utf8('cryptstore key-file kek v1');

/** The memory this process may have: the machine's, or its control group's limit where lower. */
export function memoryAvailable(): number {
  const total = totalmem();
  const limit = process.constrainedMemory?.() ?? 0;
  return limit > 0 && limit < total ? limit : total;
}

/**
 * UNSUPPORTED when deriving a key with `cost` would take more than half the memory this process
 * may have. The parameters come from a store or a bundle, before anything is authenticated; those
 * accepted (N up to 2^22: 4 GiB) would otherwise run a small machine out of memory, and its
 * out-of-memory killer could end another process than this one.
 */
export function refuseScryptBeyondMemory(cost: ScryptCost, what: string): void {
  const need = scryptMemory(cost);
  const have = memoryAvailable();
  const mib = (n: number) => Math.floor(n / (1024 * 1024));
  if (need > have / 2) {
    throw new CertifierError('UNSUPPORTED', `deriving the key of ${what} from its passphrase takes ${mib(need)} MiB (scrypt N = 2^${cost.logN}, r = ${cost.r}, p = ${cost.p}), more than half of the ${mib(have)} MiB this process may have: refused rather than running the machine out of memory`);
  }
}

/** Passphrase -> scrypt -> KEK. */
export class PassphraseProtector implements Protector {
  readonly kind = 'passphrase' as const;
  readonly description = 'a passphrase';
  private readonly passphrase: Uint8Array;

  constructor(passphrase: Uint8Array, private readonly cost: ScryptCost = DEFAULT_SCRYPT) {
    if (passphrase.length === 0) throw new CertifierError('INVALID_INPUT', 'the passphrase is empty');
    this.passphrase = secretCopy(passphrase);
  }

  async create() {
    const params: ProtectionParams = { kind: 'passphrase', scrypt: { ...this.cost, salt: randomBytes(32) } };
    return { params, kek: await this.derive(params) };
  }

  async derive(params: ProtectionParams): Promise<Uint8Array> {
    const s = params.scrypt!;
    refuseScryptBeyondMemory(s, 'the cryptstore');
    return scrypt(this.passphrase, s.salt, s, 32);
  }

  dispose(): void {
    wipe(this.passphrase);
  }
}

/** Key file contents -> HKDF-SHA-256 -> KEK. The file must hold at least 32 random bytes. */
export class KeyFileProtector implements Protector {
  readonly kind = 'key-file' as const;
  readonly description: string;
  private readonly material: Uint8Array;

  constructor(material: Uint8Array, label = 'the key file') {
    if (material.length < MIN_KEY_FILE_BYTES) {
      throw new CertifierError('INVALID_INPUT', `${label} holds ${material.length} bytes; a key file needs at least ${MIN_KEY_FILE_BYTES} random bytes: make one with cert-utility new-key-file --out FILE`);
    }
    this.material = secretCopy(material);
    this.description = label;
  }

  async create() {
    const params: ProtectionParams = { kind: 'key-file', salt: randomBytes(32) };
    return { params, kek: await this.derive(params) };
  }

  async derive(params: ProtectionParams): Promise<Uint8Array> {
    return hkdfSha256(this.material, params.salt!, KEY_FILE_INFO, 32);
  }

  dispose(): void {
    wipe(this.material);
  }
}

/** What a protector needs to be told when it does not match the store. */
export function describeKind(kind: ProtectionKind): string {
  switch (kind) {
    case 'passphrase': return 'a passphrase (--passphrase-file or CRYPTSTORE_PASSPHRASE)';
    case 'key-file': return 'a key file (--key-file)';
    case 'sealed': return 'platform sealing (--sealed)';
  }
}

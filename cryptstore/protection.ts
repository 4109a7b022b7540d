// How a cryptstore's data key is protected. Each protector turns the recorded parameters into a
// key-encryption key (KEK); the store wraps its random data key with AES-256-GCM under that KEK.
// New kinds (the platform-sealed key) implement the same interface.

import { CertifierError } from '../lib/errors/index.ts';
import { DEFAULT_SCRYPT, hkdfSha256, randomBytes, scrypt, secretCopy, utf8, wipe, type ScryptCost } from '../lib/crypto/index.ts';
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

  derive(params: ProtectionParams): Promise<Uint8Array> {
    const s = params.scrypt!;
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
      throw new CertifierError('INVALID_INPUT', `${label} holds ${material.length} bytes; a key file needs at least ${MIN_KEY_FILE_BYTES} random bytes`);
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

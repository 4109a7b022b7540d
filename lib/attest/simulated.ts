// The simulated enclave: a TEST platform. A "platform key" stands in for the hardware vendor's
// root; it endorses an attestation key; the attestation key signs reports naming the program's
// measurement and the key the program wants certified. Sealing derives a key from the
// attestation key's secret and the measurement. No hardware protects any of it.

import type { KeyObject } from 'node:crypto';
import { CertifierError } from '../errors/index.ts';
import {
  canonicalPrivateKeyDer, encodeFields, generateKeyPair, hkdfSha256, importPrivateKey, sign, signatureAlgFor,
  toKeyMessage, publicKeyOf, randomBytes, wipe, type KeyAlg,
} from '../crypto/index.ts';
import { decode, encode, type AttestationUserData, type EvidencePackage, type SignedClaimMessage } from '../wire/index.ts';
import { formatCertifierTime, keyEntity, saysClause, simpleClause, signClaim, verifySignedClaim, sameKey, entityKey } from '../policy/index.ts';
import type { Protector, ProtectionParams } from '../../cryptstore/index.ts';
import { REPORT_FORMAT, SIMULATED_ENCLAVE } from './simulated-verify.ts';
import type { Platform } from './platform.ts';

export const TEST_PLATFORM_WARNING = 'simulated-enclave is a TEST platform: no hardware protects its keys or vouches for its measurements';

const DAY = 86_400_000;

export interface SimulatedPlatformKeys {
  platformKey: KeyObject;
  attestKey: KeyObject;
  /** serialized signed_claim_message: platformKey says attestKey is-trusted-for-attestation */
  endorsement: Uint8Array;
}

/** Makes a platform key, an attestation key and the endorsement between them. */
export async function generateSimulatedPlatform(opts: { alg?: KeyAlg; days?: number; now?: Date } = {}): Promise<SimulatedPlatformKeys> {
  const alg = opts.alg ?? 'p256';
  const now = opts.now ?? new Date();
  const [platform, attest] = await Promise.all([generateKeyPair(alg), generateKeyPair(alg)]);
  const clause = saysClause(keyEntity(platform.privateKey, 'platformKey'), simpleClause(keyEntity(attest.privateKey, 'attestKey'), 'is-trusted-for-attestation'));
  const sc = signClaim({ signer: platform.privateKey, signerName: 'platformKey', clause, notBefore: now, notAfter: new Date(now.getTime() + (opts.days ?? 3650) * DAY) });
  return { platformKey: platform.privateKey, attestKey: attest.privateKey, endorsement: encode('signed_claim_message', sc) };
}

/** The machine's side of the simulated platform: an attestation key, its endorsement, a measurement. */
export class SimulatedEnclave implements Platform {
  readonly type = SIMULATED_ENCLAVE;
  readonly isTestPlatform = true;

  constructor(
    private readonly attestKey: KeyObject,
    private readonly endorsement: Uint8Array,
    readonly measurement: Uint8Array,
    private readonly reportDays = 1,
  ) {
    if (measurement.length !== 32) throw new CertifierError('INVALID_INPUT', `a simulated-enclave measurement is 32 bytes, not ${measurement.length}`);
  }

  /** Checks that the endorsement names this attestation key before using it. */
  static fromFiles(attestKeyPem: Uint8Array, endorsement: Uint8Array, measurement: Uint8Array): SimulatedEnclave {
    return SimulatedEnclave.fromKey(importPrivateKey(attestKeyPem), endorsement, measurement);
  }

  /** fromFiles, the attestation key already read (its file named in its refusals: cmd/common/keys.ts). */
  static fromKey(attestKey: KeyObject, endorsement: Uint8Array, measurement: Uint8Array): SimulatedEnclave {
    let sc: SignedClaimMessage;
    try {
      sc = decode<SignedClaimMessage>('signed_claim_message', endorsement);
    } catch (cause) {
      throw new CertifierError('ENDORSEMENT_INVALID', 'the endorsement file is not a signed claim', { cause });
    }
    const c = verifySignedClaim(sc, 'ENDORSEMENT_INVALID', 'the endorsement file');
    const endorsed = entityKey(c.clause.clause?.subject);
    if (!endorsed || !sameKey(endorsed, publicKeyOf(attestKey))) {
      throw new CertifierError('ENDORSEMENT_INVALID', 'the endorsement file does not endorse this attestation key');
    }
    return new SimulatedEnclave(attestKey, endorsement, measurement);
  }

  async attest(userData: AttestationUserData): Promise<EvidencePackage> {
    const now = new Date();
    const info = encode('vse_attestation_report_info', {
      enclaveType: SIMULATED_ENCLAVE,
      verifiedMeasurement: this.measurement,
      notBefore: formatCertifierTime(now),
      notAfter: formatCertifierTime(new Date(now.getTime() + this.reportDays * DAY)),
      userData: encode('attestation_user_data', userData),
    });
    const alg = signatureAlgFor(this.attestKey);
    const report = encode('signed_report', {
      reportFormat: REPORT_FORMAT,
      report: info,
      signingKey: toKeyMessage(publicKeyOf(this.attestKey), 'attestKey'),
      signingAlgorithm: alg,
      signature: sign(this.attestKey, info, alg),
    });
    return {
      proverType: 'vse-verifier',
      enclaveType: SIMULATED_ENCLAVE,
      factAssertion: [
        { evidenceType: 'signed-claim', serializedEvidence: this.endorsement },
        { evidenceType: 'signed-vse-attestation-report', serializedEvidence: report },
      ],
    };
  }

  sealingProtector(): Protector {
    // The key's own bytes, not its file's: the same key read without its public point is the same secret.
    return new SimulatedSealProtector(canonicalPrivateKeyDer(this.attestKey), this.measurement);
  }
}

/** Sealing for the simulated platform: KEK = HKDF(attestation key secret, salt, measurement). */
export class SimulatedSealProtector implements Protector {
  readonly kind = 'sealed' as const;
  readonly description = `platform sealing (${SIMULATED_ENCLAVE}, a test platform)`;

  constructor(private readonly secret: Uint8Array, private readonly measurement: Uint8Array) {}

  async create() {
    const params: ProtectionParams = { kind: 'sealed', salt: randomBytes(32), platform: SIMULATED_ENCLAVE };
    return { params, kek: await this.derive(params) };
  }

  async derive(params: ProtectionParams): Promise<Uint8Array> {
    if (params.platform !== SIMULATED_ENCLAVE) {
      throw new CertifierError('WRONG_KEY', `the store is sealed to platform "${params.platform}", not ${SIMULATED_ENCLAVE}`);
    }
    return hkdfSha256(this.secret, params.salt!, encodeFields('cryptstore sealed kek v1', SIMULATED_ENCLAVE, this.measurement), 32);
  }

  /** Wipes its copy of the attestation key, which is to a sealed store what a key file is to another. */
  dispose(): void {
    wipe(this.secret);
  }
}

// The platform interface: what a machine's hardware (or the simulator) does for certification.
// Real platforms (SEV-SNP) implement the same interface.

import type { Protector } from '../../cryptstore/index.ts';
import type { AttestationUserData, EvidencePackage } from '../wire/index.ts';

export interface Platform {
  /** Enclave type as the Certifier names it: "simulated-enclave", "sev-enclave". */
  readonly type: string;
  /** True for platforms no hardware stands behind; they are labelled wherever they appear. */
  readonly isTestPlatform: boolean;
  /** This machine's measurement (32 bytes for the simulator, 48 for SEV-SNP). */
  readonly measurement: Uint8Array;
  /** Evidence that this platform runs `measurement` and vouches for `userData`. */
  attest(userData: AttestationUserData): Promise<EvidencePackage>;
  /** A cryptstore protector whose key only this platform, running this measurement, can derive. */
  sealingProtector(): Protector;
}

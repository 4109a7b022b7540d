// propertyClaimsOf: the property claims of one platform in force at one time, the only reading of
// it that the evaluator (checkProperties) and simpleserver's start and reload check
// (policyNotInForce) make, so that the two cannot come to disagree about a policy.

import { expect } from 'chai';
import { generateKeyPair, randomBytes, toHex } from '../../lib/crypto/index.ts';
import { checkProperties, propertyClaimsOf, SEV_SNP_PLATFORM, type Policy, type TrustedProperties, type Window } from '../../lib/policy/index.ts';
import { policyNotInForce } from '../../lib/certifier/index.ts';

const T = Date.parse('2026-12-01T00:00:00Z');
const HOUR = 3_600_000;
const window = (from: number, to: number): Window => ({ notBefore: new Date(T + from * HOUR), notAfter: new Date(T + to * HOUR) });
const TCB = ['tcb-bootloader', 'tcb-tee', 'tcb-snp', 'tcb-microcode'].map((name) => ({ name, comparator: '>=' as const, value: 0 }));
const claim = (platformType: string, w: Window): TrustedProperties => ({ platformType, requirements: TCB, ...w });

// Each case: the claims, the platform asked about, the hour asked at, and which claims (by index) are its and in force.
const CASES: { name: string; claims: TrustedProperties[]; platform: string; at: number; all: number[]; inForce: number[] }[] = [
  { name: 'none for the platform', claims: [claim('other', window(-1, 1))], platform: SEV_SNP_PLATFORM, at: 0, all: [], inForce: [] },
  { name: 'one in force', claims: [claim(SEV_SNP_PLATFORM, window(-1, 1))], platform: SEV_SNP_PLATFORM, at: 0, all: [0], inForce: [0] },
  { name: 'its first instant', claims: [claim(SEV_SNP_PLATFORM, window(0, 1))], platform: SEV_SNP_PLATFORM, at: 0, all: [0], inForce: [0] },
  { name: 'its last instant', claims: [claim(SEV_SNP_PLATFORM, window(-1, 0))], platform: SEV_SNP_PLATFORM, at: 0, all: [0], inForce: [0] },
  { name: 'ended', claims: [claim(SEV_SNP_PLATFORM, window(-2, -1))], platform: SEV_SNP_PLATFORM, at: 0, all: [0], inForce: [] },
  { name: 'not yet begun', claims: [claim(SEV_SNP_PLATFORM, window(1, 2))], platform: SEV_SNP_PLATFORM, at: 0, all: [0], inForce: [] },
  { name: 'an ended one beside its renewal and another platform\'s', claims: [claim(SEV_SNP_PLATFORM, window(-2, -1)), claim('other', window(-1, 1)), claim(SEV_SNP_PLATFORM, window(-1, 1))], platform: SEV_SNP_PLATFORM, at: 0, all: [0, 2], inForce: [2] },
];

describe('propertyClaimsOf: the property claims of a platform in force at a time', () => {
  for (const c of CASES) {
    it(`${c.name}: ${c.inForce.length} in force of ${c.all.length}`, () => {
      const got = propertyClaimsOf(c.claims, c.platform, new Date(T + c.at * HOUR));
      expect(got.all).to.deep.equal(c.all.map((i) => c.claims[i]));
      expect(got.inForce).to.deep.equal(c.inForce.map((i) => c.claims[i]));
    });
  }

  it('makes policyNotInForce name the property claims exactly when checkProperties refuses every machine of the platform with CLAIM_EXPIRED', async () => {
    const { publicKey } = await generateKeyPair('p256');
    const measurement = randomBytes(48);
    for (const c of CASES.filter((x) => x.platform === SEV_SNP_PLATFORM)) {
      const at = new Date(T + c.at * HOUR);
      const policy: Policy = {
        policyKey: publicKey, properties: c.claims, statements: [],
        platforms: [{ key: publicKey, label: 'ARK', platformType: SEV_SNP_PLATFORM, ...window(-10, 10) }],
        measurements: [{ measurement, hex: toHex(measurement), ...window(-10, 10) }],
      };
      const expired = checkProperties(c.claims, SEV_SNP_PLATFORM, {}, at);
      const refusedAll = !expired.ok && expired.code === 'CLAIM_EXPIRED';
      expect(policyNotInForce(policy, at) !== undefined, c.name).to.equal(refusedAll);
    }
  });
});

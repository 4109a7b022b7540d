// A TEST-ONLY SEV-SNP signer: its own ARK, ASK/ASVK and VCEK/VLEK (RSA-PSS chain shaped as
// AMD's, names saying TEST) and well-formed ATTESTATION_REPORTs signed by its VCEK or VLEK. It
// lives under test/ and nothing in the product imports it; a policy trusts its root only when
// make-policy is handed its ARK file explicitly (--trust-amd-root-cert). In Turin mode
// (create({ product: 'turin' })) its ARK is named ARK-Turin, as AMD names Turin's, its VCEK
// carries fmcSPL and an 8-byte hwID, and its reports name family 1Ah in Turin's TCB layout.

import { constants, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { concatBytes, randomBytes } from '../../lib/crypto/index.ts';
import { encodeBool, encodeIa5, encodeOctets, encodeOid, encodeBitString, encodeNull, encodeSmallInt, encodeTime, explicit, seq } from '../../lib/pki/der.ts';
import { basicConstraints, encodeName, encodeTbs, keyUsage, spkiOf, type ExtensionSpec } from '../../lib/pki/build.ts';
import { AMD_EXT, REPORT_SIZE, SIGNED_BYTES, CERT_GUIDS } from '../../lib/attest/index.ts';

export interface Tcb { bootloader: number; tee: number; snp: number; microcode: number }
export type SignerProduct = 'milan' | 'turin';
const DAY = 86_400_000;

/** RSASSA-PSS AlgorithmIdentifier as AMD writes it: SHA-384, MGF1-SHA-384, salt 48 (each can be changed, and a trailer field added). */
export function pssAlgorithm(o: { hash?: string; mgfHash?: string; salt?: number; trailer?: number } = {}): Uint8Array {
  const sha = (oid = '2.16.840.1.101.3.4.2.2') => seq(encodeOid(oid), encodeNull());
  return seq(encodeOid('1.2.840.113549.1.1.10'), seq(
    explicit(0, sha(o.hash)), explicit(1, seq(encodeOid('1.2.840.113549.1.1.8'), sha(o.mgfHash ?? o.hash))), explicit(2, encodeSmallInt(o.salt ?? 48)),
    ...(o.trailer === undefined ? [] : [explicit(3, encodeSmallInt(o.trailer))]),
  ));
}

export interface CertSpec {
  subject: string;
  issuer: string;
  key: KeyObject;
  signer: KeyObject;
  extensions: ExtensionSpec[];
  notBefore?: Date;
  notAfter?: Date;
  serial?: number;
  salt?: number;
}

const name = (cn: string) => encodeName([['2.5.4.11', 'Engineering'], ['2.5.4.10', 'TEST signer, not AMD'], ['2.5.4.3', cn]]);

/** A certificate signed with RSA-PSS (salt 48 unless told otherwise), serial 0 by default as AMD's VCEKs. */
export function pssCertificate(c: CertSpec, now = new Date()): Uint8Array {
  const alg = pssAlgorithm(c.salt === undefined ? {} : { salt: c.salt });
  const tbs = encodeTbs({
    serial: Uint8Array.of(c.serial ?? 0), issuer: name(c.issuer), subject: name(c.subject),
    notBefore: c.notBefore ?? new Date(now.getTime() - DAY), notAfter: c.notAfter ?? new Date(now.getTime() + 3650 * DAY),
    spki: spkiOf(c.key), extensions: c.extensions,
  }, alg);
  const sig = sign('sha384', tbs, { key: c.signer, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: c.salt ?? 48 });
  return seq(tbs, alg, encodeBitString(new Uint8Array(sig)));
}

/** The AMD extensions of a VCEK/VLEK: its product's name (Milan's, or Turin's with fmcSPL, unless told), TCB SPLs (with fmcSPL for a Turin one) and (VCEK) the raw hwID. */
export function amdExtensions(tcb: Tcb, chipId?: Uint8Array, fmc?: number, productName = fmc === undefined ? 'Milan-TEST' : 'Turin-TEST'): ExtensionSpec[] {
  const ext = (oid: string, value: Uint8Array): ExtensionSpec => ({ oid, critical: false, value });
  return [
    ext(AMD_EXT.structVersion, encodeSmallInt(1)), ext(AMD_EXT.productName, encodeIa5(productName)),
    ext(AMD_EXT.blSpl, encodeSmallInt(tcb.bootloader)), ext(AMD_EXT.teeSpl, encodeSmallInt(tcb.tee)),
    ext(AMD_EXT.snpSpl, encodeSmallInt(tcb.snp)), ext(AMD_EXT.ucodeSpl, encodeSmallInt(tcb.microcode)),
    ...(fmc === undefined ? [] : [ext(AMD_EXT.fmcSpl, encodeSmallInt(fmc))]),
    ...(chipId ? [ext(AMD_EXT.hwId, chipId)] : []),
  ];
}

const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
const p384 = () => generateKeyPairSync('ec', { namedCurve: 'P-384' });
const caExtensions = () => [basicConstraints(true), keyUsage(['keyCertSign', 'cRLSign'])];

export interface ReportFields {
  reportData: Uint8Array;
  measurement: Uint8Array;
  version?: number;
  /** Guest policy; 0x30000 (SMT allowed, reserved bit 17) by default. */
  policy?: bigint;
  vmpl?: number;
  guestSvn?: number;
  reportedTcb?: Tcb;
  /** LAUNCH_TCB; the reported TCB by default. */
  launchTcb?: Tcb;
  /** A Turin-mode signer's FMC level in every TCB; its own by default. */
  fmc?: number;
  /** A Turin-mode signer's FMC level in LAUNCH_TCB alone (a machine launched under older firmware); `fmc` by default. */
  launchFmc?: number;
  hostData?: Uint8Array;
  /** PLATFORM_INFO; 1 (SMT_EN) by default. */
  platformInfo?: bigint;
  idKeyDigest?: Uint8Array;
  chipId?: Uint8Array;
  signingKey?: 'vcek' | 'vlek';
  /** CURRENT_BUILD/MINOR/MAJOR and COMMITTED_* as [major, minor, build]; 1.52 build 4 by default. */
  currentFirmware?: [number, number, number];
  committedFirmware?: [number, number, number];
}

/** A TCB_VERSION in family 19h's layout, or in Turin's (FMC, bootloader, TEE, SNP in bytes 0 to 3) when `fmc` is given. */
const tcbBytes = (t: Tcb, fmc?: number) => fmc === undefined
  ? Uint8Array.of(t.bootloader, t.tee, 0, 0, 0, 0, t.snp, t.microcode)
  : Uint8Array.of(fmc, t.bootloader, t.tee, t.snp, 0, 0, 0, t.microcode);
/** CPUID family, model and stepping as a version 3 report names them: Milan (19h, model 01h), Turin (1Ah, model 02h). */
const CPUID: Record<SignerProduct, Uint8Array> = { milan: Uint8Array.of(0x19, 0x01, 0x01), turin: Uint8Array.of(0x1a, 0x02, 0x00) };
/** How many bytes of CHIP_ID a VCEK's hwID holds: all 64, or Turin's first 8 (the rest of its CHIP_ID is zero). */
const HWID_BYTES: Record<SignerProduct, number> = { milan: 64, turin: 8 };

/** Signs bytes 0x000..0x29F with ECDSA P-384 / SHA-384 and stores r and s little-endian. */
export function signReport(bytes: Uint8Array, key: KeyObject): Uint8Array {
  const out = new Uint8Array(bytes);
  out.fill(0, SIGNED_BYTES);
  const sig = new Uint8Array(sign('sha384', out.subarray(0, SIGNED_BYTES), { key, dsaEncoding: 'ieee-p1363' }));
  out.set(sig.slice(0, 48).reverse(), 0x2a0);
  out.set(sig.slice(48).reverse(), 0x2e8);
  return out;
}

export class TestSnpSigner {
  readonly ark: Uint8Array;
  readonly ask: Uint8Array;
  readonly vcek: Uint8Array;
  readonly asvk: Uint8Array;
  readonly vlek: Uint8Array;
  /** The ARK's CN: "ARK-TEST", or in Turin mode "ARK-Turin" (AMD's name for Turin's root). */
  readonly arkName: string;
  /** CHIP_ID as its reports carry it: 64 random bytes, or in Turin mode 8 (the VCEK's hwID) and 56 zeros. */
  readonly chipId: Uint8Array;

  /** `fmc`: the FMC level of a Turin-mode signer (undefined for a family 19h one). */
  private constructor(readonly product: SignerProduct, readonly tcb: Tcb, readonly fmc: number | undefined, private readonly keys: { ark: KeyObject; ask: KeyObject; asvk: KeyObject; vcek: KeyObject; vlek: KeyObject }, private readonly now: Date, arkName: string) {
    const k = keys; // private keys: a certificate embeds the public half
    this.arkName = arkName;
    this.chipId = new Uint8Array(64);
    this.chipId.set(randomBytes(HWID_BYTES[product]));
    this.ark = pssCertificate({ subject: arkName, issuer: arkName, key: k.ark, signer: k.ark, extensions: caExtensions(), serial: 1 }, now);
    this.ask = pssCertificate({ subject: 'SEV-TEST', issuer: arkName, key: k.ask, signer: k.ark, extensions: caExtensions(), serial: 2 }, now);
    this.asvk = pssCertificate({ subject: 'SEV-VLEK-TEST', issuer: arkName, key: k.asvk, signer: k.ark, extensions: caExtensions(), serial: 3 }, now);
    this.vcek = this.vcekFor(tcb);
    this.vlek = pssCertificate({ subject: 'SEV-VLEK', issuer: 'SEV-VLEK-TEST', key: k.vlek, signer: k.asvk, extensions: amdExtensions(tcb, undefined, fmc) }, now);
  }

  /**
   * A family 19h (Milan-shaped) signer, or with product 'turin' a Turin-shaped one (TCB 1/0/2/71
   * and FMC 0 by default, as the real Turin vector); `arkName` names its ARK otherwise than its mode does.
   */
  static create(o: { tcb?: Tcb; now?: Date; product?: SignerProduct; fmc?: number; arkName?: string } = {}): TestSnpSigner {
    const [ark, ask, asvk] = [rsa(), rsa(), rsa()].map((p) => p.privateKey) as [KeyObject, KeyObject, KeyObject];
    const turin = o.product === 'turin';
    const tcb = o.tcb ?? (turin ? { bootloader: 1, tee: 0, snp: 2, microcode: 71 } : { bootloader: 3, tee: 0, snp: 8, microcode: 115 });
    return new TestSnpSigner(o.product ?? 'milan', tcb, turin ? (o.fmc ?? 0) : undefined, { ark, ask, asvk, vcek: p384().privateKey, vlek: p384().privateKey }, o.now ?? new Date(), o.arkName ?? (turin ? 'ARK-Turin' : 'ARK-TEST'));
  }

  /** Another VCEK for the same chip under the same ASK (e.g. for another TCB); in Turin mode with its FMC level and the first 8 bytes of `chipId` as hwID. */
  vcekFor(tcb: Tcb, chipId = this.chipId): Uint8Array {
    return this.shapedVcek(tcb, chipId.subarray(0, HWID_BYTES[this.product]), this.fmc);
  }

  /** A VCEK for this signer's VCEK key under its ASK, whatever its mode: family 19h-shaped, or Turin-shaped (fmcSPL) when `fmc` is given; `hwId` (and `productName`) as given. */
  shapedVcek(tcb: Tcb, hwId: Uint8Array, fmc?: number, productName?: string): Uint8Array {
    return pssCertificate({ subject: 'SEV-VCEK', issuer: 'SEV-TEST', key: this.keys.vcek, signer: this.keys.ask, extensions: amdExtensions(tcb, hwId, fmc, productName) }, this.now);
  }

  /** This signer's VCEK under its ASK with AMD's extensions but those `without` (OIDs), valid until `notAfter` (ten years by default). */
  vcekLacking(without: string[], o: { notAfter?: Date } = {}): Uint8Array {
    const extensions = amdExtensions(this.tcb, this.chipId.subarray(0, HWID_BYTES[this.product]), this.fmc).filter((e) => !without.includes(e.oid));
    return pssCertificate({ subject: 'SEV-VCEK', issuer: 'SEV-TEST', key: this.keys.vcek, signer: this.keys.ask, extensions, ...(o.notAfter ? { notAfter: o.notAfter } : {}) }, this.now);
  }

  /** This signer's VCEK (or VLEK) issued by the other intermediate than AMD's path has: ARK -> ASVK -> VCEK, ARK -> ASK -> VLEK. */
  crossSigned(kind: 'vcek' | 'vlek'): Uint8Array {
    const [subject, issuer, signer] = kind === 'vcek' ? ['SEV-VCEK', 'SEV-VLEK-TEST', this.keys.asvk] : ['SEV-VLEK', 'SEV-TEST', this.keys.ask];
    return pssCertificate({ subject, issuer, key: this.keys[kind], signer, extensions: amdExtensions(this.tcb, kind === 'vcek' ? this.chipId.subarray(0, HWID_BYTES[this.product]) : undefined, this.fmc) }, this.now);
  }

  /** A well-formed, signed report (in Turin mode: family 1Ah, every TCB in Turin's layout; a version 2 one names no CPU). */
  report(f: ReportFields): Uint8Array {
    const b = new Uint8Array(REPORT_SIZE);
    const v = new DataView(b.buffer);
    const kind = f.signingKey ?? 'vcek';
    const fmc = this.fmc === undefined ? undefined : (f.fmc ?? this.fmc);
    const tcb = tcbBytes(f.reportedTcb ?? this.tcb, fmc);
    v.setUint32(0x00, f.version ?? 3, true);
    v.setUint32(0x04, f.guestSvn ?? 0, true);
    v.setBigUint64(0x08, f.policy ?? 0x30000n, true);
    v.setUint32(0x30, f.vmpl ?? 0, true);
    v.setUint32(0x34, 1, true);
    b.set(tcb, 0x38);
    v.setBigUint64(0x40, f.platformInfo ?? 1n, true);
    v.setUint32(0x48, kind === 'vcek' ? 0 : 1 << 2, true);
    b.set(f.reportData, 0x50);
    b.set(f.measurement, 0x90);
    if (f.hostData) b.set(f.hostData, 0xc0);
    if (f.idKeyDigest) b.set(f.idKeyDigest, 0xe0);
    b.set(randomBytes(32), 0x140);
    b.fill(0xff, 0x160, 0x180);
    b.set(tcb, 0x180);
    if ((f.version ?? 3) >= 3) b.set(CPUID[this.product], 0x188); // a version 2 report has none
    if (kind === 'vcek') b.set(f.chipId ?? this.chipId, 0x1a0);
    b.set(tcb, 0x1e0);
    const fw = ([major, minor, build]: [number, number, number]) => Uint8Array.of(build, minor, major);
    b.set(fw(f.currentFirmware ?? [1, 52, 4]), 0x1e8);
    b.set(fw(f.committedFirmware ?? [1, 52, 4]), 0x1ec);
    b.set(f.launchTcb || f.launchFmc !== undefined ? tcbBytes(f.launchTcb ?? f.reportedTcb ?? this.tcb, fmc === undefined ? undefined : (f.launchFmc ?? fmc)) : tcb, 0x1f0);
    return signReport(b, kind === 'vcek' ? this.keys.vcek : this.keys.vlek);
  }

  /** `bytes` (a report, changed after it was made) signed again by this signer's VCEK or VLEK, as a well-formed report's signature would be. */
  resign(bytes: Uint8Array, kind: 'vcek' | 'vlek' = 'vcek'): Uint8Array {
    return signReport(bytes, this.keys[kind]);
  }

  /** The VCEK's ECDSA signature (r then s, 48 bytes each, big-endian) over any bytes with any hash: for signatures made over the wrong thing. */
  vcekSignature(data: Uint8Array, hash = 'sha384'): Uint8Array {
    return new Uint8Array(sign(hash, data, { key: this.keys.vcek, dsaEncoding: 'ieee-p1363' }));
  }

  /**
   * A revocation list shaped as AMD's: v2, issued and RSA-PSS signed by the ARK (or another
   * signer given), listing these serials (the ASK is 2, the ASVK 3), with a CRL number.
   */
  crl(o: { revoked?: number[]; thisUpdate?: Date; nextUpdate?: Date; signer?: 'ark' | 'ask'; issuer?: string; criticalExtension?: boolean } = {}): Uint8Array {
    const thisUpdate = o.thisUpdate ?? new Date(this.now.getTime() - DAY);
    const entries = (o.revoked ?? []).map((serial) => seq(encodeSmallInt(serial), encodeTime(thisUpdate)));
    const crlNumber = seq(encodeOid('2.5.29.20'), ...(o.criticalExtension ? [encodeBool(true)] : []), encodeOctets(encodeSmallInt(1)));
    const alg = pssAlgorithm();
    const tbs = seq(
      encodeSmallInt(1), alg, name(o.issuer ?? this.arkName), encodeTime(thisUpdate), encodeTime(o.nextUpdate ?? new Date(this.now.getTime() + 7 * DAY)),
      ...(entries.length ? [seq(...entries)] : []), explicit(0, seq(crlNumber)),
    );
    const sig = sign('sha384', tbs, { key: this.keys[o.signer ?? 'ark'], padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 });
    return seq(tbs, alg, encodeBitString(new Uint8Array(sig)));
  }

  /** The host's certificate table (auxblob): VCEK, ASK and ARK, as an SNP host attaches them. */
  certTable(): Uint8Array {
    const entries: [string, Uint8Array][] = [[CERT_GUIDS.vcek, this.vcek], [CERT_GUIDS.ask, this.ask], [CERT_GUIDS.ark, this.ark]];
    const header = new Uint8Array((entries.length + 1) * 24);
    const v = new DataView(header.buffer);
    let offset = header.length;
    entries.forEach(([guid, der], i) => {
      header.set(Buffer.from(guid.replace(/-/g, ''), 'hex'), i * 24);
      v.setUint32(i * 24 + 16, offset, true);
      v.setUint32(i * 24 + 20, der.length, true);
      offset += der.length;
    });
    return concatBytes(header, ...entries.map(([, der]) => der));
  }
}

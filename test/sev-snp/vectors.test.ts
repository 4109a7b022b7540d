// Real SEV-SNP reports (test/vectors/sev-snp): every field the vectors' README lists parses to the
// same value (expected.json is that README as data), every report verifies against the pinned
// AMD root of its product, and the pinned roots are byte for byte the ones AMD publishes.

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256, toHex } from '../../lib/crypto/index.ts';
import { readCertificate } from '../../lib/pki/index.ts';
import { showValue } from '../../lib/policy/index.ts';
import {
  AMD_PRODUCTS, certProductName, certTcb, checkIntermediateKind, describeReport, isPssSignedBy, kdsVcekPath, parseReport, pinnedAmdCerts, pinnedArk, readAmdCert,
  snpProperties, validateAmdChain, verifySnpReport, type SnpReport, type TcbVersion,
} from '../../lib/attest/index.ts';
import { EXPECTED, NAMES, NOW, refusalOf, SNP_DIR as DIR, vector } from './support.ts';

const tcb = (t: TcbVersion) => ({ hex: t.hex, ...(t.fmc === undefined ? {} : { fmc: t.fmc }), bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode });
/** A vector's own "now" (a VCEK issued after the shared one), or the shared one. */
const nowOf = (e: { now?: string }) => new Date(e.now ?? EXPECTED.now);

/** The parsed report in the shape of expected.json. */
function asData(r: SnpReport) {
  const i = r.platformInfo;
  const infoFlags = ([['SMT_EN', i.smtEnabled], ['TSME_EN', i.tsmeEnabled], ['ECC_EN', i.eccEnabled], ['RAPL_DIS', i.raplDisabled], ['CIPHERTEXT_HIDING_EN', i.ciphertextHiding], ['ALIAS_CHECK_COMPLETE', i.aliasCheckComplete]] as const)
    .filter(([, on]) => on).map(([n]) => n);
  const { raw, ...policy } = r.policy;
  return {
    version: r.version, guestSvn: r.guestSvn, policy: { raw: `0x${raw.toString(16)}`, ...policy },
    familyId: toHex(r.familyId), imageId: toHex(r.imageId), vmpl: r.vmpl, signatureAlgo: r.signatureAlgo,
    currentTcb: tcb(r.currentTcb), platformInfo: { raw: `0x${i.raw.toString(16)}`, flags: infoFlags },
    authorKeyEn: r.authorKeyEn, maskChipKey: r.maskChipKey, signingKey: r.signingKey,
    reportData: toHex(r.reportData), measurement: toHex(r.measurement), hostData: toHex(r.hostData),
    idKeyDigest: toHex(r.idKeyDigest), authorKeyDigest: toHex(r.authorKeyDigest), reportId: toHex(r.reportId), reportIdMa: toHex(r.reportIdMa),
    reportedTcb: tcb(r.reportedTcb), cpuid: r.cpuid ?? null, chipId: toHex(r.chipId), committedTcb: tcb(r.committedTcb),
    currentFirmware: r.currentFirmware, committedFirmware: r.committedFirmware, launchTcb: tcb(r.launchTcb),
    signatureR: toHex(r.signature.r), signatureS: toHex(r.signature.s),
  };
}

describe('SEV-SNP vectors: parsing and verification against the pinned AMD roots', () => {
  for (const name of NAMES) {
    describe(name, () => {
      const { report, vcek, e } = vector(name);

      it('is the file the README describes', () => {
        expect(toHex(sha256(report))).to.equal(e.sha256);
      });

      it('parses every field the README lists to the same value', () => {
        const { product: _p, sha256: _s, vcek: _v, now: _n, ...fields } = e;
        expect(asData(parseReport(report))).to.deep.equal(fields);
      });

      it(`verifies against the pinned ${e.product} ARK at ${e.now ?? EXPECTED.now}, VCEK -> ASK -> ARK`, () => {
        const v = verifySnpReport({ report, certs: [vcek], at: nowOf(e), roots: [pinnedArk(e.product)] });
        expect(v.product).to.equal(e.product);
        expect(v.chain.intermediate.name).to.equal(e.vcek.issuerCN);
        expect(v.chain.leaf.serialHex, 'AMD issues VCEKs with serial 0').to.equal('00');
      });

      it('reads the VCEK\'s product name, TCB and validity as the README lists them', () => {
        const c = readAmdCert(vcek, 'VCEK');
        expect(certProductName(c)).to.equal(e.vcek.productName);
        expect(certTcb(c)).to.deep.equal(e.vcek.tcb);
        expect(c.notBefore.toISOString().slice(0, 10)).to.equal(e.vcek.notBefore);
        expect(c.notAfter.toISOString().slice(0, 10)).to.equal(e.vcek.notAfter);
      });

      it('reports the properties a policy checks from REPORTED_TCB, not CURRENT_TCB', () => {
        const p = snpProperties(parseReport(report));
        expect(p).to.include({ debug: e.policy.debug ? 1 : 0, 'migrate-ma': 0, vmpl: e.vmpl, 'tcb-bootloader': e.reportedTcb.bootloader, 'tcb-snp': e.reportedTcb.snp, 'tcb-microcode': e.reportedTcb.microcode });
        expect(p['id-key-digest']).to.equal(/^0+$/.test(e.idKeyDigest) ? undefined : e.idKeyDigest);
      });
    });
  }

  it('reads the firmware each real report was made by as firmware-version and committed-firmware-version (MAJOR.MINOR, build left out)', () => {
    // CURRENT and COMMITTED at 0x1E8 and 0x1EC (build, minor, major) are equal in every vector.
    const want: Record<string, string> = { 'milan-virtee-sev': '1.52', 'milan-go-sev-guest': '1.49', 'milan-trustee': '1.52', 'genoa-azure-trustee': '1.55', 'turin-oak': '1.55' };
    for (const name of NAMES) {
      const p = snpProperties(parseReport(vector(name).report));
      for (const prop of ['firmware-version', 'committed-firmware-version']) expect(showValue(prop, p[prop]!), `${name} ${prop}`).to.equal(want[name]);
    }
    expect(snpProperties(parseReport(vector('genoa-azure-trustee').report))['firmware-version'], 'Genoa 1.55: 1 * 256 + 55').to.equal(311);
  });

  it('accepts a high s as AMD\'s firmware makes it (three of the five real reports), and so also (r, n - s), which vouches for the same bytes', () => {
    const n = 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n; // the order of P-384
    const big = (b: Uint8Array) => BigInt(`0x${toHex(b)}`);
    const high: string[] = [];
    for (const name of NAMES) {
      const { report, vcek, e } = vector(name);
      const at = nowOf(e);
      const s = big(parseReport(report).signature.s);
      if (s > n / 2n) high.push(name);
      // The other s, written back little-endian at 0x2E8: a second encoding of the same signed report.
      const other = new Uint8Array(report);
      other.set(Buffer.from((n - s).toString(16).padStart(96, '0'), 'hex').reverse(), 0x2e8);
      expect(toHex(other), name).to.not.equal(toHex(report));
      expect(() => verifySnpReport({ report: other, certs: [vcek], at }), `${name} with n - s`).to.not.throw();
      expect(() => verifySnpReport({ report, certs: [vcek], at }), name).to.not.throw();
    }
    expect(high).to.deep.equal(['milan-go-sev-guest', 'milan-trustee', 'turin-oak']);
  });

  it('names the KDS address of a report\'s VCEK as go-sev-guest fetches it (chip id and REPORTED_TCB)', () => {
    const go = parseReport(vector('milan-go-sev-guest').report);
    // The README's URL, but a version 2 report does not say its product.
    expect(kdsVcekPath(go)).to.equal(`/vcek/v1/{Milan|Genoa}/${toHex(go.chipId)}?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68`);
    const genoa = parseReport(vector('genoa-azure-trustee').report);
    expect(kdsVcekPath(genoa)).to.match(/^\/vcek\/v1\/Genoa\/0506ffba[0-9a-f]+\?blSPL=10&teeSPL=0&snpSPL=23&ucodeSPL=84$/);
    // The address oak's README of its Turin VCEK names: the first 8 bytes of CHIP_ID, and fmcSPL.
    expect(kdsVcekPath(parseReport(vector('turin-oak').report))).to.equal('/vcek/v1/Turin/3b42092f69c656d3?fmcSPL=0&blSPL=1&teeSPL=0&snpSPL=2&ucodeSPL=71');
  });

  it('describes every field of each real report in one column, as explain prints it: turin-oak\'s mitigation vectors (version 5) under their own names too', () => {
    for (const name of NAMES) {
      const lines = describeReport(parseReport(vector(name).report));
      for (const line of lines) expect(line, name).to.match(/^\S.{21} \S/);
    }
    const oak = describeReport(parseReport(vector('turin-oak').report));
    expect(oak).to.include.members(['launch_mit_vector      0x0', 'current_mit_vector     0x0']);
  });

  describe('pinned AMD certificates', () => {
    for (const product of AMD_PRODUCTS) {
      it(`pins AMD's ${product} ARK, ASK and ASVK (SHA-256 fingerprints), each signed by the ARK with RSA-PSS`, () => {
        const p = pinnedAmdCerts().find((x) => x.product === product)!;
        const want = EXPECTED.amdCerts[product];
        const ark = readAmdCert(p.ark, 'ARK');
        for (const [role, der] of [['ark', p.ark], ['ask', p.ask], ['asvk', p.asvk]] as const) {
          expect(toHex(sha256(der)), role).to.equal(want[role].sha256);
          const c = readAmdCert(der, role);
          expect(c.name, role).to.equal(want[role].cn);
          expect(isPssSignedBy(c, ark.publicKey), `${role} signed by the ARK`).to.equal(true);
        }
      });
    }

    it('keeps AMD\'s two paths apart with its real certificates in the wrong roles: an ASVK above a VCEK, an ASK above a VLEK, an ARK in the middle (wrong-intermediate)', () => {
      for (const p of pinnedAmdCerts()) {
        const [ark, ask, asvk] = [readAmdCert(p.ark, 'ARK'), readAmdCert(p.ask, 'ASK'), readAmdCert(p.asvk, 'ASVK')];
        expect(() => checkIntermediateKind(ask, 'vcek'), `${p.product} ASK above a VCEK`).to.not.throw();
        expect(() => checkIntermediateKind(asvk, 'vlek'), `${p.product} ASVK above a VLEK`).to.not.throw();
        for (const [c, kind] of [[asvk, 'vcek'], [ask, 'vlek'], [ark, 'vcek'], [ark, 'vlek']] as const) {
          const r = refusalOf(() => checkIntermediateKind(c, kind));
          expect(r, `${p.product} ${c.name} above a ${kind}`).to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'wrong-intermediate' });
          expect(r.message).to.contain(`"${c.name}"`);
        }
      }
      const milanAsvk = readAmdCert(readCertificate(readFileSync(join(DIR, 'amd', 'milan', 'asvk.pem'))), 'ASVK');
      expect(refusalOf(() => checkIntermediateKind(milanAsvk, 'vcek')).message).to.equal('the VCEK certificate is signed by "SEV-VLEK-Milan", an ASVK, which signs VLEKs only: a VCEK must be signed by an ASK (ARK -> ASK -> VCEK) (wrong-intermediate)');
    });

    it('passes over an ASVK sent with a VCEK (a host\'s certificate table may carry one): a real VCEK names its ASK, and only the ASK verifies it', () => {
      const virtee = vector('milan-virtee-sev');
      const asvkDer = readCertificate(readFileSync(join(DIR, 'amd', 'milan', 'asvk.pem')));
      const v = verifySnpReport({ report: virtee.report, certs: [virtee.vcek, asvkDer], at: NOW });
      expect(v.chain.intermediate.name).to.equal('SEV-Milan');
      const alone = { leaf: readAmdCert(virtee.vcek, 'VCEK'), kind: 'vcek' as const, intermediates: [readAmdCert(asvkDer, 'ASVK')], roots: [readAmdCert(pinnedArk('milan'), 'ARK')], at: NOW };
      expect(refusalOf(() => validateAmdChain(alone)), 'the ASVK as the only intermediate').to.include({ code: 'SNP_CHAIN_UNTRUSTED', reason: 'no-issuer' });
    });

    it('pins the same Milan, Genoa and Turin certificates the shared vectors hold', () => {
      for (const product of AMD_PRODUCTS) {
        const p = pinnedAmdCerts().find((x) => x.product === product)!;
        expect(toHex(p.ark)).to.equal(toHex(readCertificate(readFileSync(join(DIR, 'amd', product, 'ark.pem')))));
        expect(toHex(p.ask)).to.equal(toHex(readCertificate(readFileSync(join(DIR, 'amd', product, 'ask.pem')))));
      }
      expect(toHex(pinnedAmdCerts()[0]!.asvk)).to.equal(toHex(readCertificate(readFileSync(join(DIR, 'amd', 'milan', 'asvk.pem')))));
    });
  });
});

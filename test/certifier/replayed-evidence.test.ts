// Sound evidence sent again on a session of one's own: a copy of a trusted machine's request, an
// SEV-SNP report made for another session or dated days ago, a real AMD report (public, and it
// verifies against AMD's root). Anybody holding one can do it at will, and it is refused before the
// evidence is proven bound to the session: held to ten lines a second for each code, no closed
// line. A machine's own evidence, bound to its session and refused after that (measurement not
// trusted, property denied), is logged in full, closed line and all.

import { expect } from 'chai';
import { generateKeyPair, publicKeyOf, randomBytes, toHex, toKeyMessage } from '../../lib/crypto/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { decode, encode, type TrustResponseMessage } from '../../lib/wire/index.ts';
import { formatCertifierTime, SEV_SNP_PLATFORM } from '../../lib/policy/index.ts';
import { pinnedArk, reportDataFor, SimulatedEnclave } from '../../lib/attest/index.ts';
import { requestCertificate, SESSION_BINDING_BYTES, SESSION_BINDING_LABEL } from '../../lib/certifier/index.ts';
import { connect } from '../../lib/channel/index.ts';
import { waitFor } from '../channel/harness.ts';
import { snpRequest, vector } from '../sev-snp/support.ts';
import { TestSnpSigner } from '../sev-snp/signer.ts';
import { m, mostInOneSecond, startLogged, type Line } from './flood.ts';

const DAY = 86_400_000;
type Logged = Awaited<ReturnType<typeof startLogged>>;

/** Sends `n` requests at once, each on a new session (`body` given that session's binding); the codes they are refused with. */
function send(s: Logged, n: number, body: (binding: Uint8Array) => Uint8Array | Promise<Uint8Array>): Promise<string[]> {
  return Promise.all(Array.from({ length: n }, async () => {
    const c = await connect({ host: '127.0.0.1', port: s.server.address.port, tls: { ca: toPem(s.policyCert) } });
    try {
      const answer = decode<TrustResponseMessage>('trust_response_message', await c.request(await body(c.exportKeyingMaterial(SESSION_BINDING_LABEL, SESSION_BINDING_BYTES)!)));
      return answer.errorCode ?? String(answer.status);
    } finally {
      await c.close().catch(() => {});
    }
  }));
}

const refusals = (s: Logged, code: string) => () => s.lines.filter((l) => l.record.event === 'certification' && l.record.code === code);
const closedOf = (lines: Line[]) => new Set(lines.filter((l) => l.record.event === 'closed').map((l) => l.record.conn));

/** Each of the `n` refusals with `code` has a line of its own and its connection's closed line. */
async function loggedInFull(s: Logged, code: string, n: number): Promise<void> {
  const ids = () => refusals(s, code)().map((l) => l.record.conn);
  await waitFor(() => ids().every((id) => closedOf(s.lines).has(id)) && ids().length === n, 20_000, `every ${code} refusal and its closed line`);
  expect(refusals(s, code)().filter((l) => l.record.summary || l.record.suppressed)).to.deep.equal([]);
}

describe('simpleserver: evidence replayed on a session of its own', function () {
  this.timeout(30_000);

  it('holds a trusted machine\'s request, sent again on new sessions, to the rate (SESSION_MISMATCH), and logs in full a machine\'s own bound evidence of a measurement not trusted', async () => {
    const s = await startLogged();
    try {
      let captured: Uint8Array | undefined;
      const platform = new SimulatedEnclave(s.platformKeys.attestKey, s.platformKeys.endorsement, m);
      await requestCertificate({ host: '127.0.0.1', port: s.server.address.port, policyCert: s.policyCert, platform, authKey: (await generateKeyPair('p256')).privateKey, onRequest: (r) => (captured = r) });
      const flood = 40;
      expect(new Set(await send(s, flood, () => captured!))).to.deep.equal(new Set(['SESSION_MISMATCH']));
      expect(await mostInOneSecond(refusals(s, 'SESSION_MISMATCH'), flood, 'replay')).to.be.at.most(10); // README, simpleserver
      const allowed = s.lines.filter((l) => l.record.decision === 'allow').map((l) => l.record.conn);
      await waitFor(() => closedOf(s.lines).has(allowed[0]), 20_000, 'the certification\'s closed line');
      expect([...closedOf(s.lines)], 'a closed line for the certification only').to.deep.equal(allowed);
      // A machine talking now, its evidence bound to its session: every refusal has its line.
      const other = new SimulatedEnclave(s.platformKeys.attestKey, s.platformKeys.endorsement, randomBytes(32));
      const codes = await Promise.all(Array.from({ length: 12 }, async () => requestCertificate({
        host: '127.0.0.1', port: s.server.address.port, policyCert: s.policyCert, platform: other, authKey: (await generateKeyPair('p256')).privateKey,
      }).then(() => 'allowed', (e) => e.code)));
      expect(new Set(codes)).to.deep.equal(new Set(['MEASUREMENT_NOT_TRUSTED']));
      await loggedInFull(s, 'MEASUREMENT_NOT_TRUSTED', 12);
    } finally {
      await s.server.close();
    }
  });

  it('holds SEV-SNP reports sent on a session they were not made for to the rate: made for another (SESSION_MISMATCH), dated two days ago (CLAIM_EXPIRED), a real AMD report (SNP_REPORT_DATA_MISMATCH); a bound report of a debug guest is logged in full', async () => {
    const signer = TestSnpSigner.create();
    const measurement = randomBytes(48);
    const virtee = vector('milan-virtee-sev');
    const s = await startLogged({
      platforms: [], measurements: [measurement],
      platformRoots: [{ platformType: SEV_SNP_PLATFORM, certificate: signer.ark, name: 'ARK-TEST' }, { platformType: SEV_SNP_PLATFORM, certificate: pinnedArk('milan'), name: 'ARK-Milan' }],
      platformProperties: [{ platformType: SEV_SNP_PLATFORM, requirements: ['tcb-bootloader', 'tcb-tee', 'tcb-snp', 'tcb-microcode'].map((name) => ({ name, comparator: '>=', value: 0 })) }],
    });
    const machine = publicKeyOf((await generateKeyPair('p256')).privateKey);
    const userData = (sessionBinding: Uint8Array, time = new Date()) => encode('attestation_user_data', {
      enclaveType: 'sev-enclave', time: formatCertifierTime(time), enclaveKey: toKeyMessage(machine, 'auth-key'), sessionBinding,
    });
    /** The signer's evidence for `said`, with guest policy `policy`. */
    const evidence = (said: Uint8Array, policy?: bigint) => snpRequest(signer.report({ reportData: reportDataFor(said), measurement, ...(policy ? { policy } : {}) }), said, [signer.vcek, signer.ask]);
    try {
      const flood = 20;
      const elsewhere = evidence(userData(randomBytes(32)));
      const old = evidence(userData(randomBytes(32), new Date(Date.now() - 2 * DAY)));
      const [replayed, dated, real] = await Promise.all([
        send(s, flood, () => elsewhere),
        send(s, flood, () => old),
        send(s, flood, (binding) => snpRequest(virtee.report, userData(binding), [virtee.vcek])),
      ]);
      expect([new Set(replayed), new Set(dated), new Set(real)]).to.deep.equal([new Set(['SESSION_MISMATCH']), new Set(['CLAIM_EXPIRED']), new Set(['SNP_REPORT_DATA_MISMATCH'])]);
      for (const code of ['SESSION_MISMATCH', 'CLAIM_EXPIRED', 'SNP_REPORT_DATA_MISMATCH']) {
        expect(await mostInOneSecond(refusals(s, code), flood, code), code).to.be.at.most(10);
      }
      expect([...closedOf(s.lines)], 'no closed line for a refusal anybody may have').to.deep.equal([]);
      // Evidence made on its own session, of a guest the policy's properties refuse (debug): in full.
      const debug = 0x30000n | (1n << 19n);
      expect(new Set(await send(s, 12, (binding) => evidence(userData(binding), debug)))).to.deep.equal(new Set(['PLATFORM_PROPERTY_DENIED']));
      await loggedInFull(s, 'PLATFORM_PROPERTY_DENIED', 12);
    } finally {
      await s.server.close();
    }
  });
  it('holds to the rate, over --plain, a captured request that is allowed each time it is sent again: nothing binds it to a session, so anybody who saw it on the wire can make the log grow', async () => {
    const s = await startLogged({}, { plain: true });
    try {
      let captured: Uint8Array | undefined;
      const platform = new SimulatedEnclave(s.platformKeys.attestKey, s.platformKeys.endorsement, m);
      await requestCertificate({ host: '127.0.0.1', port: s.server.address.port, policyCert: s.policyCert, platform, plain: true, authKey: (await generateKeyPair('p256')).privateKey, onRequest: (r) => (captured = r) });
      const flood = 40;
      const codes = await Promise.all(Array.from({ length: flood }, async () => {
        const c = await connect({ host: '127.0.0.1', port: s.server.address.port, plain: true });
        try {
          return String(decode<TrustResponseMessage>('trust_response_message', await c.request(captured!)).status);
        } finally {
          await c.close().catch(() => {});
        }
      }));
      expect(new Set(codes)).to.deep.equal(new Set(['succeeded']));
      const allowed = () => s.lines.filter((l) => l.record.event === 'certification' && l.record.decision === 'allow');
      expect(await mostInOneSecond(allowed, flood + 1, 'allow')).to.be.at.most(10); // README, simpleserver
      // A summary names what was certified.
      const counted = allowed().filter((l) => l.record.suppressed);
      expect(counted).to.not.deep.equal([]);
      for (const l of counted) expect(l.record).to.include({ platform: 'simulated-enclave', measurement: toHex(m) });
    } finally {
      await s.server.close();
    }
  });
});

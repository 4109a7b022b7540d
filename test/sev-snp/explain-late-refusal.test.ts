// simpleserver explain on evidence refused after some of its checks passed, with the real
// programs and a real report: the virtee vector's VCEK chain and signature verify, and its
// REPORT_DATA cannot be the hash of any user data sent with it (SNP_REPORT_DATA_MISMATCH). The
// refusal's proof names the checks that passed before it, in the text and under --json.

import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, publicKeyOf, toKeyMessage } from '../../lib/crypto/index.ts';
import { encode } from '../../lib/wire/index.ts';
import { formatCertifierTime } from '../../lib/policy/index.ts';
import { run, tempDir, type RunResult } from '../support/helpers.ts';
import { snpRequest, vector } from './support.ts';

describe('simpleserver explain on evidence refused late (a real SEV-SNP report, SNP_REPORT_DATA_MISMATCH)', () => {
  let tmp: ReturnType<typeof tempDir>;
  const virtee = vector('milan-virtee-sev');
  const explain = (more: string[] = []) => run('simpleserver', ['explain', '--policy', 'policy.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence.bin', ...more], { cwd: tmp.dir });
  const ok = (r: RunResult) => {
    expect(r.status, r.stderr).to.equal(0);
    return r;
  };

  before(async () => {
    tmp = tempDir('snp-explain-');
    const cu = (args: string[]) => run('cert-utility', args, { cwd: tmp.dir });
    ok(await cu(['generate-policy-key', '--domain', 'snp-explain', '--key-out', 'policy-key.pem', '--cert-out', 'policy-cert.pem']));
    ok(await cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', 'policy.bin',
      '--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', '--trust-measurement', virtee.e.measurement]));
    const machine = await generateKeyPair('p256');
    const said = encode('attestation_user_data', { enclaveType: 'sev-enclave', time: formatCertifierTime(new Date()), enclaveKey: toKeyMessage(publicKeyOf(machine.privateKey), 'auth-key') });
    writeFileSync(join(tmp.dir, 'evidence.bin'), snpRequest(virtee.report, said, [virtee.vcek]));
  });
  after(() => tmp?.cleanup());

  it('names the checks that passed before the refusal (the VCEK chain, the report\'s signature) as its proof, in the text and under --json, with the refusal\'s code and exit status', async () => {
    const text = await explain();
    expect(text.status, text.stderr).to.equal(4);
    expect(text.stderr).to.match(/\[SNP_REPORT_DATA_MISMATCH\]$/m);
    const lines = text.out.trimEnd().split('\n');
    const at = lines.indexOf('decision: deny (SNP_REPORT_DATA_MISMATCH)');
    expect(at, text.out).to.be.greaterThan(-1);
    const proof = lines.slice(at + 1, -1);
    expect(proof).to.have.length(2);
    expect(proof[0]).to.match(/^ {2}ARK-Milan \S+ \(pinned AMD root\) signed SEV-Milan, which signed the VCEK for Milan-B0 at TCB bootloader=3 tee=0 snp=8 microcode=115 \(RSA-PSS SHA-384 signatures verified\)$/);
    expect(proof[1]).to.equal(`  the VCEK matches the report's REPORTED_TCB and CHIP_ID, and signed the report (ECDSA P-384 verified): measurement ${virtee.e.measurement}, VMPL 0`);
    expect(lines.at(-1)).to.match(/^reason: the report's REPORT_DATA is not the hash of the user data sent with it/);
    const json = await explain(['--json']);
    expect(json.status).to.equal(4);
    expect(json.json().error).to.include({ code: 'SNP_REPORT_DATA_MISMATCH' });
    expect(json.json().error.proof).to.deep.equal(proof.map((l) => l.trim()));
  });
});

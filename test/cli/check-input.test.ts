// The input scripts hand the programs, asked about with --check-only before they act: the names
// of key-client retrieve (first-boot.sh's --keys) and the --domain of cert-utility
// generate-policy-key (deployment-setup.sh's --domain). Names come in through argv as a script
// passes them, bytes that are not UTF-8 included; every refusal names what it refuses, escaped,
// and exits 2 (USAGE).

import { expect } from 'chai';
import { domainProblem } from '../../lib/pki/admission.ts';
import { tagProblem } from '../../lib/wire/index.ts';
import { runWithBytes, tempDir, type RunResult } from '../support/helpers.ts';

const CONTROL = /[\x00-\x09\x0b-\x1f\x7f]/; // anything but a line's end, raw on a terminal

describe('--check-only on the names retrieve takes and the domain generate-policy-key takes', function () {
  this.slow(4_000);
  let tmp: ReturnType<typeof tempDir>;
  before(() => (tmp = tempDir('check-input-')));
  after(() => tmp.cleanup());

  // Files that are not there: a check reads none of them.
  const client = ['--server', 'kms.internal:8120', '--domain', 'datica', '--policy-cert', 'policy-cert.pem', '--store', 'store', '--sealed', '--platform-dir', 'platform', '--measurement-file', 'measurement'];
  const names = (args: (string | Uint8Array)[], json = false) =>
    runWithBytes('key-client', ['retrieve', '--check-only', ...client, ...(json ? ['--json'] : []), '--', ...args], { cwd: tmp.dir });
  const refused = (r: RunResult, message: string) => {
    expect(r.status, r.stderr).to.equal(2);
    expect(r.stderr).to.contain(`key-client: error: ${message} [USAGE]`);
    expect(r.stderr, "the check's answer, not a misuse of it: no usage hint").not.to.contain('hint:');
    expect(r.stderr, 'no control character reaches the terminal raw').not.to.match(CONTROL);
    expect(r.out).to.equal('');
  };

  it('refuses a name holding a control character, naming it escaped (USAGE, exit 2)', async () => {
    for (const [name, as] of [['vhd/a\x01b', 'vhd/a\\u0001b'], ['vhd/\x1b[2Jdisk', 'vhd/\\u001b[2Jdisk'], ['a\x7fb', 'a\\u007fb'], ['line\nbreak', 'line\\nbreak'], ['tab\there', 'tab\\there']] as [string, string][]) {
      refused(await names(['vhd/disk-1', name]), `the name "${as}" contains a control character`);
    }
  });

  it('refuses a name that is not UTF-8 (raw bytes in argv), and one holding U+FFFD, which such bytes become', async () => {
    const bytes = (...b: number[]) => Uint8Array.from(b);
    const cases: [Uint8Array | string, string][] = [
      [bytes(0x61, 0x62, 0x63, 0xff), 'abc\ufffd'], // a byte no UTF-8 holds
      [bytes(0xed, 0xa0, 0x80), '\ufffd\ufffd\ufffd'], // a surrogate, U+D800
      [bytes(0xc0, 0xaf), '\ufffd\ufffd'], // "/" written in two bytes (overlong)
      [bytes(0x78, 0xf0, 0x9f, 0x98), 'x\ufffd'], // an emoji cut short
      ['x\ufffdy', 'x\ufffdy'], // U+FFFD itself: a decoder's mark of bytes that were not UTF-8
    ];
    for (const [name, as] of cases) refused(await names(['vhd/disk-1', name]), `the name "${as}" is not valid UTF-8`);
    // Valid UTF-8 beyond ASCII goes through: an emoji, four bytes.
    const emoji = await names([bytes(0x78, 0xf0, 0x9f, 0x98, 0x80)]);
    expect([emoji.status, emoji.stderr]).to.deep.equal([0, '']);
  });

  it('counts a name in UTF-16 units as key-server does: 256 with an emoji among them go through, 257 are refused', async () => {
    const longest = `vhd/${'\u{1f600}'.repeat(125)}x\u00e9`; // 252 code points, 256 units
    const tooLong = `${longest}y`;
    expect([tagProblem(longest), longest.length, [...longest].length]).to.deep.equal([undefined, 256, 131]);
    const ok = await names([longest]);
    expect([ok.status, ok.out, ok.stderr]).to.deep.equal([0, '', '']);
    refused(await names([tooLong]), `the name "${longest}..." (257 characters) is longer than 256 characters (counted in UTF-16 units: a character beyond U+FFFF, such as an emoji, counts as two)`);
  });

  it('refuses the tags where the cryptstore keeps an identity or a key-server its storage key, naming every name it refuses in one error', async () => {
    for (const tag of ['datica-private-auth-key', 'other-admission-certificate']) {
      refused(await names([tag]), `"${tag}" is where init-trust keeps a machine's identity in the cryptstore; fetch it to a file with --out`);
    }
    refused(await names(['key-server-storage-key']), '"key-server-storage-key" is a key-server\'s storage key: a standby or replica fetches it with key-server join');
    refused(await names(['', 'vhd/ok', 'a\x1bb', 'd-admission-certificate']),
      'the name "" is empty; the name "a\\u001bb" contains a control character; "d-admission-certificate" is where init-trust keeps a machine\'s identity in the cryptstore; fetch it to a file with --out');
  });

  it('takes 1,000 names (a name given twice counts once) and refuses 1,001, as one retrieve fetches at most 1,000', async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => `many/${i}`);
    const [atLimit, twice, over] = await Promise.all([names(many(1000)), names([...many(1000), 'many/0']), names(many(1001))]);
    for (const r of [atLimit, twice]) expect([r.status, r.stderr]).to.deep.equal([0, '']);
    refused(over, '1001 names is too many for one run: a key-server answers at most 1000 requests on a connection; fetch at most 1000 at a time');
  });

  it('takes names beginning with "-" after --, and needs at least one name', async () => {
    const dash = await names(['-x', '--out=leak']);
    expect([dash.status, dash.out, dash.stderr]).to.deep.equal([0, '', '']);
    refused(await names([]), "missing required argument 'name'");
  });

  it('answers with one JSON document under --json: checked, or the usual error document, escaped', async () => {
    const ok = await names(['vhd/disk-1', 'vhd/disk-2', 'vhd/disk-1'], true);
    expect([ok.status, ok.stderr]).to.deep.equal([0, '']);
    expect(ok.json()).to.deep.equal({ ok: true, checked: true });
    const bad = await names(['vhd/disk-1', 'a\x1bb', Uint8Array.from([0x61, 0xff])], true);
    expect([bad.status, bad.stderr]).to.deep.equal([2, '']);
    expect(bad.out).not.to.match(CONTROL);
    expect(bad.json()).to.deep.equal({ ok: false, error: { code: 'USAGE', message: 'the name "a\\u001bb" contains a control character; the name "a\ufffd" is not valid UTF-8', exitStatus: 2 } });
  });

  const domain = (d: string | Uint8Array, json = false) =>
    runWithBytes('cert-utility', ['generate-policy-key', '--check-only', '--key-out', 'k.pem', '--cert-out', 'c.pem', ...(json ? ['--json'] : []), '--domain', d], { cwd: tmp.dir });
  const DOMAIN_RULE = 'is invalid. expected letters, digits, ".", "_" or "-" (at most 253, starting with a letter or digit)';

  it('--domain takes a domain by its rule (exit 0) and refuses any other, escaped (USAGE, exit 2)', async () => {
    for (const d of ['datica', 'd'.repeat(253), 'a.b_c-1']) {
      const r = await domain(d);
      expect([domainProblem(d), r.status, r.out, r.stderr], d).to.deep.equal([undefined, 0, '', '']);
    }
    const refusals: [string | Uint8Array, string][] = [
      ['d'.repeat(254), 'd'.repeat(254)], ['-datica', '-datica'], ['.datica', '.datica'], ['dat ica', 'dat ica'], ['dat\u00e9ica', 'dat\u00e9ica'],
      ['datica\n', 'datica\\u000a'], ['dat\x1bica', 'dat\\u001bica'], [Uint8Array.from([0x64, 0xff]), 'd\ufffd'],
    ];
    for (const [d, as] of refusals) {
      const r = await domain(d);
      expect(r.status, as).to.equal(2);
      expect(r.stderr).to.equal(`cert-utility: error: option '--domain <name>' argument '${as}' ${DOMAIN_RULE} [USAGE]\n`);
      expect(r.stderr).not.to.match(CONTROL);
    }
  });

  it('--domain refused under --json is one JSON document, escaped', async () => {
    const ok = await domain('datica', true);
    expect(ok.json()).to.deep.equal({ ok: true, checked: true });
    const bad = await domain('dat\x1bica', true);
    expect([bad.status, bad.stderr]).to.deep.equal([2, '']);
    expect(bad.out).not.to.match(CONTROL);
    expect(bad.json()).to.deep.equal({ ok: false, error: { code: 'USAGE', message: `option '--domain <name>' argument 'dat\u001bica' ${DOMAIN_RULE}`, exitStatus: 2 } });
  });
});

// --check-only: a script's question before it acts (first-boot.sh before certifying,
// deployment-setup.sh before making a key), asked of the very command it then runs. The flags are
// parsed and checked as a run does them; nothing is read, written or connected to: the files the
// flags name need not exist, but for make-policy's roots given by file, read and checked as its
// run does (their layouts decide what the policy takes). A refusal is the run's own error,
// escaped, without a usage hint.

import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pinnedArk } from '../../lib/attest/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { run, tempDir, type RunResult } from '../support/helpers.ts';
import { TestSnpSigner } from '../sev-snp/signer.ts';

const CONTROL = /[\x00-\x09\x0b-\x1f\x7f]/; // anything but a line's end, raw on a terminal
const PIN = 'ab'.repeat(32);

describe('--check-only', function () {
  this.slow(6_000);
  let tmp: ReturnType<typeof tempDir>;
  before(() => (tmp = tempDir('check-only-')));
  after(() => tmp.cleanup());

  const refused = (r: RunResult, message: string) => {
    expect(r.status, r.stderr).to.equal(2);
    expect(r.stderr).to.contain(`${message}`).and.contain('[USAGE]');
    expect(r.stderr, "the check's answer, not a misuse of it: no usage hint").not.to.contain('hint:');
    expect(r.stderr, 'no control character reaches the terminal raw').not.to.match(CONTROL);
    expect(r.out).to.equal('');
  };
  // Files that are not there: a check reads none of them, and makes none.
  const store = ['--store', 'store', '--sealed', '--platform-dir', 'platform', '--measurement-file', 'measurement'];
  const retrieve = (more: string[], names = ['vhd/disk-1'], server = 'kms.internal:8120') =>
    run('key-client', ['retrieve', '--check-only', '--server', server, '--domain', 'datica', '--policy-cert', 'policy-cert.pem', ...store, ...more, '--', ...names], { cwd: tmp.dir });
  const initTrust = (server: string) =>
    run('cert-utility', ['init-trust', '--check-only', '--domain', 'datica', '--policy-cert', 'policy-cert.pem', '--server', server, ...store], { cwd: tmp.dir });
  const policy = (more: string[]) =>
    run('cert-utility', ['make-policy', '--check-only', '--policy-key', 'k.pem', '--policy-cert', 'c.pem', '--trust-platform', 'p.pem', '--out', 'policy.bin', ...more], { cwd: tmp.dir });

  it('takes the flags a run takes, exit 0, printing nothing ({"ok":true,"checked":true} under --json), and reads and makes nothing', async () => {
    const runs = await Promise.all([
      retrieve(['--server-measurement', PIN, '--server-measurement', 'CD'.repeat(48)], ['vhd/disk-1', '-x']),
      initTrust('[fe80::1%eth0]:8123'),
      policy(['--trust-measurement', PIN, '--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', '--days', '30', '--snp-property', 'guest-svn>=1', '--snp-property', 'guest-svn>=1']),
      policy(['--trust-measurement', PIN, '--trust-amd-root', 'turin', '--snp-min-tcb', 'turin=0:1:0:2:71', '--snp-property', 'launch-tcb-fmc>=0']),
      policy(['--trust-measurement', PIN, '--trust-amd-root', 'milan', '--trust-amd-root', 'turin', '--snp-min-tcb', '3:0:8:115', '--snp-min-tcb', 'turin=0:1:0:2:71',
        '--snp-property', 'turin:launch-tcb-snp>=2', '--snp-property', 'family19h:launch-tcb-snp>=8', '--snp-property', 'turin:launch-tcb-fmc>=0']),
      run('cert-utility', ['generate-policy-key', '--check-only', '--domain', 'datica', '--alg', 'p384', '--key-out', 'k.pem', '--cert-out', 'c.pem'], { cwd: tmp.dir }),
    ]);
    for (const r of runs) expect([r.status, r.out, r.stderr]).to.deep.equal([0, '', '']);
    const json = await retrieve(['--json']);
    expect([json.status, json.stderr]).to.deep.equal([0, '']);
    expect(json.json()).to.deep.equal({ ok: true, checked: true });
    expect(readdirSync(tmp.dir), 'no store made, nothing written').to.deep.equal([]);
  });

  it('refuses what the run would refuse only once it had read, certified or connected: an address, a pin, a name, each named and escaped', async () => {
    const [host, pin, name, init] = await Promise.all([
      retrieve([], undefined, 'a..b:8120'),
      retrieve(['--server-measurement', PIN, '--server-measurement', `${PIN}\x1b`]),
      retrieve([], ['vhd/disk-1', 'datica-admission-certificate']),
      initTrust('[:]:8123'),
    ]);
    refused(host, 'key-client: error: --server must be HOST:PORT with HOST a host name or an IP address (an IPv6 address in brackets: [2001:db8::5]), not "a..b:8120"');
    refused(pin, `--server-measurement "${PIN}\\u001b" is not a measurement (64 or 96 hex digits)`);
    refused(name, '"datica-admission-certificate" is where init-trust keeps a machine\'s identity in the cryptstore');
    refused(init, 'cert-utility: error: --server must be HOST:PORT with HOST a host name or an IP address');
    expect(readdirSync(tmp.dir), 'no store made').to.deep.equal([]);
  });

  it('says a measurement file named where its hex belongs is a file whose hex is wanted (the files are raw bytes: a mistake README\'s paths invite)', async () => {
    const file = 'measurements/key-server.program.measurement';
    const [pin, trusted] = await Promise.all([retrieve(['--server-measurement', file]), policy(['--trust-measurement', 'vm-image.measurement'])]);
    refused(pin, `key-client: error: --server-measurement "${file}" is not a measurement (64 or 96 hex digits); a measurement file's name? give the measurement it holds, in hex: xxd -p -c 64 ${file} (or the line cert-utility measure printed) [USAGE]`);
    refused(trusted, `cert-utility: error: --trust-measurement "vm-image.measurement" is not a measurement (64 or 96 hex digits); a measurement file's name? give the measurement it holds, in hex: xxd -p -c 64 vm-image.measurement (or the line cert-utility measure printed) [USAGE]`);
    // Hex of the wrong length is no file's name: no such hint.
    refused(await retrieve(['--server-measurement', 'ab'.repeat(31)]), `--server-measurement "${'ab'.repeat(31)}" is not a measurement (64 or 96 hex digits) [USAGE]`);
  });

  it('init-trust refuses platform flags that do not go together, as its run does before reading any file (first-boot.sh asks it; it checked them in bash)', async () => {
    const init = (flags: string[], checkOnly = true) => run('cert-utility', ['init-trust', ...(checkOnly ? ['--check-only'] : []), '--domain', 'datica',
      '--policy-cert', 'policy-cert.pem', '--server', 'kms.internal:8123', '--store', 'store', ...flags], { cwd: tmp.dir });
    const cases: [string[], string | undefined][] = [
      [['--sealed', '--platform-dir', 'p', '--measurement-file', 'm'], undefined],
      [['--key-file', 'k', '--platform', 'sev-snp', '--tsm-dir', 't', '--vcek', 'v'], undefined],
      [['--key-file', 'k', '--platform', 'sev-snp', '--measurement-file', 'm'], '--platform sev-snp takes no --platform-dir or --measurement-file: the hardware reports the measurement'],
      [['--sealed', '--platform', 'sev-snp'], '--platform sev-snp cannot seal the store yet: give --key-file or --passphrase-file'],
      [['--key-file', 'k', '--platform', 'tdx\x1b'], 'unknown --platform "tdx\\u001b"; choose simulated, sev-snp'],
      [['--sealed', '--platform-dir', 'p', '--measurement-file', 'm', '--vcek', 'v'], '--tsm-dir and --vcek are for --platform sev-snp'],
      [['--key-file', 'k', '--platform-dir', 'p'], '--platform simulated needs --platform-dir and --measurement-file'],
    ];
    const answers = await Promise.all(cases.map(([flags]) => init(flags)));
    cases.forEach(([flags, message], i) => {
      if (message) refused(answers[i]!, `cert-utility: error: ${message} [USAGE]`);
      else expect([answers[i]!.status, answers[i]!.stderr], flags.join(' ')).to.deep.equal([0, '']);
    });
    // A run is refused the same, before it reads the policy certificate (not there): a sealed
    // store on SEV-SNP was refused only once the platform was loaded (UNSUPPORTED, exit 1).
    const sealed = await init(['--sealed', '--platform', 'sev-snp'], false);
    expect(sealed.status, sealed.stderr).to.equal(2);
    expect(sealed.stderr).to.match(/^cert-utility: error: --platform sev-snp cannot seal the store yet: give --key-file or --passphrase-file \[USAGE\]\n/);
    expect(readdirSync(tmp.dir), 'no store made').to.deep.equal([]);
  });

  it('make-policy takes a minimum TCB for the family 19h roots (Milan, Genoa) and one turin= for Turin\'s, each needed by its roots and refused without them, and a LAUNCH_TCB level beside both named by its layout (turin:, family19h:)', async () => {
    const snp = (roots: string[], more: string[]) => policy(['--trust-measurement', PIN, ...roots.flatMap((r) => ['--trust-amd-root', r]), ...more]);
    const min = (v: string) => ['--snp-min-tcb', v];
    const cases: [Promise<RunResult>, string][] = [
      [snp(['turin'], min('1:0:2:71')), "trusting a Turin root (ARK-Turin) needs --snp-min-tcb turin=FMC:BOOTLOADER:TEE:SNP:MICROCODE, the lowest TCB accepted of Turin machines"],
      [snp(['milan', 'turin'], min('3:0:8:115')), "trusting a Turin root (ARK-Turin) needs --snp-min-tcb turin=FMC:BOOTLOADER:TEE:SNP:MICROCODE"],
      [snp(['milan', 'turin'], min('turin=0:1:0:2:71')), "trusting an AMD root other than Turin's needs --snp-min-tcb BOOTLOADER:TEE:SNP:MICROCODE, the lowest TCB accepted of Milan and Genoa machines"],
      [snp(['genoa'], min('turin=0:1:0:2:71')), "trusting an AMD root other than Turin's needs --snp-min-tcb BOOTLOADER:TEE:SNP:MICROCODE"],
      [snp(['milan'], [...min('3:0:8:115'), ...min('turin=0:1:0:2:71')]), '--snp-min-tcb turin=FMC:BOOTLOADER:TEE:SNP:MICROCODE is the minimum of Turin machines only, and the policy trusts no Turin root (--trust-amd-root turin, or a root given by file named ARK-Turin)'],
      [snp(['turin'], [...min('3:0:8:115'), ...min('turin=0:1:0:2:71')]), "--snp-min-tcb BOOTLOADER:TEE:SNP:MICROCODE is the minimum of Milan and Genoa machines, and the policy trusts Turin roots only (ARK-Turin): give --snp-min-tcb turin=FMC:BOOTLOADER:TEE:SNP:MICROCODE alone"],
      [snp(['milan'], [...min('3:0:8:115'), '--snp-property', 'tcb-fmc>=0']), '--snp-property tcb-fmc is reported by Turin machines only, and the policy trusts no Turin root (--trust-amd-root turin, or a root given by file named ARK-Turin): a claim naming it would admit no machine'],
      [snp(['genoa'], [...min('3:0:8:115'), '--snp-property', 'launch-tcb-fmc>=0']), '--snp-property launch-tcb-fmc is reported by Turin machines only'],
      [snp(['milan', 'turin'], [...min('3:0:8:115'), ...min('turin=0:1:0:2:71'), '--snp-property', 'launch-tcb-snp>=8']), '--snp-property launch-tcb-snp: a LAUNCH_TCB level is on the scale of its product\'s TCB, and the policy trusts both Turin\'s root and another, so one number would hold each product to the other\'s level: name the layout it is for, --snp-property turin:launch-tcb-snp... (Turin) or family19h:launch-tcb-snp... (Milan, Genoa)'],
      [snp(['milan'], [...min('3:0:8:115'), '--snp-property', 'turin:launch-tcb-snp>=2']), '--snp-property turin:launch-tcb-snp is for Turin machines only, and the policy trusts no Turin root (--trust-amd-root turin, or a root given by file named ARK-Turin): it would go into no claim'],
      [snp(['turin'], [...min('turin=0:1:0:2:71'), '--snp-property', 'family19h:launch-tcb-tee>=0']), "--snp-property family19h:launch-tcb-tee is for Milan and Genoa machines, and the policy trusts Turin roots only (ARK-Turin): it would go into no claim"],
      [snp(['milan', 'turin'], [...min('3:0:8:115'), ...min('turin=0:1:0:2:71'), '--snp-property', 'zen4:launch-tcb-snp>=8']), 'argument \'zen4:launch-tcb-snp>=8\' is invalid. "zen4:" names no TCB layout: a LAUNCH_TCB level\'s is turin: (Turin) or family19h: (Milan, Genoa), or milan: or genoa: (one product\'s, beside --snp-min-tcb milan= and genoa=)'],
      [snp(['milan', 'turin'], [...min('3:0:8:115'), ...min('turin=0:1:0:2:71'), '--snp-property', 'milan:launch-tcb-snp>=8']), '--snp-property milan:launch-tcb-snp>=8 goes into the claim of --snp-min-tcb milan=BOOTLOADER:TEE:SNP:MICROCODE, which is not given: it would go into no claim'],
      [snp(['milan', 'genoa', 'turin'], [...min('milan=3:0:8:115'), ...min('genoa=10:0:23:84'), ...min('turin=0:1:0:2:71'), '--snp-property', 'launch-tcb-snp>=8']), 'name the layout it is for, --snp-property turin:launch-tcb-snp... (Turin) or milan:launch-tcb-snp... or genoa:launch-tcb-snp... (Milan\'s, Genoa\'s)'],
      [snp(['milan', 'genoa'], [...min('milan=3:0:8:115'), ...min('genoa=10:0:23:84'), '--snp-property', 'launch-tcb-snp>=8']), '--snp-property launch-tcb-snp>=8: beside a minimum TCB per product (milan=, genoa=), a LAUNCH_TCB level names the product it is for, as Milan\'s and Genoa\'s levels are on scales of their own: --snp-property milan:launch-tcb-snp... or genoa:launch-tcb-snp...'],
      [snp(['milan', 'turin'], [...min('3:0:8:115'), ...min('turin=0:1:0:2:71'), '--snp-property', 'turin:tcb-snp>=2']), '"turin:" names the TCB layout of a LAUNCH_TCB level (launch-tcb-bootloader, launch-tcb-tee, launch-tcb-snp, launch-tcb-microcode, launch-tcb-fmc) only, not of tcb-snp (the minimum TCB of each layout is --snp-min-tcb)'],
      [snp(['milan', 'turin'], [...min('3:0:8:115'), ...min('turin=0:1:0:2:71'), '--snp-property', 'family19h:launch-tcb-fmc>=0']), 'launch-tcb-fmc is reported by Turin machines only: family 19h machines (Milan, Genoa) have no FMC level'],
      [snp(['turin'], [...min('turin=0:1:0:2:71'), '--snp-property', 'tcb-fmc>=0']), "--snp-property tcb-fmc: Turin's minimum FMC level is the first of --snp-min-tcb turin=FMC:BOOTLOADER:TEE:SNP:MICROCODE, the one way to give it"],
      [snp(['milan', 'turin'], [...min('3:0:8:115'), ...min('turin=0:1:0:2:71'), '--snp-property', 'turin:launch-tcb-snp>=2', '--snp-property', 'turin:launch-tcb-snp>=3']),
        '--snp-property turin:launch-tcb-snp>=2 and --snp-property turin:launch-tcb-snp>=3 both set launch-tcb-snp in one claim, which names each property once: the policy would say two things of it; give one'],
      [snp(['milan', 'turin'], [...min('3:0:8:115'), ...min('3:0:8:116'), ...min('turin=0:1:0:2:71')]), 'the family 19h minimum (Milan, Genoa) is given twice'],
      [snp(['turin'], [...min('turin=0:1:0:2:71'), ...min('turin=0:1:0:2:72')]), 'the turin= minimum is given twice'],
      // Milan and Genoa: one layout, two scales; a minimum each, or one for both, never both ways.
      [snp(['milan', 'genoa'], [...min('3:0:8:84'), ...min('milan=3:0:8:115')]), 'the family 19h minimum (Milan, Genoa) and the milan= minimum do not go together: the family 19h minimum admits Milan and Genoa machines alike, whatever milan= or genoa= says; give one minimum per product, or one for both'],
      [snp(['milan', 'genoa'], [...min('milan=3:0:8:115'), ...min('milan=3:0:8:116')]), 'the milan= minimum is given twice'],
      [snp(['milan', 'genoa'], min('milan=3:0:8:115')), "trusting AMD's genoa root with a minimum TCB per product needs --snp-min-tcb genoa=BOOTLOADER:TEE:SNP:MICROCODE too: its machines would all be refused"],
      [snp(['milan'], [...min('milan=3:0:8:115'), ...min('genoa=10:0:23:84')]), "--snp-min-tcb genoa=... is the minimum of genoa machines, and the policy does not trust AMD's genoa root (--trust-amd-root genoa): it would go into no claim"],
      [snp(['turin'], min('turin=1:0:2:71')), "option '--snp-min-tcb <bl:tee:snp:ucode|turin=fmc:bl:tee:snp:ucode>' argument 'turin=1:0:2:71' is invalid. expected BOOTLOADER:TEE:SNP:MICROCODE (Milan, Genoa: four numbers from 0 to 255, e.g. 3:0:8:115; one product's: milan=... or genoa=...) or turin=FMC:BOOTLOADER:TEE:SNP:MICROCODE (five, e.g. turin=0:1:0:2:71)"],
      [snp(['milan'], min('0:3:0:8:115')), "argument '0:3:0:8:115' is invalid. expected BOOTLOADER:TEE:SNP:MICROCODE"],
    ];
    for (const [r, message] of cases) refused(await r, message);
    expect(readdirSync(tmp.dir), 'nothing written').to.deep.equal([]);
  });

  it('make-policy reads the roots given by file as its run does and refuses what their layouts refuse, with the run\'s own error (they were read only by the run), saying nothing of a root it takes', async () => {
    const own = tempDir('check-only-roots-');
    try {
      writeFileSync(join(own.dir, 'test-ark-turin.pem'), toPem(TestSnpSigner.create({ product: 'turin' }).ark)); // named ARK-Turin, not pinned: Turin's layout
      writeFileSync(join(own.dir, 'ark-milan.der'), pinnedArk('milan'));
      const byFile = (roots: string[], more: string[], checkOnly = true) => run('cert-utility', ['make-policy', ...(checkOnly ? ['--check-only'] : []), '--policy-key', 'k.pem', '--policy-cert', 'c.pem',
        '--out', 'policy.bin', '--trust-measurement', 'ab'.repeat(48), ...roots.flatMap((r) => ['--trust-amd-root-cert', r]), ...more], { cwd: own.dir });
      const turinMin = ['--snp-min-tcb', 'turin=0:1:0:2:71'];
      const milanMin = ['--snp-min-tcb', '3:0:8:115'];
      const [taken, both, fourLevels, prefix, unprefixed, missing] = await Promise.all([
        byFile(['test-ark-turin.pem'], turinMin),
        byFile(['test-ark-turin.pem', 'ark-milan.der'], [...turinMin, ...milanMin, '--snp-property', 'turin:launch-tcb-snp>=2']),
        byFile(['test-ark-turin.pem'], milanMin),
        byFile(['ark-milan.der'], [...milanMin, '--snp-property', 'turin:launch-tcb-snp>=2']),
        byFile(['test-ark-turin.pem', 'ark-milan.der'], [...turinMin, ...milanMin, '--snp-property', 'launch-tcb-snp>=2']),
        byFile(['not-there.pem'], milanMin),
      ]);
      for (const r of [taken, both]) expect([r.status, r.out, r.stderr]).to.deep.equal([0, '', '']);
      refused(fourLevels, 'cert-utility: error: trusting a Turin root (ARK-Turin) needs --snp-min-tcb turin=FMC:BOOTLOADER:TEE:SNP:MICROCODE');
      refused(prefix, '--snp-property turin:launch-tcb-snp is for Turin machines only, and the policy trusts no Turin root');
      refused(unprefixed, '--snp-property launch-tcb-snp: a LAUNCH_TCB level is on the scale of its product\'s TCB');
      expect([missing.status, missing.stderr]).to.deep.equal([1, 'cert-utility: error: cannot read not-there.pem: no such file [FILE_ERROR]\n']);
      // The run refuses the same, once it has read the policy key and certificate.
      expect((await run('cert-utility', ['generate-policy-key', '--domain', 'datica', '--key-out', 'k.pem', '--cert-out', 'c.pem'], { cwd: own.dir })).status).to.equal(0);
      const ran = await byFile(['test-ark-turin.pem'], milanMin, false);
      expect(ran.status, ran.stderr).to.equal(2);
      expect(ran.stderr, 'the same error line, and no warning of a root not pinned before it (said only once every check passed)').to.contain(fourLevels.stderr);
      expect(ran.stderr).to.not.contain('is not one of AMD\'s pinned roots');
      expect(readdirSync(own.dir).sort(), 'nothing written').to.deep.equal(['ark-milan.der', 'c.pem', 'k.pem', 'test-ark-turin.pem']);
    } finally {
      own.cleanup();
    }
  });

  it('make-policy and generate-policy-key refuse a measurement named twice, flags that do not go together, and values their parsing refuses', async () => {
    const [same, snp, days, alg] = await Promise.all([
      policy(['--trust-measurement', PIN, '--trust-measurement', PIN.toUpperCase()]),
      policy(['--trust-measurement', PIN, '--snp-min-tcb', '3:0:8:115']),
      policy(['--trust-measurement', PIN, '--days', '36601']),
      run('cert-utility', ['generate-policy-key', '--check-only', '--domain', 'datica', '--alg', 'ed25519', '--key-out', 'k.pem', '--cert-out', 'c.pem'], { cwd: tmp.dir }),
    ]);
    refused(same, `--trust-measurement ${PIN} is given twice: the policy would say it twice`);
    refused(snp, 'the --snp-* flags need --trust-amd-root or --trust-amd-root-cert');
    refused(days, "option '--days <n>' argument '36601' is invalid. expected an integer from 1 to 36600");
    refused(alg, "option '--alg <alg>' argument 'ed25519' is invalid");
    expect(readdirSync(tmp.dir), 'nothing written').to.deep.equal([]);
  });
});

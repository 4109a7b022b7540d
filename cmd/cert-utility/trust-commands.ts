// cert-utility's trust commands: the policy key, the simulated platform's keys, measurements,
// the signed policy, certification (init-trust), direct issuing (issue-cert) and show-cert.

import { InvalidArgumentError, Option, type Command } from 'commander';
import { CertifierError } from '../../lib/errors/index.ts';
import { escapeInvisible, printableName } from '../../lib/wire/index.ts';
import { exportPrivateKey, generateKeyPair, toHex, type KeyAlg } from '../../lib/crypto/index.ts';
import { createHash, type KeyObject } from 'node:crypto';
import { checkWritable, inDir, makePrivateDir, readFileLimited, realFilePath, refuseOwnFiles, refuseReplaceable, refuseReplaceableDir, writeFileAtomic, writeFilesAtomic } from '../../lib/files/index.ts';
import { clockBehind, createPolicyCert, issueAdmissionCert, parseCertificate, platformProblem, readCertificate, toPem, type ParsedCert } from '../../lib/pki/index.ts';
import { SET_CLOCK } from '../../lib/util/clock.ts';
import { loadPolicy, makePolicy, measurementClaim, sameKey, SEV_SNP_PLATFORM, type Policy } from '../../lib/policy/index.ts';
import { generateSimulatedPlatform, platformCertificate, TEST_PLATFORM_WARNING } from '../../lib/attest/index.ts';
import { AUTHORITY_PLATFORM, claimLayout, claimProduct, endsWithPolicyCert, initTrust, issuableSeconds, noRenewalPast, platformWarnings, ROLE_PLATFORM_PREFIX } from '../../lib/certifier/index.ts';
import { checkRoleName, issueRoleCert } from '../../lib/keyservice/roles.ts';
import { storeFiles } from '../common/io.ts';
import { openToCertify } from '../common/new-store.ts';
import { collect, dirArg, domainName, explainTimeout, fileOut, intInRange, note, subcommand, warn, type JsonOption } from '../common/cli.ts';
import { storeOptions, withProtector, type ProtectionOptions } from '../common/protection.ts';
import { checkPlatformFlags, loadPlatform } from '../common/platform.ts';
import { KEY_FILE_LIMIT, measureFile, parseHostPort, policyDomain, requirePolicyDomain, publicKeyFrom, parseMeasurementHex, POLICY_FILE_LIMIT, readCertificateFile, readMeasurementFile, policySignedBy, readPrivateKeyFile, readPublicKeyFile, validPolicyCert } from '../common/keys.ts';
import { describeCert } from '../common/certs.ts';
import { timeoutFlag, waitsOf, type TimeoutOption } from '../common/timeout.ts';
import { checkSnpFlags, snpPolicyOptions, snpPolicyParts, type SnpPolicyFlags } from './snp-policy.ts';

const P = 'cert-utility';
const DAY = 86_400_000;
const ALGS = ['p256', 'p384', 'rsa2048'];
const examples = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

/**
 * A platform given as a certificate is trusted only within its dates: one that has ended or not
 * begun is refused (CERT_EXPIRED), and one ending before the policy's claims is warned about. A
 * bare public key carries no dates.
 */
function checkPlatformCertDates(file: string, bytes: Uint8Array, now: Date, claimsEnd: Date): void {
  let cert;
  try {
    cert = parseCertificate(readCertificate(bytes));
  } catch {
    return; // not a certificate: publicKeyFrom says what it is
  }
  // A machine's admission certificate (or a role credential) names a TLS key: trusted for
  // attestation, that machine could vouch for any measurement.
  if (cert.admission) throw new CertifierError('INVALID_KEY', `${file} is an admission certificate (a machine's TLS identity, platform ${cert.admission.platform}), not a platform's certificate`);
  if (now < cert.notBefore || now > cert.notAfter) {
    // One not begun yet was most likely made on a clock ahead of this machine's (made as ours are, 5 minutes back).
    const behind = now < cert.notBefore ? ` (checked at ${now.toISOString()} by this machine's clock): this machine's clock is probably ${clockBehind(cert.notBefore, now)} behind that of the machine that made it: ${SET_CLOCK}` : '';
    throw new CertifierError('CERT_EXPIRED', `the platform certificate ${file} is valid from ${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()}, not now${behind}`);
  }
  if (cert.notAfter < claimsEnd) warn(P, `the platform certificate ${file} ends at ${cert.notAfter.toISOString()}, before the policy's claims (${claimsEnd.toISOString()}); the policy trusts its key until then`);
}

/** What print-policy says of an SEV-SNP property claim: the machines it can admit (claimLayout). */
export const SUITS = { turin: 'Turin machines', 'family-19h': 'family 19h machines: Milan, Genoa', none: 'no machine: it names a Turin level, not tcb-fmc' } as const;

/**
 * Each SEV-SNP property claim of `policy` by its number, with the TCB layout of the machines it
 * can admit ('none' for one that admits none): Turin's and family 19h's each need a claim of
 * their own, and the statements alone do not say which is which.
 */
function snpClaimLayouts(policy: Policy): { claim: number; suits: keyof typeof SUITS; product?: string }[] {
  return policy.properties.filter((c) => c.platformType === SEV_SNP_PLATFORM && c.claim).map((c) => {
    const product = claimProduct(c);
    return { claim: c.claim!, suits: claimLayout(c) ?? 'none', ...(product === undefined ? {} : { product }) };
  });
}

/** What print-policy says of a claim naming its product: "Milan machines". */
const productMachines = (product: string) => `${product[0]!.toUpperCase()}${product.slice(1)} machines`;

/** The policy's statements as make-policy and print-policy show them: each SEV-SNP property claim's with the machines it suits. */
function statementLines(policy: Policy, snpClaims: ReturnType<typeof snpClaimLayouts>): string[] {
  const suits = new Map(snpClaims.map((c) => [c.claim - 1, c.product !== undefined && c.suits !== 'none' ? productMachines(c.product) : SUITS[c.suits]])); // by statement
  return policy.statements.map((s, i) => `  ${s}${suits.has(i) ? `  (for ${suits.get(i)})` : ''}`);
}

export function addTrustCommands(program: Command): void {
  subcommand<JsonOption & { domain: string; keyOut: string; certOut: string; alg: KeyAlg; days: number; force?: boolean }>(program, 'generate-policy-key',
    'create the policy key and its self-signed policy certificate',
    async (o) => {
      await refuseReplaceable(o.keyOut); // a private key: before it is made
      const { privateKey } = await generateKeyPair(o.alg);
      const cert = await createPolicyCert({ privateKey, domain: o.domain, days: o.days });
      // Compared where they really lead: "here/k.pem" through a link to "." is "k.pem".
      if ((await realFilePath(o.keyOut)) === (await realFilePath(o.certOut))) throw new CertifierError('USAGE', '--key-out and --cert-out name the same file');
      await writeFilesAtomic([
        { path: o.keyOut, data: exportPrivateKey(privateKey), exclusive: !o.force },
        { path: o.certOut, data: new TextEncoder().encode(toPem(cert)), exclusive: !o.force, mode: 0o644 },
      ]);
      const info = parseCertificate(cert);
      return { json: { keyOut: o.keyOut, certOut: o.certOut, subject: info.subject, fingerprintSha256: info.fingerprintSha256Hex }, text: [`policy key ${o.keyOut} (0600), policy certificate ${o.certOut}: ${info.subject}`] };
    },
    () => {}) // every flag is checked as it is parsed (--domain, --alg, --days): --check-only asks just that
    .requiredOption('--domain <name>', 'the policy domain, e.g. datica', domainName)
    .requiredOption('--key-out <file>', 'where to write the policy private key (PEM, 0600)', fileOut)
    .requiredOption('--cert-out <file>', 'where to write the policy certificate (PEM)', fileOut)
    .addOption(new Option('--alg <alg>', 'key algorithm').choices(ALGS).default('p256'))
    .option('--days <n>', 'certificate lifetime in days', intInRange(1, 36600), 3650)
    .option('--force', 'replace existing files')
    .addHelpText('after', examples(['cert-utility generate-policy-key --domain datica --key-out policy-key.pem --cert-out policy-cert.pem']));

  subcommand<JsonOption & { outDir: string; alg: KeyAlg; force?: boolean }>(program, 'generate-platform-keys',
    'simulated platform (a TEST platform): platform key and certificate, attestation key, endorsement',
    async (o) => {
      warn(P, TEST_PLATFORM_WARNING);
      // Private keys go there: a directory above it that others may write in could swap it
      // (makePrivateDir holds DIR itself to a stricter rule).
      await refuseReplaceable(o.outDir);
      await makePrivateDir(o.outDir, 'the output directory');
      const keys = await generateSimulatedPlatform({ alg: o.alg });
      const files = {
        'platform-key.pem': exportPrivateKey(keys.platformKey),
        'platform-cert.pem': new TextEncoder().encode(toPem(platformCertificate(keys.platformKey))),
        'attest-key.pem': exportPrivateKey(keys.attestKey),
        'endorsement.bin': keys.endorsement,
      };
      // In the directory makePrivateDir checked, also one named through "link/.." (inDir).
      await writeFilesAtomic(Object.entries(files).map(([name, data]) => ({
        path: inDir(o.outDir, name), data, exclusive: !o.force, mode: name.endsWith('key.pem') ? 0o600 : 0o644,
      })));
      return { json: { outDir: o.outDir, files: Object.keys(files) }, text: [`wrote ${Object.keys(files).join(', ')} to ${printableName(o.outDir)}`] };
    })
    .requiredOption('--out-dir <dir>', 'directory for the platform files', dirArg)
    .addOption(new Option('--alg <alg>', 'key algorithm').choices(ALGS).default('p256'))
    .option('--force', 'replace existing files');

  subcommand<JsonOption & { out?: string; force?: boolean }>(program, 'measure',
    'measure programs (SHA-256, the simulated platform\'s measurement); hex on stdout',
    async (o, args) => {
      if (args.length === 0) throw new CertifierError('USAGE', 'name at least one FILE to measure');
      if (o.out && args.length !== 1) throw new CertifierError('USAGE', '--out takes the measurement of exactly one FILE');
      const results = [];
      for (const f of args) results.push({ file: f, measurement: toHex(await measureFile(f)) });
      for (const r of results) if (r.measurement === EMPTY_MEASUREMENT) warn(P, `${r.file} is empty: ${emptyMeasurement}`);
      if (o.out) refuseOwnFiles(o.out, { dirs: [], files: args }, `--out ${o.out}`);
      if (o.out) await writeFileAtomic(o.out, Buffer.from(results[0]!.measurement, 'hex'), { exclusive: !o.force, mode: 0o644 });
      // One line per file, as sha256sum prints: a name's newline or escape sequence shows escaped.
      return { json: { measurements: results }, text: results.map((r) => (args.length === 1 ? r.measurement : `${r.measurement}  ${escapeInvisible(r.file)}`)) };
    })
    .argument('<file...>', 'files to measure')
    .option('--out <file>', 'also write the raw 32-byte measurement here (as the original tools do)', fileOut)
    .option('--force', 'replace --out if it exists');

  snpPolicyOptions(subcommand<JsonOption & SnpPolicyFlags & { policyKey: string; policyCert: string; trustPlatform: string[]; trustMeasurement: string[]; out: string; days: number; force?: boolean }, Uint8Array[]>(program, 'make-policy',
    'write the signed policy: trusted platform keys and trusted measurements',
    async (o, _args, measurements) => {
      refuseOwnFiles(o.out, { dirs: [], files: [o.policyKey, o.policyCert, ...o.trustPlatform, ...o.trustAmdRootCert] }, `--out ${o.out}`);
      const [policyKey, policyCert] = await Promise.all([readPrivateKeyFile(o.policyKey), readCertificateFile(o.policyCert)]);
      const pc = validPolicyCert(policyCert);
      if (!sameKey(pc.publicKey, policyKey)) throw new CertifierError('INVALID_KEY', `${o.policyKey} is not the key of ${o.policyCert}`);
      const now = new Date();
      const notAfter = new Date(now.getTime() + o.days * DAY);
      if (pc.notAfter < notAfter) warn(P, `the policy certificate ends at ${pc.notAfter.toISOString()}, before the claims (${notAfter.toISOString()}): nothing is admitted under it after that; renew the policy certificate, or give --days to match`);
      const platforms: { key: KeyObject; name: string }[] = [];
      for (const f of o.trustPlatform) {
        const bytes = await readFileLimited(f, KEY_FILE_LIMIT);
        checkPlatformCertDates(f, bytes, now, notAfter);
        const key = publicKeyFrom(bytes, f);
        if (sameKey(key, policyKey)) throw new CertifierError('INVALID_KEY', `${f} holds the policy key, not a platform's: the policy key signs policies and certificates, never evidence`);
        platforms.push({ key, name: 'platformKey' });
      }
      // The simulated platform measures with SHA-256 (32 bytes), SEV-SNP launches with SHA-384 (48).
      const snpOnly = o.trustPlatform.length === 0;
      const simulatedOnly = o.trustAmdRoot.length === 0 && o.trustAmdRootCert.length === 0;
      for (const m of measurements) {
        warnIfEmpty(m);
        if ((snpOnly && m.length !== 48) || (simulatedOnly && m.length !== 32)) {
          warn(P, `the measurement ${toHex(m)} is ${m.length} bytes, which no platform the policy trusts produces (${snpOnly ? 'SEV-SNP launch measurements are 48 bytes, 96 hex digits' : 'simulated-platform measurements are 32 bytes, 64 hex digits'}): it will admit nothing`);
        }
      }
      const samePlatform = platforms.findIndex((p, i) => platforms.findIndex((x) => sameKey(x.key, p.key)) !== i);
      if (samePlatform >= 0) throw new CertifierError('USAGE', `--trust-platform ${o.trustPlatform[samePlatform]} holds a key named before: the policy would say it twice`);
      const snp = await snpPolicyParts(P, o, now);
      const bytes = makePolicy({
        policyKey, policyCert, platforms, measurements, ...snp,
        notBefore: new Date(now.getTime() - 5 * 60_000), notAfter,
      });
      await writeFileAtomic(o.out, bytes, { exclusive: !o.force, mode: 0o644 });
      const policy = loadPolicy(bytes, pc.publicKey);
      // As simpleserver will say at start: a platform trusted that none of the measurements can admit.
      for (const line of platformWarnings(policy, now)) warn(P, `in the policy written, ${line}`);
      const snpClaims = snpClaimLayouts(policy);
      return { json: { out: o.out, statements: policy.statements, snpClaims }, text: [`wrote ${printableName(o.out)}:`, ...statementLines(policy, snpClaims)] };
    },
    // Before anything is read, and all of a --check-only run (deployment-setup.sh asks before making
    // a key), which also reads the roots given by file as the run does: their layouts decide which
    // --snp-min-tcb forms and --snp-property prefixes the policy takes. It says nothing of them.
    // The measurements it parsed are the run's.
    async (o) => {
      const measurements = trustedMeasurements(o);
      checkSnpFlags(o);
      if (o.checkOnly) await snpPolicyParts(P, o, new Date(), { quiet: true });
      return measurements;
    }, 'the AMD roots given by file (--trust-amd-root-cert), as the run does: one it cannot read or take fails as there (exit 1)')
    .requiredOption('--policy-key <file>', 'the policy private key')
    .requiredOption('--policy-cert <file>', 'the policy certificate')
    .option('--trust-platform <file>', 'a platform certificate or public key to trust for attestation (repeatable)', collect<string>, [])
    .option('--trust-measurement <hex>', 'a measurement to trust (repeatable)', collect<string>, [])
    .requiredOption('--out <file>', 'where to write the policy', fileOut)
    .option('--days <n>', 'how long the policy claims are valid', intInRange(1, 36600), 365)
    .option('--force', 'replace --out if it exists'))
    .addHelpText('after', examples(['cert-utility make-policy --policy-key policy-key.pem --policy-cert policy-cert.pem --out policy.bin \\\n      --trust-amd-root milan --snp-min-tcb 3:0:8:115 --trust-measurement <96 hex digits>']));

  subcommand<JsonOption & { policy: string; policyCert: string }>(program, 'print-policy', 'verify a policy file and print its statements (an SEV-SNP property claim\'s with the machines it suits)',
    async (o) => {
      const policyCert = await readCertificateFile(o.policyCert);
      const pc = validPolicyCert(policyCert);
      const policy = policySignedBy(await readFileLimited(o.policy, POLICY_FILE_LIMIT), pc, o.policyCert, o.policy);
      // Verified is not in force: a claim that has ended (or not begun) admits nobody now.
      const now = new Date();
      const windows = [...policy.platforms, ...policy.measurements, ...policy.properties];
      const ended = windows.filter((w) => w.notAfter < now).length;
      const notYet = windows.filter((w) => w.notBefore > now).length;
      if (ended) warn(P, `${ended} of the policy's ${windows.length} claims have ended: make a new policy (make-policy) for the machines they admitted`);
      if (notYet) warn(P, `${notYet} of the policy's ${windows.length} claims are not in force yet`);
      const snpClaims = snpClaimLayouts(policy);
      return {
        json: { statements: policy.statements, platforms: policy.platforms.map((p) => p.label), measurements: policy.measurements.map((m) => m.hex), claims: windows.length, ended, notYet, snpClaims },
        text: [`policy for domain ${policyDomain(policyCert)}, signed by ${pc.subject}:`, ...statementLines(policy, snpClaims)],
      };
    })
    .requiredOption('--policy <file>', 'the policy file')
    .requiredOption('--policy-cert <file>', 'the policy certificate');

  storeOptions(subcommand<JsonOption & ProtectionOptions & TimeoutOption & { domain: string; policyCert: string; server: string; force?: boolean; keyAlg: KeyAlg; plain?: boolean; saveEvidence?: string }>(program, 'init-trust',
    'get this machine certified and keep its key and admission certificate in the cryptstore',
    async (o) => {
      const { host, port } = parseHostPort(o.server, '--server');
      // The machine's private key goes in the store: not where another user could replace it.
      await refuseReplaceableDir(o.store);
      const policyCert = await readCertificateFile(o.policyCert);
      requirePolicyDomain(policyCert, o.domain, o.policyCert);
      const platform = await loadPlatform(P, o);
      // Before certifying: a request that cannot be saved should not cost a certification.
      if (o.saveEvidence) refuseOwnFiles(o.saveEvidence, storeFiles(o, o.policyCert), `--save-evidence ${o.saveEvidence}`);
      if (o.saveEvidence) {
        await checkWritable(o.saveEvidence, { exclusive: true }).catch((e: unknown) => {
          // --force certifies again and replaces nothing here: say what does help.
          if (!(e instanceof CertifierError && e.code === 'ALREADY_EXISTS')) throw e;
          throw new CertifierError('ALREADY_EXISTS', `${e.message}; --save-evidence never replaces a file: name a new one, or move this one away`, { cause: e });
        });
      }
      // A store this run makes goes again if certification fails or is interrupted (until keep()).
      const { store, keep, close } = await withProtector(P, o, (protector) => openToCertify(P, o.store, protector, ['SIGINT', 'SIGTERM', 'SIGHUP']), platform);
      let sent: Uint8Array | undefined;
      try {
        if (o.plain) warn(P, 'plain TCP: no TLS, and the evidence is not bound to a session (original protocol)');
        const r = await initTrust({ store, domain: o.domain, policyCert, platform, host, port, force: o.force === true, keyAlg: o.keyAlg, plain: o.plain === true, waits: waitsOf(o), onRequest: (req) => (sent = req) });
        keep(); // certified: the store is this machine's identity now, whatever comes next
        if (o.saveEvidence && sent) {
          // The machine is certified by now (a refused renewal too); failing here would only make a script certify it again.
          await writeFileAtomic(o.saveEvidence, sent, { mode: 0o644, exclusive: true })
            .catch((e: Error) => warn(P, `certified, but the request sent was not saved: ${e.message}`));
        }
        const info = { status: r.status, serial: r.peer.serialHex, measurement: r.peer.measurementHex, notAfter: r.peer.validUntil.toISOString(), ...(r.why ? { why: r.why } : {}) };
        // Replaced although not due: the one case that is no routine renewal, worth a line.
        if (r.why === 'other-policy-key') note(P, `replaced this machine's admission certificate for "${o.domain}": the stored one was issued under another policy key than --policy-cert's (as after the policy key is replaced; see "Replacing the policy key")`);
        const renewalFailed = r.renewalFailed && (explainTimeout(r.renewalFailed, o) as CertifierError);
        // Due, not yet needed: the machine stays certified, and a script goes on to fetch its keys.
        if (renewalFailed) warn(P, `could not renew this machine's certificate through ${o.server} (${renewalFailed.message} [${renewalFailed.code}]); it is still valid until ${info.notAfter}: run init-trust again before then`);
        const final = r.endsWithPolicyCert;
        if (final) warn(P, `this machine's certificate, valid until ${info.notAfter}, is due for renewal, but ${noRenewalPast(final)}`);
        return {
          json: renewalFailed ? { ...info, renewalFailed: { code: renewalFailed.code, reason: renewalFailed.message } } : final ? { ...info, endsWithPolicyCert: final.toISOString() } : info,
          text: [r.status === 'certified' ? `certified: serial ${info.serial}, measurement ${info.measurement}, valid until ${info.notAfter}`
            : `already certified (serial ${info.serial}, valid until ${info.notAfter}); ${renewalFailed ? 'renewal failed (see the warning)' : final ? 'no renewal extends it (see the warning)' : 'nothing to do'}`],
        };
      } catch (e) {
        // A refused request is the one most worth explaining: keep it as well.
        if (o.saveEvidence && sent) {
          const saved = await writeFileAtomic(o.saveEvidence, sent, { mode: 0o644, exclusive: true }).then(() => true, () => false);
          note(P, saved ? `the request sent was saved to ${o.saveEvidence} (simpleserver explain --evidence ${o.saveEvidence})` : `could not save the request sent to ${o.saveEvidence}`);
        }
        throw e;
      } finally {
        await close();
      }
    },
    // A usage mistake, before any file is read; all of a --check-only run (first-boot.sh asks before certifying).
    (o) => {
      parseHostPort(o.server, '--server');
      checkPlatformFlags(o);
    }))
    .requiredOption('--domain <name>', 'the policy domain', domainName)
    .requiredOption('--policy-cert <file>', 'the pinned policy certificate')
    .requiredOption('--server <host:port>', 'the certificate authority (simpleserver)')
    .option('--force', 'certify again even if the store holds a valid certificate')
    .addOption(new Option('--key-alg <alg>', 'algorithm of the machine key').choices(ALGS).default('p256'))
    .option('--plain', 'speak the original plain-TCP protocol (no TLS, no session binding)')
    .option('--save-evidence <file>', 'keep the trust request sent (for simpleserver explain); refuses to replace a file', fileOut)
    .addOption(timeoutFlag())
    .addHelpText('after', examples([
      'cert-utility init-trust --domain datica --policy-cert policy-cert.pem --server 10.0.0.5:8123 \\\n      --store /var/lib/vm/store --sealed --platform simulated --platform-dir /etc/vm/platform --measurement-file /etc/vm/measurement',
    ]));

  subcommand<JsonOption & { policyKey: string; policyCert: string; publicKey: string; measurement: string; out: string; policy?: string; days: number; platform: string; force?: boolean }>(program, 'issue-cert',
    'sign an admission certificate directly with the policy key (Scenario 2, offline)',
    async (o) => {
      // That platform marks simpleserver's own certificate; a machine holding one could pose as
      // the certificate authority to every init-trust of the domain.
      if (o.platform === AUTHORITY_PLATFORM) throw new CertifierError('USAGE', `--platform ${AUTHORITY_PLATFORM} is reserved for simpleserver's own certificate`);
      if (o.platform.startsWith(ROLE_PLATFORM_PREFIX)) throw new CertifierError('USAGE', `--platform ${o.platform} names a role: use issue-role-cert`);
      // A usage error before any file is read (it came once the keys were read), naming the flag.
      const measurement = parseMeasurementHex(o.measurement, '--measurement');
      warnIfEmpty(measurement);
      refuseOwnFiles(o.out, { dirs: [], files: [o.policyKey, o.policyCert, o.publicKey] }, `--out ${o.out}`);
      const [policyKey, policyCert, subject] = await Promise.all([readPrivateKeyFile(o.policyKey), readCertificateFile(o.policyCert), readPublicKeyFile(o.publicKey)]);
      const pc = validPolicyCert(policyCert);
      if (!sameKey(pc.publicKey, policyKey)) throw new CertifierError('INVALID_KEY', `${o.policyKey} is not the key of ${o.policyCert}`);
      refusePolicyKeyAsSubject(subject, policyKey, o.publicKey);
      const now = new Date();
      const claimEnds = o.policy === undefined ? undefined : await trustedUntil(o.policy, pc, o.policyCert, measurement, now);
      // As simpleserver issues: never past the claim that trusts the measurement nor the policy
      // certificate, and not for less than a minute.
      const validitySeconds = issuableSeconds(now, o.days * 86_400, claimEnds, pc.notAfter);
      const der = await issueAdmissionCert({
        policyKey, policyCert, subjectPublicKey: subject, measurement,
        platform: o.platform, domain: policyDomain(policyCert), validitySeconds, now,
      });
      await writeFileAtomic(o.out, new TextEncoder().encode(toPem(der)), { exclusive: !o.force, mode: 0o644 });
      const parsed = parseCertificate(der);
      warnIfCutShort(parsed.notAfter, pc.notAfter, o.days);
      if (claimEnds && !endsWithPolicyCert(parsed.notAfter, pc.notAfter) && validitySeconds < o.days * 86_400) {
        warn(P, `the certificate ends at ${parsed.notAfter.toISOString()}, with the policy claim that trusts its measurement, not after --days ${o.days}`);
      }
      const d = describeCert(parsed);
      return { json: { out: o.out, certificate: d.json }, text: [`wrote ${printableName(o.out)}`, ...d.text] };
    })
    .requiredOption('--policy-key <file>', 'the policy private key')
    .requiredOption('--policy-cert <file>', 'the policy certificate')
    .requiredOption('--public-key <file>', "the machine's public key (PEM/DER, or a certificate)")
    .requiredOption('--measurement <hex>', "the machine's measurement")
    .requiredOption('--out <file>', 'where to write the certificate (PEM)', fileOut)
    .option('--policy <file>', 'the signed policy: issue only for a measurement it trusts now, and end the certificate with the claim that trusts it')
    .option('--days <n>', 'validity in days', intInRange(1, 3660), 90)
    .option('--platform <name>', 'the platform named in the certificate', platformName, 'issued-offline')
    .option('--force', 'replace --out if it exists');

  subcommand<JsonOption & { policyKey: string; policyCert: string; publicKey: string; role: string; out: string; days: number; force?: boolean }>(program, 'issue-role-cert',
    'sign a role credential (e.g. operator) that a key-client presents in the auth-challenge',
    async (o) => {
      refuseOwnFiles(o.out, { dirs: [], files: [o.policyKey, o.policyCert, o.publicKey] }, `--out ${o.out}`);
      const [policyKey, policyCert, subject] = await Promise.all([readPrivateKeyFile(o.policyKey), readCertificateFile(o.policyCert), readPublicKeyFile(o.publicKey)]);
      const pc = validPolicyCert(policyCert);
      if (!sameKey(pc.publicKey, policyKey)) throw new CertifierError('INVALID_KEY', `${o.policyKey} is not the key of ${o.policyCert}`);
      refusePolicyKeyAsSubject(subject, policyKey, o.publicKey);
      const der = await issueRoleCert({ policyKey, policyCert, subjectPublicKey: subject, role: o.role, domain: policyDomain(policyCert), validitySeconds: o.days * 86_400 });
      await writeFileAtomic(o.out, new TextEncoder().encode(toPem(der)), { exclusive: !o.force, mode: 0o644 });
      const parsed = parseCertificate(der);
      warnIfCutShort(parsed.notAfter, pc.notAfter, o.days);
      return { json: { out: o.out, role: o.role, certificate: describeCert(parsed).json }, text: [`wrote ${printableName(o.out)}: role ${o.role}`] };
    })
    .requiredOption('--policy-key <file>', 'the policy private key')
    .requiredOption('--policy-cert <file>', 'the policy certificate')
    .requiredOption('--public-key <file>', "the holder's public key")
    .requiredOption('--role <name>', 'the role, as ACL rules name it', roleName)
    .requiredOption('--out <file>', 'where to write the certificate (PEM)', fileOut)
    .option('--days <n>', 'validity in days', intInRange(1, 3660), 30)
    .option('--force', 'replace --out if it exists');

  subcommand<JsonOption>(program, 'show-cert', 'print a certificate (PEM or DER)',
    async (_o, args) => {
      const d = describeCert(parseCertificate(await readCertificateFile(args[0]!)));
      return { json: { certificate: d.json }, text: d.text };
    })
    .argument('<file>', 'the certificate');
}

export { readMeasurementFile };

/**
 * make-policy's --trust-measurement values as bytes, or USAGE: none, one that is no measurement,
 * one named twice (the policy would say it twice); and at least one platform to trust them on.
 */
function trustedMeasurements(o: { trustMeasurement: string[]; trustPlatform: string[] } & SnpPolicyFlags): Uint8Array[] {
  if (o.trustMeasurement.length === 0) throw new CertifierError('USAGE', 'name at least one --trust-measurement');
  if (o.trustPlatform.length === 0 && o.trustAmdRoot.length === 0 && o.trustAmdRootCert.length === 0) throw new CertifierError('USAGE', 'name at least one --trust-platform, --trust-amd-root or --trust-amd-root-cert');
  const measurements = o.trustMeasurement.map((m) => parseMeasurementHex(m, '--trust-measurement'));
  const same = measurements.findIndex((m, i) => measurements.findIndex((x) => Buffer.from(x).equals(Buffer.from(m))) !== i);
  if (same >= 0) throw new CertifierError('USAGE', `--trust-measurement ${toHex(measurements[same]!)} is given twice: the policy would say it twice`);
  return measurements;
}

/** SHA-256 of no bytes: what measure gives an empty file, a download that failed or a build that wrote nothing. */
const EMPTY_MEASUREMENT = createHash('sha256').digest('hex');
const emptyMeasurement = `${EMPTY_MEASUREMENT} is the measurement of an empty file (SHA-256 of no bytes): whatever is measured to it holds nothing; measure the program or image itself`;

/** A measurement trusted or certified that is an empty file's is most likely a mistake: says so. */
function warnIfEmpty(measurement: Uint8Array): void {
  if (toHex(measurement) === EMPTY_MEASUREMENT) warn(P, emptyMeasurement);
}

/** A certificate never outlives its issuer's: says so when that cut --days short. */
function warnIfCutShort(notAfter: Date, policyCertEnds: Date, days: number): void {
  if (endsWithPolicyCert(notAfter, policyCertEnds)) warn(P, `the certificate ends at ${notAfter.toISOString()}, with the policy certificate, not after --days ${days}`);
}

/**
 * When the claim of the signed policy in `file` trusting `measurement` ends (the one in force at
 * `at` that ends last): MEASUREMENT_NOT_TRUSTED when no claim names it, CLAIM_EXPIRED when none is
 * in force, POLICY_INVALID for a policy not signed by the key of `pc` (read from `certFile`).
 */
async function trustedUntil(file: string, pc: ParsedCert, certFile: string, measurement: Uint8Array, at: Date): Promise<Date> {
  const policy = policySignedBy(await readFileLimited(file, POLICY_FILE_LIMIT), pc, certFile, file);
  const claim = measurementClaim(policy, measurement, at);
  if (!('code' in claim)) return claim.notAfter;
  const fix = claim.code === 'CLAIM_EXPIRED' ? 'renew the policy (make-policy)' : 'check --measurement, or sign a policy that trusts it (make-policy --trust-measurement) first';
  throw new CertifierError(claim.code, `${claim.reason} (${file}): ${fix}`);
}

/** A certificate for the policy key itself would let its holder pose as a machine with the authority's key. */
function refusePolicyKeyAsSubject(subject: KeyObject, policyKey: KeyObject, file: string): void {
  if (sameKey(subject, policyKey)) throw new CertifierError('INVALID_KEY', `${file} holds the policy key's public key: give the machine's (or the holder's) own key`);
}

/** --platform's parser: a bad value is a usage error (exit 2), as every other flag's. */
function platformName(v: string): string {
  const problem = platformProblem(v);
  if (problem) throw new InvalidArgumentError(problem);
  return v;
}

/** --role's parser (see platformName). */
function roleName(v: string): string {
  try {
    checkRoleName(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return v;
}

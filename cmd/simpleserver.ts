// simpleserver: the policy-key certificate authority. It verifies a machine's evidence against
// the signed policy and issues an X.509 admission certificate.

import { InvalidArgumentError } from 'commander';
import { readFileLimited } from '../lib/files/index.ts';
import { CertifierError } from '../lib/errors/index.ts';
import { calendarTime } from '../lib/util/calendar.ts';
import { fromHex, toHex } from '../lib/crypto/index.ts';
import { parseTrustRequest } from '../lib/wire/index.ts';
import { evaluate, sameKey, type Decision, type Policy } from '../lib/policy/index.ts';
import { describeCrl, describeSnpEvidence, MAX_CRL_BYTES, refuseOlderCrls, SEV_ENCLAVE, snpRootsOf, trustedCrls, verifiedBefore, verifyEvidence, verifyOptionsFor, type VerifiedAmdCrl } from '../lib/attest/index.ts';
import { validatePolicyCert } from '../lib/pki/index.ts';
import { platformWarnings, policyEnds, policyNotInForce, rootsWithoutCrl, SESSION_BINDING_BYTES, startCertifier } from '../lib/certifier/index.ts';
import { collect, createProgram, intInRange, note, run, subcommand, warn, type JsonOption } from './common/cli.ts';
import { parseHostPort, POLICY_FILE_LIMIT, readCertificateFile, readPrivateKeyFile, policyDomain, policySignedBy, validPolicyCert } from './common/keys.ts';
import { logLine, runUntilSignal } from './common/server.ts';

const P = 'simpleserver';
const CRL_HELP = 'an AMD revocation list (DER or PEM, as AMD\'s key distribution service serves it) for an SEV-SNP root the policy trusts: ASKs/ASVKs on it are refused, and so is every path to its root once it is past its next update (repeatable, one per root)';

/** The --amd-crl files, checked against the SEV-SNP roots `policy` trusts, at `at`. */
async function loadCrls(files: string[], policy: Policy, at: Date): Promise<VerifiedAmdCrl[]> {
  const lists = await Promise.all(files.map(async (source) => ({ source, bytes: await readFileLimited(source, MAX_CRL_BYTES, { regularOnly: true }) })));
  return trustedCrls(lists, snpRootsOf(policy), at);
}
/** A line for the AMD roots `policy` trusts that no --amd-crl list is for, if any: revocation is the one check of their paths not made. */
function revocationWarnings(policy: Policy, crls: VerifiedAmdCrl[]): string[] {
  const roots = rootsWithoutCrl(policy, crls);
  return roots.length ? [`no AMD revocation list (--amd-crl) for ${roots.join(', ')}, which the policy trusts: an ASK or ASVK AMD has revoked under ${roots.length === 1 ? 'it' : 'them'} is not refused`] : [];
}
process.umask(0o077);
const program = createProgram(P, 'the policy-key certificate authority: evidence in, admission certificate out');

subcommand<JsonOption & { policyKey: string; policyCert: string; policy: string; amdCrl: string[]; listen: string; plain?: boolean; certDays: number; logJson?: boolean }>(program, 'serve',
  'certify machines whose evidence the policy trusts',
  async (o) => {
    // HOST:PORT, a usage error before any file is read (it came once the policy was loaded).
    const { host, port } = parseHostPort(o.listen, '--listen', { listen: true });
    const [policyKey, policyCert] = await Promise.all([readPrivateKeyFile(o.policyKey), readCertificateFile(o.policyCert)]);
    const pc = validPolicyCert(policyCert);
    if (!sameKey(pc.publicKey, policyKey)) throw new CertifierError('INVALID_KEY', `${o.policyKey} is not the key of ${o.policyCert}`);
    const policy = policySignedBy(await readFileLimited(o.policy, POLICY_FILE_LIMIT), pc, o.policyCert, o.policy);
    const amdCrls = await loadCrls(o.amdCrl, policy, new Date());
    let inForce = amdCrls;
    const log = logLine(P, o.logJson === true);
    const notInForce = policyNotInForce(policy, new Date());
    if (notInForce) warn(P, `in the policy, ${notInForce}: every machine will be refused (CLAIM_EXPIRED) until a policy in force is loaded (SIGHUP), or, if it was signed on a clock running ahead, until then`);
    // A policy that admits some machines may still refuse every one of a platform it trusts.
    else for (const line of platformWarnings(policy, new Date())) warn(P, `in the policy, ${line}`);
    for (const line of revocationWarnings(policy, amdCrls)) warn(P, line);
    if (o.plain) warn(P, 'serving the original plain-TCP protocol: no TLS, and evidence is not bound to a session (a recorded request can be replayed); use only for older clients');
    const server = await startCertifier({
      policyKey, policyCert, policy, amdCrls, domain: policyDomain(policyCert), host, port, plain: o.plain === true,
      certValiditySeconds: o.certDays * 86_400, log,
    });
    note(P, `domain ${policyDomain(policyCert)}, ${policy.platforms.length} trusted platform(s), ${policy.measurements.length} trusted measurement(s), the first claim ending ${policyEnds(policy)?.toISOString() ?? 'never (no claims)'}, the policy certificate ending ${pc.notAfter.toISOString()}, ${o.plain ? 'plain TCP' : 'TLS 1.3'}`);
    for (const c of amdCrls) note(P, describeCrl(c));
    const reload = async () => {
      const next = policySignedBy(await readFileLimited(o.policy, POLICY_FILE_LIMIT, { regularOnly: true }), pc, o.policyCert, o.policy); // a bad file throws; the policy in force stays
      const why = policyNotInForce(next, new Date());
      if (why) throw new CertifierError('CLAIM_EXPIRED', `in the new policy, ${why}; the policy in force stays`);
      const crls = await loadCrls(o.amdCrl, next, new Date()); // read again too: a fresh list is the usual reason to reload
      refuseOlderCrls(crls, inForce);
      server.setPolicy(next, crls);
      inForce = crls;
      // Said again only while still so: a reload with a list for every root says nothing of revocation.
      const warnings = [...platformWarnings(next, new Date()), ...revocationWarnings(next, crls)];
      return {
        policy: o.policy, platforms: next.platforms.length, measurements: next.measurements.length, firstClaimEnds: policyEnds(next)?.toISOString() ?? 'never (no claims)',
        ...(crls.length ? { amdCrls: crls.map(describeCrl) } : {}), ...(warnings.length ? { warnings } : {}),
      };
    };
    return { json: await runUntilSignal(P, server, o.json === true, { log, reload, reloads: { policy: o.policy } }) };
  })
  .requiredOption('--policy-key <file>', 'the policy private key')
  .requiredOption('--policy-cert <file>', 'the policy certificate')
  .requiredOption('--policy <file>', 'the signed policy (make-policy; SIGHUP reads it again)')
  .option('--amd-crl <file>', `${CRL_HELP}; SIGHUP reads it again`, collect<string>, [])
  .option('--listen <host:port>', 'address to listen on (port 0 picks one)', '127.0.0.1:8123')
  .option('--plain', 'serve the original plain-TCP protocol (no TLS, no session binding)')
  .option('--cert-days <n>', 'longest admission certificate lifetime (never beyond the policy claims)', intInRange(1, 3660), 90)
  .option('--log-json', 'log JSON lines instead of text')
  .addHelpText('after', '\nExample:\n  $ simpleserver serve --policy-key policy-key.pem --policy-cert policy-cert.pem --policy policy.bin --listen 127.0.0.1:8123\n');

subcommand<JsonOption & { policy: string; policyCert: string; evidence: string; amdCrl: string[]; at?: string; sessionBinding?: string }>(program, 'explain',
  'evaluate saved evidence (a trust_request_message) against a policy, offline, and say why',
  async (o) => {
    // ISO 8601 with its offset: a bare date-time would be read in this machine's time zone. A
    // usage error before any file is read.
    const at = o.at !== undefined ? isoTime(o.at, '--at') : new Date();
    const policyCert = await readCertificateFile(o.policyCert);
    const pc = validatePolicyCert(policyCert, at);
    const policy = policySignedBy(await readFileLimited(o.policy, POLICY_FILE_LIMIT), pc, o.policyCert, o.policy);
    const amdCrls = await loadCrls(o.amdCrl, policy, at);
    // What serve says at start of the same policy and lists: a decision here skips that check too.
    const warnings = revocationWarnings(policy, amdCrls);
    for (const line of warnings) warn(P, line);
    const said = warnings.length ? { warnings } : {};
    const req = parseTrustRequest(await readFileLimited(o.evidence, 4 * 1024 * 1024));
    // SEV-SNP evidence: every field of the report first, whatever the decision turns out to be.
    const fields = req.support.enclaveType === SEV_ENCLAVE ? describeSnpEvidence(req.support) : [];
    if (fields.length && !o.json) process.stdout.write(fields.join('\n') + '\n');
    let decision: Decision;
    let bound: Uint8Array | undefined;
    try {
      const facts = verifyEvidence(req.support, verifyOptionsFor(policy, at, amdCrls));
      bound = facts.sessionBinding?.length ? facts.sessionBinding : undefined;
      decision = evaluate(policy, facts, { at, purpose: req.purpose, ...(o.sessionBinding ? { expectedBinding: fromHex(o.sessionBinding) } : {}) });
    } catch (e) {
      if (!(e instanceof CertifierError)) throw e;
      // Refused by the evidence's own checks: those that passed before, as the policy's refusals show the proof so far.
      decision = { allow: false, code: e.code, reason: e.message, proof: verifiedBefore(e), bound: false };
    }
    const lines = [`decision: ${decision.allow ? 'allow' : `deny (${decision.code})`}`, ...decision.proof.map((p) => `  ${p}`)];
    // A server checks the binding against its own TLS session; here only --session-binding can.
    const unchecked = bound && !o.sessionBinding ? toHex(bound) : undefined;
    if (unchecked) lines.push(`note: the evidence is bound to TLS session ${unchecked}, not checked here (a server refuses it on any other session; give --session-binding to check it)`);
    if (!decision.allow) {
      lines.push(`reason: ${decision.reason}`);
      process.stdout.write(o.json ? '' : lines.join('\n') + '\n');
      throw new CertifierError(decision.code, decision.reason, { details: { proof: decision.proof, ...said } });
    }
    return { json: { decision: 'allow', measurement: toHex(decision.measurement), platform: decision.platform, proof: decision.proof, ...(fields.length ? { evidence: fields } : {}), ...(unchecked ? { uncheckedSessionBinding: unchecked } : {}), ...said }, text: lines };
  })
  .requiredOption('--policy <file>', 'the signed policy')
  .requiredOption('--policy-cert <file>', 'the policy certificate')
  .requiredOption('--evidence <file>', 'a serialized trust_request_message (init-trust --save-evidence)')
  .option('--amd-crl <file>', CRL_HELP, collect<string>, [])
  .option('--at <time>', 'evaluate at this time (ISO 8601) instead of now')
  .option('--session-binding <hex>', `require the evidence to be bound to this TLS exporter value (${SESSION_BINDING_BYTES * 2} hex digits)`, (v: string) => {
    if (!new RegExp(`^[0-9a-fA-F]{${SESSION_BINDING_BYTES * 2}}$`).test(v)) throw new InvalidArgumentError(`expected ${SESSION_BINDING_BYTES * 2} hex digits (the ${SESSION_BINDING_BYTES}-byte TLS exporter value)`);
    return v.toLowerCase();
  });

await run(program);

/**
 * An ISO 8601 time with its offset (a bare date-time would be read in this machine's time zone),
 * every field in its range: Date would read February 30th as March 2nd, and 24:00 as midnight.
 */
function isoTime(text: string, flag: string): Date {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.\d{1,3})?)?(?:Z|[+-](\d\d):(\d\d))$/.exec(text);
  if (!m) throw new CertifierError('USAGE', `${flag} takes an ISO 8601 time with its offset, e.g. 2026-12-05T12:00:00Z, not "${text}"`);
  const [year, month, day, hour, minute, second = 0, offH = 0, offM = 0] = m.slice(1).map((v) => (v === undefined ? undefined : Number(v))) as number[];
  const fits = calendarTime(year!, month!, day!, hour!, minute!, second) !== undefined && offH <= 23 && offM <= 59;
  const at = new Date(text);
  if (!fits || !Number.isFinite(at.getTime())) {
    throw new CertifierError('USAGE', `${flag} "${text}" is not a time: a field is out of its range (a month from 1 to 12, a day its month has, an hour from 0 to 23, minutes and seconds from 0 to 59, an offset below 24:00)`);
  }
  return at;
}

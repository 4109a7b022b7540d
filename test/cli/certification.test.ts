// Certification end to end with the real programs on loopback: cert-utility makes the policy
// key, the simulated platform, the measurement and the signed policy; simpleserver runs as its
// own process; init-trust gets a machine certified into a sealed cryptstore. Then every refusal
// of the issue's list, each with its own code and exit status, while the same server process
// keeps certifying good machines. Forgeries the CLI cannot produce are driven from this process
// with lib/certifier's requestCertificate against the real server process.

import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CertifierError, ErrorCodes, type ErrorCode } from '../../lib/errors/index.ts';
import { exportPrivateKey, fromKeyMessage, generateKeyPair, importPrivateKey, publicKeyOf, randomBytes, toHex, toKeyMessage } from '../../lib/crypto/index.ts';
import { decode, encode, parseTrustRequest, parseTrustResponse, type AttestationUserData, type EvidencePackage, type SignedReport, type VseAttestationReportInfo } from '../../lib/wire/index.ts';
import { keyEntity, makePolicy, sameKey, saysClause, signClaim, simpleClause } from '../../lib/policy/index.ts';
import { generateSimulatedPlatform, platformCertificate, SimulatedEnclave, type Platform } from '../../lib/attest/index.ts';
import { loadIdentity, requestCertificate } from '../../lib/certifier/index.ts';
import { createPolicyCert, parseCertificate, readCertificate, toPem, validateAdmission } from '../../lib/pki/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { ROOT, VECTORS, closedPort, run, tempDir, type RunResult } from '../support/helpers.ts';

const DAY = 86_400_000;
const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- simpleserver as a child process -------------------------------------------------------

interface ServerProcess {
  pid: number;
  port: number;
  /** stderr so far (start-up lines and one log line per event) */
  log(): string;
  /** undefined while it runs */
  exitStatus(): { status: number | null; signal: NodeJS.Signals | null } | undefined;
  /** SIGTERM by pid, then wait for the exit */
  stop(): Promise<{ status: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `simpleserver <args>`; resolves once it prints "listening HOST:PORT" on stdout, or with
 * `exited` when it exits first (a server that refuses to start).
 */
function startSimpleserver(args: string[], cwd: string): Promise<ServerProcess | { exited: { status: number | null; signal: NodeJS.Signals | null }; out: string; log: string }> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'CERTIFIER_DEBUG' && k !== 'CRYPTSTORE_PASSPHRASE') env[k] = v;
  const child = spawn(process.execPath, [join(ROOT, 'cmd', 'bin', 'simpleserver.js'), ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let exit: { status: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (status, signal) => resolve((exit = { status, signal })));
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`simpleserver did not start within 20 s:\n${err}`));
    }, 20_000);
    child.on('error', reject);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const m = /^listening (\S+):(\d+)$/m.exec(out);
      if (!m) return;
      clearTimeout(timer);
      resolve({
        pid: child.pid!,
        port: Number(m[2]),
        log: () => err,
        exitStatus: () => exit,
        stop: async () => {
          if (!exit) process.kill(child.pid!, 'SIGTERM');
          return exited;
        },
      });
    });
    void exited.then((e) => {
      clearTimeout(timer);
      resolve({ exited: e, out, log: err });
    });
  });
}

async function mustStart(args: string[], cwd: string): Promise<ServerProcess> {
  const s = await startSimpleserver(args, cwd);
  if ('exited' in s) throw new Error(`simpleserver exited with ${s.exited.status ?? s.exited.signal} instead of listening:\n${s.log}`);
  return s;
}

async function waitFor(cond: () => boolean, ms = 20_000): Promise<boolean> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) return false;
    await sleep(20);
  }
  return true;
}

const count = (text: string, re: RegExp) => text.match(new RegExp(re.source, 'g'))?.length ?? 0;

function expectRefused(r: RunResult, status: number, code: ErrorCode, program = 'cert-utility'): void {
  expect(r.status, `exit status; stderr:\n${r.stderr}`).to.equal(status);
  expect(ErrorCodes[code], `the table maps ${code} to ${status}`).to.equal(status);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith(`${program}: error: `));
  expect(errors, r.stderr).to.have.length(1);
  expect(errors[0]).to.match(new RegExp(`\\[${code}\\]$`));
  expect(r.stderr, 'no stack trace').not.to.match(/\n\s+at /);
  expect(r.out).to.equal('');
}

async function expectThrown(p: Promise<unknown>, code: ErrorCode): Promise<CertifierError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e, `expected a refusal with ${code}`).to.be.instanceOf(CertifierError);
  expect((e as CertifierError).code, (e as Error).message).to.equal(code);
  return e as CertifierError;
}

/** openssl verify of a certificate (DER) against the policy certificate, for a TLS client. */
async function opensslVerify(dir: string, der: Uint8Array, policyCertPem: string, name: string): Promise<string> {
  const leaf = join(dir, `${name}.pem`);
  writeFileSync(leaf, toPem(der));
  const { stdout } = await execFileP('openssl', ['verify', '-CAfile', policyCertPem, '-purpose', 'sslclient', leaf]);
  return stdout.trim();
}

// ---- platforms that misbehave (for refusals the CLI cannot produce) --------------------------

/** Delegates to a real platform but rewrites the user data it attests to. */
class RewritingPlatform implements Platform {
  readonly type: string;
  readonly isTestPlatform = true;
  readonly measurement: Uint8Array;
  constructor(private readonly inner: Platform, private readonly rewrite: (ud: AttestationUserData) => AttestationUserData) {
    this.type = inner.type;
    this.measurement = inner.measurement;
  }
  attest(ud: AttestationUserData): Promise<EvidencePackage> {
    return this.inner.attest(this.rewrite(ud));
  }
  sealingProtector() {
    return this.inner.sealingProtector();
  }
}

/** Attests honestly once, then hands back that same evidence on every later connection. */
class ReplayingPlatform implements Platform {
  readonly type: string;
  readonly isTestPlatform = true;
  readonly measurement: Uint8Array;
  recorded: EvidencePackage | undefined;
  constructor(private readonly inner: Platform) {
    this.type = inner.type;
    this.measurement = inner.measurement;
  }
  async attest(ud: AttestationUserData): Promise<EvidencePackage> {
    this.recorded ??= await this.inner.attest(ud);
    return this.recorded;
  }
  sealingProtector() {
    return this.inner.sealingProtector();
  }
}

// ---- the suite -----------------------------------------------------------------------------

describe('certification on loopback: cert-utility and simpleserver (transcripts)', function () {
  this.timeout(60_000);
  this.slow(5_000);

  let tmp: ReturnType<typeof tempDir>;
  let dir: string;
  let server: ServerProcess;
  let M: string; // the trusted measurement (hex)
  let M2: string; // a measurement the policy does not trust
  let policyCertDer: Uint8Array;
  let first: RunResult; // the first init-trust
  let stores = 0;

  const p = (...parts: string[]) => join(dir, ...parts);
  const cu = (args: string[]) => run('cert-utility', args, { cwd: dir });
  const ss = (args: string[]) => run('simpleserver', args, { cwd: dir });
  const sealed = (store: string, platformDir = 'platform', measurement = 'app.measurement') =>
    ['--store', store, '--sealed', '--platform-dir', platformDir, '--measurement-file', measurement];
  const initTrust = (store: string, o: { platformDir?: string; measurement?: string; policyCert?: string; port?: number; extra?: string[] } = {}) =>
    cu(['init-trust', '--domain', 'datica', '--policy-cert', o.policyCert ?? 'policy-cert.pem', '--server', `127.0.0.1:${o.port ?? server.port}`,
      ...sealed(store, o.platformDir, o.measurement), ...(o.extra ?? [])]);
  const certifications = () => count(server.log(), / certification conn=/);

  /** After a refusal: a good machine still gets certified by the same server process. */
  async function serverStillCertifies(): Promise<void> {
    const store = `stores/good-${++stores}`;
    const r = await initTrust(store);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.out).to.match(new RegExp(`^certified: serial [0-9a-f]+, measurement ${M}, valid until `));
    expect(server.exitStatus(), 'the server is still running').to.equal(undefined);
  }

  /** A refused init-trust leaves no key and no certificate behind. */
  /** A refused init-trust leaves no store behind when it made the store itself: a later run may pick its protection afresh. */
  async function expectNoStore(store: string, platformDir = 'platform', measurement = 'app.measurement'): Promise<void> {
    expect(existsSync(p(store)), `${store} was left behind`).to.equal(false);
    const r = await cu(['list-items', ...sealed(store, platformDir, measurement), '--json']);
    expect(r.status).to.equal(1);
    expect(r.json().error.code).to.equal('STORE_NOT_FOUND');
  }

  before(async function () {
    this.timeout(90_000);
    tmp = tempDir('certification-');
    dir = tmp.dir;
    mkdirSync(p('stores'));
    const ok = (r: RunResult) => {
      expect(r.status, r.stderr).to.equal(0);
      return r;
    };
    writeFileSync(p('app'), 'the program the policy trusts\n');
    writeFileSync(p('app2'), 'another program\n');
    const [, , m1, m2] = await Promise.all([
      cu(['generate-policy-key', '--domain', 'datica', '--key-out', 'policy-key.pem', '--cert-out', 'policy-cert.pem']).then(ok),
      cu(['generate-platform-keys', '--out-dir', 'platform']).then(ok),
      cu(['measure', 'app', '--out', 'app.measurement']).then(ok),
      cu(['measure', 'app2', '--out', 'app2.measurement']).then(ok),
      // a second simulated platform, which no policy here trusts
      cu(['generate-platform-keys', '--out-dir', 'platform-untrusted']).then(ok),
      // another policy key of the same domain (for the pinned-certificate refusal)
      cu(['generate-policy-key', '--domain', 'datica', '--key-out', 'other-policy-key.pem', '--cert-out', 'other-policy-cert.pem']).then(ok),
    ]);
    M = m1!.out.trim();
    M2 = m2!.out.trim();
    expect(M).to.match(/^[0-9a-f]{64}$/);
    expect(readFileSync(p('app.measurement'))).to.have.length(32);

    // A platform whose endorsement ended long ago: generated two years back, valid one day.
    const old = await generateSimulatedPlatform({ now: new Date(Date.now() - 730 * DAY), days: 1 });
    mkdirSync(p('platform-expired'));
    writeFileSync(p('platform-expired', 'attest-key.pem'), exportPrivateKey(old.attestKey));
    writeFileSync(p('platform-expired', 'endorsement.bin'), old.endorsement);
    writeFileSync(p('platform-expired', 'platform-cert.pem'), toPem(platformCertificate(old.platformKey)));

    const policy = ['--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem'];
    await Promise.all([
      // the server's policy trusts the platform, the expired platform, and M
      cu(['make-policy', ...policy, '--trust-platform', 'platform/platform-cert.pem', '--trust-platform', 'platform-expired/platform-cert.pem',
        '--trust-measurement', M, '--out', 'policy.bin']).then(ok),
      // a policy that trusts only M2 (for explain's refusal)
      cu(['make-policy', ...policy, '--trust-platform', 'platform/platform-cert.pem', '--trust-measurement', M2, '--out', 'policy-m2.bin']).then(ok),
    ]);
    policyCertDer = readCertificate(readFileSync(p('policy-cert.pem')));

    server = await mustStart(['serve', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--policy', 'policy.bin', '--listen', '127.0.0.1:0'], dir);
    first = await initTrust('stores/machine', { extra: ['--save-evidence', 'treq.bin'] });
  });

  after(async () => {
    try {
      if (server) {
        const e = await server.stop();
        expect(e.status, server.log()).to.equal(0);
        expect(server.log()).to.contain('simpleserver: SIGTERM: finishing requests in flight, then stopping');
      }
    } finally {
      tmp?.cleanup();
    }
  });

  describe('1. the real programs certify a machine', () => {
    it('simpleserver says what it serves; init-trust prints the certificate and keeps key and certificate in the sealed store', async () => {
      expect(server.log()).to.match(/^simpleserver: domain datica, 2 trusted platform\(s\), 1 trusted measurement\(s\), the first claim ending \d{4}-\d\d-\d\dT[\d:.]+Z, the policy certificate ending \d{4}-\d\d-\d\dT[\d:.]+Z, TLS 1\.3$/m);
      expect(server.log(), 'a policy trusting no AMD root: nothing to say of AMD\'s revocation lists').not.to.contain('--amd-crl');
      expect(first.status, first.stderr).to.equal(0);
      expect(first.out).to.match(new RegExp(`^certified: serial ([0-9a-f]+), measurement ${M}, valid until \\d{4}-\\d\\d-\\d\\dT`));
      expect(first.stderr).to.contain('cert-utility: warning: simulated-enclave is a TEST platform');
      const serial = /serial ([0-9a-f]+)/.exec(first.out)![1]!;
      const line = new RegExp(`certification conn=([0-9a-f]+) remote=127\\.0\\.0\\.1:\\d+ decision=allow measurement=${M} platform=simulated-enclave serial=${serial} `).exec(server.log());
      expect(line, server.log()).not.to.equal(null);
      // Its connection's other line names it the same way (README: conn), so a log system joins them.
      expect(server.log()).to.match(new RegExp(` closed conn=${line![1]} remote=127\\.0\\.0\\.1:\\d+ transport=tls `));

      const items = await cu(['list-items', ...sealed('stores/machine'), '--json']);
      expect(items.status, items.stderr).to.equal(0);
      expect(items.json().items.map((i: { tag: string; version: number; type: string; exportable: boolean }) => [i.tag, i.version, i.type, i.exportable])).to.deep.equal([
        ['datica-admission-certificate', 1, 'X509-der-cert', true],
        ['datica-private-auth-key', 1, 'key-message-serialized-protobuf', false],
      ]);
    });

    it('the admission certificate in the store verifies with openssl and with our validator, and carries the measurement', async () => {
      const r = await cu(['get-item', ...sealed('stores/machine'), '--tag', 'datica-admission-certificate', '--out', 'cert.der']);
      expect(r.status, r.stderr).to.equal(0);
      const der = new Uint8Array(readFileSync(p('cert.der')));
      expect(await opensslVerify(dir, der, p('policy-cert.pem'), 'cert')).to.equal(`${p('cert.pem')}: OK`);

      const peer = validateAdmission({ chain: [der], policyCert: policyCertDer, at: new Date(), usage: 'client' });
      expect(peer.measurementHex).to.equal(M);
      expect(peer.platform).to.equal('simulated-enclave');
      expect(peer.domain).to.equal('datica');
      expect(peer.subject).to.equal(`O=Measured-${M}, CN=CertifierUsers`);
      expect(peer.serialHex).to.equal(/serial ([0-9a-f]+)/.exec(first.out)![1]);
      // the certificate names the key the store holds
      const store = await Cryptstore.open(p('stores/machine'), SimulatedEnclave.fromFiles(
        readFileSync(p('platform', 'attest-key.pem')), readFileSync(p('platform', 'endorsement.bin')), readFileSync(p('app.measurement'))).sealingProtector());
      try {
        const id = await loadIdentity(store, 'datica', policyCertDer);
        expect(sameKey(id.key, peer.publicKey)).to.equal(true);
        expect(id.peer.measurementHex).to.equal(M);
      } finally {
        await store.close();
      }

      const show = await cu(['show-cert', 'cert.der', '--json']);
      expect(show.status, show.stderr).to.equal(0);
      expect(show.json().certificate).to.deep.include({ issuer: 'CN=policyKey, O=datica/policyAuthority', isCA: false, extKeyUsage: ['serverAuth', 'clientAuth'] });
      expect(show.json().certificate.admission).to.deep.equal({ measurement: M, platform: 'simulated-enclave', domain: 'datica' });
    });

    it('print-policy --json lists what the policy trusts', async () => {
      const r = await cu(['print-policy', '--policy', 'policy.bin', '--policy-cert', 'policy-cert.pem', '--json']);
      expect(r.status, r.stderr).to.equal(0);
      const j = r.json();
      expect(j.ok).to.equal(true);
      expect(j.measurements).to.deep.equal([M]);
      expect(j.platforms).to.have.length(2);
      expect(j.statements).to.have.length(3);
      expect(j.statements[2]).to.match(new RegExp(`^policyKey key:[0-9a-f]{16} says measurement:${M} is-trusted `));
    });

    it('print-policy says which machines each SEV-SNP property claim suits: Turin\'s, family 19h\'s (Milan, Genoa), or none (a hand-written claim naming launch-tcb-fmc but not tcb-fmc)', async () => {
      const made = await cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', 'both-layouts.bin', '--trust-amd-root', 'milan', '--trust-amd-root', 'turin',
        '--snp-min-tcb', '3:0:8:115', '--snp-min-tcb', 'turin=0:1:0:2:71', '--trust-measurement', 'ab'.repeat(48)]);
      expect(made.status, made.stderr).to.equal(0);
      // make-policy shows what it wrote as print-policy does.
      expect(made.out.trimEnd().split('\n').slice(1).map((l) => / {2}\(for [^)]*\)$/.exec(l)?.[0] ?? '')).to.deep.equal(['', '', '  (for family 19h machines: Milan, Genoa)', '  (for Turin machines)', '']);
      const text = await cu(['print-policy', '--policy', 'both-layouts.bin', '--policy-cert', 'policy-cert.pem']);
      expect(text.status, text.stderr).to.equal(0);
      const lines = text.out.trimEnd().split('\n').slice(1);
      expect(lines.map((l) => / {2}\(for [^)]*\)$/.exec(l)?.[0] ?? '')).to.deep.equal(['', '', '  (for family 19h machines: Milan, Genoa)', '  (for Turin machines)', '']);
      expect(lines[3]).to.contain('tcb-fmc >= 0');
      const json = await cu(['print-policy', '--policy', 'both-layouts.bin', '--policy-cert', 'policy-cert.pem', '--json']);
      expect(json.json()).to.deep.include({ snpClaims: [{ claim: 3, suits: 'family-19h' }, { claim: 4, suits: 'turin' }], claims: 5 });
      expect(json.json().statements).to.have.length(5);
      const tcb = ['tcb-bootloader', 'tcb-tee', 'tcb-snp', 'tcb-microcode'].map((name) => ({ name, comparator: '>=' as const, value: 0 }));
      const DAY = 86_400_000;
      writeFileSync(p('no-machine-policy.bin'), makePolicy({
        policyKey: importPrivateKey(readFileSync(p('policy-key.pem'))), policyCert: policyCertDer, platforms: [], measurements: [],
        platformProperties: [{ platformType: 'amd-sev-snp', requirements: [...tcb, { name: 'launch-tcb-fmc', comparator: '>=', value: 0 }] }],
        notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY),
      }));
      const none = await cu(['print-policy', '--policy', 'no-machine-policy.bin', '--policy-cert', 'policy-cert.pem']);
      expect(none.out.trimEnd().split('\n')[1]).to.match(/launch-tcb-fmc >= 0\] has-trusted-platform-property {2}\[\S+ \.\. \S+\] {2}\(for no machine: it names a Turin level, not tcb-fmc\)$/);
      expect((await cu(['print-policy', '--policy', 'no-machine-policy.bin', '--policy-cert', 'policy-cert.pem', '--json'])).json().snpClaims).to.deep.equal([{ claim: 1, suits: 'none' }]);
    });

    it('make-policy writes a family 19h claim per product for --snp-min-tcb milan=... genoa=..., which print-policy names, and refuses them beside the minimum for both (USAGE)', async () => {
      const args = ['--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--trust-amd-root', 'milan', '--trust-amd-root', 'genoa', '--trust-measurement', 'ab'.repeat(48)];
      const made = await cu(['make-policy', ...args, '--out', 'per-product.bin', '--snp-min-tcb', 'milan=3:0:8:115', '--snp-min-tcb', 'genoa=10:0:23:84', '--json']);
      expect(made.status, made.stderr).to.equal(0);
      expect(made.json().snpClaims).to.deep.equal([{ claim: 3, suits: 'family-19h', product: 'milan' }, { claim: 4, suits: 'family-19h', product: 'genoa' }]);
      const text = await cu(['print-policy', '--policy', 'per-product.bin', '--policy-cert', 'policy-cert.pem']);
      const lines = text.out.trimEnd().split('\n').slice(1);
      expect(lines.map((l) => / {2}\(for [^)]*\)$/.exec(l)?.[0] ?? '')).to.deep.equal(['', '', '  (for Milan machines)', '  (for Genoa machines)', '']);
      expect(lines[2]).to.contain('product = milan, tcb-bootloader >= 3, tcb-tee >= 0, tcb-snp >= 8, tcb-microcode >= 115');
      const mixed = await cu(['make-policy', ...args, '--out', 'mixed.bin', '--snp-min-tcb', '3:0:8:84', '--snp-min-tcb', 'milan=3:0:8:115', '--check-only']);
      expect(mixed.status).to.equal(2);
      expect(mixed.stderr).to.contain('the family 19h minimum (Milan, Genoa) and the milan= minimum do not go together');
    });

    it('simpleserver explain allows the saved evidence with its proof (exit 0), and denies it under a policy without the measurement (exit 1)', async () => {
      const allow = await ss(['explain', '--policy', 'policy.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'treq.bin']);
      expect(allow.status, allow.stderr).to.equal(0);
      const lines = allow.out.trimEnd().split('\n');
      expect(lines[0]).to.equal('decision: allow');
      expect(lines.slice(1).join('\n')).to.match(/^ {2}platformKey key:[0-9a-f]{16} says attestKey key:[0-9a-f]{16} is-trusted-for-attestation \(signature verified\)$/m);
      expect(allow.out).to.contain(`speaks-for measurement ${M} (report signature verified)`);
      expect(allow.out).to.contain(`policy: policyKey says measurement ${M} is-trusted`);
      expect(lines.at(-2)).to.match(new RegExp(`^ {2}therefore key:[0-9a-f]{16} is-trusted-for-authentication as measurement ${M}$`));
      // Saved from a TLS certification: bound to that session, which only --session-binding can check here.
      expect(lines.at(-1)).to.match(/^note: the evidence is bound to TLS session [0-9a-f]{64}, not checked here/);

      const deny = await ss(['explain', '--policy', 'policy-m2.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'treq.bin']);
      expectRefusedExplain(deny, 'MEASUREMENT_NOT_TRUSTED');
      expect(deny.out).to.contain(`reason: measurement ${M} is not trusted by the policy`);
      // Under --json the refusal carries its proof, the one detail of it the error document shows.
      const denyJson = await ss(['explain', '--policy', 'policy-m2.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'treq.bin', '--json']);
      expect(denyJson.status).to.equal(1);
      const { error } = denyJson.json() as { error: { code: string; proof: string[] } };
      expect(Object.keys(error).sort()).to.deep.equal(['code', 'exitStatus', 'message', 'proof']);
      expect(error.code).to.equal('MEASUREMENT_NOT_TRUSTED');
      expect(error.proof.join('\n')).to.match(/platformKey key:[0-9a-f]{16} says attestKey key:[0-9a-f]{16} is-trusted-for-attestation/);
    });

    it('make-policy refuses a platform certificate that has ended or not begun (CERT_EXPIRED), and warns of one ending before the claims', async () => {
      const plat = await generateSimulatedPlatform({ alg: 'p256' });
      writeFileSync(p('plat-ended.pem'), toPem(platformCertificate(plat.platformKey, { now: new Date('2020-01-01'), days: 30 })));
      writeFileSync(p('plat-later.pem'), toPem(platformCertificate(plat.platformKey, { now: new Date(Date.now() + 400 * DAY), days: 30 })));
      writeFileSync(p('plat-short.pem'), toPem(platformCertificate(plat.platformKey, { days: 30 })));
      const policy = (f: string) => cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--trust-platform', f, '--trust-measurement', M, '--out', `${f}.policy.bin`]);
      for (const f of ['plat-ended.pem', 'plat-later.pem']) {
        const r = await policy(f);
        expect(r.status, r.stderr).to.equal(4);
        expect(r.stderr).to.contain(`the platform certificate ${f} is valid from`).and.to.contain('[CERT_EXPIRED]');
        expect(existsSync(p(`${f}.policy.bin`))).to.equal(false);
      }
      // Not begun for 400 days: this machine's clock is likely behind, and says so.
      expect((await policy('plat-later.pem')).stderr).to.match(/is valid from \S+ to \S+, not now \(checked at \S+ by this machine's clock\): this machine's clock is probably at least 400 days behind that of the machine that made it: set it right \(NTP, e\.g\. chrony; README "Clocks"\) \[CERT_EXPIRED\]/);
      const short = await policy('plat-short.pem');
      expect(short.status, short.stderr).to.equal(0);
      expect(short.stderr).to.contain("cert-utility: warning: the platform certificate plat-short.pem ends at").and.to.contain("before the policy's claims");
    });

    it('says when what it makes ends earlier than asked (issue-cert, issue-role-cert, make-policy) and when a verified policy\'s claims are not in force (print-policy)', async () => {
      expect((await cu(['generate-policy-key', '--domain', 'datica', '--key-out', 'short-key.pem', '--cert-out', 'short-cert.pem', '--days', '1'])).status).to.equal(0);
      const short = ['--policy-key', 'short-key.pem', '--policy-cert', 'short-cert.pem'];
      const cert = await cu(['issue-cert', ...short, '--public-key', 'platform/platform-cert.pem', '--measurement', M, '--days', '90', '--out', 'short-machine.pem']);
      expect(cert.status, cert.stderr).to.equal(0);
      expect(cert.stderr).to.match(/warning: the certificate ends at \S+, with the policy certificate, not after --days 90/);
      const role = await cu(['issue-role-cert', ...short, '--public-key', 'platform/platform-cert.pem', '--role', 'operator', '--days', '365', '--out', 'short-role.pem']);
      expect(role.status, role.stderr).to.equal(0);
      expect(role.stderr).to.match(/warning: the certificate ends at \S+, with the policy certificate, not after --days 365/);
      const policy = await cu(['make-policy', ...short, '--trust-platform', 'platform/platform-cert.pem', '--trust-measurement', M, '--out', 'short-policy.bin']);
      expect(policy.status, policy.stderr).to.equal(0);
      expect(policy.stderr).to.contain('warning: the policy certificate ends at').and.to.contain('before the claims');
      // A policy whose claims ended yesterday still verifies, and print-policy says they ended.
      const key = importPrivateKey(readFileSync(p('policy-key.pem')));
      const DAY = 86_400_000;
      writeFileSync(p('ended-policy.bin'), makePolicy({ policyKey: key, policyCert: policyCertDer, platforms: [], measurements: [Buffer.from(M, 'hex')], notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) }));
      const printed = await cu(['print-policy', '--policy', 'ended-policy.bin', '--policy-cert', 'policy-cert.pem', '--json']);
      expect(printed.status, printed.stderr).to.equal(0);
      expect(printed.json()).to.include({ claims: 1, ended: 1, notYet: 0 });
      expect(printed.stderr).to.contain('1 of the policy\'s 1 claims have ended');
    });

    it('simpleserver goes on certifying when whatever reads its log goes away (stderr closed: EPIPE)', async () => {
      const child = spawn(process.execPath, [join(ROOT, 'cmd', 'bin', 'simpleserver.js'), 'serve', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--policy', 'policy.bin', '--listen', '127.0.0.1:0'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let exit: number | null | undefined;
      child.on('exit', (code) => (exit = code));
      try {
        let out = '';
        const port = await new Promise<number>((resolve) => child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /^listening \S+:(\d+)$/m.exec(out);
          if (m) resolve(Number(m[1]));
        }));
        child.stderr.destroy(); // a `| head` or log shipper that has gone
        for (const store of ['stores/epipe-1', 'stores/epipe-2']) {
          const r = await initTrust(store, { port });
          expect(r.status, r.stderr).to.equal(0);
        }
        expect(exit, 'still serving').to.equal(undefined);
      } finally {
        child.kill('SIGTERM');
      }
    });

    it('measure prints one line per file, a name\'s newline or escape sequence escaped', async () => {
      writeFileSync(p('two\nlines'), 'x');
      writeFileSync(p('red\u001b[31m'), 'y');
      const r = await cu(['measure', 'two\nlines', 'red\u001b[31m']);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.out.split('\n')).to.deep.equal([
        `${createHash('sha256').update('x').digest('hex')}  two\\u000alines`, `${createHash('sha256').update('y').digest('hex')}  red\\u001b[31m`, '']);
    });

    it('--measurement-file takes the raw 32 or 48 bytes, or their hex (either case, a trailing LF or CRLF), and refuses anything else (INVALID_INPUT)', async () => {
      // The sealed store of the first init-trust, sealed to M read from the raw 32 bytes: the same M as hex opens it.
      writeFileSync(p('m-hex.txt'), `${M}\n`);
      writeFileSync(p('m-upper.txt'), `${M.toUpperCase()}\r\n`);
      for (const file of ['m-hex.txt', 'm-upper.txt']) {
        const r = await cu(['list-items', ...sealed('stores/machine', 'platform', file)]);
        expect(r.status, `${file}: ${r.stderr}`).to.equal(0);
        expect(r.out).to.contain('datica-admission-certificate');
      }
      // Another measurement as hex does not open it.
      writeFileSync(p('m2-hex.txt'), `${M2}\n`);
      expectRefused(await cu(['list-items', ...sealed('stores/machine', 'platform', 'm2-hex.txt')]), 4, 'WRONG_KEY');
      // 48 raw bytes, or 96 hex digits, are a measurement too: an SEV-SNP one, which the simulated platform refuses as such.
      writeFileSync(p('m-48.bin'), Buffer.alloc(48, 0x4d));
      writeFileSync(p('m-96.txt'), 'ab'.repeat(48));
      const long = await Promise.all(['m-48.bin', 'm-96.txt'].map((file) => cu(['list-items', ...sealed('stores/machine', 'platform', file)])));
      for (const r of long) {
        expectRefused(r, 1, 'INVALID_INPUT');
        expect(r.stderr).to.contain('a simulated-enclave measurement is 32 bytes, not 48');
      }
      // Neither: 63 hex digits, 33 raw bytes, hex with a second line, and no bytes at all; nor text
      // that happens to be 32 or 48 bytes long (hex cut short, "0x" and 30 digits), which no hash is.
      const odd: [string, string | Buffer][] = [['m-63.txt', `${M.slice(1)}\n`], ['m-33.bin', Buffer.alloc(33, 1)], ['m-two-lines.txt', `${M}\n${M}\n`], ['m-empty', ''],
        ['m-32-digits.txt', M.slice(0, 32)], ['m-48-digits.txt', `${M.slice(0, 47)}\n`], ['m-0x.txt', `0x${M.slice(0, 30)}`]];
      for (const [file, content] of odd) writeFileSync(p(file), content);
      const runs = await Promise.all(odd.map(([file]) => cu(['list-items', ...sealed('stores/machine', 'platform', file)])));
      runs.forEach((r, i) => {
        expectRefused(r, 1, 'INVALID_INPUT');
        expect(r.stderr).to.contain(`${odd[i]![0]} is not a measurement (32 or 48 raw bytes, or their hex)`);
      });
      expect(runs[4]!.stderr).to.contain('m-32-digits.txt is not a measurement (32 or 48 raw bytes, or their hex): it holds 32 hex digits, where a measurement\'s hex is 64 or 96 digits on one line');
    });

    it('make-policy warns of a measurement no trusted platform can produce (its length), and of a trusted platform no measurement can admit, and writes the policy', async () => {
      const policy = ['--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem'];
      const simulated = await cu(['make-policy', ...policy, '--trust-platform', 'platform/platform-cert.pem', '--trust-measurement', 'ab'.repeat(48), '--out', 'odd-1.bin']);
      expect(simulated.status, simulated.stderr).to.equal(0);
      expect(simulated.stderr).to.contain(`the measurement ${'ab'.repeat(48)} is 48 bytes, which no platform the policy trusts produces (simulated-platform measurements are 32 bytes`);
      const snp = await cu(['make-policy', ...policy, '--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', '--trust-measurement', M, '--out', 'odd-2.bin']);
      expect(snp.status, snp.stderr).to.equal(0);
      expect(snp.stderr).to.contain('SEV-SNP launch measurements are 48 bytes');
      const both = await cu(['make-policy', ...policy, '--trust-platform', 'platform/platform-cert.pem', '--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', '--trust-measurement', M, '--trust-measurement', 'ab'.repeat(48), '--out', 'odd-3.bin']);
      expect(both.status, both.stderr).to.equal(0);
      expect(both.stderr).to.not.contain('which no platform');
      expect(both.stderr).to.not.contain('every machine of it will be refused');
      // Both platforms trusted, a measurement for only one: the other admits nothing, as simpleserver will say at start.
      const one = await cu(['make-policy', ...policy, '--trust-platform', 'platform/platform-cert.pem', '--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', '--trust-measurement', M, '--out', 'odd-4.bin']);
      expect(one.status, one.stderr).to.equal(0);
      expect(one.stderr).to.contain('in the policy written, platform amd-sev-snp: the policy trusts no 48-byte measurement, the size of its machines\': every machine of it will be refused (MEASUREMENT_NOT_TRUSTED)');
      expect(one.stderr).to.not.contain('platform simulated-enclave');
    });

    it('make-policy refuses a measurement, a platform key or an AMD root named twice (USAGE), in any spelling', async () => {
      const base = ['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', 'twice.bin'];
      const cases: [string[], string][] = [
        [['--trust-platform', 'platform/platform-cert.pem', '--trust-measurement', M, '--trust-measurement', M.toUpperCase()], `--trust-measurement ${M} is given twice`],
        [['--trust-platform', 'platform/platform-cert.pem', '--trust-platform', 'platform/platform-cert.pem', '--trust-measurement', M], '--trust-platform platform/platform-cert.pem holds a key named before'],
        [['--trust-amd-root', 'milan', '--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', '--trust-measurement', 'ab'.repeat(48)], 'the AMD root ARK-Milan is named twice'],
        [['--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', '--snp-property', 'abi-version>=1.51', '--snp-property', 'abi-version>=1.52', '--trust-measurement', 'ab'.repeat(48)],
          '--snp-property abi-version>=1.51 and --snp-property abi-version>=1.52 both set abi-version in one claim'],
      ];
      for (const [args, message] of cases) {
        const r = await cu([...base, ...args]);
        expect(r.status, r.stderr).to.equal(2);
        expect(r.stderr).to.contain(message);
        expect(existsSync(p('twice.bin'))).to.equal(false);
      }
    });

    it('make-policy writes an --snp-property given twice alike once, with a warning (it wrote the claim with the property twice, then refused its own policy, POLICY_INVALID)', async () => {
      const r = await cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', 'snp-twice.bin', '--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115',
        '--snp-property', 'guest-svn>=2', '--snp-property', 'guest-svn>=2', '--trust-measurement', 'ab'.repeat(48)]);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.contain('cert-utility: warning: --snp-property guest-svn>=2 is given twice: the policy says it once');
      expect(r.out.match(/guest-svn >= 2/g)).to.have.length(1);
      const printed = await cu(['print-policy', '--policy', 'snp-twice.bin', '--policy-cert', 'policy-cert.pem']);
      expect(printed.status, printed.stderr).to.equal(0);
    });

    it('simpleserver explain --session-binding: a value that is not 64 hex digits is USAGE, another session is SESSION_MISMATCH', async () => {
      const base = ['explain', '--policy', 'policy.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'treq.bin', '--session-binding'];
      for (const bad of ['zz', 'abc', '00'.repeat(31)]) {
        const r = await ss([...base, bad]);
        expect(r.status, r.stderr).to.equal(2);
        expect(r.stderr).to.contain('[USAGE]');
      }
      expectRefusedExplain(await ss([...base, '00'.repeat(32)]), 'SESSION_MISMATCH');
    });
  });

  function expectRefusedExplain(r: RunResult, code: ErrorCode): void {
    expect(r.status, r.stderr).to.equal(ErrorCodes[code]);
    expect(r.out.split('\n')[0]).to.equal(`decision: deny (${code})`);
    expect(r.stderr).to.match(new RegExp(`^simpleserver: error: .*\\[${code}\\]$`, 'm'));
  }

  describe('2. refusals, each with its own code and exit status, while the server keeps serving', () => {
    // For the forgeries driven from this process: the real platform's keys and files.
    let attestKey: ReturnType<typeof importPrivateKey>;
    let platformPublic: ReturnType<typeof publicKeyOf>;
    let endorsement: Uint8Array;
    let measurement: Uint8Array;
    let enclave: SimulatedEnclave;
    const certify = async (platform: Platform) =>
      requestCertificate({ host: '127.0.0.1', port: server.port, policyCert: policyCertDer, platform, authKey: (await generateKeyPair('p256')).privateKey });

    before(() => {
      attestKey = importPrivateKey(readFileSync(p('platform', 'attest-key.pem')));
      platformPublic = publicKeyOf(importPrivateKey(readFileSync(p('platform', 'platform-key.pem'))));
      endorsement = new Uint8Array(readFileSync(p('platform', 'endorsement.bin')));
      measurement = new Uint8Array(readFileSync(p('app.measurement')));
      enclave = SimulatedEnclave.fromFiles(readFileSync(p('platform', 'attest-key.pem')), endorsement, measurement);
    });
    it('a measurement the policy does not trust: MEASUREMENT_NOT_TRUSTED, exit 1', async () => {
      const r = await initTrust('stores/untrusted-measurement', { measurement: 'app2.measurement', extra: ['--save-evidence', 'treq-m2.bin'] });
      expectRefused(r, 1, 'MEASUREMENT_NOT_TRUSTED');
      expect(await waitFor(() => server.log().includes(`decision=deny code=MEASUREMENT_NOT_TRUSTED reason="measurement ${M2} is not trusted by the policy"`)), server.log()).to.equal(true);
      await expectNoStore('stores/untrusted-measurement', 'platform', 'app2.measurement');
      // the refused request was kept, and explain says why
      const why = await ss(['explain', '--policy', 'policy.bin', '--policy-cert', 'policy-cert.pem', '--evidence', 'treq-m2.bin']);
      expectRefusedExplain(why, 'MEASUREMENT_NOT_TRUSTED');
      await serverStillCertifies();
    });

    it('empties again, but keeps, a directory that was there empty (systemd StateDirectory=) or held a cut-short creation, when it is refused', async () => {
      mkdirSync(p('stores/state-dir'));
      expectRefused(await initTrust('stores/state-dir', { measurement: 'app2.measurement' }), 1, 'MEASUREMENT_NOT_TRUSTED');
      expect(readdirSync(p('stores/state-dir'))).to.deep.equal([]);
      mkdirSync(p('stores/cut-short'));
      for (const f of ['LOCK', 'LOG']) writeFileSync(p(`stores/cut-short/${f}`), '');
      expectRefused(await initTrust('stores/cut-short', { measurement: 'app2.measurement' }), 1, 'MEASUREMENT_NOT_TRUSTED');
      expect(readdirSync(p('stores/cut-short'))).to.deep.equal([]);
      // Evidence kept in the store would go with it: refused before anything is sent.
      const inside = await initTrust('stores/evidence-inside', { extra: ['--save-evidence', 'stores/evidence-inside/treq.bin'] });
      expect(inside.status, inside.stderr).to.equal(1);
      expect(inside.stderr).to.contain('is inside stores/evidence-inside').and.contain('[INVALID_INPUT]');
    });

    /** Runs init-trust making `store`, and sends `signal` once it waits for the server; resolves with the signal it died of. */
    async function stoppedWhileWaiting(store: string, signal: NodeJS.Signals): Promise<NodeJS.Signals | null> {
      // Accepts, then says nothing: the TLS handshake waits. A connection means the store is made
      // (LevelDB's first files alone would not: a run stopped then leaves an unfinished store).
      let connected = false;
      const hang = net.createServer(() => void (connected = true));
      await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
      try {
        const port = (hang.address() as net.AddressInfo).port;
        const child = spawn(process.execPath, [join(ROOT, 'cmd', 'bin', 'cert-utility.js'), 'init-trust', '--domain', 'datica', '--policy-cert', 'policy-cert.pem',
          '--server', `127.0.0.1:${port}`, ...sealed(store)], { cwd: dir, stdio: 'ignore' });
        const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
        for (let i = 0; i < 200 && !connected; i++) await new Promise((r) => setTimeout(r, 50));
        expect(existsSync(p(store, 'CURRENT')), 'the store was made').to.equal(true);
        child.kill(signal);
        return await exited;
      } finally {
        hang.close();
      }
    }

    it('removes the store it made when it is stopped (SIGTERM) while waiting for the server', async () => {
      expect(await stoppedWhileWaiting('stores/stopped', 'SIGTERM')).to.equal('SIGTERM');
      expect(existsSync(p('stores/stopped')), 'the store it made is gone').to.equal(false);
    });

    it('removes the folders it made above the store too (--store new/nested/store) when it is stopped (SIGINT), as a failure does', async () => {
      expect(await stoppedWhileWaiting('stores/stopped-above/nested/store', 'SIGINT')).to.equal('SIGINT');
      expect(existsSync(p('stores/stopped-above')), 'a folder it made is left').to.equal(false);
      expect(existsSync(p('stores')), 'a folder that was there').to.equal(true);
    });

    it('has made nothing, not even the folders above the store, when it is stopped (SIGTERM) while it derives the store\'s key', async () => {
      writeFileSync(p('stop.pass'), 'correct horse battery staple\n', { mode: 0o600 });
      // The signal goes once the child says scrypt has begun (announce-scrypt), not after a guessed time.
      const env = { ...process.env, NODE_OPTIONS: `--import ${join(ROOT, 'test/support/announce-scrypt.mjs')}` };
      const child = spawn(process.execPath, [join(ROOT, 'cmd', 'bin', 'cert-utility.js'), 'init-trust', '--domain', 'datica', '--policy-cert', 'policy-cert.pem',
        '--server', `127.0.0.1:${server.port}`, '--store', 'stores/scrypt-stopped/nested/store', '--passphrase-file', 'stop.pass', '--platform-dir', 'platform', '--measurement-file', 'app.measurement'],
      { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
      const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (stderr.includes('SCRYPT_STARTED\n')) child.kill('SIGTERM');
      });
      expect(await exited, stderr).to.equal('SIGTERM');
      expect(existsSync(p('stores/scrypt-stopped')), 'a folder above the store').to.equal(false);
    });

    it('keeps a store it did not make when it is refused, with what it held', async () => {
      expect((await cu(['create-store', ...sealed('stores/made-before', 'platform', 'app2.measurement')])).status).to.equal(0);
      expect((await cu(['put-item', ...sealed('stores/made-before', 'platform', 'app2.measurement'), '--tag', 'kept', '--in', 'app.measurement'])).status).to.equal(0);
      expectRefused(await initTrust('stores/made-before', { measurement: 'app2.measurement' }), 1, 'MEASUREMENT_NOT_TRUSTED');
      const r = await cu(['list-items', ...sealed('stores/made-before', 'platform', 'app2.measurement'), '--json']);
      expect(r.json().items.map((i: { tag: string }) => i.tag)).to.deep.equal(['kept']);
    });

    it('a platform key the policy does not trust: PLATFORM_NOT_TRUSTED, exit 1', async () => {
      const r = await initTrust('stores/untrusted-platform', { platformDir: 'platform-untrusted' });
      expectRefused(r, 1, 'PLATFORM_NOT_TRUSTED');
      expect(await waitFor(() => server.log().includes('decision=deny code=PLATFORM_NOT_TRUSTED')), server.log()).to.equal(true);
      await expectNoStore('stores/untrusted-platform', 'platform-untrusted');
      await serverStillCertifies();
    });

    it('the server refuses an endorsement naming the trusted platform key but signed by another: ENDORSEMENT_INVALID, exit status 4', async () => {
      const impostor = await generateKeyPair('p256');
      const clause = saysClause(keyEntity(platformPublic, 'platformKey'), simpleClause(keyEntity(attestKey, 'attestKey'), 'is-trusted-for-attestation'));
      const sc = signClaim({ signer: impostor.privateKey, signerName: 'platformKey', clause, notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) });
      sc.signingKey = toKeyMessage(platformPublic, 'platformKey'); // claims to be the trusted key
      const forged = new SimulatedEnclave(attestKey, encode('signed_claim_message', sc), measurement);
      const e = await expectThrown(certify(forged), 'ENDORSEMENT_INVALID');
      expect(e.exitStatus).to.equal(4);
      expect(await waitFor(() => server.log().includes('decision=deny code=ENDORSEMENT_INVALID')), server.log()).to.equal(true);
      await serverStillCertifies();
    });

    it('the server refuses a report signed by an attestation key the platform did not endorse: REPORT_INVALID, exit status 4', async () => {
      const rogue = await generateKeyPair('p256');
      const e = await expectThrown(certify(new SimulatedEnclave(rogue.privateKey, endorsement, measurement)), 'REPORT_INVALID');
      expect(e.exitStatus).to.equal(4);
      expect(await waitFor(() => server.log().includes('decision=deny code=REPORT_INVALID')), server.log()).to.equal(true);
      await serverStillCertifies();
    });

    it('init-trust refuses a tampered endorsement.bin before sending anything: ENDORSEMENT_INVALID, exit 4', async () => {
      mkdirSync(p('platform-tampered'));
      writeFileSync(p('platform-tampered', 'attest-key.pem'), readFileSync(p('platform', 'attest-key.pem')));
      const bad = new Uint8Array(endorsement);
      bad[bad.length - 5]! ^= 0x01; // inside the signature
      writeFileSync(p('platform-tampered', 'endorsement.bin'), bad);
      const before = certifications();
      const r = await initTrust('stores/tampered-endorsement', { platformDir: 'platform-tampered' });
      expectRefused(r, 4, 'ENDORSEMENT_INVALID');
      expect(r.stderr).to.contain('the endorsement file');
      expect(existsSync(p('stores/tampered-endorsement')), 'no store was made').to.equal(false);
      expect(certifications(), 'nothing reached the server').to.equal(before);
      await serverStillCertifies();
    });

    it('expired claims (an endorsement that ended two years ago, on a platform the policy trusts): CLAIM_EXPIRED, exit 4', async () => {
      const r = await initTrust('stores/expired', { platformDir: 'platform-expired' });
      expectRefused(r, 4, 'CLAIM_EXPIRED');
      expect(await waitFor(() => /decision=deny code=CLAIM_EXPIRED reason="the endorsement is valid from /.test(server.log())), server.log()).to.equal(true);
      await expectNoStore('stores/expired', 'platform-expired');
      await serverStillCertifies();
    });

    it('a policy file whose signature does not verify: simpleserver serve refuses to start with POLICY_INVALID, exit 4, one line', async () => {
      const bad = new Uint8Array(readFileSync(p('policy.bin')));
      bad[bad.length - 5]! ^= 0x01; // inside the last claim's signature
      writeFileSync(p('policy-tampered.bin'), bad);
      const s = await startSimpleserver(['serve', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--policy', 'policy-tampered.bin', '--listen', '127.0.0.1:0'], dir);
      if (!('exited' in s)) {
        await s.stop();
        expect.fail('simpleserver started with a tampered policy');
      }
      expect(s.exited.status).to.equal(4);
      expect(s.out).to.equal('');
      const lines = s.log.trimEnd().split('\n');
      expect(lines, s.log).to.have.length(1);
      expect(lines[0]).to.match(/^simpleserver: error: policy claim \d+: the signature does not verify \[POLICY_INVALID\]$/);
      await serverStillCertifies();
    });

    it('a port another process holds: simpleserver serve refuses to start with ADDRESS_IN_USE (not bad input), exit 1, one line', async () => {
      const taken = net.createServer();
      await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
      try {
        const port = (taken.address() as net.AddressInfo).port;
        const r = await ss(['serve', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--policy', 'policy.bin', '--listen', `127.0.0.1:${port}`]);
        expect([r.status, r.out], r.stderr).to.deep.equal([1, '']);
        expect(r.stderr).to.equal(`simpleserver: error: cannot listen on 127.0.0.1:${port}: address already in use: another process holds that port (stop it, or give --listen another port) [ADDRESS_IN_USE]\n`);
      } finally {
        await new Promise((r) => taken.close(r));
      }
    });

    it('evidence whose session binding is not this connection\'s TLS exporter: SESSION_MISMATCH, exit status 4', async () => {
      const relayed = new RewritingPlatform(enclave, (ud) => ({ ...ud, sessionBinding: randomBytes(32) }));
      const e = await expectThrown(certify(relayed), 'SESSION_MISMATCH');
      expect(e.exitStatus).to.equal(4);
      expect(await waitFor(() => server.log().includes('decision=deny code=SESSION_MISMATCH reason="the evidence is bound to a different TLS session')), server.log()).to.equal(true);
      await serverStillCertifies();
    });

    it('evidence without a session binding on a TLS connection: SESSION_MISMATCH', async () => {
      const unbound = new RewritingPlatform(enclave, (ud) => {
        const { sessionBinding: _, ...rest } = ud;
        return rest;
      });
      const e = await expectThrown(certify(unbound), 'SESSION_MISMATCH');
      expect(e.exitStatus).to.equal(4);
      expect(await waitFor(() => server.log().includes('decision=deny code=SESSION_MISMATCH reason="the evidence is not bound to a TLS session')), server.log()).to.equal(true);
      await serverStillCertifies();
    });

    it('a replay: evidence that certified a key on one connection, sent again on another: SESSION_MISMATCH', async () => {
      const replaying = new ReplayingPlatform(enclave);
      const authKey = (await generateKeyPair('p256')).privateKey;
      const got = await requestCertificate({ host: '127.0.0.1', port: server.port, policyCert: policyCertDer, platform: replaying, authKey });
      expect(got.peer.measurementHex).to.equal(M);
      let replayed: Uint8Array | undefined;
      const e = await expectThrown(requestCertificate({ host: '127.0.0.1', port: server.port, policyCert: policyCertDer, platform: replaying, authKey, onRequest: (r) => (replayed = r) }), 'SESSION_MISMATCH');
      expect(e.exitStatus).to.equal(4);
      // what the second connection carried was the first connection's request, byte for byte
      expect(toHex(replayed!)).to.equal(toHex(got.request));
      await serverStillCertifies();
    });

    it('a server certificate not chained to the pinned policy certificate (client side): UNTRUSTED_PEER, exit 4', async () => {
      const before = certifications();
      const r = await initTrust('stores/other-policy-cert', { policyCert: 'other-policy-cert.pem' });
      expectRefused(r, 4, 'UNTRUSTED_PEER');
      expect(r.stderr).to.contain('not issued under the trusted root').and.contain('one side has the other policy certificate');
      expect(certifications(), 'no evidence was sent').to.equal(before);
      await expectNoStore('stores/other-policy-cert');
      await serverStillCertifies();
    });

    it('the same server process served every one of these and is still running', () => {
      expect(server.exitStatus()).to.equal(undefined);
      expect(count(server.log(), / certification conn=\S+ remote=\S+ decision=allow /)).to.be.at.least(stores + 1);
    });
  });

  describe('3. the original tools\' vectors over the original plain protocol', () => {
    const V = (f: string) => join(VECTORS, 'certifier-original', f);
    const VALID_UNTIL = new Date('2027-11-01T00:00:00Z');
    const valid = Date.now() < VALID_UNTIL.getTime();
    let original: ServerProcess | undefined;

    before(async function () {
      if (!valid) return;
      original = await mustStart(['serve', '--plain', '--policy-key', V('policy_key_file'), '--policy-cert', V('policy_cert_file.datica'),
        '--policy', V('policy.bin'), '--listen', '127.0.0.1:0'], dir);
    });
    after(async () => {
      if (original) expect((await original.stop()).status, original.log()).to.equal(0);
    });

    /** Sends one framed request over plain TCP; returns the framed answer's body and whether the server then closed. */
    function exchange(port: number, body: Uint8Array): Promise<{ answer: Buffer; closedAfter: boolean }> {
      return new Promise((resolve, reject) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        const header = Buffer.alloc(4);
        header.writeUInt32LE(body.length, 0); // 4-byte little-endian length, then the body
        let buf = Buffer.alloc(0);
        let answer: Buffer | undefined;
        const timer = setTimeout(() => {
          sock.destroy();
          if (answer) resolve({ answer, closedAfter: false });
          else reject(new Error('no answer within 10 s'));
        }, 10_000);
        sock.on('connect', () => sock.write(Buffer.concat([header, body])));
        sock.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (!answer && buf.length >= 4 && buf.length >= 4 + buf.readUInt32LE(0)) answer = buf.subarray(4, 4 + buf.readUInt32LE(0));
        });
        sock.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        sock.on('end', () => {
          clearTimeout(timer);
          sock.destroy();
          if (answer) resolve({ answer, closedAfter: true });
          else reject(new Error(`the server closed after ${buf.length} bytes without a whole answer`));
        });
      });
    }

    (valid ? it : it.skip)(valid
      ? 'simpleserver serve --plain with the original policy key, certificate and policy certifies the auth-key of treq.bin'
      : `skipped: the original vectors' validity has ended (treq.bin's report is valid until November 2027; today is past ${VALID_UNTIL.toISOString().slice(0, 10)})`, async () => {
      expect(original!.log()).to.contain('simpleserver: warning: serving the original plain-TCP protocol');
      expect(original!.log()).to.match(/^simpleserver: domain datica, 1 trusted platform\(s\), 1 trusted measurement\(s\), the first claim ending \d{4}-\d\d-\d\dT[\d:.]+Z, the policy certificate ending \d{4}-\d\d-\d\dT[\d:.]+Z, plain TCP$/m);
      const treq = new Uint8Array(readFileSync(V('treq.bin')));
      const { answer, closedAfter } = await exchange(original!.port, treq);
      expect(closedAfter, 'one request per connection: the server closes after answering').to.equal(true);
      const resp = parseTrustResponse(answer);
      expect(resp.status, resp.errorCode).to.equal('succeeded');
      expect(resp.requestingEnclaveTag).to.equal('requesting-enclave');
      expect(resp.providingEnclaveTag).to.equal('providing-enclave');

      // the key named in the report's user data is the key certified
      const req = parseTrustRequest(treq);
      const sr = decode<SignedReport>('signed_report', req.support.factAssertion.find((f) => f.evidenceType === 'signed-vse-attestation-report')!.serializedEvidence);
      const ud = decode<AttestationUserData>('attestation_user_data', decode<VseAttestationReportInfo>('vse_attestation_report_info', sr.report!).userData!);
      expect(ud.enclaveKey!.keyName).to.equal('auth-key');
      const der = new Uint8Array(resp.artifact!);
      expect(sameKey(parseCertificate(der).publicKey, fromKeyMessage(ud.enclaveKey!))).to.equal(true);

      const policyCert = new Uint8Array(readFileSync(V('policy_cert_file.datica')));
      const peer = validateAdmission({ chain: [der], policyCert, at: new Date(), usage: 'client' });
      expect(peer.measurementHex).to.equal(toHex(readFileSync(V('cf_utility.measurement'))));
      writeFileSync(p('original-policy-cert.pem'), toPem(policyCert));
      expect(await opensslVerify(dir, der, p('original-policy-cert.pem'), 'original-admission')).to.equal(`${p('original-admission.pem')}: OK`);
      expect(original!.log()).to.match(/certification conn=\S+ remote=\S+ decision=allow measurement=61bd9182736776eea1304accc7c6aae5ba57e427838586c149a1c05bdd8be65c /);
    });
  });

  describe('--plain on both sides', () => {
    it('simpleserver says it serves plain TCP at start, and init-trust --plain gets certified', async () => {
      const plain = await mustStart(['serve', '--plain', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--policy', 'policy.bin', '--listen', '127.0.0.1:0'], dir);
      try {
        expect(plain.log()).to.match(/^simpleserver: warning: serving the original plain-TCP protocol: no TLS, and evidence is not bound to a session/m);
        expect(plain.log()).to.match(/listening host=127\.0\.0\.1 port=\d+ transport=plain /);
        expect(plain.log()).to.match(/, plain TCP$/m);
        const r = await initTrust('stores/plain', { port: plain.port, extra: ['--plain'] });
        expect(r.status, r.stderr).to.equal(0);
        expect(r.stderr).to.contain('cert-utility: warning: plain TCP: no TLS, and the evidence is not bound to a session');
        expect(r.out).to.match(new RegExp(`^certified: serial [0-9a-f]+, measurement ${M}, `));
        expect(plain.log()).to.match(/certification conn=\S+ remote=\S+ decision=allow /);
        // Without --plain, the plain server says it is one: UNSUPPORTED (exit 1), not a retryable close.
        const tls = await initTrust('stores/tls-vs-plain', { port: plain.port });
        expect(tls.status, tls.stderr).to.equal(1);
        expect(tls.stderr).to.contain('does not speak TLS 1.3 (ERR_SSL_WRONG_VERSION_NUMBER): what answered is no TLS server (a simpleserver --plain, to which only init-trust --plain speaks').and.to.contain('[UNSUPPORTED]');
      } finally {
        expect((await plain.stop()).status, plain.log()).to.equal(0);
      }
    });
  });

  it('init-trust --plain against a TLS simpleserver fails at once (UNREACHABLE, exit 3) and says a TLS server closes plain connections so', async () => {
    const r = await initTrust('stores/plain-vs-tls', { port: server.port, extra: ['--plain'] });
    expect(r.status, r.stderr).to.equal(3);
    expect(r.stderr).to.match(/closed the connection before answering: a server that speaks TLS closes a plain-TCP connection this way \[UNREACHABLE\]/);
  });

  it('init-trust --plain against another service (an SSH banner, an HTTP answer) says what answered is no Certifier server, naming its first bytes, and leaves no store', async () => {
    const services: [string, (c: net.Socket) => void][] = [
      ['SSH-', (c) => c.end('SSH-2.0-OpenSSH_9.6\r\n')],
      ['HTTP', (c) => c.once('data', () => c.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'))],
    ];
    // Read to the end, so that each connection closes once the client has gone (and the server with it).
    const serve = (answer: (c: net.Socket) => void) => (c: net.Socket) => (answer(c), c.resume());
    for (const [first, answer] of services) {
      const other = net.createServer(serve(answer));
      await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
      const port = (other.address() as net.AddressInfo).port;
      try {
        const r = await initTrust('stores/plain-vs-other', { port, extra: ['--plain'] });
        expectRefused(r, 1, 'FRAME_TOO_LARGE');
        expect(r.stderr).to.contain(`127.0.0.1:${port} answered with what is no Certifier message (its first bytes, "${first}", announce a message of`)
          .and.to.contain('is --server the address of a simpleserver --plain?');
        await expectNoStore('stores/plain-vs-other');
      } finally {
        await new Promise((r) => other.close(r));
      }
    }
  });

  describe('--log-json', () => {
    it('makes every line simpleserver writes on stderr a JSON record, warnings and its start and stop included', async () => {
      const s = await mustStart(['serve', '--plain', '--log-json', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--policy', 'policy.bin', '--listen', '127.0.0.1:0'], dir);
      const r = await initTrust('stores/log-json', { port: s.port, extra: ['--plain'] });
      expect(r.status, r.stderr).to.equal(0);
      expect((await s.stop()).status, s.log()).to.equal(0);
      const records = s.log().trim().split('\n').map((l) => JSON.parse(l) as { event: string; message?: string });
      const events = records.map((x) => x.event);
      expect(events).to.include.members(['warning', 'note', 'listening', 'certification', 'stopped']);
      expect(records.find((x) => x.event === 'warning')!.message).to.contain('plain-TCP protocol');
      expect(records.filter((x) => x.event === 'note').map((x) => x.message)).to.include('SIGTERM: finishing requests in flight, then stopping');
      // A start that fails ends with a JSON record too, not a text line.
      const bad = await ss(['serve', '--log-json', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--policy', 'no-such-policy.bin', '--listen', '127.0.0.1:0']);
      expect(bad.status).to.equal(1);
      for (const line of bad.stderr.trim().split('\n')) expect(() => JSON.parse(line), line).not.to.throw();
      expect(JSON.parse(bad.stderr.trim().split('\n').at(-1)!)).to.include({ event: 'error', code: 'FILE_ERROR' });
    });

    it('is read as a flag only where it is one: a file named --log-json leaves the error a text line', async () => {
      const r = await ss(['serve', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--policy', '--log-json', '--listen', '127.0.0.1:0']);
      expect(r.status).to.equal(1);
      expect(r.stderr).to.match(/^simpleserver: error: .*--log-json.* \[FILE_ERROR\]$/m);
    });
  });

  describe('4. init-trust on a certified store', () => {
    it('refuses --save-evidence naming an existing file (a key file, say) before certifying: ALREADY_EXISTS, the file and the store untouched', async () => {
      writeFileSync(p('precious.key'), 'do not replace me');
      const before = certifications();
      const r = await initTrust('stores/evidence-taken', { extra: ['--save-evidence', 'precious.key', '--force'] });
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.contain('[ALREADY_EXISTS]');
      expect(readFileSync(p('precious.key'), 'utf8')).to.equal('do not replace me');
      expect(certifications(), 'no request was sent').to.equal(before);
      const missingDir = await initTrust('stores/evidence-taken', { extra: ['--save-evidence', 'no-such-dir/ev.bin'] });
      expect(missingDir.status, missingDir.stderr).to.equal(1);
      expect(missingDir.stderr).to.contain('[FILE_ERROR]');
      expect(certifications()).to.equal(before);
    });

    it('says "already certified" for a short-lived certificate too (2 days): renewed past half its life, not at every run', async () => {
      const short = await mustStart(['serve', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--policy', 'policy.bin', '--listen', '127.0.0.1:0', '--cert-days', '2'], dir);
      try {
        const r1 = await initTrust('stores/short-lived', { port: short.port });
        expect(r1.status, r1.stderr).to.equal(0);
        const r2 = await initTrust('stores/short-lived', { port: short.port });
        expect(r2.status, r2.stderr).to.equal(0);
        expect(r2.out).to.match(/^already certified \(serial [0-9a-f]+, valid until [^)]+\); nothing to do\n$/);
      } finally {
        await short.stop();
      }
    });

    it('says "already certified", exits 0, sends nothing and leaves exactly version 1 of both items', async () => {
      const listBefore = (await cu(['list-items', ...sealed('stores/machine'), '--json'])).json().items;
      const before = certifications();
      const r = await initTrust('stores/machine');
      expect(r.status, r.stderr).to.equal(0);
      const serial = /serial ([0-9a-f]+)/.exec(first.out)![1]!;
      expect(r.out).to.match(new RegExp(`^already certified \\(serial ${serial}, valid until [^)]+\\); nothing to do\n$`));
      expect(certifications(), 'no request was sent').to.equal(before);
      const after = await cu(['list-items', ...sealed('stores/machine'), '--json']);
      expect(after.status, after.stderr).to.equal(0);
      const items = after.json().items as { tag: string; version: number }[];
      expect(items.map((i) => `${i.tag} v${i.version}`)).to.deep.equal(['datica-admission-certificate v1', 'datica-private-auth-key v1']);
      expect(items, 'nothing changed, not even the times').to.deep.equal(listBefore);
      const again = await cu(['get-item', ...sealed('stores/machine'), '--tag', 'datica-admission-certificate', '--out', 'cert-again.der']);
      expect(again.status, again.stderr).to.equal(0);
      expect(readFileSync(p('cert-again.der')).equals(readFileSync(p('cert.der')))).to.equal(true);
    });
  });

  describe('5. issue-cert: a certificate the rest of the suite accepts like one from simpleserver', () => {
    it('generate-key in a store, issue-cert for its public key, put-item the DER: loadIdentity, validateAdmission, openssl and init-trust accept it', async () => {
      const ok = (r: RunResult) => {
        expect(r.status, r.stderr).to.equal(0);
        return r;
      };
      const keyed = ['--store', 'stores/offline', '--key-file', 'store.key'];
      ok(await cu(['new-key-file', '--out', 'store.key']));
      ok(await cu(['create-store', ...keyed]));
      const gen = ok(await cu(['generate-key', ...keyed, '--tag', 'datica-private-auth-key', '--alg', 'p256']));
      const pem = /-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n/.exec(gen.out);
      expect(pem, gen.out).to.not.equal(null);
      writeFileSync(p('offline.pub.pem'), pem![0]);

      const issued = ok(await cu(['issue-cert', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--public-key', 'offline.pub.pem',
        '--measurement', M, '--out', 'offline-cert.pem', '--json']));
      expect(issued.json().certificate.admission).to.deep.equal({ measurement: M, platform: 'issued-offline', domain: 'datica' });
      const der = readCertificate(readFileSync(p('offline-cert.pem')));
      writeFileSync(p('offline-cert.der'), der);
      ok(await cu(['put-item', ...keyed, '--tag', 'datica-admission-certificate', '--type', 'X509-der-cert', '--in', 'offline-cert.der']));

      // lib/certifier's loadIdentity: the stored key and certificate belong together and chain to the policy
      const store = await Cryptstore.open(p('stores/offline'), new KeyFileProtector(new Uint8Array(readFileSync(p('store.key'))), 'store.key'));
      try {
        const id = await loadIdentity(store, 'datica', policyCertDer);
        expect(id.peer.measurementHex).to.equal(M);
        expect(toHex(id.certificate)).to.equal(toHex(der));
      } finally {
        await store.close();
      }
      for (const usage of ['client', 'server'] as const) {
        expect(validateAdmission({ chain: [der], policyCert: policyCertDer, at: new Date(), usage }).measurementHex).to.equal(M);
      }
      expect(await opensslVerify(dir, der, p('policy-cert.pem'), 'offline-check')).to.equal(`${p('offline-check.pem')}: OK`);

      // the same shape as simpleserver's certificate: only serial, key, times and platform differ
      const [a, b] = await Promise.all([cu(['show-cert', 'offline-cert.pem', '--json']), cu(['show-cert', 'cert.der', '--json'])]);
      const shape = (c: Record<string, unknown>) => ({ subject: c.subject, issuer: c.issuer, isCA: c.isCA, keyUsage: c.keyUsage, extKeyUsage: c.extKeyUsage });
      expect(shape(ok(a).json().certificate)).to.deep.equal(shape(ok(b).json().certificate));

      // init-trust finds the machine certified and asks no one (the --server port is never used)
      const before = certifications();
      const r = ok(await cu(['init-trust', '--domain', 'datica', '--policy-cert', 'policy-cert.pem', '--server', `127.0.0.1:${server.port}`, ...keyed,
        '--platform-dir', 'platform', '--measurement-file', 'app.measurement']));
      expect(r.out).to.match(/^already certified \(serial [0-9a-f]+, valid until /);
      expect(certifications()).to.equal(before);
    });

    it('refuses a certificate put in by hand as a blob (USAGE), names the item and the fix for one stored so, and calls a certificate for another key INVALID_KEY', async () => {
      const keyed = ['--store', 'stores/offline', '--key-file', 'store.key'];
      const listed = async () => (await cu(['list-items', ...keyed, '--json'])).json().items.map((i: { tag: string; version: number }) => `${i.tag} v${i.version}`);
      const before = await listed();
      writeFileSync(p('other.pub.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));
      expect((await cu(['issue-cert', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--public-key', 'other.pub.pem', '--measurement', M, '--out', 'other-cert.pem'])).status).to.equal(0);
      const blob = await cu(['put-item', ...keyed, '--tag', 'datica-admission-certificate', '--in', 'offline-cert.pem']);
      expect(blob.status, blob.stderr).to.equal(2);
      expect(blob.stderr).to.contain('give --type X509-der-cert').and.contain('[USAGE]');
      expect(await listed()).to.deep.equal(before);

      // One stored as a blob all the same (by an older version, or through the library)
      const store = await Cryptstore.open(p('stores/offline'), new KeyFileProtector(new Uint8Array(readFileSync(p('store.key'))), 'store.key'));
      try {
        await store.put('datica-admission-certificate', new Uint8Array(readFileSync(p('offline-cert.pem'))), { type: 'binary-blob' });
        const e = await loadIdentity(store, 'datica', policyCertDer).then(() => undefined, (x: CertifierError) => x);
        expect(e?.code).to.equal('BAD_CERTIFICATE');
        expect(e?.message).to.contain('datica-admission-certificate in its cryptstore, a binary-blob item').and.contain('put-item --tag datica-admission-certificate --type X509-der-cert');
        // a certificate issued for another key: a pair that does not belong together
        await store.put('datica-admission-certificate', readCertificate(readFileSync(p('other-cert.pem'))), { type: 'X509-der-cert' });
        const m = await loadIdentity(store, 'datica', policyCertDer).then(() => undefined, (x: CertifierError) => x);
        expect(m?.code).to.equal('INVALID_KEY');
        expect(m?.message).to.contain('does not name the stored key (datica-private-auth-key)');
      } finally {
        await store.close();
      }
      // init-trust leaves such a pair for the operator to mend (exit 1), certifying nothing
      const n = certifications();
      const r = await cu(['init-trust', '--domain', 'datica', '--policy-cert', 'policy-cert.pem', '--server', `127.0.0.1:${server.port}`, ...keyed,
        '--platform-dir', 'platform', '--measurement-file', 'app.measurement']);
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.contain('[INVALID_KEY]');
      expect(certifications()).to.equal(n);
      // mended with the PEM, which put-item stores as DER
      expect((await cu(['put-item', ...keyed, '--tag', 'datica-admission-certificate', '--type', 'X509-der-cert', '--in', 'offline-cert.pem'])).status).to.equal(0);
      expect((await cu(['init-trust', '--domain', 'datica', '--policy-cert', 'policy-cert.pem', '--server', `127.0.0.1:${server.port}`, ...keyed,
        '--platform-dir', 'platform', '--measurement-file', 'app.measurement'])).out).to.match(/^already certified/);
    });

    it('refuses, as simpleserver does, a certificate its policy certificate would end in under a minute: CERT_EXPIRED, nothing written', async () => {
      const key = importPrivateKey(readFileSync(p('policy-key.pem')));
      // The same policy key, in a policy certificate that ends 30 s from now.
      writeFileSync(p('ending-policy-cert.pem'), toPem(await createPolicyCert({ privateKey: key, domain: 'datica', days: 1, now: new Date(Date.now() - DAY + 30_000) })));
      const r = await cu(['issue-cert', '--policy-key', 'policy-key.pem', '--policy-cert', 'ending-policy-cert.pem', '--public-key', 'platform/platform-cert.pem', '--measurement', M, '--out', 'too-short.pem']);
      expectRefused(r, 4, 'CERT_EXPIRED');
      expect(r.stderr).to.contain('too soon to issue a certificate');
      expect(existsSync(p('too-short.pem'))).to.equal(false);
    });

    it('with --policy, issues only for a measurement the policy trusts now, and never past the claim that trusts it', async () => {
      const base = ['--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--public-key', 'platform/platform-cert.pem'];
      const other = 'ab'.repeat(32);
      const untrusted = await cu(['issue-cert', ...base, '--measurement', other, '--policy', 'policy.bin', '--out', 'untrusted.pem']);
      expect(untrusted.status, untrusted.stderr).to.equal(1);
      expect(untrusted.stderr).to.contain('[MEASUREMENT_NOT_TRUSTED]').and.contain(other).and.contain('make-policy --trust-measurement');
      expect(existsSync(p('untrusted.pem'))).to.equal(false);
      const trusted = await cu(['issue-cert', ...base, '--measurement', M, '--policy', 'policy.bin', '--out', 'trusted.pem', '--json']);
      expect(trusted.status, trusted.stderr).to.equal(0);
      expect(trusted.json().certificate.admission.measurement).to.equal(M);

      // A claim that ends in two days: the certificate ends with it, not after --days, and says so.
      const key = importPrivateKey(readFileSync(p('policy-key.pem')));
      const claimEnds = new Date(Date.now() + 2 * DAY);
      writeFileSync(p('two-day-policy.bin'), makePolicy({ policyKey: key, policyCert: policyCertDer, platforms: [], measurements: [Buffer.from(M, 'hex')], notBefore: new Date(Date.now() - DAY), notAfter: claimEnds }));
      const cut = await cu(['issue-cert', ...base, '--measurement', M, '--policy', 'two-day-policy.bin', '--out', 'cut.pem', '--json']);
      expect(cut.status, cut.stderr).to.equal(0);
      expect(new Date(cut.json().certificate.notAfter).getTime()).to.be.at.most(claimEnds.getTime());
      expect(cut.stderr).to.contain('with the policy claim that trusts its measurement, not after --days 90');
      // One whose claim ended: refused as the claim's end, nothing written.
      writeFileSync(p('ended-claim.bin'), makePolicy({ policyKey: key, policyCert: policyCertDer, platforms: [], measurements: [Buffer.from(M, 'hex')], notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) }));
      const ended = await cu(['issue-cert', ...base, '--measurement', M, '--policy', 'ended-claim.bin', '--out', 'ended.pem']);
      expect(ended.status, ended.stderr).to.equal(4);
      expect(ended.stderr).to.contain('[CLAIM_EXPIRED]');
      expect(existsSync(p('ended.pem'))).to.equal(false);
      // A policy of another policy key is refused as simpleserver refuses it.
      const foreign = await cu(['issue-cert', '--policy-key', 'other-policy-key.pem', '--policy-cert', 'other-policy-cert.pem', '--public-key', 'platform/platform-cert.pem',
        '--measurement', M, '--policy', 'policy.bin', '--out', 'foreign.pem']);
      expect(foreign.status, foreign.stderr).to.equal(4);
      expect(foreign.stderr).to.contain('[POLICY_INVALID]').and.contain('was made under another policy key');
      expect(existsSync(p('foreign.pem'))).to.equal(false);
    });

    it("refuses to issue a certificate marked as simpleserver's own (platform policy-authority)", async () => {
      const r = await cu(['issue-cert', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--public-key', 'platform/platform-cert.pem',
        '--measurement', M, '--platform', 'policy-authority', '--out', 'never-authority.pem']);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.contain('[USAGE]');
      expect(existsSync(p('never-authority.pem'))).to.equal(false);
    });

    it('never writes a policy, certificate or measurement over the files it was given, even with --force', async () => {
      const key = readFileSync(p('policy-key.pem'));
      const cases = [
        ['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--trust-platform', 'platform/platform-cert.pem', '--trust-measurement', M, '--out', 'policy-key.pem', '--force'],
        ['issue-cert', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--public-key', 'platform/platform-cert.pem', '--measurement', M, '--out', './policy-cert.pem', '--force'],
        ['issue-role-cert', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--public-key', 'platform/platform-cert.pem', '--role', 'operator', '--out', 'policy-key.pem', '--force'],
        ['measure', 'app.measurement', '--out', 'app.measurement', '--force'],
        // A sealed store's seal comes from the platform's files and the measurement: they are its own files too.
        ['get-item', ...sealed('stores/machine'), '--tag', 'datica-admission-certificate', '--out', 'platform/attest-key.pem', '--force'],
        ['get-item', ...sealed('stores/machine'), '--tag', 'datica-admission-certificate', '--out', 'app.measurement', '--force'],
      ];
      for (const args of cases) {
        const r = await cu(args);
        expect(r.status, `${args[0]}: ${r.stderr}`).to.equal(1);
        expect(r.stderr).to.contain('which this command needs').and.contain('[INVALID_INPUT]');
      }
      expect(readFileSync(p('policy-key.pem'))).to.deep.equal(key);
    });

    it('generate-policy-key writes key and certificate or neither: a taken certificate name leaves no stray policy key', async () => {
      writeFileSync(p('taken-cert.pem'), 'old');
      const r = await cu(['generate-policy-key', '--domain', 'datica', '--key-out', 'stray-key.pem', '--cert-out', 'taken-cert.pem']);
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.contain('[ALREADY_EXISTS]');
      expect(existsSync(p('stray-key.pem'))).to.equal(false);
      expect(readFileSync(p('taken-cert.pem'), 'utf8')).to.equal('old');
      // The same file named through a link to its folder: refused before anything is written, with
      // --force too (the certificate would replace the key it was made for).
      mkdirSync(p('gpk'));
      symlinkSync('.', p('gpk/here'));
      for (const force of [[], ['--force']]) {
        const same = await cu(['generate-policy-key', '--domain', 'datica', '--key-out', 'gpk/k.pem', '--cert-out', 'gpk/here/k.pem', ...force]);
        expect(same.status, same.stderr).to.equal(2);
        expect(same.stderr).to.contain('--key-out and --cert-out name the same file');
        expect(readdirSync(p('gpk'))).to.deep.equal(['here']);
      }
    });

    it('refuses a private key where a public key or certificate is asked for, and the reverse (INVALID_KEY)', async () => {
      const issue = await cu(['issue-cert', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--public-key', 'platform/platform-key.pem',
        '--measurement', M, '--out', 'never-cert.pem']);
      expect(issue.status, issue.stderr).to.equal(1);
      expect(issue.stderr).to.contain('platform/platform-key.pem holds a private key: give the certificate or public key instead').and.to.contain('[INVALID_KEY]');
      expect(existsSync(p('never-cert.pem'))).to.equal(false);
      // In DER too (PKCS#8, as openssl pkcs8 -outform DER writes it; SEC1, as openssl ec -outform DER), not "no public key".
      const key = createPrivateKey(readFileSync(p('platform/platform-key.pem')));
      writeFileSync(p('platform-key.p8.der'), key.export({ type: 'pkcs8', format: 'der' }), { mode: 0o600 });
      writeFileSync(p('platform-key.sec1.der'), key.export({ type: 'sec1', format: 'der' }), { mode: 0o600 });
      // And as a Certifier key_message holding the private half, as get-item writes an exportable key pair.
      writeFileSync(p('platform-key.key_message'), encode('key_message', toKeyMessage(key)), { mode: 0o600 });
      for (const der of ['platform-key.p8.der', 'platform-key.sec1.der', 'platform-key.key_message']) {
        const r = await cu(['issue-cert', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--public-key', der, '--measurement', M, '--out', 'never-cert.pem', '--json']);
        expect([r.status, JSON.parse(r.out).error], r.stderr).to.deep.equal([1, { code: 'INVALID_KEY', exitStatus: 1,
          message: `${der} holds a private key: give the certificate or public key instead, and keep the private key where it is used` }]);
        expect(existsSync(p('never-cert.pem'))).to.equal(false);
      }
      const policy = await cu(['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--trust-platform', 'platform/platform-key.pem',
        '--trust-measurement', M, '--out', 'never-policy.bin']);
      expect(policy.status, policy.stderr).to.equal(1);
      expect(policy.stderr).to.contain('[INVALID_KEY]');
      expect(existsSync(p('never-policy.bin'))).to.equal(false);
      // And the other way round, naming the file.
      const swapped = await cu(['issue-cert', '--policy-key', 'policy-cert.pem', '--policy-cert', 'policy-cert.pem', '--public-key', 'platform/platform-cert.pem',
        '--measurement', M, '--out', 'never-cert.pem']);
      expect(swapped.status, swapped.stderr).to.equal(1);
      expect(swapped.stderr).to.contain('policy-cert.pem holds a public key or certificate, not the private key [INVALID_KEY]');
      // A certificate is no secret: its usual 0644 is not warned of as a private key's would be.
      expect(statSync(p('policy-cert.pem')).mode & 0o004, 'the certificate is readable by all').to.not.equal(0);
      expect(swapped.stderr).not.to.contain('warning');
      const keyAsCert = await cu(['print-policy', '--policy', 'policy.bin', '--policy-cert', 'policy-key.pem']);
      expect(keyAsCert.status, keyAsCert.stderr).to.equal(1);
      expect(keyAsCert.stderr).to.contain('policy-key.pem: the PEM text holds no CERTIFICATE block');
      // A platform's certificate is self-signed and a CA too, so it passes for one: the refusal says what it is.
      const platformAsPolicy = await cu(['print-policy', '--policy', 'policy.bin', '--policy-cert', 'platform/platform-cert.pem']);
      expect(platformAsPolicy.status, platformAsPolicy.stderr).to.equal(4);
      expect(platformAsPolicy.stderr).to.contain('not by the policy key').and.to.contain('platform/platform-cert.pem is not a policy certificate but a platform\'s certificate (CN=platformKey').and.to.contain('[POLICY_INVALID]');
    });

    it('refuses an EC key whose curve is given by its parameters (openssl -param_enc explicit) as the policy key, a machine\'s key or a platform\'s certificate (INVALID_KEY), naming the file', async () => {
      const v = (name: string) => join(VECTORS, 'pki', name);
      const issuer = ['--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem'];
      for (const [args, file] of [
        [['issue-cert', '--policy-key', v('explicit-p256.key.pem'), '--policy-cert', 'policy-cert.pem', '--public-key', 'platform/platform-cert.pem', '--measurement', M, '--out', 'never-cert.pem'], 'explicit-p256.key.pem'],
        [['issue-cert', ...issuer, '--public-key', v('explicit-p256.pub.pem'), '--measurement', M, '--out', 'never-cert.pem'], 'explicit-p256.pub.pem'],
        [['make-policy', ...issuer, '--trust-platform', v('explicit-p256.cert.pem'), '--trust-measurement', M, '--out', 'never-policy.bin'], 'explicit-p256.cert.pem'],
      ] as const) {
        const r = await cu([...args]);
        expect(r.status, r.stderr).to.equal(1);
        expect(r.stderr, r.stderr).to.contain(file).and.to.contain('gives its curve\'s parameters instead of naming the curve').and.to.contain('[INVALID_KEY]');
      }
      expect(existsSync(p('never-cert.pem')) || existsSync(p('never-policy.bin'))).to.equal(false);
    });

    it('refuses the policy key as a machine\'s or a platform\'s key, and an admission certificate as a platform certificate (INVALID_KEY)', async () => {
      const issuer = ['--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem'];
      for (const [cmd, extra] of [['issue-cert', ['--measurement', M]], ['issue-role-cert', ['--role', 'operator']]] as const) {
        const r = await cu([cmd, ...issuer, '--public-key', 'policy-cert.pem', ...extra, '--out', 'never-cert.pem']);
        expect(r.status, r.stderr).to.equal(1);
        expect(r.stderr).to.contain('policy-cert.pem holds the policy key\'s public key').and.to.contain('[INVALID_KEY]');
      }
      const made = await cu(['issue-cert', ...issuer, '--public-key', 'platform/platform-cert.pem', '--measurement', M, '--out', 'a-machine.pem']);
      expect(made.status, made.stderr).to.equal(0);
      for (const [platform, says] of [['policy-cert.pem', 'holds the policy key, not a platform\'s'], ['a-machine.pem', 'is an admission certificate']] as const) {
        const r = await cu(['make-policy', ...issuer, '--trust-platform', platform, '--trust-measurement', M, '--out', 'never-policy.bin']);
        expect(r.status, r.stderr).to.equal(1);
        expect(r.stderr).to.contain(says).and.to.contain('[INVALID_KEY]');
      }
      expect(existsSync(p('never-cert.pem')) || existsSync(p('never-policy.bin'))).to.equal(false);
    });

    it('init-trust --server [::1]:PORT tries ::1 at PORT: UNREACHABLE (exit 3) naming it as given, and no store left', async () => {
      const port = await closedPort();
      const r = await cu(['init-trust', '--domain', 'datica', '--policy-cert', 'policy-cert.pem', '--server', `[::1]:${port}`, ...sealed('stores/ipv6')]);
      expectRefused(r, 3, 'UNREACHABLE');
      // Refused, not a name that was not looked up: the brackets were taken off to connect, and put back to say where.
      expect(r.stderr).to.contain(`cannot reach [::1]:${port}: connection refused`);
      await expectNoStore('stores/ipv6');
    });

    it('removes the folders it made above a store it made (--store new/nested/store) when certifying fails, not only the store', async () => {
      const port = await closedPort();
      const r = await cu(['init-trust', '--domain', 'datica', '--policy-cert', 'policy-cert.pem', '--server', `127.0.0.1:${port}`, ...sealed('stores/made-above/nested/store')]);
      expectRefused(r, 3, 'UNREACHABLE');
      expect(existsSync(p('stores/made-above')), 'a folder it made is left').to.equal(false);
      expect(existsSync(p('stores')), 'a folder that was there').to.equal(true);
    });

    it('refuses a malformed --platform or --role as a usage error (exit 2), as every other flag value', async () => {
      const issuer = ['--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--public-key', 'platform/platform-cert.pem', '--out', 'never-cert.pem'];
      for (const args of [['issue-cert', '--measurement', M, '--platform', ''], ['issue-cert', '--measurement', M, '--platform', 'a b'], ['issue-role-cert', '--role', 'Operator']]) {
        const r = await cu([...args, ...issuer]);
        expect(r.status, r.stderr).to.equal(2);
        expect(r.stderr).to.contain('[USAGE]');
      }
      // A measurement is 64 or 96 hex digits: one short or over, any length between, or a letter past f is not.
      const bad = [M.slice(1), `${M}0`, 'ab'.repeat(40), `${M.slice(1)}g`, 'ab'.repeat(48).slice(1)];
      const runs = await Promise.all(bad.map((m) => cu(['issue-cert', '--measurement', m, ...issuer])));
      runs.forEach((r, i) => {
        expect(r.status, r.stderr).to.equal(2);
        expect(r.stderr).to.contain(`--measurement "${bad[i]}" is not a measurement (64 or 96 hex digits) [USAGE]`);
      });
      expect(existsSync(p('never-cert.pem'))).to.equal(false);
      // Refused before any file is read: it came only once the keys were read, a missing one first.
      const first = await cu(['issue-cert', '--measurement', '\u0661'.repeat(64), '--policy-key', 'no-such-key.pem', ...issuer.slice(2)]);
      expect(first.status, first.stderr).to.equal(2);
      expect(first.stderr).to.contain('--measurement "').and.contain('is not a measurement').and.not.contain('no-such-key.pem');
    });
  });
});

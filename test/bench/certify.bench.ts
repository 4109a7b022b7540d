// Certifications per second through the certificate authority against raw mutual-TLS handshakes,
// in the same run, with the same key types (P-256 throughout) and the same concurrency.
//
// Subject: lib/certifier startCertifier (what `simpleserver serve` runs), started in this
// process, TLS 1.3 with server authentication as simpleserver does it; 8 concurrent clients each
// doing complete requestCertificate() calls: connect, verify the authority, attest (a
// SimulatedEnclave), send the evidence, validate the certificate that comes back. One connection
// per certification, a fresh pre-generated P-256 machine key for each.
// Baseline: lib/channel serve/connect, mutual TLS 1.3 with P-256 certificates issued by the same
// P-256 policy key, a 1-byte echo, one connection each, 8 concurrent clients.
// Both ends share this one Node.js thread, so each rate is the inverse of the CPU time both ends
// spend per operation.

import type { KeyObject } from 'node:crypto';
import { generateKeyPair, publicKeyOf, sha256, toKeyMessage, utf8 } from '../../lib/crypto/index.ts';
import { encode, parseTrustRequest } from '../../lib/wire/index.ts';
import { issueAdmissionCert, validateAdmission } from '../../lib/pki/index.ts';
import { evaluate, formatCertifierTime, loadPolicy, makePolicy } from '../../lib/policy/index.ts';
import { generateSimulatedPlatform, SimulatedEnclave, verifyEvidence } from '../../lib/attest/index.ts';
import { issueAuthorityIdentity, requestCertificate, startCertifier, verifyAuthority, CERTIFIER_LIMITS } from '../../lib/certifier/index.ts';
import { connect, serve, type ChannelServer } from '../../lib/channel/index.ts';
import { issueLeaf, makeDomain } from './domain.ts';
import { compare, rate, section, type Row } from './harness.ts';

const CLIENTS = 8;
const DOMAIN = 'bench';
const TARGET = { minRatio: 0.7 };
const FULL = { iterations: 240, repeats: 7, warm: 48, stageIters: 300 };
const QUICK = { iterations: 16, repeats: 2, warm: 8, stageIters: 10 };

section(
  'certifications vs mutual-TLS handshakes (8 concurrent clients, one connection each, loopback)',
  { columns: { case: 'keys', baseline: 'mTLS handshakes/s', subject: 'subject ops/s' } },
  async (ctx) => {
    const cfg = ctx.options.quick ? QUICK : FULL;
    ctx.log('setting up: policy key and certificate, simulated platform, policy');
    const domain = await makeDomain(DOMAIN);
    const { policyKey, policyCert, policyPem } = domain;
    const platform = await generateSimulatedPlatform({ alg: 'p256' });
    const measurement = sha256(utf8('the benchmarked program'));
    const enclave = new SimulatedEnclave(platform.attestKey, platform.endorsement, measurement);
    const now = Date.now();
    const policy = loadPolicy(makePolicy({
      policyKey, policyCert, platforms: [{ key: platform.platformKey }], measurements: [measurement],
      notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 86_400_000),
    }), publicKeyOf(policyKey));

    // The machine keys: one per certification, generated before anything is timed.
    const timed = cfg.repeats * cfg.iterations;
    const machineKeys: KeyObject[] = [];
    for (let i = 0; i < timed + cfg.warm; i++) machineKeys.push((await generateKeyPair('p256')).privateKey);

    // Leaf certificates for the baseline: P-256, issued by the same policy key.
    const leaf = async (platformName: string) => {
      const { key, pem } = await issueLeaf(domain, { measurement, platform: platformName });
      return { key, cert: pem };
    };
    const [serverId, clientId] = await Promise.all([leaf('bench-server'), leaf('bench-client')]);

    const outcomes = { allow: 0, deny: 0, lastDeny: '' };
    const servers: ChannelServer[] = [];
    try {
      const certifier = await startCertifier({
        policyKey, policyCert, policy, domain: DOMAIN, host: '127.0.0.1', port: 0, certValiditySeconds: 86_400,
        log: (r) => {
          if (r.event !== 'certification') return;
          if (r.decision === 'allow') outcomes.allow++;
          else {
            outcomes.deny++;
            outcomes.lastDeny = `${String(r.code)}: ${String(r.reason)}`;
          }
        },
      });
      servers.push(certifier);
      // The same one-request-per-connection limit the certifier runs with.
      const echo = (requestCert: boolean) => serve({
        host: '127.0.0.1', port: 0, limits: CERTIFIER_LIMITS, handler: async (req: Uint8Array) => req,
        tls: { key: serverId.key, cert: serverId.cert, ca: policyPem, requestCert },
      });
      const mtls = await echo(true);
      servers.push(mtls);
      const serverAuth = await echo(false);
      servers.push(serverAuth);

      const handshake = (port: number, mutual: boolean) => async (i: number) => {
        const conn = await connect({ host: '127.0.0.1', port, tls: mutual ? { key: clientId.key, cert: clientId.cert, ca: policyPem } : { ca: policyPem } });
        const answer = await conn.request(new Uint8Array([i & 0xff]));
        await conn.close();
        if (answer.length !== 1 || answer[0] !== (i & 0xff)) throw new Error('the echo server answered something else');
      };
      const mutualHandshake = handshake(mtls.address.port, true);
      const serverAuthHandshake = handshake(serverAuth.address.port, false);
      const certify = async (i: number) => {
        const got = await requestCertificate({ host: '127.0.0.1', port: certifier.address.port, policyCert, platform: enclave, authKey: machineKeys[i]! });
        if (got.peer.measurementHex !== policy.measurements[0]!.hex) throw new Error('certified the wrong measurement');
      };

      ctx.log(`warm-up x${cfg.warm}`);
      await rate(cfg.warm, (i) => certify(timed + i), 0, CLIENTS);
      await rate(cfg.warm, mutualHandshake, 0, CLIENTS);
      await rate(cfg.warm, serverAuthHandshake, 0, CLIENTS);

      ctx.log(`certify vs mTLS: ${cfg.iterations} x${cfg.repeats}, ${CLIENTS} concurrent`);
      const main = await compare({ repeats: cfg.repeats, iterations: cfg.iterations, baseline: mutualHandshake, subject: certify, concurrency: CLIENTS });
      if (outcomes.deny > 0) throw new Error(`${outcomes.deny} certifications were refused (last: ${outcomes.lastDeny})`);
      if (outcomes.allow !== timed + cfg.warm) throw new Error(`expected ${timed + cfg.warm} certifications, the server logged ${outcomes.allow}`);
      ctx.log(`server-auth TLS vs mTLS: ${cfg.iterations} x${cfg.repeats}, ${CLIENTS} concurrent`);
      const transport = await compare({ repeats: cfg.repeats, iterations: cfg.iterations, baseline: mutualHandshake, subject: serverAuthHandshake, concurrency: CLIENTS });

      const rows: Row[] = [
        { case: 'P-256', op: 'certification (requestCertificate)', baseline: main.baseline, subject: main.subject, paired: main.paired, target: TARGET },
        { case: 'P-256', op: 'server-auth TLS + 1-byte echo', baseline: transport.baseline, subject: transport.subject, paired: transport.paired },
      ];

      // Where a certification's time goes: each stage alone, sequentially, on this thread.
      ctx.log(`stage costs x${cfg.stageIters}`);
      const authority = await issueAuthorityIdentity({ policyKey, policyCert, domain: DOMAIN });
      const userData = { enclaveType: enclave.type, time: formatCertifierTime(new Date()), enclaveKey: toKeyMessage(publicKeyOf(machineKeys[0]!), 'auth-key'), sessionBinding: new Uint8Array(32) };
      const evidence = await enclave.attest(userData);
      const request = encode('trust_request_message', {
        requestingEnclaveTag: 'requesting-enclave', providingEnclaveTag: 'providing-enclave',
        submittedEvidenceType: 'vse-attestation-package', purpose: 'authentication', support: evidence,
      });
      const facts = verifyEvidence(parseTrustRequest(request).support);
      // A different certificate for each validation, as every certification brings one: lib/pki
      // remembers certificates it has parsed and signatures it has checked, so validating one
      // certificate over and over would time a cache.
      const issued: Uint8Array[] = [];
      for (let i = 0; i < cfg.stageIters + 20; i++) {
        issued.push(await issueAdmissionCert({ policyKey, policyCert, subjectPublicKey: publicKeyOf(machineKeys[i % machineKeys.length]!), measurement, platform: enclave.type, domain: DOMAIN, validitySeconds: 86_400 }));
      }
      const stages: [string, (i: number) => unknown][] = [
        ['client: verify the authority', () => verifyAuthority([authority.cert], policyCert, new Date())],
        ['client: attest', () => enclave.attest(userData)],
        ['server: parse + verify evidence', () => verifyEvidence(parseTrustRequest(request).support)],
        ['server: evaluate', () => evaluate(policy, facts, { at: new Date(), purpose: 'authentication', expectedBinding: new Uint8Array(32) })],
        ['server: issue certificate', () => issueAdmissionCert({ policyKey, policyCert, subjectPublicKey: facts.enclaveKey, measurement, platform: enclave.type, domain: DOMAIN, validitySeconds: 86_400 })],
        ['client: validate the certificate', (i) => validateAdmission({ chain: [issued[i]!], policyCert, at: new Date(), usage: 'any' })],
      ];
      const costs: string[] = [];
      let sum = 0;
      for (const [name, fn] of stages) {
        await rate(Math.min(20, cfg.stageIters), async (i) => fn(i));
        const ms = 1000 / (await rate(cfg.stageIters, async (i) => fn(i), 20)); // after the warm-up's i
        sum += ms;
        costs.push(`${name} ${ms.toFixed(3)}`);
      }
      const per = (s: { median: number }) => (1000 / s.median).toFixed(2);
      ctx.note(`subject of row 1: lib/certifier startCertifier in this process (TLS 1.3, server authentication, as simpleserver serve), ${CLIENTS} clients doing complete requestCertificate() calls (SimulatedEnclave, P-256 keys pre-generated); subject of row 2: the same TLS without client certificates and without any certifier work`);
      ctx.note(`baseline: lib/channel serve/connect, mutual TLS 1.3, P-256 certificates from the same P-256 policy key, 1-byte echo; every server closes after one request; median of ${cfg.repeats} interleaved repeats of ${cfg.iterations} operations`);
      ctx.note(`client and server share this one thread: per operation, a certification took ${per(main.subject)} ms of it, a mutual-TLS handshake ${per(main.baseline)} ms, a server-auth TLS handshake ${per(transport.subject)} ms`);
      ctx.note(`single-threaded cost of the certifier's own stages (ms): ${costs.join(', ')}; sum ${sum.toFixed(3)}`);
      return rows;
    } finally {
      for (const s of servers) await s.close(1_000);
    }
  },
);

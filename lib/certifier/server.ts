// simpleserver's network side: TLS by default (presenting the authority's certificate), or the
// original plain-TCP protocol when asked; one structured log line per request (refusals anybody
// can send at will held to a rate: see refusals.ts).

import type { KeyObject } from 'node:crypto';
import { closingAlso, serve, type ChannelServer, type Limits, type LogRecord } from '../channel/index.ts';
import { errorFields } from '../errors/index.ts';
import { readCertificateSummary, toPem } from '../pki/index.ts';
import type { Policy } from '../policy/index.ts';
import { CERTIFIER_FRAME_LIMIT, CertifierService, type CertificationRecord } from './service.ts';
import { certifierLogs } from './refusals.ts';
import { AUTHORITY_CERT_SECONDS, issueAuthorityIdentity } from './identity.ts';
import { AMD_CRL_EXPIRY, MAX_TIMER_MS, POLICY_CERT_EXPIRY, POLICY_EXPIRY, watchExpiry } from './expiry.ts';
import { policyEnds } from './in-force.ts';
import type { VerifiedAmdCrl } from '../attest/index.ts';

export interface CertifierServerOptions {
  policyKey: KeyObject;
  policyCert: Uint8Array;
  policy: Policy;
  /** AMD's revocation lists, verified against the policy's SEV-SNP roots (simpleserver --amd-crl). */
  amdCrls?: VerifiedAmdCrl[];
  domain: string;
  host: string;
  port: number;
  plain?: boolean;
  certValiditySeconds: number;
  /** The lifetime of the certificate simpleserver presents (default AUTHORITY_CERT_SECONDS); a new one replaces it at half of that. */
  identitySeconds?: number;
  limits?: Limits;
  log: (record: LogRecord | (CertificationRecord & { event: string })) => void;
}

/**
 * The certification protocol is one request per connection (the original simpleserver answers,
 * then closes): a client that reads until the server closes must not wait out the idle timeout.
 * And one request is small (CERTIFIER_FRAME_LIMIT): what an unverified connection holds is too.
 */
export const CERTIFIER_LIMITS: Limits = { maxRequestsPerConnection: 1, frameLimit: CERTIFIER_FRAME_LIMIT };

/** simpleserver's server: the channel server, and the way to put a new policy in force. */
export type CertifierServer = ChannelServer & {
  /** Later certifications follow this policy and these lists, and their ends are watched instead (SIGHUP in simpleserver serve). */
  setPolicy(policy: Policy, amdCrls?: VerifiedAmdCrl[]): void;
};

export async function startCertifier(o: CertifierServerOptions): Promise<CertifierServer> {
  const limits: Limits = { ...CERTIFIER_LIMITS, ...o.limits };
  const logs = certifierLogs(o.log);
  const service = new CertifierService(
    { policyKey: o.policyKey, policyCert: o.policyCert, policy: o.policy, amdCrls: o.amdCrls ?? [], domain: o.domain, certValiditySeconds: o.certValiditySeconds, requireSessionBinding: !o.plain },
    logs.certification,
  );
  const handler = (req: Uint8Array, conn: { id: string; remote: string; exportKeyingMaterial(l: string, n: number): Uint8Array | undefined }) =>
    service.handle(req, { id: conn.id, remote: conn.remote, exportKeyingMaterial: (l, n) => conn.exportKeyingMaterial(l, n) });
  // Started once the server listens, so a server that never started leaves no timer behind.
  // The policy certificate is watched with the policy: it caps every certificate issued.
  const log = (r: Record<string, unknown>) => o.log(r as LogRecord);
  let stopPolicyWatch = () => {};
  let stopCertWatch: (() => void) | undefined;
  const stopWatching = () => {
    stopPolicyWatch();
    stopCertWatch?.();
  };
  const watchPolicy = (policy: Policy, crls: VerifiedAmdCrl[]) => {
    stopPolicyWatch();
    // Once: a reload changes the policy, never the policy certificate, so its end is not said again.
    stopCertWatch ??= watchExpiry(readCertificateSummary(o.policyCert).notAfter, log, POLICY_CERT_EXPIRY);
    const ends = policyEnds(policy);
    const stops: (() => void)[] = [];
    if (ends) stops.push(watchExpiry(ends, log, POLICY_EXPIRY));
    const due = crls.map((c) => c.nextUpdate.getTime());
    if (due.length) stops.push(watchExpiry(new Date(Math.min(...due)), log, AMD_CRL_EXPIRY));
    stopPolicyWatch = () => stops.forEach((stop) => stop());
  };
  let renewNow = () => {};
  const setPolicy = (policy: Policy, amdCrls: VerifiedAmdCrl[] = []) => {
    service.setPolicy(policy, amdCrls);
    watchPolicy(policy, amdCrls);
    // A reload also makes a fresh certificate of our own: after a clock was put right, the one
    // made by the wrong clock would otherwise be presented for days.
    renewNow();
  };
  if (o.plain) {
    const plain = await serve({ host: o.host, port: o.port, plain: true, handler, limits, log: logs.channel, refusal: logs.refusal });
    watchPolicy(o.policy, o.amdCrls ?? []);
    return Object.assign(closingAlso(plain, () => stopWatching()), { setPolicy });
  }
  const lifetime = o.identitySeconds ?? AUTHORITY_CERT_SECONDS;
  const issue = () => issueAuthorityIdentity({ policyKey: o.policyKey, policyCert: o.policyCert, domain: o.domain, validitySeconds: lifetime });
  const identity = await issue();
  const server = await serve({
    host: o.host, port: o.port, handler, log: logs.channel, refusal: logs.refusal, limits,
    tls: { key: identity.key, cert: toPem(identity.cert), ca: toPem(o.policyCert), requestCert: false },
  });
  // The certificate is short-lived, the server is not: a fresh key and certificate at every half
  // of its lifetime, so clients never meet an expired one. On failure the old one serves on, and
  // the next attempt comes at a tenth of the lifetime.
  // One renewal at a time, and one timer: a reload during a renewal (or two reloads) must not
  // leave a second renewal loop running.
  let timer: NodeJS.Timeout | undefined;
  let renewing: Promise<void> | undefined;
  let stopped = false;
  const schedule = (ms: number) => {
    clearTimeout(timer);
    if (stopped) return;
    timer = setTimeout(() => renewOnce(), Math.min(ms, MAX_TIMER_MS));
    timer.unref();
  };
  const renew = async () => {
    try {
      const next = await issue();
      if (stopped) return;
      server.setIdentity(next.key, toPem(next.cert));
      const { serialHex, notAfter } = readCertificateSummary(next.cert);
      o.log({ event: 'identity-renewed', serial: serialHex, notAfter: notAfter.toISOString() });
      schedule(lifetime * 500);
    } catch (e) {
      // As key-server's own renewal logs it: what went wrong, and when it is tried again.
      const retryMs = Math.min(lifetime * 100, MAX_TIMER_MS);
      o.log({ event: 'identity-renewal-failed', ...errorFields(e), retryInSeconds: Math.round(retryMs / 1000) });
      schedule(retryMs);
    }
  };
  const renewOnce = () => {
    clearTimeout(timer);
    renewing ??= renew().finally(() => (renewing = undefined));
  };
  schedule(lifetime * 500);
  renewNow = renewOnce;
  watchPolicy(o.policy, o.amdCrls ?? []);
  const closing = closingAlso(server, () => {
    stopped = true;
    renewNow = () => {};
    clearTimeout(timer);
    stopWatching();
  });
  return Object.assign(closing, { setPolicy });
}

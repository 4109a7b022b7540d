// Things a running server holds that run out: key-server's admission certificate from
// init-trust (renewed while it runs only when given --certifier), simpleserver's signed policy
// (made offline with the policy key, put in force by SIGHUP), the policy certificate itself
// (which caps every certificate issued under it), and the AMD revocation lists it was given. The server says so in its log,
// every day from RENEW_BEFORE_MS before the end, and once more when it has passed.

import { endsWithPolicyCert, RENEW_BEFORE_MS } from './init-trust.ts';

const DAY_MS = 86_400_000;
/** The longest wait one Node timer can hold (about 24.8 days); longer ones are chained. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ExpiryWatch {
  /** Names the log events: `${what}-expiring`, `${what}-expired`. */
  what: string;
  /** What the operator should do, in the log record. */
  advice: string;
  /** What to do once the end has passed, when `advice` speaks of it as still ahead. */
  expiredAdvice?: string;
  /** How long before the end the warnings start (RENEW_BEFORE_MS unless said). */
  warnWithin?: number;
  now?: () => number;
}

/** Starts watching; returns the function that stops it. Timers never keep the process alive. */
export function watchExpiry(notAfter: Date, log: (record: Record<string, unknown>) => void, o: ExpiryWatch): () => void {
  const now = o.now ?? Date.now;
  let timer: NodeJS.Timeout | undefined;
  const at = notAfter.toISOString();
  const within = o.warnWithin ?? RENEW_BEFORE_MS;
  const check = () => {
    const left = notAfter.getTime() - now();
    if (left <= 0) {
      log({ event: `${o.what}-expired`, notAfter: at, warning: o.expiredAdvice ?? o.advice });
      return;
    }
    if (left <= within) log({ event: `${o.what}-expiring`, notAfter: at, hoursLeft: Math.floor(left / 3_600_000), warning: o.advice });
    // The end itself is checked a little after it: a timer runs on a clock of its own, and may
    // fire a millisecond before the wall clock's end (a second 'expiring', not 'expired').
    const next = left > within ? left - within : left > DAY_MS ? DAY_MS : left + 10;
    timer = setTimeout(check, Math.min(next, MAX_TIMER_MS));
    timer.unref();
  };
  check();
  return () => clearTimeout(timer);
}

/** key-server's own certificate. */
export const IDENTITY_EXPIRY: ExpiryWatch = {
  what: 'identity',
  advice: 'clients refuse this server once its certificate has expired: give it --certifier to renew it while it runs, or stop it, run cert-utility init-trust on its store, start it again',
  expiredAdvice: 'clients refuse this server: its certificate has expired; stop it, run cert-utility init-trust on its store and start it again (with --certifier it renews the next one itself)',
};

/** key-server's own certificate when it renews it itself (--certifier). */
export const IDENTITY_EXPIRY_RENEWING: ExpiryWatch = {
  what: 'identity',
  advice: 'clients refuse this server once its certificate has expired: it renews it through --certifier before then; if identity-renewal-failed follows, see why (simpleserver down, the policy no longer trusting this server), or run cert-utility init-trust on its store and restart it',
  expiredAdvice: 'clients refuse this server: its certificate has expired, as its renewal through --certifier failed (identity-renewal-failed says why: simpleserver down, the policy no longer trusting this server); it goes on trying, or run cert-utility init-trust on its store and restart it',
};

/** key-server's own certificate when it ends with the policy certificate, which nothing renews past. */
export const IDENTITY_EXPIRY_WITH_POLICY_CERT: ExpiryWatch = {
  what: 'identity',
  advice: 'clients refuse this server once its certificate has expired, and it ends with the policy certificate, past which no certificate issued under it lasts (neither --certifier nor init-trust can renew it further): replace the policy key before then (README "Replacing the policy key")',
  expiredAdvice: 'clients refuse this server: its certificate has expired with the policy certificate, which no certificate issued under it outlasts (neither --certifier nor init-trust can renew it): replace the policy key, run cert-utility init-trust on its store with the new policy certificate and restart it with that (README "Replacing the policy key")',
};

/** Said of a certificate that ends with the policy certificate (`policyCertEnds`), before its end. */
export function noRenewalPast(policyCertEnds: Date): string {
  return `it ends with the policy certificate (${policyCertEnds.toISOString()}), past which no certificate issued under it lasts, so no renewal extends it: replace the policy key before then (README "Replacing the policy key")`;
}

/** What key-server says of its own certificate's end: the policy certificate's when it is that, else whether it renews itself. */
export function identityExpiry(notAfter: Date, policyCertEnds: Date, renewing: boolean): ExpiryWatch {
  if (endsWithPolicyCert(notAfter, policyCertEnds)) return IDENTITY_EXPIRY_WITH_POLICY_CERT;
  return renewing ? IDENTITY_EXPIRY_RENEWING : IDENTITY_EXPIRY;
}

/**
 * The watch key-server keeps on its own certificate, `now` being when it comes in force: as
 * identityExpiry says, and when the server renews it itself, warning only once its renewal is
 * overdue. A certificate shorter than RENEW_BEFORE_MS is in that window from the start, and is
 * renewed at half of what is left (lib/keyservice/renewal.ts): its warnings start at a quarter.
 */
export function identityWatch(notAfter: Date, policyCertEnds: Date, renewing: boolean, now = Date.now()): ExpiryWatch {
  const watch = identityExpiry(notAfter, policyCertEnds, renewing);
  if (watch !== IDENTITY_EXPIRY_RENEWING) return watch;
  return { ...watch, warnWithin: Math.min(RENEW_BEFORE_MS, (notAfter.getTime() - now) / 4) };
}

/** simpleserver's policy: the first of its claims to end. */
export const POLICY_EXPIRY: ExpiryWatch = {
  what: 'policy-claim',
  advice: 'machines that need an ended claim are refused (CLAIM_EXPIRED): sign a new policy with cert-utility make-policy and reload simpleserver with it (SIGHUP)',
};

/** simpleserver's policy certificate: no certificate it issues, its own included, ends later. */
export const POLICY_CERT_EXPIRY: ExpiryWatch = {
  what: 'policy-cert',
  advice: 'every certificate simpleserver issues ends by then, its own included, and no machine can be certified or reach it after: replace the policy key (README "Replacing the policy key")',
};

/** simpleserver's AMD revocation lists (--amd-crl): the first to reach its nextUpdate. */
export const AMD_CRL_EXPIRY: ExpiryWatch = {
  what: 'amd-crl',
  advice: 'SEV-SNP machines whose path ends at its root are refused (SNP_CRL_STALE) once it is due: fetch a fresh CRL from AMD and reload simpleserver (SIGHUP)',
};

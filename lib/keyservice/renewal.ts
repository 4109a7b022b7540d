// key-server renews its own admission certificate while it runs (key-server serve --certifier):
// it certifies itself again through simpleserver, as init-trust does, a little before the last
// RENEW_BEFORE_MS of the certificate's validity (the days in which it starts to warn), and
// presents the new certificate to every connection from then on. A failed attempt is logged and
// tried again, sooner as the end nears; the certificate in force serves meanwhile. A certificate
// that ends with the policy certificate is renewed no more: no certificate issued under the
// policy certificate lasts past it, and a new one means a restart with it anyway.

import { errorFields } from '../errors/index.ts';
import { endsWithPolicyCert, MAX_TIMER_MS, noRenewalPast, RENEW_BEFORE_MS, type MachineIdentity } from '../certifier/index.ts';

const HOUR_MS = 3_600_000;
/** Renewal starts this long before the expiry warnings would. */
const EARLY_MS = RENEW_BEFORE_MS + HOUR_MS;

export interface RenewalOptions {
  /** Certifies the server again and returns its new identity, as stored; `signal` aborts when the renewal stops. */
  recertify: (signal: AbortSignal) => Promise<MachineIdentity>;
  /** Puts a new identity in force for new connections. */
  present: (identity: MachineIdentity) => void;
  log: (record: Record<string, unknown>) => void;
  now?: () => number;
  /** The shortest wait between attempts (default a minute; tests use less). */
  minGapMs?: number;
  /** An attempt just failed (at start): the first retry comes as after any failure, not at the usual time. */
  justFailed?: boolean;
  /** The policy certificate's end: a certificate ending then is not renewed (again). */
  policyCertEnds?: Date;
}

/** The warning for a renewal that did not take the certificate as far as it should, if any. */
function renewalWarning(next: MachineIdentity, later: boolean, policyCertEnds: Date | undefined): string | undefined {
  if (endsWithPolicyCert(next.peer.notAfter, policyCertEnds)) {
    return `the new certificate is renewed no more: ${noRenewalPast(policyCertEnds!)}`;
  }
  return later ? undefined : 'the new certificate ends no later than the one before: the policy\'s claims end then; sign a new policy and reload simpleserver';
}

/**
 * How long to wait before renewing a certificate that ends in `left` ms: until EARLY_MS before
 * its end, or half of what is left for a short-lived one, and never less than `minGap`.
 */
export function renewalDelay(left: number, minGap: number): number {
  return Math.max(minGap, left > 2 * EARLY_MS ? left - EARLY_MS : left / 2);
}

/** Starts renewing; returns the function that stops it. Its timers never keep the process alive. */
export function renewIdentity(first: MachineIdentity, o: RenewalOptions): () => void {
  const now = o.now ?? Date.now;
  const minGap = o.minGapMs ?? 60_000;
  let current = first;
  let due = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // Stopping abandons an attempt in flight: a certifier that never answers must not hold the process.
  const stopping = new AbortController();
  const arm = (ms: number) => {
    due = now() + ms;
    timer = setTimeout(tick, Math.min(ms, MAX_TIMER_MS));
    timer.unref();
  };
  // Timers cannot wait longer than about 24.8 days; a longer wait is a chain of them.
  const tick = () => (now() < due ? arm(due - now()) : void renew());
  const left = () => current.peer.notAfter.getTime() - now();
  const final = () => endsWithPolicyCert(current.peer.notAfter, o.policyCertEnds);
  const renew = async () => {
    try {
      const next = await o.recertify(stopping.signal);
      if (stopped) return;
      const warning = renewalWarning(next, next.peer.notAfter > current.peer.notAfter, o.policyCertEnds);
      o.present(next);
      current = next;
      o.log({ event: 'identity-renewed', serial: next.peer.serialHex, notAfter: next.peer.notAfter.toISOString(), ...(warning ? { warning } : {}) });
      if (!final()) arm(renewalDelay(left(), minGap));
    } catch (e) {
      if (stopped) return;
      const retryMs = retryDelay();
      o.log({ event: 'identity-renewal-failed', ...errorFields(e), retryInSeconds: Math.round(retryMs / 1000) });
      arm(retryMs);
    }
  };
  // After a failure: at most an hour, a tenth of what is left, at least minGap.
  const retryDelay = () => Math.min(HOUR_MS, Math.max(minGap, left() / 10));
  if (!final()) arm(o.justFailed ? retryDelay() : renewalDelay(left(), minGap));
  return () => {
    stopped = true;
    clearTimeout(timer);
    stopping.abort();
  };
}

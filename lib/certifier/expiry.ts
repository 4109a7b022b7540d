// A server whose admission certificate comes from init-trust cannot renew it while it runs (its
// store is in use, and certification needs the platform): it says so in its log instead, every
// day from RENEW_BEFORE_MS before the end, and once more when clients start refusing it.

import { RENEW_BEFORE_MS } from './init-trust.ts';

const DAY_MS = 86_400_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Starts watching; returns the function that stops it. Timers never keep the process alive. */
export function watchExpiry(notAfter: Date, log: (record: Record<string, unknown>) => void, now: () => number = Date.now): () => void {
  let timer: NodeJS.Timeout | undefined;
  const at = notAfter.toISOString();
  const check = () => {
    const left = notAfter.getTime() - now();
    if (left <= 0) {
      log({ event: 'identity-expired', notAfter: at, warning: 'clients refuse this server\'s certificate now: stop it, run cert-utility init-trust on its store, start it again' });
      return;
    }
    if (left <= RENEW_BEFORE_MS) {
      log({ event: 'identity-expiring', notAfter: at, hoursLeft: Math.floor(left / 3_600_000), warning: 'renew before then: stop the server, run cert-utility init-trust on its store, start it again' });
    }
    const next = left > RENEW_BEFORE_MS ? left - RENEW_BEFORE_MS : Math.min(DAY_MS, left);
    timer = setTimeout(check, Math.min(next, MAX_TIMER_MS));
    timer.unref();
  };
  check();
  return () => clearTimeout(timer);
}

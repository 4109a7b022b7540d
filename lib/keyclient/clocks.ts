// What key-client can add to a key-server's CERT_EXPIRED that says the time the key-server's
// clock read: how far apart the two clocks are, and, from the dates of the certificates the
// request rests on (their issuer's clock, a third witness), which of the two is likely wrong.

import { roughly, SET_CLOCK } from '../util/clock.ts';

/** A certificate a request rests on, as this machine knows it. */
export interface Dated {
  /** As a message names it: "this machine's certificate". */
  name: string;
  from: Date;
  until: Date;
  /** What to do when it is outside its dates by this machine's clock too. */
  fix: string;
}

/**
 * `serverTime` (the key-server's clock as it refused) beside `now` (this machine's): how far
 * apart, then the first of `certs` outside its dates by the key-server's clock, and whether this
 * machine's clock agrees. One in force here and not there points at the key-server's clock.
 */
export function clocksApart(serverTime: Date, now: Date, certs: readonly Dated[]): string {
  const apart = serverTime.getTime() - now.getTime();
  const how = Math.abs(apart) < 60_000 ? 'within a minute of' : `${roughly(apart)} ${apart < 0 ? 'behind' : 'ahead of'}`;
  const clocks = `the key-server's clock read ${serverTime.toISOString()}, ${how} this machine's`;
  const outside = (c: Dated, at: Date) => at < c.from || at > c.until;
  const cert = certs.find((c) => outside(c, serverTime));
  if (!cert) return clocks;
  const byServer = serverTime < cert.from ? `${cert.name} is not valid before ${cert.from.toISOString()}` : `${cert.name} ended at ${cert.until.toISOString()}`;
  if (!outside(cert, now)) return `${clocks}: by it, ${byServer}, while by this machine's clock it is in force: the key-server's clock is likely the wrong one: ${SET_CLOCK}`;
  return `${clocks}: ${byServer}, by this machine's clock too: ${cert.fix}`;
}

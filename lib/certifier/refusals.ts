// simpleserver's log, held to the channel's rate where anybody can make it grow: a refusal of
// evidence not proven bound to the session it came on (never verified, or a copy of sound evidence
// replayed) is a refusal like a refused connection, not a record for the audit.

import { limitRefusals, type ChannelLog, type LogRecord, type RefusalKind } from '../channel/index.ts';
import { LruMap } from '../util/lru.ts';
import type { CertificationLog } from './service.ts';

/** Connections whose closed line is still to come, at most: more than the server ever holds. */
const QUIET_HELD = 4096;

/**
 * The log of each request (`certification`) and of the channel, from `log`, and the channel's
 * records that are refusals of simpleserver's own (`refusal`, for serve). A refusal anybody may
 * have at will (one made before the evidence was proven bound to this session) goes through the
 * limiter (at most REFUSALS_PER_SECOND lines a second for each code, then a count), and its
 * connection's `closed` line is left out: the refusal stands for the connection, as a refused
 * handshake does on key-server. The closed line of a connection that asked nothing is held to the
 * same rate. Every allow and every refusal of evidence bound to this session is logged; an allow of
 * evidence that is not (the plain protocol: a captured request replayed is allowed again) is held to
 * the rate too, for each platform and measurement.
 */
export function certifierLogs(log: ChannelLog): { certification: CertificationLog; channel: ChannelLog; refusal: RefusalKind } {
  // A closed line that never comes (a connection gone before its request was answered) must not hold its id for ever.
  const quiet = new LruMap<string, true>(QUIET_HELD);
  // An allow's kind is its platform and measurement (only those the policy trusts ever get one), so a summary says what was certified.
  const refusal = limitRefusals(log, (r) => (r.decision === 'allow'
    ? { kind: `allow:${String(r.platform)}:${String(r.measurement)}`, names: { event: r.event, decision: r.decision, platform: r.platform, measurement: r.measurement } }
    : { kind: String(r.code), names: { event: r.event, decision: r.decision, code: r.code } }));
  return {
    certification: (r, atWill) => {
      const record: LogRecord = { event: 'certification', ...r };
      if (!atWill) return log(record);
      quiet.set(r.conn, true);
      refusal(record);
    },
    channel: (r) => {
      if (r.event === 'closed' && quiet.delete(String(r.conn))) return;
      log(r);
    },
    // A connection that asked nothing (anyone can open one: simpleserver asks no client certificate)
    // is held to the same rate, so an empty handshake cannot make the log grow at will either.
    refusal: (r) => {
      if (r.event !== 'closed' || (r as { requests?: unknown }).requests !== 0) return undefined;
      const reason = (r as { reason?: unknown }).reason;
      return { kind: `closed:${String(reason)}`, names: { event: r.event, reason, requests: 0 } };
    },
  };
}

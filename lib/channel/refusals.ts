// Refusals are what an attacker makes a server log (a flood of connections, of handshakes that
// fail, of requests that cannot be read): at most REFUSALS_PER_SECOND lines of each kind a
// second, the next line saying how many were left out (`suppressed`), so the log says what
// happened without growing with the attack.

import type { ChannelLog, LogRecord } from './types.ts';

/** Lines of one kind of refusal logged per second; the rest are counted into the next line. */
export const REFUSALS_PER_SECOND = 10;

/**
 * The kind of refusal a record is (each kind has its own count) and the fields naming that kind
 * in a summary line; undefined for a record that is no refusal, logged as it comes.
 */
export type RefusalKind = (record: LogRecord) => { kind: string; names: LogRecord } | undefined;

/** `log`, with the records `kindOf` calls refusals held to REFUSALS_PER_SECOND a second per kind. */
export function limitRefusals(log: ChannelLog, kindOf: RefusalKind): ChannelLog {
  const windows = new Map<string, { names: LogRecord; second: number; lines: number; suppressed: number; timer?: NodeJS.Timeout }>();
  return (record) => {
    const refusal = kindOf(record);
    if (!refusal) return log(record);
    const second = Math.floor(Date.now() / 1000);
    let w = windows.get(refusal.kind);
    if (!w) windows.set(refusal.kind, (w = { names: refusal.names, second, lines: 0, suppressed: 0 }));
    if (w.second !== second) [w.second, w.lines] = [second, 0];
    if (w.lines >= REFUSALS_PER_SECOND) {
      w.suppressed++;
      // Said even if no refusal of this kind follows: a line of its own, a second later.
      const window = w;
      window.timer ??= setTimeout(() => {
        window.timer = undefined;
        if (window.suppressed === 0) return;
        log({ ...window.names, suppressed: window.suppressed, summary: true });
        window.suppressed = 0;
      }, 1000).unref();
      return;
    }
    w.lines++;
    const suppressed = w.suppressed;
    w.suppressed = 0;
    log(suppressed ? { ...record, suppressed } : record);
  };
}

/**
 * The channel's own refusals, by reason: a `refused` connection, and one closed for a broken
 * frame, which is as much a refusal (garbage, a TLS client on the plain protocol).
 */
export const channelRefusal: RefusalKind = (record) => {
  const reason = String((record as { reason?: unknown }).reason ?? '');
  if (record.event !== 'refused' && !(record.event === 'closed' && reason === 'frame-error')) return undefined;
  return { kind: record.event === 'refused' ? reason : `closed:${reason}`, names: { event: record.event, reason } };
};

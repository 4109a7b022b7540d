// The wall clock as RFC 3339 text, for lines written per request (the server's log, the audit
// log): the same string new Date().toISOString() gives, made once per millisecond; and spans of
// time as people say them, for messages about clocks that disagree.

let madeAt = NaN;
let made = '';

/** Now, as new Date().toISOString() says it. */
export function isoNow(): string {
  const ms = Date.now();
  if (ms !== madeAt) [madeAt, made] = [ms, new Date(ms).toISOString()];
  return made;
}

const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;

/**
 * A span of `ms` (either sign) as a person says it, for messages about clocks: minutes under an
 * hour, hours and minutes under two days, days under two years, then years. Rounded to the
 * nearest; days and years `down` when asked (for "at least": 3.5 days is at least 3 days, not 4).
 */
export function roughly(ms: number, o: { down?: boolean } = {}): string {
  // Down in days and years only, where rounding moves the span by hours or months; a minute's is noise.
  const round = o.down ? Math.floor : Math.round;
  const minutes = Math.round(Math.abs(ms) / 60_000);
  if (minutes < 1) return 'less than a minute';
  if (minutes < 60) return plural(minutes, 'minute');
  if (minutes < 2 * 1440) return `${plural(Math.floor(minutes / 60), 'hour')}${minutes % 60 ? ` ${plural(minutes % 60, 'minute')}` : ''}`;
  const days = round(minutes / 1440);
  return days < 730 ? plural(days, 'day') : plural(round(days / 365.25), 'year');
}

/** What to do about a clock that disagrees with the others by more than certificates allow. */
export const SET_CLOCK = 'set it right (NTP, e.g. chrony; README "Clocks")';

/** Whether `at` is this machine's clock now (within a minute), not a time someone chose (explain --at). */
export function isThisClock(at: Date): boolean {
  return Math.abs(at.getTime() - Date.now()) < 60_000;
}

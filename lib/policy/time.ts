// Certifier time strings. The original tools write "2026-11-23T13:38:59.00000Z" with the
// seconds printed by "%8.5lf", so seconds under ten come out space-padded ("13:41: 6.00000Z"),
// which is not RFC 3339. We write zero-padded seconds and read both.

import { CertifierError } from '../errors/index.ts';
import { calendarTime } from '../util/calendar.ts';

const PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):\s?(\d{1,2})(?:\.(\d{1,9}))?Z$/;

/** Formats a time as the Certifier does, but with zero-padded seconds. */
export function formatCertifierTime(d: Date): string {
  const iso = d.toISOString(); // 2026-11-23T13:38:59.123Z
  return `${iso.slice(0, 19)}.${iso.slice(20, 23)}00Z`;
}

/** Parses a Certifier time string; throws BAD_FIELD when it is not one. */
export function parseCertifierTime(s: string, what = 'time'): Date {
  const m = PATTERN.exec(s);
  if (!m) throw new CertifierError('BAD_FIELD', `${what} "${s}" is not a time`);
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = Number((m[7] ?? '0').padEnd(3, '0').slice(0, 3));
  const at = calendarTime(y, mo, d, h, mi, sec, ms);
  if (!at) throw new CertifierError('BAD_FIELD', `${what} "${s}" is not a valid date`);
  return at;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|[+-](\d{2}):(\d{2}))$/;

/** Whether `s` is an RFC 3339 date and time, such as key-server writes (2026-12-05T09:10:19.123Z). */
export function isRfc3339(s: string): boolean {
  const m = RFC3339.exec(s);
  if (!m) return false;
  // By index, not destructured from a mapped copy: key-server checks a record's time on every retrieve.
  const n = (i: number) => Number(m[i] ?? 0);
  return calendarTime(n(1), n(2), n(3), n(4), n(5), n(6), 0, 60) !== undefined && n(7) <= 23 && n(8) <= 59; // a leap second's :60 is RFC 3339's
}

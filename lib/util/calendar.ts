// Times built from a date's fields. Date.UTC(y, ...) and new Date(y, ...) read a year of 0-99 as
// 1900-1999, so the fields go through setUTCFullYear, which takes the year as given.

/**
 * The UTC time these fields name, or undefined when they name none: a month of 1-12, a day it has
 * (in the proleptic Gregorian calendar: 0000-02-29 exists, 0100-02-29 does not), 23:59 at most,
 * seconds up to `maxSecond`.
 */
export function calendarTime(y: number, mo: number, d: number, h = 0, mi = 0, s = 0, ms = 0, maxSecond = 59): Date | undefined {
  if (!(h <= 23 && mi <= 59 && s <= maxSecond)) return undefined;
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d); // rolls 31 April over to 1 May: a date that does not round-trip does not exist
  if (t.getUTCFullYear() !== y || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d) return undefined;
  t.setUTCHours(h, mi, s, ms);
  return t;
}

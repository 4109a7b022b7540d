// Years 0000-0099 where a time is built from parsed fields: Date.UTC and new Date(y, ...) read
// them as 1900-1999, so a real date such as 0000-02-29 (year 0 is a leap year, 1900 is not) was
// refused, and 0050 was called "not a valid time" rather than the year 50 it is.

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';
import { readOne, seq, TAG, tlv } from '../../lib/pki/der.ts';
import { decodeTime, decodeValidity } from '../../lib/pki/names.ts';
import { isRfc3339, parseCertifierTime } from '../../lib/policy/index.ts';
import { calendarTime } from '../../lib/util/calendar.ts';

const ascii = (s: string) => new TextEncoder().encode(s);
const generalized = (s: string) => tlv(TAG.GENERALIZED_TIME, ascii(s));

// [text, the time it means, or undefined where it names no date]
const GENERALIZED: [string, string | undefined][] = [
  ['00500101000000Z', '0050-01-01T00:00:00.000Z'],
  ['00000229120000Z', '0000-02-29T12:00:00.000Z'],
  ['00991231235959Z', '0099-12-31T23:59:59.000Z'],
  ['00010101000000Z', '0001-01-01T00:00:00.000Z'],
  ['01000229000000Z', undefined], // 100 is no leap year
  ['19000229000000Z', undefined],
  ['00500230000000Z', undefined],
  ['20500101000000Z', '2050-01-01T00:00:00.000Z'],
];
const UTC: [string, string][] = [['500101000000Z', '1950-01-01T00:00:00.000Z'], ['491231235959Z', '2049-12-31T23:59:59.000Z'], ['000229000000Z', '2000-02-29T00:00:00.000Z']];

const CERTIFIER: [string, string | undefined][] = [
  ['0050-01-01T00:00:00.00000Z', '0050-01-01T00:00:00.000Z'],
  ['0000-02-29T13:41: 6.00000Z', '0000-02-29T13:41:06.000Z'],
  ['0099-12-31T23:59:59.12300Z', '0099-12-31T23:59:59.123Z'],
  ['0100-02-29T00:00:00.00000Z', undefined],
  ['1900-02-29T00:00:00.00000Z', undefined],
];
const RFC3339: [string, boolean][] = [
  ['0050-01-01T00:00:00Z', true], ['0000-02-29T23:59:60Z', true], ['0004-02-29T00:00:00.1+01:00', true],
  ['0100-02-29T00:00:00Z', false], ['1900-02-29T00:00:00Z', false], ['0050-02-29T00:00:00Z', false],
];
// [year, month, day, the time calendarTime makes, or undefined]
const CALENDAR: [number, number, number, string | undefined][] = [
  [50, 1, 1, '0050-01-01T00:00:00.000Z'], [0, 2, 29, '0000-02-29T00:00:00.000Z'], [0, 1, 1, '0000-01-01T00:00:00.000Z'],
  [99, 12, 31, '0099-12-31T00:00:00.000Z'], [100, 2, 29, undefined], [1900, 2, 29, undefined], [2024, 2, 29, '2024-02-29T00:00:00.000Z'],
  [50, 13, 1, undefined], [50, 0, 1, undefined], [50, 4, 31, undefined],
];

describe('times of years 0000-0099', () => {
  it('lib/util calendarTime: the year as given, and no date that does not exist', () => {
    for (const [y, mo, d, want] of CALENDAR) expect(calendarTime(y, mo, d)?.toISOString(), `${y}-${mo}-${d}`).to.equal(want);
  });

  it('X.509 GeneralizedTime: 0050 is the year 50; UTCTime keeps its 1950-2049 window', () => {
    for (const [text, want] of GENERALIZED) {
      if (want) expect(decodeTime(readOne(generalized(text)), 't').toISOString(), text).to.equal(want);
      else expect(() => decodeTime(readOne(generalized(text)), 't'), text).to.throw(/is not a valid time/);
    }
    for (const [text, want] of UTC) expect(decodeTime(readOne(tlv(TAG.UTC_TIME, ascii(text))), 't').toISOString(), text).to.equal(want);
  });

  it('X.509 validity: a GeneralizedTime of 0050 is refused as a date that must be UTCTime, not as no date', () => {
    const validity = seq(generalized('00500101000000Z'), generalized('20500101000000Z'));
    expect(() => decodeValidity(readOne(validity))).to.throw(/notBefore: a date before 2050 must be UTCTime/);
  });

  it('Certifier times (claims, user data): 0050 is the year 50, and 0000-02-29 exists', () => {
    for (const [text, want] of CERTIFIER) {
      if (want) expect(parseCertifierTime(text).toISOString(), text).to.equal(want);
      else expect(() => parseCertifierTime(text), text).to.throw(CertifierError, /not a valid date/);
    }
  });

  it('RFC 3339 (time_entered, a cryptstore\'s creation time): years 0000-0099 are checked as themselves', () => {
    for (const [text, want] of RFC3339) expect(isRfc3339(text), text).to.equal(want);
  });
});

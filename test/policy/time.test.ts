// isRfc3339: the times key-server records (time_entered, audit lines) and checks when it reads them back.

import { expect } from 'chai';
import { isRfc3339 } from '../../lib/policy/index.ts';

describe('policy time: isRfc3339', () => {
  it('takes a real date and time, Z or an offset, with or without fractions, and a leap second', () => {
    for (const s of ['2026-12-05T09:10:19.123Z', '2026-12-05T09:10:19Z', '2024-02-29T23:59:59.123456789+23:59', '2026-06-30T23:59:60Z', '2026-01-01T00:00:00-05:30', new Date(0).toISOString()]) {
      expect(isRfc3339(s), s).to.equal(true);
    }
  });

  it('refuses a day, hour, minute or offset that does not exist, and anything but the one form', () => {
    for (const s of ['2026-02-29T00:00:00Z', '2026-04-31T00:00:00Z', '2026-13-01T00:00:00Z', '2026-00-10T00:00:00Z', '2026-12-05T24:00:00Z', '2026-12-05T23:60:00Z',
      '2026-12-05T23:59:61Z', '2026-12-05T09:10:19+24:00', '2026-12-05T09:10:19+05:60', '2026-12-05 09:10:19Z', '2026-12-05T09:10:19', '2026-12-05T09:10:19.Z', '']) {
      expect(isRfc3339(s), s).to.equal(false);
    }
  });
});

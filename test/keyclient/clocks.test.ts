// key-client's reading of a CERT_EXPIRED that carries the key-server's time: how far apart the
// clocks are, and which is likely wrong, from the dates of the certificates the request rests on.

import { expect } from 'chai';
import { clocksApart, type Dated } from '../../lib/keyclient/clocks.ts';

describe('keyclient: the clocks of a CERT_EXPIRED refusal', () => {
  const HOUR = 3_600_000;
  const now = new Date('2026-12-07T12:00:00Z');
  const at = (hours: number) => new Date(now.getTime() + hours * HOUR);
  const machine: Dated = { name: "this machine's certificate", from: at(-1), until: at(23), fix: 'certify it again' };
  const credential: Dated = { name: 'the role credential', from: at(-48), until: at(-2), fix: 'get a new one' };

  it('blames the key-server\'s clock when what it finds outside its dates is in force by this machine\'s', () => {
    expect(clocksApart(at(-2), now, [machine])).to.equal("the key-server's clock read 2026-12-07T10:00:00.000Z, 2 hours behind this machine's: by it, this machine's certificate is not valid before 2026-12-07T11:00:00.000Z, while by this machine's clock it is in force: the key-server's clock is likely the wrong one: set it right (NTP, e.g. chrony; README \"Clocks\")");
  });

  it('says what to do about a certificate outside its dates by both clocks, after how far apart they are', () => {
    expect(clocksApart(at(0.5), now, [machine, credential])).to.equal("the key-server's clock read 2026-12-07T12:30:00.000Z, 30 minutes ahead of this machine's: the role credential ended at 2026-12-07T10:00:00.000Z, by this machine's clock too: get a new one");
  });

  it('names only how far apart the clocks are when nothing it knows of is outside its dates by the key-server\'s', () => {
    expect(clocksApart(new Date(now.getTime() + 20_000), now, [machine])).to.equal("the key-server's clock read 2026-12-07T12:00:20.000Z, within a minute of this machine's");
  });
});

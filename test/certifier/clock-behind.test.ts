// init-trust on a machine whose clock is behind simpleserver's (a VM at first boot, before NTP),
// in this process with a chosen clock: what is refused says this clock is the likely fault, by
// about how much, and what to do.

import { expect } from 'chai';
import { generateKeyPair } from '../../lib/crypto/index.ts';
import { SimulatedEnclave } from '../../lib/attest/index.ts';
import { requestCertificate } from '../../lib/certifier/index.ts';
import { rejects } from '../support/rejects.ts';
import { m, startLogged } from './flood.ts';

const HOURS_2 = 2 * 3_600_000;

describe('init-trust on a clock two hours behind simpleserver\'s', function () {
  this.timeout(30_000);
  let s: Awaited<ReturnType<typeof startLogged>>;
  before(async () => {
    // A policy certificate made a day ago: the certificates simpleserver makes are what is not valid yet.
    s = await startLogged({}, { policyCertMadeAt: new Date(Date.now() - 86_400_000) });
  });
  after(() => s.server.close());

  const ask = async (now: () => Date, onRequest?: () => void) => requestCertificate({
    host: '127.0.0.1', port: s.server.address.port, policyCert: s.policyCert,
    platform: new SimulatedEnclave(s.platformKeys.attestKey, s.platformKeys.endorsement, m),
    authKey: (await generateKeyPair('p256')).privateKey, now, ...(onRequest ? { onRequest } : {}),
  });

  it('says the certificate just issued is not valid yet because this clock is about 2 hours behind simpleserver\'s (CERT_EXPIRED)', async () => {
    // Behind only once the request has gone: simpleserver's own certificate was accepted, the new one is not.
    let behind = false;
    const e = await rejects(ask(() => new Date(Date.now() - (behind ? HOURS_2 : 0)), () => void (behind = true)), 'CERT_EXPIRED');
    expect(e.exitStatus).to.equal(4);
    expect(e.message).to.match(/^the newly issued certificate is not valid before \S+ \(checked at \S+\) \(not-yet-valid\): this machine's clock is about 2 hours behind simpleserver's: set it right \(NTP, e\.g\. chrony; README "Clocks"\), then run init-trust again$/);
  });

  it('says simpleserver\'s certificate is not valid yet because this clock is at least 2 hours behind (CERT_EXPIRED)', async () => {
    const e = await rejects(ask(() => new Date(Date.now() - HOURS_2)), 'CERT_EXPIRED');
    expect(e.message).to.match(/^the peer certificate is not valid before \S+ \(checked at \S+\) \(not-yet-valid\): this machine's clock is at least 2 hours behind simpleserver's: set it right \(NTP, e\.g\. chrony; README "Clocks"\)$/);
  });

  it('says a policy certificate made an hour ago is not valid yet because this clock is at least an hour behind its maker\'s (CERT_EXPIRED)', async () => {
    const recent = await startLogged({}, { policyCertMadeAt: new Date(Date.now() - 3_600_000) });
    try {
      const e = await rejects(requestCertificate({
        host: '127.0.0.1', port: recent.server.address.port, policyCert: recent.policyCert,
        platform: new SimulatedEnclave(recent.platformKeys.attestKey, recent.platformKeys.endorsement, m),
        authKey: (await generateKeyPair('p256')).privateKey, now: () => new Date(Date.now() - HOURS_2),
      }), 'CERT_EXPIRED');
      expect(e.message).to.match(/^the policy certificate is not valid before \S+ \(checked at \S+\) \(not-yet-valid\): this machine's clock is at least 1 hour behind that of the machine that made the policy certificate: set it right \(NTP, e\.g\. chrony; README "Clocks"\)$/);
    } finally {
      await recent.server.close();
    }
  });
});

// A certification whose TLS handshake a stopping simpleserver cuts fails as a hang-up
// (UNREACHABLE, exit 3, which init-trust's callers retry), never as a refusal; one whose
// handshake never ends fails in the time its caller gave it.

import { expect } from 'chai';
import net, { type AddressInfo } from 'node:net';
import { generateKeyPair } from '../../lib/crypto/index.ts';
import { createPolicyCert } from '../../lib/pki/index.ts';
import { SimulatedEnclave } from '../../lib/attest/index.ts';
import { requestCertificate } from '../../lib/certifier/index.ts';
import { rejectsWith } from '../channel/harness.ts';
import { m, startLogged } from './flood.ts';

describe('simpleserver: a certification cut by a stop', () => {
  it('is UNREACHABLE when the server stops as the handshake ends and its event loop then stalls past the half second it gives handshakes', async () => {
    const { policyCert, platformKeys, server } = await startLogged();
    const authKey = (await generateKeyPair('p256')).privateKey;
    const platform = new SimulatedEnclave(platformKeys.attestKey, platformKeys.endorsement, m);
    // Evidence is made once the client's side of the handshake is done: the server has not read
    // its last flight yet when it is told to stop and its event loop (the client's too) is held.
    let closing: Promise<void> | undefined;
    const attest = platform.attest.bind(platform);
    platform.attest = (userData) => {
      closing = server.close(5000);
      const until = performance.now() + 700;
      while (performance.now() < until);
      return attest(userData);
    };
    try {
      const e = await rejectsWith(requestCertificate({ host: '127.0.0.1', port: server.address.port, policyCert, platform, authKey }), 'UNREACHABLE');
      expect(e.exitStatus).to.equal(3);
    } finally {
      await (closing ?? server.close());
    }
  });

  it('gives up on a handshake in the time its caller gives (handshakeTimeoutMs), not the 10 s of cert-utility: TIMEOUT, exit 3', async () => {
    // A server that takes the connection and never says a word of TLS.
    const silent = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const policyKey = (await generateKeyPair('p256')).privateKey;
      const policyCert = await createPolicyCert({ privateKey: policyKey, domain: 'silent' });
      const authKey = (await generateKeyPair('p256')).privateKey;
      const platform = new SimulatedEnclave(authKey, new Uint8Array(), m); // never asked: no handshake ends
      const t0 = performance.now();
      const certifying = requestCertificate({ host: '127.0.0.1', port: (silent.address() as AddressInfo).port, policyCert, platform, authKey, handshakeTimeoutMs: 300 });
      const e = await rejectsWith(certifying, 'TIMEOUT');
      expect(e.exitStatus).to.equal(3);
      expect(performance.now() - t0, 'ms until TIMEOUT').to.be.below(5_000);
    } finally {
      silent.close();
    }
  });
});

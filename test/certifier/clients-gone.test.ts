// simpleserver and machines that leave before their answer: each sends a sound request bound to
// its session, then closes (TLS close_notify), drops the connection, or resets it. The server
// decides and writes each answer into a connection that is gone, and goes on serving others.

import { expect } from 'chai';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { generateKeyPair, publicKeyOf, toKeyMessage } from '../../lib/crypto/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { encode, encodeFrame } from '../../lib/wire/index.ts';
import { formatCertifierTime } from '../../lib/policy/index.ts';
import { SimulatedEnclave } from '../../lib/attest/index.ts';
import { requestCertificate, SESSION_BINDING_BYTES, SESSION_BINDING_LABEL } from '../../lib/certifier/index.ts';
import { waitFor } from '../channel/harness.ts';
import { m, startLogged } from './flood.ts';

type Leaving = 'end' | 'destroy' | 'reset';

describe('simpleserver: machines that leave before their answer', function () {
  this.timeout(30_000);

  it('answers into connections closed, dropped or reset after their request, one line each, and certifies the next machine', async () => {
    const s = await startLogged();
    try {
      const enclave = new SimulatedEnclave(s.platformKeys.attestKey, s.platformKeys.endorsement, m);
      const key = (await generateKeyPair('p256')).privateKey;
      /** Sends a request bound to its own session, then leaves as `how` says once it is written. */
      const leave = (how: Leaving) => new Promise<void>((resolve, reject) => {
        const raw = netConnect({ host: '127.0.0.1', port: s.server.address.port });
        raw.on('error', () => {});
        const tls = tlsConnect({ socket: raw, ca: toPem(s.policyCert), checkServerIdentity: () => undefined }, () => {
          const sessionBinding = new Uint8Array(tls.exportKeyingMaterial(SESSION_BINDING_BYTES, SESSION_BINDING_LABEL, Buffer.alloc(0)));
          enclave.attest({ enclaveType: enclave.type, time: formatCertifierTime(new Date()), enclaveKey: toKeyMessage(publicKeyOf(key), 'auth-key'), sessionBinding }).then((support) => {
            const request = encode('trust_request_message', { requestingEnclaveTag: 'a', providingEnclaveTag: 'b', submittedEvidenceType: 'vse-attestation-package', purpose: 'authentication', support });
            tls.write(encodeFrame(request), () => {
              if (how === 'end') tls.end();
              else if (how === 'destroy') tls.destroy();
              else raw.resetAndDestroy();
              resolve();
            });
          }, reject);
        });
        tls.on('error', () => {});
      });
      const ways: Leaving[] = ['end', 'destroy', 'reset'];
      await Promise.all(Array.from({ length: 30 }, (_, i) => leave(ways[i % 3]!)));
      await waitFor(() => s.lines.filter((l) => l.record.event === 'closed').length === 30, 20_000, 'a closed line for each');
      const certified = await requestCertificate({ host: '127.0.0.1', port: s.server.address.port, policyCert: s.policyCert, platform: enclave, authKey: key });
      expect(certified.peer.measurement).to.deep.equal(m);
      await waitFor(() => s.lines.filter((l) => l.record.event === 'closed').length === 31, 20_000, 'the last closed line');
      const decisions = s.lines.filter((l) => l.record.event === 'certification').map((l) => l.record.decision);
      expect(decisions).to.deep.equal(Array(31).fill('allow'));
    } finally {
      await s.server.close();
    }
  });
});

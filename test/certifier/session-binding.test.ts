// The evidence is bound to its TLS session as the README's design says: the machine puts the RFC
// 5705 exporter value labelled EXPERIMENTAL-certifier-keys/attestation-binding/v1 (empty context)
// into its signed user data, and simpleserver compares it with its own side. Computed here from the
// raw socket with the README's label, not with the suite's constant, so a changed label (which
// every machine of an earlier version would meet) fails.

import { expect } from 'chai';
import tls from 'node:tls';
import { generateKeyPair, publicKeyOf, toKeyMessage } from '../../lib/crypto/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { decode, encode, encodeFrame, FrameDecoder, type TrustResponseMessage } from '../../lib/wire/index.ts';
import { formatCertifierTime } from '../../lib/policy/index.ts';
import { SimulatedEnclave } from '../../lib/attest/index.ts';
import { m, startLogged } from './flood.ts';

const LABEL = 'EXPERIMENTAL-certifier-keys/attestation-binding/v1';

describe('simpleserver: evidence bound to the TLS session by the exporter the README names', function () {
  this.timeout(30_000);

  it('certifies evidence carrying the exporter value of its session under that label, and refuses one under another label (SESSION_MISMATCH)', async () => {
    const s = await startLogged();
    const platform = new SimulatedEnclave(s.platformKeys.attestKey, s.platformKeys.endorsement, m);
    /** The answer to a request whose binding is this session's exporter value under `label`. */
    const certify = async (label: string): Promise<TrustResponseMessage> => {
      const socket = tls.connect({ host: '127.0.0.1', port: s.server.address.port, ca: toPem(s.policyCert), checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
      try {
        await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
        const sessionBinding = new Uint8Array(socket.exportKeyingMaterial(32, label, Buffer.alloc(0)));
        const support = await platform.attest({
          enclaveType: platform.type, time: formatCertifierTime(new Date()),
          enclaveKey: toKeyMessage(publicKeyOf((await generateKeyPair('p256')).privateKey), 'auth-key'), sessionBinding,
        });
        socket.write(encodeFrame(encode('trust_request_message', {
          requestingEnclaveTag: 'requesting-enclave', providingEnclaveTag: 'providing-enclave',
          submittedEvidenceType: 'vse-attestation-package', purpose: 'authentication', support,
        })));
        const decoder = new FrameDecoder(1024 * 1024);
        const answer = await new Promise<Uint8Array>((resolve, reject) => {
          socket.on('data', (chunk: Buffer) => {
            const [frame] = decoder.push(chunk);
            if (frame) resolve(frame);
          }).once('close', () => reject(new Error('closed without an answer'))).once('error', reject);
        });
        return decode<TrustResponseMessage>('trust_response_message', answer);
      } finally {
        socket.destroy();
      }
    };
    try {
      const bound = await certify(LABEL);
      expect([bound.status, bound.errorCode]).to.deep.equal(['succeeded', undefined]);
      expect(bound.artifact).to.have.length.above(0);
      const other = await certify(`${LABEL.slice(0, -1)}2`);
      expect([other.status, other.errorCode]).to.deep.equal(['failed', 'SESSION_MISMATCH']);
    } finally {
      await s.server.close();
    }
  });
});

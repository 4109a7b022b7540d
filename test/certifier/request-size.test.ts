// simpleserver reads a request whole before it verifies anything in it, so what an unverified
// connection may hold is the frame limit: CERTIFIER_FRAME_LIMIT (64 KiB), not the channel's 1 MiB.
// 256 connections each holding most of a 1 MiB frame took simpleserver from 61 to 355 MiB (RSS,
// loopback, TLS); at 64 KiB, to 105 MiB. init-trust refuses to send a larger request itself.

import { expect } from 'chai';
import { generateKeyPair } from '../../lib/crypto/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { decode, type TrustResponseMessage } from '../../lib/wire/index.ts';
import { SimulatedEnclave, type Platform } from '../../lib/attest/index.ts';
import { requestCertificate } from '../../lib/certifier/index.ts';
import { connect } from '../../lib/channel/index.ts';
import { waitFor } from '../channel/harness.ts';
import { rejects } from '../support/rejects.ts';
import { m, startLogged } from './flood.ts';

const LIMIT = 64 * 1024; // README, simpleserver

describe('simpleserver: the size of a request', function () {
  this.timeout(30_000);

  it('closes a connection announcing a request over 64 KiB at once, FRAME_TOO_LARGE, and reads one of 64 KiB', async () => {
    const s = await startLogged();
    try {
      const open = () => connect({ host: '127.0.0.1', port: s.server.address.port, tls: { ca: toPem(s.policyCert) }, limits: { frameLimit: 2 * LIMIT } });
      const over = await open();
      const t0 = Date.now();
      await rejects(over.request(new Uint8Array(LIMIT + 1)), 'UNREACHABLE');
      expect(Date.now() - t0, 'refused on its header, not after the read timeout').to.be.below(5_000);
      await waitFor(() => s.lines.some((l) => l.record.event === 'closed' && l.record.reason === 'frame-error'), 20_000, 'the closed line');
      expect(s.lines.find((l) => l.record.event === 'closed')!.record).to.include({ reason: 'frame-error', code: 'FRAME_TOO_LARGE', requests: 0 });
      const at = await open();
      try {
        // Zeros are no trust request: read whole and refused for what it is.
        const answer = decode<TrustResponseMessage>('trust_response_message', await at.request(new Uint8Array(LIMIT)));
        expect(answer).to.include({ status: 'failed', errorCode: 'DECODE_FAILED' });
      } finally {
        await at.close().catch(() => {});
      }
    } finally {
      await s.server.close();
    }
  });

  it('refuses on the machine\'s side to send a request over 64 KiB (FRAME_TOO_LARGE), and the server hears nothing of it', async () => {
    const s = await startLogged();
    try {
      const real = new SimulatedEnclave(s.platformKeys.attestKey, s.platformKeys.endorsement, m);
      const padded: Platform = {
        type: real.type, isTestPlatform: true, measurement: real.measurement, sealingProtector: () => real.sealingProtector(),
        attest: async (userData) => {
          const pkg = await real.attest(userData);
          return { ...pkg, factAssertion: [...(pkg.factAssertion ?? []), { evidenceType: 'padding', serializedEvidence: new Uint8Array(LIMIT) }] };
        },
      };
      await rejects(requestCertificate({ host: '127.0.0.1', port: s.server.address.port, policyCert: s.policyCert, platform: padded, authKey: (await generateKeyPair('p256')).privateKey }), 'FRAME_TOO_LARGE');
      await waitFor(() => s.lines.some((l) => l.record.event === 'closed'), 20_000, 'the closed line');
      expect(s.lines.filter((l) => l.record.event === 'certification')).to.deep.equal([]);
      expect(s.lines.find((l) => l.record.event === 'closed')!.record).to.include({ requests: 0 });
    } finally {
      await s.server.close();
    }
  });
});

// Anybody who can reach simpleserver can send it requests that cannot be read: their refusals
// are held to ten lines a second for each code, with counts of the rest, and their connections
// add no closed line; a machine certified in the middle of such a flood is served and logged in full.

import { expect } from 'chai';
import { join } from 'node:path';
import { generateKeyPair, randomBytes } from '../../lib/crypto/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { generateSimulatedPlatform, SimulatedEnclave } from '../../lib/attest/index.ts';
import { initTrust, requestCertificate } from '../../lib/certifier/index.ts';
import { connect } from '../../lib/channel/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { tempDir } from '../support/helpers.ts';
import { domain, m, mostInOneSecond, startLogged } from './flood.ts';

describe('simpleserver: a flood of unreadable requests', function () {
  this.timeout(30_000);
  const tmp = tempDir('refusal-flood-');
  after(() => tmp.cleanup());

  it('logs at most ten refusals a second for each code, counts the rest, and still logs and serves a good certification', async () => {
    const { policyCert, platformKeys, lines, server } = await startLogged();
    const store = await Cryptstore.create(join(tmp.dir, 'store'), new KeyFileProtector(randomBytes(32)));
    try {
      const garbage = async () => {
        const c = await connect({ host: '127.0.0.1', port: server.address.port, tls: { ca: toPem(policyCert) } });
        await c.request(new Uint8Array([0x0a, 0x01, 0x41])).catch(() => {});
        await c.close().catch(() => {});
      };
      const flood = 60;
      const platform = new SimulatedEnclave(platformKeys.attestKey, platformKeys.endorsement, m);
      const [, certified] = await Promise.all([
        Promise.all(Array.from({ length: flood / 2 }, garbage)),
        initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port: server.address.port }),
        Promise.all(Array.from({ length: flood / 2 }, garbage)),
      ]);
      const refusals = () => lines.filter((l) => l.record.event === 'certification' && l.record.code === 'MISSING_FIELD');
      expect(await mostInOneSecond(refusals, flood, 'refusal')).to.be.at.most(10); // README, Threat model
      // The good certification: served, and its line in full.
      const allowed = lines.filter((l) => l.record.event === 'certification' && l.record.decision === 'allow').map((l) => l.record);
      expect(allowed).to.have.length(1);
      expect(allowed[0]).to.include({ serial: certified.peer.serialHex, measurement: certified.peer.measurementHex });
      // No closed line for a refused connection: only the good one's.
      const closed = lines.filter((l) => l.record.event === 'closed').map((l) => l.record.conn);
      expect(closed).to.deep.equal([allowed[0]!.conn]);
      // Connections that ask nothing at all (a handshake, then gone): their closed lines are held to the same rate.
      const before = lines.length;
      await Promise.all(Array.from({ length: 40 }, async () => {
        const c = await connect({ host: '127.0.0.1', port: server.address.port, tls: { ca: toPem(policyCert) } });
        await c.close().catch(() => {});
      }));
      const empty = () => lines.slice(before).filter((l) => l.record.event === 'closed');
      expect(await mostInOneSecond(empty, 40, 'empty connection')).to.be.at.most(10);
    } finally {
      await server.close();
      await store.close();
    }
  });

  it('holds to the same rate refusals of sound evidence from a platform the policy does not trust: anybody can make a simulated platform of their own', async () => {
    // 40 handshakes at once on a busy machine: each side gives them 30 s, not 10, so that none
    // times out there and each certification ends as its refusal.
    const handshakeTimeoutMs = 30_000;
    const [{ policyCert, lines, server }, own] = await Promise.all([startLogged({}, { limits: { handshakeTimeoutMs } }), generateSimulatedPlatform({ alg: 'p256' })]);
    try {
      const flood = 40;
      const platform = new SimulatedEnclave(own.attestKey, own.endorsement, m);
      const authKey = (await generateKeyPair('p256')).privateKey;
      const codes = await Promise.all(Array.from({ length: flood }, () => requestCertificate({ host: '127.0.0.1', port: server.address.port, policyCert, platform, authKey, handshakeTimeoutMs }).then(() => 'allowed', (e) => e.code)));
      expect(new Set(codes)).to.deep.equal(new Set(['PLATFORM_NOT_TRUSTED']));
      const refusals = () => lines.filter((l) => l.record.event === 'certification' && l.record.code === 'PLATFORM_NOT_TRUSTED');
      expect(await mostInOneSecond(refusals, flood, 'refusal')).to.be.at.most(10);
      expect(lines.filter((l) => l.record.event === 'closed')).to.deep.equal([]);
    } finally {
      await server.close();
    }
  });
});

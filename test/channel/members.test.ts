// What a member of the domain may present in the TLS handshake to a server judging clients as
// key-server does (validateAdmission, then requireMachine): extra certificates change nothing of
// who it is, and a certificate it signed itself, with its own admission certificate's key, admits
// nobody.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { KeyObject, webcrypto } from 'node:crypto';
import tls from 'node:tls';
import { generateKeyPair, publicKeyOf, sha256, toHex, utf8 } from '../../lib/crypto/index.ts';
import { createPolicyCert, issueAdmissionCert, readCertificateSummary, toPem, validateAdmission, type ValidatedPeer } from '../../lib/pki/index.ts';
import { requireMachine } from '../../lib/certifier/index.ts';
import { serve, type ChannelServer } from '../../lib/channel/index.ts';
import { waitFor } from './harness.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const pkcs8 = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }) as string;

describe('channel: what a member presents in the handshake', function () {
  this.timeout(20_000);
  const domain = 'members';
  const measurement = sha256(utf8('a member'));
  let policyKey: KeyObject;
  let policyCert: Uint8Array;
  let server: ChannelServer;
  const peers: ValidatedPeer[] = [];
  const logs: Record<string, unknown>[] = [];

  const machine = async () => {
    const key = (await generateKeyPair('p256')).privateKey;
    const der = await issueAdmissionCert({ policyKey, policyCert, subjectPublicKey: publicKeyOf(key), measurement, platform: 'simulated-enclave', domain, validitySeconds: 3600 });
    return { key, der };
  };

  /** Presents `cert` (PEM, leaf first) with `key`; resolves 'answered' or 'closed'. */
  const present = (key: string, cert: string): Promise<'answered' | 'closed'> => new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: server.address.port, ca: toPem(policyCert), key, cert, checkServerIdentity: () => undefined });
    s.on('error', () => {});
    // One frame once the server has accepted us (its tickets), from outside OpenSSL's read.
    s.once('session', () => setImmediate(() => s.write(Buffer.from([1, 0, 0, 0, 0x2a]))));
    s.once('data', () => {
      resolve('answered');
      s.destroy();
    });
    s.once('close', () => resolve('closed'));
  });

  before(async () => {
    policyKey = (await generateKeyPair('p256')).privateKey;
    policyCert = await createPolicyCert({ privateKey: policyKey, domain });
    const own = await machine();
    server = await serve<ValidatedPeer>({
      port: 0, log: (r) => logs.push(r),
      tls: {
        key: own.key, cert: toPem(own.der), ca: toPem(policyCert), requestCert: true,
        verifyPeer: (chain) => requireMachine(validateAdmission({ chain, policyCert, at: new Date(), usage: 'client' }), 'client'),
      },
      handler: async (request, conn) => {
        peers.push(conn.peer!);
        return request;
      },
    });
  });
  after(() => server?.close(100));
  beforeEach(() => {
    peers.length = 0;
    logs.length = 0;
  });

  it('admits a chain carrying certificates after the leaf (another policy certificate, the pinned one 50 times) and tells the handler the leaf\'s serial and measurement', async () => {
    const m = await machine();
    const otherPolicy = await createPolicyCert({ privateKey: (await generateKeyPair('p256')).privateKey, domain });
    for (const extra of [toPem(otherPolicy), toPem(policyCert).repeat(50)]) {
      expect(await present(pkcs8(m.key), toPem(m.der) + extra)).to.equal('answered');
    }
    expect(peers.map((p) => [p.serialHex, p.measurementHex])).to.deep.equal(Array(2).fill([readCertificateSummary(m.der).serialHex, toHex(measurement)]));
  });

  for (const named of ['itself', 'the policy certificate'] as const) {
    it(`refuses a certificate a member signed with its own admission certificate's key, naming ${named} as issuer, and sends it with its own: the handler never runs`, async () => {
      const m = await machine();
      const issuer = named === 'itself' ? new x509.X509Certificate(m.der).subject : new x509.X509Certificate(policyCert).subject;
      const signingKey = await webcrypto.subtle.importKey('pkcs8', m.key.export({ type: 'pkcs8', format: 'der' }), EC, false, ['sign']);
      const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      // Another measurement, the whole point of minting one.
      const minted = await x509.X509CertificateGenerator.create({
        subject: `O=Measured-${'ab'.repeat(32)}, CN=CertifierUsers`, issuer, publicKey: keys.publicKey, signingKey, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
        notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000),
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        ],
      });
      expect(await present(pkcs8(KeyObject.from(keys.privateKey)), `${minted.toString('pem')}\n${toPem(m.der)}`)).to.equal('closed');
      await waitFor(() => logs.some((r) => r.event === 'refused'), 10_000, 'the refusal');
      expect(logs.find((r) => r.event === 'refused')).to.include({ reason: 'untrusted-peer', code: 'UNTRUSTED_PEER' });
      expect(peers).to.have.length(0);
    });
  }
});

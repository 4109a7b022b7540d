// Throwaway P-256 certificate authorities and leaf certificates for the channel tests.
// Each test run makes its own, so no key material lives in the repository.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const HOUR = 3600_000;

export interface TestLeaf {
  /** PKCS#8 PEM private key */
  key: string;
  /** PEM certificate */
  cert: string;
  der: Uint8Array;
}

export interface TestCa {
  cert: string;
  der: Uint8Array;
  /**
   * Issues an end-entity certificate with the given common name: for TLS client and server
   * authentication, valid from an hour ago for a day, unless told.
   */
  issue(commonName: string, validity?: { notBefore?: Date; notAfter?: Date }, usages?: ('serverAuth' | 'clientAuth')[]): Promise<TestLeaf>;
}

async function pemKey(key: CryptoKey): Promise<string> {
  // Node accepts the WebCrypto key as a KeyObject; PEM keeps the test identity close to a file's.
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** A self-signed CA named `/O=<domain>/policyAuthority`, like a policy certificate. */
export async function makeCa(domain: string): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const name = `O=${domain}/policyAuthority, CN=${domain} test root`;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name,
    keys,
    signingAlgorithm: SIGN,
    notBefore: new Date(Date.now() - HOUR),
    notAfter: new Date(Date.now() + 24 * HOUR),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    cert: root.toString('pem'),
    der: new Uint8Array(root.rawData),
    async issue(commonName: string, validity: { notBefore?: Date; notAfter?: Date } = {}, usages: ('serverAuth' | 'clientAuth')[] = ['serverAuth', 'clientAuth']): Promise<TestLeaf> {
      const leafKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
      const leaf = await x509.X509CertificateGenerator.create({
        subject: `O=Measured-${commonName}, CN=CertifierUsers`,
        issuer: root.subject,
        publicKey: leafKeys.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: SIGN,
        notBefore: validity.notBefore ?? new Date(Date.now() - HOUR),
        notAfter: validity.notAfter ?? new Date(Date.now() + 24 * HOUR),
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension(usages.map((u) => x509.ExtendedKeyUsage[u])),
          await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
        ],
      });
      return { key: await pemKey(leafKeys.privateKey), cert: leaf.toString('pem'), der: new Uint8Array(leaf.rawData) };
    },
  };
}

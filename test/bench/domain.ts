// The throwaway policy domain the benchmark sections share: a P-256 policy key and its
// self-signed certificate, P-256 admission certificates issued by it (the same kind simpleserver
// issues), and machine identities built from them: a MachineIdentity for KeyClient, or a
// cryptstore holding the key and certificate under the tags init-trust uses, so the real
// programs (and startKeyServer) load it the way they load a certified machine's.
// Built in-process from lib/pki rather than through simpleserver: the sections time what a
// certified machine does, not how it got certified.

import type { KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { generateKeyPair, randomBytes, toKeyMessage } from '../../lib/crypto/index.ts';
import { encode } from '../../lib/wire/index.ts';
import { createPolicyCert, issueAdmissionCert, toPem, validateAdmission } from '../../lib/pki/index.ts';
import { admissionCertTag, authKeyTag, type MachineIdentity } from '../../lib/certifier/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';

export interface BenchDomain {
  name: string;
  policyKey: KeyObject;
  /** DER */
  policyCert: Uint8Array;
  policyPem: string;
}

/** A P-256 admission certificate and its private key. */
export interface Leaf {
  key: KeyObject;
  /** DER */
  cert: Uint8Array;
  pem: string;
}

const DAY_SECONDS = 86_400;

export async function makeDomain(name: string): Promise<BenchDomain> {
  const policyKey = (await generateKeyPair('p256')).privateKey;
  const policyCert = await createPolicyCert({ privateKey: policyKey, domain: name });
  return { name, policyKey, policyCert, policyPem: toPem(policyCert) };
}

/** A fresh P-256 key and its admission certificate (one day), as simpleserver would issue it. */
export async function issueLeaf(d: BenchDomain, o: { measurement: Uint8Array; platform: string }): Promise<Leaf> {
  const { privateKey, publicKey } = await generateKeyPair('p256');
  const cert = await issueAdmissionCert({
    policyKey: d.policyKey, policyCert: d.policyCert, subjectPublicKey: publicKey,
    measurement: o.measurement, platform: o.platform, domain: d.name, validitySeconds: DAY_SECONDS,
  });
  return { key: privateKey, cert, pem: toPem(cert) };
}

/** What loadIdentity would return for a machine holding `leaf` (checked the same way). */
export function machineIdentity(d: BenchDomain, leaf: Leaf): MachineIdentity {
  const peer = validateAdmission({ chain: [leaf.cert], policyCert: d.policyCert, at: new Date(), usage: 'any' });
  return { key: leaf.key, certificate: leaf.cert, peer };
}

/**
 * The identity of a client that only presents `leaf` (KeyClient reads key and certificate, never
 * peer). Not validated here on purpose: validating would put the certificate in lib/pki's cache
 * in this process, and an in-process server would then skip the work a first-seen client costs.
 */
export function presentedIdentity(leaf: Leaf): MachineIdentity {
  return {
    key: leaf.key,
    certificate: leaf.cert,
    get peer(): never {
      throw new Error('presentedIdentity: this certificate was never validated here');
    },
  };
}

/**
 * A new cryptstore in `dir` holding `leaf` as init-trust leaves it, protected by a fresh random
 * key written to `keyFile` (so `--key-file keyFile` opens it: no scrypt, no platform files).
 * Returned open; the caller closes it (a child program cannot open it while this process holds it).
 */
/** The two items init-trust keeps in a machine's store for `domain`: its key and its admission certificate. */
export function identityItems(domain: string, key: KeyObject, cert: Uint8Array) {
  return [
    { tag: authKeyTag(domain), blob: encode('key_message', toKeyMessage(key, 'auth-key')), options: { type: 'key-message-serialized-protobuf' as const, exportable: false } },
    { tag: admissionCertTag(domain), blob: cert, options: { type: 'X509-der-cert' as const, exportable: true } },
  ];
}

export async function certifiedStore(d: BenchDomain, leaf: Leaf, dir: string, keyFile: string): Promise<Cryptstore> {
  const storeKey = randomBytes(32);
  writeFileSync(keyFile, storeKey, { mode: 0o600 });
  const store = await Cryptstore.create(dir, new KeyFileProtector(storeKey, `the key file ${keyFile}`));
  try {
    await store.putAll(identityItems(d.name, leaf.key, leaf.cert));
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}

// init-trust keeps nothing it has not checked: the server it asks must be the policy authority,
// and the certificate that comes back must name this machine's key and measurement. Here against
// fake servers on 127.0.0.1 presenting real certificates made with the policy key.

import { expect } from 'chai';
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { encode } from '../../lib/wire/index.ts';
import { generateKeyPair, randomBytes, sha256, utf8 } from '../../lib/crypto/index.ts';
import { createPolicyCert, issueAdmissionCert, toPem } from '../../lib/pki/index.ts';
import { generateSimulatedPlatform, SIMULATED_ENCLAVE, SimulatedEnclave } from '../../lib/attest/index.ts';
import { authKeyTag, initTrust, issueAuthorityIdentity, requestCertificate } from '../../lib/certifier/index.ts';
import { serve, type ChannelServer } from '../../lib/channel/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';

describe('init-trust: what it accepts from the server it asks', function () {
  this.timeout(30_000);
  const tmp = tempDir('authority-answers-');
  const servers: ChannelServer[] = [];
  const stores: Cryptstore[] = [];
  after(async () => {
    for (const s of servers) await s.close();
    for (const s of stores) await s.close();
    tmp.cleanup();
  });
  const domain = 'answers';
  const m = sha256(utf8('program'));

  async function setup() {
    const policyKey = (await generateKeyPair('p256')).privateKey;
    const policyCert = await createPolicyCert({ privateKey: policyKey, domain, now: new Date(Date.now() - 3_600_000) });
    const keys = await generateSimulatedPlatform({ alg: 'p256' });
    const store = await Cryptstore.create(join(tmp.dir, `store-${stores.length}`), new KeyFileProtector(randomBytes(32)));
    stores.push(store);
    /** A machine's admission certificate, as simpleserver would issue it. */
    const admission = (subjectPublicKey: KeyObject, measurement = m) => issueAdmissionCert({ policyKey, policyCert, subjectPublicKey, measurement, platform: SIMULATED_ENCLAVE, domain, validitySeconds: 86_400 });
    const authority = await issueAuthorityIdentity({ policyKey, policyCert, domain });
    return { policyCert, store, admission, authority, platform: new SimulatedEnclave(keys.attestKey, keys.endorsement, m) };
  }

  /** A TLS server presenting `key` and `cert` that answers every trust request with `artifact`; counts the requests. */
  async function answering(key: KeyObject, cert: Uint8Array, policyCert: Uint8Array, artifact: Uint8Array) {
    const seen = { requests: 0 };
    const server = await serve({
      host: '127.0.0.1', port: 0,
      tls: { key, cert: toPem(cert), ca: toPem(policyCert), requestCert: false },
      handler: async () => {
        seen.requests++;
        return encode('trust_response_message', { requestingEnclaveTag: 'requesting-enclave', providingEnclaveTag: 'providing-enclave', status: 'succeeded', artifact });
      },
    });
    servers.push(server);
    return { port: server.address.port, seen };
  }

  it('refuses a server presenting a certified machine\'s certificate, not the authority\'s (UNTRUSTED_PEER, not-authority), before sending anything', async () => {
    const { policyCert, store, platform, admission } = await setup();
    // A key-server's: its admission certificate serves it as a TLS server.
    const machineKey = (await generateKeyPair('p256')).privateKey;
    const machineCert = await admission(machineKey);
    const { port, seen } = await answering(machineKey, machineCert, policyCert, machineCert);
    const e = await rejects(initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port }), 'UNTRUSTED_PEER');
    expect(e.details).to.deep.include({ reason: 'not-authority' });
    expect(seen.requests).to.equal(0);
    await rejects(store.get(authKeyTag(domain)), 'NOT_FOUND');
  });

  it('refuses a certificate from the authority for another key, and keeps nothing (UNTRUSTED_PEER)', async () => {
    const { policyCert, store, platform, admission, authority } = await setup();
    const { port, seen } = await answering(authority.key, authority.cert, policyCert, await admission((await generateKeyPair('p256')).privateKey));
    const e = await rejects(initTrust({ store, domain, policyCert, platform, host: '127.0.0.1', port }), 'UNTRUSTED_PEER');
    expect(e.message).to.include("does not name this machine's key");
    expect(seen.requests).to.equal(1);
    await rejects(store.get(authKeyTag(domain)), 'NOT_FOUND');
  });

  it('refuses a certificate from the authority for this machine\'s key but another measurement (UNTRUSTED_PEER)', async () => {
    const { policyCert, platform, admission, authority } = await setup();
    const authKey = (await generateKeyPair('p256')).privateKey;
    const { port, seen } = await answering(authority.key, authority.cert, policyCert, await admission(authKey, sha256(utf8('another program'))));
    const e = await rejects(requestCertificate({ host: '127.0.0.1', port, policyCert, platform, authKey }), 'UNTRUSTED_PEER');
    expect(e.message).to.include('another measurement');
    expect(seen.requests).to.equal(1);
  });
});

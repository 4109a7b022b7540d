// key-server's start-up: its identity and storage key come from its own cryptstore, its data
// from a backend, and it serves the key service over mutual TLS to admitted machines only.

import { CertifierError, isCertifierError } from '../errors/index.ts';
import { randomBytes } from '../crypto/index.ts';
import { serve, type ChannelServer, type Limits } from '../channel/index.ts';
import { toPem, validateAdmission, type ValidatedPeer } from '../pki/index.ts';
import type { Cryptstore } from '../../cryptstore/index.ts';
import { admissionCertTag, authKeyTag, loadIdentity } from '../certifier/index.ts';
import type { Acl } from './acl.ts';
import type { AuditLog } from './audit.ts';
import type { KeyBackend } from './backend.ts';
import { KeyStore } from './keystore.ts';
import { KeyService } from './handlers.ts';

export const STORAGE_KEY_TAG = 'key-server-storage-key';
export const RESERVED_PREFIX = 'key-server/';

/** The storage key from the server's cryptstore, made (not exportable) on first start. */
export async function storageKeyFrom(store: Cryptstore): Promise<Uint8Array> {
  try {
    const e = await store.get(STORAGE_KEY_TAG);
    if (e.blob.length !== 32) throw new CertifierError('INTEGRITY', `${STORAGE_KEY_TAG} is ${e.blob.length} bytes, not 32`);
    return e.blob;
  } catch (e) {
    if (!isCertifierError(e, 'NOT_FOUND')) throw e;
    const key = randomBytes(32);
    await store.put(STORAGE_KEY_TAG, key, { type: 'binary-blob', exportable: false });
    return key;
  }
}

export interface KeyServerOptions {
  store: Cryptstore;
  domain: string;
  policyCert: Uint8Array;
  backend: KeyBackend;
  acl?: Acl;
  audit?: AuditLog;
  host: string;
  port: number;
  limits?: Limits;
  log: (record: object) => void;
}

export async function startKeyServer(o: KeyServerOptions): Promise<{ server: ChannelServer; identity: ValidatedPeer }> {
  const identity = await loadIdentity(o.store, o.domain, o.policyCert);
  const keystore = new KeyStore(o.backend, await storageKeyFrom(o.store));
  const service = new KeyService({
    keystore, policyCert: o.policyCert, ...(o.acl ? { acl: o.acl } : {}), ...(o.audit ? { audit: o.audit } : {}),
    reserved: { names: [authKeyTag(o.domain), admissionCertTag(o.domain), STORAGE_KEY_TAG], prefixes: [RESERVED_PREFIX] },
    log: o.log,
  });
  const server = await serve<ValidatedPeer>({
    host: o.host, port: o.port, log: o.log, ...(o.limits ? { limits: o.limits } : {}),
    tls: {
      key: identity.key, cert: toPem(identity.certificate), ca: toPem(o.policyCert), requestCert: true,
      verifyPeer: (chain) => validateAdmission({ chain, policyCert: o.policyCert, at: new Date(), usage: 'client' }),
    },
    handler: (req, conn) => service.handle(req, conn),
  });
  return { server, identity: identity.peer };
}

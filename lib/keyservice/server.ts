// key-server's start-up: its identity and storage key come from its own cryptstore, its data
// from a backend, and it serves the key service over mutual TLS to admitted machines only.

import { CertifierError, isCertifierError } from '../errors/index.ts';
import { randomBytes, wipe } from '../crypto/index.ts';
import { closingAlso, serve, type ChannelServer, type Limits } from '../channel/index.ts';
import { readCertificateSummary, toPem, validateAdmission, type ValidatedPeer } from '../pki/index.ts';
import type { Cryptstore } from '../../cryptstore/index.ts';
import { admissionCertTag, authKeyTag, identityWatch, loadIdentity, requireMachine, watchExpiry } from '../certifier/index.ts';
import type { Acl } from './acl.ts';
import type { AuditLog } from './audit.ts';
import type { KeyBackend } from './backend.ts';
import { KeyStore, RESERVED_PREFIX, STORAGE_KEY_TAG, storageKeyId, type ReservedNames } from './keystore.ts';
import { KeyService } from './handlers.ts';
import { ReplicaJoin } from './replica.ts';
import { backupKeyId } from './backups.ts';
import { wrongStorageKey } from './level-backend.ts';
import { renewIdentity, type RenewalOptions } from './renewal.ts';

export { RESERVED_PREFIX, STORAGE_KEY_TAG } from './keystore.ts';

/** The names a key-server of `domain` keeps for itself, which it never serves nor lists. */
export function reservedNames(domain: string): ReservedNames {
  return { names: [authKeyTag(domain), admissionCertTag(domain), STORAGE_KEY_TAG], prefixes: [RESERVED_PREFIX] };
}

/** How long a stopping key-server waits for requests still executing after the channel's grace. */
export const DRAIN_MS = 30_000;

/**
 * The storage key from the server's cryptstore, made (not exportable) on first start. With a
 * backend shared by replicas, a new key is made only for a database that has none yet (a new
 * replica of a running deployment joins instead), and the key is checked against the database's.
 */
export async function storageKeyFrom(store: Cryptstore, backend?: KeyBackend): Promise<Uint8Array> {
  let key: Uint8Array;
  let made = false;
  try {
    const e = await store.get(STORAGE_KEY_TAG);
    if (e.blob.length !== 32) throw new CertifierError('INTEGRITY', `${STORAGE_KEY_TAG} is ${e.blob.length} bytes, not 32`);
    key = e.blob;
  } catch (e) {
    if (!isCertifierError(e, 'NOT_FOUND')) throw e;
    if (await backend?.boundStorageKey?.()) {
      throw new CertifierError('NOT_FOUND', `this key-server's cryptstore has no ${STORAGE_KEY_TAG}, and its key database already belongs to a deployment: run key-server join --from a key-server that holds the key first`);
    }
    if (backend && (await backend.list('', { limit: 1 })).length > 0) {
      throw new CertifierError('NOT_FOUND', `this key-server's cryptstore has no ${STORAGE_KEY_TAG}, and its key database holds records: use the cryptstore that holds the key, or run key-server join --from a key-server that does`);
    }
    key = randomBytes(32);
    await store.put(STORAGE_KEY_TAG, key, { type: 'binary-blob', exportable: false });
    made = true;
  }
  if (backend?.bindStorageKey) {
    // A database from before keys were bound to it: bind only a key that opens its records.
    if ((await backend.boundStorageKey!()) === undefined) await checkOpens(backend, key);
    try {
      await backend.bindStorageKey(storageKeyId(key));
    } catch (e) {
      if (!made || !isCertifierError(e, 'WRONG_KEY')) throw e;
      // Another replica, started at the same moment on the empty database, bound its key first.
      // Ours sealed nothing: it goes, so that join can bring the deployment's key without --force.
      await store.delete(STORAGE_KEY_TAG);
      throw new CertifierError('NOT_FOUND', `another replica bound its storage key to the key database while this one started: run key-server join --from that replica, then start this one again`, { cause: e });
    }
  }
  return key;
}

/**
 * Before LevelDB opens `dir`, which writes to it: a backup copy (keys-TIME) names in its
 * KEY_ID_FILE the storage key its records are sealed under. One this cryptstore does not hold is
 * refused now, as the key database's own binding would refuse it once open (storageKeyFrom), but
 * with the backup left as written: an open renames LevelDB's LOG to LOG.old, which marks a backup
 * as served in place, and --backup-keep keeps such a one ever after. A file that cannot be read is
 * left to that check.
 */
export async function refuseOthersBackup(store: Cryptstore, dir: string): Promise<void> {
  let named: string;
  try {
    named = await backupKeyId(dir);
  } catch {
    return;
  }
  let held: string | undefined;
  try {
    const e = await store.get(STORAGE_KEY_TAG);
    held = storageKeyId(e.blob);
    wipe(e.blob);
  } catch (e) {
    if (!isCertifierError(e, 'NOT_FOUND')) throw e;
  }
  if (held === named) return;
  if (held !== undefined) throw wrongStorageKey(dir, named, held);
  throw new CertifierError('NOT_FOUND', `this key-server's cryptstore has no ${STORAGE_KEY_TAG}, and ${dir} is a backup of records sealed under storage key id ${named}: use the cryptstore that holds the key, or run key-server join --from a key-server that does`);
}

async function checkOpens(backend: KeyBackend, key: Uint8Array): Promise<void> {
  const [first] = await backend.list('', { limit: 1 });
  if (!first) return;
  try {
    await new KeyStore(backend, key).fetch(first.name, first.version);
  } catch (e) {
    if (!isCertifierError(e, 'INTEGRITY')) throw e;
    throw new CertifierError('WRONG_KEY', `this key-server's storage key does not open the records of its key database ("${first.name}" version ${first.version}): use the cryptstore that holds the right key, or fetch it with key-server join`, { cause: e });
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
  /** Release the storage key to peers running this server's own measurement (key-server join). */
  allowReplicaJoin?: boolean;
  /** Renews the server's own certificate while it runs (key-server serve --certifier); without it the server only warns. */
  renewal?: Omit<RenewalOptions, 'present' | 'log' | 'policyCertEnds'>;
  log: (record: object) => void;
}

export interface StartedKeyServer {
  server: ChannelServer;
  identity: ValidatedPeer;
  /** Replaces the ACL (SIGHUP in key-server serve): later decisions follow the new one. */
  setAcl(acl: Acl): void;
}

export async function startKeyServer(o: KeyServerOptions): Promise<StartedKeyServer> {
  const identity = await loadIdentity(o.store, o.domain, o.policyCert);
  const storageKey = await storageKeyFrom(o.store, o.backend);
  const keystore = new KeyStore(o.backend, storageKey);
  const replicaJoin = o.allowReplicaJoin ? new ReplicaJoin({ name: STORAGE_KEY_TAG, measurementHex: identity.peer.measurementHex, storageKey }) : undefined;
  // validUntil: a certificate issued offline before 2026-12-05 may end after the policy certificate.
  let ownEnd = identity.peer.validUntil;
  const service = new KeyService({
    ownCertEnd: () => ownEnd,
    keystore, policyCert: o.policyCert, ...(o.acl ? { acl: o.acl } : {}), ...(o.audit ? { audit: o.audit } : {}),
    reserved: reservedNames(o.domain),
    ...(replicaJoin ? { replicaJoin } : {}),
    log: o.log,
  });
  // Every copy of the storage key made here, forgotten at the stop, or now if the server never starts.
  const forget = () => {
    keystore.wipe();
    replicaJoin?.wipe();
    wipe(storageKey);
  };
  const server = await serve<ValidatedPeer>({
    host: o.host, port: o.port, log: o.log, ...(o.limits ? { limits: o.limits } : {}),
    tls: {
      key: identity.key, cert: toPem(identity.certificate), ca: toPem(o.policyCert), requestCert: true,
      verifyPeer: (chain) => requireMachine(validateAdmission({ chain, policyCert: o.policyCert, at: new Date(), usage: 'client' }), 'client'),
    },
    handler: (req, conn) => service.handleStaged(req, conn),
    onClosed: (conn) => service.connectionClosed(conn),
  }).catch((e: unknown) => {
    forget();
    throw e;
  });
  const policyCertEnds = readCertificateSummary(o.policyCert).notAfter;
  const watch = (notAfter: Date) => watchExpiry(notAfter, o.log, identityWatch(notAfter, policyCertEnds, o.renewal !== undefined));
  let stopWatching = watch(identity.peer.validUntil);
  const stopRenewing = o.renewal
    ? renewIdentity(identity, {
      ...o.renewal, log: o.log, policyCertEnds,
      present: (next) => {
        server.setIdentity(next.key, toPem(next.certificate));
        ownEnd = next.peer.validUntil;
        stopWatching();
        stopWatching = watch(next.peer.validUntil);
      },
    })
    : () => {};
  const stop = () => {
    stopRenewing();
    stopWatching();
  };
  const closing = closingAlso(server, stop);
  const closeChannel = closing.close;
  // The storage key is forgotten once the requests in flight are done with it.
  closing.close = async (graceMs?: number) => {
    try {
      await closeChannel(graceMs);
      // Past the grace period the connections are gone, but a request may still be executing:
      // let it finish (and be audited) before the owner closes the audit log and the backend.
      await service.drain(DRAIN_MS);
    } finally {
      forget();
    }
  };
  return { server: closing, identity: identity.peer, setAcl: (acl) => service.setAcl(acl) };
}

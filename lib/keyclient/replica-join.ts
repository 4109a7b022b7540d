// `key-server join`: a new key-server replica fetches the deployment's storage key from a running
// replica over the key service's mutual TLS, and keeps it in its own cryptstore (not exportable).
//
// Both ends insist on the same program: the serving replica releases the key only to a peer
// whose admission certificate carries its own measurement (lib/keyservice/replica.ts), and this
// side accepts it only from a server whose certificate carries this machine's own measurement.
// So the key moves between instances of one key-server build admitted by one policy, and never
// appears anywhere else: not in argv, files, logs or the database.

import { CertifierError, isCertifierError } from '../errors/index.ts';
import { bytesEqual } from '../crypto/index.ts';
import type { Cryptstore } from '../../cryptstore/index.ts';
import type { MachineIdentity } from '../certifier/index.ts';
import { STORAGE_KEY_TAG } from '../keyservice/server.ts';
import { storageKeyId } from '../keyservice/keystore.ts';
import type { Waits } from '../channel/index.ts';
import { KeyClient } from './client.ts';
import { hostPort } from '../channel/index.ts';

export interface JoinOptions {
  store: Cryptstore;
  identity: MachineIdentity;
  policyCert: Uint8Array;
  host: string;
  port: number;
  /** Replace a different storage key this store already holds (it then seals nothing any more). */
  force?: boolean;
  /** How long to wait for the running replica at each step (10 s each unless given). */
  waits?: Waits;
}

export interface JoinResult {
  /** 'joined': the key was stored; 'already': the store held this very key. */
  outcome: 'joined' | 'already';
  /** The key's public id (as recorded in a shared database), never the key. */
  keyId: string;
  /** The serving replica's certificate serial. */
  from: string;
}

export async function joinReplica(o: JoinOptions): Promise<JoinResult> {
  const own = o.identity.peer.measurementHex;
  const client = await KeyClient.connect({
    host: o.host, port: o.port, identity: o.identity, policyCert: o.policyCert, serverMeasurements: [own],
    ...(o.waits ? { waits: o.waits } : {}),
  }).catch((e: unknown) => {
    // The pin is join's own, not one the operator gave: say what it is.
    if (!isCertifierError(e, 'UNTRUSTED_PEER') || e.details?.reason !== 'measurement-not-pinned') throw e;
    throw new CertifierError('UNTRUSTED_PEER', `${hostPort(o.host, o.port)} runs measurement ${String(e.details.measurement)}, not this machine's (${own}): join takes the storage key only from another instance of the same key-server program`, { cause: e, details: e.details });
  });
  let key: Uint8Array;
  try {
    key = (await client.retrieve(STORAGE_KEY_TAG)).blob;
  } catch (e) {
    if (isCertifierError(e, 'RESERVED_NAME')) {
      throw new CertifierError('RESERVED_NAME', `${hostPort(o.host, o.port)} does not release its storage key to this machine: start it with --allow-replica-join, and certify both with the same key-server measurement (${own})`, { cause: e });
    }
    throw e;
  } finally {
    await client.close().catch(() => {});
  }
  if (key.length !== 32) throw new CertifierError('INTEGRITY', `the storage key from ${hostPort(o.host, o.port)} is ${key.length} bytes, not 32`);
  const from = client.server.serialHex;
  const keyId = storageKeyId(key);
  let held: Uint8Array | undefined;
  try {
    held = (await o.store.get(STORAGE_KEY_TAG)).blob;
  } catch (e) {
    if (!isCertifierError(e, 'NOT_FOUND')) throw e;
  }
  if (held && bytesEqual(held, key)) return { outcome: 'already', keyId, from };
  if (held && !o.force) {
    throw new CertifierError('ALREADY_EXISTS', `this store already holds another storage key (id ${storageKeyId(held)}; the deployment's is ${keyId}): records sealed under it would become unreadable; use --force only if it sealed nothing`);
  }
  await o.store.put(STORAGE_KEY_TAG, key, { type: 'binary-blob', exportable: false });
  return { outcome: 'joined', keyId, from };
}

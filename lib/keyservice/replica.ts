// Several key-server replicas over one shared database: how a new replica receives the storage
// key the others seal records with (`key-server join`), and the local lock that keeps two
// replicas from sharing one data directory (and so one audit log file). The lock that keeps two
// live replicas from sharing one --replica-id is in the database (pg-replica-lock.ts); join takes
// neither.
//
// The storage key never travels except here: a replica started with --allow-replica-join answers
// a retrieve of the reserved storage-key name with the key, and only when the peer's admission
// certificate carries exactly this replica's own measurement, i.e. the peer is another instance
// of the same key-server program, admitted by the same policy, and presents no role credential.
// Everyone else, or everyone when the flag is off, gets RESERVED_NAME as before. The joining
// side pins the serving replica to its own measurement too (lib/keyclient/replica-join.ts).

import { describeErrnoAt, dirIdentity, inDir, makeOwnDirs, unmakeDirs, unmakeHeld } from '../files/index.ts';
import { CertifierError } from '../errors/index.ts';
import { encodeSecret, type CryptstoreEntry } from '../wire/index.ts';
import type { ValidatedPeer } from '../pki/index.ts';
import { succeededSecret, type KeyRequest } from './protocol.ts';
import { holdLock } from './lock.ts';

/** The directory, inside a replica's --data, of the empty LevelDB whose lock lockDataDir holds. */
export const LOCK_DIR = 'replica-lock';

export interface ReplicaJoinConfig {
  /** The reserved name a join request retrieves (STORAGE_KEY_TAG). */
  name: string;
  /** This replica's own measurement (hex): the only one the key is released to. */
  measurementHex: string;
  storageKey: Uint8Array;
}

export class ReplicaJoin {
  private readonly key: Uint8Array;
  private wiped = false;

  constructor(private readonly config: ReplicaJoinConfig) {
    this.key = Uint8Array.from(config.storageKey);
  }

  /**
   * The answer releasing the storage key if `req` is a join request from another instance of this
   * key-server; undefined otherwise, and the caller then refuses the reserved name as usual. The
   * response is the only copy of the key made here (the entry it was encoded from is wiped): wipe
   * it once sent.
   */
  answer(req: KeyRequest, peer: ValidatedPeer, role: string | undefined): { response: Uint8Array; version: number } | undefined {
    if (req.action !== 'retrieve' || req.name !== this.config.name || req.version > 1 || role !== undefined) return undefined;
    if (peer.measurementHex !== this.config.measurementHex) return undefined;
    if (this.wiped) throw new CertifierError('UNREACHABLE', 'the key-server is stopping: its storage key is forgotten');
    const entry: CryptstoreEntry = {
      tag: this.config.name, type: 'binary-blob', version: 1, timeEntered: Buffer.from(new Date().toISOString(), 'utf8'), blob: this.key, exportable: false,
    };
    // Encoded into buffers of their own (encodeSecret): protobufjs's growing ones would leave copies behind.
    const data = encodeSecret('cryptstore_entry', entry);
    try {
      return { response: succeededSecret(req.name, { data, version: 1 }), version: 1 };
    } finally {
      data.fill(0);
    }
  }

  /** Forgets its copy of the storage key, as the key store does at a stop: a join asked after it fails. */
  wipe(): void {
    this.wiped = true;
    this.key.fill(0);
  }
}

export interface DataDirLock {
  release(): Promise<void>;
  /**
   * For a start refused before it served: releases the lock and, if lockDataDir made DIR, removes
   * the lock's directory while the lock is still held (unmakeHeld), then DIR and every other
   * directory it made (unmakeDirs: "up/new/../d" made up/new too), each if empty (the audit log in DIR is removed before, by its own
   * closeUnused). A DIR that was there (however it is named: "x/new/.." is x) keeps the lock's
   * directory.
   */
  releaseUnused(): Promise<void>;
}

/** Takes DIR for this process, until the returned lock is released or the process ends (holdLock). */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  const made = await makeOwnDirs(dir, 0o700).catch((e: unknown) => {
    throw new CertifierError('FILE_ERROR', `cannot use ${dir} as the key-server data directory: ${describeErrnoAt(dir, e)}`, { cause: e });
  });
  // In DIR as the kernel finds it, also one named through "link/.." (inDir): not beside the link.
  const lockDir = inDir(dir, LOCK_DIR);
  const release = await holdLock(lockDir, `the key-server data directory is in use by another process (${dir}): give each replica its own --data`);
  // The lock's directory is this run's to remove only in a DIR it made (made.self).
  const own = made.self && dirIdentity(lockDir);
  return {
    release,
    releaseUnused: async () => {
      try {
        // The lock's directory, then DIR and every folder made for it; in a DIR that was there,
        // only the folders mkdir -p made on the way to it ("x/new/.." made x/new).
        if (made.top !== undefined && (!own || unmakeHeld(lockDir, own))) unmakeDirs(made);
      } finally {
        await release();
      }
    },
  };
}

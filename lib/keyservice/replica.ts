// Several key-server replicas over one shared database: how a new replica receives the storage
// key the others seal records with (`key-server join`), and the local lock that keeps two
// replicas from sharing one data directory (and so one audit log file).
//
// The storage key never travels except here: a replica started with --allow-replica-join answers
// a retrieve of the reserved storage-key name with the key, and only when the peer's admission
// certificate carries exactly this replica's own measurement, i.e. the peer is another instance
// of the same key-server program, admitted by the same policy, and presents no role credential.
// Everyone else, or everyone when the flag is off, gets RESERVED_NAME as before. The joining
// side pins the serving replica to its own measurement too (lib/keyclient/replica-join.ts).

import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CertifierError } from '../errors/index.ts';
import { encode, type CryptstoreEntry } from '../wire/index.ts';
import type { ValidatedPeer } from '../pki/index.ts';
import { succeeded, type KeyRequest } from './protocol.ts';

export interface ReplicaJoinConfig {
  /** The reserved name a join request retrieves (STORAGE_KEY_TAG). */
  name: string;
  /** This replica's own measurement (hex): the only one the key is released to. */
  measurementHex: string;
  storageKey: Uint8Array;
}

export class ReplicaJoin {
  private readonly key: Uint8Array;

  constructor(private readonly config: ReplicaJoinConfig) {
    this.key = Uint8Array.from(config.storageKey);
  }

  /**
   * The answer releasing the storage key if `req` is a join request from another instance of this
   * key-server; undefined otherwise, and the caller then refuses the reserved name as usual.
   */
  answer(req: KeyRequest, peer: ValidatedPeer, role: string | undefined): { response: Uint8Array; version: number } | undefined {
    if (req.action !== 'retrieve' || req.name !== this.config.name || req.version > 1 || role !== undefined) return undefined;
    if (peer.measurementHex !== this.config.measurementHex) return undefined;
    const entry: CryptstoreEntry = {
      tag: this.config.name, type: 'binary-blob', version: 1, timeEntered: Buffer.from(new Date().toISOString(), 'utf8'), blob: this.key, exportable: false,
    };
    return { response: succeeded(req.name, { data: encode('cryptstore_entry', entry), version: 1 }), version: 1 };
  }
}

/**
 * Takes DIR/key-server.lock for this process: a file naming our pid, created exclusively. A lock
 * left by a process that no longer exists is taken over. Returns the release function.
 */
export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'key-server.lock');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 }).catch((e: Error) => {
    throw new CertifierError('FILE_ERROR', `cannot use ${dir} as the key-server data directory: ${e.message}`, { cause: e });
  });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(path, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return async () => {
        await fs.rm(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new CertifierError('FILE_ERROR', `cannot create ${path}: ${(e as Error).message}`, { cause: e });
    }
    const holder = Number.parseInt(await fs.readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
      throw new CertifierError('STORE_LOCKED', `the key-server data directory is in use by another process (${dir}, pid ${holder}): give each replica its own --data`, { details: { path: dir, pid: holder } });
    }
    await fs.rm(path, { force: true }); // stale: its process is gone
  }
  throw new CertifierError('STORE_LOCKED', `the key-server data directory is in use by another process (${dir})`, { details: { path: dir } });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// The key-server LevelDB backend's backups: a consistent copy of the whole database, written while it serves on.

import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { CertifierError } from '../errors/index.ts';
import { describeLevelFailure, dirIdentity, realLocation, syncDir, tightenFiles, type DirId } from '../files/index.ts';
import { KEY_ID_FILE, UNFINISHED_FILE } from './backups.ts';
import { LevelCore, type Db } from './level-core.ts';
import { RECORD, STORAGE_KEY_ID } from './level-records.ts';

/** ALREADY_EXISTS if anything is at `dir`, even a link that leads nowhere. */
export async function refuseTaken(dir: string): Promise<void> {
  if (await fs.lstat(dir).then(() => true, () => false)) throw new CertifierError('ALREADY_EXISTS', `${dir} exists; a backup goes to a new directory`);
}

/** A new file holding `data`, 0600, synced, and its directory entry with it. */
export async function writeSynced(path: string, data: Uint8Array): Promise<void> {
  const h = await fs.open(path, 'wx', 0o600);
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
  await syncDir(join(path, '..'));
}


/**
 * Removes a backup's partial copy at `tmp`, files and all, only while it is still the directory
 * the backup made (`made`, its identity): never a link or another directory put in its place.
 */
async function removeCopy(tmp: string, made: DirId | undefined): Promise<void> {
  const now = await fs.lstat(tmp).catch(() => undefined);
  if (made && now?.isDirectory() && now.dev === made.dev && now.ino === made.ino) await fs.rm(tmp, { recursive: true, force: true });
}

/**
 * How long a backup abandoned in the middle of one call (a read or write of a disk that does not
 * answer) is given to reach its next step before it is reported stuck, its partial copy left.
 */
export const STUCK_MS = 2_000;

export abstract class LevelBackup extends LevelCore {
  /** A backup abandoned while stuck in a call, still in it: close neither waits for it nor closes the database under it. */
  protected backupStuck = false;

  /**
   * Writes a consistent copy of the whole database (one snapshot: records, version marks, format
   * and storage key id) to DIR, whose parent must exist, while the backend serves on. The copy is
   * filled in a new directory beside DIR (DIR.partial-PID-XXXXXX), synced, then renamed, so DIR is
   * whole or absent; it opens as a key-server data directory and, like the original, holds only
   * ciphertext. Until just before the rename the copy holds UNFINISHED_FILE, written before LevelDB
   * makes its database there, so one cut short is refused by open under any name without being
   * opened (which would write to it). Beside LevelDB's files it holds KEY_ID_FILE, the storage key id the
   * records are sealed under (where one is bound), so pruning tells the backups of another
   * key-server sharing the directory from this one's without opening them, and returned as `keyId`.
   * One backup at a time. One abandoned (`signal` aborted: key-server's stop gave up waiting) stops
   * at its next step, between the entries it copies, removes its partial copy and fails (TIMEOUT),
   * so close, which waits for a backup being written, waits only for that step; once renamed into
   * place a backup is whole and stays. One still in a call STUCK_MS after the abandon (a disk
   * that does not answer) fails then (TIMEOUT), naming its partial copy, which stays marked
   * unfinished (refused by open, removed by a later pruneBackups); close then leaves it and the
   * database to the process's exit, as a crash would.
   */
  async backupTo(dir: string, signal?: AbortSignal): Promise<{ records: number; path: string; keyId?: string }> {
    this.checkOpen();
    if (this.backup) throw new CertifierError('STORE_LOCKED', 'a backup of this key database is already being written');
    // Where it really is, once: named through "link/..", the names joined to it (the copy's files,
    // the parent synced after the rename) would lead beside the link.
    const real = realLocation(dir);
    const partial: { path?: string } = {};
    const run = this.using(() => this.copyTo(real, signal, partial), 'long');
    this.backup = run.then(() => undefined, () => undefined).finally(() => {
      this.backup = undefined;
      this.backupStuck = false;
    });
    return signal ? this.unlessStuck(run, signal, real, partial) : run;
  }

  /** `run`, or once it is still running STUCK_MS after `signal` aborted it, a TIMEOUT naming what it leaves. */
  private unlessStuck<T>(run: Promise<T>, signal: AbortSignal, dir: string, partial: { path?: string }): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => {
      const onAbort = () => {
        timer = setTimeout(() => {
          this.backupStuck = this.backup !== undefined;
          const left = partial.path === undefined ? 'nothing of it is written yet' : `its partial copy ${partial.path} is left as it is, marked unfinished: no key-server serves it, and a backup made once it has not changed for 10 minutes removes it`;
          reject(new CertifierError('TIMEOUT', `the backup to ${dir} was abandoned stuck in a call to the disk for ${STUCK_MS / 1000} s (the key-server is stopping): it is unfinished, ${left}`));
        }, STUCK_MS);
        timer.unref();
      };
      // (A stop aborts only backups already begun: none starts aborted.)
      signal.addEventListener('abort', onAbort, { once: true });
      void run.then(() => undefined, () => undefined).finally(() => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      });
    });
    return Promise.race([run, stuck]);
  }

  private async copyTo(dir: string, signal: AbortSignal | undefined, partial: { path?: string } = {}): Promise<{ records: number; path: string; keyId?: string }> {
    const goOn = () => {
      if (signal?.aborted) throw new CertifierError('TIMEOUT', `the backup to ${dir} was abandoned before it was whole (the key-server is stopping); its partial copy is removed`);
    };
    await refuseTaken(dir);
    // Made by mkdir(2), which fails on anything already at the name (a link is never followed),
    // under a name no one can guess, 0700 from the start: nothing planted beside it is written
    // through, and nothing is chmod'ed.
    const tmp = await fs.mkdtemp(`${dir}.partial-${process.pid}-`).catch((e: Error) => {
      throw new CertifierError('FILE_ERROR', `cannot write a backup to ${dir}: ${e.message}`, { cause: e });
    });
    partial.path = tmp;
    let records = 0;
    let keyId: Uint8Array | undefined;
    // Taken at once: what a removal checks before it touches anything.
    let made: DirId | undefined;
    try {
      made = dirIdentity(tmp);
      goOn();
      await writeSynced(join(tmp, UNFINISHED_FILE), new TextEncoder().encode('a backup copy being written\n'));
      // Made only now: a Level opens itself (makes its files) as soon as it is made, and the
      // marker must be whole on disk, and named in the directory, before any of them.
      const copy: Db = new Level(tmp, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: true, errorIfExists: true });
      await copy.open();
      const snapshot = this.db.snapshot();
      try {
        goOn(); // inside: an abandoned backup closes the copy it opened before removing it
        let batch: { type: 'put'; key: string; value: Uint8Array }[] = [];
        for await (const [key, value] of this.db.iterator({ snapshot })) {
          goOn();
          // Written before the next entry is added, so the last batch is never empty (the database
          // holds FORMAT_KEY at least): an empty batch is not written, nor synced.
          if (batch.length >= 512) {
            await copy.batch(batch);
            batch = [];
          }
          if (key.startsWith(RECORD)) records++;
          if (key === STORAGE_KEY_ID) keyId = value;
          batch.push({ type: 'put', key, value });
        }
        await copy.batch(batch, { sync: true }); // syncs the log that holds every batch before it
      } finally {
        await snapshot.close();
        await copy.close();
      }
      goOn();
      if (keyId !== undefined) await writeSynced(join(tmp, KEY_ID_FILE), keyId);
      await tightenFiles(tmp);
      goOn();
      await fs.unlink(join(tmp, UNFINISHED_FILE));
      await syncDir(tmp);
      // rename(2) never follows a link at the new name, and fails on one (a directory cannot
      // replace a non-directory); this says so plainly.
      await refuseTaken(dir);
      await fs.rename(tmp, dir);
      await syncDir(join(dir, '..'));
      return { records, path: dir, ...(keyId !== undefined ? { keyId: Buffer.from(keyId).toString('utf8') } : {}) };
    } catch (e) {
      await removeCopy(tmp, made);
      // LevelDB's failure in words (a failed open's is in its cause), as Node's.
      throw e instanceof CertifierError ? e : new CertifierError('FILE_ERROR', `cannot write a backup to ${dir}: ${describeLevelFailure(e)}`, { cause: e });
    }
  }
}

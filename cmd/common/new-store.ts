// A store made to be certified (cert-utility init-trust, key-server serve --certifier) is the
// run's own until it is certified: if certifying fails, or the run is interrupted first, it goes
// again, so that a later run may choose its protection afresh (a failed first boot must not fix it).

import { Cryptstore, type Protector } from '../../cryptstore/index.ts';
import { unmakeDirs, unmakeHeld, type MadeDirs } from '../../lib/files/index.ts';
import { warn } from './cli.ts';
import { isCertifierError } from '../../lib/errors/index.ts';

export interface StoreToCertify {
  store: Cryptstore;
  /** Certified: the store is this machine's identity now, whatever comes next (close keeps it). */
  keep(): void;
  /** Closes the store, and removes it if this run made it and did not keep() it (not certified). */
  close(): Promise<void>;
}

/**
 * Opens the store at `dir`, making it if there is none. Until keep() or close(), one of
 * `signals` (SIGTERM from a unit's timeout, Ctrl-C) removes the store this run made, and the
 * folders it made for it, as a failure does, and the program dies of the signal, as without a
 * listener.
 */
export async function openToCertify(program: string, dir: string, protector: Protector, signals: readonly NodeJS.Signals[]): Promise<StoreToCertify> {
  // What the making made, as it made it (makeOwnDirs), not as found before (another may make a
  // folder meanwhile, during scrypt, and "x/new/.." is missing until x/new is made, then is x): the
  // store's directory itself if the making made it (`self`: a directory made empty beforehand, by
  // systemd's StateDirectory= or mkdir -p, stays, emptied), and every folder made for it (--store
  // a/new/store, up/new/../store: `all`), removed once empty when certifying fails or a signal
  // stops the run.
  // This run's only once it holds the new store's lock and is making it (onCreating): another
  // run may have made the store meanwhile, and that one is not this run's to remove.
  let made: MadeDirs | undefined;
  /** What a run that is not certified made, removed: the store (its lock still held), then the folders made for it. */
  const unmake = (m: MadeDirs): boolean => {
    if (!unmakeHeld(dir, m.self)) return false;
    unmakeDirs(m);
    return true;
  };
  const interrupted = (signal: NodeJS.Signals) => {
    // As a failure does (close), and at once: the program dies of the signal next.
    if (made && !unmake(made)) warn(program, `could not remove the store ${dir} this run made`);
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  };
  const stopWatching = () => signals.forEach((sig) => process.off(sig, interrupted));
  // Watched whatever was there: a store whose creation was cut short is made again, and so
  // becomes this run's (onCreating); until then the handler only ends the program.
  signals.forEach((sig) => process.on(sig, interrupted));
  let store: Cryptstore;
  try {
    // A creation that fails removes what it began itself.
    const options = { onCreating: (m: MadeDirs) => void (made = m) };
    store = await Cryptstore.openOrCreate(dir, protector, options).catch(async (e: unknown) => {
      // One left holding nothing (a run killed before it certified: SIGKILL, power lost) must not
      // fix the protection either: made again with this run's.
      if (!isCertifierError(e, 'WRONG_KEY') || !(await Cryptstore.removeIfEmpty(dir))) throw e;
      warn(program, `the cryptstore at ${dir} held nothing (a run stopped before it was certified) and ${protector.description} does not unlock it: made again, protected by ${protector.description}`);
      return Cryptstore.openOrCreate(dir, protector, options);
    });
  } catch (e) {
    stopWatching();
    // A making that failed once begun removed the store (or what it could of it); the folders
    // made for it go too, once empty, as when certifying fails.
    if (made) unmakeDirs(made);
    throw e;
  }
  let kept = false;
  return {
    store,
    keep: () => {
      kept = true;
      stopWatching();
    },
    close: async () => {
      stopWatching();
      // Removed before it is closed, while this run still holds its lock: another run waiting for
      // it finds it in use, then gone, never half removed.
      if (made && !kept && !unmake(made)) warn(program, `could not remove the store ${dir} this run made`);
      await store.close();
    },
  };
}


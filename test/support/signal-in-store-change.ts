// A child process for the store-change test: a cryptstore change made through changeStore (as
// cert-utility's put-item, delete-item, import-store and rekey-store make theirs), with SIGINT sent
// to itself as an operator's Ctrl-C could come: "during" the write (as the put reaches LevelDB),
// or "before" it (while, say, a new key is still being derived).
// Or "racing": sent as the write begins, and handled only once it has ended (see below).
// Usage: node --import tsx test/support/signal-in-store-change.ts STORE KEY-FILE during|before|racing [put|delete|rekey|delete-uncompacted|put-failed]
// The change is a put of "held" by default; "delete" deletes every version of "gone", and "rekey"
// rekeys the store to the passphrase "new passphrase" (scrypt N = 2^10): each is followed by a
// compaction, which the signal must wait for too. "delete-uncompacted" is that delete with a
// compaction that fails (EIO): the change stands all the same, and must be told. "put-failed" is
// a put whose LevelDB write fails (EIO) once the signal is taken: the failure must be told too.
//
// Neither waits a guessed time. "during" lets the write begin only once the process has taken the
// signal (its listeners have run): sent and not yet taken, it raced the write, and on a loaded
// machine the write could end first, its completion handled before the signal in the same turn
// of the event loop (libuv runs signal watchers last), so the signal came after the change, not
// during it. "before" waits for nothing but the signal: unheld, it ends the process (the test
// gives the process a time limit, so a signal that did not end it fails the test, not hangs it).

import { Level } from 'level';
import { changeStore } from '../../cmd/common/protection.ts';
import { PassphraseProtector } from '../../cryptstore/index.ts';

const [store, keyFile, when, change = 'put'] = process.argv.slice(2) as [string, string, 'during' | 'before' | 'racing', ('put' | 'delete' | 'rekey' | 'delete-uncompacted' | 'put-failed')?];
// A put, a delete or a rekey: one LevelDB put or batch each.
const signalled = (write: (...a: unknown[]) => Promise<void>) => async function (this: Level, ...args: unknown[]) {
  if (when === 'racing') {
    const written = write.apply(this, args);
    process.kill(process.pid, 'SIGINT');
    // This thread held while LevelDB's finishes the write: the event loop then finds the write's
    // end and the signal in one turn, and handles the signal last. (Held too briefly on a loaded
    // machine, the signal is simply handled first: the test then passes, never fails, for it.)
    for (const until = Date.now() + 500; Date.now() < until;);
    return written;
  }
  if (when === 'during') {
    const taken = new Promise((resolve) => process.once('SIGINT', resolve));
    // Nothing else is under way meanwhile, and a signal's watcher alone does not keep Node running.
    const alive = setInterval(() => {}, 60_000);
    process.kill(process.pid, 'SIGINT');
    await taken;
    clearInterval(alive);
  }
  return write.apply(this, args);
};
Level.prototype.put = signalled(Level.prototype.put as (...a: unknown[]) => Promise<void>) as typeof Level.prototype.put;
Level.prototype.batch = signalled(Level.prototype.batch as (...a: unknown[]) => Promise<void>) as typeof Level.prototype.batch;
if (change === 'put-failed') {
  const failing = () => Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }));
  Level.prototype.put = signalled(failing) as typeof Level.prototype.put;
  Level.prototype.batch = signalled(failing) as typeof Level.prototype.batch;
}
if (change === 'delete-uncompacted') {
  (Level.prototype as unknown as { compactRange: () => Promise<void> }).compactRange = () => Promise.reject(Object.assign(new Error('EIO: i/o error, compaction'), { code: 'EIO' }));
}
await changeStore('cert-utility', { store, keyFile }, async (s) => {
  if (when === 'before') {
    process.kill(process.pid, 'SIGINT');
    await new Promise(() => setInterval(() => {}, 60_000)); // never goes on to the write
  }
  if (change === 'delete' || change === 'delete-uncompacted') return s.delete('gone');
  if (change === 'rekey') return s.rekey(new PassphraseProtector(new TextEncoder().encode('new passphrase'), { logN: 10, r: 8, p: 1 }));
  return s.put('held', new TextEncoder().encode('value'));
});
process.stdout.write('not reached: the signal ends the program\n');

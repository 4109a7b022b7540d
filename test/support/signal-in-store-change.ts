// A child process for the store-change test: a cryptstore change made through changeStore (as
// cert-utility's put-item, delete-item, import-store and rekey-store make theirs), with SIGINT sent
// to itself as an operator's Ctrl-C could come: "during" the write (as the put reaches LevelDB),
// or "before" it (while, say, a new key is still being derived).
// Usage: node --import tsx test/support/signal-in-store-change.ts STORE KEY-FILE during|before

import { Level } from 'level';
import { changeStore } from '../../cmd/common/protection.ts';

const [store, keyFile, when] = process.argv.slice(2) as [string, string, 'during' | 'before'];
const put = Level.prototype.put;
Level.prototype.put = function (this: Level, ...args: unknown[]) {
  if (when === 'during') process.kill(process.pid, 'SIGINT');
  return (put as (...a: unknown[]) => Promise<void>).apply(this, args);
} as typeof put;
await changeStore('cert-utility', { store, keyFile }, async (s) => {
  if (when === 'before') {
    process.kill(process.pid, 'SIGINT');
    // The signal is handled in the meantime, and ends the process: the wait costs nothing then. A
    // long one, as a short one (200 ms) ran out first on a loaded machine, the write going ahead.
    await new Promise((r) => setTimeout(r, 5000));
  }
  return s.put('held', new TextEncoder().encode('value'));
});
process.stdout.write('not reached: the signal ends the program\n');

// Preloaded into key-server (NODE_OPTIONS=--import): each backup's copy directory is made
// SLOW_BACKUP_MS (default 1500) late, so a test can signal the server while a backup is running.
// With SLOW_BACKUP_ENTRY_MS, each entry a backup copies is also read that late (the backup's
// iterator is the one given an explicit snapshot), so a stop finds it in the middle of its copy.
import { promises as fs } from 'node:fs';
import { Level } from 'level';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const mkdtemp = fs.mkdtemp;
fs.mkdtemp = async function (prefix, ...rest) {
  if (String(prefix).includes('.partial-')) await sleep(Number(process.env.SLOW_BACKUP_MS ?? 1500));
  return mkdtemp.call(this, prefix, ...rest);
};

const entryMs = Number(process.env.SLOW_BACKUP_ENTRY_MS ?? 0);
if (entryMs > 0) {
  const iterator = Level.prototype.iterator;
  Level.prototype.iterator = function (options, ...rest) {
    const it = iterator.call(this, options, ...rest);
    if (options?.snapshot) {
      const next = it.next;
      it.next = async function (...args) {
        await sleep(entryMs);
        return next.apply(this, args);
      };
    }
    return it;
  };
}

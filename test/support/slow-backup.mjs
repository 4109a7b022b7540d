// Preloaded into key-server (NODE_OPTIONS=--import): each backup's copy directory is made
// SLOW_BACKUP_MS (default 1500) late, so a test can signal the server while a backup is running.
import { promises as fs } from 'node:fs';

const mkdtemp = fs.mkdtemp;
fs.mkdtemp = async function (prefix, ...rest) {
  if (String(prefix).includes('.partial-')) await new Promise((r) => setTimeout(r, Number(process.env.SLOW_BACKUP_MS ?? 1500)));
  return mkdtemp.call(this, prefix, ...rest);
};

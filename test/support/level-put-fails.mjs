// Preloaded into a program under test (NODE_OPTIONS=--import): LevelDB's first put fails as a
// failing disk makes it fail (LEVEL_IO_ERROR, an I/O error on the log). LEVEL_PUT_FAILS says when:
// "after-write", once the put is made (LevelDB appended it to its log, and the sync after failed:
// the next open keeps it), or "before-write", with nothing written. With LEVEL_REOPEN_FAILS=1,
// every open of a database after the first fails too, so what the failed put did stays unknown.
// LEVEL_BATCH_FAILS does the same to the first batch (a cryptstore's putAll: provision's tags).
import { Level } from 'level';

const when = process.env.LEVEL_PUT_FAILS;
const ioError = (what) => Object.assign(new Error(`IO error: ${what}: Input/output error`), { code: 'LEVEL_IO_ERROR' });
let failed = false;
const put = Level.prototype.put;
Level.prototype.put = async function (...args) {
  if (failed || (when !== 'after-write' && when !== 'before-write')) return put.apply(this, args);
  failed = true;
  if (when === 'after-write') await put.apply(this, args);
  throw ioError(`${this.location}/000003.log`);
};
const batchWhen = process.env.LEVEL_BATCH_FAILS;
let batchFailed = false;
const batch = Level.prototype.batch;
Level.prototype.batch = async function (...args) {
  // batch() without operations makes a chained batch, which is left alone.
  if (batchFailed || args.length === 0 || (batchWhen !== 'after-write' && batchWhen !== 'before-write')) return batch.apply(this, args);
  batchFailed = true;
  if (batchWhen === 'after-write') await batch.apply(this, args);
  throw ioError(`${this.location}/000003.log`);
};
let opens = 0;
const open = Level.prototype.open;
Level.prototype.open = async function (...args) {
  if (process.env.LEVEL_REOPEN_FAILS === '1' && ++opens > 1) {
    throw Object.assign(new Error('Database failed to open'), { code: 'LEVEL_DATABASE_NOT_OPEN', cause: ioError(`${this.location}/MANIFEST-000005`) });
  }
  return open.apply(this, args);
};

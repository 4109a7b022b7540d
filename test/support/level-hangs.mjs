// Preloaded into key-server (NODE_OPTIONS=--import): LevelDB reads and writes of a key holding
// LEVEL_HANGS (a resource name, say "hang/") never return, as on a disk that stopped answering;
// every other key is served as usual.
import { Level } from 'level';

const mark = process.env.LEVEL_HANGS;
const hangs = (key) => mark !== undefined && mark !== '' && String(key).includes(mark);
for (const method of ['get', 'put']) {
  const real = Level.prototype[method];
  Level.prototype[method] = function (key, ...rest) {
    return hangs(key) ? new Promise(() => {}) : real.call(this, key, ...rest);
  };
}

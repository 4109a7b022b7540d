// Preloaded into a program under test (NODE_OPTIONS=--import): as the program begins deriving a
// key with scrypt (which runs on a worker thread), it writes SCRYPT_STARTED as a line on standard
// error, so a test can act while the derivation is under way (send a signal, say) on a real sign
// from the program, never after a guessed time.
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';

const scrypt = crypto.scrypt;
crypto.scrypt = function (...args) {
  const result = scrypt.apply(this, args); // under way before it is announced
  process.stderr.write('SCRYPT_STARTED\n');
  return result;
};
syncBuiltinESMExports(); // `import { scrypt } from 'node:crypto'` sees this one too

// A child process for the store-change test: a cryptstore change made through changeStore (as
// cert-utility's put-item, delete-item, import-store and rekey-store make theirs), with SIGINT sent
// to itself once the change has begun, as an operator's Ctrl-C could at any moment.
// Usage: node --import tsx test/support/signal-in-store-change.ts STORE KEY-FILE

import { changeStore } from '../../cmd/common/protection.ts';

const [store, keyFile] = process.argv.slice(2) as [string, string];
await changeStore('cert-utility', { store, keyFile }, async (s) => {
  process.kill(process.pid, 'SIGINT');
  await new Promise((r) => setTimeout(r, 200)); // the signal is handled in the meantime
  return s.put('held', new TextEncoder().encode('value'));
}, (info) => `"${info.tag}" version ${info.version} was stored`);
process.stdout.write('not reached: the signal ends the program once the change is made\n');

// A child process for the wiping test: makes a cryptstore unlocked by a key file or a passphrase
// file, read as the programs read them (withProtector), keeps it open as key-server keeps its
// store, then writes "done" and waits to be killed, so that its memory can be searched for the
// secret. The test searches at once: a copy that only the garbage collector would clear is found.
// Usage: node --import tsx test/support/open-in-memory.ts key-file|passphrase-file STORE FILE

import { Cryptstore } from '../../cryptstore/index.ts';
import { withProtector } from '../../cmd/common/protection.ts';

const [kind, store, file] = process.argv.slice(2) as [string, string, string];
const o = kind === 'key-file' ? { store, keyFile: file } : { store, passphraseFile: file, scryptLogN: 10 };
await withProtector('cert-utility', o, (protector) => Cryptstore.create(store, protector));
process.stdout.write('done\n');
setInterval(() => {}, 1 << 30);

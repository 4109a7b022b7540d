// A child process for the wiping test: reads a value from a file, stores it in a new cryptstore and
// seals it into an export bundle, wipes the copy it read, then writes "done" and waits to be killed,
// so that its memory can be searched for the value. Only encryption is done: Node's decipher keeps
// a copy of what it decrypts that no caller can reach (it shrinks its output buffer by copying).
// Usage: node --import tsx test/support/seal-in-memory.ts STORE VALUE-FILE

import { readFileSync } from 'node:fs';
import { randomBytes } from '../../lib/crypto/index.ts';
import { Cryptstore, KeyFileProtector, sealBundle } from '../../cryptstore/index.ts';

const [dir, valueFile] = process.argv.slice(2) as [string, string];
const value = readFileSync(valueFile);
const store = await Cryptstore.create(dir, new KeyFileProtector(randomBytes(32)));
const info = await store.put('disk-key', value, { exportable: true });
await store.close();
await sealBundle([{ ...info, blob: value }], new TextEncoder().encode('bundle pass'), { logN: 10, r: 8, p: 1 });
value.fill(0);
process.stdout.write('done\n');
setInterval(() => {}, 1 << 30);

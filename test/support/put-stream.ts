// A child process for the crash test: opens a key-file cryptstore and puts items forever,
// printing "ack TAG VERSION SEQ" on stdout after each put is acknowledged.
// Usage: node --import tsx test/support/put-stream.ts STORE KEYFILE [PARALLEL]

import { readFileSync } from 'node:fs';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';

const [dir, keyFile, parallelArg] = process.argv.slice(2);
const store = await Cryptstore.open(dir!, new KeyFileProtector(readFileSync(keyFile!)));
const parallel = Number(parallelArg ?? '4');
let seq = 0;

async function worker(): Promise<never> {
  for (;;) {
    const n = seq++;
    const tag = `tag-${n % 5}`;
    const info = await store.put(tag, Buffer.from(`${tag}:${n}:`.padEnd(100 + (n % 7) * 1000, 'x')));
    process.stdout.write(`ack ${tag} ${info.version} ${n}\n`);
  }
}

process.stdout.write('ready\n');
await Promise.all(Array.from({ length: parallel }, worker));

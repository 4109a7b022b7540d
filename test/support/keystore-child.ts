// A child process for the model test's crash (test/keyservice/keystore-model.ts): opens the
// key-server database in DIR under the storage key of stdin's first line (hex), answers "ready",
// then starts one KeyStore store per line (JSON: a StoreSpec, value in hex) without waiting for the
// ones before, and answers "ok INDEX VERSION" or "error INDEX CODE" as each ends. The test kills it.
// Usage: node --import tsx test/support/keystore-child.ts DIR

import { createInterface } from 'node:readline';
import { fromHex } from '../../lib/crypto/index.ts';
import { KeyStore } from '../../lib/keyservice/keystore.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import type { StoreSpec } from '../keyservice/keystore-model.ts';

const backend = await LevelBackend.open(process.argv[2]!);
let store: KeyStore | undefined;
let index = 0;
for await (const line of createInterface({ input: process.stdin })) {
  if (!store) {
    store = new KeyStore(backend, fromHex(line));
    process.stdout.write('ready\n');
    continue;
  }
  const s = JSON.parse(line) as StoreSpec;
  const i = index++;
  store.store(s.name, fromHex(s.value), { type: s.type, exportable: s.exportable, time: new Date(s.time) }).then(
    (info) => process.stdout.write(`ok ${i} ${info.version}\n`),
    (e: unknown) => process.stdout.write(`error ${i} ${(e as { code?: string }).code ?? 'none'}\n`),
  );
}

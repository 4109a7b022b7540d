// A child process for the model test's crash (test/keyservice/keystore-model.ts): opens the
// key-server database in DIR under the storage key of stdin's first line (hex), answers "ready",
// then starts one KeyStore store or delete per line (JSON: a ChildOp) without waiting for the ones
// before, and answers "ok INDEX JSON" (the version stored, the versions deleted) or "error INDEX
// CODE" as each ends. The test kills it.
// Usage: node --import ./test/support/tsx.mjs test/support/keystore-child.ts DIR (tsx without its disk cache, as mocha runs it)

import { createInterface } from 'node:readline';
import { fromHex } from '../../lib/crypto/index.ts';
import { KeyStore } from '../../lib/keyservice/keystore.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import type { ChildOp } from '../keyservice/keystore-model.ts';

const backend = await LevelBackend.open(process.argv[2]!);
let store: KeyStore | undefined;
let index = 0;
for await (const line of createInterface({ input: process.stdin })) {
  if (!store) {
    store = new KeyStore(backend, fromHex(line));
    process.stdout.write('ready\n');
    continue;
  }
  const o = JSON.parse(line) as ChildOp;
  const i = index++;
  const done = o.op === 'store'
    ? store.store(o.name, fromHex(o.value), { type: o.type, exportable: o.exportable, time: new Date(o.time) }).then((info) => info.version)
    : store.delete(o.name, o.version).then((d) => (d.count === d.versions.length ? d.versions : d));
  done.then(
    (answer) => process.stdout.write(`ok ${i} ${JSON.stringify(answer)}\n`),
    (e: unknown) => process.stdout.write(`error ${i} ${(e as { code?: string }).code ?? 'none'}\n`),
  );
}

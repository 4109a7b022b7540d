// A child process for the provision signal test: keeps fetched secrets in files (DIR/out/made, new,
// and DIR/out/replaced, which holds "old") and one under the tag "held/a" of a new cryptstore in
// DIR/store (its key in DIR/key), and sends itself SIGTERM at the hard moment: "before" right after
// its one file (replaced) is renamed into place, before the tags' batch; "during" (both files) as
// the tags' batch starts (held 300 ms); "partial" as "during", through provision --allow-partial
// with one secret the server does not have. Says on stderr, as key-client does, when a signal
// waited for the run, and what did not arrive.
// Usage: node --import tsx test/support/signal-in-provision.ts DIR before|during|partial

import { promises as fsp, mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { CertifierError } from '../../lib/errors/index.ts';
import { keepAll, provision, type KeyClient, type Outcome } from '../../lib/keyclient/index.ts';

const [dir, when] = process.argv.slice(2) as [string, 'before' | 'during' | 'partial'];
const key = randomBytes(32);
writeFileSync(join(dir, 'key'), key);
mkdirSync(join(dir, 'out'));
writeFileSync(join(dir, 'out', 'replaced'), 'old');
const store = await Cryptstore.create(join(dir, 'store'), new KeyFileProtector(key));
const hold = () => new Promise((r) => setTimeout(r, 300)); // the signal is handled in the meantime

if (when === 'before') {
  const rename = fsp.rename;
  let calls = 0;
  fsp.rename = async (...args: Parameters<typeof fsp.rename>) => {
    await rename(...args);
    if (++calls === 1) {
      process.kill(process.pid, 'SIGTERM');
      await hold();
    }
  };
} else {
  const putAll = store.putAll.bind(store);
  store.putAll = async (items) => {
    process.kill(process.pid, 'SIGTERM');
    await hold();
    return putAll(items);
  };
}

const entry = (tag: string) => ({ tag, type: 'binary-blob' as const, version: 4, timeEntered: '2026-12-05T00:00:00Z', blob: new TextEncoder().encode('new'), exportable: true });
const outcomes: Outcome[] = [
  { spec: { name: 'k/made', version: 0, file: join(dir, 'out', 'made') }, entry: entry('k/made') },
  { spec: { name: 'k/replaced', version: 0, file: join(dir, 'out', 'replaced') }, entry: entry('k/replaced') },
  { spec: { name: 'k/a', version: 0, tag: 'held/a' }, entry: entry('k/a') },
].filter((x) => when !== 'before' || x.spec.name !== 'k/made');
const completedBeforeSignal = (signal: NodeJS.Signals, failed?: string) => process.stderr.write(`${signal} waited: ${failed ? `not ${failed}` : 'all written'}\n`);
if (when === 'partial') {
  // The key-server's answers, as KeyClient.retrieve gives them: one name it does not have.
  const client = { retrieve: async (name: string) => {
    if (name === 'k/missing') throw new CertifierError('NOT_FOUND', 'no such key');
    return entry(name);
  } } as unknown as KeyClient;
  await provision(client, store, [...outcomes.map((x) => x.spec), { name: 'k/missing', version: 0, file: join(dir, 'out', 'missing') }], { allowPartial: true, completedBeforeSignal });
} else {
  await keepAll(store, outcomes, { completedBeforeSignal });
}
await store.close();
process.stdout.write('finished\n');

// A child process for the LevelDB resource tests: opens a key-server database (or, with
// --cryptstore, a cryptstore, made if missing, under a cheap passphrase) and carries out one
// command per line of stdin, answering each on stdout with "ok VERSION" or "error CODE MESSAGE"
// (and a failed open with that error instead of "ready").
// Run under a file-size limit (ulimit -f) it meets EFBIG as a full disk would; the test can raise
// the limit meanwhile (prlimit --pid).
// Usage: node --import tsx test/support/level-writer.ts DIR [--cryptstore]
// Commands: "put NAME BYTES" (the next version of NAME with BYTES of ciphertext, or of value in a
// cryptstore), "get NAME" (its latest version), "exhaust"
// (opens /dev/null until this process has no file descriptor left), "release" (closes those),
// "close".

import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { Cryptstore, PassphraseProtector } from '../../cryptstore/index.ts';

interface Target {
  put(name: string, bytes: number): Promise<number>;
  get(name: string): Promise<number | undefined>;
  close(): Promise<void>;
}

async function openBackend(dir: string): Promise<Target> {
  const backend = await LevelBackend.open(dir);
  return {
    put: async (name, bytes) => (await backend.append(name, (version) => ({
      name, version, type: 'binary-blob', exportable: false, timeEntered: new Date().toISOString(), size: 1, ciphertext: randomBytes(bytes),
    }))).version,
    get: async (name) => (await backend.get(name, 0))?.version,
    close: () => backend.close(),
  };
}

async function openCryptstore(dir: string): Promise<Target> {
  const store = await Cryptstore.openOrCreate(dir, new PassphraseProtector(new TextEncoder().encode('writer'), { logN: 10, r: 8, p: 1 }));
  return {
    put: async (name, bytes) => (await store.put(name, randomBytes(bytes))).version,
    get: async (name) => (await store.has(name) ? (await store.get(name)).version : undefined),
    close: () => store.close(),
  };
}

const answerError = (e: unknown) => {
  const err = e as { code?: string; message?: string };
  process.stdout.write(`error ${err.code ?? 'none'} ${JSON.stringify(err.message)}\n`);
};
// An open that fails is answered in place of "ready", and the child ends.
const target = await (process.argv[3] === '--cryptstore' ? openCryptstore(process.argv[2]!) : openBackend(process.argv[2]!)).catch((e: unknown) => {
  answerError(e);
  process.exit(1);
});
const held: number[] = [];
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  const [command, name, bytes] = line.split(' ');
  try {
    if (command === 'close') {
      await target.close();
      process.stdout.write('ok closed\n');
      break;
    }
    if (command === 'exhaust') {
      for (;;) held.push(openSync('/dev/null', 'r'));
    }
    if (command === 'release') {
      for (const fd of held.splice(0)) closeSync(fd);
      process.stdout.write('ok released\n');
      continue;
    }
    if (command === 'get') {
      process.stdout.write(`ok ${(await target.get(name!)) ?? 'none'}\n`);
      continue;
    }
    process.stdout.write(`ok ${await target.put(name!, Number(bytes))}\n`);
  } catch (e) {
    answerError(e);
  }
}

// A child process for the LevelBackend resource tests: opens a key-server database and carries
// out one command per line of stdin, answering each on stdout with "ok VERSION" or
// "error CODE MESSAGE". Run under a file-size limit (ulimit -f) it meets EFBIG as a full disk
// would; the test can raise the limit meanwhile (prlimit --pid).
// Usage: node --import tsx test/support/level-writer.ts DIR
// Commands: "put NAME BYTES" (the next version of NAME with BYTES of ciphertext), "get NAME"
// (its latest version), "exhaust"
// (opens /dev/null until this process has no file descriptor left), "release" (closes those),
// "close".

import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';

const backend = await LevelBackend.open(process.argv[2]!);
const held: number[] = [];
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  const [command, name, bytes] = line.split(' ');
  try {
    if (command === 'close') {
      await backend.close();
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
      process.stdout.write(`ok ${(await backend.get(name!, 0))?.version ?? 'none'}\n`);
      continue;
    }
    const record = await backend.append(name!, (version) => ({
      name: name!, version, type: 'binary-blob', exportable: false, timeEntered: new Date().toISOString(), size: 1, ciphertext: randomBytes(Number(bytes)),
    }));
    process.stdout.write(`ok ${record.version}\n`);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    process.stdout.write(`error ${err.code ?? 'none'} ${JSON.stringify(err.message)}\n`);
  }
}

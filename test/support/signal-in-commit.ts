// A child process for the files test: writes two files together (A replaces a file, B is new and
// exclusive) and sends itself SIGTERM right after the Nth call of fs.promises.OP (link, rename or
// unlink), or as it starts ("during": handled while the call is in flight on libuv's threads), as
// an operator's Ctrl-C or a unit's stop could at any moment.
// Usage: node --import tsx test/support/signal-in-commit.ts DIR OP N after|during

import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { writeFilesAtomic } from '../../lib/files/index.ts';

const [dir, op, nth, when] = process.argv.slice(2) as [string, 'link' | 'rename' | 'unlink', string, 'after' | 'during'];
const original = fsp[op] as (...args: unknown[]) => Promise<void>;
let calls = 0;
(fsp as unknown as Record<string, unknown>)[op] = async (...args: unknown[]) => {
  const mine = ++calls === Number(nth);
  // "during": the signal is sent as the call starts, so it is handled while the call is in flight.
  if (mine && when === 'during') process.kill(process.pid, 'SIGTERM');
  await original(...args);
  if (mine) {
    if (when !== 'during') process.kill(process.pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 300)); // the signal is handled in the meantime
  }
};
const text = (t: string) => new TextEncoder().encode(t);
await writeFilesAtomic([{ path: join(dir, 'a'), data: text('new') }, { path: join(dir, 'b'), data: text('new'), exclusive: true }]);
process.stdout.write('finished\n');

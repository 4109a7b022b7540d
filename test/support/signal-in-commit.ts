// A child process for the files test: writes two files together (A replaces a file, B is new and
// exclusive) and, right after the Nth call of fs.promises.OP (link, rename or unlink), sends
// itself SIGTERM, as an operator's Ctrl-C or a unit's stop could at any moment.
// Usage: node --import tsx test/support/signal-in-commit.ts DIR OP N

import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { writeFilesAtomic } from '../../lib/files/index.ts';

const [dir, op, nth] = process.argv.slice(2) as [string, 'link' | 'rename' | 'unlink', string];
const original = fsp[op] as (...args: unknown[]) => Promise<void>;
let calls = 0;
(fsp as unknown as Record<string, unknown>)[op] = async (...args: unknown[]) => {
  await original(...args);
  if (++calls === Number(nth)) {
    process.kill(process.pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 300)); // the signal is handled in the meantime
  }
};
const text = (t: string) => new TextEncoder().encode(t);
await writeFilesAtomic([{ path: join(dir, 'a'), data: text('new') }, { path: join(dir, 'b'), data: text('new'), exclusive: true }]);
process.stdout.write('finished\n');

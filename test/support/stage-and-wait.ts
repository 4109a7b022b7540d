// A child process for the files test: stages a file (written aside, not yet in place), prints
// "staged", and waits to be signalled. With "handler" it first installs its own SIGTERM handler,
// as a server does, which then owns the staged file.
// With "half-committed", two of three files written together are in place when it says so.
// Usage: node --import tsx test/support/stage-and-wait.ts PATH [handler|once|half-committed]

import { promises as fsp } from 'node:fs';
import { stageFile, writeFilesAtomic } from '../../lib/files/index.ts';

const [path, mode] = process.argv.slice(2);
if (mode === 'handler') process.on('SIGTERM', () => process.exit(0));
// As key-server's runUntilSignal does: Node removes a once listener before calling it.
if (mode === 'once') process.once('SIGTERM', () => setTimeout(() => process.exit(0), 100));
if (mode === 'half-committed') {
  // Three files written together: PATH (replacing the file there), PATH.new and PATH.third (new).
  // The third one's link into place is held back for 800 ms, and "staged" printed as it starts:
  // the first two are in place when the parent signals.
  const original = fsp.link;
  let links = 0;
  fsp.link = async (...args: Parameters<typeof fsp.link>) => {
    if (++links === 3) {
      process.stdout.write('staged\n');
      await new Promise((r) => setTimeout(r, 800));
    }
    return original(...args);
  };
  const text = (t: string) => new TextEncoder().encode(t);
  await writeFilesAtomic([{ path: path!, data: text('new') }, { path: `${path}.new`, data: text('new'), exclusive: true }, { path: `${path}.third`, data: text('new'), exclusive: true }]);
} else {
  await stageFile(path!, new TextEncoder().encode('a secret'));
  process.stdout.write('staged\n');
}
setInterval(() => {}, 1000);

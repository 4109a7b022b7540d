// A child process for the files test: stages a file (written aside, not yet in place), prints
// "staged", and waits to be signalled. With "handler" it first installs its own SIGTERM handler,
// as a server does, which then owns the staged file.
// With "half-committed", two of three files are in place, as a commitAll is between files.
// Usage: node --import tsx test/support/stage-and-wait.ts PATH [handler|once|half-committed]

import { stageFile } from '../../lib/files/index.ts';

const [path, mode] = process.argv.slice(2);
if (mode === 'handler') process.on('SIGTERM', () => process.exit(0));
// As key-server's runUntilSignal does: Node removes a once listener before calling it.
if (mode === 'once') process.once('SIGTERM', () => setTimeout(() => process.exit(0), 100));
if (mode === 'half-committed') {
  // Two files of one commitAll, the first in place (replacing PATH, which exists), the second
  // (PATH.new, made) in place too, and a third still staged: as if the signal came in between.
  const first = await stageFile(path!, new TextEncoder().encode('new'));
  const second = await stageFile(`${path}.new`, new TextEncoder().encode('new'));
  const third = await stageFile(`${path}.third`, new TextEncoder().encode('new'));
  await first.commit(false, true);
  await second.commit(true, true);
  void third;
} else {
  await stageFile(path!, new TextEncoder().encode('a secret'));
}
process.stdout.write('staged\n');
setInterval(() => {}, 1000);

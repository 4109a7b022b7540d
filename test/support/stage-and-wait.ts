// A child process for the files test: stages a file (written aside, not yet in place), prints
// "staged", and waits to be signalled. With "handler" it first installs its own SIGTERM handler,
// as a server does, which then owns the staged file.
// Usage: node --import tsx test/support/stage-and-wait.ts PATH [handler]

import { stageFile } from '../../lib/files/index.ts';

const [path, mode] = process.argv.slice(2);
if (mode === 'handler') process.on('SIGTERM', () => process.exit(0));
// As key-server's runUntilSignal does: Node removes a once listener before calling it.
if (mode === 'once') process.once('SIGTERM', () => setTimeout(() => process.exit(0), 100));
await stageFile(path!, new TextEncoder().encode('a secret'));
process.stdout.write('staged\n');
setInterval(() => {}, 1000);

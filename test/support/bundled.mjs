// Runs one of test/support's scripts as the programs run: from a bundle cmd/bin/launch.js keeps
// current (here in .cache/support), or through tsx where it cannot. Through tsx each child
// compiled every source it imports (the mocha process's TSX_DISABLE_CACHE=1 reaches it too); a
// bundle loads as one file, a fraction of a second of CPU less per child. The bundle leaves
// level and pg out, as the programs' do: a script's patch of Level.prototype still reaches the
// cryptstore's.
// Usage: node test/support/bundled.mjs test/support/SCRIPT.ts ARGS... (the script sees ARGS as
// process.argv.slice(2), as it would run through tsx).

import { join } from 'node:path';

const { launchSource } = await import('../../cmd/bin/launch.js');
const [entry] = process.argv.splice(2, 1);
await launchSource(entry, join('.cache', 'support'));

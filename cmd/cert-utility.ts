// cert-utility: the domain owner's and the machine's tool (cryptstore commands today; policy and
// certification commands join them).

import { createProgram, run } from './common/cli.ts';
import { addStoreCommands } from './cert-utility/store-commands.ts';

process.umask(0o077); // every file this program creates is private to its owner

const program = createProgram('cert-utility', 'policy keys, certification and the encrypted cryptstore');
addStoreCommands(program);
await run(program);

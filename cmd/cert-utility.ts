// cert-utility: the domain owner's and the machine's tool: policy key, platform keys, measurements,
// policy, certification (init-trust, issue-cert) and the encrypted cryptstore.

import { createProgram, run } from './common/cli.ts';
import { addStoreCommands } from './cert-utility/store-commands.ts';
import { addTrustCommands } from './cert-utility/trust-commands.ts';

process.umask(0o077); // every file this program creates is private to its owner

const program = createProgram('cert-utility', 'policy keys, certification and the encrypted cryptstore');
addTrustCommands(program);
addStoreCommands(program);
await run(program);

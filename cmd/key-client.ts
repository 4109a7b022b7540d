// key-client: asks a key-server for named keys and keeps them in the local cryptstore; also
// provisions keys into the key-server. (Commands arrive with the key-service work.)

import { createProgram, run } from './common/cli.ts';

process.umask(0o077);
const program = createProgram('key-client', 'fetch named keys from a key-server into the cryptstore, or provision them');
program.addHelpText('after', '\nCommands (store, retrieve, delete, list, provision) are not implemented yet.\n');
program.action(() => program.help({ error: true }));
await run(program);

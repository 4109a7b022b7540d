// key-server: stores and releases named keys over mutual TLS to certified members of the policy
// domain. (Commands arrive with the key-service work; this program only describes itself.)

import { createProgram, run } from './common/cli.ts';

process.umask(0o077);
const program = createProgram('key-server', 'store and release named keys to certified machines over mutual TLS');
program.addHelpText('after', '\nCommands (serve, verify-audit) are not implemented yet.\n');
program.action(() => program.help({ error: true }));
await run(program);

// simpleserver: the policy-key certificate authority. It verifies a machine's evidence against
// the signed policy and issues an X.509 admission certificate. (Commands arrive with the
// certificate-authority work; this program only describes itself for now.)

import { createProgram, run } from './common/cli.ts';

process.umask(0o077);
const program = createProgram('simpleserver', 'the policy-key certificate authority: evidence in, admission certificate out');
program.addHelpText('after', '\nCommands (serve, explain) are not implemented yet.\n');
program.action(() => program.help({ error: true }));
await run(program);

// A child process for the README test: prints, as one JSON document, the --help text of every
// subcommand of the four programs ({"key-client": {"retrieve": "Usage: ..."}}), as each program
// builds its commands, without running one: the program's parse is replaced by a record of the
// command tree it was given. One process for all, where spawning each `PROGRAM SUB --help` costs
// a program start per subcommand.
// Usage: node --import ./test/support/tsx.mjs test/support/help-texts.ts

import { Command } from 'commander';

const texts: Record<string, Record<string, string>> = {};
Command.prototype.parseAsync = async function (this: Command) {
  texts[this.name()] = Object.fromEntries(this.commands.filter((c) => c.name() !== 'help').map((c) => [c.name(), c.helpInformation()]));
  return this;
};
for (const program of ['cert-utility', 'simpleserver', 'key-server', 'key-client']) await import(`../../cmd/${program}.ts`);
process.stdout.write(JSON.stringify(texts));

// A child process for the integer-flag test: builds the four programs' command trees as each
// program does, without running one (as help-texts.ts), and parses the values it is given with
// each flag's own parser. Prints one JSON document: the flags that take a number (<n>), for
// each query [program, command, flag, value] what the parser made of it ({ value } or { error }),
// and every subcommand with its required flags and arguments (the output-contract test).
// Usage: node --import ./test/support/tsx.mjs test/support/option-parsers.ts '[["key-client","get","--version","010"]]'

import { Command, type Option } from 'commander';

const programs = new Map<string, Command>();
Command.prototype.parseAsync = async function (this: Command) {
  programs.set(this.name(), this);
  return this;
};
for (const program of ['cert-utility', 'simpleserver', 'key-server', 'key-client']) await import(`../../cmd/${program}.ts`);

const option = (program: string, command: string, flag: string): Option => {
  const found = programs.get(program)?.commands.find((c) => c.name() === command)?.options.find((o) => o.long === flag);
  if (!found) throw new Error(`${program} ${command} has no ${flag}`);
  return found;
};
const parsed = (JSON.parse(process.argv[2] ?? '[]') as [string, string, string, string][]).map(([program, command, flag, value]) => {
  const o = option(program, command, flag);
  try {
    return { value: o.parseArg ? o.parseArg(value, o.defaultValue) : value };
  } catch (e) {
    return { error: (e as Error).message };
  }
});
const numeric = [...programs].flatMap(([program, root]) => root.commands.flatMap((c) => c.options.filter((o) => /<n>$/.test(o.flags)).map((o) => [program, c.name(), o.long!])));
const commands = [...programs].flatMap(([program, root]) => root.commands.filter((c) => c.name() !== 'help').map((c) => ({
  program, command: c.name(), required: c.options.filter((o) => o.mandatory).map((o) => o.long!), args: c.registeredArguments.filter((a) => a.required).map((a) => a.name()),
})));
process.stdout.write(JSON.stringify({ numeric, parsed, commands }));

// The output contract shared by every program: results on stdout, people-facing lines on
// stderr, `--json` turning the result or the error into one JSON document on stdout, and exit
// statuses from lib/errors. No stack trace reaches the user unless CERTIFIER_DEBUG=1.

import { Command, CommanderError, Help, InvalidArgumentError, Option } from 'commander';
import { fstatSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { CertifierError, debugging, errorKind, ExitStatus, exitStatusOf, isCertifierError } from '../../lib/errors/index.ts';
import { domainProblem } from '../../lib/pki/admission.ts';
import { escapeInvisible, visibleJson } from '../../lib/wire/index.ts';
import { WORKING_DIRECTORY_GONE } from '../bin/working-directory.js';
import { onUncaught } from './uncaught.ts';

/** What a command hands back to be rendered. */
export interface Result {
  /** The machine-readable result (under --json). */
  json: Record<string, unknown>;
  /** Lines for stdout without --json. */
  text?: string[];
  /** Raw bytes for stdout without --json (a secret asked for with --out -). */
  raw?: Uint8Array;
  /** On stdout already, written as it came (a listing): nothing more is rendered. */
  written?: boolean;
}

export interface JsonOption {
  json?: boolean;
}

const debug = debugging();

/** The status of a Unix tool killed by SIGPIPE (128 + 13), which shells and pipefail expect. */
export const STDOUT_CLOSED_STATUS = 141;

// A reader that stops early (`get-item --out - | head -c 16`) closes our stdout. That is not a
// failure of the command: it finishes, quietly, with the status a Unix tool killed by SIGPIPE has,
// never with a stack trace. A server goes on serving. Any other stdout failure exits 1.
let stdoutStatus: number | undefined;
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  // Anything else (a full disk, an I/O error) is a failure worth a message: the result is lost.
  if (e.code !== 'EPIPE' && stdoutStatus === undefined) process.stderr.write(`${process.argv[1] ? basename(process.argv[1]).replace(/\.js$/, '') : 'error'}: error: cannot write standard output: ${e.code ?? e.message} [FILE_ERROR]\n`);
  stdoutStatus ??= e.code === 'EPIPE' ? STDOUT_CLOSED_STATUS : ExitStatus.failed;
  if (!process.exitCode) process.exitCode = stdoutStatus;
});

// A log reader that goes away (a `| tee` or a log shipper that exits) closes our stderr: what
// would have been written there is lost from then on, but a server goes on serving and a command
// finishes, instead of dying of an unhandled 'error' event with a stack trace.
process.stderr.on('error', () => {});

/**
 * Writes a result to stdout. Into a file Node writes once and drops the rest of a short write
 * (a disk filling up mid-write: the secret cut short, exit 0), so there every byte is written
 * here, and a failure is FILE_ERROR; a pipe or terminal goes through process.stdout as before.
 */
function writeStdout(data: string | Uint8Array): void {
  let isFile = false;
  try {
    isFile = fstatSync(1).isFile();
  } catch {
    // fd 1 closed or odd: leave it to process.stdout and its error handler
  }
  if (!isFile) {
    process.stdout.write(data);
    return;
  }
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let at = 0;
  try {
    while (at < bytes.length) at += writeSync(1, bytes, at, bytes.length - at);
  } catch (e) {
    const what = at > 0 ? 'what was written there is incomplete' : 'nothing was written there';
    throw new CertifierError('FILE_ERROR', `cannot write standard output: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; ${what}`, { cause: e, details: { stdout: true } });
  }
}

/** A server run with --log-json: every line on stderr is then a JSON record, warnings and the final error too. */
function logsJson(): boolean {
  return rootProgram !== undefined && flagTyped(rootProgram, '--log-json');
}

function jsonLine(event: string, fields: Record<string, unknown>): void {
  process.stderr.write(`${visibleJson({ time: new Date().toISOString(), event, ...fields })}\n`);
}

/** Writes a people-facing line to stderr: "prog: warning: ...". */
// A warning or note may quote what it was given (a secret's name from a config, a file name): as
// an error's message, no control or invisible character reaches the terminal raw.
export function warn(program: string, message: string): void {
  if (logsJson()) jsonLine('warning', { message });
  else process.stderr.write(`${program}: warning: ${escapeInvisible(message)}\n`);
}

export function note(program: string, message: string): void {
  if (logsJson()) jsonLine('note', { message });
  else process.stderr.write(`${program}: ${escapeInvisible(message)}\n`);
}

/**
 * How many times each flag of `cmd` is given in `tokens` (the arguments as typed): a flag's
 * value is never taken for a flag (`--tag --json` names a tag; `--in --in=x` reads a file), and
 * nothing after `--` counts.
 */
function flagsGiven(cmd: Command, tokens: readonly string[]): Map<string, number> {
  const given = new Map<string, number>();
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '--') break;
    const opt = cmd.options.find((o) => o.long && (t === o.long || t.startsWith(`${o.long}=`) || (o.short !== undefined && t === o.short)));
    if (!opt) continue;
    given.set(opt.long!, (given.get(opt.long!) ?? 0) + 1);
    if (!t.includes('=') && opt.required) i++; // its value, whatever it looks like
  }
  return given;
}

/**
 * Whether `flag` was given to the command typed, read from the arguments as typed (an error may
 * come before or while they are parsed): `--data --log-json` names a directory.
 */
function flagTyped(program: Command, flag: string): boolean {
  const tokens = process.argv.slice(2);
  const sub = typedCommand(program);
  return sub ? (flagsGiven(sub, tokens.slice(1)).get(flag) ?? 0) > 0 : tokens.includes(flag);
}

/** The subcommand typed (its name or an alias), read from the arguments as typed. */
function typedCommand(program: Command, argv: readonly string[] = process.argv): Command | undefined {
  return program.commands.find((c) => c.name() === argv[2] || c.aliases().includes(argv[2] ?? ''));
}

const wantsJson = (program: Command): boolean => flagTyped(program, '--json');

const SHOWN_DETAILS: Record<string, (v: unknown) => boolean> = {
  proof: Array.isArray, file: (v) => typeof v === 'string', line: Number.isSafeInteger,
  // How a store is protected, when a command was given another way (first-boot.sh tells the cases apart).
  protection: (v) => v === 'passphrase' || v === 'key-file' || v === 'sealed',
  // The version a key-server made or deleted without recording it (NOT_RECORDED; 0 = all, for a
  // delete), or may have made or deleted (OUTCOME_UNKNOWN).
  version: Number.isSafeInteger,
  deleted: Number.isSafeInteger,
  // What verify-store --repair --yes changed in the store before it found problems left.
  repaired: (v) => Array.isArray(v) && v.every((r) => typeof r?.key === 'string' && typeof r?.done === 'string'),
  // What verify-store found damaged: every record, where its message names the first 20.
  problems: (v) => Array.isArray(v) && v.every((p) => typeof p?.key === 'string' && typeof p?.problem === 'string'),
  // What a refusal was decided without (simpleserver explain: revocation not checked), as its stderr says.
  warnings: (v) => Array.isArray(v) && v.every((w) => typeof w === 'string'),
};

/** The details of an error that its JSON form carries: only those of SHOWN_DETAILS, of their type. */
function shownDetails(details: Record<string, unknown> | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(details ?? {}).filter(([k, v]) => Object.hasOwn(SHOWN_DETAILS, k) && SHOWN_DETAILS[k]!(v)));
}

/** Whether `e` (or the error it wraps) is a server's own failure (details.remote): nothing here to debug. */
function remote(e: unknown): boolean {
  return e instanceof CertifierError && (e.details?.remote === true || remote(e.cause));
}

/** The wait of this program's that ran out (the channel's timeoutError): `e` or what it wraps. */
function ranOut(e: unknown): CertifierError | undefined {
  for (let c = e, depth = 0; c instanceof Error && depth < 4; c = c.cause, depth++) {
    if (isCertifierError(c, 'TIMEOUT') && c.details?.timeoutMs !== undefined) return c;
  }
  return undefined;
}

/**
 * `e`, when a wait of ours ran out (it, or the error it wraps: a retrieve's "nothing was written"),
 * naming --timeout beside the step that ran out and ending with what may be wrong; any other error
 * (a server's own TIMEOUT, its storage's) as it is.
 */
export function explainTimeout(e: unknown, o: { timeout: number }): unknown {
  const step = ranOut(e);
  if (!isCertifierError(e, 'TIMEOUT') || !step) return e;
  const flag = `(--timeout ${o.timeout})`;
  const at = e.message.indexOf(step.message);
  const said = at < 0 ? `${e.message} ${flag}` : `${e.message.slice(0, at + step.message.length)} ${flag}${e.message.slice(at + step.message.length)}`;
  // No name server answered: the server was never asked (a VM at first boot, its network or DNS not up yet).
  const cause = step.details?.lookup === true ? 'no name server answered (the network or DNS not up yet, or /etc/resolv.conf naming one that is not there)' : 'the server is stopped, overloaded or cut off';
  return new CertifierError('TIMEOUT', `${said}: ${cause}; a retry may succeed, or give it longer with --timeout`, { cause: e, details: e.details });
}

/**
 * Says `e` the output contract's way; `uncaught` (the last line of defence's error, cmd/common/
 * uncaught.ts) says it in one line, its hint in its message (on stderr once the result is on
 * stdout), and under CERTIFIER_DEBUG=1 shows only the stack of what was thrown.
 */
function renderError(command: Command, e: unknown, uncaught = false): number {
  // A wait of a command with --timeout that ran out says so and names the flag, wherever it was thrown.
  const timeout = typedCommand(command)?.opts().timeout;
  if (typeof timeout === 'number') e = explainTimeout(e, { timeout });
  const program = command.name();
  const status = e instanceof CommanderError ? ExitStatus.usage : exitStatusOf(e);
  const code = e instanceof CertifierError ? e.code : e instanceof CommanderError ? 'USAGE' : 'INTERNAL';
  // commander puts its "(Did you mean --store?)" on a line of its own: one line here. A newline
  // in a value it quotes stays, to be escaped with the rest (as a space it hid what was given).
  let message = e instanceof CommanderError ? e.message.replace(/^error: /, '').replace(/\n(?=\(Did you mean )/g, ' ') : (e as Error)?.message ?? String(e);
  // One not of ours is said by its kind alone (as the last line of defence says one): its message
  // may quote what it was given, a secret; CERTIFIER_DEBUG=1 shows it, with the stack.
  if (!(e instanceof CertifierError) && !(e instanceof CommanderError)) message = `internal error: ${errorKind(e)}`;
  // Details that are safe to show go with the refusal: a decision's proof (simpleserver explain),
  // as the text form prints it, and its warnings; the file and line an error names (verify-audit);
  // how a store is protected (WRONG_KEY given another way); what verify-store found and repaired. No others.
  const shown = e instanceof CertifierError ? shownDetails(e.details) : {};
  if (wantsJson(command) && !(uncaught && rendered)) {
    try {
      writeStdout(visibleJson({ ok: false, error: { code, message, exitStatus: status, ...shown } }) + '\n');
    } catch (w) {
      // The error document cannot go to stdout either: it goes to stderr, once.
      const also = e instanceof CertifierError && e.details?.stdout === true ? '' : `; and ${(w as Error).message}`;
      process.stderr.write(`${program}: error: ${escapeInvisible(message)} [${code}]${also}\n`);
    }
  } else if (logsJson()) {
    jsonLine('error', { code, message, exitStatus: status });
  } else {
    // A message may quote what it was given (a file name): no control character reaches the terminal raw.
    process.stderr.write(`${program}: error: ${escapeInvisible(message)} [${code}]\n`);
    // The refusal of a command run with --check-only is its answer, not a misuse of it.
    if (status === ExitStatus.usage && !flagTyped(command, '--check-only')) {
      const sub = typedCommand(command);
      process.stderr.write(`hint: run "${program}${sub ? ` ${sub.name()}` : ''} --help" for usage\n`);
    }
    if (code === 'INTERNAL' && !remote(e) && !uncaught) process.stderr.write('hint: set CERTIFIER_DEBUG=1 to see where it happened\n');
    // Where the command's --force replaces what is there (not init-trust's, which certifies again).
    const force = code === 'ALREADY_EXISTS' && !flagTyped(command, '--force') ? typedCommand(command)?.options.find((o) => o.long === '--force') : undefined;
    if (force?.description.startsWith('replace ')) process.stderr.write(`hint: give --force to ${force.description}\n`);
  }
  if (debug && uncaught) process.stderr.write(`${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).stack : String((e as Error).cause)}\n`);
  else if (debug && e instanceof Error) process.stderr.write(`${e.stack}\n${e.cause ? `cause: ${(e.cause as Error).stack ?? e.cause}\n` : ''}`);
  return status;
}

/**
 * Lines of a result written as they come (a listing of any length), before the command returns.
 * Resolves once stdout has room again (a pipe's writes queue in memory: a slow reader holds the
 * producer back instead), to false once stdout is closed or failed: nothing more is worth making.
 */
export function printLines(lines: string[]): Promise<boolean> {
  return printText(lines.length ? lines.join('\n') + '\n' : '');
}

/** As printLines, a stretch of text (a piece of a JSON document). */
export async function printText(text: string): Promise<boolean> {
  if (text) writeStdout(text);
  if (stdoutStatus === undefined && process.stdout.writableNeedDrain) {
    await new Promise<void>((resolve) => {
      const done = () => {
        for (const event of ['drain', 'error', 'close']) process.stdout.off(event, done);
        resolve();
      };
      for (const event of ['drain', 'error', 'close']) process.stdout.on(event, done);
    });
  }
  return stdoutStatus === undefined && !process.stdout.destroyed;
}

/** Whether a command's result is on stdout: under --json, a fault after it goes to stderr, and stdout keeps one document. */
let rendered = false;

function render(result: Result, json: boolean): void {
  rendered = true;
  if (result.written) return;
  if (json) {
    // Not visibleJson: a script may look for a name's own text in a result (first-boot.sh finds
    // held keys as "tag":"NAME" in list-items --json); errors and key-client's listings escape.
    writeStdout(JSON.stringify({ ok: true, ...result.json }) + '\n');
    return;
  }
  if (result.raw) writeStdout(result.raw);
  if (result.text?.length) writeStdout(result.text.join('\n') + '\n');
}

/** A commander program with our conventions: usage errors exit 2, help on stdout. */
/** The running program's name, for warnings from helpers that are not told it. */
let programName = 'certifier';
export const runningProgram = (): string => programName;
/** The running program's commands, for telling its flags from their values (logsJson). */
let rootProgram: Command | undefined;

export function createProgram(name: string, description: string): Command {
  programName = name;
  const program = new Command(name);
  rootProgram = program;
  program
    .description(description)
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({ outputError: () => {} }) // errors are rendered by run()
    .configureHelp({ optionDescription }) // inherited by every subcommand
    .helpCommand(true);
  return program;
}

/**
 * commander's description of a flag, without the empty list a repeatable flag starts from: its
 * "(default: [])" tells an operator nothing, and stood beside the default a flag's own text gives
 * (export-store --tag: "every exportable item").
 */
function optionDescription(this: Help, option: Option): string {
  const none = Array.isArray(option.defaultValue) && option.defaultValue.length === 0;
  return Help.prototype.optionDescription.call(this, none ? Object.assign(Object.create(option) as Option, { defaultValue: undefined }) : option);
}

/**
 * Adds a subcommand carrying --json, whose action returns a Result. A command given `check`
 * (its checks of its flags and arguments that write and connect to nothing) runs it before `fn`,
 * and takes --check-only: a script's question before it acts (first-boot.sh, before certifying),
 * answered by the command's own parsing and checks, which a run then makes too. A check reads
 * nothing, but what `checkReads` names, and only under --check-only (options.checkOnly): what
 * the run reads and checks before it writes (make-policy's roots given by file). What `check`
 * returns (the flags it parsed) is handed to `fn`, which need not parse them again.
 */
export function subcommand<O extends JsonOption, C = void>(
  parent: Command,
  name: string,
  description: string,
  fn: (options: O, args: string[], checked: C) => Promise<Result>,
  check?: (options: O & { checkOnly?: boolean }, args: string[]) => C | Promise<C>,
  checkReads?: string,
): Command {
  const cmd = parent.command(name).description(description).option('--json', 'print the result (or the error) as one JSON document');
  if (check) cmd.option('--check-only', `check the flags and arguments as a run does, then exit 0 (or 2 saying why), ${checkReads ? `reading only ${checkReads}, writing` : 'reading, writing'} and connecting to nothing`);
  cmd.action(async function (this: Command) {
    refuseRepeated(this);
    refuseEmpty(this);
    const options = this.opts<O & { checkOnly?: boolean }>();
    const checked = (await check?.(options, this.args)) as C;
    render(options.checkOnly ? { json: { checked: true } } : await fn(options, this.args, checked), options.json === true);
  });
  return cmd;
}

/**
 * A flag that takes one value, given twice, is a mistake (commander keeps the last: `--data A
 * --data B` served B). Repeatable flags (collected, default []) may repeat; nothing after `--`
 * counts.
 */
function refuseRepeated(cmd: Command): void {
  // The arguments as typed (commander keeps them on the program, untyped).
  const tokens: string[] = ((cmd.parent as unknown as { rawArgs?: string[] } | null)?.rawArgs ?? process.argv).slice(2);
  for (const [flag, n] of flagsGiven(cmd, tokens)) {
    const opt = cmd.options.find((o) => o.long === flag)!;
    const oneValue = (opt.required || opt.optional) && !opt.variadic && !Array.isArray(opt.defaultValue);
    if (n > 1 && oneValue) throw new CertifierError('USAGE', `${flag} is given ${n} times; it takes one value`);
  }
}

/**
 * A flag given an empty value (`--out ''`, a shell variable that was not set) is a mistake: it
 * named no file, and a command could read it as not given at all (key-client retrieve stored into
 * the cryptstore instead).
 */
function refuseEmpty(cmd: Command): void {
  for (const opt of cmd.options) {
    if ((!opt.required && !opt.optional) || cmd.getOptionValueSource(opt.attributeName()) !== 'cli') continue;
    const value: unknown = cmd.getOptionValue(opt.attributeName());
    if (value === '' || (Array.isArray(value) && value.includes(''))) throw new CertifierError('USAGE', `${opt.long} needs a value, not an empty string`);
  }
}

let exitWhenDone = false;

/**
 * Something abandoned (a backup or reload stuck in a read of a disk that does not answer) may
 * hold the process in a call that never returns: once its result is written, run exits rather
 * than wait for it.
 */
export function exitOnceDone(): void {
  exitWhenDone = true;
}

/** Parses argv, runs the chosen action, sets the exit status. Never throws. */
export async function run(program: Command, argv = process.argv): Promise<void> {
  onUncaught((e) => renderError(program, e, true));
  try {
    await runOnce(program, argv);
  } finally {
    if (exitWhenDone) process.exit();
  }
}

async function runOnce(program: Command, argv: string[]): Promise<void> {
  // `prog help X`, X no command (a typo, a flag: `help --json`): a usage error, refused before
  // commander writes the program's help (to stdout, for a flag), where only the error belongs.
  const [first, asked] = argv.slice(2);
  if (first === 'help' && asked !== undefined && asked !== '-h' && asked !== '--help' && !program.commands.some((c) => c.name() === asked || c.aliases().includes(asked))) {
    process.exitCode = renderError(program, new CertifierError('USAGE', asked.startsWith('-') ? `help takes a command's name, not the flag '${asked}'` : `unknown command '${asked}'`));
    return;
  }
  try {
    await program.parseAsync(argv);
    process.exitCode = stdoutStatus ?? ExitStatus.ok;
  } catch (e) {
    if (e instanceof CommanderError && (e.code === 'commander.helpDisplayed' || e.code === 'commander.version')) {
      process.exitCode = ExitStatus.ok;
      return;
    }
    if (e instanceof CommanderError && e.code === 'commander.help') {
      // `prog help [command]` asked for it (exit 0); no command at all is a usage error.
      process.exitCode = first === 'help' ? ExitStatus.ok : ExitStatus.usage;
      return;
    }
    process.exitCode = renderError(program, workingDirectoryGone(e) ?? switchGivenValue(program, argv, e) ?? mistypedFlag(program, argv, e) ?? e);
  }
}

/**
 * A flag that takes no value given one (`--json=1`, `--log-json=true`): commander calls it an
 * unknown option ("Did you mean --json?"), where it is a known one given what it does not take.
 */
function switchGivenValue(program: Command, argv: readonly string[], e: unknown): CertifierError | undefined {
  if (!(e instanceof CommanderError) || e.code !== 'commander.unknownOption') return undefined;
  const [, token, flag] = /unknown option '((--[^=']+)=.*)'/s.exec(e.message) ?? [];
  if (!token || !flag) return undefined;
  const sub = typedCommand(program, argv);
  const known = [...(sub?.options ?? []), ...program.options].find((o) => o.long === flag);
  if (!known || known.required || known.optional) return undefined;
  return new CertifierError('USAGE', `${flag} takes no value: give it alone, not as '${token}'`, { cause: e });
}

/**
 * A required flag "not specified" where a flag commander does not know was typed (`--stor`): the
 * typo is the mistake, and commander's error for it suggests the flag meant. Commander checks for
 * the missing flag first.
 */
function mistypedFlag(program: Command, argv: readonly string[], e: unknown): CommanderError | undefined {
  if (!(e instanceof CommanderError) || e.code !== 'commander.missingMandatoryOptionValue') return undefined;
  const sub = typedCommand(program, argv);
  if (!sub) return undefined;
  const known = [...sub.options, ...program.options];
  const tokens = argv.slice(3);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '--') break;
    if (!t.startsWith('-') || t === '-') continue;
    const opt = known.find((o) => t === o.long || t.startsWith(`${o.long}=`) || (o.short !== undefined && t === o.short));
    if (opt) {
      if (!t.includes('=') && opt.required) i++; // its value, whatever it looks like
      continue;
    }
    if (t === '-h' || t === '--help') return undefined;
    try {
      // Commander's own refusal of it (not in its typings), suggestion included.
      (sub as unknown as { unknownOption(flag: string): never }).unknownOption(t);
    } catch (unknown) {
      if (unknown instanceof CommanderError) return unknown;
    }
    return undefined;
  }
  return undefined;
}

/**
 * FILE_ERROR for a relative path met in a working directory that was removed (process.cwd()
 * fails, and path.resolve() with it): the operator's mistake, not an internal error.
 */
function workingDirectoryGone(e: unknown): CertifierError | undefined {
  if ((e as NodeJS.ErrnoException)?.syscall !== 'uv_cwd') return undefined;
  return new CertifierError('FILE_ERROR', WORKING_DIRECTORY_GONE, { cause: e });
}

// ---- option parsers (a bad value is a usage error) ----------------------------------------

/**
 * Every integer on our command lines, in a flag of its own or a part of one (a port, a TCB level,
 * a seq): ASCII decimal digits, no sign, leading zeros taken and never octal (`--days 010` is 10,
 * `08` is 8). Undefined for anything else (`0x10`, `1e3`, `+5`, ` 5`) and past 2^53.
 */
export function decimal(text: string): number | undefined {
  if (!/^[0-9]+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A version option's parser; `zero` says what 0 means to it (the latest, all, none yet). */
export function versionOf(zero: string) {
  return (value: string): number => {
    const n = decimal(value);
    if (n === undefined || n > 0x7fffffff) throw new InvalidArgumentError(`expected a version number from 0 to 2147483647 (0 = ${zero})`);
    return n;
  };
}

/** A repeatable option's values, in order (commander's argParser with [] as the default). */
export const collect = <T>(v: T, acc: T[]): T[] => [...acc, v];

/** A --domain value: refused as a usage error (exit 2) where it cannot name a policy domain. */
export function domainName(value: string): string {
  const problem = domainProblem(value);
  if (problem) throw new InvalidArgumentError(problem.replace(/^the domain must be /, 'expected '));
  return value;
}

/** An integer option's parser (see decimal); `expected` says what is wanted when it is not given that. */
export function intInRange(min: number, max: number, expected = `expected an integer from ${min} to ${max}`) {
  return (value: string): number => {
    const n = decimal(value);
    if (n === undefined || n < min || n > max) throw new InvalidArgumentError(expected);
    return n;
  };
}

/** Adds "Examples:" to the --help of each named subcommand of `program`. */
export function addExamples(program: Command, examples: Record<string, string[]>): void {
  for (const c of program.commands) {
    const lines = examples[c.name()];
    if (lines) c.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
  }
}

/** A file to write where standard output is not offered: "-" would otherwise make a file named "-". */
export function fileOut(value: string): string {
  if (value === '-') throw new InvalidArgumentError('names a file to write; "-" (standard output) is not offered here');
  return value;
}

/**
 * A directory flag's value. Not one ending in "..", or in ".." then "." parts (x/new/../. is x): the
 * directory above one that may not be there yet, which making it (mkdir -p) would make inside the
 * one named, and a refused start remove with what was in it.
 */
export function dirArg(value: string): string {
  if (value === '') throw new InvalidArgumentError('expected a directory, not an empty name');
  if (value.split('/').filter((part) => part !== '' && part !== '.').at(-1) === '..') throw new InvalidArgumentError('expected the directory\'s own name, not one ending in ".." (the directory above the one before it)');
  return value;
}

export function choice(name: string, description: string, choices: readonly string[]): Option {
  return new Option(name, description).choices(choices as string[]);
}

/** A required choice a user must give. */
export function usage(message: string): CertifierError {
  return new CertifierError('USAGE', message);
}

// The README stays true: its error table matches lib/errors, every command it shows is run by a
// test, a scenario or a script, its command tables and command lines name only commands and flags
// the programs' --help lists (as its text names every flag they take), it names every event the
// servers log with the fields the code gives it, and the defaults, limits and names it states are
// the code's.

import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { ErrorCodes } from '../../lib/errors/index.ts';
import { MAX_BLOB_BYTES, MAX_BUNDLE_BYTES, MIN_KEY_FILE_BYTES } from '../../cryptstore/index.ts';
import { AUTHORITY_CERT_SECONDS, RENEW_BEFORE_MS } from '../../lib/certifier/index.ts';
import { CERTIFIER_FRAME_LIMIT } from '../../lib/certifier/service.ts';
import { DEFAULT_LIMITS } from '../../lib/channel/index.ts';
import { LINGER_MS } from '../../lib/channel/session.ts';
import { DEFAULT_SCRYPT } from '../../lib/crypto/index.ts';
import { COMPACT_AFTER, STATE_NAMES } from '../../lib/keyservice/level-backend.ts';
import { DRAIN_MS } from '../../lib/keyservice/server.ts';
import { AuditLog } from '../../lib/keyservice/audit.ts';
import { DELETE_LISTED, LIST_PAGE, MAX_VALUE_BYTES } from '../../lib/keyservice/protocol.ts';
import { DEFAULT_CLOCK_SKEW_MS, SNP_PROPERTY } from '../../lib/policy/index.ts';
import { MAX_TAG_LENGTH } from '../../lib/wire/index.ts';
import { SUITS } from '../../cmd/cert-utility/trust-commands.ts';
import { STOP_GRACE_MS } from '../../cmd/common/server.ts';
import { DEFAULT_TIMEOUT_SECONDS } from '../../cmd/common/timeout.ts';
import { helpTexts, ROOT, run, type Helps } from '../support/helpers.ts';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const PROGRAMS = ['cert-utility', 'simpleserver', 'key-server', 'key-client', 'scripts/first-boot.sh', 'scripts/deployment-setup.sh'];

function files(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === 'node_modules' || name.startsWith('.')) continue;
    if (statSync(p).isDirectory()) out.push(...files(p, ext));
    else if (ext.test(name)) out.push(p);
  }
  return out;
}

/** Commands in the README's indented code blocks, continuation lines joined. */
function readmeCommands(): string[] {
  const lines = readme.split('\n').filter((l) => /^ {4,}\S/.test(l)).map((l) => l.trim());
  const joined: string[] = [];
  let cur = '';
  for (const l of lines) {
    cur = cur ? `${cur} ${l}` : l;
    if (cur.endsWith('\\')) cur = cur.slice(0, -1).trim();
    else {
      joined.push(cur);
      cur = '';
    }
  }
  return joined.filter((c) => PROGRAMS.some((p) => c.startsWith(p + ' ')));
}

const TOOLS = ['cert-utility', 'simpleserver', 'key-server', 'key-client'] as const;

/** A script's --help text. */
const scriptUsage = (script: 'first-boot.sh' | 'deployment-setup.sh') => execFileSync(join(ROOT, 'scripts', script), ['--help'], { encoding: 'utf8' });

/** The default a --help description gives: "(default 8)", "(default: 365)". */
function defaultOf(description: string | undefined): string {
  const m = description?.match(/\(default:? ("[^"]*"|[^),:]+)/);
  if (!m) throw new Error(`no default in ${JSON.stringify(description)}`);
  return m[1]!.replace(/^"(.*)"$/, '$1');
}

/** The flags a --help text lists, each with its description (continuation lines joined). */
function helpFlags(help: string): Map<string, string> {
  const flags = new Map<string, string>();
  let last: string | undefined;
  for (const line of help.slice(help.indexOf('\nOptions:\n')).split('\n').slice(2)) {
    const m = line.match(/^ {2}(?:-\w, )?(--[a-z0-9-]+)\S*(?: <[^>]+>)?\s*(.*)$/);
    if (m) flags.set((last = m[1]!), m[2]!);
    else if (last && /^ {6,}\S/.test(line)) flags.set(last, `${flags.get(last)} ${line.trim()}`);
    else last = undefined;
  }
  return flags;
}

/** The rows of the command tables: `| \`COMMAND ...\` | ...`, by the program whose section holds them. */
function tableRows(): { program: string; command: string; usage: string }[] {
  const sectionProgram: Record<string, string> = { 'cert-utility': 'cert-utility', 'The cryptstore': 'cert-utility', simpleserver: 'simpleserver', 'key-server': 'key-server', 'key-client': 'key-client' };
  const rows: { program: string; command: string; usage: string }[] = [];
  let section = '';
  for (const line of readme.split('\n')) {
    const heading = line.match(/^#{2,3} (.*)$/);
    if (heading) section = heading[1]!;
    const row = line.match(/^\| `(([a-z][a-z-]*)[^`]*)` \|/);
    const program = sectionProgram[section];
    if (row && program) rows.push({ program, command: row[2]!, usage: row[1]! });
  }
  return rows;
}

/** The program lines of the README's code blocks and of its inline code: `PROGRAM SUBCOMMAND ...`, up to a pipe. */
function programLines(): { program: string; command: string; rest: string; source: string }[] {
  const blocks = readme.split('\n').filter((l) => /^ {4,}\S/.test(l)).map((l) => l.trim()).join('\n').replace(/\\\n\s*/g, ' ').split('\n');
  const spans = [...readme.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
  const lines = [];
  for (const source of [...blocks, ...spans]) {
    for (const m of source.matchAll(new RegExp(`(?:^|\\|\\s*)(${TOOLS.join('|')}) ([a-z][a-z-]*)([^|;]*)`, 'g'))) {
      lines.push({ program: m[1]!, command: m[2]!, rest: m[3]!, source: source.trim() });
    }
  }
  return lines;
}

describe('README', () => {
  let helps: Helps;
  before(() => (helps = helpTexts()));

  it('lists every error code with its exit status, and no code that does not exist', () => {
    const rows = [...readme.matchAll(/^\| `([A-Z_]+)` \| (\d) \|/gm)].map((m) => [m[1], Number(m[2])]);
    expect(Object.fromEntries(rows)).to.deep.equal({ ...ErrorCodes });
  });

  it('gives the largest item put-item stores, as the cryptstore holds it', () => {
    const row = readme.split('\n').find((l) => l.startsWith('| `put-item '));
    expect(row).to.contain(`${MAX_BLOB_BYTES.toLocaleString('en-US')}: 16 MiB`);
  });

  it('shows only commands that a test, a scenario or a script runs, with the flags it shows', () => {
    const corpus = [...files(join(ROOT, 'test'), /\.ts$/), ...files(join(ROOT, 'examples'), /\.ts$/), ...files(join(ROOT, 'scripts'), /\.sh$/)]
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    const commands = readmeCommands();
    expect(commands.length).to.be.greaterThan(10);
    const missing: string[] = [];
    for (const c of commands) {
      const [program, sub] = c.split(/\s+/);
      if (!program!.startsWith('scripts/') && !corpus.includes(`'${sub}'`)) missing.push(`${program} ${sub}`);
      for (const flag of c.match(/--[a-z][a-z0-9-]*/g) ?? []) if (!corpus.includes(flag)) missing.push(`${program} ${sub} ${flag}`);
    }
    expect(missing).to.deep.equal([]);
  });

  it('reads the help texts the programs print for --help', async () => {
    const printed = await run('key-client', ['retrieve', '--help']);
    expect(printed.status).to.equal(0);
    expect(printed.out.startsWith(helps['key-client']!['retrieve']!)).to.equal(true);
  });

  it('names in its command tables every command its programs have and no other, and only flags their --help lists', () => {
    const rows = tableRows();
    expect(rows.length).to.be.greaterThan(30);
    const wrong: string[] = [];
    for (const { program, command, usage } of rows) {
      const help = helps[program]![command];
      if (!help) {
        wrong.push(`${program} ${command}: no such command`);
        continue;
      }
      const flags = helpFlags(help);
      for (const flag of usage.match(/--[a-z][a-z0-9-]*/g) ?? []) if (!flags.has(flag)) wrong.push(`${program} ${command} ${flag}: not in its --help`);
    }
    for (const program of TOOLS) {
      for (const command of Object.keys(helps[program]!)) if (!rows.some((r) => r.program === program && r.command === command)) wrong.push(`${program} ${command}: no row in a command table`);
    }
    expect(wrong).to.deep.equal([]);
  });

  it('says FILE|- in a command table exactly where the --help offers standard input or output with -', () => {
    const wrong: string[] = [];
    for (const { program, command, usage } of tableRows()) {
      const flags = helpFlags(helps[program]![command] ?? '');
      for (const [flag, description] of flags) {
        if (!usage.includes(`${flag} `)) continue;
        const dash = /(?:^|\s|[(])(?:or|with) -(?=[\s,;)]|$)/.test(description);
        if (dash !== usage.includes(`${flag} FILE\\|-`)) wrong.push(`${program} ${command} ${flag}: --help ${dash ? 'offers' : 'does not offer'} -`);
      }
    }
    expect(wrong).to.deep.equal([]);
  });

  it('shows command lines whose every flag the command\'s --help lists', () => {
    const lines = programLines();
    expect(lines.length).to.be.greaterThan(30);
    const wrong: string[] = [];
    for (const { program, command, rest, source } of lines) {
      const help = helps[program]![command];
      if (!help) {
        wrong.push(`${program} ${command}: no such command (${source})`);
        continue;
      }
      const flags = helpFlags(help);
      for (const flag of rest.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? []) if (!flags.has(flag)) wrong.push(`${program} ${command} ${flag}: not in its --help (${source})`);
    }
    // Inline code naming a command without its program (`init-trust --save-evidence F`): a command of that name takes each flag.
    for (const [, command, rest] of readme.matchAll(/`([a-z][a-z-]+) (--[^`]*)`/g)) {
      const of = TOOLS.map((program) => helps[program]![command!]).filter((h): h is string => h !== undefined).map(helpFlags);
      if (!of.length) continue;
      for (const flag of rest!.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? []) if (!of.some((flags) => flags.has(flag))) wrong.push(`${command} ${flag}: no command of that name takes it (\`${command} ${rest}\`)`);
    }
    expect(wrong).to.deep.equal([]);
  });

  it('names every flag the programs and the scripts take', () => {
    const taken = new Set<string>();
    for (const program of TOOLS) for (const help of Object.values(helps[program]!)) for (const flag of helpFlags(help).keys()) taken.add(flag);
    for (const script of ['first-boot.sh', 'deployment-setup.sh'] as const) {
      const usage = scriptUsage(script);
      for (const flag of usage.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? []) taken.add(flag);
    }
    expect(taken.size).to.be.greaterThan(80);
    expect([...taken].filter((flag) => !new RegExp(`${flag}(?![a-z0-9-])`).test(readme))).to.deep.equal([]);
  });

  it('lists in its code table only codes that something raises', () => {
    const sources = [...files(join(ROOT, 'lib'), /\.ts$/), ...files(join(ROOT, 'cmd'), /\.ts$/), ...files(join(ROOT, 'cryptstore'), /\.ts$/)]
      .filter((f) => !f.endsWith(join('lib', 'errors', 'index.ts')))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    expect(Object.keys(ErrorCodes).filter((code) => !sources.includes(`'${code}'`))).to.deep.equal([]);
  });

  it('lists the SEV-SNP properties a policy may name, and no other', () => {
    const table = readme.slice(readme.indexOf('| property | from the report |')).split('\n\n')[0]!.split('\n').slice(2);
    const names = table.flatMap((row) => [...row.split(' | ')[0]!.matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1]!)).filter((n) => n !== 'vcek' && n !== 'vlek');
    expect([...names].sort()).to.deep.equal(Object.values(SNP_PROPERTY).sort());
  });

  it('names in its environment table only variables a program, a script or the scenarios read', () => {
    const table = readme.slice(readme.indexOf('### Environment variables')).split('\n\n')[1]!.split('\n').slice(2);
    const names = table.flatMap((row) => [...row.split(' | ')[0]!.matchAll(/`([A-Z_]+)(?:=1)?`/g)].map((m) => m[1]!));
    expect(names.length).to.be.greaterThan(6);
    const sources = [...files(join(ROOT, 'cmd'), /\.(ts|js)$/), ...files(join(ROOT, 'lib'), /\.ts$/), ...files(join(ROOT, 'examples'), /\.(ts|js)$/), ...files(join(ROOT, 'scripts'), /\.sh$/)]
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    expect(names.filter((n) => !new RegExp(`(?:process\\.env\\.|'|\\$\\{?)${n}\\b`).test(sources))).to.deep.equal([]);
  });

  it('states the defaults the code has: the scrypt cost, what one connection or host may hold, and how long a stop waits', () => {
    const text = readme.replace(/\s+/g, ' ');
    expect(text).to.contain(`N = 2^${DEFAULT_SCRYPT.logN}, r = ${DEFAULT_SCRYPT.r}, p = ${DEFAULT_SCRYPT.p} by default`);
    const l = DEFAULT_LIMITS;
    expect(l.frameLimit).to.equal(1024 * 1024);
    expect(text).to.contain(`at most ${l.maxConnections} connections, at most ${l.maxConnectionsPerAddress} of them from one address`);
    expect(text).to.contain(`which must end within ${l.handshakeTimeoutMs / 1000} s), frames of at most 1 MiB, a frame's bytes within ${l.readTimeoutMs / 1000} s of its first, ${l.idleTimeoutMs / 1000} s of idleness`);
    expect(text).to.contain(`(${l.maxRequestsPerConnection.toLocaleString('en-US')} on key-server;`);
    expect(text).to.contain(`half the server's answer budget (${l.answerBytesHeld / 2 / 1024 / 1024} MiB`);
    expect(text).to.contain(`a connection gets up to ${STOP_GRACE_MS / 1000} s to take its answers`);
    expect(text).to.contain(`gives the client ${LINGER_MS / 1000} s to close), then what is left is closed, and a key-server waits up to ${DRAIN_MS / 1000} s more`);
  });

  it('gives every subcommand --json, as it says', () => {
    const without = TOOLS.flatMap((program) => Object.entries(helps[program]!).filter(([, help]) => !helpFlags(help).has('--json')).map(([command]) => `${program} ${command}`));
    expect(without).to.deep.equal([]);
  });

  it('points only to files and folders of the project that exist', () => {
    const tops = ['cmd', 'lib', 'cryptstore', 'examples', 'scripts', 'test', 'proto'];
    const paths = [...new Set([...readme.matchAll(/`([A-Za-z0-9_.-]+\/[A-Za-z0-9_./-]*)`/g)].map((m) => m[1]!))].filter((p) => tops.includes(p.split('/')[0]!));
    expect(paths.length).to.be.greaterThan(10);
    expect(paths.filter((p) => !existsSync(join(ROOT, p)))).to.deep.equal([]);
  });

  it('states the sizes, counts and periods the code has', () => {
    const text = readme.replace(/\s+/g, ' ');
    const n = (x: number) => x.toLocaleString('en-US');
    const DAY = 86_400_000;
    for (const phrase of [
      `store a value (1 to ${n(MAX_VALUE_BYTES)} bytes: 1 MiB less room for the message around it)`,
      `at most ${n(LIST_PAGE)} names per answer`,
      `at most ${n(DELETE_LISTED)} of them`,
      `an encrypted bundle of at most ${MAX_BUNDLE_BYTES / 1024 / 1024} MiB`,
      `a file of at least ${MIN_KEY_FILE_BYTES} random bytes`,
      `are 1 to ${MAX_TAG_LENGTH} characters (UTF-16 units)`,
      `only for the ${n(STATE_NAMES)} names used most recently`,
      `Once deletes have left ${n(COMPACT_AFTER)} markers`,
      `The tolerance is ${DEFAULT_CLOCK_SKEW_MS / 60_000} minutes each way`,
      `within ${RENEW_BEFORE_MS / DAY} days of its end`,
    ]) expect(text).to.contain(phrase);
    expect(AUTHORITY_CERT_SECONDS).to.equal((7 * DAY) / 1000);
    expect(text).to.contain(`(platform \`policy-authority\`, signed with the policy key it holds) lasts a week`);
    expect(helpFlags(helps['simpleserver']!['serve']!).get('--cert-days')).to.contain('(default: 90)');
    expect(text).to.contain('at most `--cert-days` (default 90)');
    expect(text).to.contain(`(frames of at most ${CERTIFIER_FRAME_LIMIT / 1024} KiB on simpleserver,`);
    expect(text).to.contain(`| a message over the frame limit (${DEFAULT_LIMITS.frameLimit / 1024 / 1024} MiB; ${CERTIFIER_FRAME_LIMIT / 1024} KiB for a trust request to simpleserver and its answer) |`);
    expect(helpFlags(helps['key-server']!['serve']!).get('--pg-pool-size')).to.contain('(default 10)');
    expect(text).to.contain('`--pg-pool-size N` (default 10)');
  });

  it('gives --timeout the default and range the --help of every command taking it has', async () => {
    const text = readme.replace(/\s+/g, ' ');
    const taking = TOOLS.flatMap((program) => Object.entries(helps[program]!).filter(([, help]) => helpFlags(help).has('--timeout')).map(([command, help]) => ({ program, command, help })));
    expect(taking.map((t) => `${t.program} ${t.command}`)).to.include.members(['cert-utility init-trust', 'key-server serve', 'key-server join', 'key-client retrieve', 'key-client check']);
    for (const { program, command, help } of taking) expect(defaultOf(helpFlags(help).get('--timeout')), `${program} ${command}`).to.equal(String(DEFAULT_TIMEOUT_SECONDS));
    // The range, as the programs hold it: the ends taken, one past each refused.
    const check = (t: string) => run('key-client', ['check', '--check-only', '--server', '127.0.0.1:8120', '--domain', 'd', '--policy-cert', 'p.pem', '--store', 's', '--key-file', 'k', '--timeout', t]);
    expect((await Promise.all(['1', '3600', '0', '3601'].map(check))).map((r) => r.status)).to.deep.equal([0, 0, 2, 2]);
    const d = DEFAULT_TIMEOUT_SECONDS;
    for (const phrase of [
      `\`--timeout\` (1 to 3600 seconds, ${d} by default) bounds each wait for the key-server`,
      `waiting at most \`--timeout\` seconds, ${d} by default, for simpleserver at each step`,
      `waiting at most \`--timeout\` seconds (1 to 3600, ${d} by default, as init-trust's)`,
      `\`--timeout\` bounds each wait for the running key-server as key-client's does (${d} s by default;`,
      `each program waits at most \`--timeout\` seconds (${d} by default) to connect`,
    ]) expect(text).to.contain(phrase);
  });

  it('describes the audit chain so that it can be checked without this code: hash is the SHA-256 of prev\'s hex followed by the line as written without prev and hash', async () => {
    const text = readme.replace(/\s+/g, ' ');
    expect(text).to.contain('`hash` is the SHA-256 (hex) of the 64 hex digits of `prev` (64 zeros for seq 1) followed by the line as written without `prev` and `hash` (its UTF-8 text, ending in the `}` that closes it)');
    const dir = mkdtempSync(join(tmpdir(), 'readme-audit-'));
    try {
      const log = await AuditLog.open(join(dir, 'audit.jsonl'));
      await log.append({ action: 'store', resource: 'vhd/disk-1', version: 1, decision: 'allow', conn: 'c1' });
      await log.append({ action: 'retrieve', resource: 'caf\u00e9\u200b', decision: 'deny', code: 'NOT_FOUND', conn: 'c2' }); // written \u escaped
      await log.close();
      let prev = '0'.repeat(64);
      for (const line of readFileSync(join(dir, 'audit.jsonl'), 'utf8').split('\n').filter(Boolean)) {
        const m = /^(\{.*),"prev":"([0-9a-f]{64})","hash":"([0-9a-f]{64})"\}$/.exec(line)!;
        expect(m, line).to.not.equal(null);
        expect(m[2]).to.equal(prev);
        expect(createHash('sha256').update(`${prev}${m[1]}}`, 'utf8').digest('hex'), line).to.equal(m[3]);
        prev = m[3]!;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives the defaults of --days in its command tables and of the scripts\' flags that their --help gives', () => {
    const text = readme.replace(/\s+/g, ' ');
    const days = tableRows().filter((r) => r.usage.includes('--days'));
    expect(days.length).to.be.greaterThan(3);
    for (const { program, command } of days) {
      const row = readme.split('\n').find((l) => l.startsWith(`| \`${command} `))!;
      expect(row, `${program} ${command}`).to.contain(`\`--days\` (default ${defaultOf(helpFlags(helps[program]![command]!).get('--days'))})`);
    }
    const setup = helpFlags(`\nOptions:\n\n${scriptUsage('deployment-setup.sh').split('\n\n')[1]}`);
    expect(text).to.contain(`\`--policy-days N\` says how long the policy's claims last (${defaultOf(setup.get('--policy-days'))} days by default`);
    expect(text).to.contain(`\`--alg\` the policy key's algorithm (\`${defaultOf(setup.get('--alg'))}\` by default)`);
    const boot = helpFlags(`\nOptions:\n\n${scriptUsage('first-boot.sh').split('\n\n')[1]}`);
    expect(text).to.contain(`\`--retries N\` (attempts per step, ${defaultOf(boot.get('--retries'))} by default), \`--max-delay S\` (the backoff's cap in seconds, ${defaultOf(boot.get('--max-delay'))} by default)`);
  });

  it('names the flags that take HOST:PORT, the servers\' default --listen, and the commands that take --check-only, as the --help has them', () => {
    const text = readme.replace(/\s+/g, ' ');
    const hostPort = new Set<string>();
    const checkOnly: Record<string, string[]> = {};
    for (const program of TOOLS) {
      for (const [command, help] of Object.entries(helps[program]!)) {
        for (const m of help.matchAll(/^ {2}(--[a-z0-9-]+) <host:port>/gm)) hostPort.add(m[1]!);
        if (helpFlags(help).has('--check-only')) (checkOnly[program] ??= []).push(command);
      }
    }
    const listen = (program: string) => defaultOf(helpFlags(helps[program]!['serve']!).get('--listen'));
    expect(text).to.contain(`Servers bind 127.0.0.1 unless \`--listen\` says otherwise (by default simpleserver \`${listen('simpleserver')}\`, key-server \`${listen('key-server')}\`)`);
    const listed = text.match(/`HOST:PORT` \(([^)]*)\)/)![1]!.match(/--[a-z-]+/g)!;
    expect([...listed].sort()).to.deep.equal([...hostPort].sort());
    // "`--check-only` (`cert-utility generate-policy-key`, `make-policy` and `init-trust`; `key-client retrieve`)"
    const sentence = text.match(/`--check-only` \(([^)]*)\) asks whether a run would take/)![1]!;
    const named: Record<string, string[]> = {};
    for (const part of sentence.split(';')) {
      const [first, ...rest] = [...part.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
      const [program, command] = first!.split(' ');
      named[program!] = [command!, ...rest].sort();
    }
    for (const commands of Object.values(checkOnly)) commands.sort();
    expect(named).to.deep.equal(checkOnly);
  });

  it('shows make-policy command lines and SEV-SNP minimums that make-policy --check-only takes, and refuses the Turin forms it says are refused (USAGE)', async () => {
    const text = readme.replace(/\s+/g, ' ');
    const hex = (digits: number) => '0'.repeat(digits);
    const lines = readmeCommands().filter((c) => c.startsWith('cert-utility make-policy '))
      .map((c) => c.replace(/<(\d+) hex digits>/g, (_, n: string) => hex(Number(n))).split(' ').slice(1));
    expect(lines.length).to.be.greaterThan(1);
    const span = (re: RegExp) => text.match(re)?.[1]?.split(' ') ?? expect.fail(`the README no longer says ${re}`);
    const mixed = span(/A policy for a mixed fleet gives both forms, `([^`]+)`/);
    const turin = ['--trust-amd-root', 'turin', '--snp-min-tcb', span(/`--snp-min-tcb turin=FMC:BL:TEE:SNP:UCODE` \(e\.g\. `([^`]+)`\)/)[0]!];
    const perLayout = [...span(/`(--snp-property turin:launch-tcb-\S+)` goes into the Turin claim only/), ...span(/`(--snp-property family19h:launch-tcb-\S+)` into the family 19h claim only/)];
    const base = ['make-policy', '--check-only', '--json', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', 'policy.bin', '--trust-measurement', hex(96)];
    const cases: [string, string[], number][] = [
      ...lines.map((l): [string, string[], number] => [l.join(' '), [...l, '--check-only', '--json'], 0]),
      ['a mixed fleet', [...base, ...mixed], 0],
      ['a mixed fleet, a LAUNCH_TCB minimum for each layout', [...base, ...mixed, ...perLayout], 0],
      ['Turin alone, its example minimum', [...base, ...turin], 0],
      ['a mixed fleet, a LAUNCH_TCB level without a prefix', [...base, ...mixed, '--snp-property', 'launch-tcb-snp>=2'], 2],
      ['Turin\'s root alone with the four-level form', [...base, '--trust-amd-root', 'turin', '--snp-min-tcb', '3:0:8:115'], 2],
      ['turin= without a Turin root', [...base, '--trust-amd-root', 'milan', '--snp-min-tcb', '3:0:8:115', turin[2]!, turin[3]!], 2],
      ['--snp-property tcb-fmc', [...base, ...turin, '--snp-property', 'tcb-fmc>=0'], 2],
    ];
    const results = await Promise.all(cases.map(([, args]) => run('cert-utility', args, { cwd: ROOT })));
    const wrong = cases.flatMap(([what, , status], i) => {
      const r = results[i]!;
      const code = r.status === 0 ? 'ok' : r.json().error.code;
      return r.status === status && (status === 0 || code === 'USAGE') ? [] : [`${what}: exit ${r.status} (${code}), not ${status}`];
    });
    expect(wrong).to.deep.equal([]);
  });

  it('gives the machines print-policy says an SEV-SNP property claim suits as it prints them, and their names under --json', () => {
    const row = readme.split('\n').find((l) => l.startsWith('| `print-policy '))!;
    const [none, why] = SUITS.none.split(': ');
    expect(why).to.be.a('string');
    for (const label of [`\`(for ${SUITS.turin})\``, `\`(for ${SUITS['family-19h']})\``, `\`(for ${none}: ...)\``]) expect(row).to.contain(label);
    const json = row.slice(row.indexOf('`snpClaims`'));
    expect([...json.matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1]!).filter((n) => n in SUITS).sort()).to.deep.equal(Object.keys(SUITS).sort());
    expect(readme.replace(/\s+/g, ' ')).to.contain(`\`print-policy\`, and make-policy as it writes it, follow with the machines it suits, \`(for ${SUITS.turin})\` or \`(for ${SUITS['family-19h']})\`)`);
  });

  it('links in its Contents line every section, in order, by the anchor its heading gets', () => {
    const heads = readme.split('\n').filter((l) => l.startsWith('## ')).map((l) => l.slice(3).trim());
    const anchor = (h: string) => h.toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-');
    const contents = readme.split('\n').find((l) => l.startsWith('**Contents.**')) ?? expect.fail('the README has no Contents line');
    expect([...contents.matchAll(/\[([^\]]+)\]\(#([^)]+)\)/g)].map((m) => [m[1], m[2]])).to.deep.equal(heads.map((h) => [h, anchor(h)]));
  });

  it('gives the demo\'s run no span of seconds, which a machine\'s load moves it out of (4.1 s idle, 10.7 s at load 10, against "5 to 10 s"): the run prints its own time', () => {
    const demo = readme.slice(readme.indexOf('`npm run demo` runs the whole of Scenario 1'), readme.indexOf('`npm run demo:scenario2` runs'));
    expect(demo).to.contain('`scenario1: SUCCESS in');
    expect(demo.replace(/\s+/g, ' ')).not.to.match(/\b\d+(?:\.\d+)? (?:to|-) \d+(?:\.\d+)? ?(?:s|seconds)\b|took (?:about )?\d/);
  });

  it('runs only npm scripts the package has, on the Node.js version the package asks for', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; engines: { node: string } };
    const runs = [...readme.matchAll(/npm run ([a-z][a-z0-9:-]*[a-z0-9])/g)].map((m) => m[1]!);
    expect(runs.length).to.be.greaterThan(3);
    expect(runs.filter((name) => !(name in pkg.scripts))).to.deep.equal([]);
    expect(readme).to.contain(`Requires Node.js ${pkg.engines.node.replace(/^>=/, '')} or later`);
  });

  it('names every event the replica lock logs, with the fields each carries', () => {
    const source = readFileSync(join(ROOT, 'lib/keyservice/pg-replica-lock.ts'), 'utf8');
    const events = [...source.matchAll(/event: '([a-z-]+)'/g)].map((m) => m[1]!);
    expect(events).to.include('replica-lock-retry-failed');
    expect(events.filter((e) => !readme.includes(`\`${e}\``))).to.deep.equal([]);
    expect(readme).to.match(/`replica-lock-retry-failed`[^.]*`code` and `detail`/);
  });

  it('names every event the servers log, as the code names it, with the fields it carries', () => {
    const events = loggedEvents();
    // The ones logged through a parameter or a template, which the collector must follow.
    expect([...events.keys()]).to.include.members(['audit-continues', 'reload-ignored', 'backup-written', 'identity-expiring', 'note', 'error', 'refused', 'request']);
    expect([...events.keys()].filter((e) => !new RegExp(`\`${e}[\` ]`).test(readme))).to.deep.equal([]);
    // Where a line is shown (`closed reason=R ...`), each field it names is one the code logs
    // (key-server adds `replica` to its PostgreSQL lines); and a paragraph or item that names the
    // event names every field of a record the code writes whole.
    const blocks = readme.split(/\n\s*\n|\n(?=\s*- )/);
    const wrong: string[] = [];
    for (const [event, { fields, open }] of events) {
      if (open) continue;
      for (const m of readme.matchAll(new RegExp(`\`${event} ([^\`]*)\``, 'g'))) {
        const shown = [...m[1]!.matchAll(/(\w+)=/g)].map((f) => f[1]!).filter((f) => !fields.has(f) && f !== 'replica');
        if (shown.length) wrong.push(`${event}: ${shown.join(', ')} shown, not logged`);
      }
      const named = (b: string) => [...fields].every((f) => b.includes(`\`${f}\``) || new RegExp(`[\` ]${f}=`).test(b));
      if (!blocks.some((b) => new RegExp(`\`${event}[\` ]`).test(b) && named(b))) {
        wrong.push(`${event}: no paragraph names all of ${[...fields].join(', ')}`);
      }
    }
    expect(wrong).to.deep.equal([]);
  });

  it('installs with `npm ci --omit=dev` every package the programs import', () => {
    expect(readme).to.contain('`npm ci --omit=dev`');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const sources = [...files(join(ROOT, 'cmd'), /\.(ts|js)$/), ...files(join(ROOT, 'lib'), /\.ts$/), ...files(join(ROOT, 'cryptstore'), /\.ts$/)].map((f) => readFileSync(f, 'utf8')).join('\n');
    const imported = new Set([...sources.matchAll(/(?:from |import\(|import )'([^.'][^']*)'/g)].map((m) => m[1]!).filter((p) => !p.startsWith('node:')).map((p) => p.split('/').slice(0, p.startsWith('@') ? 2 : 1).join('/')));
    expect(imported.size).to.be.greaterThan(5);
    expect([...imported].filter((p) => !(p in pkg.dependencies))).to.deep.equal([]);
  });

  it('gives --force, to replace it, to every command that writes a file, as the Reference says (init-trust --save-evidence never replaces one)', () => {
    expect(readme.replace(/\s+/g, ' ')).to.contain('every command that writes a file takes `--force` to replace it, except `init-trust --save-evidence`, which never replaces one');
    const writers = TOOLS.flatMap((program) => Object.entries(helps[program]!).map(([command, help]) => ({ command: `${program} ${command}`, flags: helpFlags(help) })))
      .filter(({ flags }) => [...flags.keys()].some((f) => f === '--out' || f.endsWith('-out') || f === '--out-dir'));
    expect(writers.length).to.be.greaterThan(10);
    expect(writers.filter(({ flags }) => !/^replace\b/.test(flags.get('--force') ?? '')).map(({ command }) => command)).to.deep.equal([]);
    expect(helpFlags(helps['cert-utility']!['init-trust']!).get('--save-evidence')).to.contain('refuses to replace a file');
  });
});


/**
 * Every event name the programs log: each `event` property of an object (and each `event`
 * parameter such a property takes) in cmd/ and lib/, followed to the string literals it is made
 * of. One it cannot follow fails, so a new way of naming an event is taught here, not missed.
 */
function loggedEvents(): Map<string, { fields: Set<string>; open: boolean }> {
  const sources = [...files(join(ROOT, 'cmd'), /\.(ts|js)$/), ...files(join(ROOT, 'lib'), /\.ts$/)]
    .map((f) => ts.createSourceFile(f, readFileSync(f, 'utf8'), ts.ScriptTarget.Latest, true));
  const events = new Map<string, { fields: Set<string>; open: boolean }>();
  const unfollowed: string[] = [];
  const where = (n: ts.Node) => `${relative(ROOT, n.getSourceFile().fileName)}:${n.getSourceFile().getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
  const nodes = (root: ts.Node): ts.Node[] => {
    const all: ts.Node[] = [];
    const visit = (n: ts.Node): void => void (all.push(n), ts.forEachChild(n, visit));
    visit(root);
    return all;
  };
  // The strings `name` takes in its file: a parameter's arguments in the calls of its function, or `name: '...'` properties.
  const valuesOf = (name: string, at: ts.Node): string[] | undefined => {
    const file = nodes(at.getSourceFile());
    for (let f: ts.Node | undefined = at; f; f = f.parent) {
      if (!ts.isFunctionLike(f)) continue;
      const i = f.parameters.findIndex((p) => p.name.getText() === name);
      if (i < 0) continue;
      const fn = ts.isVariableDeclaration(f.parent) ? f.parent.name.getText() : f.name?.getText();
      const args = file.filter((n): n is ts.CallExpression => ts.isCallExpression(n) && n.expression.getText() === fn).map((c) => c.arguments[i]);
      return args.every((a) => a && ts.isStringLiteral(a)) ? args.map((a) => (a as ts.StringLiteral).text) : undefined;
    }
    const props = file.filter((n): n is ts.PropertyAssignment => ts.isPropertyAssignment(n) && n.name.getText() === name);
    return props.length && props.every((p) => ts.isStringLiteral(p.initializer)) ? props.map((p) => (p.initializer as ts.StringLiteral).text) : undefined;
  };
  const follow = (e: ts.Expression): string[] | undefined => {
    if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) return [e.text];
    if (ts.isConditionalExpression(e)) {
      const [a, b] = [follow(e.whenTrue), follow(e.whenFalse)];
      return a && b ? [...a, ...b] : undefined;
    }
    if (ts.isIdentifier(e)) return valuesOf(e.text, e);
    if (ts.isPropertyAccessExpression(e)) return valuesOf(e.name.text, e);
    if (ts.isTemplateExpression(e) && e.head.text === '' && e.templateSpans.length === 1) {
      const span = e.templateSpans[0]!;
      return follow(span.expression)?.map((prefix) => prefix + span.literal.text);
    }
    return undefined;
  };
  // A record's fields: its own, those of objects spread into it, and those its variable is given
  // after (`record.code = ...`, Object.assign); `open` when some come from elsewhere (`...task()`).
  const fieldsOf = (o: ts.ObjectLiteralExpression): { fields: Set<string>; open: boolean } => {
    const fields = new Set<string>();
    let open = false;
    const add = (e: ts.Expression): void => {
      e = ts.isParenthesizedExpression(e) ? e.expression : e;
      if (ts.isConditionalExpression(e)) return void (add(e.whenTrue), add(e.whenFalse));
      if (ts.isIdentifier(e)) {
        const decl = nodes(e.getSourceFile()).find((d): d is ts.VariableDeclaration => ts.isVariableDeclaration(d) && d.name.getText() === e.text);
        if (decl?.initializer) return add(decl.initializer);
      }
      if (!ts.isObjectLiteralExpression(e)) return void (open = true);
      for (const p of e.properties) {
        if (ts.isSpreadAssignment(p)) add(p.expression);
        else if (p.name && !['event', 'time'].includes(p.name.getText())) fields.add(p.name.getText());
      }
    };
    add(o);
    const variable = ts.isVariableDeclaration(o.parent) ? o.parent.name.getText() : undefined;
    for (const n of variable ? nodes(o.getSourceFile()) : []) {
      if (ts.isBinaryExpression(n) && ts.isPropertyAccessExpression(n.left) && n.left.expression.getText() === variable) fields.add(n.left.name.text);
      if (ts.isCallExpression(n) && n.expression.getText() === 'Object.assign' && n.arguments[0]?.getText() === variable) n.arguments.slice(1).forEach(add);
    }
    return { fields, open };
  };
  for (const n of sources.flatMap(nodes)) {
    let named: string[] | undefined;
    if (ts.isPropertyAssignment(n) && n.name.getText() === 'event') {
      // A copy of a record's own event (a summary of refusals) names none of its own.
      if (ts.isPropertyAccessExpression(n.initializer) && n.initializer.name.text === 'event') continue;
      named = follow(n.initializer);
    } else if (ts.isShorthandPropertyAssignment(n) && n.name.text === 'event') named = valuesOf('event', n);
    else continue;
    if (!named) {
      unfollowed.push(where(n));
      continue;
    }
    const record = fieldsOf(n.parent as ts.ObjectLiteralExpression);
    for (const e of named) {
      const known = events.get(e) ?? { fields: new Set<string>(), open: false };
      record.fields.forEach((f) => known.fields.add(f));
      events.set(e, { fields: known.fields, open: known.open || record.open });
    }
  }
  expect(unfollowed, 'event names the test cannot follow to a string').to.deep.equal([]);
  return new Map([...events].sort(([a], [b]) => a.localeCompare(b)));
}

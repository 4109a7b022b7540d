// The output contract (README, "Reference" and "Errors and exit statuses"), for every subcommand
// of the four programs, taken from their own command definitions (test/support/option-parsers.ts),
// so a new subcommand is checked by itself: --help on stdout with status 0, offering --json; and
// a usage mistake (its required flags left out, or its required argument where it has no required
// flag) with status 2, nothing on stdout without --json and one JSON document (code USAGE) with
// it, the flag named, and no stack trace anywhere. Nothing here needs a server.

import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { ROOT, run, supportScript, tempDir, type Program, type RunResult } from '../support/helpers.ts';

interface Subcommand { program: Program; command: string; required: string[]; args: string[] }

const subcommands = (): Subcommand[] =>
  JSON.parse(execFileSync(process.execPath, supportScript('option-parsers.ts', ['[]']), { cwd: ROOT, encoding: 'utf8' })).commands;

/** A line of a V8 stack trace ("    at f (file:1:2)"). */
const STACK = /^\s+at .+[:(]/m;

/** Runs each of `runs` (program and arguments), a few at a time: two cores, shared. */
async function runAll(runs: [Program, string[]][], cwd: string): Promise<RunResult[]> {
  const results: RunResult[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let i = next++; i < runs.length; i = next++) results[i] = await run(runs[i]![0], runs[i]![1], { cwd });
  }));
  return results;
}

describe('the output contract of the four programs and every subcommand: --help, and a usage mistake with and without --json', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  before(() => (tmp = tempDir('contract-')));
  after(() => tmp.cleanup());

  it('prints --help on stdout (status 0), and refuses a missing required flag with status 2, naming it, stdout empty or one JSON document', async () => {
    const all = subcommands();
    expect(all.length).to.be.above(30);
    for (const program of ['cert-utility', 'simpleserver', 'key-server', 'key-client']) expect(all.map((s) => s.program)).to.include(program);
    // The mistake: every required flag left out (the first is named), the required arguments given;
    // where there is no required flag, the required argument left out.
    const mistake = (s: Subcommand): string[] => [s.command, ...(s.required.length ? s.args.map(() => 'x') : [])];
    const named = (s: Subcommand): string => (s.required.length ? `required option '${s.required[0]}` : `missing required argument '${s.args[0]}'`);
    const runs = all.flatMap((s): [Program, string[]][] => [[s.program, [s.command, '--help']], [s.program, mistake(s)], [s.program, [...mistake(s), '--json']]]);
    const results = await runAll(runs, tmp.dir);
    const broken: string[] = [];
    all.forEach((s, i) => {
      const [help, text, json] = results.slice(3 * i, 3 * i + 3) as [RunResult, RunResult, RunResult];
      const name = `${s.program} ${s.command}`;
      const check = (what: string, ok: boolean) => ok || broken.push(`${name}: ${what}`);
      expect(s.required.length + s.args.length, `${name} has no required flag or argument to leave out`).to.be.above(0);
      check(`--help exits ${help.status}`, help.status === 0);
      check('--help is not on stdout', help.out.startsWith(`Usage: ${name} `));
      check(`--help writes to stderr: ${help.stderr}`, help.stderr === '');
      check('--help offers no --json', /^\s+--json\s/m.test(help.out));
      check(`the mistake exits ${text.status}`, text.status === 2);
      check(`the mistake writes to stdout: ${text.out}`, text.out === '');
      check(`stderr does not name the flag: ${text.stderr}`, text.stderr.includes(`${s.program}: error: ${named(s)}`) && text.stderr.includes('[USAGE]'));
      check(`--json: the mistake exits ${json.status}`, json.status === 2);
      let doc: any;
      try {
        doc = JSON.parse(json.out);
      } catch {
        doc = undefined;
      }
      check(`--json: stdout is not one JSON document: ${json.out}`, doc !== undefined && json.out.endsWith('}\n') && json.out.indexOf('\n') === json.out.length - 1);
      check(`--json: not a USAGE error naming the flag: ${json.out}`, doc?.ok === false && doc?.error?.code === 'USAGE' && doc?.error?.exitStatus === 2 && String(doc?.error?.message).startsWith(named(s)));
      check(`--json: stderr is not empty: ${json.stderr}`, json.stderr === '');
      for (const r of [help, text, json]) check(`a stack trace: ${r.out}${r.stderr}`, !STACK.test(r.out) && !STACK.test(r.stderr));
    });
    expect(broken).to.deep.equal([]);
  });

  it('`PROGRAM help X` where X is no command (a flag, --json, a typo) is a usage error with nothing on stdout but the JSON document: the program\'s help went to stdout before it', async () => {
    const programs: Program[] = ['cert-utility', 'simpleserver', 'key-server', 'key-client'];
    const runs = programs.flatMap((p): [Program, string[]][] => [[p, ['help', '--json']], [p, ['help', 'bogus', '--json']], [p, ['help', '--bogus']], [p, ['help', 'bogus']]]);
    const results = await runAll(runs, tmp.dir);
    results.forEach((r, i) => {
      const [program, args] = runs[i]!;
      const name = `${program} ${args.join(' ')}`;
      expect(r.status, name).to.equal(2);
      if (args.includes('--json')) {
        expect(r.out.split('\n'), name).to.have.length(2);
        expect(r.json().error, name).to.include({ code: 'USAGE', exitStatus: 2 });
        expect(r.stderr, name).to.equal('');
      } else {
        expect(r.out, name).to.equal('');
        expect(r.stderr, name).to.contain(`${program}: error: `).and.contain(args[1]).and.contain('[USAGE]');
      }
    });
  });
});

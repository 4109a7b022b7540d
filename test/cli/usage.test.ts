// Usage mistakes across the programs, caught before any work: exit 2 with the flag named.

import { expect } from 'chai';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { linkToDeep, ROOT, run, tempDir, type Program } from '../support/helpers.ts';

describe('usage mistakes across the programs (exit 2, before any work)', () => {
  let tmp: ReturnType<typeof tempDir>;
  before(() => (tmp = tempDir('usage-')));
  after(() => tmp.cleanup());

  it('`help COMMAND` is asked-for help (exit 0); no command at all, or help of one that does not exist, is a usage error (exit 2)', async () => {
    const [help, none, typo, bogus, newline] = await Promise.all([
      run('cert-utility', ['help', 'get-item']), run('key-client', []), run('cert-utility', ['list-items', '--store', 'x', '--stor', 'y']), run('key-server', ['help', 'bogus']),
      run('cert-utility', ['generate-policy-key', '--domain', 'dat\nica', '--key-out', 'k.pem', '--cert-out', 'c.pem'], { cwd: tmp.dir }),
    ]);
    expect(help.status).to.equal(0);
    expect(help.out).to.contain('Usage: cert-utility get-item');
    expect(none.status).to.equal(2);
    // commander's suggestion stays on the error's line, not as an escaped newline.
    expect(typo.status).to.equal(2);
    expect(typo.stderr).to.contain("cert-utility: error: unknown option '--stor' (Did you mean --store?) [USAGE]");
    // A newline in a value commander quotes is shown escaped, as every control character is, not as a space.
    expect(newline.status).to.equal(2);
    expect(newline.stderr).to.contain("cert-utility: error: option '--domain <name>' argument 'dat\\u000aica' is invalid.");
    expect(bogus.status).to.equal(2);
    expect(bogus.stderr).to.contain("key-server: error: unknown command 'bogus' [USAGE]");
  });

  it('names a mistyped flag (with commander\'s suggestion) rather than the required flag it was meant to be, which it said was not given', async () => {
    const [store, json, value] = await Promise.all([
      run('cert-utility', ['list-items', '--stor', 'x', '--key-file', 'k']),
      run('key-client', ['list', '--server', '127.0.0.1:1', '--domain', 'd', '--policy-cert', 'c.pem', '--stor', 's', '--key-file', 'k', '--json']),
      // A value that looks like a flag is its option's value, not a flag of its own.
      run('cert-utility', ['list-items', '--key-file', '--stor']),
    ]);
    expect([store.status, store.out]).to.deep.equal([2, '']);
    expect(store.stderr).to.contain("cert-utility: error: unknown option '--stor' (Did you mean --store?) [USAGE]");
    expect(json.status).to.equal(2);
    expect(json.json().error).to.deep.include({ code: 'USAGE', message: "unknown option '--stor' (Did you mean --store?)" });
    expect(value.stderr).to.contain("required option '--store <dir>' not specified [USAGE]");
  });

  it('refuses --out - where a command writes a file and offers no standard output (it made a file named "-")', async () => {
    await Promise.all([['new-key-file', '--out', '-'], ['generate-policy-key', '--domain', 'd', '--key-out', '-', '--cert-out', 'c.pem']].map(async (args) => {
      const r = await run('cert-utility', args, { cwd: tmp.dir });
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr).to.contain('"-" (standard output) is not offered here');
    }));
  });

  it('refuses a --domain that cannot name a policy domain in every program that takes one, before any file is read', async () => {
    const runs: [Program, string[]][] = [
      ['cert-utility', ['generate-policy-key', '--domain', 'bad domain!', '--key-out', 'k.pem', '--cert-out', 'c.pem']],
      ['cert-utility', ['init-trust', '--domain', '-x', '--policy-cert', 'none.pem', '--server', '127.0.0.1:1', '--store', 's', '--key-file', 'k']],
      ['key-server', ['serve', '--domain', '', '--policy-cert', 'none.pem', '--data', 'd', '--store', 's', '--key-file', 'k']],
      ['key-client', ['list', '--domain', 'a/b', '--server', '127.0.0.1:1', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k']],
    ];
    await Promise.all(runs.map(async ([program, args]) => {
      const r = await run(program, args, { cwd: tmp.dir });
      expect(r.status, `${program} ${args.join(' ')}`).to.equal(2);
      expect(r.stderr).to.match(/option '--domain <name>' argument '.*' is invalid\. expected letters, digits/);
    }));
  });

  it('says what version 0 means to the option given a bad version: all, for a delete', async () => {
    const common = ['--server', '127.0.0.1:1', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k'];
    await Promise.all(([[['delete', 'n', '--version', '4294967296'], 'all'], [['retrieve', 'n', '--version', '-1'], 'latest'], [['store', 'n', '--in', '-', '--expected-version', '1e1'], 'none yet']] as const).map(async ([args, zero]) => {
      const r = await run('key-client', [...args, ...common], { cwd: tmp.dir });
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr).to.contain(`expected a version number from 0 to 2147483647 (0 = ${zero})`);
    }));
  });

  it('refuses a one-value flag given twice (the last one won), and takes repeatable flags and names after --', async () => {
    for (const [program, args, flag] of [
      ['key-client', ['store', 'n', '--in', '-', '--in', 'other.bin', '--server', '127.0.0.1:1', '--domain', 'd', '--policy-cert', 'p', '--store', 's', '--key-file', 'k'], '--in'],
      ['key-server', ['serve', '--data', 'a', '--data=b', '--domain', 'd', '--policy-cert', 'p', '--store', 's', '--key-file', 'k'], '--data'],
    ] as const) {
      const r = await run(program, [...args], { cwd: tmp.dir });
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr).to.contain(`${flag} is given 2 times; it takes one value`);
    }
    // Repeatable (--server-measurement) and after --: not a repeat; this one fails later, reading files.
    const ok = await run('key-client', ['retrieve', '--server-measurement', 'ab'.repeat(32), '--server-measurement', 'cd'.repeat(32), '--server', '127.0.0.1:1', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--', '--version', '--version'], { cwd: tmp.dir });
    expect(ok.stderr).not.to.contain('is given');
    // A value that merely looks like the flag is a value.
    const looks = await run('cert-utility', ['put-item', '--tag', 'x', '--in', '--in=foo', '--store', 's', '--key-file', 'k'], { cwd: tmp.dir });
    expect(looks.stderr).not.to.contain('is given');
    // A value `--` is a value, not the end of the options: what follows is still checked.
    const dashes = await run('cert-utility', ['put-item', '--tag', '--', '--in', 'a', '--in', 'b', '--store', 's', '--key-file', 'k'], { cwd: tmp.dir });
    expect(dashes.stderr).to.contain('--in is given 2 times');
  });

  it('refuses a flag given an empty value (an unset shell variable): --out \'\' named no file, and key-client read it as no --out', async () => {
    await Promise.all(([
      ['key-client', ['retrieve', 'n', '--out', '', '--server', '127.0.0.1:1', '--domain', 'd', '--policy-cert', 'p', '--store', 's', '--key-file', 'k'], '--out'],
      ['cert-utility', ['get-item', '--tag', 't', '--out', '', '--store', 's', '--key-file', 'k'], '--out'],
      ['key-client', ['retrieve', 'n', '--server-measurement', '', '--server', '127.0.0.1:1', '--domain', 'd', '--policy-cert', 'p', '--store', 's', '--key-file', 'k'], '--server-measurement'],
    ] as const).map(async ([program, args, flag]) => {
      const r = await run(program, [...args], { cwd: tmp.dir });
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr).to.contain(`${flag} needs a value, not an empty string [USAGE]`);
    }));
  });

  it('refuses a directory flag ending in ".." (USAGE naming it), making nothing: a store or key database made for x/new/.. went into x, and a refused start removed what was in x', async () => {
    mkdirSync(join(tmp.dir, 'up'));
    writeFileSync(join(tmp.dir, 'up', 'kept'), '');
    await Promise.all(([
      ['cert-utility', ['init-trust', '--domain', 'd', '--policy-cert', 'none.pem', '--server', '127.0.0.1:1', '--store', 'up/new/..', '--key-file', 'k'], '--store'],
      ['cert-utility', ['put-item', '--tag', 't', '--in', 'none', '--store', 'up/new/../', '--key-file', 'k'], '--store'],
      ['key-server', ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 'up/new/..'], '--data'],
      ['key-server', ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 'data', '--backup-dir', '..'], '--backup-dir'],
      // A "." after the ".." names the same directory: x/new/../. is x too.
      ['cert-utility', ['put-item', '--tag', 't', '--in', 'none', '--store', 'up/new/../.', '--key-file', 'k'], '--store'],
      ['key-server', ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 'up/new/.././/'], '--data'],
      // generate-platform-keys made up/new and wrote the platform's keys in up.
      ['cert-utility', ['generate-platform-keys', '--out-dir', 'up/new/..'], '--out-dir'],
    ] as const).map(async ([program, args, flag]) => {
      const r = await run(program, [...args], { cwd: tmp.dir });
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr).to.contain(`option '${flag} <dir>' argument`).and.to.contain('not one ending in ".."');
    }));
    expect(readdirSync(join(tmp.dir, 'up'))).to.deep.equal(['kept']);
    // Names that only look like one: ".", "./x", "x/.", "a..b" pass the flag (and fail later, for want of a key file).
    const taken = await Promise.all(['.', './x', 'x/.', 'a..b', '..b/.'].map((store) => run('cert-utility', ['list-items', '--store', store, '--key-file', 'none'], { cwd: tmp.dir })));
    for (const r of taken) expect(r.stderr).to.not.contain('".."').and.not.contain('[USAGE]');
  });

  it('says standard input is a directory, or not open for reading, rather than empty or INTERNAL (FILE_ERROR)', () => {
    writeFileSync(join(tmp.dir, 'wo.txt'), '');
    for (const [fd, message] of [[openSync(tmp.dir, 'r'), 'it is a directory'], [openSync(join(tmp.dir, 'wo.txt'), 'w'), 'EBADF']] as const) {
      try {
        const r = spawnSync(process.execPath, [join(ROOT, 'cmd/bin/cert-utility.js'), 'put-item', '--tag', 't', '--in', '-', '--store', 's', '--key-file', 'k'], { stdio: [fd, 'pipe', 'pipe'], cwd: tmp.dir });
        expect(r.status).to.equal(1);
        expect(r.stderr.toString()).to.contain(`cannot read standard input: ${message} [FILE_ERROR]`);
      } finally {
        closeSync(fd);
      }
    }
  });

  it('takes --json as a flag only where it is one: as another flag\'s value it does not turn an error into JSON', async () => {
    writeFileSync(join(tmp.dir, 'store.key'), Buffer.alloc(32, 9), { mode: 0o600 });
    const [asValue, asFlag] = await Promise.all([
      run('cert-utility', ['get-item', '--store', 'no-store', '--key-file', 'store.key', '--tag', 't', '--out', '--json'], { cwd: tmp.dir }),
      run('cert-utility', ['get-item', '--store', 'no-store', '--key-file', 'store.key', '--tag', 't', '--out', '-', '--json'], { cwd: tmp.dir }),
    ]);
    expect(asValue.out).to.equal('');
    expect(asValue.stderr).to.match(/^cert-utility: error: .*\[STORE_NOT_FOUND\]/);
    expect(JSON.parse(asFlag.out).error.code).to.equal('STORE_NOT_FOUND');
  });

  it('writes a usage error as one JSON line under --log-json (a value given to it too, as --log-json=1), and as text where the command has no --log-json', async () => {
    const serve = ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 'data'];
    const runs = await Promise.all([
      [...serve, '--log-json=1'], [...serve, '--log-json', '--bogus'], [...serve, '--log-json', '--backup-keep', '0x1'], ['serve', '--log-json', '--store', 's'], [...serve, '--log-json', 'extra'],
    ].map((args) => run('key-server', args, { cwd: tmp.dir })));
    for (const r of runs) {
      expect(r.status, r.stderr).to.equal(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).to.have.length(1);
      expect(JSON.parse(lines[0]!)).to.include({ event: 'error', code: 'USAGE', exitStatus: 2 });
    }
    const other = await run('key-server', ['verify-audit', '--log-json', 'audit.jsonl'], { cwd: tmp.dir });
    expect(other.status).to.equal(2);
    expect(other.stderr).to.match(/^key-server: error: unknown option '--log-json' \[USAGE\]\nhint: /);
  });

  it('says a flag that takes no value was given one (--json=1, --log-json=1, --check-only=yes) in every program, where commander called it unknown (USAGE, exit 2)', async () => {
    const store = ['--store', 's', '--key-file', 'k'];
    const runs: [Program, string[]][] = [
      ['cert-utility', ['show-cert', 'c.pem', '--json=1']],
      ['cert-utility', ['init-trust', '--domain', 'd', '--policy-cert', 'none.pem', '--server', '127.0.0.1:1', ...store, '--check-only=yes']],
      ['key-client', ['list', '--server', '127.0.0.1:1', '--domain', 'd', '--policy-cert', 'none.pem', ...store, '--json=']],
      ['key-server', ['serve', '--domain', 'd', '--policy-cert', 'none.pem', ...store, '--data', 'data', '--log-json=1']],
      ['simpleserver', ['serve', '--policy-key', 'k', '--policy-cert', 'c', '--policy', 'p', '--log-json=true']],
    ];
    const [showCert, checkOnly, client, keyServer, simpleserver] = await Promise.all(runs.map(([program, args]) => run(program, args, { cwd: tmp.dir })));
    for (const [r, flag, token] of [[showCert!, '--json', '--json=1'], [client!, '--json', '--json=']] as const) {
      expect(r.status, r.stderr).to.equal(2);
      expect(JSON.parse(r.out).error).to.include({ code: 'USAGE', message: `${flag} takes no value: give it alone, not as '${token}'` });
    }
    expect(checkOnly!.status).to.equal(2);
    expect(checkOnly!.stderr).to.match(/^cert-utility: error: --check-only takes no value: give it alone, not as '--check-only=yes' \[USAGE\]$/m);
    for (const [r, token] of [[keyServer!, '--log-json=1'], [simpleserver!, '--log-json=true']] as const) {
      expect(r.status, r.stderr).to.equal(2);
      expect(JSON.parse(r.stderr)).to.include({ event: 'error', code: 'USAGE', message: `--log-json takes no value: give it alone, not as '${token}'` });
    }
    // A flag the command does not have, given a value, is still unknown.
    const unknown = await run('key-server', ['verify-audit', '--log-json=1', 'audit.jsonl'], { cwd: tmp.dir });
    expect(unknown.stderr).to.match(/^key-server: error: unknown option '--log-json=1' \[USAGE\]/);
  });

  it('refuses a number with anything after its digits, or just outside its range, and takes the ends of the range', async () => {
    const serve = ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 'data', '--listen', '127.0.0.1:0'];
    await Promise.all([
      ...([['--backup-keep', '2x', '1 to 100000'], ['--backup-keep', '0', '1 to 100000'], ['--backup-keep', '100001', '1 to 100000'], ['--audit-rotate-mb', '0', '1 to']] as const).map(async ([flag, value, range]) => {
        const r = await run('key-server', [...serve, '--backup-dir', 'b', flag, value], { cwd: tmp.dir });
        expect(r.status, `${flag} ${value}: ${r.stderr}`).to.equal(2);
        expect(r.stderr).to.contain(`expected an integer from ${range}`);
      }),
      ...([[['--scrypt-log-n', '9'], '10 to 22'], [['--scrypt-log-n', '23'], '10 to 22'], [['--scrypt-log-n', '12x'], '10 to 22']] as const).map(async ([args, range]) => {
        const r = await run('cert-utility', ['create-store', '--store', 'st', '--passphrase-file', 'p', ...args], { cwd: tmp.dir });
        expect(r.status, args.join(' ')).to.equal(2);
        expect(r.stderr).to.contain(`expected an integer from ${range}`);
      }),
      // The ends themselves are numbers it takes: whatever fails next, it is not the number.
      ...[['--backup-keep', '100000'], ['--backup-keep', '1']].map(async (args) => {
        const r = await run('key-server', [...serve, '--backup-dir', 'b', ...args], { cwd: tmp.dir });
        expect(r.stderr, args.join(' ')).not.to.contain('expected an integer');
      }),
    ]);
  });

  it('refuses an unknown --platform in every program, also where the platform goes unused (a store opened with a key file): it was taken without a word', async () => {
    const client = ['--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k'];
    const runs: [Program, string[], string][] = [
      ['cert-utility', ['list-items', '--store', 's', '--key-file', 'k', '--platform', 'tdx'], 'unknown --platform "tdx"'],
      ['key-server', ['serve', ...client, '--data', 'data', '--platform', 'simulated\u200b', '--json'], 'unknown --platform "simulated\\u200b"'],
      ['key-client', ['list', '--server', '127.0.0.1:1', ...client, '--platform', 'SEV-SNP'], 'unknown --platform "SEV-SNP"'],
    ];
    await Promise.all(runs.map(async ([program, args, message]) => {
      const r = await run(program, args, { cwd: tmp.dir });
      expect(r.status, `${program} ${args.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(args.includes('--json') ? r.json().error.message : r.stderr).to.contain(`${message}; choose simulated, sev-snp`);
    }));
  });

  it('refuses a bad HOST:PORT or time before any file is read (USAGE, naming the flag), in the commands that read files first', async () => {
    const client = ['--server', '127.0.0.1:65536', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k'];
    const runs: [Program, string[], string][] = [
      ['simpleserver', ['serve', '--policy-key', 'none.pem', '--policy-cert', 'none.pem', '--policy', 'none.bin', '--listen', '127.0.0.1:65536'], '--listen must be HOST:PORT with a port from 0 (any free port) to 65535, not "127.0.0.1:65536"'],
      ['simpleserver', ['explain', '--policy', 'none.bin', '--policy-cert', 'none.pem', '--evidence', 'none.bin', '--at', '2026-12-05'], '--at takes an ISO 8601 time with its offset'],
      ['key-client', ['provision', '--config', 'none.json', ...client], '--server must be HOST:PORT with a port from 1 to 65535'],
      // Standard input (a pipe that may never end) is not waited on for a mistake in the flags.
      ['key-client', ['store', 'n', '--in', 'none.bin', ...client], '--server must be HOST:PORT with a port from 1 to 65535'],
    ];
    await Promise.all(runs.map(async ([program, args, message]) => {
      const r = await run(program, args, { cwd: tmp.dir });
      expect(r.status, `${program} ${args.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr).to.contain(`${program}: error: ${message}`).and.contain('[USAGE]');
    }));
  });

  it('takes an --at in years 0000-0099 as itself: 0000-02-29 exists (1900-02-29, which Date.UTC made of it, does not)', async () => {
    const explain = (at: string) => run('simpleserver', ['explain', '--policy', 'none.bin', '--policy-cert', 'none.pem', '--evidence', 'none.bin', '--at', at], { cwd: tmp.dir });
    const [leap, none] = await Promise.all([explain('0000-02-29T00:00:00Z'), explain('0100-02-29T00:00:00Z')]);
    expect(leap.stderr).to.contain('cannot read none.pem').and.contain('[FILE_ERROR]'); // past the flags, to the files
    expect(none.status).to.equal(2);
    expect(none.stderr).to.contain('--at "0100-02-29T00:00:00Z" is not a time: a field is out of its range (a month from 1 to 12, a day its month has, an hour from 0 to 23, minutes and seconds from 0 to 59, an offset below 24:00) [USAGE]');
  });

  it('refuses port 0 where a server is to be reached (it means "any port" only to listen)', async () => {
    const r = await run('key-client', ['list', '--server', '127.0.0.1:0', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k']);
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain('--server must be HOST:PORT with a port from 1 to 65535');
  });

  it('refuses a port past 65535 as USAGE (exit 2) in every program, before any file is read, and takes port 0 to listen', async () => {
    const client = ['--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k'];
    const serve = ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 'data'];
    const cases: [Program, string[], string][] = [
      ['key-client', ['list', '--server', '127.0.0.1:65536', ...client], '--server must be HOST:PORT with a port from 1 to 65535, not "127.0.0.1:65536"'],
      ['key-server', [...serve, '--listen', '127.0.0.1:65536'], '--listen must be HOST:PORT with a port from 0 (any free port) to 65535, not "127.0.0.1:65536"'],
      ['key-server', ['join', '--from', '[::1]:65536', ...client], '--from must be HOST:PORT with a port from 1 to 65535, not "[::1]:65536"'],
      ['cert-utility', ['init-trust', '--server', '127.0.0.1:http', ...client], '--server must be HOST:PORT with a port from 1 to 65535, not "127.0.0.1:http"'],
    ];
    // Port 0 is "any port" to listen on: taken, and what fails next is the missing policy certificate.
    const [any, ...runs] = await Promise.all([run('key-server', [...serve, '--listen', '127.0.0.1:0'], { cwd: tmp.dir }), ...cases.map(([program, args]) => run(program, args, { cwd: tmp.dir }))]);
    runs.forEach((r, i) => {
      const [program, args, message] = cases[i]!;
      expect(r.status, `${program} ${args.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr).to.contain(`${program}: error: ${message} [USAGE]`);
    });
    expect(any.stderr).not.to.contain('must be HOST:PORT');
    expect(any.stderr).to.contain('none.pem').and.contain('[FILE_ERROR]');
  });

  it('refuses a key file given as the measurement file too (its bytes would go out as the measurement)', async () => {
    writeFileSync(join(tmp.dir, 'store.key'), Buffer.alloc(32, 9), { mode: 0o600 });
    writeFileSync(join(tmp.dir, 'copy.key'), Buffer.alloc(32, 9));
    expect((await run('cert-utility', ['generate-policy-key', '--domain', 'd', '--key-out', 'pk.pem', '--cert-out', 'pc.pem'], { cwd: tmp.dir })).status).to.equal(0);
    await Promise.all(['store.key', 'copy.key'].map(async (m) => {
      const r = await run('cert-utility', ['init-trust', '--domain', 'd', '--policy-cert', 'pc.pem', '--server', '127.0.0.1:1', '--store', 'st',
        '--key-file', 'store.key', '--platform-dir', 'plat', '--measurement-file', m], { cwd: tmp.dir });
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.contain('--measurement-file names the same file as --key-file');
    }));
  });

  it('refuses an --audit in a directory that does not exist before making anything (FILE_ERROR)', async () => {
    const r = await run('key-server', ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 'new-data', '--audit', 'typo/audit.jsonl', '--backup-dir', 'new-backups'], { cwd: tmp.dir });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.contain('cannot open the audit log typo/audit.jsonl: no directory typo').and.to.contain('[FILE_ERROR]');
    expect(existsSync(join(tmp.dir, 'new-data')) || existsSync(join(tmp.dir, 'new-backups'))).to.equal(false);
  });

  it('tells an --audit in --data from one elsewhere as the kernel does, also with --data named through "link/.."', async () => {
    linkToDeep(join(tmp.dir, 'al'));
    const serve = ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 'al/link/../d']; // the kernel's al/real/d
    // A --data whose parent is new too: the kernel's al/real/new/d, made by serve.
    const nested = [...serve.slice(0, -1), 'al/link/../new/d'];
    // A new directory, "..", then the link: once serve makes al/new, the kernel's al/real/deep/d.
    const upThenLink = [...serve.slice(0, -1), 'al/new/../link/d'];
    const [beside, inData, besideNested, inNested, inUpThenLink] = await Promise.all([
      run('key-server', [...serve, '--audit', 'al/d/audit.jsonl'], { cwd: tmp.dir }),
      run('key-server', [...serve, '--audit', 'al/real/d/audit.jsonl'], { cwd: tmp.dir }),
      run('key-server', [...nested, '--audit', 'al/new/d/audit.jsonl'], { cwd: tmp.dir }),
      run('key-server', [...nested, '--audit', 'al/real/new/d/audit.jsonl'], { cwd: tmp.dir }),
      run('key-server', [...upThenLink, '--audit', 'al/real/deep/d/audit.jsonl'], { cwd: tmp.dir }),
    ]);
    // Not --data's directory, and missing: refused first. In --data, which serve makes: the start
    // goes on (to the missing policy certificate here).
    expect(beside.stderr).to.contain('cannot open the audit log al/d/audit.jsonl: no directory al/d').and.to.contain('[FILE_ERROR]');
    expect(inData.stderr).to.contain('none.pem').and.not.to.contain('cannot open the audit log');
    expect(besideNested.stderr).to.contain('cannot open the audit log al/new/d/audit.jsonl: no directory al/new/d').and.not.to.contain('none.pem');
    expect(inNested.stderr).to.contain('none.pem').and.not.to.contain('cannot open the audit log');
    expect(inUpThenLink.stderr).to.contain('none.pem').and.not.to.contain('cannot open the audit log');
  });

  it('removes the --backup-dir it made (and the folders above it) when the start is refused later, and keeps one that was there', async () => {
    mkdirSync(join(tmp.dir, 'kept-backups'));
    const serve = ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 'data'];
    const [made, kept] = await Promise.all([
      run('key-server', [...serve, '--backup-dir', 'made/for/backups'], { cwd: tmp.dir }),
      run('key-server', [...serve, '--backup-dir', 'kept-backups', '--json'], { cwd: tmp.dir }),
    ]);
    expect(made.status).to.equal(1);
    expect(made.stderr).to.contain('none.pem').and.contain('[FILE_ERROR]');
    expect(existsSync(join(tmp.dir, 'made'))).to.equal(false);
    expect(kept.json().error.code).to.equal('FILE_ERROR');
    expect(existsSync(join(tmp.dir, 'kept-backups'))).to.equal(true);
  });

  it('refuses a --backup-dir that is --data or inside it, also through a link (USAGE, before anything is made): the backups would go wherever the key database goes', async () => {
    mkdirSync(join(tmp.dir, 'live'));
    symlinkSync(join(tmp.dir, 'live'), join(tmp.dir, 'live-link'));
    const serve = ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k'];
    const runs = await Promise.all([
      ['--data', 'live', '--backup-dir', 'live'],
      ['--data', 'live', '--backup-dir', 'live/backups'],
      ['--data', 'live-link', '--backup-dir', 'live/new/backups'],
      ['--data', 'new-data', '--backup-dir', 'new-data/backups'],
    ].map((flags) => run('key-server', [...serve, ...flags], { cwd: tmp.dir })));
    for (const r of runs) {
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.contain('--backup-dir must be outside --data').and.contain('[USAGE]');
    }
    expect(readdirSync(join(tmp.dir, 'live'))).to.deep.equal([]);
    expect(existsSync(join(tmp.dir, 'new-data'))).to.equal(false);
  });

  it('refuses --pg-pool-size or KEY_SERVER_PG_URL without --backend postgres, a pool size outside 1 to 1000, and a --replica-id that cannot name a file (USAGE, before any file is read)', async () => {
    const base = ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 'data'];
    const env = { ...process.env, KEY_SERVER_PG_URL: 'postgres://u@127.0.0.1:1/keys?sslmode=disable' };
    const pg = [...base, '--backend', 'postgres'];
    const cases: [string[], string][] = [
      [[...base, '--pg-pool-size', '5'], '--pg-pool-size goes with --backend postgres'],
      [[...base, '--backend', 'level', '--pg-pool-size', '5'], '--pg-pool-size goes with --backend postgres'],
      // the database's URL in the environment, and a unit that lost its --backend: no key database of its own
      [base, 'KEY_SERVER_PG_URL is set, but without --backend postgres this key-server would serve its own LevelDB key database'],
      [[...base, '--pg-url', 'postgres://u@127.0.0.1:1/k'], '--pg-url goes with --backend postgres'],
      [[...pg, '--pg-pool-size', '0'], 'expected an integer from 1 to 1000'],
      [[...pg, '--pg-pool-size', '1001'], 'expected an integer from 1 to 1000'],
      ...['a b', '../ks', 'x'.repeat(65), 'caf\u00e9', 'a\u001b[31m'].map((id): [string[], string] => [[...pg, '--replica-id', id], 'expected 1 to 64 letters, digits, ".", "_" or "-"']),
    ];
    const runs = await Promise.all(cases.map(([args]) => run('key-server', args, { cwd: tmp.dir, env })));
    runs.forEach((r, i) => {
      const [args, message] = cases[i]!;
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr, args.join(' ')).to.contain(message).and.contain('[USAGE]').and.not.contain('\u001b');
    });
    // The ends of both: past every check of the flags, to the missing policy certificate.
    const ends = await run('key-server', [...pg, '--pg-pool-size', '1000', '--replica-id', `ks-a.1_${'B'.repeat(57)}`], { cwd: tmp.dir, env });
    expect(ends.status, ends.stderr).to.equal(1);
    expect(ends.stderr).to.contain('none.pem').and.contain('[FILE_ERROR]');
    expect(existsSync(join(tmp.dir, 'data'))).to.equal(false);
    // --backend level given on purpose, the URL in the environment all the same: the operator's choice.
    const level = await run('key-server', [...base, '--backend', 'level'], { cwd: tmp.dir, env });
    expect(level.stderr).to.contain('none.pem').and.contain('[FILE_ERROR]').and.not.contain('KEY_SERVER_PG_URL');
  });

  it('refuses PostgreSQL flags without --backend postgres, and a --backup-dir that is a file', async () => {
    writeFileSync(join(tmp.dir, 'a-file'), 'x');
    const base = ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', join(tmp.dir, 'data')];
    // The files the checks below read, made first: every check then runs beside the others (they
    // share nothing; one after another they took 18 s, group after group 10 s).
    for (const f of ['ca.pem', 'c.pem', 'k.pem']) writeFileSync(join(tmp.dir, f), 'not checked yet\n');
    const [ca, cert, key] = ['ca.pem', 'c.pem', 'k.pem'].map((f) => join(tmp.dir, f));
    mkdirSync(join(tmp.dir, 'a-dir'));
    execFileSync('mkfifo', [join(tmp.dir, 'a-fifo')]);
    writeFileSync(join(tmp.dir, 'big.pem'), Buffer.alloc(1024 * 1024 + 1));
    mkdirSync(join(tmp.dir, 'st'));
    symlinkSync('st', join(tmp.dir, 'st-link'));
    // Others could plant names in it (a link where a copy is written): refused before anything starts.
    mkdirSync(join(tmp.dir, 'shared'));
    chmodSync(join(tmp.dir, 'shared'), 0o1777);
    const pgWith = (query: string, env: Record<string, string> = {}) => run('key-server', [...base, '--backend', 'postgres'], { env: { ...process.env, ...env, KEY_SERVER_PG_URL: `postgres://u@127.0.0.1:1/keys${query}` } });

    await Promise.all([
      (async () => {
        const pg = await run('key-server', [...base, '--pg-url', 'postgres://u:pw@127.0.0.1:1/db', '--replica-id', 'r1']);
        expect(pg.status).to.equal(2);
        expect(pg.stderr).to.contain('--pg-url, --replica-id go with --backend postgres');
      })(),
      // Anything but a postgres:// URL would be read as a database name on the default host, sent
      // there with its password, and quoted back in the error: refused at once, never quoted.
      ...['keyserver:pw-s3cret@127.0.0.1:5432/keys', 'host=127.0.0.1 password=pw-s3cret dbname=keys', 'postgres//127.0.0.1/db', 'mysql://u:pw-s3cret@127.0.0.1/keys', 'postgres://u:pw-s3cret@127.0.0.1:1'].map(async (url) => {
        const r = await run('key-server', [...base, '--backend', 'postgres'], { env: { ...process.env, KEY_SERVER_PG_URL: url } });
        expect(r.status, url).to.equal(2);
        expect(r.stderr).to.contain('KEY_SERVER_PG_URL').and.not.contain('pw-s3cret');
      }),
      // An sslmode the pg driver reads otherwise than libpq: refused before the driver sees it (and
      // prints its own multi-line warning), in the program's own format.
      ...['sslmode=require', 'sslmode=prefer', 'sslmode=verify-ca', 'sslmode=requir', 'uselibpqcompat=true&sslmode=verify-ca'].flatMap((query) => [[], ['--log-json']].map(async (json) => {
        const r = await run('key-server', [...base, '--backend', 'postgres', ...json], { env: { ...process.env, KEY_SERVER_PG_URL: `postgres://u:pw-s3cret@127.0.0.1:1/keys?${query}` } });
        expect(r.status, query).to.equal(2);
        expect(r.stderr).to.contain('sslmode').and.not.contain('SECURITY WARNING').and.not.contain('pw-s3cret');
        if (json.length) expect(JSON.parse(r.stderr.trim())).to.include({ code: 'USAGE' });
        else expect(r.stderr).to.match(/^key-server: error: the PostgreSQL URL \(KEY_SERVER_PG_URL\) has .*sslmode.*\[USAGE\]\n/);
      })),
      ...['sslmode=verify-full', 'sslmode=disable', 'uselibpqcompat=true&sslmode=verify-full', 'uselibpqcompat=true&sslmode=disable'].map(async (query) => {
        const r = await run('key-server', [...base, '--backend', 'postgres'], { env: { ...process.env, KEY_SERVER_PG_URL: `postgres://u@127.0.0.1:1/keys?${query}` } });
        expect(r.stderr, query).to.contain('[FILE_ERROR]'); // past the URL's checks, to the missing policy certificate
        expect(r.stderr, query).not.to.contain('warning');
      }),
      // A parameter given twice (the check and the driver would each read another of them), and
      // PGSSLMODE, which the driver reads its own way where the URL has no sslmode.
      ...[['?sslnegotiation=bogus', 'sslnegotiation'], ['?sslmode=disable&sslnegotiation=direct', 'sslnegotiation'], ['?ssl=false', 'ssl=false, which the driver reads as TLS on']].map(async ([query, named]) => {
        const r = await pgWith(query!);
        expect(r.status, query).to.equal(2);
        expect(r.stderr, query).to.contain(named).and.contain('[USAGE]');
      }),
      (async () => {
        const twice = await pgWith('?uselibpqcompat=true&uselibpqcompat=false&sslmode=require');
        expect(twice.status).to.equal(2);
        expect(twice.stderr).to.contain('names uselibpqcompat more than once').and.not.contain('SECURITY WARNING');
      })(),
      (async () => {
        const fromEnv = await pgWith('', { PGSSLMODE: 'require' });
        expect(fromEnv.status).to.equal(2);
        expect(fromEnv.stderr).to.contain('PGSSLMODE=require, which it takes for verify-full').and.not.contain('SECURITY WARNING');
      })(),
      (async () => expect((await pgWith('', { PGSSLMODE: 'requir' })).stderr).to.contain('PGSSLMODE=requir, which it takes for no TLS').and.contain('[USAGE]'))(),
      // The driver reads PGSSLNEGOTIATION too, and throws at connect time on a value it does not know.
      (async () => {
        const negotiation = await pgWith('', { PGSSLNEGOTIATION: 'bogus' });
        expect(negotiation.status).to.equal(2);
        expect(negotiation.stderr).to.contain('Invalid sslnegotiation value: "bogus"').and.contain('[USAGE]');
      })(),
      (async () => expect((await pgWith('?sslnegotiation=postgres', { PGSSLMODE: 'require' })).stderr).to.contain('PGSSLMODE=require').and.contain('[USAGE]'))(),
      // allow, unknown to the driver, is no TLS (as before); and wherever the URL sets TLS of its
      // own, the driver ignores PGSSLMODE, so neither is it refused nor its no-verify warned of.
      // (The driver reads the files a URL names as it reads the URL: these exist; a missing one is
      // FILE_ERROR, named, before anything else.)
      (async () => {
        const missing = await pgWith(`?sslmode=verify-full&sslrootcert=${join(tmp.dir, 'no-ca.pem')}`);
        expect(missing.status).to.equal(1);
        expect(missing.stderr).to.contain(`the PostgreSQL URL (KEY_SERVER_PG_URL) names sslrootcert ${join(tmp.dir, 'no-ca.pem')}: no such file`).and.contain('[FILE_ERROR]');
      })(),
      // Nor anything the driver's own read (readFileSync as it parses) would wait on or fill memory
      // with; and libpq's sslrootcert=system, a file named "system" to this driver.
      ...[['a-dir', 'is a directory', 'FILE_ERROR'], ['a-fifo', 'not a regular file', 'FILE_ERROR'], ['big.pem', 'is larger than 1048576 bytes', 'INVALID_INPUT']].map(async ([file, said, code]) => {
        const r = await pgWith(`?sslmode=verify-full&sslrootcert=${join(tmp.dir, file!)}`);
        expect(r.stderr, file).to.contain(`names sslrootcert ${join(tmp.dir, file!)}`).and.contain(said!).and.contain(`[${code}]`);
      }),
      (async () => {
        const system = await pgWith('?sslmode=verify-full&sslrootcert=system');
        expect(system.status).to.equal(2);
        expect(system.stderr).to.contain('sslrootcert=system').and.contain('[USAGE]');
      })(),
      // A driver's message holding the password's characters is not quoted, rather than garbled.
      (async () => {
        const short = await run('key-server', [...base, '--backend', 'postgres'], { env: { ...process.env, KEY_SERVER_PG_URL: 'postgres://u:e@127.0.0.1:1/db?sslnegotiation=x' } });
        expect(short.stderr).to.contain('its message is not shown').and.contain('[USAGE]').and.not.contain('***');
      })(),
      ...[['', 'allow'], ...['?sslmode=verify-full', `?sslrootcert=${ca}`, '?ssl=true', '?ssl=0', `?sslcert=${cert}&sslkey=${key}`, '?sslnegotiation=direct'].flatMap((q) => [[q, 'require'], [q, 'no-verify']])].map(async ([query, mode]) => {
        const r = await pgWith(query!, { PGSSLMODE: mode! });
        expect(r.stderr, `${query} PGSSLMODE=${mode}`).to.contain('[FILE_ERROR]').and.not.contain('warning');
      }),
      // The driver's no-verify: taken, with a warning that the database's certificate goes unchecked.
      // So are libpq's require and prefer, asked for with uselibpqcompat=true.
      ...([['?sslmode=no-verify', {}, 'sslmode=no-verify'], ['?ssl=no-verify', {}, 'ssl=no-verify'], ['', { PGSSLMODE: 'no-verify' }, 'PGSSLMODE=no-verify'],
        ['?uselibpqcompat=true&sslmode=require', {}, 'sslmode=require'], ['?uselibpqcompat=true&sslmode=prefer', {}, 'sslmode=prefer']] as const).map(async ([query, env, setting]) => {
        const r = await pgWith(query, env);
        expect(r.stderr, query).to.contain('[FILE_ERROR]').and.contain(`${setting} encrypts the connection to the database but does not check its certificate`);
      }),
      // A certificate file in the URL makes the driver check the database whatever ssl says.
      (async () => expect((await pgWith(`?ssl=no-verify&sslrootcert=${ca}`)).stderr).to.contain('[FILE_ERROR]').and.not.contain('warning'))(),
      (async () => {
        const same = await run('key-server', ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 's', '--backend', 'postgres']);
        expect(same.status).to.equal(2);
        expect(same.stderr).to.contain('--data and --store must be different directories');
      })(),
      (async () => {
        const linked = await run('key-server', ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', join(tmp.dir, 'st'), '--key-file', 'k', '--data', join(tmp.dir, 'st-link')]);
        expect(linked.status).to.equal(2);
        expect(linked.stderr).to.contain('--data and --store must be different directories');
      })(),
      (async () => {
        const backup = await run('key-server', [...base, '--backup-dir', join(tmp.dir, 'a-file')]);
        expect(backup.status).to.equal(2);
        expect(backup.stderr).to.contain('is not a directory');
      })(),
      (async () => {
        // Under a file: nothing can be made there, and Node's raw ENOTDIR says nothing of which name.
        const under = await run('key-server', [...base, '--backup-dir', join(tmp.dir, 'a-file', 'b')]);
        expect(under.status, under.stderr).to.equal(1);
        expect(under.stderr).to.contain(`cannot use --backup-dir ${join(tmp.dir, 'a-file', 'b')}: ${join(tmp.dir, 'a-file')} is not a directory [FILE_ERROR]`).and.not.match(/E[A-Z]+:/);
      })(),
      (async () => {
        const shared = await run('key-server', [...base, '--backup-dir', join(tmp.dir, 'shared')]);
        expect(shared.status, shared.stderr).to.equal(1);
        expect(shared.stderr).to.contain('FILE_ERROR').and.contain('is not safe for backups of keys: others can write in it (mode 1777)');
      })(),
    ]);
  });
});

// The README stays true: its error table matches lib/errors, and every command it shows is run
// by a test, a scenario or a script.

import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes } from '../../lib/errors/index.ts';
import { MAX_BLOB_BYTES } from '../../cryptstore/index.ts';
import { ROOT } from '../support/helpers.ts';

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

describe('README', () => {
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
});

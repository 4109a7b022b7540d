// Imports only point down the layers of the design: a lower layer never imports a higher one.

import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from '../support/helpers.ts';

// Lowest first. A file may import only from its own layer or lower ones.
const LAYERS: [string, number][] = [
  ['lib/errors', 0],
  ['lib/wire/types.ts', 0], // pure type declarations, no imports
  ['lib/util', 0], // small helpers: imports only lib/errors
  ['lib/crypto', 1],
  ['lib/wire', 2],
  ['lib/files', 2],
  ['lib/pki', 3],
  ['lib/policy', 4],
  ['cryptstore', 5],
  ['lib/attest', 6],
  ['lib/channel', 7],
  ['lib/certifier', 8],
  ['lib/keyservice', 8],
  ['lib/keyclient', 9],
  ['cmd', 10],
];

function layerOf(rel: string): number | undefined {
  let best: [string, number] | undefined;
  for (const l of LAYERS) if ((rel === l[0] || rel.startsWith(l[0] + '/')) && (!best || l[0].length > best[0].length)) best = l;
  return best?.[1];
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('layering', () => {
  it('has no import pointing up a layer', () => {
    const violations: string[] = [];
    for (const top of ['lib', 'cryptstore', 'cmd']) {
      for (const file of sources(join(ROOT, top))) {
        const from = relative(ROOT, file);
        const mine = layerOf(from);
        expect(mine, `${from} belongs to no layer`).to.not.equal(undefined);
        for (const m of readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)[^'"]*from\s+'(\.[^']+)'/gm)) {
          const to = relative(ROOT, resolve(dirname(file), m[1]!));
          const theirs = layerOf(to);
          if (theirs !== undefined && theirs > mine!) violations.push(`${from} -> ${to}`);
        }
      }
    }
    expect(violations).to.deep.equal([]);
  });

  it('keeps lib/crypto free of IO and logging', () => {
    for (const file of sources(join(ROOT, 'lib/crypto'))) {
      const text = readFileSync(file, 'utf8');
      expect(text, file).not.to.match(/from 'node:(fs|net|tls|http|child_process)'|console\.|process\.std/);
    }
  });
});

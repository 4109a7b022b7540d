// Searching what programs leave behind for secrets, as an auditor would: each secret (a canary)
// in every form a program might print or store it (raw bytes, hex in both cases, base64 and
// base64url with and without padding, JSON-escaped text), and a prefix of each form, which a cut
// or paged print would leave.

import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface Canary {
  name: string;
  value: Buffer;
}

/** One place something was left: an output of a program run, or a file. */
export interface Place {
  label: string;
  bytes: Buffer;
}

export interface Finding {
  place: string;
  canary: string;
  form: string;
}

/** The forms of `value` searched for, each named. */
export function forms(value: Buffer): [string, Buffer][] {
  const b64 = value.toString('base64');
  const b64url = value.toString('base64url');
  const whole: [string, string | Buffer][] = [
    ['raw', value],
    ['hex', value.toString('hex')],
    ['HEX', value.toString('hex').toUpperCase()],
    ['base64', b64],
    ['base64 unpadded', b64.replace(/=+$/, '')],
    ['base64url padded', b64url.padEnd(b64.length, '=')],
    ['base64url', b64url],
  ];
  const text = value.toString('latin1');
  if (/^[\x20-\x7e]+$/.test(text)) whole.push(['JSON string', JSON.stringify(text).slice(1, -1)]);
  // Prefixes: 16 bytes raw, their 32 hex digits, 15 bytes' 20 base64 characters (the same whatever follows).
  const prefixes: [string, string | Buffer][] = value.length > 24
    ? [['raw prefix', value.subarray(0, 16)], ['hex prefix', value.toString('hex').slice(0, 32)], ['HEX prefix', value.toString('hex').slice(0, 32).toUpperCase()],
        ['base64 prefix', b64.slice(0, 20)], ['base64url prefix', b64url.slice(0, 20)]]
    : [];
  const seen = new Set<string>();
  return [...whole, ...prefixes].map(([n, f]) => [n, Buffer.from(f)] as [string, Buffer]).filter(([, f]) => !seen.has(f.toString('hex')) && !!seen.add(f.toString('hex')));
}

/** Every canary form found in every place, one finding per (place, canary): the first form found. */
export function search(places: Place[], canaries: Canary[]): Finding[] {
  const found: Finding[] = [];
  const searched = canaries.map((c) => ({ name: c.name, forms: forms(c.value) }));
  for (const p of places) {
    for (const c of searched) {
      const hit = c.forms.find(([, f]) => p.bytes.includes(f));
      if (hit) found.push({ place: p.label, canary: c.name, form: hit[0] });
    }
  }
  return found;
}

/** Every regular file under `dir`, labelled by its path relative to `dir`. */
export function filesUnder(dir: string): Place[] {
  const places: Place[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (lstatSync(p).isFile()) places.push({ label: relative(dir, p), bytes: readFileSync(p) });
    }
  };
  walk(dir);
  return places;
}

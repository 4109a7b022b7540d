// Searching what programs leave behind for secrets, as an auditor would: each secret (a canary)
// in every form a program might print or store it (raw bytes, hex in both cases, base64 and
// base64url with and without padding, JSON-escaped text), and a prefix of each form, which a cut
// or paged print would leave.

import { createPrivateKey, randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Cryptstore, type Protector } from '../../cryptstore/index.ts';
import { loadIdentity } from '../../lib/certifier/index.ts';
import { STORAGE_KEY_TAG } from '../../lib/keyservice/server.ts';
import type { RunResult } from './helpers.ts';

/** `n` random printable ASCII characters (no quote or backslash, so JSON leaves them as they are; JSON escapes are searched too). */
export const printable = (n: number): string => [...randomBytes(n)].map((b) => String.fromCharCode(0x23 + (b % 0x39))).join('');

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

/** The canaries of Scenario 1 that every scan hands the programs: values of three kinds and the passphrases of a key-server's store, a reader's and a wrong one. */
export function scenarioCanaries() {
  return {
    value32: randomBytes(32),
    value1k: randomBytes(1024),
    valueText: Buffer.from(`canary-text-${printable(48)}`),
    serverPassphrase: Buffer.from(`canary-pass-server-${printable(24)}`),
    readerPassphrase: Buffer.from(`canary-pass-reader-${printable(24)}`),
    wrongPassphrase: Buffer.from(`canary-pass-wrong-${printable(24)}`),
  };
}

/** A secret a program made, read back at the end; `home` names the one place it may be (its own PEM file). */
export type Made = Canary & { home?: string };

/**
 * One scan: the canaries a test hands the programs, where each may be (its own input files, the
 * outputs that were asked for it), the secrets the programs made, and every output recorded.
 */
export class Scan<Name extends string> {
  readonly outputs: Place[] = [];
  readonly made: Made[] = [];
  private readonly allowed: { place: string; canaries: Name[] }[] = [];

  /** `canaries` is read when searched: a value the test learns later (a key file written by a program) may be set meanwhile. */
  constructor(readonly canaries: Record<Name, Buffer>) {}

  /** A place (a file's label, or a run's output's) where `names` are meant to be. */
  allow(place: string, ...names: Name[]): void {
    this.allowed.push({ place, canaries: names });
  }

  /** Writes `bytes` to DIR/inputs/NAME, a file of the test's where `names` are meant to be; returns its path. */
  input(dir: string, name: string, bytes: Buffer, ...names: Name[]): string {
    const f = join(dir, 'inputs', name);
    writeFileSync(f, bytes, { mode: 0o600 });
    this.allow(`inputs/${name}`, ...names);
    return f;
  }

  /** Keeps a run's stdout and stderr (as bytes) for the search, labelled `LABEL: stdout` and `LABEL: stderr`. */
  async recorded(label: string, r: Promise<RunResult>): Promise<RunResult> {
    const done = await r;
    this.outputs.push({ label: `${label}: stdout`, bytes: done.stdout }, { label: `${label}: stderr`, bytes: done.stderrBytes });
    return done;
  }

  /** The canaries the test gave, as searched. */
  given(): Canary[] {
    return Object.entries<Buffer>(this.canaries).map(([name, value]) => ({ name, value }));
  }

  /** The self-check: each canary meant to be somewhere and not found there (none, when the search works). */
  missed(places: Place[]): string[] {
    const found = search([...this.outputs, ...places], this.given());
    return this.allowed.flatMap((a) => a.canaries.filter((c) => !found.some((x) => x.place === a.place && x.canary === c)).map((c) => `${c} in ${a.place}`));
  }

  /** Every canary, given or made, found anywhere but where it may be. */
  leaks(places: Place[]): string[] {
    return search([...this.outputs, ...places], [...this.given(), ...this.made])
      .filter((x) => !this.allowed.some((a) => a.place === x.place && (a.canaries as string[]).includes(x.canary)) && !this.made.some((m) => m.name === x.canary && m.home === x.place))
      .map((x) => `${x.canary} (${x.form}) in ${x.place}`);
  }
}

/** Everything servers wrote (their stdout and stderr, from `written`), labelled by program and place in `servers`. */
export function serverOutputs(servers: readonly { name: string; written: { stdout: Buffer[]; stderr: Buffer[] } }[]): Place[] {
  return servers.flatMap((c, i) => [
    { label: `${c.name} #${i}: stdout`, bytes: Buffer.concat(c.written.stdout) }, { label: `${c.name} #${i}: stderr`, bytes: Buffer.concat(c.written.stderr) },
  ]);
}

/** The private scalar of the EC key in PEM file `file`, a made secret at home in `home` (the file's label). */
export function pemKeySecret(name: string, file: string, home: string): Made {
  return { name, home, value: Buffer.from(createPrivateKey(readFileSync(file)).export({ format: 'jwk' }).d!, 'base64url') };
}

/**
 * What an idle certified store holds that must be nowhere else: its data key, its machine's private
 * key, and the key-server's storage key when it holds one (returned as `storageKey` too). And, not
 * secret, its machine's public key's x, which evidence and certificates carry.
 */
export async function storeSecrets(name: string, dir: string, protector: Protector, domain: string, policyCert: Uint8Array): Promise<{ made: Made[]; storageKey?: Buffer; publicX: Buffer }> {
  const store = await Cryptstore.open(dir, protector);
  try {
    const storageKey = (await store.has(STORAGE_KEY_TAG)) ? Buffer.from((await store.get(STORAGE_KEY_TAG)).blob) : undefined;
    const jwk = (await loadIdentity(store, domain, policyCert)).key.export({ format: 'jwk' });
    const made: Made[] = [
      { name: `${name}'s data key`, value: Buffer.from((store as unknown as { dataKey: Uint8Array }).dataKey) },
      { name: `${name}'s private key`, value: Buffer.from(jwk.d!, 'base64url') },
    ];
    const publicX = Buffer.from(jwk.x!, 'base64url');
    return storageKey ? { made, storageKey, publicX } : { made, publicX };
  } finally {
    await store.close();
  }
}

/**
 * Runs `fn` with TMPDIR at `dir`, so that whatever a program puts in its temporary folder stays
 * under the scanned tree, and puts TMPDIR back as it was.
 */
export function withTmpDir<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  return withEnv('TMPDIR', dir, fn);
}

/** Runs `fn` with the environment variable `name` at `value` in this process, and puts it back as it was. */
export async function withEnv<T>(name: string, value: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env[name];
  process.env[name] = value;
  try {
    return await fn();
  } finally {
    // Not `= saved` when it was unset: that sets the text "undefined" (TMPDIR so would make every
    // later test file in this mocha worker make its folders under ./undefined, which is not there).
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  }
}

// Fuzz targets whose input is more than one buffer: an export bundle opened with its passphrase
// (scrypt, then the sealed entries), and a directory of audit files (a log, its rotated segments
// and FILE.end) that verify-audit reads and a key-server's start continues.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openBundle, sealBundle, type Entry } from '../../cryptstore/index.ts';
import { bundleAad } from '../../cryptstore/layout.ts';
import { scrypt, seal } from '../../lib/crypto/index.ts';
import { CertifierError } from '../../lib/errors/index.ts';
import { encode, encodeSecret, parseCryptstoreBundle } from '../../lib/wire/index.ts';
import { AuditLog } from '../../lib/keyservice/audit.ts';
import { verifyChain } from '../../lib/keyservice/audit-chain.ts';
import { segmentPath } from '../../lib/keyservice/audit-read.ts';
import type { Target } from './mutate.ts';

const text = (s: string) => new TextEncoder().encode(s);

/** The cheapest cost a bundle may name (N = 2^10), so that each input derives its key in a few ms. */
const CHEAP = { logN: 10, r: 8, p: 1 };
/** The most a bundle may make its reader pay (README, "Security": r 8, p 1, N up to 2^22). */
const MOST = { logN: 22, r: 8, p: 1 };
/** Above this N the fuzzer checks the cost against MOST and does not derive: 2^22 takes 4 GiB and seconds. */
const DERIVED_UP_TO = 12;

/**
 * openBundle, unless the bundle names a cost above DERIVED_UP_TO: then the parse it begins with
 * must have held it to MOST (a cost beyond it accepted is a fault, not a derivation to wait for).
 */
async function openCheap(b: Uint8Array, passphrase: Uint8Array): Promise<unknown> {
  let cost;
  try {
    cost = parseCryptstoreBundle(b).scrypt;
  } catch (e) {
    if (!(e instanceof CertifierError)) throw e;
    return openBundle(b, passphrase); // refused by the same parse, before any scrypt
  }
  if (cost.logN > MOST.logN || cost.r !== MOST.r || cost.p !== MOST.p) {
    throw new Error(`a bundle naming scrypt N = 2^${cost.logN}, r = ${cost.r}, p = ${cost.p} was accepted: more than the documented most`);
  }
  return cost.logN > DERIVED_UP_TO ? undefined : openBundle(b, passphrase);
}

export async function bundleTargets(): Promise<Target[]> {
  const passphrase = text('bundle pass');
  const at = '2026-12-01T00:00:00.000Z';
  const entry = (tag: string, version: number, blob: Uint8Array, type: Entry['type'] = 'binary-blob'): Entry => ({ tag, version, type, timeEntered: at, blob, exportable: true, size: blob.length });
  const entries = [entry('disk', 1, new Uint8Array(32).fill(1)), entry('disk', 2, new Uint8Array(32).fill(2)), entry('vhd/key', 1, text('secret'))];
  const bundles = [await sealBundle(entries, passphrase, CHEAP), await sealBundle([entries[0]!], passphrase, { ...CHEAP, logN: 11 }), await sealBundle([], passphrase, CHEAP)];

  // The sealed part: a mutated plaintext sealed again under the key of a fixed salt, so that the
  // entries are read (checkBundleEntries) as a bundle from someone who knows the passphrase.
  const salt = new Uint8Array(32).fill(5);
  const key = await scrypt(passphrase, salt, CHEAP, 32);
  const resealed = (plain: Uint8Array) => encode('cryptstore_bundle', {
    formatVersion: 1, scrypt: { ...CHEAP, salt }, ciphertext: seal(key, plain, bundleAad(CHEAP.logN, CHEAP.r, CHEAP.p, salt)),
  });
  const body = (es: Entry[]) => encodeSecret('cryptstore', {
    entries: es.map((e) => ({ tag: e.tag, type: e.type, version: e.version, timeEntered: text(e.timeEntered), blob: e.blob, exportable: e.exportable })),
  });

  return [
    { name: 'export bundle (openBundle: header, scrypt cost and salt, ciphertext)', weight: 1, everyCut: false, seeds: bundles, run: (b) => openCheap(b, passphrase) },
    { name: 'export bundle plaintext sealed again (openBundle: the entries)', weight: 1, seeds: [body(entries), body([entries[2]!])], run: (b) => openBundle(resealed(b), passphrase) },
  ];
}

/**
 * A directory as one input: sections "=== NAME\n" then the file's bytes, up to the next line that
 * begins "=== ". "=== dir:NAME" makes a directory, "=== fifo:NAME" a FIFO, "=== link:NAME>TARGET"
 * a symbolic link to TARGET beside it. A name that is not one entry of the directory is left out;
 * of two sections of one entry, the last is laid out (a run of them costs one write).
 */
function layDirectory(dir: string, b: Uint8Array): void {
  for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
  const plain = (n: string) => n !== '' && n !== '.' && n !== '..' && n.length < 200 && !/[/\0]/.test(n);
  // By the entry each names: a file written over a FIFO made before would wait for a reader.
  const sections = new Map<string, { kind: string; target: string; body: Buffer }>();
  for (const section of Buffer.from(b).toString('latin1').split(/^=== /m).slice(1)) {
    const nl = section.indexOf('\n');
    const [, kind = '', name = ''] = /^(?:(dir|fifo|link):)?(.*)$/s.exec(nl < 0 ? section : section.slice(0, nl))!;
    const [entry = '', target = ''] = kind === 'link' ? name.split('>') : [name];
    if (!plain(entry) || (kind === 'link' && !plain(target))) continue;
    sections.delete(entry); // kept in the order of the last
    sections.set(entry, { kind, target, body: Buffer.from(nl < 0 ? '' : section.slice(nl + 1), 'latin1') });
  }
  for (const [entry, { kind, target, body }] of sections) {
    try {
      if (kind === 'dir') mkdirSync(join(dir, entry));
      else if (kind === 'fifo') execFileSync('mkfifo', [join(dir, entry)]);
      else if (kind === 'link') symlinkSync(target, join(dir, entry));
      else writeFileSync(join(dir, entry), body);
    } catch {
      // A file where a directory is, a name taken by another kind: the rest of the input is laid out.
    }
  }
}

const LOG = 'audit.jsonl';

/** A directory written as layDirectory reads it. */
function directoryInput(files: [string, string][]): Uint8Array {
  return text(files.map(([name, body]) => `=== ${name}\n${body}`).join(''));
}

/**
 * Rotated logs as rotation and earlier key-servers leave them, from `lines` (a chain of at least
 * 11 lines): segments and the log, with FILE.end or without.
 */
export function rotatedSeeds(lines: string[]): Uint8Array[] {
  const hash = (seq: number) => (JSON.parse(lines[seq - 1]!) as { hash: string }).hash;
  const part = (from: number, to: number) => lines.slice(from - 1, to).map((l) => `${l}\n`).join('');
  const segment = (from: number, to: number): [string, string] => [segmentPath(LOG, from, to), part(from, to)];
  const end = (seq: number): [string, string] => [`${LOG}.end`, `${JSON.stringify({ seq, hash: hash(seq) })}\n`];
  return [
    // Rotated twice; FILE.end at the second rotation.
    directoryInput([segment(1, 3), segment(4, 6), [LOG, part(7, 11)], end(6)]),
    // FILE.end at seq 3, then an earlier key-server rotated twice more without writing it.
    directoryInput([segment(1, 3), segment(4, 6), segment(7, 9), [LOG, part(10, 11)], end(3)]),
    // Every line rotated: an empty log after its last rotation.
    directoryInput([segment(1, 5), segment(6, 11), [LOG, ''], end(11)]),
    // A rotation cut short after writing FILE.end, then served on and rotated by such a key-server.
    directoryInput([segment(1, 5), segment(6, 7), [LOG, part(8, 11)], end(3)]),
    // Rotated by a key-server that wrote no FILE.end.
    directoryInput([segment(1, 4), [LOG, part(5, 11)]]),
    // As the second, a segment kept elsewhere with a link in its place, and a directory beside.
    directoryInput([segment(1, 3), ['moved', part(4, 6)], [`link:${segmentPath(LOG, 4, 6)}>moved`, ''], segment(7, 9), ['dir:archive', ''], [LOG, part(10, 11)], end(3)]),
    // As the second, a FIFO where a segment between was, and where the newest was (refused, not waited on).
    directoryInput([segment(1, 3), [`fifo:${segmentPath(LOG, 4, 6)}`, ''], segment(7, 9), [LOG, part(10, 11)], end(3)]),
    directoryInput([segment(1, 3), segment(4, 6), [`fifo:${segmentPath(LOG, 7, 9)}`, ''], [LOG, part(10, 11)], end(3)]),
  ];
}

/** A line a key-server appends. */
const appended = { conn: 'fuzz', action: 'retrieve', resource: 'vhd/disk', version: 1, decision: 'allow' } as const;

/**
 * verify-audit over the segments and the log (as the shell's F.[0-9]* F gives them, from the
 * genesis and --continuing), then a key-server's start on the directory: open, one line appended
 * (rotating it), closed. A chain that does not verify must name its file.
 */
export function auditDirectoryTarget(dir: string, lines: string[]): Target {
  return {
    name: 'rotated audit log directory (verify-audit, AuditLog.open continuing it)', weight: 0.5, everyCut: false,
    seeds: rotatedSeeds(lines),
    run: async (b) => {
      layDirectory(dir, b);
      const log = join(dir, LOG);
      const segments = readdirSync(dir).filter((n) => n.startsWith(`${LOG}.`) && /^[0-9]/.test(n.slice(LOG.length + 1))).sort().map((n) => join(dir, n));
      for (const continuing of [false, true]) {
        const r = await verifyChain([...segments, log], { continuing });
        if (!r.ok && (!r.file || !r.problem)) throw new Error(`verify-audit refused the chain without naming a file and a problem: ${JSON.stringify(r)}`);
      }
      const opened = await AuditLog.open(log, { rotateBytes: 1 });
      try {
        await opened.append({ ...appended });
      } finally {
        await opened.close();
      }
    },
  };
}

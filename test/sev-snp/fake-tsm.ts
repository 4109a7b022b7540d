// A TEST-ONLY stand-in for /sys/kernel/config/tsm/report: an ordinary directory that this process
// watches. When a client makes an entry, it lays out the attributes the kernel shows with one
// (privlevel_floor when told, then provider); once the client writes 64 bytes to its inblob, it
// answers as the kernel would, with auxblob (the host's certificate table) and outblob (a report
// by the test signer over those bytes, at the VMPL written to privlevel, 0 if none). It runs in
// the test process, never in the product.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ReportFields, TestSnpSigner } from './signer.ts';

export interface FakeTsmOptions {
  measurement: Uint8Array;
  /** Attach the certificate table (VCEK, ASK, ARK) as auxblob; true by default. */
  auxblob?: boolean;
  provider?: string;
  /**
   * The VMPL the guest's kernel runs at (as under an SVSM), shown in privlevel_floor: a report
   * asked for below it is refused, as the firmware refuses one (reading outblob fails). No
   * privlevel_floor file, and 0, when not given.
   */
  privlevelFloor?: number;
  /** Leave privlevel_floor out though the floor holds (a kernel that does not say it). */
  hideFloor?: boolean;
  /** privlevel cannot be written (a kernel that will not take the value). */
  refusePrivlevel?: boolean;
  /** provider cannot be read (EISDIR here; EIO or EACCES on a machine). */
  unreadableProvider?: boolean;
  /** inblob cannot be written (EISDIR here; EINVAL or EBUSY from a kernel). */
  unwritableInblob?: boolean;
  /** Further report fields (policy, TCB, ...); a `vmpl` here overrides the one asked for. */
  fields?: Omit<ReportFields, 'reportData' | 'measurement'>;
}

export interface FakeTsm {
  /** How many reports it has produced. */
  served(): number;
  /** How many it refused (asked for below the floor). */
  refused(): number;
  /** The privlevel each entry was given, in order ('' for none). */
  privlevels(): string[];
  stop(): void;
}

export function serveFakeTsm(dir: string, signer: TestSnpSigner, o: FakeTsmOptions): FakeTsm {
  const opened = new Set<string>();
  const done = new Set<string>();
  let refused = 0;
  const privlevels: string[] = [];
  const floor = o.privlevelFloor ?? 0;
  // The attributes appear with the entry; provider comes last, whole, so a client that sees it sees the rest.
  const open = (entry: string) => {
    if (o.privlevelFloor !== undefined && !o.hideFloor) writeFileSync(join(entry, 'privlevel_floor'), `${o.privlevelFloor}\n`);
    if (o.refusePrivlevel) mkdirSync(join(entry, 'privlevel')); // a write to it fails (EISDIR)
    if (o.unwritableInblob) mkdirSync(join(entry, 'inblob'));
    if (o.unreadableProvider) mkdirSync(join(entry, 'provider'));
    else {
      writeFileSync(join(entry, '.provider'), `${o.provider ?? 'sev_guest'}\n`);
      renameSync(join(entry, '.provider'), join(entry, 'provider'));
    }
    opened.add(entry);
  };
  const answer = (entry: string) => {
    const inblob = join(entry, 'inblob');
    if (!existsSync(inblob)) return;
    if (!statSync(inblob).isFile()) return;
    const data = readFileSync(inblob);
    if (data.length !== 64) return; // not written yet, or being written
    const level = join(entry, 'privlevel');
    const written = existsSync(level) && statSync(level).isFile() ? readFileSync(level, 'utf8').trim() : '';
    privlevels.push(written);
    const asked = written === '' ? 0 : Number(written);
    done.add(entry);
    if (asked < floor) {
      // The kernel fails the read (EINVAL); an outblob that is a directory fails it too (EISDIR).
      mkdirSync(join(entry, 'outblob'));
      refused++;
      return;
    }
    if (o.auxblob !== false) writeFileSync(join(entry, 'auxblob'), signer.certTable());
    // The report appears whole: written aside, then renamed into place.
    writeFileSync(join(entry, '.outblob'), signer.report({ vmpl: asked, ...o.fields, reportData: new Uint8Array(data), measurement: o.measurement }));
    renameSync(join(entry, '.outblob'), join(entry, 'outblob'));
  };
  const timer = setInterval(() => {
    for (const name of readdirSync(dir)) {
      const entry = join(dir, name);
      try {
        if (done.has(entry) || !statSync(entry).isDirectory()) continue;
        if (!opened.has(entry)) open(entry);
        answer(entry);
      } catch {
        // the client removed the entry meanwhile
      }
    }
  }, 5);
  return { served: () => done.size - refused, refused: () => refused, privlevels: () => [...privlevels], stop: () => clearInterval(timer) };
}

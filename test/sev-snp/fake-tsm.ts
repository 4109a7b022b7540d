// A TEST-ONLY stand-in for /sys/kernel/config/tsm/report: an ordinary directory that this process
// watches; when a client makes an entry and writes 64 bytes to its inblob, it answers as the
// kernel would, with provider, auxblob (the host's certificate table) and outblob (a report by
// the test signer over those bytes). It runs in the test process, never in the product.

import { existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ReportFields, TestSnpSigner } from './signer.ts';

export interface FakeTsmOptions {
  measurement: Uint8Array;
  /** Attach the certificate table (VCEK, ASK, ARK) as auxblob; true by default. */
  auxblob?: boolean;
  provider?: string;
  /** Further report fields (policy, vmpl, TCB, ...). */
  fields?: Omit<ReportFields, 'reportData' | 'measurement'>;
}

export interface FakeTsm {
  /** How many reports it has produced. */
  served(): number;
  stop(): void;
}

export function serveFakeTsm(dir: string, signer: TestSnpSigner, o: FakeTsmOptions): FakeTsm {
  const done = new Set<string>();
  const answer = (entry: string) => {
    const inblob = join(entry, 'inblob');
    if (!existsSync(inblob)) return;
    const data = readFileSync(inblob);
    if (data.length !== 64) return; // not written yet, or being written
    writeFileSync(join(entry, 'provider'), `${o.provider ?? 'sev_guest'}\n`);
    if (o.auxblob !== false) writeFileSync(join(entry, 'auxblob'), signer.certTable());
    // The report appears whole: written aside, then renamed into place.
    writeFileSync(join(entry, '.outblob'), signer.report({ ...o.fields, reportData: new Uint8Array(data), measurement: o.measurement }));
    renameSync(join(entry, '.outblob'), join(entry, 'outblob'));
    done.add(entry);
  };
  const timer = setInterval(() => {
    for (const name of readdirSync(dir)) {
      const entry = join(dir, name);
      try {
        if (!done.has(entry) && statSync(entry).isDirectory()) answer(entry);
      } catch {
        // the client removed the entry meanwhile
      }
    }
  }, 5);
  return { served: () => done.size, stop: () => clearInterval(timer) };
}

// Getting an SEV-SNP report from Linux's configfs-tsm interface (Linux 6.7 and later, with the
// sev-guest driver): make an entry under /sys/kernel/config/tsm/report, write the 64 bytes of
// report data to `inblob`, read the report from `outblob` and the host's certificates from
// `auxblob` (when the host provides them), then remove the entry. Because the interface is a
// directory of files, a test can point `dir` at an ordinary directory laid out the same way.

import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CertifierError } from '../../errors/index.ts';
import { randomBytes, toHex } from '../../crypto/index.ts';
import { REPORT_SIZE } from './report.ts';

export const DEFAULT_TSM_DIR = '/sys/kernel/config/tsm/report';
export const SEV_GUEST_PROVIDER = 'sev_guest';

export interface TsmOptions {
  /** The configfs-tsm report directory (default /sys/kernel/config/tsm/report). */
  dir?: string;
  /**
   * How long to wait for `outblob`. The kernel produces it on the first read, so on a real
   * machine the first attempt succeeds; a directory served by another process may need a moment.
   */
  waitMs?: number;
}

export interface TsmReport {
  report: Uint8Array;
  /** The host's certificate table, when it provided one. */
  auxblob?: Uint8Array;
}

const errno = (e: unknown) => (e as NodeJS.ErrnoException)?.code;
const exists = (p: string) => fs.stat(p).then(() => true, () => false);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What is missing, said so that someone on the machine can act on it. */
async function unavailable(dir: string): Promise<CertifierError> {
  const device = (await exists('/dev/sev-guest')) ? '/dev/sev-guest is present, so the guest driver is loaded' : '/dev/sev-guest is missing too: this is not an SEV-SNP guest, or the sev-guest driver is not loaded';
  const configfs = (await exists('/sys/kernel/config/tsm')) ? '' : '; /sys/kernel/config/tsm is missing (Linux 6.7+ with CONFIG_TSM_REPORTS, and configfs mounted: mount -t configfs none /sys/kernel/config)';
  return new CertifierError('UNSUPPORTED', `no configfs-tsm report interface at ${dir}: ${device}${configfs}`);
}

async function readOptional(path: string): Promise<Uint8Array | undefined> {
  try {
    const b = new Uint8Array(await fs.readFile(path));
    return b.length ? b : undefined;
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    throw new CertifierError('FILE_ERROR', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

async function readOutblob(path: string, waitMs: number): Promise<Uint8Array> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const b = await readOptional(path);
    if (b) return b;
    if (Date.now() >= deadline) throw new CertifierError('UNSUPPORTED', `${path} gave no report: is the directory a configfs-tsm report interface?`);
    await sleep(10);
  }
}

/** Removes the entry: rmdir on configfs (its attributes go with it), a recursive removal elsewhere. */
async function removeEntry(entry: string): Promise<void> {
  try {
    await fs.rmdir(entry);
  } catch (e) {
    if (errno(e) === 'ENOTEMPTY' || errno(e) === 'EEXIST') await fs.rm(entry, { recursive: true, force: true });
    else if (errno(e) !== 'ENOENT') throw new CertifierError('FILE_ERROR', `cannot remove ${entry}: ${(e as Error).message}`, { cause: e });
  }
}

/** Asks the platform for a report carrying `reportData` (exactly 64 bytes). */
export async function requestTsmReport(reportData: Uint8Array, o: TsmOptions = {}): Promise<TsmReport> {
  if (reportData.length !== 64) throw new RangeError('SEV-SNP report data is 64 bytes');
  const dir = o.dir ?? DEFAULT_TSM_DIR;
  if (!(await exists(dir))) throw await unavailable(dir);
  // A private entry per request: configfs-tsm serializes nothing between processes sharing one.
  const entry = join(dir, `certifier-${process.pid}-${toHex(randomBytes(6))}`);
  try {
    await fs.mkdir(entry);
  } catch (e) {
    const why = errno(e) === 'EACCES' || errno(e) === 'EPERM' ? 'permission denied (configfs-tsm needs root, or CAP_SYS_ADMIN)' : (e as Error).message;
    throw new CertifierError('FILE_ERROR', `cannot create a report entry in ${dir}: ${why}`, { cause: e });
  }
  try {
    await fs.writeFile(join(entry, 'inblob'), reportData);
    const report = await readOutblob(join(entry, 'outblob'), o.waitMs ?? 5_000);
    const provider = await readOptional(join(entry, 'provider'));
    const name = provider && Buffer.from(provider).toString('latin1').trim();
    if (name && name !== SEV_GUEST_PROVIDER) throw new CertifierError('UNSUPPORTED', `the configfs-tsm provider here is "${name}", not ${SEV_GUEST_PROVIDER}: this machine is not an SEV-SNP guest`);
    if (report.length !== REPORT_SIZE) throw new CertifierError('EVIDENCE_MALFORMED', `the report from ${entry} is ${report.length} bytes, not an SEV-SNP report (${REPORT_SIZE})`);
    const auxblob = await readOptional(join(entry, 'auxblob'));
    return auxblob ? { report, auxblob } : { report };
  } finally {
    await removeEntry(entry);
  }
}

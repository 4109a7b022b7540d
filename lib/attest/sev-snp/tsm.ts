// Getting an SEV-SNP report from Linux's configfs-tsm interface (Linux 6.7 and later, with the
// sev-guest driver): make an entry under /sys/kernel/config/tsm/report, write the 64 bytes of
// report data to `inblob`, read the report from `outblob` and the host's certificates from
// `auxblob` (when the host provides them), then remove the entry. A guest whose kernel runs above
// VMPL 0 (under an SVSM, Linux 6.11 on) says that VMPL in `privlevel_floor`, and the report is
// asked for at it (`privlevel`), since the firmware refuses one below it. Because the interface is
// a directory of files, a test can point `dir` at an ordinary directory laid out the same way.

import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { CertifierError } from '../../errors/index.ts';
import { randomBytes, toHex } from '../../crypto/index.ts';
import { REPORT_SIZE } from './report.ts';

export const DEFAULT_TSM_DIR = '/sys/kernel/config/tsm/report';
export const SEV_GUEST_PROVIDER = 'sev_guest';
/** The highest privlevel configfs-tsm takes (TSM_REPORT_PRIVLEVEL_MAX): SEV-SNP's VMPLs run from 0 to 3. */
const MAX_PRIVLEVEL = 3;

export interface TsmOptions {
  /** The configfs-tsm report directory (default /sys/kernel/config/tsm/report). */
  dir?: string;
  /**
   * How long to wait for an entry's `provider` and `outblob`. The kernel shows the attributes
   * with the entry and produces the report on the first read, so on a real machine the first
   * attempt succeeds; a directory served by another process may need a moment.
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

/** The file's bytes; undefined if it is missing or empty (not there yet, or nothing to say). */
async function readIfThere(path: string): Promise<Uint8Array | undefined> {
  try {
    const b = new Uint8Array(await fs.readFile(path));
    return b.length ? b : undefined;
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    throw e;
  }
}

/** A read of an attribute that failed other than by its absence. */
function readError(path: string, e: unknown): CertifierError {
  return new CertifierError('FILE_ERROR', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
}

async function readOptional(path: string): Promise<Uint8Array | undefined> {
  return readIfThere(path).catch((e: unknown) => {
    throw readError(path, e);
  });
}

/** The file's bytes once it is there, or undefined at the deadline. */
async function waitFor(path: string, deadline: number): Promise<Uint8Array | undefined> {
  for (;;) {
    const b = await readIfThere(path);
    if (b || Date.now() >= deadline) return b;
    await sleep(10);
  }
}

/** What a policy must say to admit a report of `vmpl`, for the errors of a guest above VMPL 0. */
const vmplClaim = (vmpl: number | string) => `a policy admits a report of VMPL ${vmpl} only with vmpl = ${vmpl} (make-policy --snp-vmpl ${vmpl}; the default is vmpl = 0)`;

/** The VMPL this guest's kernel runs at, as the entry's privlevel_floor says it; undefined where the kernel does not say. */
async function privlevelFloor(entry: string): Promise<number | undefined> {
  const path = join(entry, 'privlevel_floor');
  const b = await readOptional(path);
  if (!b) return undefined;
  const text = Buffer.from(b).toString('latin1').trim();
  if (!/^\d+$/.test(text) || Number(text) > MAX_PRIVLEVEL) throw new CertifierError('UNSUPPORTED', `${path} says "${text}", not a VMPL from 0 to ${MAX_PRIVLEVEL}`);
  return Number(text);
}

/** Asks for the report at `vmpl`: the kernel refuses a privlevel below its floor, or above 3. */
async function writePrivlevel(entry: string, vmpl: number): Promise<void> {
  const path = join(entry, 'privlevel');
  try {
    await fs.writeFile(path, `${vmpl}\n`);
  } catch (e) {
    throw new CertifierError('FILE_ERROR', `this guest's kernel runs at VMPL ${vmpl} (privlevel_floor), so its report must be asked for at VMPL ${vmpl}, but writing privlevel failed (${path}: ${(e as Error).message}); the report will say VMPL ${vmpl}, and ${vmplClaim(vmpl)}`, { cause: e });
  }
}

/**
 * Why reading `outblob` failed, for a report asked for at VMPL `asked` where privlevel_floor said
 * `floor`. The kernel fails the read with EINVAL when the firmware refuses the request, as it
 * refuses a report for a VMPL below the one the guest's kernel runs at.
 */
export function outblobError(path: string, e: unknown, asked: number, floor: number | undefined): CertifierError {
  const why = (e as Error).message;
  if (errno(e) !== 'EINVAL') return new CertifierError('FILE_ERROR', `cannot read ${path}: ${why} (asked for at VMPL ${asked})`, { cause: e });
  const said = floor === undefined ? 'this kernel does not say which (no privlevel_floor)' : `this kernel's privlevel_floor says ${floor}`;
  return new CertifierError('FILE_ERROR', `the platform refused a report at VMPL ${asked} (${path}: ${why}): a guest gets reports only at or above the VMPL its kernel runs at, and ${said}. Under an SVSM, run a kernel that says it (Linux 6.11 or later), whose VMPL N the report is then asked for at; ${vmplClaim('N')}`, { cause: e });
}

/** Removes the entry: rmdir on configfs (its attributes go with it), a recursive removal elsewhere. FILE_ERROR when it cannot. */
async function removeEntry(entry: string): Promise<void> {
  try {
    await fs.rmdir(entry);
  } catch (e) {
    if (errno(e) === 'ENOENT') return;
    try {
      if (errno(e) === 'ENOTEMPTY' || errno(e) === 'EEXIST') return await fs.rm(entry, { recursive: true, force: true });
    } catch (again) {
      e = again;
    }
    throw new CertifierError('FILE_ERROR', `cannot remove ${entry}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * The request's own error `e`, with `cleanup` (removing its entry failed too) added to its
 * message and, as text, to its details: what went wrong first is what the caller must hear.
 */
function withCleanupFailure(e: unknown, cleanup: unknown): unknown {
  if (!(e instanceof CertifierError)) return e; // a programming error stays as it is
  const said = cleanup instanceof Error ? cleanup.message : String(cleanup);
  const again = new CertifierError(e.code, `${e.message} (and then: ${said})`, { ...(e.cause === undefined ? {} : { cause: e.cause }), details: { ...e.details, cleanup: said } });
  again.stack = e.stack;
  return again;
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
  const deadline = Date.now() + (o.waitMs ?? 5_000);
  let result: TsmReport;
  try {
    result = await reportThrough(entry, reportData, deadline);
  } catch (e) {
    // The entry is removed whatever happened; a failure to remove it must not hide why the request failed.
    let cleanup: unknown;
    await removeEntry(entry).catch((failure: unknown) => {
      cleanup = failure;
    });
    throw cleanup === undefined ? e : withCleanupFailure(e, cleanup);
  }
  await removeEntry(entry);
  return result;
}

/** The exchange through an entry made for it, up to `deadline`: provider, privlevel, inblob, outblob, auxblob. */
async function reportThrough(entry: string, reportData: Uint8Array, deadline: number): Promise<TsmReport> {
  const providerPath = join(entry, 'provider');
  const provider = await waitFor(providerPath, deadline).catch((e: unknown) => {
    throw readError(providerPath, e);
  });
  if (!provider) throw new CertifierError('UNSUPPORTED', `${entry} shows no provider and gives no report (outblob): is the directory a configfs-tsm report interface?`);
  const name = Buffer.from(provider).toString('latin1').trim();
  if (name !== SEV_GUEST_PROVIDER) throw new CertifierError('UNSUPPORTED', `the configfs-tsm provider here is "${name}", not ${SEV_GUEST_PROVIDER}: this machine is not an SEV-SNP guest`);
  // Left unwritten at VMPL 0, the default, as on a kernel that does not say.
  const floor = await privlevelFloor(entry);
  const asked = floor ?? 0;
  if (asked > 0) await writePrivlevel(entry, asked);
  const inblob = join(entry, 'inblob');
  await fs.writeFile(inblob, reportData).catch((e: unknown) => {
    throw new CertifierError('FILE_ERROR', `cannot write ${inblob}: ${(e as Error).message}`, { cause: e });
  });
  const outblob = join(entry, 'outblob');
  const report = await waitFor(outblob, deadline).catch((e: unknown) => {
    throw outblobError(outblob, e, asked, floor);
  });
  if (!report) throw new CertifierError('UNSUPPORTED', `${outblob} gave no report: is the directory a configfs-tsm report interface?`);
  if (report.length !== REPORT_SIZE) throw new CertifierError('EVIDENCE_MALFORMED', `the report from ${entry} is ${report.length} bytes, not an SEV-SNP report (${REPORT_SIZE})`);
  const auxblob = await readOptional(join(entry, 'auxblob'));
  return auxblob ? { report, auxblob } : { report };
}

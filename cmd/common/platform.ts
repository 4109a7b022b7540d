// Loading this machine's platform from the flags: --platform, --platform-dir, --measurement-file;
// for SEV-SNP, --tsm-dir (configfs-tsm) and --vcek (the VCEK fetched ahead of time).

import type { Command } from 'commander';
import { stat } from 'node:fs/promises';
import { CertifierError } from '../../lib/errors/index.ts';
import { inDir, readFileLimited } from '../../lib/files/index.ts';
import { DEFAULT_TSM_DIR, SimulatedEnclave, SnpGuest, TEST_PLATFORM_WARNING, type Platform } from '../../lib/attest/index.ts';
import { readCertificateChain } from '../../lib/pki/index.ts';
import { shown } from '../../lib/wire/index.ts';
import { readMeasurementFile, readPrivateKeyFile } from './keys.ts';
import { warn } from './cli.ts';

export const PLATFORMS = ['simulated', 'sev-snp'] as const;

export interface PlatformOptions {
  /** One of PLATFORMS: platformName refuses any other as --platform is parsed; absent is simulated, its default. */
  platform?: (typeof PLATFORMS)[number];
  platformDir?: string;
  measurementFile?: string;
  tsmDir?: string;
  vcek?: string;
}

export function platformOptions(cmd: Command): Command {
  return cmd
    .option('--platform <name>', `this machine's platform: ${PLATFORMS.join(', ')}`, platformName, 'simulated')
    .option('--platform-dir <dir>', 'the platform files this machine holds (simulated: attest-key.pem, endorsement.bin)')
    .option('--measurement-file <file>', "this program's measurement (raw bytes or hex)")
    .option('--tsm-dir <dir>', `sev-snp: the configfs-tsm report directory (default ${DEFAULT_TSM_DIR})`)
    .option('--vcek <file>', 'sev-snp: the VCEK or VLEK (PEM/DER; a PEM file may add the ASK), when the host attaches none to reports');
}

/**
 * A --platform value, refused (USAGE) as it is parsed: a command that has no use for the platform
 * (a store opened with a key file, a key-server without --certifier) took any name without a word.
 */
function platformName(value: string): (typeof PLATFORMS)[number] {
  if (!(PLATFORMS as readonly string[]).includes(value)) throw new CertifierError('USAGE', `unknown --platform ${shown(value)}; choose ${PLATFORMS.join(', ')}`);
  return value as (typeof PLATFORMS)[number];
}

/** The same file (by device and inode), or files with the same bytes. */
async function sameFile(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a).catch(() => undefined), stat(b).catch(() => undefined)]);
  if (!sa || !sb) return false;
  if (sa.dev === sb.dev && sa.ino === sb.ino) return true;
  if (sa.size !== sb.size || sa.size > 4096) return false;
  const [ca, cb] = await Promise.all([readFileLimited(a, 4096), readFileLimited(b, 4096)]);
  return Buffer.compare(ca, cb) === 0;
}

/**
 * The platform flags that do not go together, refused before any file is read (USAGE): what
 * loadPlatform checks first, and init-trust --check-only answers (first-boot.sh asks it).
 * `sealed`: the store is to be sealed to the platform, which SEV-SNP cannot do yet.
 */
export function checkPlatformFlags(o: PlatformOptions & { sealed?: boolean }): void {
  if (o.platform === 'sev-snp') {
    if (o.platformDir !== undefined || o.measurementFile !== undefined) throw new CertifierError('USAGE', '--platform sev-snp takes no --platform-dir or --measurement-file: the hardware reports the measurement');
    if (o.sealed) throw new CertifierError('USAGE', '--platform sev-snp cannot seal the store yet: give --key-file or --passphrase-file');
    return;
  }
  if (o.tsmDir !== undefined || o.vcek !== undefined) throw new CertifierError('USAGE', '--tsm-dir and --vcek are for --platform sev-snp');
  if (!o.platformDir || !o.measurementFile) throw new CertifierError('USAGE', '--platform simulated needs --platform-dir and --measurement-file');
}

async function loadSnp(o: PlatformOptions): Promise<Platform> {
  const certs = o.vcek ? readCertificateChain(await readFileLimited(o.vcek, 256 * 1024)) : undefined;
  return SnpGuest.open({ ...(o.tsmDir ? { tsm: { dir: o.tsmDir } } : {}), ...(certs ? { certs } : {}) });
}

export async function loadPlatform(program: string, o: PlatformOptions & { keyFile?: string; passphraseFile?: string; sealed?: boolean }): Promise<Platform> {
  checkPlatformFlags(o);
  if (o.platform === 'sev-snp') return loadSnp(o);
  // A measurement goes out in the evidence and into the server's log: a key file of 32 bytes,
  // named here by mistake, would be read as one and sent. Refuse the same file in both roles.
  for (const [flag, secret] of [['--key-file', o.keyFile], ['--passphrase-file', o.passphraseFile]] as const) {
    if (o.measurementFile && secret && await sameFile(o.measurementFile, secret)) {
      throw new CertifierError('USAGE', `--measurement-file names the same file as ${flag}: a secret is not a measurement`);
    }
  }
  const platformDir = o.platformDir!;
  // In the directory as the kernel finds it, where generate-platform-keys wrote them (inDir).
  // The attestation key opens every store sealed on this platform (its measurement is no secret)
  // and signs this machine's evidence: read as any private key file is, warned of if shared.
  const [attestKey, endorsement, measurement] = await Promise.all([
    readPrivateKeyFile(inDir(platformDir, 'attest-key.pem'), 'the attestation key'),
    readFileLimited(inDir(platformDir, 'endorsement.bin'), 64 * 1024),
    readMeasurementFile(o.measurementFile!),
  ]);
  warn(program, TEST_PLATFORM_WARNING);
  return SimulatedEnclave.fromKey(attestKey, endorsement, measurement);
}

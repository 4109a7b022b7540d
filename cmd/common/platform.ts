// Loading this machine's platform from the flags: --platform, --platform-dir, --measurement-file.

import type { Command } from 'commander';
import { join } from 'node:path';
import { CertifierError } from '../../lib/errors/index.ts';
import { readFileLimited } from '../../lib/files/index.ts';
import { SimulatedEnclave, TEST_PLATFORM_WARNING, type Platform } from '../../lib/attest/index.ts';
import { readMeasurementFile } from './keys.ts';
import { warn } from './cli.ts';

export const PLATFORMS = ['simulated'] as const;

export interface PlatformOptions {
  platform?: string;
  platformDir?: string;
  measurementFile?: string;
}

export function platformOptions(cmd: Command): Command {
  return cmd
    .option('--platform <name>', `this machine's platform: ${PLATFORMS.join(', ')}`, 'simulated')
    .option('--platform-dir <dir>', 'the platform files this machine holds (simulated: attest-key.pem, endorsement.bin)')
    .option('--measurement-file <file>', "this program's measurement (raw bytes or hex)");
}

export async function loadPlatform(program: string, o: PlatformOptions): Promise<Platform> {
  if (o.platform !== 'simulated') throw new CertifierError('USAGE', `unknown --platform "${o.platform}"; choose ${PLATFORMS.join(', ')}`);
  if (!o.platformDir || !o.measurementFile) throw new CertifierError('USAGE', '--platform simulated needs --platform-dir and --measurement-file');
  const [attestKey, endorsement, measurement] = await Promise.all([
    readFileLimited(join(o.platformDir, 'attest-key.pem'), 64 * 1024),
    readFileLimited(join(o.platformDir, 'endorsement.bin'), 64 * 1024),
    readMeasurementFile(o.measurementFile),
  ]);
  warn(program, TEST_PLATFORM_WARNING);
  return SimulatedEnclave.fromFiles(attestKey, endorsement, measurement);
}

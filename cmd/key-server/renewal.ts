// `key-server serve --certifier HOST:PORT`: the server certifies itself again through simpleserver,
// as init-trust does (same store, platform and measurement), at start when its certificate is
// missing, expired or in its last days, and then while it serves (lib/keyservice/renewal.ts).

import type { Cryptstore } from '../../cryptstore/index.ts';
import type { Platform } from '../../lib/attest/index.ts';
import { CertifierError } from '../../lib/errors/index.ts';
import { initTrust, loadIdentity, type MachineIdentity } from '../../lib/certifier/index.ts';
import { warn } from '../common/cli.ts';

export interface Certifier {
  host: string;
  port: number;
  domain: string;
  policyCert: Uint8Array;
  platform: Platform;
}

/** Certifies now if due (a failure is a warning: the stored certificate may still serve); returns the renewal to run. */
export async function prepareRenewal(program: string, store: Cryptstore, c: Certifier, log: (r: object) => void): Promise<{ recertify: () => Promise<MachineIdentity>; justFailed: boolean }> {
  const certify = (force: boolean) => initTrust({ store, domain: c.domain, policyCert: c.policyCert, platform: c.platform, host: c.host, port: c.port, force });
  let justFailed = false;
  const failed = (e: unknown) => {
    const code = e instanceof CertifierError ? e.code : 'INTERNAL';
    warn(program, `could not certify through ${c.host}:${c.port} at start (${e instanceof Error ? e.message : String(e)} [${code}]); serving with the certificate in the store, and trying again later`);
    justFailed = true;
  };
  try {
    const r = await certify(false);
    if (r.renewalFailed) failed(r.renewalFailed);
    else if (r.status === 'certified') log({ event: 'identity-renewed', serial: r.peer.serialHex, notAfter: r.peer.notAfter.toISOString() });
  } catch (e) {
    failed(e);
  }
  return {
    justFailed,
    recertify: async () => {
      await certify(true);
      return loadIdentity(store, c.domain, c.policyCert);
    },
  };
}

// `key-server serve --certifier HOST:PORT`: the server certifies itself again through simpleserver,
// as init-trust does (same store, platform and measurement), at start when its certificate is
// missing, expired or in its last days (unless it ends with the policy certificate, which no
// renewal extends), and then while it serves (lib/keyservice/renewal.ts).

import type { Cryptstore, Protector } from '../../cryptstore/index.ts';
import type { Platform } from '../../lib/attest/index.ts';
import { CertifierError, errorFields, isCertifierError } from '../../lib/errors/index.ts';
import { admissionCertTag, endsWithPolicyCert, initTrust, loadIdentity, noRenewalPast, type MachineIdentity } from '../../lib/certifier/index.ts';
import { hostPort, type Waits } from '../../lib/channel/index.ts';
import { warn } from '../common/cli.ts';
import { openToCertify } from '../common/new-store.ts';

export interface Certifier {
  host: string;
  port: number;
  domain: string;
  policyCert: Uint8Array;
  /** The policy certificate's end, from its validation at start. */
  policyCertEnds: Date;
  platform: Platform;
  /** How long each attempt waits for simpleserver at each step (--timeout). */
  waits: Waits;
}

export interface Renewal {
  recertify: (signal: AbortSignal) => Promise<MachineIdentity>;
  justFailed: boolean;
}

/**
 * Opens the store (made if there is none, as init-trust makes it) and certifies now if due. When
 * that fails with no certificate to serve with, or a stop signal comes first, a store this start
 * made goes, as init-trust's does. (SIGHUP is not watched: to a server it means reload, and one
 * that comes while it starts is kept for then.)
 */
export async function openCertified(program: string, dir: string, protector: Protector, c: Certifier, log: (r: object) => void): Promise<{ store: Cryptstore; renewal: Renewal }> {
  const { store, keep, close } = await openToCertify(program, dir, protector, ['SIGINT', 'SIGTERM']);
  try {
    const renewal = await prepareRenewal(program, store, c, log);
    keep();
    return { store, renewal };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Certifies now if due; returns the renewal to run. A failure is a warning while the stored
 * certificate can serve, else the error, with its cause's code (UNREACHABLE: worth a retry).
 */
async function prepareRenewal(program: string, store: Cryptstore, c: Certifier, log: (r: object) => void): Promise<Renewal> {
  const certify = (force: boolean, signal?: AbortSignal) => initTrust({ store, domain: c.domain, policyCert: c.policyCert, platform: c.platform, host: c.host, port: c.port, force, waits: c.waits, ...(signal ? { signal } : {}) });
  const where = hostPort(c.host, c.port);
  const { policyCertEnds } = c;
  let justFailed = false;
  const serveOn = (e: unknown, until: Date) => {
    // One that ends with the policy certificate is not tried again (renewIdentity): nothing would extend it.
    const next = endsWithPolicyCert(until, policyCertEnds) ? `; ${noRenewalPast(policyCertEnds)}` : ', and trying again later';
    warn(program, `could not certify through ${where} at start (${describe(e)}); serving with the certificate in the store, valid until ${until.toISOString()}${next}`);
    justFailed = true;
  };
  // A store with no certificate yet (made at this start) is certified, not renewed: its log says so.
  const first = !(await store.has(admissionCertTag(c.domain)));
  try {
    const r = await certify(false);
    if (r.renewalFailed) serveOn(r.renewalFailed, r.peer.notAfter);
    else if (r.endsWithPolicyCert) warn(program, `its certificate, valid until ${r.peer.notAfter.toISOString()}, is due for renewal, but ${noRenewalPast(r.endsWithPolicyCert)}`);
    // why: a certificate replaced at start for another reason than its end (the policy key replaced).
    else if (r.status === 'certified') log({ event: first ? 'identity-certified' : 'identity-renewed', serial: r.peer.serialHex, notAfter: r.peer.notAfter.toISOString(), ...(r.why ? { why: r.why } : {}) });
  } catch (e) {
    // init-trust falls back itself only on a certificate of this measurement that is due but valid
    // (renewalFailed, above); one it would not keep (of another measurement) still serves a
    // key-server, so it is looked for here. None, or an expired one, does not serve.
    const stored = await loadIdentity(store, c.domain, c.policyCert).catch((why: unknown) => {
      if (!(e instanceof CertifierError)) throw e;
      const none = isCertifierError(why, 'NOT_FOUND') ? 'this server has no certificate yet' : `the one in its store cannot serve (${describe(why)})`;
      throw new CertifierError(e.code, `could not certify through ${where} at start, and ${none}: ${e.message}`, { cause: e, details: e.details });
    });
    serveOn(e, stored.peer.notAfter);
  }
  return {
    justFailed,
    recertify: async (signal) => {
      await certify(true, signal);
      return loadIdentity(store, c.domain, c.policyCert);
    },
  };
}

/** `e` for a warning: the message of one of ours, the class of any other (errorFields), and its code. */
const describe = (e: unknown) => {
  const { code, reason } = errorFields(e);
  return `${reason} [${code}]`;
};

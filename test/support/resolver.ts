// A resolver of a test's own, for programs run in new user and mount namespaces (unshare -r -m):
// names looked up only as the test says, never through this machine's cache or local resolver
// service (nscd, systemd-resolved through nss-resolve), which would answer from its own network.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Bash lines putting in place the files resolverFiles wrote (as $NSSWITCH and $RESOLV say). */
export const OWN_RESOLVER = `
mount --bind "$NSSWITCH" /etc/nsswitch.conf
mount --bind "$RESOLV" /etc/resolv.conf
if [ -d /run/nscd ]; then mount -t tmpfs none /run/nscd; fi
`;

/**
 * Writes, in `dir`, an nsswitch.conf whose hosts line is `hosts` and a resolv.conf of `resolv`;
 * returns the environment naming them for OWN_RESOLVER.
 */
export function resolverFiles(dir: string, hosts: string, resolv: string): { NSSWITCH: string; RESOLV: string } {
  const files = { NSSWITCH: join(dir, 'nsswitch.conf'), RESOLV: join(dir, 'resolv.conf') };
  writeFileSync(files.NSSWITCH, `hosts: ${hosts}\n`);
  writeFileSync(files.RESOLV, resolv);
  return files;
}

// A domain member as the key service sees it, for tests that call KeyService directly: an ACL
// letting its measurement do everything, and its connections (no TLS underneath).

import type { ValidatedPeer } from '../../lib/pki/index.ts';
import { parseAcl, type Acl } from '../../lib/keyservice/acl.ts';
import type { Connection } from '../../lib/keyservice/handlers.ts';

export function member(measurementHex: string, serialHex: string): { acl: Acl; conn: (id: string) => Connection } {
  const acl = parseAcl(JSON.stringify({ version: 1, rules: [{ resources: ['**'], actions: ['store', 'retrieve', 'delete', 'list'], measurements: [measurementHex] }] }));
  const end = new Date(Date.now() + 3_600_000);
  const peer = { measurementHex, serialHex, notAfter: end, validUntil: end } as ValidatedPeer;
  return { acl, conn: (id) => ({ id, remote: '127.0.0.1:1', peer, exportKeyingMaterial: () => undefined }) };
}

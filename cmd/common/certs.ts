// Rendering a parsed certificate for people and for --json.

import { toHex } from '../../lib/crypto/index.ts';
import type { ParsedCert } from '../../lib/pki/index.ts';

export function describeCert(c: ParsedCert): { json: Record<string, unknown>; text: string[] } {
  const json: Record<string, unknown> = {
    subject: c.subject, issuer: c.issuer, serial: c.serialHex, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(),
    isCA: c.isCA, keyUsage: c.keyUsage, extKeyUsage: c.extKeyUsage, fingerprintSha256: c.fingerprintSha256Hex,
    ...(c.admission ? { admission: { measurement: toHex(c.admission.measurement), platform: c.admission.platform, domain: c.admission.domain } } : {}),
  };
  const text = [
    `subject      ${c.subject}`, `issuer       ${c.issuer}`, `serial       ${c.serialHex}`,
    `valid        ${c.notBefore.toISOString()} .. ${c.notAfter.toISOString()}`, `CA           ${c.isCA}`,
    `key usage    ${c.keyUsage.join(', ') || '-'}`, `ext. usage   ${c.extKeyUsage.join(', ') || '-'}`,
    ...(c.admission ? [`measurement  ${toHex(c.admission.measurement)}`, `platform     ${c.admission.platform}`, `domain       ${c.admission.domain}`] : []),
    `sha256       ${c.fingerprintSha256Hex}`,
  ];
  return { json, text };
}

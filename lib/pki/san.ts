// Subject alternative names of an admission certificate: the certifier:// URI plus optional DNS
// names and IP addresses (for TLS clients that check them), validated before they are encoded.

import { isIP } from 'node:net';
import { CertifierError } from '../errors/index.ts';
import { ia5Bytes, implicitPrimitive, seq } from './der.ts';

export interface AltNames {
  uris: string[];
  dnsNames: string[];
  ipAddresses: string[];
}

const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DNS_RE = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

const invalid = (message: string) => new CertifierError('INVALID_INPUT', message);

/** Wildcards are refused: an admission certificate names one machine. */
export function checkDnsName(name: string): string {
  if (!DNS_RE.test(name)) throw invalid(`"${name}" is not a DNS name (letters, digits and hyphens in dot-separated labels)`);
  return name;
}

function ipv4Bytes(s: string): number[] {
  return s.split('.').map(Number);
}

function ipv6Bytes(s: string): number[] {
  let text = s;
  let tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    tail = ipv4Bytes(dotted[1]!);
    text = text.slice(0, -dotted[1]!.length) + '0:0'; // placeholder groups, replaced below
  }
  const [head, rest] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const groups = (g: string) => (g === '' ? [] : g.split(':'));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const fill = rest === undefined ? 0 : 8 - left.length - right.length;
  const all = [...left, ...Array<string>(fill).fill('0'), ...right];
  const bytes = all.flatMap((g) => {
    const v = parseInt(g, 16);
    return [v >> 8, v & 0xff];
  });
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** The 4 or 16 bytes of an iPAddress general name (RFC 5280, 4.2.1.6). */
export function ipAddressBytes(ip: string): Uint8Array {
  const kind = isIP(ip);
  if (kind === 4) return Uint8Array.from(ipv4Bytes(ip));
  if (kind === 6 && !ip.includes('%')) return Uint8Array.from(ipv6Bytes(ip));
  throw invalid(`"${ip}" is not an IPv4 or IPv6 address`);
}

/** GeneralNames in a fixed order: URIs, DNS names, IP addresses. */
export function encodeAltNames(names: AltNames): Uint8Array {
  return seq(
    ...names.uris.map((u) => implicitPrimitive(6, ia5Bytes(u))),
    ...names.dnsNames.map((d) => implicitPrimitive(2, ia5Bytes(checkDnsName(d)))),
    ...names.ipAddresses.map((ip) => implicitPrimitive(7, ipAddressBytes(ip))),
  );
}

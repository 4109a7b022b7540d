// PEM (RFC 7468) for certificates: writing, and reading one certificate or a chain from PEM or DER.
// Reading checks only the framing (one DER element per certificate); parseCertificate does the rest.

import { CertifierError } from '../errors/index.ts';
import { bytesEqual, looksLikePem } from '../crypto/index.ts';
import { MAX_CERTIFICATE_BYTES } from './parse.ts';
import { badCertificate } from './problems.ts';
import { children, DerError, readOne, TAG } from './der.ts';

const BEGIN_RE = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n/g;
/** An END line's label; the dashes after it are looked at, not taken, so an END right after another's is found. */
const END_RE = /-----END ([A-Z0-9 ]+)(?=-----)/g;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * RFC 7468 text: base64 in lines of 64 characters. Sliced, not split with a regular expression,
 * which cost tens of microseconds per certificate: key-client writes its own certificate and the
 * policy certificate as PEM for every connection it opens.
 */
export function toPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

function decodeBase64Strict(body: string, label: string): Uint8Array {
  const compact = body.replace(/[ \t\r\n]/g, '');
  if (!BASE64_RE.test(compact) || compact.length % 4 !== 0) {
    throw new CertifierError('INVALID_INPUT', `the PEM ${label} block is not valid base64`);
  }
  return new Uint8Array(Buffer.from(compact, 'base64'));
}

/** Every PEM block with the given label, decoded; blocks with other labels are ignored. */
export function pemBlocks(text: string, label = 'CERTIFICATE'): Uint8Array[] {
  // A block runs from a BEGIN line to the first END line of its label after it; the text after a
  // block is read on from its end. Every END line is found first, in one pass: a regular
  // expression looking for each BEGIN's END took time growing with the square of the text (1 MiB
  // of BEGIN lines, a CRL file's limit: 20 s), since it looked to the end for each of them.
  const ends = new Map<string, { at: number[]; next: number }>();
  for (const m of text.matchAll(END_RE)) {
    const e = ends.get(m[1]!) ?? { at: [], next: 0 };
    e.at.push(m.index);
    ends.set(m[1]!, e);
  }
  const out: Uint8Array[] = [];
  let from = 0;
  for (const m of text.matchAll(BEGIN_RE)) {
    if (m.index < from) continue; // inside the block just read
    const e = ends.get(m[1]!);
    if (!e) continue;
    const body = m.index + m[0].length;
    while (e.next < e.at.length && e.at[e.next]! < body) e.next++;
    if (e.next === e.at.length) continue;
    const end = e.at[e.next]!;
    if (m[1] === label) out.push(decodeBase64Strict(text.slice(body, end), label));
    from = end + `-----END ${m[1]}-----`.length;
  }
  return out;
}

function checkFraming(der: Uint8Array): Uint8Array {
  if (der.length > MAX_CERTIFICATE_BYTES) throw badCertificate('too-large', `a certificate of ${der.length} bytes is larger than ${MAX_CERTIFICATE_BYTES}`);
  try {
    if (der[0] !== TAG.SEQUENCE) throw new DerError('it does not start with a DER SEQUENCE');
    readOne(der);
  } catch (cause) {
    const reason = cause instanceof DerError && cause.trailing ? 'trailing-bytes' : 'malformed';
    throw badCertificate(reason, `not a DER certificate: ${(cause as Error).message}`, cause);
  }
  return der;
}

/** Certificates from PEM (one or more CERTIFICATE blocks) or from one DER certificate. */
export function readCertificateChain(bytes: Uint8Array): Uint8Array[] {
  // DER starts with a SEQUENCE tag, which no PEM text does.
  if (bytes[0] === TAG.SEQUENCE || !looksLikePem(bytes)) return [checkFraming(bytes)];
  const ders = pemBlocks(Buffer.from(bytes).toString('latin1'));
  if (ders.length === 0) throw new CertifierError('INVALID_INPUT', 'the PEM text holds no CERTIFICATE block');
  return ders.map(checkFraming);
}

/** Exactly one certificate, from PEM or DER; returns its DER. */
export function readCertificate(bytes: Uint8Array): Uint8Array {
  const all = readCertificateChain(bytes);
  if (all.length !== 1) throw new CertifierError('INVALID_INPUT', `expected one certificate, found ${all.length}`);
  return all[0]!;
}

/**
 * What an item of `type` holds for `bytes`: an X509-der-cert item one certificate as DER (PEM
 * converted; anything else, a key or an empty SEQUENCE too, refused: BAD_CERTIFICATE, or
 * INVALID_INPUT for PEM text without exactly one certificate); any other type the bytes as they are.
 */
export function itemValue(type: string, bytes: Uint8Array): Uint8Array {
  if (type !== 'X509-der-cert') return bytes;
  const der = readCertificate(bytes);
  // The shape of a certificate too, not only one DER element (a PKCS#8 key is one): a signed part
  // of at least serial, algorithm, issuer, validity, subject and key, then an algorithm and a
  // signature. Nothing stricter: a certificate other tools make (a negative or 24-byte serial,
  // which our own parser refuses for admission) is still one to keep.
  let shaped = false;
  try {
    const [tbs, algorithm, signature, ...extra] = children(readOne(der));
    const fields = tbs?.tag === TAG.SEQUENCE ? children(tbs).filter((f) => f.tag !== CONTEXT_0) : [];
    // serial, then signature algorithm, issuer, validity, subject and key, each a SEQUENCE (a CRL,
    // whose signed part has times where a certificate has its validity, is not one).
    shaped = extra.length === 0 && algorithm?.tag === TAG.SEQUENCE && signature?.tag === TAG.BIT_STRING && fields.length >= 6
      && fields[0]!.tag === TAG.INTEGER && fields.slice(1, 6).every((f) => f.tag === TAG.SEQUENCE);
  } catch {
    // malformed inside: not shaped as a certificate either
  }
  if (!shaped) throw badCertificate('malformed', 'not a certificate: one DER element, but not shaped as a certificate (a key, say)');
  return der;
}

/** The [0] EXPLICIT version of a TBSCertificate. */
const CONTEXT_0 = 0xa0;

/**
 * Why `bytes` are not what an item of `type` holds as it is kept (itemValue: an X509-der-cert item
 * one certificate as DER, not PEM), in words, or undefined: for items that come from elsewhere (a
 * key-server, a bundle), which are kept as they are.
 */
export function itemProblem(type: string, bytes: Uint8Array): string | undefined {
  try {
    return bytesEqual(itemValue(type, bytes), bytes) ? undefined : 'it is PEM text, not DER';
  } catch (e) {
    return (e as Error).message;
  }
}

// Reading keys, certificates and measurements named on the command line.

import { createHash, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { CertifierError, isCertifierError } from '../../lib/errors/index.ts';
import { loadPolicy, type Policy } from '../../lib/policy/index.ts';
import { PLATFORM_CERT_ORGANIZATION } from '../../lib/attest/index.ts';
import { EXPLICIT_CURVE, fromHex, fromKeyMessage, importPrivateKey, importPublicKey, looksLikePem } from '../../lib/crypto/index.ts';
import { decode, type KeyMessage } from '../../lib/wire/index.ts';
import { domainOfPolicyOrganization, parseCertificate, readCertificate, validatePolicyCert, withPolicyDateFix, type ParsedCert } from '../../lib/pki/index.ts';
import { fileError, modeText, readFileLimited } from '../../lib/files/index.ts';
import { decimal, runningProgram, warn } from './cli.ts';

export const KEY_FILE_LIMIT = 64 * 1024;

/** A private key from PEM/DER PKCS#8, or from a Certifier key_message file; `what` names it in the warning of a file others can read. */
export async function readPrivateKeyFile(path: string, what = 'the private key'): Promise<KeyObject> {
  const bytes = await readFileLimited(path, KEY_FILE_LIMIT);
  // Warned of once it is known to hold a private key: a certificate given by mistake is no secret.
  const key = privateKeyFrom(bytes, path);
  await warnIfShared(path, what);
  return key;
}

function privateKeyFrom(bytes: Uint8Array, path: string): KeyObject {
  try {
    return importPrivateKey(bytes);
  } catch (first) {
    if (first instanceof CertifierError && first.code === 'UNSUPPORTED') throw new CertifierError('UNSUPPORTED', `${path}: ${first.message}`, { cause: first });
    if (looksLikePem(bytes)) {
      const publicOnly = /-----BEGIN (PUBLIC KEY|CERTIFICATE)-----/.test(Buffer.from(bytes).toString('latin1'));
      throw new CertifierError('INVALID_KEY', publicOnly ? `${path} holds a public key or certificate, not the private key` : `${path}: ${(first as Error).message}`, { cause: first });
    }
    try {
      const key = fromKeyMessage(decode<KeyMessage>('key_message', bytes));
      if (key.type === 'private') return key;
    } catch {
      // fall through to the first, clearer error
    }
    throw new CertifierError('INVALID_KEY', `${path} holds no private key (PEM or DER PKCS#8, or a Certifier key_message)`, { cause: first });
  }
}

/** A public key from PEM/DER SPKI, a certificate, or a key_message; never from a private key. */
export async function readPublicKeyFile(path: string): Promise<KeyObject> {
  return publicKeyFrom(await readFileLimited(path, KEY_FILE_LIMIT), path);
}

/** readPublicKeyFile on bytes already read from `path`. */
export function publicKeyFrom(bytes: Uint8Array, path: string): KeyObject {
  // Node would take the public half of a private key without a word: refuse, since a private key
  // where a public one will do is a key in the wrong place (a platform's, or a VM's).
  const privateKeyHere = () => new CertifierError('INVALID_KEY', `${path} holds a private key: give the certificate or public key instead, and keep the private key where it is used`);
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(Buffer.from(bytes).toString('latin1'))) throw privateKeyHere();
  const errors: unknown[] = [];
  for (const read of [
    () => importPublicKey(bytes),
    () => parseCertificate(readCertificate(bytes)).publicKey,
    () => fromKeyMessage(decode<KeyMessage>('key_message', bytes)),
  ]) {
    let key;
    try {
      key = read();
    } catch (e) {
      errors.push(e);
      continue;
    }
    // A key_message may hold the private half (get-item of an exportable key pair): the same mistake.
    if (key.type === 'private') throw privateKeyHere();
    return key;
  }
  // A key of a kind we do not take (Ed25519, P-521, RSA-3072), or one on a curve given by its
  // parameters (here, or in a certificate), says so, rather than "no key".
  const refused = errors.map(refusedKey).find((e) => e !== undefined);
  if (refused) throw new CertifierError(refused.code, `${path}: ${refused.message}`, { cause: refused });
  // The same mistake in DER (PKCS#8 or SEC1), which the PEM test above cannot see.
  if (isPrivateKey(bytes)) throw privateKeyHere();
  throw new CertifierError('INVALID_KEY', `${path} holds no public key, certificate or key_message`, { cause: errors[0] });
}

/** Whether `bytes` are a private key importPrivateKey takes (its key never leaves this function). */
function isPrivateKey(bytes: Uint8Array): boolean {
  try {
    importPrivateKey(bytes);
    return true;
  } catch {
    return false;
  }
}

/** `e`, or the key refusal a certificate's refusal wraps, when it refuses a key that was read (rather than finding none). */
function refusedKey(e: unknown): CertifierError | undefined {
  for (let c = e; c instanceof CertifierError; c = c.cause) {
    if (c.code === 'UNSUPPORTED' || (c.code === 'INVALID_KEY' && c.details?.reason === EXPLICIT_CURVE)) return c;
  }
  return undefined;
}

/** A certificate (PEM or DER) as DER; a PEM file holding a private key too is refused. */
export async function readCertificateFile(path: string): Promise<Uint8Array> {
  const bytes = await readFileLimited(path, KEY_FILE_LIMIT);
  // A combined PEM (certificate and key) handed out as the certificate would hand out the key.
  const text = looksLikePem(bytes) ? Buffer.from(bytes).toString('latin1') : '';
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text) && text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new CertifierError('INVALID_INPUT', `${path} holds a private key beside the certificate: a certificate file is handed out (the policy certificate goes into every VM image), its key never; give a file holding the certificate alone`);
  }
  try {
    return readCertificate(bytes);
  } catch (e) {
    // Which file: a key given where a certificate belongs is the usual mistake.
    if (e instanceof CertifierError) throw new CertifierError(e.code, `${path}: ${e.message}`, { cause: e, ...(e.details ? { details: e.details } : {}) });
    throw e;
  }
}

/** The domain a policy certificate (DER, or as parsed) names (O=<domain>/policyAuthority). */
export function policyDomain(policyCert: Uint8Array | ParsedCert): string {
  const c = policyCert instanceof Uint8Array ? parseCertificate(policyCert) : policyCert;
  for (const o of c.organizations) {
    const d = domainOfPolicyOrganization(o);
    if (d) return d;
  }
  throw new CertifierError('BAD_CERTIFICATE', 'the policy certificate names no domain (O=<domain>/policyAuthority)');
}

/**
 * validatePolicyCert at `at` by this machine's clock, a refusal for one not valid yet saying what
 * to do: on a VM booting before NTP, or a domain owner's machine whose clock went back, this
 * machine's clock is behind, and that is what to say.
 */
export function validPolicyCert(policyCert: Uint8Array, at = new Date()): ParsedCert {
  try {
    return validatePolicyCert(policyCert, at);
  } catch (e) {
    throw withPolicyDateFix(e);
  }
}

/**
 * Checks the policy certificate (read from `path`) is valid now and names `domain`: a mistyped
 * --domain, or another deployment's certificate, is a usage mistake found before anything is
 * opened, made or asked for (else a machine would be certified, and its identity kept, under a
 * domain its certificates do not name).
 */
export function requirePolicyDomain(policyCert: Uint8Array, domain: string, path: string, at = new Date()): ParsedCert {
  const parsed = validPolicyCert(policyCert, at);
  const named = policyDomain(parsed);
  if (named !== domain) throw new CertifierError('USAGE', `--domain ${domain} is not the domain of ${path} (${named})`);
  return parsed;
}

/** A measurement given as hex (64 or 96 digits); `flag`, when given, is named in the refusal. */
export function parseMeasurementHex(hex: string, flag?: string): Uint8Array {
  const h = hex.trim().toLowerCase();
  if (!/^([0-9a-f]{64}|[0-9a-f]{96})$/.test(h)) {
    // The measurement files are raw bytes, named like "measurements/vm-image.measurement": the hex they hold is wanted.
    const file = /\/|\.measurement$/.test(hex) ? `; a measurement file's name? give the measurement it holds, in hex: xxd -p -c 64 ${hex} (or the line cert-utility measure printed)` : '';
    throw new CertifierError('USAGE', `${flag ? `${flag} ` : ''}"${hex}" is not a measurement (64 or 96 hex digits)${file}`);
  }
  return fromHex(h);
}

/** A measurement file: the raw 32 or 48 bytes (as the original tools write them), or hex text. */
export async function readMeasurementFile(path: string): Promise<Uint8Array> {
  const bytes = await readFileLimited(path, 1024);
  const latin1 = Buffer.from(bytes).toString('latin1');
  // 32 or 48 bytes of hex digits (hex cut short, "0x" and digits) are no hash, whose bytes are all
  // such but by a chance below 1 in 10^33: taken raw, they would name another measurement.
  const hexText = /^[0-9a-fA-FxX\s]+$/.test(latin1);
  if ((bytes.length === 32 || bytes.length === 48) && !hexText) return bytes;
  const text = latin1.trim();
  if (/^([0-9a-fA-F]{64}|[0-9a-fA-F]{96})$/.test(text)) return fromHex(text.toLowerCase());
  const said = hexText ? `: ${hexTextHeld(text, path)}` : '';
  throw new CertifierError('INVALID_INPUT', `${path} is not a measurement (32 or 48 raw bytes, or their hex)${said}`);
}

/**
 * What a measurement file of hex text that is no measurement holds, in digits and lines (a
 * newline is no digit): `xxd -p` wraps a measurement's hex at 60 digits, which is the commonest
 * such file, and `xxd -r -p` turns it into the raw bytes.
 */
function hexTextHeld(text: string, path: string): string {
  const lines = text.split('\n').filter((l) => l.trim() !== '').length;
  const digits = text.replace(/\s/g, '');
  const onlyDigits = /^[0-9a-fA-F]+$/.test(digits);
  const held = `${digits.length} ${onlyDigits ? 'hex digits' : 'characters of hex text'}${lines > 1 ? ` over ${lines} lines` : digits.length < text.length ? ' with spaces between' : ''}`;
  const wanted = "a measurement's hex is 64 or 96 digits on one line (as cert-utility measure prints it)";
  if (!onlyDigits || (digits.length !== 64 && digits.length !== 96)) return `it holds ${held}, where ${wanted}`;
  return `it holds ${held}${lines > 1 ? ', as xxd -p writes them' : ''}, where ${wanted}: write the raw bytes with xxd -r -p ${path} > ${path}.raw and give that file`;
}

/** SHA-256 of a file, streamed: the simulated platform's measurement of a program. */
export async function measureFile(path: string): Promise<Uint8Array> {
  const h = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  } catch (cause) {
    throw fileError('read', path, cause);
  }
  return new Uint8Array(h.digest());
}

/**
 * A host name or IPv4 address (labels of letters, digits, "_" or "-", neither first nor last, one
 * dot between them, an optional dot at the end; at most 63 characters a label, 253 in all), or an
 * IPv6 address in brackets with an optional zone ("[fe80::1%eth0]"). Matched as ASCII: no locale
 * decides what a letter is.
 */
function validHost(host: string): boolean {
  const label = '[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?';
  // At most 63 characters a label and 253 in all (RFC 1035): no resolver finds a longer name
  // (getaddrinfo: not found, or EINVAL), which failed only on connecting, UNREACHABLE (retried).
  if (new RegExp(`^${label}(?:\\.${label})*\\.?$`).test(host)) return host.replace(/\.$/, '').length <= 253 && host.split('.').every((l) => l.length <= 63);
  const v6 = /^\[([^%\]]+)(?:%[A-Za-z0-9._-]+)?\]$/.exec(host);
  return v6 !== null && isIPv6(v6[1]!);
}

/**
 * A host the system's resolver would not take for what it looks like: a name of numbers that is no
 * dotted-quad IPv4 address. getaddrinfo reads one to four numbers with inet_aton ("010.0.0.5", a
 * leading 0 being octal, is 8.0.0.5; "127.1" is 127.0.0.1; "0x7f.0.0.1" hex), and looks any other
 * name ending in a number up in DNS, where no name can end so (RFC 3696: "10.0.0.256", a typo).
 */
function numericNotIPv4(host: string): boolean {
  if (host.startsWith('[') || isIPv4(host)) return false;
  const name = host.replace(/\.$/, '');
  return /^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$/i.test(name) || /(?:^|\.)[0-9]+\.?$/.test(host);
}

/**
 * "host:port" with a numeric port; port 0 (any free port) only for an address to listen on. A
 * bracket belongs only around an IPv6 address: "[]:8120" is no host (it made an empty one, which
 * listens on every interface and connects to localhost), and "[x:8120" no address. A host that
 * is no host name or IP address ("a..b", "[:]") is refused here, where it would fail only on
 * connecting.
 */
export function parseHostPort(value: string, flag: string, o: { listen?: boolean } = {}): { host: string; port: number } {
  // A port alone ("--listen 8120") was told of its port, which was fine.
  const portAlone = /^:?([0-9]+)$/.exec(value);
  if (portAlone) {
    const examples = o.listen ? `127.0.0.1:${portAlone[1]} for this machine alone, 0.0.0.0:${portAlone[1]} for every interface` : `the server's address: 10.0.0.5:${portAlone[1]}`;
    throw new CertifierError('USAGE', `${flag} must be HOST:PORT, a host before the port (${examples}), not "${value}"`);
  }
  // An IPv6 address given bare ("--host 2001:db8::5" made "2001:db8::5:8123") was told of its port.
  const bare = /^([^[\]]*:[^[\]]*):([0-9]+)$/.exec(value);
  if (bare && isIPv6(bare[1]!)) throw new CertifierError('USAGE', `${flag} must be HOST:PORT with an IPv6 address in brackets, the port after them ([${bare[1]}]:${bare[2]} if that is the address and the port), not "${value}"`);
  const m = /^(\[[^[\]]+\]|[^:[\]]+):([0-9]+)$/.exec(value);
  const port = m ? decimal(m[2]!) ?? NaN : NaN;
  if (!m || !(port <= 65535) || (port === 0 && !o.listen)) throw new CertifierError('USAGE', `${flag} must be HOST:PORT with a port from ${o.listen ? '0 (any free port)' : '1'} to 65535, not "${value}"`);
  if (numericNotIPv4(m[1]!)) throw new CertifierError('USAGE', `${flag} must be HOST:PORT with HOST a host name or an IP address (an IPv4 address is four numbers from 0 to 255 without leading zeros; a host name does not end in a number), not "${value}"`);
  if (!validHost(m[1]!)) throw new CertifierError('USAGE', `${flag} must be HOST:PORT with HOST a host name or an IP address (an IPv6 address in brackets: [2001:db8::5]), not "${value}"`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/**
 * Warns when a secret file (a private key, key file, passphrase) can be read or changed by every
 * user of the machine, or changed by its group: the secret is then not its owner's. Readable by
 * its group (0640, a service reading a file root owns) is a layout of its own, and not warned of.
 */
export async function warnIfShared(path: string, what: string): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (!st?.isFile() || (st.mode & 0o026) === 0) return;
  const who = st.mode & 0o004 ? 'can be read by every user of the machine' : st.mode & 0o002 ? 'can be changed by every user of the machine' : 'can be changed by its group';
  warn(runningProgram(), `${what} ${path} ${who} (mode ${modeText(st.mode)}): chmod 600 ${path} (or 640 for a group that reads it)`);
}

/** The most a signed policy file may hold: far more than any policy's claims. */
export const POLICY_FILE_LIMIT = 4 * 1024 * 1024;

/**
 * loadPolicy (of `policyFile`) with the key of `pc`, read from `file` as the policy certificate. A
 * policy signed by another key says what to do: for a policy certificate, another domain's or an
 * earlier key's, that the two files do not go together; for a platform's certificate, which is
 * self-signed and a CA as a policy certificate is and so passes for one, or any other naming no
 * domain, that the file is no policy certificate, and what it is.
 */
export function policySignedBy(bytes: Uint8Array, pc: ParsedCert, file: string, policyFile: string): Policy {
  try {
    return loadPolicy(bytes, pc.publicKey);
  } catch (e) {
    if (!isCertifierError(e, 'POLICY_INVALID') || e.details?.reason !== 'other-signer') throw e;
    const domain = pc.organizations.map(domainOfPolicyOrganization).find((d) => d !== undefined);
    const what = pc.organizations.includes(PLATFORM_CERT_ORGANIZATION) ? 'a platform\'s certificate' : 'a certificate naming no policy domain (O=<domain>/policyAuthority)';
    const fix = domain !== undefined
      ? `${policyFile} was made under another policy key than the one of ${file} (domain ${domain}): give the policy certificate of the key that made it, or make the policy again with make-policy --policy-key and --policy-cert of this domain`
      : `${file} is not a policy certificate but ${what} (${pc.subject}): give the policy certificate generate-policy-key wrote (its --cert-out)`;
    throw new CertifierError('POLICY_INVALID', `${e.message}: ${fix}`, { cause: e, details: e.details });
  }
}

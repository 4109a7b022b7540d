// One line of the key-server's audit chain: the entry's canonical JSON (keys in FIELDS order,
// absent fields omitted, and what would not show as itself written \uXXXX, as visibleJson does
// for every log) with "prev" and "hash" appended, where hash = hex SHA-256 of the UTF-8 bytes of
// prev followed by that JSON as written, and prev is the previous line's hash (64 zeros for line
// 1). Lines written before names were escaped (raw, hashed raw) verify too. checkLine judges a
// line read back against the chain so far. Pure: files are audit-read.ts's (reading, verifying)
// and audit.ts's (writing).

import { sha256HexOfText } from '../crypto/index.ts';
import { visibleJson } from '../wire/index.ts';

export interface AuditEntry {
  /** RFC 3339; default now. */
  time?: string;
  conn?: string;
  peerSerial?: string;
  measurement?: string;
  role?: string;
  /** The serial number of the role credential that verified (hex, as peerSerial): whose credential it was. */
  credentialSerial?: string;
  action: string;
  resource?: string;
  /** The version acted on; for a delete, the one asked for (0 = all); for a refusal, the one asked for. */
  version?: number;
  /** A delete's number of versions removed (with decision unknown: that it may have removed). */
  deleted?: number;
  /**
   * challenge: an auth-challenge nonce was issued, and nothing else done; unknown: a store or
   * delete whose write in the key database failed, which may or may not have been made.
   */
  decision: 'allow' | 'deny' | 'challenge' | 'unknown';
  /** The error code of a refusal. */
  code?: string;
}

export interface AuditRecord extends AuditEntry {
  seq: number;
  time: string;
  prev: string;
  hash: string;
}

const FIELDS = ['seq', 'time', 'conn', 'peerSerial', 'measurement', 'role', 'credentialSerial', 'action', 'resource', 'version', 'deleted', 'decision', 'code'] as const;
const OPTIONAL_TEXT = ['conn', 'peerSerial', 'measurement', 'role', 'credentialSerial', 'resource', 'code'] as const;
export const AUDIT_GENESIS = '0'.repeat(64);
const MAX_FIELD = 4096;
export const MAX_LINE_BYTES = 64 * 1024;
export const HASH_RE = /^[0-9a-f]{64}$/;

/** The canonical JSON of an entry's fields with its seq, every character raw (a line may write some \uXXXX: unescapeShown). */
function canonical(r: Record<string, unknown>): string {
  return JSON.stringify(canonicalFields(r));
}

/** The entry's known fields in FIELDS order, absent ones left out; seq and time when given replace the entry's. */
export function canonicalFields(r: Record<string, unknown>, seq?: number, time?: string): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const k of FIELDS) {
    const v = k === 'seq' && seq !== undefined ? seq : k === 'time' && time !== undefined ? time : r[k];
    if (v !== undefined) o[k] = v;
  }
  return o;
}

/** A text JSON writes as itself between quotes, which shows as itself too: printable ASCII but " and \\. */
const AS_IS = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * The JSON of canonicalFields' result as a line holds it (visibleJson's), written field by field
 * when every value is a number or such a text (what nearly every line is), a per-request
 * JSON.stringify and scan of the whole line spared; visibleJson's otherwise.
 */
export function canonicalJson(kept: Record<string, unknown>): string {
  let out = '';
  for (const k in kept) {
    const v = kept[k];
    if (typeof v === 'string' && AS_IS.test(v)) out += `,"${k}":"${v}"`;
    else if (typeof v === 'number' && Number.isFinite(v)) out += `,"${k}":${v}`;
    else return visibleJson(kept);
  }
  return `{${out.slice(1)}}`;
}

export function auditHash(prev: string, canonicalJson: string): string {
  return sha256HexOfText(prev, canonicalJson);
}

/**
 * `json` with the \uXXXX escapes of what JSON.stringify writes raw (U+007F and above; a pair of
 * surrogates as two escapes) decoded: the canonical JSON of a line written with visibleJson.
 * Other escapes (\\, \", a lone surrogate, a control) stay as JSON.stringify writes them.
 */
function unescapeShown(json: string): string {
  return json.replace(/\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\u([0-9a-f]{4})|\\./g, (m: string, hi?: string, lo?: string, u?: string) => {
    if (hi && lo) return String.fromCharCode(parseInt(hi, 16), parseInt(lo, 16));
    const c = u ? parseInt(u, 16) : -1;
    return c >= 0x7f && (c < 0xd800 || c > 0xdfff) ? String.fromCharCode(c) : m;
  });
}

export function lineOf(canon: string, prev: string, hash: string): string {
  return `${canon.slice(0, -1)},"prev":"${prev}","hash":"${hash}"}\n`;
}

/** Why an entry's fields are malformed (as written by us or read back), or undefined. */
export function fieldProblem(r: Record<string, unknown>): string | undefined {
  // Loops, not arrays of candidate problems: this runs for every record appended.
  const problem = textProblem(r, 'time', true) ?? textProblem(r, 'action', true);
  if (problem) return problem;
  for (const k of OPTIONAL_TEXT) {
    const p = textProblem(r, k, false);
    if (p) return p;
  }
  for (const k of COUNTS) {
    const v = r[k];
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= 0)) return `${k} is not a non-negative integer`;
  }
  return !['allow', 'deny', 'challenge', 'unknown'].includes(r.decision as string) ? 'decision is not "allow", "deny", "challenge" or "unknown"' : undefined;
}

const COUNTS = ['version', 'deleted'] as const;

function textProblem(r: Record<string, unknown>, k: string, required: boolean): string | undefined {
  const v = r[k];
  if (v === undefined) return required ? `${k} is missing` : undefined;
  if (typeof v !== 'string') return `${k} is not a string`;
  if (v.length > MAX_FIELD) return `${k} is longer than ${MAX_FIELD} characters`;
  if (required && v.length === 0) return `${k} is empty`;
  return undefined;
}

/** Checks one line against the chain so far; returns its hash, or the problem. */
export function checkLine(text: string, seq: number, prev: string): { hash: string } | { problem: string } {
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch {
    return { problem: 'not JSON' };
  }
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return { problem: 'not a JSON object' };
  const o = r as Record<string, unknown>;
  const unknown = Object.keys(o).find((k) => k !== 'prev' && k !== 'hash' && !(FIELDS as readonly string[]).includes(k));
  if (unknown !== undefined) return { problem: `unknown field "${unknown}"` };
  if (o.seq !== seq) return { problem: `seq is ${JSON.stringify(o.seq)}, expected ${seq} (a line was removed, reordered or inserted)` };
  if (typeof o.prev !== 'string' || !HASH_RE.test(o.prev) || typeof o.hash !== 'string' || !HASH_RE.test(o.hash)) return { problem: 'prev or hash is not 64 lowercase hex digits' };
  const fp = fieldProblem(o);
  if (fp) return { problem: fp };
  if (o.prev !== prev) return { problem: 'prev is not the hash of the line before (a line was removed, reordered or replaced)' };
  // The hash covers the entry as written: the canonical JSON, in which characters that would not
  // show as themselves are written \uXXXX (visibleJson), as lines written before were not.
  const suffix = `,"prev":"${prev}","hash":"${o.hash}"}`;
  const written = text.endsWith(suffix) ? `${text.slice(0, -suffix.length)}}` : undefined;
  const canon = canonical(o);
  const inForm = written !== undefined && unescapeShown(written) === canon;
  if (auditHash(prev, inForm ? written : canon) !== o.hash) return { problem: 'hash does not match the line\'s contents (edited)' };
  if (!inForm) return { problem: 'not in canonical form (edited)' };
  return { hash: o.hash };
}

/** The seq and prev a line claims, when it has them (checkLine judges the rest). */
export function startOf(text: string): { seq: number; prev: string } | undefined {
  try {
    const o = JSON.parse(text) as { seq?: unknown; prev?: unknown };
    return Number.isInteger(o.seq) && (o.seq as number) >= 1 && typeof o.prev === 'string' && HASH_RE.test(o.prev) ? { seq: o.seq as number, prev: o.prev } : undefined;
  } catch {
    return undefined;
  }
}

/** What is wrong with a first line's seq and prev that a segment's could not make right: seq 1 begins the chain. */
export function startProblem(start: { seq: number; prev: string } | undefined): string | undefined {
  return start?.seq === 1 && start.prev !== AUDIT_GENESIS ? 'seq 1 begins a chain, so its prev must be 64 zeros, but it names a line before it (prev edited)' : undefined;
}

// The key service messages: decode-then-validate for requests, builders for responses, and
// the bytes an auth-challenge signature covers. Field numbers are the original key server's,
// plus this suite's from 100 up (proto/keyservice.proto).

import { CertifierError, type ErrorCode } from '../errors/index.ts';
import { encodeFields } from '../crypto/index.ts';
import {
  decode, encode, encodeSecret, ENTRY_TYPES, FieldCheck, fieldCount, MAX_VERSION, newNameProblem, rawVarint, tagProblem, type CertChain, type EntryType,
  type KeyServiceRequest, type KeyServiceResponse,
} from '../wire/index.ts';

export const ACTIONS = ['store', 'retrieve', 'delete', 'list'] as const;
export type Action = (typeof ACTIONS)[number];

export const MAX_VALUE_BYTES = 1024 * 1024 - 4096; // one frame, less room for the envelope
export const MAX_CREDENTIAL_CERTS = 4;
/**
 * Names per list answer; a client refuses a page of more. A resource info is at most about 830
 * bytes (a 256-character name of 3-byte characters and its metadata), so a page of these stays
 * well inside one 1 MiB frame; a longer listing comes in pages, each answer naming where the next
 * one starts.
 */
export const LIST_PAGE = 1000;
/** The most deleted versions a delete's answer names (it always says how many there were). */
export const DELETE_LISTED = 10_000;
export const NONCE_BYTES = 32;
/** Nonces a key-server keeps outstanding per connection (the oldest goes first); a client keeps
 * at most this many challenged requests going on one connection. */
export const CHALLENGES_PER_CONNECTION = 16;
/** TLS exporter label for auth-challenge signatures (private use, RFC 5705, 4). */
export const CHALLENGE_EXPORTER_LABEL = 'EXPERIMENTAL-certifier-keys/auth-challenge/v1';

export interface KeyRequest {
  action: Action;
  /** The resource name; for list, the prefix ('' lists everything). */
  name: string;
  valueType: EntryType;
  version: number;
  data?: Uint8Array;
  credentials?: Uint8Array[];
  expectedVersion?: number;
  exportable: boolean;
  challengeNonce?: Uint8Array;
  challengeSignature?: Uint8Array;
  /** store: why the name could not be made new (kept only for a name that already has versions). */
  newNameProblem?: string;
  /** list: only names after this one (the page before ended there). */
  listAfter?: string;
}

export function parseKeyRequest(bytes: Uint8Array): KeyRequest {
  // Strict: a field this server does not know (a newer client's condition, say) is refused, not
  // skipped, so nothing is carried out on less than was asked.
  const m = decode<KeyServiceRequest>('key_service_message_request', bytes, { strict: true });
  const c = new FieldCheck('key_service_message_request');
  c.oneOf('request_type', m.requestType, ACTIONS);
  const action = m.requestType as Action;
  const name = m.resourceName ?? '';
  if (action !== 'list' || name !== '') {
    const p = tagProblem(name);
    if (p) c.add(`resource_name ${p}`);
  }
  if (m.valueType !== undefined) c.oneOf('value_type', m.valueType, ENTRY_TYPES);
  if (m.version !== undefined) c.int('version', m.version, 0, MAX_VERSION);
  if (action === 'store') c.bytes('data', m.data, { min: 1, max: MAX_VALUE_BYTES }); // an empty key is a mistake
  if (m.expectedVersion !== undefined) c.int('expected_version', m.expectedVersion, 0, MAX_VERSION);
  if (m.challengeNonce !== undefined) c.bytes('challenge_nonce', m.challengeNonce, NONCE_BYTES);
  if (m.challengeSignature !== undefined) c.bytes('challenge_signature', m.challengeSignature, { min: 1, max: 1024 });
  if (m.listAfter !== undefined) {
    const p = action === 'list' ? tagProblem(m.listAfter) : 'is only for list';
    if (p) c.add(`list_after ${p}`);
  }
  // A field that does not apply is refused rather than dropped: a delete "only if the latest is
  // N" would otherwise delete unconditionally, and a store "as version 2" make version 3.
  // A store that names a version (the original key client sends its entry's) must make exactly
  // that one (the handler asks the backend), never silently another.
  const expectedVersion = m.expectedVersion;
  if (action === 'store' && m.version && expectedVersion !== undefined && expectedVersion !== m.version - 1) {
    c.add(`version ${m.version} and expected_version ${expectedVersion} disagree (a store of version N expects N - 1)`);
  }
  if (action === 'list' && m.version) c.add('version is not for list');
  if (action !== 'store') {
    // One test each, not a loop over a list of pairs made for every request.
    if (m.expectedVersion !== undefined) c.add('expected_version is only for store');
    if (m.data !== undefined) c.add('data is only for store');
    if (m.exportable !== undefined) c.add('exportable is only for store');
    if (m.valueType !== undefined) c.add('value_type is only for store');
  }
  let credentials: Uint8Array[] | undefined;
  if (m.serializedCredentials?.length) {
    const tooMany = `serialized_credentials must hold 1 to ${MAX_CREDENTIAL_CERTS} certificates`;
    // Counted before they are decoded: a frame of empty entries decoded to half a million arrays
    // (60 MB and 0.3 s) only to be refused.
    const count = fieldCount(m.serializedCredentials, 1, MAX_CREDENTIAL_CERTS);
    if (count !== undefined && count > MAX_CREDENTIAL_CERTS) c.add(tooMany);
    else {
      try {
        credentials = decode<CertChain>('cert_chain', m.serializedCredentials).certCerts ?? [];
      } catch {
        c.add('serialized_credentials is not a cert_chain');
      }
      if (credentials && credentials.length === 0) c.add(tooMany);
    }
  }
  if ((m.challengeNonce === undefined) !== (m.challengeSignature === undefined)) c.add('challenge_nonce and challenge_signature go together');
  if (m.challengeNonce !== undefined && !credentials) c.add('a challenge answer needs serialized_credentials');
  c.done();
  // Fields set one by one where present, not spread from objects made per request.
  const req: KeyRequest = { action, name, valueType: (m.valueType ?? 'binary-blob') as EntryType, version: m.version ?? 0, exportable: m.exportable ?? true };
  if (m.data) req.data = m.data;
  if (credentials) req.credentials = credentials;
  if (expectedVersion !== undefined) req.expectedVersion = expectedVersion;
  const problem = action === 'store' ? newNameProblem(name) : undefined;
  if (problem) req.newNameProblem = problem;
  if (m.challengeNonce) {
    req.challengeNonce = m.challengeNonce;
    req.challengeSignature = m.challengeSignature;
  }
  if (m.listAfter !== undefined) req.listAfter = m.listAfter;
  return req;
}

/**
 * For the audit record of a request refused as malformed: its action and name where those alone
 * are valid; never throws.
 */
export function describeRequest(bytes: Uint8Array): { action?: Action; name?: string; version?: number } {
  try {
    // Read as protobufjs reads it: a request refused for a version of 2^32 still names its action.
    const m = decode<KeyServiceRequest>('key_service_message_request', bytes, { lenient: true });
    const action = (ACTIONS as readonly string[]).includes(m.requestType ?? '') ? m.requestType as Action : undefined;
    const name = m.resourceName !== undefined && tagProblem(m.resourceName) === undefined ? m.resourceName : undefined;
    // The version as sent, uncut (2^32 is recorded as 4294967296, not as the 0 it would read as).
    const raw = rawVarint(bytes, 4);
    const version = raw !== undefined && raw <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(raw) : undefined;
    return { ...(action ? { action } : {}), ...(name !== undefined ? { name } : {}), ...(version !== undefined ? { version } : {}) };
  } catch {
    return {};
  }
}

/** int32 on the wire: protobufjs would send 2^32 + 1 as 1, asking for another version than meant. */
function checkSentVersion(field: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v <= MAX_VERSION)) {
    throw new CertifierError('INVALID_INPUT', `a ${field} must be a whole number from 0 to ${MAX_VERSION}, not ${v}`);
  }
}

export function encodeKeyRequest(r: Partial<KeyRequest> & { action: Action; name: string }): Uint8Array {
  checkSentVersion('version', r.version);
  checkSentVersion('expected version', r.expectedVersion);
  const msg: KeyServiceRequest = { resourceName: r.name, requestType: r.action };
  if (r.valueType) msg.valueType = r.valueType;
  if (r.version) msg.version = r.version;
  if (r.data) msg.data = r.data;
  if (r.credentials) msg.serializedCredentials = encode('cert_chain', { certCerts: r.credentials });
  if (r.expectedVersion !== undefined) msg.expectedVersion = r.expectedVersion;
  if (r.exportable === false) msg.exportable = false;
  if (r.listAfter !== undefined) msg.listAfter = r.listAfter;
  if (r.challengeNonce) {
    msg.challengeNonce = r.challengeNonce;
    msg.challengeSignature = r.challengeSignature!;
  }
  return encode('key_service_message_request', msg);
}

/**
 * The codes a key-server refuses with (handlers.ts sends INTERNAL for any other): the request's
 * own faults, its certificates and credential, the ACL and reserved names, what the keys' storage
 * and the audit log say. A client takes any other code for DENIED.
 */
export const KEY_SERVER_CODES: readonly ErrorCode[] = [
  'DECODE_FAILED', 'MISSING_FIELD', 'BAD_FIELD', 'INVALID_INPUT', 'UNTRUSTED_PEER', 'CERT_EXPIRED', 'CERT_REVOKED', 'CREDENTIAL_REVOKED', 'CREDENTIAL_INVALID', 'NONCE_INVALID', 'CHALLENGE_FAILED',
  'RESERVED_NAME', 'ACL_DENIED', 'DENIED', 'NOT_FOUND', 'NOT_EXPORTABLE', 'VERSION_CONFLICT', 'FILE_ERROR', 'NOT_RECORDED', 'OUTCOME_UNKNOWN', 'STORE_FORMAT', 'INTEGRITY', 'WRONG_KEY',
  'UNREACHABLE', 'TIMEOUT', 'INTERNAL',
];

const success = (name: string, extra: { data?: Uint8Array; version?: number }) => ({ resourceName: name, responseType: 'final', status: 'succeeded', ...extra });

export const succeeded = (name: string, extra: { data?: Uint8Array; version?: number } = {}) => encode('key_service_message_response', success(name, extra));

/** succeeded, for an answer whose data is a secret: the bytes returned are its only copy (encodeSecret), to wipe once sent. */
export const succeededSecret = (name: string, extra: { data: Uint8Array; version?: number }) => encodeSecret('key_service_message_response', success(name, extra));

/**
 * A refusal. For NOT_RECORDED only: `version`, the version a store made (a delete: the one asked
 * for, 0 = all), and for a delete `data`, its key_service_list as a success would carry. For
 * OUTCOME_UNKNOWN: `version`, the version a store may have made (a delete: the one asked for).
 */
export const failed = (name: string, code: string, version?: number, data?: Uint8Array) =>
  encode('key_service_message_response', { resourceName: name, responseType: 'final', status: 'failed', errorCode: code, ...(version === undefined ? {} : { version }), ...(data ? { data } : {}) });

/**
 * A CERT_EXPIRED refusal with the time the key-server's clock read (server_time), which a client
 * compares with its own clock and the certificates' dates to tell which clock is likely wrong.
 * Clients of earlier versions skip the field, as protobuf readers skip one they do not know.
 */
export const expired = (name: string, at: Date) =>
  encode('key_service_message_response', { resourceName: name, responseType: 'final', status: 'failed', errorCode: 'CERT_EXPIRED', serverTime: at.toISOString() });

export const challenge = (name: string, nonce: Uint8Array) =>
  encode('key_service_message_response', { resourceName: name, responseType: 'final', status: 'auth-challenge', data: nonce });

export interface KeyResponse {
  status: 'succeeded' | 'failed' | 'auth-challenge';
  name: string;
  data?: Uint8Array;
  version?: number;
  errorCode?: string;
  /** CERT_EXPIRED: the time the key-server's clock read as it refused. */
  serverTime?: Date;
}

/** An RFC 3339 time in UTC as toISOString writes it. */
const UTC_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

export function parseKeyResponse(bytes: Uint8Array): KeyResponse {
  const m = decode<KeyServiceResponse>('key_service_message_response', bytes);
  const c = new FieldCheck('key_service_message_response');
  c.oneOf('status', m.status, ['succeeded', 'failed', 'auth-challenge']);
  if (m.status === 'auth-challenge') c.bytes('data', m.data, NONCE_BYTES);
  const serverTime = m.serverTime === undefined ? undefined : new Date(m.serverTime);
  if (serverTime && !(UTC_TIME.test(m.serverTime!) && Number.isFinite(serverTime.getTime()))) c.add('server_time is not an RFC 3339 time in UTC');
  c.done();
  const r: KeyResponse = { status: m.status as KeyResponse['status'], name: m.resourceName ?? '' };
  if (m.data) r.data = m.data;
  if (m.version !== undefined) r.version = m.version;
  if (m.errorCode) r.errorCode = m.errorCode;
  if (serverTime) r.serverTime = serverTime;
  return r;
}

/** What the credential's key signs to answer a challenge: the nonce, bound to this TLS session. */
export function challengeMessage(nonce: Uint8Array, exporter: Uint8Array): Uint8Array {
  if (exporter.length !== 32) throw new CertifierError('INTERNAL', 'no TLS exporter for the auth-challenge');
  return encodeFields('certifier-keys auth-challenge v1', nonce, exporter);
}

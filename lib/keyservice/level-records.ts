// The key-server LevelDB backend's keys and records: the layout level-backend.ts describes, and the stored record's codec.

import { CertifierError } from '../errors/index.ts';
import { compareNames, decode, encode } from '../wire/index.ts';
import type { StoredRecord } from './backend.ts';

/** The protobuf shape of key_service_stored_record (proto/keyservice.proto). */
interface RecordMessage {
  resourceName?: string; version?: number; valueType?: string; exportable?: boolean; timeEntered?: string; size?: number; ciphertext?: Uint8Array;
}

export const FORMAT_KEY = '!format';
/** When open made the database (ISO 8601), put with FORMAT_KEY. */
export const CREATED_KEY = '!created';
/** The id (storageKeyId) of the storage key the records are sealed under, recorded at first start. */
export const STORAGE_KEY_ID = '!storage-key-id';
export const FORMAT_MARK = 'certifier-keys key-server level backend, format 1';
export const RECORD = 'r!';
export const MARK = 'h!';

export const recordKey = (name: string, version: number) => `${RECORD}${name}\u0000${version.toString(16).padStart(8, '0')}`;
export const nameRange = (name: string) => ({ gt: `${RECORD}${name}\u0000`, lt: `${RECORD}${name}\u0001` });

/** The later of two keys as LevelDB orders them (UTF-8 bytes, which is code point order). */
export function laterKey(a: string, b: string): string {
  return compareNames(a, b) >= 0 ? a : b;
}

export function parseRecordKey(key: string): { name: string; version: number } {
  const nul = key.lastIndexOf('\u0000');
  const hex = key.slice(nul + 1);
  if (!key.startsWith(RECORD) || nul < RECORD.length || !/^[0-9a-f]{8}$/.test(hex)) {
    throw new CertifierError('INTEGRITY', `the key-server database holds a damaged key ${JSON.stringify(key)}`);
  }
  return { name: key.slice(RECORD.length, nul), version: parseInt(hex, 16) };
}

export function encodeRecord(r: StoredRecord): Uint8Array {
  const m: RecordMessage = {
    resourceName: r.name, version: r.version, valueType: r.type, exportable: r.exportable, timeEntered: r.timeEntered, size: r.size, ciphertext: r.ciphertext,
  };
  return encode('key_service_stored_record', m);
}

export function decodeRecord(name: string, version: number, raw: Uint8Array): StoredRecord {
  const damaged = (why: string, cause?: unknown) =>
    new CertifierError('INTEGRITY', `the stored record of "${name}" version ${version} is damaged (${why})`, cause ? { cause } : undefined);
  let m: RecordMessage;
  try {
    m = decode<RecordMessage>('key_service_stored_record', raw);
  } catch (cause) {
    throw damaged('not a key_service_stored_record', cause);
  }
  const { resourceName, valueType, timeEntered, size, ciphertext } = m;
  if (resourceName === undefined || m.version === undefined || valueType === undefined || timeEntered === undefined || size === undefined || ciphertext === undefined) {
    throw damaged('a field is missing');
  }
  if (resourceName !== name || m.version !== version) throw damaged(`it is labelled "${resourceName}" version ${m.version}`);
  if (!Number.isInteger(size) || size < 0) throw damaged(`size ${size}`);
  return { name, version, type: valueType, exportable: m.exportable ?? false, timeEntered, size, ciphertext };
}

/** A copy of the record with a ciphertext of its own: the caller may change neither the cache's record nor its bytes. */
export function ownCiphertext(r: StoredRecord): StoredRecord {
  return { ...r, ciphertext: new Uint8Array(r.ciphertext) }; // a copy (a Buffer's slice() would be a view)
}

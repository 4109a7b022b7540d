// Loads the .proto files (the single source of truth for every wire and disk message) once,
// and offers encode/decode that turn protobufjs's low-level exceptions into typed errors.

import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';
import { CertifierError } from '../errors/index.ts';

const protoDir = fileURLToPath(new URL('../../proto/', import.meta.url));
const root = protobuf.loadSync(['certifier.proto', 'cryptstore.proto', 'keyservice.proto'].map((f) => protoDir + f));

/** The names of every message this suite reads or writes. */
export type MessageName =
  | 'rsa_message' | 'point_message' | 'ecc_message' | 'key_message'
  | 'property' | 'properties' | 'platform' | 'environment' | 'entity_message'
  | 'vse_clause' | 'vse_clauses' | 'claim_message' | 'signed_claim_message' | 'signed_claim_sequence'
  | 'attestation_user_data' | 'vse_attestation_report_info' | 'signed_report' | 'cert_chain'
  | 'sev_attestation_message' | 'evidence' | 'evidence_package'
  | 'trust_request_message' | 'trust_response_message'
  | 'cryptstore_entry' | 'cryptstore' | 'scrypt_params' | 'cryptstore_protection'
  | 'cryptstore_metadata' | 'cryptstore_bundle'
  | 'key_service_message_request' | 'key_service_message_response'
  | 'key_service_resource_info' | 'key_service_list' | 'key_service_stored_record';

const types = new Map<MessageName, protobuf.Type>();

export function messageType(name: MessageName): protobuf.Type {
  let t = types.get(name);
  if (!t) {
    t = root.lookupType(name);
    types.set(name, t);
  }
  return t;
}

const toObjectOptions: protobuf.IConversionOptions = { longs: Number, defaults: false, arrays: false };

/**
 * Decodes bytes into a plain object holding only the fields present on the wire (proto2
 * presence is kept: an absent field is `undefined`). Never throws anything but
 * CertifierError(DECODE_FAILED). Bytes fields are views into `bytes`.
 */
export function decode<T>(name: MessageName, bytes: Uint8Array): T {
  const type = messageType(name);
  try {
    return type.toObject(type.decode(bytes), toObjectOptions) as T;
  } catch (cause) {
    throw new CertifierError('DECODE_FAILED', `not a valid ${name}${name.endsWith('message') ? '' : ' message'}`, { cause });
  }
}

/** Encodes a plain object; a wrong field type is a programmer error (TypeError). */
export function encode<T extends object>(name: MessageName, value: T): Uint8Array {
  const type = messageType(name);
  const problem = type.verify(value);
  if (problem) throw new TypeError(`cannot encode ${name}: ${problem}`);
  return type.encode(value).finish();
}

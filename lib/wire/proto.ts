// Loads the .proto files (the single source of truth for every wire and disk message) once,
// and offers encode/decode that turn protobufjs's low-level exceptions into typed errors.

import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';
import { CertifierError } from '../errors/index.ts';

const protoDir = fileURLToPath(new URL('../../proto/', import.meta.url));
const root = protobuf.loadSync(['certifier.proto', 'cryptstore.proto', 'keyservice.proto'].map((f) => protoDir + f)).resolveAll();

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
export function decode<T>(name: MessageName, bytes: Uint8Array, options: { strict?: boolean; lenient?: boolean } = {}): T {
  const type = messageType(name);
  let value: T;
  try {
    value = type.toObject(type.decode(bytes), toObjectOptions) as T;
  } catch (cause) {
    throw new CertifierError('DECODE_FAILED', `not a valid ${name}${name.endsWith('message') ? '' : ' message'}`, { cause });
  }
  // lenient: as protobufjs reads it, integers cut or rounded; only to describe a refused message.
  // The second walk only where it can find something: strict, or a 32-bit field somewhere inside.
  const walk = !options.lenient && (options.strict === true || hasRangedField(type));
  const problem = walk ? outOfRange(type, bytes, 0, options.strict === true) : undefined;
  if (problem) throw new CertifierError('DECODE_FAILED', `not a valid ${name}${name.endsWith('message') ? '' : ' message'}: ${problem}`, { cause: new RangeError(problem) });
  return value;
}

/**
 * What a 32-bit integer field may hold: protobufjs keeps the low 32 bits of a longer varint
 * (2^32 + 1 would read as 1), which is refused instead. 64-bit fields travel whole (the original
 * Certifier Framework writes a VCEK's full TCB, past 2^53, in key_message.snp_tcb_version);
 * where one is compared, its reader refuses what a number cannot hold exactly.
 */
const RANGES: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
};

const ranged = new Map<protobuf.Type, boolean>();

/** Whether `type`, or a message nested in it, has a field RANGES checks (computed once per type). */
function hasRangedField(type: protobuf.Type): boolean {
  let found = ranged.get(type);
  if (found === undefined) {
    const seen = new Set<protobuf.Type>();
    const inside = (t: protobuf.Type): boolean => {
      if (seen.has(t)) return false; // a recursive type: its fields are being looked at already
      seen.add(t);
      return t.fieldsArray.some((f) => RANGES[f.type] !== undefined || (f.resolvedType instanceof protobuf.Type && inside(f.resolvedType)));
    };
    found = inside(type);
    ranged.set(type, found);
  }
  return found;
}

/**
 * The value on the wire of the last varint field `field` at the top of a message (uncut, as
 * protobufjs would not give it), or undefined when absent or the bytes do not parse.
 */
export function rawVarint(bytes: Uint8Array, field: number): bigint | undefined {
  let found: bigint | undefined;
  try {
    const reader = protobuf.Reader.create(bytes);
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      if ((tag & 7) === 0 && tag >>> 3 === field) {
        const [value, next] = readVarint(bytes, reader.pos);
        found = value;
        reader.pos = next;
      } else {
        reader.skipType(tag & 7);
      }
    }
  } catch {
    return undefined;
  }
  return found;
}

/**
 * How many times field `field` occurs at the top of a message, read without decoding it (a
 * repeated field's items counted before any is built), or undefined when the bytes do not parse.
 * Given `most`, it stops at the first occurrence past it and returns most + 1, the rest unread:
 * "more than most" is all a caller refusing such a message needs, and a crafted one of half a
 * million empty items is then refused after a few of them.
 */
export function fieldCount(bytes: Uint8Array, field: number, most = Infinity): number | undefined {
  let count = 0;
  try {
    const reader = protobuf.Reader.create(bytes);
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      if (tag >>> 3 === field && ++count > most) return count;
      reader.skipType(tag & 7);
    }
  } catch {
    return undefined;
  }
  return count;
}

function readVarint(bytes: Uint8Array, at: number): [bigint, number] {
  let v = 0n;
  for (let shift = 0n, i = at; i < bytes.length && shift < 70n; i++, shift += 7n) {
    v |= BigInt(bytes[i]! & 0x7f) << shift;
    if (bytes[i]! < 0x80) return [v, i + 1];
  }
  return [-1n, bytes.length]; // not reached: protobufjs has decoded these bytes already
}

/** The wire type each field type travels as (a repeated number may also come packed, as 2); messages travel as 2. */
const WIRE_TYPES: Record<string, number> = {
  double: 1, fixed64: 1, sfixed64: 1, float: 5, fixed32: 5, sfixed32: 5, string: 2, bytes: 2,
  int32: 0, uint32: 0, sint32: 0, int64: 0, uint64: 0, sint64: 0, bool: 0,
};

function wireTypeOf(type: string): number {
  return WIRE_TYPES[type] ?? 2;
}

/**
 * A varint at `at` whose value is below 2^28 (at most 4 bytes, the last without its high bit):
 * the value and the position after it, or undefined for a longer one (read with readVarint).
 * Every 32-bit field's range holds such a value, so most are judged without a BigInt.
 */
function shortVarint(bytes: Uint8Array, at: number): [number, number] | undefined {
  let v = 0;
  for (let i = at, shift = 0; i < bytes.length && i < at + 4; i++, shift += 7) {
    const b = bytes[i]!;
    v |= (b & 0x7f) << shift;
    if (b < 0x80) return [v, i + 1];
  }
  return undefined;
}

/**
 * The first integer field in `bytes` (already decoded as `type`) whose value on the wire is
 * out of its type's range, in this message or any nested one; undefined if none. `strict` also
 * refuses a field the message does not define, or one sent as another wire type (which
 * protobufjs would skip): for signed statements, where what is not understood must not be
 * ignored.
 */
function outOfRange(type: protobuf.Type, bytes: Uint8Array, depth: number, strict: boolean): string | undefined {
  const reader = protobuf.Reader.create(bytes);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const field = type.fieldsById[tag >>> 3];
    const wire = tag & 7;
    if (strict && !field) return `field ${tag >>> 3} is not part of ${type.name}`;
    if (strict && field) {
      const expected = field.resolvedType instanceof protobuf.Enum ? 0 : wireTypeOf(field.type);
      if (wire !== expected && !(field.repeated && wire === 2 && expected !== 2)) return `${field.name} has wire type ${wire}, not ${expected}`;
    }
    if (field && wire === 0 && (wireTypeOf(field.type) === 0 || field.resolvedType instanceof protobuf.Enum)) {
      // Below 2^28: inside both ranges, no BigInt needed.
      const short = shortVarint(bytes, reader.pos);
      if (short) {
        reader.pos = short[1];
        continue;
      }
      const [raw, next] = readVarint(bytes, reader.pos);
      reader.pos = next;
      // A tenth byte above 1 sets bits past 64, which no encoder writes and protobufjs drops
      // (2^64 + 1 would read as 1, and as an int32 pass the range check below), in a field of any
      // varint type: a uint64 of 2^64 + 5 would read as 5.
      if (raw >= 2n ** 64n) return `${field.name} is ${raw}, more than a varint's 64 bits`;
      const range = RANGES[field.type];
      if (!range) continue;
      // A negative int32 travels as the 64-bit two's complement.
      const value = field.type === 'int32' && raw >= 2n ** 63n ? raw - 2n ** 64n : raw;
      if (value < range[0] || value > range[1]) return `${field.name} is ${value}, outside ${field.type}`;
      continue;
    }
    const nested = field && wire === 2 && field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    if (nested) {
      // As deep as protobufjs reads (vse_clause holds a vse_clause): a walk stopping short of it
      // would let a strict read take an unknown field nested below where it stopped.
      if (depth >= protobuf.util.recursionLimit) return `${field!.name} is nested more than ${protobuf.util.recursionLimit} deep`;
      const length = reader.uint32();
      const problem = outOfRange(nested, bytes.subarray(reader.pos, reader.pos + length), depth + 1, strict);
      if (problem) return `${field!.name}.${problem}`;
      reader.pos += length;
      continue;
    }
    reader.skipType(wire);
  }
  return undefined;
}

/** Encodes a plain object; a wrong field type is a programmer error (TypeError). */
export function encode<T extends object>(name: MessageName, value: T): Uint8Array {
  return writeMessage(name, value, protobuf.Writer.create()).finish();
}

/**
 * encode, for a message holding a secret: the bytes returned are the only copy, for the caller to
 * wipe once used. (protobufjs writes into a buffer it copies into a larger one as the message
 * grows: each buffer left behind would hold the secret.) So the writer is given, before it writes
 * anything, a buffer of its own that the message cannot outgrow (sizeBound), and the bytes are a
 * view of it: the part after them stays zero.
 */
export function encodeSecret<T extends object>(name: MessageName, value: T): Uint8Array {
  const w = protobuf.Writer.create();
  const own = Buffer.allocUnsafe(sizeBound(value)).fill(0); // a small one from the pool, as protobufjs takes its own
  w.buf = own;
  writeMessage(name, value, w);
  if (w.buf !== own) {
    // Not reached: sizeBound is never below what the writer asks for.
    own.fill(0);
    w.buf.fill(0);
    throw new CertifierError('INTERNAL', `encodeSecret(${name}) outgrew its buffer`);
  }
  return w.finish(true);
}

/**
 * At least as many bytes as protobufjs's writer asks room for to encode `value` (checked by
 * verify as a message): per field its tag (5) and a length or varint (10), a string's worst-case
 * 3 bytes per UTF-16 unit, bytes themselves, nested messages and repeated items likewise.
 */
function sizeBound(value: unknown): number {
  if (value instanceof Uint8Array) return value.length + 15;
  if (typeof value === 'string') return 3 * value.length + 15;
  if (Array.isArray(value)) return value.reduce((n: number, v: unknown) => n + sizeBound(v), 15);
  if (typeof value === 'object' && value !== null) {
    let n = 15;
    for (const v of Object.values(value)) n += sizeBound(v);
    return n;
  }
  return 15; // a number, a boolean, an enum's number; nothing for undefined is written, 15 is spare
}

function writeMessage<T extends object>(name: MessageName, value: T, w: protobuf.Writer): protobuf.Writer {
  const type = messageType(name);
  const problem = type.verify(value);
  if (problem) throw new TypeError(`cannot encode ${name}: ${problem}`);
  return type.encode(value, w);
}

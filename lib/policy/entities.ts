// Entities and clauses of the Certifier vocabulary ("K says C", "K is-trusted-for-attestation",
// "M is-trusted", "K speaks-for M"), how to compare them, and how to say them to a person.

import { createHash, type KeyObject } from 'node:crypto';
import { exportPublicKey, fromKeyMessage, publicKeyOf, toHex, toKeyMessage } from '../crypto/index.ts';
import type { EntityMessage, KeyMessage, VseClause } from '../wire/types.ts';
import { describePlatform } from './properties.ts';

export const VERBS = ['says', 'is-trusted', 'is-trusted-for-attestation', 'is-trusted-for-authentication', 'speaks-for', 'has-trusted-platform-property'] as const;
export type Verb = (typeof VERBS)[number];

/** A public key as a Certifier entity (a private key is reduced to its public half). */
export function keyEntity(key: KeyObject, name?: string): EntityMessage {
  return { entityType: 'key', key: toKeyMessage(publicKeyOf(key), name) };
}

export function measurementEntity(measurement: Uint8Array): EntityMessage {
  return { entityType: 'measurement', measurement };
}

/** "subject verb object" */
export function simpleClause(subject: EntityMessage, verb: Verb, object?: EntityMessage): VseClause {
  return object ? { subject, verb, object } : { subject, verb };
}

/** "subject says clause" */
export function saysClause(subject: EntityMessage, clause: VseClause): VseClause {
  return { subject, verb: 'says', clause };
}

// A KeyObject never changes, and exporting one is not cheap under OpenSSL 3 (about 0.1 ms for a
// P-256 key): verifying one request compares and labels the same few keys many times.
const identities = new WeakMap<KeyObject, Buffer>();

function identityOf(key: KeyObject): Buffer {
  let id = identities.get(key);
  if (!id) {
    const der = exportPublicKey(key, 'der'); // EC keys without OpenSSL's slow encoder
    id = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
    identities.set(key, id);
  }
  return id;
}

/** The DER SubjectPublicKeyInfo of a key: the identity we compare keys by (not their names). */
export function keyIdentity(key: KeyObject): Buffer {
  return Buffer.from(identityOf(key)); // a copy: the remembered one must stay as it is
}

export function sameKey(a: KeyObject, b: KeyObject): boolean {
  return identityOf(a).equals(identityOf(b));
}

/** A short, stable name for a key in messages: its type and the first bytes of its SPKI hash. */
export function keyLabel(key: KeyObject, name?: string): string {
  const id = createHash('sha256').update(identityOf(key)).digest('hex').slice(0, 16);
  return `${name ? `${name} ` : ''}key:${id}`;
}

/** A public key from an entity; undefined when the entity is not a usable key. */
export function entityKey(e: EntityMessage | undefined): KeyObject | undefined {
  if (e?.entityType !== 'key' || !e.key) return undefined;
  try {
    const k = fromKeyMessage(e.key as KeyMessage);
    return k.type === 'public' ? k : undefined;
  } catch {
    return undefined;
  }
}

export function describeEntity(e: EntityMessage | undefined): string {
  if (!e) return '(nothing)';
  if (e.entityType === 'measurement') return `measurement:${toHex(e.measurement ?? new Uint8Array())}`;
  if (e.entityType === 'key') {
    const k = entityKey(e);
    return k ? keyLabel(k, e.key?.keyName) : `key:(unreadable ${e.key?.keyType ?? ''})`;
  }
  if (e.entityType === 'platform') return describePlatform(e.platformEnt);
  return `${e.entityType ?? 'entity'}:(unsupported)`;
}

/** "policyKey key:ab12 says platformKey key:cd34 is-trusted-for-attestation" */
export function describeClause(c: VseClause | undefined): string {
  if (!c) return '(nothing)';
  const rest = c.clause ? describeClause(c.clause) : c.object ? describeEntity(c.object) : '';
  return `${describeEntity(c.subject)} ${c.verb ?? '?'}${rest ? ` ${rest}` : ''}`;
}

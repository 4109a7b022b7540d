// What a key-server's answer to a store or a delete may say, checked before it is reported: a
// version it could have made or deleted, and for a conditional or single request, the one asked.

import { CertifierError } from '../errors/index.ts';
import { decode, fieldCount, MAX_VERSION, shown, type KeyServiceList } from '../wire/index.ts';
import { DELETE_LISTED } from '../keyservice/protocol.ts';

const isVersion = (v: number | undefined): v is number => Number.isInteger(v) && v! >= 1 && v! <= MAX_VERSION;

/**
 * The version a store made: BAD_FIELD unless 1 to MAX_VERSION; INTEGRITY unless after `expected`
 * (a conditional store makes a version after the latest, or after a deleted one above it).
 */
export function storedVersion(name: string, version: number | undefined, expected?: number): number {
  if (!isVersion(version)) throw new CertifierError('BAD_FIELD', `the key-server said it stored ${shown(name, 256)} as version ${version ?? '(none)'}, which no store makes`);
  if (expected !== undefined && version <= expected) {
    throw new CertifierError('INTEGRITY', `the key-server said it stored ${shown(name, 256)} as version ${version}, though asked to store only after version ${expected}`);
  }
  return version;
}

/**
 * The versions a delete names and how many went: BAD_FIELD for a version below 1, one named
 * twice, more than a server names, or a count below those named or 0; INTEGRITY for any but
 * `asked` when one version was asked for.
 */
export function deletedVersions(name: string, data: Uint8Array | undefined, asked: number): { versions: number[]; count: number } {
  const bad = (why: string) => new CertifierError('BAD_FIELD', `the key-server's answer to the delete of ${shown(name, 256)} ${why}`);
  const list = listAnswer(data, DELETE_LISTED, () => bad(`names more than ${DELETE_LISTED} versions, the most a key-server names`));
  const versions = (list.resources ?? []).map((i) => i.version);
  const count = list.deleted ?? versions.length; // a server before the count named every version
  const at = versions.findIndex((v) => !isVersion(v));
  if (at >= 0) throw bad(`names version ${versions[at] ?? '(none)'}`);
  if (new Set(versions).size !== versions.length) throw bad('names a version twice');
  if (!Number.isInteger(count) || count < Math.max(versions.length, 1)) throw bad(`says ${count} went, but names ${versions.length}`);
  if (asked && (count !== 1 || versions.some((v) => v !== asked))) {
    throw new CertifierError('INTEGRITY', `the key-server said it deleted ${count === 1 ? `version ${versions[0] ?? '(unnamed)'}` : `${count} versions`} of ${shown(name, 256)}, though asked to delete version ${asked}`);
  }
  return { versions: versions as number[], count };
}

/**
 * A key_service_list answer, decoded once its entries are counted on the wire: `tooMany()` for
 * more than `most`, the most a key-server sends (counted no further than that). Decoded first, a
 * hostile server's 1 MiB of empty entries would become half a million objects (about 64 MB and
 * half a second) before the count refused them.
 */
export function listAnswer(data: Uint8Array | undefined, most: number, tooMany: () => CertifierError): KeyServiceList {
  const bytes = data ?? new Uint8Array();
  const n = fieldCount(bytes, 1, most); // resources; undefined for bytes that are no message, which decode refuses
  if (n !== undefined && n > most) throw tooMany();
  return decode<KeyServiceList>('key_service_list', bytes);
}

// A page of a key-server's listing, checked before any of it is shown or acted on: the server
// chooses every byte of it. Each name must be one asked for, in order, with metadata a key-server
// could hold; the page must move the listing on, or a faulty server could keep a client asking.

import { CertifierError } from '../errors/index.ts';
import { compareNames, ENTRY_TYPES, FieldCheck, MAX_VERSION, shown, tagProblem, type KeyServiceList } from '../wire/index.ts';
import { isRfc3339 } from '../policy/index.ts';
import { LIST_PAGE, MAX_VALUE_BYTES } from '../keyservice/protocol.ts';

export interface ResourceInfo {
  name: string;
  version: number;
  type: string;
  timeEntered: string;
  exportable: boolean;
  size: number;
}

/**
 * The names of page `p` of the listing of `prefix` asked for after `after`: DECODE_FAILED for a
 * page that does not move on (more names than a server sends, none though more are to come, out
 * of order, or a next_after before its last name), INTEGRITY for a name not under the prefix,
 * BAD_FIELD (or MISSING_FIELD) for a name or metadata no key-server holds.
 */
export function pageItems(prefix: string, after: string | undefined, p: KeyServiceList): ResourceInfo[] {
  const listing = `the key-server's listing of ${shown(prefix, 256)}`;
  const resources = p.resources ?? [];
  const broken = (why: string) => new CertifierError('DECODE_FAILED', `${listing} ${why}`);
  if (resources.length > LIST_PAGE) throw tooManyNames(prefix);
  if (resources.length === 0 && p.nextAfter !== undefined) throw broken('sent an answer without names that says more are to come');
  if (after !== undefined && p.nextAfter !== undefined && compareNames(p.nextAfter, after) <= 0) throw broken(`went back to ${shown(p.nextAfter, 256)} after ${shown(after, 256)}`);
  let last = after;
  const items = resources.map((r, i) => {
    const c = new FieldCheck(`key_service_list resource ${i}`);
    if (c.need('resource_name', r.resourceName)) {
      const problem = tagProblem(r.resourceName!);
      if (problem) c.add(`resource_name ${problem}`);
    }
    c.int('version', r.version, 1, MAX_VERSION);
    c.oneOf('value_type', r.valueType, ENTRY_TYPES);
    if (c.need('time_entered', r.timeEntered) && !isRfc3339(r.timeEntered!)) c.add(`time_entered ${shown(r.timeEntered!)} is not an RFC 3339 time`);
    c.int('size', r.size, 0, MAX_VALUE_BYTES);
    c.done();
    const name = r.resourceName!;
    if (!name.startsWith(prefix)) throw new CertifierError('INTEGRITY', `${listing} named ${shown(name, 256)}, which is not under it`);
    if (last !== undefined && compareNames(name, last) <= 0) throw broken(`went back to ${shown(name, 256)} after ${shown(last, 256)}`);
    last = name;
    return { name, version: r.version!, type: r.valueType!, timeEntered: r.timeEntered!, exportable: r.exportable ?? false, size: r.size! };
  });
  // A server's next_after is the last name of its page; a key-server before 2026-12-06 may name
  // one of its own after it, which it left out of the page.
  if (p.nextAfter !== undefined && (!p.nextAfter.startsWith(prefix) || compareNames(p.nextAfter, last!) < 0)) {
    throw broken(`says the next page starts after ${shown(p.nextAfter, 256)}, which is not under it after its last name ${shown(last!, 256)}`);
  }
  return items;
}

/** DECODE_FAILED: a page of the listing of `prefix` with more names than a key-server sends. */
export function tooManyNames(prefix: string): CertifierError {
  return new CertifierError('DECODE_FAILED', `the key-server's listing of ${shown(prefix, 256)} sent more than ${LIST_PAGE} names in one answer, the most a key-server sends`);
}

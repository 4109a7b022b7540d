// Mutations that know JSON: a document is parsed, one value at any depth is replaced by a value of
// another type or at the edge of its own (a list for a string, 2^53+1, -0, 1e308, a long string, a
// deep nest), a key dropped, added (an unknown one, __proto__, constructor) or renamed, a list
// item given again; then the document is written again, so that what reads it meets valid JSON of
// the wrong shape, which byte-level mutation seldom makes.

import { int, pick, type Random } from './mutate.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const nest = (depth: number): Json => (depth === 0 ? 1 : [nest(depth - 1)]);
/** Values of every type, and at the edges of each. */
const VALUES: [() => Json, string][] = [
  [() => null, 'null'], [() => true, 'true'], [() => 0, '0'], [() => -1, '-1'], [() => 1.5, '1.5'], [() => 2 ** 31, '2^31'], [() => 2 ** 53 + 2, '2^53+2'],
  [() => 1e308, '1e308'], [() => -1e-300, '-1e-300'], [() => '', 'empty string'], [() => 'x'.repeat(70_000), 'a 70,000-character string'],
  [() => '\u0000\u202e\ud800', 'control, bidi and lone surrogate'], [() => '../../etc/passwd', 'a path up'], [() => '**', '**'], [() => '0777', '0777'],
  [() => [], 'empty list'], [() => [null], '[null]'], [() => ({}), 'empty object'], [() => JSON.parse('{"__proto__":1}') as Json, '{__proto__}'],
  [() => nest(2000), 'nested 2,000 deep'], [() => Array.from({ length: 20_000 }, () => 'a'), 'a list of 20,000'],
];
const KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'length', 'unknown', '', 'Version', 'version', 'rules', 'secrets', 'seq', 'prev', 'hash'];

/** The containers in `v` and the paths to them (at most `limit` looked at). */
function containers(v: Json, out: (Json[] | { [k: string]: Json })[] = [], limit = 500): (Json[] | { [k: string]: Json })[] {
  if (out.length >= limit || v === null || typeof v !== 'object') return out;
  out.push(v);
  for (const c of Array.isArray(v) ? v : Object.values(v)) containers(c, out, limit);
  return out;
}

/** One mutation of the JSON document `text` (UTF-8 bytes), or undefined when it is not JSON. */
export function mutateJson(bytes: Uint8Array, r: Random): [Uint8Array, string] | undefined {
  let doc: Json;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes)) as Json;
  } catch {
    return undefined;
  }
  const all = containers(doc);
  if (all.length === 0) return undefined;
  const c = pick(r, all);
  let how: string;
  if (Array.isArray(c)) {
    const at = int(r, c.length + 1);
    const op = int(r, 3);
    if (op === 0 && c.length > 0) { c.splice(at, 0, structuredClone(c[Math.min(at, c.length - 1)]!)); how = `list item ${at} given again`; }
    else if (op === 1 && c.length > 0) { c.splice(Math.min(at, c.length - 1), 1); how = `list item ${at} dropped`; }
    else { const [v, said] = pick(r, VALUES); c.splice(at, c.length > 0 ? 1 : 0, v()); how = `list item ${at} = ${said}`; }
  } else {
    const keys = Object.keys(c);
    const op = int(r, 4);
    const key = keys.length > 0 ? pick(r, keys) : pick(r, KEYS);
    if (op === 0 && keys.length > 0) { delete c[key]; how = `"${key}" dropped`; }
    else if (op === 1) { const k = pick(r, KEYS); const [v, said] = pick(r, VALUES); Object.defineProperty(c, k, { value: v(), enumerable: true, configurable: true, writable: true }); how = `"${k}" = ${said}`; }
    else if (op === 2 && keys.length > 0) { const k = pick(r, KEYS); Object.defineProperty(c, k, { value: c[key], enumerable: true, configurable: true, writable: true }); delete c[key]; how = `"${key}" renamed "${k}"`; }
    else { const [v, said] = pick(r, VALUES); Object.defineProperty(c, key, { value: v(), enumerable: true, configurable: true, writable: true }); how = `"${key}" = ${said}`; }
  }
  return [new TextEncoder().encode(JSON.stringify(doc)), how];
}

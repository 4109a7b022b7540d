// ACL resource patterns: `*` matches any run of characters except '/', `**` any run including
// '/', `?` one character except '/'; everything else is literal. A pattern matches the whole name.
// Characters are code points (an emoji is one character).
//
// A pattern is compiled once, when the ACL is read, into its literal prefix and the tokens after
// it, plus two quick refusals: the literal suffix after the last wildcard, and the fewest characters
// a match has. Most names a pattern does not match fail one of these three tests without the walk.
// A pattern is matched by walking the name once while keeping the set of token positions reached so
// far. That takes at most (name length) x (pattern length) steps for any pattern and name; a
// backtracking regular expression took seconds to minutes on names a client chose (`vm/*-*-*-*-*`
// against "vm/" and 253 more characters), holding up every other request meanwhile.

export interface Pattern {
  readonly source: string;
  /** The literal characters before the first wildcard: a name not starting with them cannot match. */
  readonly prefix: string;
  /**
   * The rest, one token per element ('*', '**', '?' or one literal character) as the walk reads
   * it: a literal's code point, or RUN, ANY_RUN or ONE (below zero).
   */
  readonly codes: Int32Array;
  /** The literal characters after the last wildcard ('' when it ends with one): a name not ending with them cannot match. */
  readonly suffix: string;
  /** The characters (code points) every match has: its literal ones and one per '?'. */
  readonly minLength: number;
}

export const RUN = -1; // '*'
export const ANY_RUN = -2; // '**'
export const ONE = -3; // '?'
const SLASH = 0x2f;
const code = (t: string) => (t === '*' ? RUN : t === '**' ? ANY_RUN : t === '?' ? ONE : t.codePointAt(0)!);

const isWildcard = (t: string) => t === '*' || t === '**' || t === '?';
const isRun = (t: string) => t === '*' || t === '**';

export function compilePattern(source: string): Pattern {
  const chars = Array.from(source);
  const tokens: string[] = [];
  for (let i = 0; i < chars.length; i++) {
    if (chars[i] === '*' && chars[i + 1] === '*') {
      tokens.push('**');
      i++;
    } else tokens.push(chars[i]!);
  }
  let n = 0;
  // A lone high surrogate stays a token: as a prefix it could match half of one of the name's characters.
  while (n < tokens.length && !isWildcard(tokens[n]!) && !/^[\ud800-\udbff]$/.test(tokens[n]!)) n++;
  let last = tokens.length;
  while (last > n && !isWildcard(tokens[last - 1]!)) last--;
  return {
    source,
    prefix: tokens.slice(0, n).join(''),
    codes: Int32Array.from(tokens.slice(n), code),
    suffix: tokens.slice(last).join(''),
    minLength: tokens.filter((t) => !isRun(t)).length,
  };
}

/**
 * Adds the positions reachable without consuming a character (past a run that matches nothing)
 * to those in at[lo..hi]; returns the new hi.
 */
function skipEmptyRuns(codes: Int32Array, at: Uint8Array, lo: number, hi: number): number {
  for (let i = lo; i <= hi && i < codes.length; i++) {
    if (at[i] && (codes[i] === RUN || codes[i] === ANY_RUN)) {
      at[i + 1] = 1;
      if (i + 1 > hi) hi = i + 1;
    }
  }
  return hi;
}

/**
 * Whether the name could match, by the prefix, suffix and length alone. A name has at least as
 * many UTF-16 units as characters, so one shorter in units than minLength has too few characters.
 */
export function mayMatch(p: Pattern, name: string): boolean {
  return name.length >= p.minLength && name.startsWith(p.prefix) && name.endsWith(p.suffix);
}

export function patternMatches(p: Pattern, name: string): boolean {
  if (!mayMatch(p, name)) return false;
  const { codes } = p;
  const end = codes.length;
  if (end === 0) return name.length === p.prefix.length;
  // at[i]: the characters read so far can bring the pattern to token i (end: its end). Only
  // at[lo..hi] may be set, so each step looks at and clears that range alone.
  let at = new Uint8Array(end + 1);
  let next = new Uint8Array(end + 1);
  at[0] = 1;
  let lo = 0;
  let hi = skipEmptyRuns(codes, at, 0, 0);
  for (let k = p.prefix.length; k < name.length; ) {
    const c = name.codePointAt(k)!;
    k += c > 0xffff ? 2 : 1;
    let nextLo = end + 1;
    let nextHi = -1;
    for (let i = lo; i <= hi && i < end; i++) {
      if (!at[i]) continue;
      const t = codes[i]!;
      let j: number;
      if (t === ANY_RUN || (t === RUN && c !== SLASH)) j = i;
      else if (t === c || (t === ONE && c !== SLASH)) j = i + 1;
      else continue;
      next[j] = 1;
      if (j < nextLo) nextLo = j;
      if (j > nextHi) nextHi = j;
    }
    at.fill(0, lo, hi + 1);
    if (nextHi < 0) return false;
    const read = at;
    at = next;
    next = read;
    lo = nextLo;
    hi = skipEmptyRuns(codes, at, nextLo, nextHi);
  }
  return at[end] === 1;
}

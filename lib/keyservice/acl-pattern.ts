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
  /** The rest, one token per element: '*', '**', '?' or one literal character. */
  readonly tokens: readonly string[];
  /** The literal characters after the last wildcard ('' when it ends with one): a name not ending with them cannot match. */
  readonly suffix: string;
  /** The characters (code points) every match has: its literal ones and one per '?'. */
  readonly minLength: number;
}

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
    tokens: tokens.slice(n),
    suffix: tokens.slice(last).join(''),
    minLength: tokens.filter((t) => !isRun(t)).length,
  };
}

/** Adds the positions reachable without consuming a character: past a run that matches nothing. */
function skipEmptyRuns(tokens: readonly string[], at: Uint8Array): void {
  for (let i = 0; i < tokens.length; i++) if (at[i] && isRun(tokens[i]!)) at[i + 1] = 1;
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
  const { tokens } = p;
  const rest = name.slice(p.prefix.length);
  if (tokens.length === 0) return rest === '';
  // at[i]: the characters read so far can bring the pattern to token i (tokens.length: its end).
  let at = new Uint8Array(tokens.length + 1);
  let next = new Uint8Array(tokens.length + 1);
  at[0] = 1;
  skipEmptyRuns(tokens, at);
  for (const c of rest) {
    next.fill(0);
    let alive = false;
    for (let i = 0; i < tokens.length; i++) {
      if (!at[i]) continue;
      const t = tokens[i]!;
      if (t === '**' || (t === '*' && c !== '/')) next[i] = 1;
      else if (t === c || (t === '?' && c !== '/')) next[i + 1] = 1;
      else continue;
      alive = true;
    }
    if (!alive) return false;
    skipEmptyRuns(tokens, next);
    [at, next] = [next, at];
  }
  return at[tokens.length] === 1;
}

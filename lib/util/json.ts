// JSON text from files an operator names (ACLs, provisioning configs). A wrong file given by
// mistake may be a secret: a parse error says where, never what (Node's message quotes the text).
// A key given twice in one object is refused: JSON.parse keeps the last, so a rule a reviewer
// reads as naming one measurement could grant another.

import { CertifierError } from '../errors/index.ts';
import { jsonErrorOffset } from './json-offset.ts';

/** A file's bytes as UTF-8 text; INVALID_INPUT if they are not (a path's invalid byte would otherwise become U+FFFD). */
export function utf8Text(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CertifierError('INVALID_INPUT', `${what} is not UTF-8 text`, { details: { problems: ['not UTF-8'] } });
  }
}

/** JSON.parse, or INVALID_INPUT "WHAT is not JSON (near line L, column C)" without the text itself. */
export function parseJsonText(text: string, what: string): unknown {
  // A byte-order mark, as some editors save UTF-8, is not part of the text.
  if (text.startsWith('\ufeff')) text = text.slice(1);
  // Nothing at all (a save cut short, a redirection that truncated it) is said so, not placed.
  if (text.trim() === '') throw new CertifierError('INVALID_INPUT', `${what} is empty`, { details: { problems: ['empty'] } });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // Node's own position where it names one; where it does not (a comma before "]"), ours.
    const m = /position (\d+)/.exec((e as Error).message);
    const at = m ? Number(m[1]) : jsonErrorOffset(text);
    let where = '';
    if (at !== undefined) {
      const before = text.slice(0, at);
      const line = before.split('\n').length;
      where = ` (near line ${line}, column ${before.length - before.lastIndexOf('\n')})`;
    }
    throw new CertifierError('INVALID_INPUT', `${what} is not JSON${where}`, { details: { problems: ['not JSON'] } });
  }
  const twice = repeatedKey(text);
  if (twice) {
    const line = text.slice(0, twice.at).split('\n').length;
    // Named only if it looks like a field name: a file given by mistake may hold secrets.
    const key = /^[A-Za-z0-9_.-]{1,64}$/.test(twice.key) ? `the key "${twice.key}"` : 'a key';
    throw new CertifierError('INVALID_INPUT', `${what} gives ${key} twice in one object (line ${line}): JSON keeps only the last`, { details: { problems: ['repeated key'] } });
  }
  return value;
}

/**
 * The text of {"ok":true,"KEY":[ITEM,...]} in pieces, as its items come (a listing of any length
 * is never held whole): the pieces together are byte for byte `stringify({ ok: true, [key]:
 * items })` and a newline, for JSON.stringify or a stringify that writes each string on its own
 * (a program's visibleJson). The document opens with its first items, so that an error before any
 * is the only document.
 */
export class JsonItemsText {
  private opened = false;

  constructor(private readonly key: string, private readonly stringify: (value: unknown) => string = JSON.stringify) {}

  /** These items, after the opening or a comma; '' for none. */
  more(items: readonly unknown[]): string {
    return items.length ? this.open(',') + items.map((i) => this.stringify(i)).join(',') : '';
  }

  /** What closes the document. */
  end(): string {
    return `${this.open('')}]}\n`;
  }

  /** What ends a line left unfinished (a failure part way), so that what follows starts a line of its own. */
  cut(): string {
    return this.opened ? '\n' : '';
  }

  private open(separator: string): string {
    if (this.opened) return separator;
    this.opened = true;
    return `{"ok":true,${JSON.stringify(this.key)}:[`;
  }
}

/**
 * The first key that appears twice in one object of `text` (valid JSON), compared after
 * unescaping, with where it is; undefined if none.
 */
function repeatedKey(text: string): { key: string; at: number } | undefined {
  const open: (Set<string> | undefined)[] = []; // an object's keys so far; undefined for an array
  let keyNext = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
      const keys = open.at(-1);
      if (keys && keyNext) {
        const key = JSON.parse(text.slice(start, i + 1)) as string;
        if (keys.has(key)) return { key, at: start };
        keys.add(key);
        keyNext = false;
      }
    } else if (c === '{') {
      open.push(new Set());
      keyNext = true;
    } else if (c === '[') {
      open.push(undefined);
    } else if (c === '}' || c === ']') {
      open.pop();
    } else if (c === ',') {
      keyNext = open.at(-1) !== undefined;
    }
  }
  return undefined;
}

/** A JSON object (not an array, not null), as the files' top levels and entries must be. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

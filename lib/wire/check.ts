// A small collector for decode-then-validate: gather every problem of one message, then throw
// a single typed error naming them, so callers get a narrowed value or one clear failure.

import { CertifierError, type ErrorCode } from '../errors/index.ts';

/** A message for a log line, cut to `max` characters: parts of it may come from a peer. */
export function clipped(message: string, max = 1024): string {
  return message.length > max ? `${message.slice(0, max)}... (${message.length} characters)` : message;
}

/** A character as JSON escapes: \uXXXX for each UTF-16 unit (two for one beyond U+FFFF). */
function escapeUnits(c: string): string {
  let out = '';
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

/**
 * What would not show as itself on a terminal: controls, format marks, separators,
 * default-ignorables, and every space but the ASCII one (a no-break space shows as that one).
 */
export const INVISIBLE = /(?! )[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Zs}\p{Default_Ignorable_Code_Point}]/u;
const INVISIBLE_ALL = new RegExp(INVISIBLE.source, 'gu');

/** `text` with every INVISIBLE character written as \uXXXX, so it reads as what it is. */
export function escapeInvisible(text: string): string {
  return text.replace(INVISIBLE_ALL, escapeUnits);
}

const JSON_STRING = /"(?:[^"\\]|\\.)*"/g;
const NON_ASCII = /[^\x00-\x7f]/g;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * JSON.stringify, with what JSON leaves raw but would not show escaped too (for logs and
 * terminals): invisible characters; and every non-ASCII character of a string that is not in
 * Unicode form C, which would show as its composed twin (`e` + U+0301 as `é`, U+2126 as `Ω`).
 * Strings in form C keep their letters and marks as they are.
 */
export function visibleJson(value: unknown): string {
  const json = JSON.stringify(value);
  // Printable ASCII (what every log line and audit record usually is) shows as itself: no
  // normalizing or escaping to do (JSON.stringify has already escaped the controls below 0x20).
  if (PRINTABLE_ASCII.test(json)) return json;
  // Between literals there is only ASCII: a text in form C as a whole has every literal in it.
  if (json.normalize('NFC') === json) return escapeInvisible(json);
  const shown = json.replace(JSON_STRING, (literal) => {
    const text = JSON.parse(literal) as string;
    return text.normalize('NFC') === text ? literal : literal.replace(NON_ASCII, escapeUnits);
  });
  return escapeInvisible(shown);
}

/** Whether `text` would read as another text on a screen (see visibleJson). */
export function readsAsAnother(text: string): boolean {
  return INVISIBLE.test(text) || text.normalize('NFC') !== text;
}

/**
 * A value from the wire, quoted and cut short: it goes into errors and log lines, and its sender
 * chose its length; invisible characters are escaped, so the quoted text looks like what it is.
 */
export function shown(value: string, max = 64): string {
  return visibleJson(value.length > max ? `${value.slice(0, max)}...` : value) + (value.length > max ? ` (${value.length} characters)` : '');
}

/**
 * A server's refusal code as a client takes it: one of `sent` (the codes such a server sends) as
 * it is, anything else DENIED; with how a message names it (an unknown one cut short and escaped).
 */
export function peerCode(raw: string | undefined, sent: readonly ErrorCode[]): { code: ErrorCode; said: string } {
  if (!raw) return { code: 'DENIED', said: 'no reason given' };
  if ((sent as readonly string[]).includes(raw)) return { code: raw as ErrorCode, said: raw };
  return { code: 'DENIED', said: `a code no such server sends: ${shown(raw, 32)}` };
}

export class FieldCheck {
  private readonly problems: string[] = [];
  private missing = false;
  constructor(private readonly what: string) {}

  /** A required field: present (not undefined). */
  need(name: string, value: unknown): boolean {
    if (value === undefined || value === null) {
      this.problems.push(`${name} is missing`);
      this.missing = true;
      return false;
    }
    return true;
  }

  /** A non-empty string of at most `max` characters. */
  text(name: string, value: string | undefined, max = 1024): void {
    if (!this.need(name, value)) return;
    if (value!.length === 0) this.problems.push(`${name} is empty`);
    else if (value!.length > max) this.problems.push(`${name} is longer than ${max} characters`);
  }

  /** One of a fixed set of string constants. */
  oneOf(name: string, value: string | undefined, allowed: readonly string[]): void {
    if (!this.need(name, value)) return;
    if (!allowed.includes(value!)) this.problems.push(`${name} ${shown(value!)} is not one of ${allowed.join(', ')}`);
  }

  /** Bytes of an exact size, or within [min, max]. */
  bytes(name: string, value: Uint8Array | undefined, size: number | { min?: number; max?: number }): void {
    if (!this.need(name, value)) return;
    const n = value!.length;
    if (typeof size === 'number') {
      if (n !== size) this.problems.push(`${name} is ${n} bytes, expected ${size}`);
    } else if ((size.min !== undefined && n < size.min) || (size.max !== undefined && n > size.max)) {
      this.problems.push(`${name} is ${n} bytes, expected ${size.min ?? 0} to ${size.max ?? 'any'}`);
    }
  }

  /** An integer within [min, max]. */
  int(name: string, value: number | undefined, min: number, max: number): void {
    if (!this.need(name, value)) return;
    if (!Number.isInteger(value) || value! < min || value! > max) {
      this.problems.push(`${name} is ${value}, expected ${min} to ${max}`);
    }
  }

  /** A problem found by the caller's own logic. */
  add(problem: string): void {
    this.problems.push(problem);
  }

  /** Throws MISSING_FIELD or BAD_FIELD naming every problem; returns normally when clean. */
  done(): void {
    if (this.problems.length === 0) return;
    throw new CertifierError(this.missing ? 'MISSING_FIELD' : 'BAD_FIELD', `invalid ${this.what}: ${this.problems.join('; ')}`, {
      details: { message: this.what, problems: [...this.problems] },
    });
  }
}

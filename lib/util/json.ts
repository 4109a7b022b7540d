// JSON text from files an operator names (ACLs, provisioning configs). A wrong file given by
// mistake may be a secret: a parse error says where, never what (Node's message quotes the text).

import { CertifierError } from '../errors/index.ts';

/** JSON.parse, or INVALID_INPUT "WHAT is not JSON (near line L, column C)" without the text itself. */
export function parseJsonText(text: string, what: string): unknown {
  // A byte-order mark, as some editors save UTF-8, is not part of the text.
  if (text.startsWith('\ufeff')) text = text.slice(1);
  try {
    return JSON.parse(text);
  } catch (e) {
    const m = /position (\d+)/.exec((e as Error).message);
    let where = '';
    if (m) {
      const before = text.slice(0, Number(m[1]));
      const line = before.split('\n').length;
      where = ` (near line ${line}, column ${before.length - before.lastIndexOf('\n')})`;
    }
    throw new CertifierError('INVALID_INPUT', `${what} is not JSON${where}`, { details: { problems: ['not JSON'] } });
  }
}

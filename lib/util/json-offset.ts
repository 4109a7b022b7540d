// Where JSON text stops being JSON. Node 20 names no position for some of the mistakes people
// make most when editing a config or an ACL by hand (a comma after the last item of a list, a
// comment, a word without quotes): its message quotes the text around the mistake instead, which
// a parse error must not repeat (a file given by mistake may hold a secret).

const NUMBER = /(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** The offset of the first character at which `text` is not JSON (RFC 8259), or undefined when it is. */
export function jsonErrorOffset(text: string): number | undefined {
  let i = 0;
  const stop = (): never => {
    throw new Stop(i);
  };
  const space = () => {
    while (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r') i++;
  };
  const expect = (c: string) => (text[i] === c ? i++ : stop());
  const string = () => {
    expect('"');
    for (;;) {
      const c = text.charCodeAt(i);
      if (Number.isNaN(c) || c < 0x20) stop();
      i++;
      if (c === 0x22) return;
      if (c !== 0x5c) continue;
      if (text[i] === 'u') {
        for (let k = 0; k < 4; k++) if (!/[0-9a-fA-F]/.test(text[++i] ?? '')) stop();
        i++;
      } else if ('"\\/bfnrt'.includes(text[i] ?? 'x')) i++;
      else stop();
    }
  };
  const items = (close: string, item: () => void) => {
    i++;
    space();
    if (text[i] === close) return void i++;
    for (;;) {
      space();
      item();
      space();
      if (text[i] === close) return void i++;
      expect(',');
    }
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === '{') return items('}', () => (string(), space(), expect(':'), value()));
    if (c === '[') return items(']', value);
    if (c === '"') return string();
    for (const word of ['true', 'false', 'null']) {
      if (c !== word[0]) continue;
      for (const w of word) expect(w);
      return;
    }
    if (c === '-') i++;
    NUMBER.lastIndex = i;
    if (!NUMBER.test(text)) stop();
    i = NUMBER.lastIndex;
  };
  try {
    value();
    space();
    if (i < text.length) stop();
    return undefined;
  } catch (e) {
    if (e instanceof Stop) return e.at;
    return undefined; // nested past the stack's depth: no position to give
  }
}

class Stop {
  constructor(readonly at: number) {}
}

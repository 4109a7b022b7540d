// JSON from files an operator names: a parse error says where, never what; a byte-order mark is
// not an error.

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';
import { JsonItemsText, parseJsonText } from '../../lib/util/json.ts';
import { jsonErrorOffset } from '../../lib/util/json-offset.ts';
import { visibleJson } from '../../lib/wire/index.ts';

describe('parseJsonText', () => {
  it('reads JSON, with or without a UTF-8 byte-order mark before it', () => {
    expect(parseJsonText('{"a":1}', 'the config')).to.deep.equal({ a: 1 });
    expect(parseJsonText('\ufeff{"a":1}', 'the config')).to.deep.equal({ a: 1 });
  });

  it('says where the text stops being JSON, never quoting it (it may be a secret given by mistake)', () => {
    try {
      parseJsonText('{"a":\n  hunter2-secret}', 'the ACL');
      expect.fail('parsed');
    } catch (e) {
      expect(e).to.be.instanceOf(CertifierError);
      expect((e as CertifierError).code).to.equal('INVALID_INPUT');
      expect((e as Error).message).to.match(/^the ACL is not JSON( \(near line 2, column \d+\))?$/);
      expect((e as Error).message).not.to.contain('hunter2');
    }
  });

  it('finds where the text stops being JSON where Node\'s message names no position, and the same position where it does', () => {
    const texts = ['[1,]', '{"a":tru}', '// c\n{}', '{"a":1,}', '{"a":1 "b":2}', "{'a':1}", '{"a":1', '{"a":"x\ny"}', '{"a":01}', '{"a":1}}', '"\\x"', '', '[1 2]', '{"a" 1}', '{"a":-}', '{"a":"\\u12G4"}'];
    for (const text of texts) {
      const node = /position (\d+)/.exec((() => { try { JSON.parse(text); return ''; } catch (e) { return (e as Error).message; } })());
      if (node) expect(jsonErrorOffset(text), text).to.equal(Number(node[1]));
    }
    expect(['[1,]', '{"a":tru}', '// c\n{}'].map(jsonErrorOffset)).to.deep.equal([3, 8, 0]);
    for (const text of ['{"a":[1,2,{"b":null}],"c":-1.5e3}', ' "\\u00e9" ', 'true', '0']) expect(jsonErrorOffset(text), text).to.equal(undefined);
    expect(jsonErrorOffset('['.repeat(100_000)), 'nested past the stack: no position, no crash').to.equal(undefined);
    expect(() => parseJsonText('{"rules": [\n  {"a": 1},\n]}', 'the ACL')).to.throw('the ACL is not JSON (near line 3, column 1)');
  });

  it('refuses a key given twice in one object (JSON.parse keeps the last, which a reader may not see), escapes and nesting included', () => {
    const refused = (text: string) => {
      try {
        parseJsonText(text, 'the ACL');
      } catch (e) {
        expect((e as CertifierError).code).to.equal('INVALID_INPUT');
        return (e as Error).message;
      }
      return undefined;
    };
    expect(refused('{"rules": [{"measurements": ["aa"],\n "comment": "x", "measurements": ["bb"]}]}')).to.equal(
      'the ACL gives the key "measurements" twice in one object (line 2): JSON keeps only the last');
    expect(refused('{"a": 1, "\\u0061": 2}')).to.match(/gives the key "a" twice/);
    expect(refused('{"k\\"\\u0000": 1, "k\\"\\u0000": 2}')).to.match(/^the ACL gives a key twice in one object/);
    // The same key in different objects, in strings and as values, is no repeat.
    expect(refused('{"a": {"a": "a"}, "b": [{"a": 1}, {"a": 2}], "c": "\\"a\\": 1, \\"a\\": 2", "d": ["a", "a"]}')).to.equal(undefined);
  });
});

describe('JsonItemsText', () => {
  const pages = [[{ name: 'a', version: 1 }, { name: 'b\u20ac"', version: 2 }], [], [{ name: 'c', version: 3 }]];

  it('makes, page by page, the very text of the whole document, none of it before the first items', () => {
    for (const given of [pages, [[]], []]) {
      const doc = new JsonItemsText('items');
      const pieces = given.map((items) => doc.more(items));
      expect(pieces.join('') + doc.end()).to.equal(JSON.stringify({ ok: true, items: given.flat() }) + '\n');
    }
    expect(new JsonItemsText('items').more([])).to.equal('');
  });

  it('makes the text of the whole document as a given stringify writes it (visibleJson: invisible characters escaped)', () => {
    const items = [{ name: 'invoice\u202egpj.exe', type: 'x\u200by' }, { name: 'cafe\u0301' }, { name: 'plain' }];
    const doc = new JsonItemsText('items', visibleJson);
    const text = doc.more(items.slice(0, 1)) + doc.more(items.slice(1)) + doc.end();
    expect(text).to.equal(visibleJson({ ok: true, items }) + '\n');
    expect(text).to.contain('invoice\\u202egpj.exe').and.contain('cafe\\u0301').and.not.match(/[\u202e\u200b\u0301]/);
  });

  it('ends a document cut part way with a line end, never as one that parses; one not begun is nothing', () => {
    const doc = new JsonItemsText('items');
    expect(doc.cut()).to.equal('');
    const text = doc.more(pages[0]!) + doc.cut();
    expect(text.endsWith('\n')).to.equal(true);
    expect(() => JSON.parse(text)).to.throw();
  });
});

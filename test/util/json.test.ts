// JSON from files an operator names: a parse error says where, never what; a byte-order mark is
// not an error.

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';
import { parseJsonText } from '../../lib/util/json.ts';

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
});

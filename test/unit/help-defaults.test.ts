// The defaults --help prints are ones an operator can read: a repeatable flag starts from an empty
// list, which commander would print as "(default: [])", beside the default its own text gives.

import { expect } from 'chai';
import { helpTexts, type Helps } from '../support/helpers.ts';

describe('--help defaults', () => {
  let helps: Helps;
  before(() => (helps = helpTexts()));

  it('prints no "(default: [])" for a repeatable flag (export-store --tag said "(default: every exportable item) (default: [])")', () => {
    const shown = Object.entries(helps).flatMap(([program, subs]) =>
      Object.entries(subs).filter(([, text]) => text.replace(/\s+/g, ' ').includes('(default: [])')).map(([sub]) => `${program} ${sub}`));
    expect(shown).to.deep.equal([]);
  });

  it('still gives the default a repeatable flag\'s own text names, once', () => {
    const tag = helps['cert-utility']!['export-store']!.replace(/\s+/g, ' ');
    expect(tag.match(/default: every exportable item/g)).to.have.length(1);
  });
});

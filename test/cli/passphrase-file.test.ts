// A passphrase file that does not unlock the store, holding what an editor or a careless echo
// puts there (a byte-order mark, a second line end, a second line, a space at either end): all of it is part of
// the passphrase, and the refusal says which, where it said only "wrong passphrase".

import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, tempDir } from '../support/helpers.ts';

describe('a passphrase file that does not unlock the store', function () {
  this.slow(6_000);
  const tmp = tempDir('passphrase-file-');
  const at = (name: string) => join(tmp.dir, name);
  const pass = (name: string, text: string) => (writeFileSync(at(name), text, { mode: 0o600 }), at(name));
  before(async () => {
    const made = await run('cert-utility', ['create-store', '--store', at('store'), '--passphrase-file', pass('right', 'hunter2\n'), '--scrypt-log-n', '10']);
    expect(made.status, made.stderr).to.equal(0);
  });
  after(() => tmp.cleanup());

  const refused = async (file: string) => {
    const r = await run('cert-utility', ['list-items', '--store', at('store'), '--passphrase-file', file]);
    expect([r.status, r.out], r.stderr).to.deep.equal([4, '']);
    expect(r.stderr).to.contain(`cert-utility: error: cannot unlock the cryptstore at ${at('store')}: wrong passphrase, or damaged metadata`).and.to.contain('[WRONG_KEY]');
    return r.stderr;
  };

  it('names what the passphrase holds that may be there by mistake: a byte-order mark, another line end, a second line, a space or tab at either end', async () => {
    const cases: [string, string, string][] = [
      ['bom', '\ufeffhunter2\n', 'begins with a byte-order mark (as some editors save UTF-8)'],
      ['two-lines', 'hunter2\n\n', 'ends with a line-end character beyond the one LF or CRLF taken off'],
      ['crlf-twice', 'hunter2\r\n\r\n', 'ends with a line-end character beyond the one LF or CRLF taken off'],
      ['second-line', 'hunter2\nmore\n', 'holds a second line (a line end with text after it)'],
      ['second-line-crlf', 'hunter2\r\nmore', 'holds a second line (a line end with text after it)'],
      ['space', 'hunter2 \n', 'ends with a space or tab'],
      ['both', ' hunter2\t', 'begins with a space or tab and ends with a space or tab'],
    ];
    for (const [name, text, says] of cases) {
      const file = pass(name, text);
      expect(await refused(file), name).to.contain(`(${file} ${says}, which is part of the passphrase) [WRONG_KEY]`);
    }
  });

  it('adds nothing for a passphrase that is merely wrong, and still takes the file with one line end (LF or CRLF) or none', async () => {
    expect(await refused(pass('wrong', 'hunter3\n'))).not.to.contain('part of the passphrase');
    for (const [name, text] of [['lf', 'hunter2\n'], ['crlf', 'hunter2\r\n'], ['none', 'hunter2']]) {
      const r = await run('cert-utility', ['list-items', '--store', at('store'), '--passphrase-file', pass(name!, text!)]);
      expect(r.status, `${name}: ${r.stderr}`).to.equal(0);
    }
  });

  it('says nothing of a passphrase file that was not the one refused: rekey-store whose old passphrase is wrong, its new one ending with a space', async () => {
    const r = await run('cert-utility', ['rekey-store', '--store', at('store'), '--passphrase-file', pass('old-wrong', 'hunter3\n'), '--new-passphrase-file', pass('new-spaced', 'new one \n'), '--scrypt-log-n', '10']);
    expect([r.status, r.out], r.stderr).to.deep.equal([4, '']);
    expect(r.stderr).to.contain(`cannot unlock the cryptstore at ${at('store')}: wrong passphrase, or damaged metadata [WRONG_KEY]`).and.not.to.contain('part of the passphrase');
  });

  it('names the old passphrase file, once, where rekey-store\'s old one holds a space at its end and the new one too', async () => {
    const r = await run('cert-utility', ['rekey-store', '--store', at('store'), '--passphrase-file', pass('old-spaced', 'hunter2 \n'), '--new-passphrase-file', pass('new-spaced', 'new one \n'), '--scrypt-log-n', '10']);
    expect([r.status, r.out], r.stderr).to.deep.equal([4, '']);
    expect(r.stderr).to.contain(`: wrong passphrase, or damaged metadata (${at('old-spaced')} ends with a space or tab, which is part of the passphrase) [WRONG_KEY]`).and.not.to.contain('new-spaced');
  });

  it('names what a bundle passphrase file holds by mistake when it does not open the bundle (import-store), and nothing of one merely wrong', async () => {
    const exported = await run('cert-utility', ['export-store', '--store', at('store'), '--passphrase-file', at('right'), '--out', at('bundle'), '--bundle-passphrase-file', pass('bundle-pass', 'opensesame\n'), '--scrypt-log-n', '10']);
    expect(exported.status, exported.stderr).to.equal(0);
    const file = pass('bundle-crlf-twice', 'opensesame\r\n\r\n');
    const r = await run('cert-utility', ['import-store', '--store', at('store'), '--passphrase-file', at('right'), '--in', at('bundle'), '--bundle-passphrase-file', file]);
    expect([r.status, r.out], r.stderr).to.deep.equal([4, '']);
    expect(r.stderr).to.contain(`cannot open the bundle: wrong bundle passphrase, or a damaged bundle (${file} ends with a line-end character beyond the one LF or CRLF taken off, which is part of the passphrase) [WRONG_KEY]`);
    const merely = await run('cert-utility', ['import-store', '--store', at('store'), '--passphrase-file', at('right'), '--in', at('bundle'), '--bundle-passphrase-file', pass('bundle-wrong', 'opensesame!\n')]);
    expect([merely.status, merely.out], merely.stderr).to.deep.equal([4, '']);
    expect(merely.stderr).to.contain('wrong bundle passphrase, or a damaged bundle [WRONG_KEY]');
  });
});

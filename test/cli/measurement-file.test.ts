// --measurement-file's refusals of hex text that is not one measurement's hex on a line of its
// own: what the file holds, counted in hex digits and lines, and, for `xxd -p` output (a
// measurement's hex wrapped at 60 digits), the command that turns it into the raw bytes.

import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertifierError } from '../../lib/errors/index.ts';
import { readMeasurementFile } from '../../cmd/common/keys.ts';
import { tempDir } from '../support/helpers.ts';

/** `xxd -p` of these bytes: their hex, 60 digits (30 bytes) a line. */
const xxdP = (bytes: Buffer) => `${bytes.toString('hex').match(/.{1,60}/g)!.join('\n')}\n`;

describe('--measurement-file: hex text that is not a measurement', () => {
  let tmp: ReturnType<typeof tempDir>;
  before(() => (tmp = tempDir('measurement-file-')));
  after(() => tmp.cleanup());

  const refusal = async (content: string): Promise<CertifierError> => {
    const file = join(tmp.dir, 'measurement');
    writeFileSync(file, content);
    const e = await readMeasurementFile(file).then(() => expect.fail('taken'), (x: unknown) => x);
    expect(e).to.be.instanceOf(CertifierError);
    expect((e as CertifierError).code).to.equal('INVALID_INPUT');
    return e as CertifierError;
  };

  it('says of a measurement\'s hex as xxd -p wrote it, over two lines, that it is that, and how to make the raw file (xxd -r -p), counting digits, not the newline', async () => {
    const m = createHash('sha256').update('vm image').digest();
    for (const bytes of [m, Buffer.concat([m, m.subarray(0, 16)])]) {
      const e = await refusal(xxdP(bytes));
      const file = join(tmp.dir, 'measurement');
      expect(e.message).to.contain(`it holds ${bytes.length * 2} hex digits over 2 lines, as xxd -p writes them`);
      expect(e.message).to.contain(`xxd -r -p ${file} > ${file}.raw`);
      expect(e.message).not.to.match(/characters of hex text/);
    }
  });

  it('matches what xxd -p writes, where xxd is installed', async function () {
    const m = createHash('sha256').update('vm image').digest();
    let written: string;
    try {
      written = execFileSync('xxd', ['-p'], { input: m, encoding: 'utf8' });
    } catch {
      return this.skip();
    }
    expect(written).to.equal(xxdP(m));
  });

  it('counts the digits and lines of hex that holds no one measurement, and gives no xxd -r that would not make one', async () => {
    const m = createHash('sha256').update('vm image').digest('hex');
    const two = await refusal(`${m}\n${m}\n`);
    expect(two.message).to.contain('it holds 128 hex digits over 2 lines, where a measurement\'s hex is 64 or 96 digits on one line');
    expect(two.message).not.to.contain('xxd -r -p');
    const short = await refusal(m.slice(0, 32));
    expect(short.message).to.contain('it holds 32 hex digits, where a measurement\'s hex is 64 or 96 digits on one line');
  });
});

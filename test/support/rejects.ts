// One way for tests to say "this promise fails with that code".

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';

/** Awaits `p` and expects a CertifierError with `code`; returns it for further checks. */
export async function rejects(p: Promise<unknown>, code: string): Promise<CertifierError> {
  try {
    await p;
  } catch (e) {
    expect(e, String(e)).to.be.instanceOf(CertifierError);
    expect((e as CertifierError).code, (e as Error).message).to.equal(code);
    return e as CertifierError;
  }
  throw new Error(`expected a rejection with ${code}, but it resolved`);
}

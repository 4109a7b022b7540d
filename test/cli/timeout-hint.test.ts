// What a client program says when one of its waits ran out: the flag goes beside the step that
// timed out, wherever that step sits in the message, and what to do comes at the end.

import { expect } from 'chai';
import { explainTimeout } from '../../cmd/common/cli.ts';
import { timeoutError } from '../../lib/channel/errors.ts';
import { CertifierError } from '../../lib/errors/index.ts';

const advice = ': the server is stopped, overloaded or cut off; a retry may succeed, or give it longer with --timeout';

describe('cli: a wait that ran out names --timeout beside its step', () => {
  it('a handshake that timed out: the flag after the step, then what to do', () => {
    const e = explainTimeout(timeoutError('TLS handshake with', '127.0.0.1:8120', 1000), { timeout: 1 }) as CertifierError;
    expect(e.code).to.equal('TIMEOUT');
    expect(e.message).to.equal(`TLS handshake with 127.0.0.1:8120 timed out after 1000 ms (--timeout 1)${advice}`);
  });

  it('a retrieve\'s answer that timed out: the flag beside the step, not after "nothing was written"', () => {
    const step = timeoutError('waiting for an answer from', '127.0.0.1:8120', 1000);
    const e = explainTimeout(new CertifierError('TIMEOUT', `${step.message}; nothing was written`, { cause: step }), { timeout: 1 }) as CertifierError;
    expect(e.message).to.equal(`waiting for an answer from 127.0.0.1:8120 timed out after 1000 ms (--timeout 1); nothing was written${advice}`);
  });

  it('a provision of several secrets cut off by one timeout: the step named once, with the flag', () => {
    const step = timeoutError('waiting for an answer from', '127.0.0.1:8120', 2000);
    const e = explainTimeout(new CertifierError('TIMEOUT', `could not provision "a"; "b": ${step.message}; nothing was written`, { cause: step }), { timeout: 2 }) as CertifierError;
    expect(e.message).to.equal(`could not provision "a"; "b": waiting for an answer from 127.0.0.1:8120 timed out after 2000 ms (--timeout 2); nothing was written${advice}`);
  });

  it('leaves a TIMEOUT that is not a wait of its own (the server\'s storage) as it is', () => {
    const theirs = new CertifierError('TIMEOUT', 'the key database did not answer in time');
    expect(explainTimeout(theirs, { timeout: 1 })).to.equal(theirs);
  });
});

// Key service requests, decoded then validated: what the server refuses before any handler runs.

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';
import { encode } from '../../lib/wire/index.ts';
import { encodeKeyRequest, parseKeyRequest } from '../../lib/keyservice/protocol.ts';

function refusal(bytes: Uint8Array): { code: string; message: string } | 'accepted' {
  try {
    parseKeyRequest(bytes);
    return 'accepted';
  } catch (e) {
    if (!(e instanceof CertifierError)) throw e;
    return { code: e.code, message: e.message };
  }
}

describe('keyservice: requests are validated before they are handled', () => {
  it('refuses a store of an empty value, which is always a mistake (BAD_FIELD)', () => {
    const empty = encode('key_service_message_request', { requestType: 'store', resourceName: 'k', data: new Uint8Array() });
    expect(refusal(empty)).to.deep.include({ code: 'BAD_FIELD' });
    expect(refusal(encode('key_service_message_request', { requestType: 'store', resourceName: 'k' }))).to.not.equal('accepted');
    expect(parseKeyRequest(encodeKeyRequest({ action: 'store', name: 'k', data: new Uint8Array([0]) })).data).to.deep.equal(new Uint8Array([0]));
  });

  it('needs a name for everything but list, which takes an empty prefix', () => {
    for (const action of ['store', 'retrieve', 'delete'] as const) {
      expect(refusal(encodeKeyRequest({ action, name: '', ...(action === 'store' ? { data: new Uint8Array([1]) } : {}) }))).to.deep.include({ code: 'BAD_FIELD' });
    }
    expect(parseKeyRequest(encodeKeyRequest({ action: 'list', name: '' })).name).to.equal('');
  });

  it('refuses an unknown action and a name with a control character', () => {
    expect(refusal(encode('key_service_message_request', { requestType: 'steal', resourceName: 'k' }))).to.deep.include({ code: 'BAD_FIELD' });
    expect(refusal(encodeKeyRequest({ action: 'retrieve', name: 'a\nb' }))).to.deep.include({ code: 'BAD_FIELD' });
  });
});

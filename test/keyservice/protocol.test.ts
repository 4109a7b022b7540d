// Key service requests, decoded then validated: what the server refuses before any handler runs.

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';
import { DEFAULT_FRAME_LIMIT, encode, ENTRY_TYPES, MAX_TAG_LENGTH, MAX_VERSION } from '../../lib/wire/index.ts';
import { encodeKeyRequest, LIST_PAGE, MAX_CREDENTIAL_CERTS, MAX_VALUE_BYTES, parseKeyRequest, succeeded } from '../../lib/keyservice/protocol.ts';

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

  it('refuses the fields only a store takes in any other request, naming each (BAD_FIELD)', () => {
    const storeOnly = { expectedVersion: 1, data: new Uint8Array([1]), exportable: true, valueType: 'binary-blob' };
    for (const action of ['retrieve', 'delete', 'list'] as const) {
      for (const [field, value] of Object.entries(storeOnly)) {
        const r = refusal(encode('key_service_message_request', { requestType: action, resourceName: 'k/', [field]: value }));
        expect(r, `${action} with ${field}`).to.deep.include({ code: 'BAD_FIELD' });
        const wire = field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
        expect((r as { message: string }).message).to.include(`${wire} is only for store`);
      }
      const all = refusal(encode('key_service_message_request', { requestType: action, resourceName: 'k/', ...storeOnly })) as { message: string };
      expect(all.message.indexOf('expected_version is only')).to.be.lessThan(all.message.indexOf('value_type is only'));
    }
    expect(parseKeyRequest(encode('key_service_message_request', { requestType: 'store', resourceName: 'k', ...storeOnly }))).to.include({ action: 'store', exportable: true });
  });

  it('takes list_after, a name, only with list', () => {
    expect(parseKeyRequest(encodeKeyRequest({ action: 'list', name: 'p/', listAfter: 'p/x' }))).to.include({ name: 'p/', listAfter: 'p/x' });
    expect(parseKeyRequest(encodeKeyRequest({ action: 'list', name: '' }))).not.to.have.property('listAfter');
    expect(refusal(encodeKeyRequest({ action: 'retrieve', name: 'k', listAfter: 'a' }))).to.deep.include({ code: 'BAD_FIELD' });
    expect(refusal(encodeKeyRequest({ action: 'list', name: '', listAfter: '' }))).to.deep.include({ code: 'BAD_FIELD' });
    expect(refusal(encodeKeyRequest({ action: 'list', name: '', listAfter: 'a\u0000' }))).to.deep.include({ code: 'BAD_FIELD' });
  });

  it('fits the largest page of a listing in one frame', () => {
    const longest = '\uffff'.repeat(MAX_TAG_LENGTH); // 3 bytes each in UTF-8
    const type = [...ENTRY_TYPES].sort((a, b) => b.length - a.length)[0]!;
    const info = { resourceName: longest, version: MAX_VERSION, valueType: type, timeEntered: '2026-12-05T23:59:59.999Z', exportable: false, size: MAX_VALUE_BYTES };
    const data = encode('key_service_list', { resources: Array.from({ length: LIST_PAGE }, () => info), nextAfter: longest });
    expect(succeeded(longest, { data }).length).to.be.below(DEFAULT_FRAME_LIMIT);
  });

  it('refuses an unknown action and a name with a control character', () => {
    expect(refusal(encode('key_service_message_request', { requestType: 'steal', resourceName: 'k' }))).to.deep.include({ code: 'BAD_FIELD' });
    expect(refusal(encodeKeyRequest({ action: 'retrieve', name: 'a\nb' }))).to.deep.include({ code: 'BAD_FIELD' });
  });
});

describe('keyservice: a request field sent in another form is refused, not dropped', () => {
  const base = () => Buffer.from(encodeKeyRequest({ action: 'store', name: 'k', data: new Uint8Array([1]) }));

  it('refuses an expected_version sent length-delimited (DECODE_FAILED naming the wire type), so a conditional store never runs unconditionally', () => {
    // field 100, wire type 2, one byte: protobufjs alone would skip it and store unconditionally
    const r = refusal(Buffer.concat([base(), Buffer.from([0xa2, 0x06, 0x01, 0x05])]));
    expect(r).to.deep.include({ code: 'DECODE_FAILED' });
    expect((r as { message: string }).message).to.include('expectedVersion has wire type 2');
  });

  it('refuses a version sent as fixed32 (DECODE_FAILED naming the wire type)', () => {
    const r = refusal(Buffer.concat([base(), Buffer.from([(4 << 3) | 5, 2, 0, 0, 0])]));
    expect(r).to.deep.include({ code: 'DECODE_FAILED' });
    expect((r as { message: string }).message).to.include('version has wire type 5');
  });
});

describe('keyservice: versions in a request', () => {
  const data = new Uint8Array([1]);

  it('accepts a store of version N expecting N - 1 and refuses one expecting N (BAD_FIELD)', () => {
    expect(parseKeyRequest(encodeKeyRequest({ action: 'store', name: 'k', data, version: 3, expectedVersion: 2 }))).to.include({ version: 3, expectedVersion: 2 });
    const r = refusal(encodeKeyRequest({ action: 'store', name: 'k', data, version: 3, expectedVersion: 3 }));
    expect(r).to.deep.include({ code: 'BAD_FIELD' });
    expect((r as { message: string }).message).to.include('disagree');
  });

  it('refuses a version or expected_version of 2^64 + 1, which protobufjs cuts to 1 (DECODE_FAILED), as it does 2^32 + 1', () => {
    // Ten bytes, the last 0x02: bit 64, past what a 64-bit varint holds.
    const past64 = Buffer.from('81808080808080808002', 'hex');
    const past32 = Buffer.from('8180808010', 'hex');
    for (const varint of [past32, past64]) {
      const retrieve = Buffer.concat([encodeKeyRequest({ action: 'retrieve', name: 'k' }), Buffer.from([4 << 3]), varint]);
      const store = Buffer.concat([encodeKeyRequest({ action: 'store', name: 'k', data }), Buffer.from([0xa0, 0x06]), varint]);
      for (const bytes of [retrieve, store]) expect(refusal(bytes), varint.toString('hex')).to.deep.include({ code: 'DECODE_FAILED' });
    }
  });

  it('refuses version -1 (a ten-byte varint) in retrieve, store and delete (BAD_FIELD)', () => {
    for (const action of ['retrieve', 'store', 'delete'] as const) {
      const bytes = encode('key_service_message_request', { requestType: action, resourceName: 'k', version: -1, ...(action === 'store' ? { data } : {}) });
      expect(refusal(bytes), action).to.deep.include({ code: 'BAD_FIELD' });
    }
  });
});

describe('keyservice: names and list prefixes are checked alike', () => {
  /** A request for `name` with each '~' in it sent as the byte 0xff (invalid UTF-8). */
  const withFF = (action: 'retrieve' | 'list', name: string) => {
    const bytes = Buffer.from(encodeKeyRequest({ action, name }));
    for (let i = bytes.indexOf(0x7e); i >= 0; i = bytes.indexOf(0x7e, i + 1)) bytes[i] = 0xff;
    return bytes;
  };

  it('refuses a resource name that is not valid UTF-8 (bytes 61 ff) as BAD_FIELD', () => {
    const r = refusal(withFF('retrieve', 'a~'));
    expect(r).to.deep.include({ code: 'BAD_FIELD' });
    expect((r as { message: string }).message).to.include('not valid UTF-8');
  });

  it('refuses a list prefix with a control character, invalid UTF-8 or a lone surrogate (BAD_FIELD)', () => {
    expect(refusal(encodeKeyRequest({ action: 'list', name: 'p\u0001' }))).to.deep.include({ code: 'BAD_FIELD' });
    expect(refusal(withFF('list', 'p~'))).to.deep.include({ code: 'BAD_FIELD' });
    // a lone surrogate goes out as bytes that are not UTF-8, and is refused as such
    expect(refusal(encodeKeyRequest({ action: 'list', name: 'p\ud800' }))).to.deep.include({ code: 'BAD_FIELD' });
    expect(parseKeyRequest(encodeKeyRequest({ action: 'list', name: 'p/' })).name).to.equal('p/');
  });
});

describe('keyservice: the largest request fields', () => {
  it('accepts a store of MAX_VALUE_BYTES and refuses one byte more (BAD_FIELD)', () => {
    expect(parseKeyRequest(encodeKeyRequest({ action: 'store', name: 'k', data: new Uint8Array(MAX_VALUE_BYTES) })).data).to.have.length(MAX_VALUE_BYTES);
    expect(refusal(encodeKeyRequest({ action: 'store', name: 'k', data: new Uint8Array(MAX_VALUE_BYTES + 1) }))).to.deep.include({ code: 'BAD_FIELD' });
  });

  it(`accepts credentials of MAX_CREDENTIAL_CERTS certificates and refuses one more (BAD_FIELD)`, () => {
    const certs = (n: number) => Array.from({ length: n }, () => new Uint8Array([0x30, 0]));
    expect(parseKeyRequest(encodeKeyRequest({ action: 'retrieve', name: 'k', credentials: certs(MAX_CREDENTIAL_CERTS) })).credentials).to.have.length(MAX_CREDENTIAL_CERTS);
    expect(refusal(encodeKeyRequest({ action: 'retrieve', name: 'k', credentials: certs(MAX_CREDENTIAL_CERTS + 1) }))).to.deep.include({ code: 'BAD_FIELD' });
  });

  it('refuses credentials of half a million empty entries (a 1 MiB frame) as too many', () => {
    // Counted on the wire before they are decoded (decoded first, they were 60 MB of arrays and
    // 0.3 s of work for a refusal). Its cost is not asserted here: tests assert no timings.
    const chain = new Uint8Array(DEFAULT_FRAME_LIMIT - 64);
    for (let i = 0; i < chain.length; i += 2) chain[i] = 0x0a; // cert_certs, 0 bytes long
    const r = refusal(encode('key_service_message_request', { requestType: 'list', resourceName: '', serializedCredentials: chain }));
    expect(r).to.deep.include({ code: 'BAD_FIELD' });
    expect((r as { message: string }).message).to.contain(`serialized_credentials must hold 1 to ${MAX_CREDENTIAL_CERTS} certificates`);
  });
});

// What the key service's audit records say about each request: a delete names the version asked
// for (0 = all) and how many went, a refusal the version asked for, a malformed request its
// action and name where those are valid; and a field that does not apply to a request is refused.

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from '../../lib/crypto/index.ts';
import { decode, encode, type KeyServiceList } from '../../lib/wire/index.ts';
import type { LaterAnswer } from '../../lib/channel/index.ts';
import { AuditLog, verifyAudit } from '../../lib/keyservice/audit.ts';
import { KeyService } from '../../lib/keyservice/handlers.ts';
import { KeyStore } from '../../lib/keyservice/keystore.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { encodeKeyRequest, parseKeyResponse } from '../../lib/keyservice/protocol.ts';
import { tempDir } from '../support/helpers.ts';
import { member } from './member.ts';

describe('key service: audit records and fields that do not apply', () => {
  let tmp: ReturnType<typeof tempDir>;
  let backend: LevelBackend;
  let audit: AuditLog;
  let service: KeyService;
  let keystore: KeyStore;
  let logged: Record<string, unknown>[];
  const { acl, conn: connectionOf } = member('bb'.repeat(32), '2f');
  const conn = connectionOf('c1');
  const send = async (bytes: Uint8Array) => {
    const staged: Uint8Array | LaterAnswer = await service.handleStaged(bytes, conn);
    return { bytes: staged instanceof Uint8Array ? staged : await staged.later };
  };
  const ask = async (r: Parameters<typeof encodeKeyRequest>[0]) => parseKeyResponse((await send(encodeKeyRequest(r))).bytes);
  const records = () => readFileSync(join(tmp.dir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const last = () => {
    const r = records().at(-1)!;
    return { action: r.action, resource: r.resource, version: r.version, deleted: r.deleted, decision: r.decision, code: r.code };
  };

  beforeEach(async () => {
    tmp = tempDir('keyservice-audit-');
    backend = await LevelBackend.open(join(tmp.dir, 'data'));
    audit = await AuditLog.open(join(tmp.dir, 'audit.jsonl'));
    keystore = new KeyStore(backend, randomBytes(32));
    logged = [];
    service = new KeyService({ keystore, policyCert: new Uint8Array(), acl, audit, reserved: { names: [], prefixes: [] }, log: (r) => void logged.push(r) });
  });
  afterEach(async () => {
    await audit.close();
    await backend.close();
    tmp.cleanup();
  });

  it('records the version a delete asked for (0 = all) and how many versions went', async () => {
    for (let i = 0; i < 3; i++) await ask({ action: 'store', name: 'd', data: new Uint8Array([i + 1]) });
    const one = await ask({ action: 'delete', name: 'd', version: 2 });
    expect(decode<KeyServiceList>('key_service_list', one.data!)).to.deep.equal({ resources: [{ version: 2 }], deleted: 1 });
    expect(last()).to.deep.equal({ action: 'delete', resource: 'd', version: 2, deleted: 1, decision: 'allow', code: undefined });
    const all = await ask({ action: 'delete', name: 'd', version: 0 });
    expect(decode<KeyServiceList>('key_service_list', all.data!)).to.deep.equal({ resources: [{ version: 1 }, { version: 3 }], deleted: 2 });
    expect(last()).to.deep.equal({ action: 'delete', resource: 'd', version: 0, deleted: 2, decision: 'allow', code: undefined });
    const none = await ask({ action: 'delete', name: 'd', version: 0 });
    expect(none.errorCode).to.equal('NOT_FOUND');
    expect(last()).to.deep.equal({ action: 'delete', resource: 'd', version: 0, deleted: undefined, decision: 'deny', code: 'NOT_FOUND' });
    // The log line's detail says it as a retrieve's does.
    expect(logged.at(-1)).to.include({ event: 'request', detail: 'no key named "d"' });
    await ask({ action: 'delete', name: 'd', version: 2 });
    expect(logged.at(-1)).to.include({ event: 'request', detail: 'no version 2 of "d"' });
    expect(await verifyAudit(join(tmp.dir, 'audit.jsonl'))).to.deep.equal({ ok: true, lines: 7 });
  });

  it('records the version a refused retrieve asked for, and the action and name of a request refused as malformed', async () => {
    await ask({ action: 'store', name: 'r', data: new Uint8Array([1]) });
    expect((await ask({ action: 'retrieve', name: 'r', version: 5 })).errorCode).to.equal('NOT_FOUND');
    expect(last()).to.include({ action: 'retrieve', resource: 'r', version: 5, decision: 'deny', code: 'NOT_FOUND' });
    // A store whose version and expected_version disagree is malformed, yet its record says what it was.
    const disagree = encode('key_service_message_request', { resourceName: 'r', requestType: 'store', version: 3, expectedVersion: 0, data: new Uint8Array([2]) });
    expect(parseKeyResponse((await send(disagree)).bytes).errorCode).to.equal('BAD_FIELD');
    expect(last()).to.include({ action: 'store', resource: 'r', decision: 'deny', code: 'BAD_FIELD' });
    // So is a delete of version 2^32 (which protobuf readers cut to 0, "all"): refused, and recorded as sent.
    const huge = new Uint8Array([...encode('key_service_message_request', { resourceName: 'r', requestType: 'delete' }), 0x20, 0x80, 0x80, 0x80, 0x80, 0x10]);
    expect(parseKeyResponse((await send(huge)).bytes).errorCode).to.equal('DECODE_FAILED');
    expect(last()).to.include({ action: 'delete', resource: 'r', version: 2 ** 32, decision: 'deny', code: 'DECODE_FAILED' });
    // And a delete of one version refused for a field that does not apply keeps that version.
    const withExpected = encode('key_service_message_request', { resourceName: 'r', requestType: 'delete', version: 1, expectedVersion: 1 });
    expect(parseKeyResponse((await send(withExpected)).bytes).errorCode).to.equal('BAD_FIELD');
    expect(last()).to.include({ action: 'delete', resource: 'r', version: 1, decision: 'deny', code: 'BAD_FIELD' });
    const garbage = new Uint8Array([0x12, 0x03, 0x62, 0x61, 0x64]); // request_type "bad"
    expect(parseKeyResponse((await send(garbage)).bytes).errorCode).to.equal('BAD_FIELD');
    expect(last()).to.include({ action: 'unknown', decision: 'deny', code: 'BAD_FIELD' });
  });

  it('refuses fields that do not apply to the request, or that it does not know, rather than dropping them, and carries out nothing', async () => {
    await ask({ action: 'store', name: 'f', data: new Uint8Array([1]) });
    await ask({ action: 'store', name: 'f', data: new Uint8Array([2]) });
    const cases: [string, Record<string, unknown>][] = [
      ['delete with expected_version', { requestType: 'delete', expectedVersion: 99 }],
      ['delete with data', { requestType: 'delete', data: new Uint8Array([1]) }],
      ['retrieve with exportable', { requestType: 'retrieve', exportable: false }],
      ['list with version', { requestType: 'list', version: 1 }],
      ['retrieve with value_type', { requestType: 'retrieve', valueType: 'other' }],
      ['retrieve with a field this server does not know', { requestType: 'retrieve', unknown: true }],
    ];
    for (const [what, { unknown, ...fields }] of cases) {
      const bytes = encode('key_service_message_request', { resourceName: 'f', ...fields });
      const r = parseKeyResponse((await send(unknown ? new Uint8Array([...bytes, 0xc8, 0x06, 0x01]) : bytes)).bytes); // field 105
      expect(r.errorCode, what).to.equal(unknown ? 'DECODE_FAILED' : 'BAD_FIELD');
    }
    // A store that names its version (as the original key client does) must make exactly that
    // version: not an earlier one, and not a deleted one (numbers are never given twice).
    const storeAs = (version: number) => encode('key_service_message_request', { resourceName: 'f', requestType: 'store', version, data: new Uint8Array([3]) });
    expect(parseKeyResponse((await send(storeAs(2))).bytes).errorCode).to.equal('VERSION_CONFLICT');
    expect(last()).to.include({ action: 'store', resource: 'f', version: 2, decision: 'deny', code: 'VERSION_CONFLICT' });
    expect(parseKeyResponse((await send(storeAs(3))).bytes)).to.include({ status: 'succeeded', version: 3 });
    await ask({ action: 'delete', name: 'f', version: 3 });
    expect(parseKeyResponse((await send(storeAs(3))).bytes).errorCode, 'version 3 was deleted: it is never made again').to.equal('VERSION_CONFLICT');
    expect(parseKeyResponse((await send(storeAs(4))).bytes)).to.include({ status: 'succeeded', version: 4 });
    const listed = decode<KeyServiceList>('key_service_list', (await ask({ action: 'list', name: 'f' })).data!);
    expect(listed.resources!.map((i) => i.version)).to.deep.equal([4]);
    expect((await ask({ action: 'retrieve', name: 'f', version: 1 })).status, 'the delete with expected_version deleted nothing').to.equal('succeeded');
  });

  it('refuses a new name that would look like another (BAD_FIELD), and gives one made before that rule its next version', async () => {
    expect((await ask({ action: 'store', name: 'n/cafe\u0301', data: new Uint8Array([1]) })).errorCode).to.equal('BAD_FIELD');
    expect(last()).to.include({ action: 'store', resource: 'n/cafe\u0301', decision: 'deny', code: 'BAD_FIELD' });
    await keystore.store('n/old\u200b', new Uint8Array([1]), { type: 'binary-blob', exportable: true }); // as an earlier server did
    expect(await ask({ action: 'store', name: 'n/old\u200b', data: new Uint8Array([2]) })).to.include({ status: 'succeeded', version: 2 });
    // Once every version is gone it is a new name again (asked under the backend's lock, with the store).
    await ask({ action: 'delete', name: 'n/old\u200b', version: 0 });
    expect((await ask({ action: 'store', name: 'n/old\u200b', data: new Uint8Array([3]) })).errorCode).to.equal('BAD_FIELD');
  });

  it('answers a delete of every version of a long name in a small frame (each version named by its number alone)', async function () {
    this.timeout(120_000);
    const name = '€'.repeat(256); // 768 bytes: repeated per version, 1,400 versions passed the 1 MiB frame
    for (let i = 0; i < 1500; i++) await ask({ action: 'store', name, data: new Uint8Array([1]) });
    const { bytes } = await send(encodeKeyRequest({ action: 'delete', name, version: 0 }));
    expect(bytes.length).to.be.below(16 * 1024);
    const list = decode<KeyServiceList>('key_service_list', parseKeyResponse(bytes).data!);
    expect(list.deleted).to.equal(1500);
    expect(list.resources!.map((i) => i.version)).to.deep.equal(Array.from({ length: 1500 }, (_, i) => i + 1));
    expect(last()).to.include({ action: 'delete', version: 0, deleted: 1500, decision: 'allow' });
  });
});

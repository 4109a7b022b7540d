// key-client against a key-server that completes mutual TLS with a real, pinned identity and then
// answers whatever it likes (the channel's serve() with a chosen handler): what the client prints,
// writes and exits with is its own checks' outcome, never the server's choice.

import { expect } from 'chai';
import { serve, type ChannelServer } from '../../lib/channel/index.ts';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode } from '../../lib/wire/index.ts';
import { utf8 } from '../../lib/crypto/index.ts';
import { toPem } from '../../lib/pki/index.ts';
import { failed, parseKeyRequest, succeeded, type KeyRequest } from '../../lib/keyservice/protocol.ts';
import { run } from '../support/helpers.ts';
import { Domain, expectFailure, expectSuccess, type Machine } from './domain.ts';

describe('e2e: key-client against a hostile key-server', function () {
  this.timeout(60_000);
  let d: Domain;
  let client: Machine;
  let server: ChannelServer;
  let answer: (req: KeyRequest) => Uint8Array = (req) => succeeded(req.name);

  before(async () => {
    let ks: Machine;
    ({ d, machines: { keyserver: ks, client } } = await Domain.setUp({ keyserver: 'key-server', client: 'client' }));
    const identity = await d.identity(ks);
    server = await serve({
      host: '127.0.0.1', port: 0,
      tls: { key: identity.key, cert: toPem(identity.certificate), ca: toPem(d.policyCert), requestCert: true },
      handler: async (bytes) => answer(parseKeyRequest(bytes)),
    });
  });
  after(async () => {
    await server?.close();
    await d?.close();
  });

  const kc = (cmd: string, args: string[] = []) => run('key-client', [cmd, ...args, '--server', `127.0.0.1:${server.address.port}`, '--domain', d.name,
    '--policy-cert', d.policyCertFile, '--server-measurement', d.measurementHex('key-server'), ...client.storeArgs], { cwd: d.dir });
  const info = (name: string) => ({ resourceName: name, version: 1, valueType: 'binary-blob', timeEntered: '2026-12-05T00:00:00Z', exportable: true, size: 3 });
  const listing = (...names: string[]) => (req: KeyRequest) => succeeded(req.name, { data: encode('key_service_list', { resources: names.map(info) }) });

  it('list shows a name\'s invisible characters as \\uXXXX in the text and the --json forms', async () => {
    answer = listing('invoice\u202egpj.exe', 'zero\u200bwidth');
    const text = await kc('list');
    const json = await kc('list', ['--json']);
    for (const r of [text, json]) expect(expectSuccess(r).out).to.contain('invoice\\u202egpj.exe').and.contain('zero\\u200bwidth').and.not.match(/[\u202e\u200b]/);
    expect(json.json().items.map((i: { name: string }) => i.name)).to.deep.equal(['invoice\u202egpj.exe', 'zero\u200bwidth']);
  });

  it('retrieve writes nothing when the server answers with an empty value (BAD_FIELD, exit 1)', async () => {
    answer = (req) => succeeded(req.name, { data: encode('cryptstore_entry', { tag: req.name, type: 'binary-blob', version: 1, timeEntered: utf8('2026-12-05T00:00:00Z'), blob: new Uint8Array(), exportable: true }) });
    const out = join(d.dir, 'empty-value');
    const r = await kc('retrieve', ['vhd/disk-1', '--out', out]);
    expectFailure(r, 1, 'BAD_FIELD');
    expect(r.stderr).to.contain('holds an empty value');
    expect(existsSync(out)).to.equal(false);
  });

  it('a server\'s USAGE or INTERNAL is no usage error or bug of the client: exit 1, without the client\'s hints', async () => {
    answer = (req) => failed(req.name, 'USAGE');
    const usage = await kc('retrieve', ['vhd/disk-1']);
    expectFailure(usage, 1, 'DENIED');
    expect(usage.stderr).to.contain('(a code no such server sends: "USAGE")').and.not.contain('--help');
    answer = (req) => failed(req.name, 'INTERNAL');
    const internal = await kc('retrieve', ['vhd/disk-1']);
    expectFailure(internal, 1, 'INTERNAL');
    expect(internal.stderr).to.contain('the key-server failed to retrieve "vhd/disk-1": a fault of the key-server').and.not.contain('CERTIFIER_DEBUG');
  });

  it('an error line names its code once, in the [CODE] the CLI adds, and the server\'s own word only where it differs', async () => {
    writeFileSync(join(d.dir, 'value'), 'v');
    const lines = async (code: string, cmd: string, args: string[], version?: number) => {
      answer = (req) => failed(req.name, code, version);
      const r = await kc(cmd, args);
      expect(r.status, r.stderr).to.equal(1);
      return r.stderr;
    };
    // Not refusals: a name (or version) that is not there, most often mistyped, and a latest version not the one expected.
    expect(await lines('VERSION_CONFLICT', 'store', ['vhd/disk-1', '--in', 'value', '--expected-version', '1']))
      .to.equal('key-client: error: the key-server did not store "vhd/disk-1": its latest version is not 1 (--expected-version); key-client list shows the name\'s latest version, where the key-server\'s ACL lets this machine list; else ask whoever stores the keys [VERSION_CONFLICT]\n');
    expect(await lines('VERSION_CONFLICT', 'store', ['vhd/disk-1', '--in', 'value', '--expected-version', '0']))
      .to.equal('key-client: error: the key-server did not store "vhd/disk-1": it holds the name already (--expected-version 0); key-client list shows the name\'s versions, where the key-server\'s ACL lets this machine list; else ask whoever stores the keys [VERSION_CONFLICT]\n');
    expect(await lines('NOT_FOUND', 'retrieve', ['vhd/disk-1', 'vhd/disk-2']))
      .to.equal('key-client: error: the key-server holds no "vhd/disk-1" (key-client list shows the names it holds, where the key-server\'s ACL lets this machine list; else ask whoever stores the keys); nothing was written [NOT_FOUND]\n');
    expect(await lines('NOT_FOUND', 'retrieve', ['vhd/disk-1', '--version', '3', '--out', join(d.dir, 'never')]))
      .to.equal('key-client: error: the key-server holds no version 3 of "vhd/disk-1" (key-client list shows the names it holds, where the key-server\'s ACL lets this machine list; else ask whoever stores the keys); nothing was written [NOT_FOUND]\n');
    expect(await lines('NOT_FOUND', 'delete', ['vhd/disk-1']))
      .to.equal('key-client: error: the key-server holds no "vhd/disk-1" (key-client list shows the names it holds, where the key-server\'s ACL lets this machine list; else ask whoever stores the keys) [NOT_FOUND]\n');
    expect(await lines('NOT_RECORDED', 'store', ['vhd/disk-1', '--in', 'value'], 7)).to.match(/stored "vhd\/disk-1" as version 7, but its audit log could not record it: do not store it again; [^[]* \[NOT_RECORDED\]\n$/);
  });

  const SECRET = 'a-value-no-message-may-hold';
  const entry = (tag: string, o: { exportable?: boolean } = {}) =>
    encode('cryptstore_entry', { tag, version: 1, type: 'binary-blob', blob: utf8(SECRET), timeEntered: utf8('2026-12-05T00:00:00Z'), exportable: o.exportable ?? true });
  /** No value in what the program wrote. */
  const noValue = (r: { out: string; stderr: string }) => expect(r.out + r.stderr).not.to.contain(SECRET);

  it('provision writes no file when one answer of several is marked not exportable (NOT_EXPORTABLE, exit 1); with --allow-partial, the others', async () => {
    answer = (req) => succeeded(req.name, { data: entry(req.name, { exportable: req.name !== 'b' }) });
    const files = ['a', 'b', 'c'].map((n) => join(d.dir, `provisioned-${n}`));
    const config = join(d.dir, 'provision-one-not-exportable.json');
    writeFileSync(config, JSON.stringify({ secrets: ['a', 'b', 'c'].map((ID, i) => ({ ID, LocalPath: files[i] })) }));
    const all = await kc('provision', ['--config', config]);
    expectFailure(all, 1, 'NOT_EXPORTABLE');
    expect(all.stderr).to.contain('the key-server released "b" version 1, which it holds not exportable and so never releases: a fault of the key-server');
    noValue(all);
    expect(files.map((f) => existsSync(f))).to.deep.equal([false, false, false]);
    const partial = expectSuccess(await kc('provision', ['--config', config, '--allow-partial']));
    noValue(partial);
    expect(files.map((f) => existsSync(f))).to.deep.equal([true, false, true]);
  });

  it('retrieve keeps no tag when an answer names another resource than asked (INTEGRITY, exit 4), naming the server\'s fault', async () => {
    answer = (req) => {
      const name = req.name === 'y' ? 'x' : req.name;
      return succeeded(name, { data: entry(name) });
    };
    const r = await kc('retrieve', ['x', 'y']);
    expectFailure(r, 4, 'INTEGRITY');
    expect(r.stderr).to.contain('the key-server answered the retrieve of "y" with an answer for "x": a fault of the key-server');
    noValue(r);
    const held = await d.store(client, 'list-items');
    expect(held.status, held.stderr).to.equal(0);
    expect(held.out).not.to.match(/^[xy]\t/m);
  });
});

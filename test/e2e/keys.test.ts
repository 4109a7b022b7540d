// End to end on loopback, with the real programs: a key-server and two clients certified by
// simpleserver; a key stored by one client and retrieved into the other's cryptstore; listing;
// provisioning from a config file, all or nothing; and the audit log's hash chain.

import { expect } from 'chai';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { basename, dirname, join } from 'node:path';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { ROOT, run } from '../support/helpers.ts';
import { Domain, expectFailure, expectSuccess, type KeyServer, type Machine } from './domain.ts';

describe('e2e: keys stored and retrieved through key-server on loopback', function () {
  let d: Domain;
  let server: KeyServer;
  let alice: Machine;
  let bob: Machine;

  before(async () => {
    ({ d, server, machines: { alice, bob } } = await Domain.setUp({ keyserver: 'key-server', alice: 'client-alice', bob: 'client-bob' }, { serve: 'keyserver' }));
  });
  after(async () => d?.close());

  /** The key-server's log lines of requests for `resource`. */
  const requestLines = (resource: string) => server.child.stderr.split('\n').filter((l) => / request /.test(l) && l.includes(` resource=${resource} `));
  const connOf = (line: string) => /conn=(\w+)/.exec(line)![1]!;
  const tagsOf = async (m: Machine) => expectSuccess(await d.store(m, 'list-items', ['--json'])).json().items as { tag: string; version: number }[];

  it('certifies a key-server and two clients, stores a key from one and retrieves it into the other\'s cryptstore, byte for byte', async () => {
    // Each client holds its own key and admission certificate, from init-trust; the key-server
    // (whose store it holds open) serves as the certified machine of its measurement.
    for (const m of [alice, bob]) {
      const tags = (expectSuccess(await d.store(m, 'list-items', ['--json'])).json().items as { tag: string }[]).map((i) => i.tag);
      expect(tags).to.include.members([`${d.name}-private-auth-key`, `${d.name}-admission-certificate`]);
    }
    expect(server.child.stderr).to.match(new RegExp(`domain ${d.name}, serving as serial [0-9a-f]+ \\(measurement ${d.measurementHex('key-server')}, certificate valid until \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\)`));

    const key = randomBytes(32);
    const stored = expectSuccess(await d.kc(alice, server, 'store', ['vhd/disk-1', '--in', '-'], key));
    expect(stored.out).to.equal('stored vhd/disk-1 version 1\n');

    const got = expectSuccess(await d.kc(bob, server, 'retrieve', ['vhd/disk-1']));
    expect(got.out).to.equal('vhd/disk-1 version 1 from the server: stored in the cryptstore as version 1\n');

    const item = expectSuccess(await d.store(bob, 'get-item', ['--tag', 'vhd/disk-1', '--out', '-']));
    expect(item.stdout.equals(key), 'cert-utility get-item returns the stored bytes').to.equal(true);

    // The server saw the store from alice's measurement and the retrieve from bob's.
    const [storeLine, retrieveLine] = requestLines('vhd/disk-1');
    expect(storeLine).to.match(new RegExp(`measurement=${d.measurementHex('client-alice')} action=store resource=vhd/disk-1 version=1 decision=allow`));
    expect(retrieveLine).to.match(new RegExp(`measurement=${d.measurementHex('client-bob')} action=retrieve resource=vhd/disk-1 version=1 decision=allow`));
  });

  it('says both the server\'s version and the one the cryptstore keeps it as, and makes a version asked for the tag\'s newest', async () => {
    const values = [randomBytes(16), randomBytes(16), randomBytes(16)];
    for (const v of values) expectSuccess(await d.kc(alice, server, 'store', ['numbered/a', '--in', '-'], v));
    const third = expectSuccess(await d.kc(bob, server, 'retrieve', ['numbered/a', '--version', '3', '--json'])).json();
    expect(third.items[0]).to.include({ version: 3, storeVersion: 1, written: 'new' });
    const second = expectSuccess(await d.kc(bob, server, 'retrieve', ['numbered/a', '--version', '2']));
    expect(second.out).to.equal('numbered/a version 2 from the server: stored in the cryptstore as version 2\n');
    const again = expectSuccess(await d.kc(bob, server, 'retrieve', ['numbered/a', '--version', '2']));
    expect(again.out).to.equal('numbered/a version 2 from the server: already in the cryptstore as version 2\n');
    const kept = expectSuccess(await d.store(bob, 'get-item', ['--tag', 'numbered/a', '--version', '1', '--out', '-']));
    expect(kept.stdout.equals(values[2]!)).to.equal(true);
    const newest = expectSuccess(await d.store(bob, 'get-item', ['--tag', 'numbered/a', '--out', '-']));
    expect(newest.stdout.equals(values[1]!)).to.equal(true);
  });

  it('retrieves several names in one call over one connection, each into its own tag', async () => {
    const values = { 'multi/a': randomBytes(16), 'multi/b': randomBytes(1000), 'multi/c': Buffer.from('third value\n') };
    const c = await d.connect(server, alice);
    try {
      for (const [name, v] of Object.entries(values)) expect(await c.store(name, v)).to.equal(1);
    } finally {
      await c.close();
    }

    const r = expectSuccess(await d.kc(bob, server, 'retrieve', [...Object.keys(values), '--json']));
    expect(r.json().items.map((i: { name: string; version: number; written: string }) => [i.name, i.version, i.written]))
      .to.deep.equal(Object.keys(values).map((n) => [n, 1, 'new']));

    const store = await d.openStore(bob.store);
    try {
      for (const [name, v] of Object.entries(values)) expect(Buffer.from((await store.get(name)).blob).equals(v), name).to.equal(true);
    } finally {
      await store.close();
    }

    // One connection carried all three retrieves, and nothing else.
    const conns = Object.keys(values).map((n) => connOf(requestLines(n).find((l) => l.includes('action=retrieve'))!));
    expect(new Set(conns).size, conns.join(' ')).to.equal(1);
    const closed = await server.child.waitForLog(new RegExp(`closed conn=${conns[0]} `));
    expect(closed).to.match(/ requests=3 answered=3 /);
  });

  it('fetches a name given twice once, and refuses names it cannot keep and empty values before connecting', async () => {
    expectSuccess(await d.kc(alice, server, 'store', ['twice/a', '--in', '-'], randomBytes(16)));
    const r = expectSuccess(await d.kc(bob, server, 'retrieve', ['twice/a', 'twice/a', '--json']));
    expect(r.json().items.map((i: { name: string; written: string }) => [i.name, i.written])).to.deep.equal([['twice/a', 'new']]);
    expect((await tagsOf(bob)).filter((i) => i.tag === 'twice/a').map((i) => i.version)).to.deep.equal([1]);

    const from = server.child.mark();
    const empty = await d.kc(bob, server, 'retrieve', ['']);
    expectFailure(empty, 2, 'USAGE');
    expect(empty.stderr).to.contain('the name "" is empty');
    // Kept under its own name, this one would replace the machine's own key.
    const identity = await d.kc(bob, server, 'retrieve', [`${d.name}-private-auth-key`]);
    expectFailure(identity, 2, 'USAGE');
    expect(identity.stderr).to.contain('is where init-trust keeps a machine\'s identity');
    // The storage key's name, with or without --out: only key-server join fetches it, into a cryptstore.
    for (const out of [[], ['--out', 'sk.bin']]) {
      const storageKey = await d.kc(bob, server, 'retrieve', ['key-server-storage-key', ...out]);
      expectFailure(storageKey, 2, 'USAGE');
      expect(storageKey.stderr).to.contain('is a key-server\'s storage key').and.to.contain('key-server join');
    }
    const control = await d.kc(alice, server, 'store', ['bad\nname', '--in', '-'], randomBytes(16));
    expectFailure(control, 2, 'USAGE');
    expect(control.stderr).to.contain('contains a control character');
    const nothing = await d.kc(alice, server, 'store', ['twice/empty', '--in', '-'], new Uint8Array());
    expectFailure(nothing, 1, 'INVALID_INPUT');
    expect(nothing.stderr).to.contain('nothing to store: standard input is empty');
    // One connection carries at most 1,000 requests: more names could never all be answered.
    const many = await d.kc(bob, server, 'retrieve', Array.from({ length: 1001 }, (_, i) => `many/${i}`));
    expectFailure(many, 2, 'USAGE');
    expect(many.stderr).to.contain('1001 names is too many for one run').and.to.contain('fetch at most 1000 at a time');
    expect(server.child.stderr.slice(from)).not.to.match(/ (request|closed) conn=/);
  });

  it('writes a name not in Unicode form C escaped in a refusal, so it cannot pass for its composed twin', async () => {
    const r = await d.kc(alice, server, 'store', ['e\u0301x', '--in', '-'], randomBytes(16));
    expectFailure(r, 1, 'BAD_FIELD');
    expect(r.stderr).to.contain('the key-server refused to store "e\\u0301x" [BAD_FIELD]').and.not.to.contain('e\u0301x');
  });

  /** How many retrieves the key-server's audit log records. */
  const auditedRetrieves = () => readFileSync(join(server.data, 'audit.jsonl'), 'utf8').split('\n').filter((l) => l && JSON.parse(l).action === 'retrieve').length;

  it('refuses an --out it could not write before connecting, so the key-server releases nothing', async () => {
    expectSuccess(await d.kc(alice, server, 'store', ['out/key', '--in', '-'], randomBytes(16)));
    const dir = d.path('out-checks');
    mkdirSync(join(dir, 'taken'), { recursive: true });
    writeFileSync(join(dir, 'file'), 'there');
    writeFileSync(join(dir, '.file.0123456789ab.tmp'), 'a secret'); // left by a killed run, just now
    const before = auditedRetrieves();
    for (const [args, code] of [[[join(dir, 'file')], 'ALREADY_EXISTS'], [[join(dir, 'missing', 'x')], 'FILE_ERROR'], [[join(dir, 'taken'), '--force'], 'FILE_ERROR'], [[d.keyFile, '--force'], 'INVALID_INPUT']] as const) {
      const r = await d.kc(bob, server, 'retrieve', ['out/key', '--out', ...args]);
      expectFailure(r, 1, code);
      if (args[0] === join(dir, 'file')) expect(r.stderr).to.contain(`${join(dir, '.file.0123456789ab.tmp')}, left beside ${join(dir, 'file')} by a killed run`);
    }
    expect(auditedRetrieves()).to.equal(before);
    expect(readFileSync(join(dir, 'file'), 'utf8')).to.equal('there');
    const wrote = expectSuccess(await d.kc(bob, server, 'retrieve', ['out/key', '--out', join(dir, 'new')]));
    expect(wrote.out.startsWith(`wrote ${join(dir, 'new')}: out/key version `), wrote.out).to.equal(true);
    expect(wrote.out).to.match(/ version \d+ \(16 bytes\)\n$/);
    expect(auditedRetrieves()).to.equal(before + 1);
  });

  it('takes for an X509-der-cert only a certificate (PEM stored as DER), and puts none that is not one into the cryptstore', async () => {
    const from = server.child.mark();
    // One DER element is not enough: an empty SEQUENCE, or a private key (PKCS#8, a SEQUENCE too).
    const keyDer = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'der', type: 'pkcs8' });
    for (const junk of [Buffer.from('not a certificate'), Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), Buffer.from([0x30, 0x00]), keyDer]) {
      expectFailure(await d.kc(alice, server, 'store', ['typed/cert', '--type', 'X509-der-cert', '--in', '-'], junk), 1, 'BAD_CERTIFICATE');
    }
    expect(server.child.stderr.slice(from)).not.to.match(/ (request|closed) conn=/);
    expectSuccess(await d.kc(alice, server, 'store', ['typed/cert', '--type', 'X509-der-cert', '--in', d.policyCertFile]));
    const der = expectSuccess(await d.kc(bob, server, 'retrieve', ['typed/cert', '--out', '-'])).stdout;
    expect(der.equals(Buffer.from(d.policyCert))).to.equal(true);
    expectSuccess(await d.kc(bob, server, 'retrieve', ['typed/cert']));
    // What an older key-client could store: PEM text, and junk, as certificates.
    await d.withClient(server, alice, async (c) => {
      await c.store('typed/pem', readFileSync(d.policyCertFile), { type: 'X509-der-cert' });
      await c.store('typed/junk', Buffer.from('junk'), { type: 'X509-der-cert' });
    });
    for (const name of ['typed/pem', 'typed/junk']) {
      const r = await d.kc(bob, server, 'retrieve', [name]);
      expectFailure(r, 1, 'BAD_CERTIFICATE');
      expect(r.stderr).to.contain(`"${name}" version 1 on the key-server is an X509-der-cert item that holds no DER certificate`);
    }
    expect((await tagsOf(bob)).map((i) => i.tag)).to.include('typed/cert').and.not.to.include('typed/pem').and.not.to.include('typed/junk');
  });

  it('writes one value to standard output with --out -, and keeps it out of the cryptstore', async () => {
    const key = randomBytes(48);
    expectSuccess(await d.kc(alice, server, 'store', ['stdout/key', '--in', '-'], key));

    const raw = expectSuccess(await d.kc(bob, server, 'retrieve', ['stdout/key', '--out', '-']));
    expect(raw.stdout.equals(key)).to.equal(true);

    const json = expectSuccess(await d.kc(bob, server, 'retrieve', ['stdout/key', '--out', '-', '--json'])).json();
    expect(json).to.deep.include({ ok: true, valueBase64: key.toString('base64') });
    expect(json.items[0]).to.include({ name: 'stdout/key', version: 1, size: 48 });

    const tags = (expectSuccess(await d.store(bob, 'list-items', ['--json'])).json().items as { tag: string }[]).map((i) => i.tag);
    expect(tags).not.to.include('stdout/key');
    // One --out holds one value: two names are a usage mistake, and nothing is released.
    const before = auditedRetrieves();
    expectFailure(await d.kc(bob, server, 'retrieve', ['stdout/key', 'out/other', '--out', '-']), 2, 'USAGE');
    expect(auditedRetrieves()).to.equal(before);
  });

  it('stores only over the version --expected-version names (0: none yet), else VERSION_CONFLICT', async () => {
    expectSuccess(await d.kc(alice, server, 'store', ['cond/key', '--in', '-', '--expected-version', '0'], randomBytes(16)));
    expectFailure(await d.kc(alice, server, 'store', ['cond/key', '--in', '-', '--expected-version', '0'], randomBytes(16)), 1, 'VERSION_CONFLICT');
    expect(expectSuccess(await d.kc(alice, server, 'store', ['cond/key', '--in', '-', '--expected-version', '1'], randomBytes(16))).out).to.equal('stored cond/key version 2\n');
    expectFailure(await d.kc(alice, server, 'store', ['cond/key', '--in', '-', '--expected-version', '1'], randomBytes(16)), 1, 'VERSION_CONFLICT');
  });

  it('lists names and metadata under a prefix, never values', async () => {
    const secret = Buffer.from(`LIST-SECRET-${randomBytes(8).toString('hex')}`);
    await d.withClient(server, alice, async (c) => {
      await c.store('listed/one', secret);
      await c.store('listed/one', secret); // version 2
      await c.store('listed/two', secret, { exportable: false, type: 'other' });
    });

    const text = expectSuccess(await d.kc(bob, server, 'list', ['listed/']));
    const lines = text.out.trim().split('\n').map((l) => l.split('\t'));
    expect(lines.map((l) => l.slice(0, 5))).to.deep.equal([
      ['listed/one', 'v2', 'binary-blob', `${secret.length} bytes`, 'exportable'],
      ['listed/two', 'v1', 'other', `${secret.length} bytes`, 'not-exportable'],
    ]);
    for (const l of lines) expect(Number.isFinite(Date.parse(l[5]!)), l[5]).to.equal(true);

    const json = expectSuccess(await d.kc(bob, server, 'list', ['listed/', '--json']));
    expect(json.json().items.map((i: Record<string, unknown>) => Object.keys(i).sort())).to.deep.equal([
      ['exportable', 'name', 'size', 'timeEntered', 'type', 'version'],
      ['exportable', 'name', 'size', 'timeEntered', 'type', 'version'],
    ]);
    for (const out of [text.out + text.stderr, json.out + json.stderr]) {
      for (const form of [secret.toString('utf8'), secret.toString('hex'), secret.toString('base64')]) expect(out).not.to.contain(form);
    }
  });

  it('lists more names than one answer can hold, page by page over one connection', async () => {
    // 1,400 names of 256 characters, most of them 3 bytes in UTF-8: about 1.1 MB of listing,
    // more than a frame (1 MiB), so more than one answer of at most 1,000 names.
    const names = Array.from({ length: 1400 }, (_, i) => `pages/${String(i).padStart(4, '0')}/`.padEnd(256, '\u20ac'));
    for (let i = 0; i < names.length; i += 700) { // a connection carries at most 1,000 requests
      await d.withClient(server, alice, async (c) => {
        for (let j = i; j < i + 700; j += 100) await Promise.all(names.slice(j, j + 100).map((n) => c.store(n, Buffer.from('v'))));
      });
    }
    const json = expectSuccess(await d.kc(bob, server, 'list', ['pages/', '--json']));
    const listed = json.json().items as { name: string; version: number }[];
    expect(listed.length).to.equal(names.length);
    expect(listed.map((i) => i.name)).to.deep.equal(names);
    // The text form, written page by page as the pages come: the same names, in order.
    const text = expectSuccess(await d.kc(bob, server, 'list', ['pages/']));
    expect(text.out.split('\n').slice(0, -1).map((l) => l.split('\t')[0])).to.deep.equal(names);
    // A reader that goes away after the first page (| head -1): the listing stops there, with
    // the status of a tool killed by SIGPIPE, the second page never asked for.
    const head = execFileSync('bash', ['-o', 'pipefail', '-c', `"$0" "$@" | head -c 1 >/dev/null; echo "exit \${PIPESTATUS[0]}"`,
      process.execPath, join(ROOT, 'cmd', 'bin', 'key-client.js'), 'list', 'pages/', ...d.clientArgs(bob, server)], { cwd: d.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(head).to.equal('exit 141\n');
    // The JSON document is written page by page too: cut off, it asked for the first page only.
    const jsonHead = execFileSync('bash', ['-o', 'pipefail', '-c', `"$0" "$@" | head -c 1 >/dev/null; echo "exit \${PIPESTATUS[0]}"`,
      process.execPath, join(ROOT, 'cmd', 'bin', 'key-client.js'), 'list', 'pages/', '--json', ...d.clientArgs(bob, server)], { cwd: d.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(jsonHead).to.equal('exit 141\n');
    const lines = requestLines('pages/').filter((l) => / action=list /.test(l)).slice(0, 2);
    expect(lines).to.have.length(2);
    expect(new Set(lines.map(connOf)).size, 'both pages over one connection').to.equal(1);
    // A connection that has carried 999 requests has room for one page only: the next page goes
    // over a new connection (a server closes one after 1,000), and the listing is whole.
    await d.withClient(server, alice, async (c) => {
      for (let i = 0; i < 999; i += 111) await Promise.all(Array.from({ length: 111 }, () => c.list('pages-none/')));
      const again = await c.list('pages/');
      expect(again.map((i) => i.name)).to.deep.equal(names);
      // The JSON document written page by page is the very one written whole.
      expect(json.out).to.equal(JSON.stringify({ ok: true, items: again }) + '\n');
    });
    expect(requestLines('pages/').filter((l) => / action=list /.test(l)), 'the JSON and text listings two pages each, the two cut off one each, the last two').to.have.length(8);
    const later = requestLines('pages/').filter((l) => / action=list /.test(l)).slice(6);
    expect(later).to.have.length(2);
    expect(new Set(later.map(connOf)).size, 'the second page over a new connection').to.equal(2);
  });

  describe('provision --config: all or nothing', () => {
    let files: string;
    before(async () => {
      files = d.path('provisioned');
      await d.withClient(server, alice, async (c) => {
        for (const n of ['prov/tagged', 'prov/file', 'prov/partial']) await c.store(n, Buffer.from(`value of ${n}`));
      });
    });

    const config = (secrets: object[]) => {
      const f = d.path('provision.json');
      writeFileSync(f, JSON.stringify({ secrets }));
      return f;
    };

    it('exits non-zero and writes nothing, neither tags nor files, when the server lacks one name', async () => {
      const file = `${files}-1`;
      const f = config([{ ID: 'prov/tagged', Tag: 'p1-tagged' }, { ID: 'prov/file', LocalPath: file }, { ID: 'prov/missing', Tag: 'p1-missing' }]);
      // A killed run's leftovers beside the file are swept all the same: one an hour old goes,
      // one just written (a new value being written) is named.
      const stale = join(dirname(file), `.${basename(file)}.0123456789ab.tmp`);
      const young = join(dirname(file), `.${basename(file)}.ba9876543210.tmp`);
      for (const l of [stale, young]) writeFileSync(l, 'a secret');
      utimesSync(stale, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
      const r = await d.kc(bob, server, 'provision', ['--config', f]);
      expectFailure(r, 1, 'NOT_FOUND');
      // The one failure's reason, not only its code: the name is not there.
      expect(r.stderr).to.contain('could not provision "prov/missing": the key-server holds no "prov/missing" (key-client list shows the names it holds, where the key-server\'s ACL lets this machine list; else ask whoever stores the keys); nothing was written [NOT_FOUND]');
      expect((await tagsOf(bob)).map((i) => i.tag).filter((t) => t.startsWith('p1-'))).to.deep.equal([]);
      expect(existsSync(file), file).to.equal(false);
      expect(existsSync(stale), stale).to.equal(false);
      expect(r.stderr).to.contain(`${young}, left beside ${file} by a killed run (or one still writing), may hold a secret (a value being written): too new to remove now`);
      rmSync(young);
    });

    it('refuses, before connecting, more secrets than one connection can fetch', async () => {
      const from = server.child.mark();
      const f = config(Array.from({ length: 1001 }, (_, i) => ({ ID: `prov/many-${i}`, Tag: `many-${i}` })));
      const r = await d.kc(bob, server, 'provision', ['--config', f]);
      expectFailure(r, 1, 'INVALID_INPUT');
      expect(r.stderr).to.contain('1001 secrets is too many for one run');
      expect(server.child.stderr.slice(from)).not.to.match(/ (request|closed) conn=/);
    });

    it('refuses a new Tag that would look like another before connecting (INVALID_INPUT, exit 1, not a retryable UNREACHABLE)', async () => {
      const from = server.child.mark();
      const f = config([{ ID: 'prov/tagged', Tag: 'p7/cafe\u0301' }]);
      const r = await d.kc(bob, server, 'provision', ['--config', f]);
      expectFailure(r, 1, 'INVALID_INPUT');
      expect(r.stderr).to.contain('normalization form C');
      expect(server.child.stderr.slice(from)).not.to.match(/ (request|closed) conn=/);
    });

    it('succeeds with every name available, and run twice succeeds again without new versions', async () => {
      const file = `${files}-2`;
      const f = config([{ ID: 'prov/tagged', Tag: 'p2-tagged' }, { ID: 'prov/file', LocalPath: file, Mode: '0600' }]);
      const first = expectSuccess(await d.kc(bob, server, 'provision', ['--config', f]));
      expect(first.out).to.equal(`prov/tagged: version 1 written to tag p2-tagged (the cryptstore's version 1)\nprov/file: version 1 written to ${file}\n`);
      // The previous value a killed run kept aside, just now: too new to remove, so named.
      const kept = join(dirname(file), `.${basename(file)}.0123456789ab.old`);
      writeFileSync(kept, 'an earlier secret');
      const second = expectSuccess(await d.kc(bob, server, 'provision', ['--config', f]));
      expect(second.out).to.equal(`prov/tagged: version 1 unchanged in tag p2-tagged (the cryptstore's version 1)\nprov/file: version 1 unchanged in ${file}\n`);
      expect(second.stderr).to.contain(`${kept}, left beside ${file} by a killed run (or one still writing), may hold a secret (the previous value, kept aside): too new to remove now; a run after `);
      rmSync(kept);

      expect((await tagsOf(bob)).filter((i) => i.tag === 'p2-tagged').map((i) => i.version)).to.deep.equal([1]);
      const text = expectSuccess(await d.store(bob, 'list-items')).out;
      expect(text.split('\n').filter((l) => l.includes('p2-tagged'))).to.have.length(1);
      expect(readFileSync(file, 'utf8')).to.equal('value of prov/file');
      expect(statSync(file).mode & 0o777).to.equal(0o600);
      const got = expectSuccess(await d.store(bob, 'get-item', ['--tag', 'p2-tagged', '--out', '-']));
      expect(got.out).to.equal('value of prov/tagged');
      // Not a no-op: a file edited by hand is rewritten, with no copy of the edit kept.
      writeFileSync(file, 'edited');
      const third = expectSuccess(await d.kc(bob, server, 'provision', ['--config', f]));
      expect(third.out).to.contain(`prov/file: version 1 written to ${file}\n`);
      expect(readFileSync(file, 'utf8')).to.equal('value of prov/file');
      expect(readdirSync(dirname(file)).filter((n) => n.startsWith(`.${basename(file)}.`))).to.deep.equal([]);
    });

    it('writes nothing when one destination cannot be written: no tag, no other file, no temporary file', async () => {
      const dir = d.path('prov-5');
      mkdirSync(dir);
      const file = join(dir, 'file');
      const f = config([{ ID: 'prov/tagged', Tag: 'p5-tagged' }, { ID: 'prov/file', LocalPath: file }, { ID: 'prov/file', LocalPath: join(dir, 'no-such-dir', 'file') }]);
      const r = await d.kc(bob, server, 'provision', ['--config', f]);
      expectFailure(r, 1, 'FILE_ERROR');
      expect(r.stderr).to.contain('no-such-dir/file: no directory').and.contain('; nothing was written');
      expect((await tagsOf(bob)).map((i) => i.tag)).not.to.include('p5-tagged');
      expect(readdirSync(dir)).to.deep.equal([]);
      // A directory where a file should go fails the same way, before anything is in place.
      mkdirSync(join(dir, 'taken'));
      const g = config([{ ID: 'prov/tagged', Tag: 'p5-tagged' }, { ID: 'prov/file', LocalPath: file }, { ID: 'prov/file', LocalPath: join(dir, 'taken') }]);
      expectFailure(await d.kc(bob, server, 'provision', ['--config', g]), 1, 'FILE_ERROR');
      expect((await tagsOf(bob)).map((i) => i.tag)).not.to.include('p5-tagged');
      expect(readdirSync(dir)).to.deep.equal(['taken']);
    });

    it('refuses a LocalPath it could not write, or one of its own files, before connecting, so the key-server releases nothing', async () => {
      const before = auditedRetrieves();
      for (const [dest, code] of [[d.keyFile, 'INVALID_INPUT'], [join(d.path('prov-9'), 'no-such-dir', 'file'), 'FILE_ERROR']] as const) {
        const r = await d.kc(bob, server, 'provision', ['--config', config([{ ID: 'prov/tagged', Tag: 'p9-tagged' }, { ID: 'prov/file', LocalPath: dest }])]);
        expectFailure(r, 1, code);
      }
      expect(auditedRetrieves()).to.equal(before);
      expect((await tagsOf(bob)).map((i) => i.tag)).not.to.include('p9-tagged');
    });

    it('rewrites a file that holds the value under another mode', async () => {
      const file = `${files}-6`;
      const first = expectSuccess(await d.kc(bob, server, 'provision', ['--config', config([{ ID: 'prov/file', LocalPath: file, Mode: '0600' }])]));
      expect(first.out).to.equal(`prov/file: version 1 written to ${file}\n`);
      const again = expectSuccess(await d.kc(bob, server, 'provision', ['--config', config([{ ID: 'prov/file', LocalPath: file, Mode: '0640' }])]));
      expect(again.out).to.equal(`prov/file: version 1 written to ${file}\n`);
      expect(statSync(file).mode & 0o777).to.equal(0o640);
    });

    it('keeps what arrived with --allow-partial, and reports what did not', async () => {
      const file = `${files}-3`;
      // (A name holding a bidirectional override is quoted escaped on stderr too, as on stdout.)
      const f = config([{ ID: 'prov/partial', Tag: 'p3-partial' }, { ID: 'prov/file', LocalPath: file }, { ID: 'prov/missing', Tag: 'p3-missing' }, { ID: 'prov/gone\u202egpj.exe', LocalPath: `${files}-3b` }, { ID: 'prov/cafe\u0301', Tag: 'p3-cafe' }]);
      const r = expectSuccess(await d.kc(bob, server, 'provision', ['--config', f, '--allow-partial']));
      expect(r.out).to.equal(`prov/partial: version 1 written to tag p3-partial (the cryptstore's version 1)\nprov/file: version 1 written to ${file}\n` + 'prov/missing: FAILED (NOT_FOUND)\n"prov/gone\\u202egpj.exe": FAILED (NOT_FOUND)\n"prov/cafe\\u0301": FAILED (NOT_FOUND)\n');
      expect(r.stderr).to.contain('could not provision "prov/missing"').and.contain('prov/gone\\u202egpj.exe').and.not.contain('\u202e');
      // (And one not in form C, which would read as another name: every mention of it escaped.)
      expect(r.stderr).to.contain('could not provision "prov/cafe\\u0301"').and.not.contain('cafe\u0301');
      const tags = (await tagsOf(bob)).map((i) => i.tag);
      expect(tags).to.include('p3-partial').and.not.to.include('p3-missing');
      expect(readFileSync(file, 'utf8')).to.equal('value of prov/file');
    });

    it('fails with --allow-partial too when nothing arrived, with the failure\'s code', async () => {
      const f = config([{ ID: 'prov/missing', Tag: 'p7-missing' }, { ID: 'prov/missing-2', LocalPath: `${files}-7` }]);
      expectFailure(await d.kc(bob, server, 'provision', ['--config', f, '--allow-partial']), 1, 'NOT_FOUND');
      expect(existsSync(`${files}-7`)).to.equal(false);
    });

    it('never writes over its own store, key file or config, nor through a link, FIFO or device; nor into a key-server\'s storage-key tag', async () => {
      const dir = d.path('prov-8');
      mkdirSync(dir);
      const before = readFileSync(d.keyFile);
      for (const [dest, why] of [[d.keyFile, 'which this command needs'], [join(bob.store, 'CURRENT'), `inside ${bob.store}`]] as const) {
        const r = await d.kc(bob, server, 'provision', ['--config', config([{ ID: 'prov/file', LocalPath: dest }])]);
        expectFailure(r, 1, 'INVALID_INPUT');
        expect(r.stderr).to.contain(why);
      }
      expect(readFileSync(d.keyFile)).to.deep.equal(before);
      expectSuccess(await d.store(bob, 'list-items'));
      const selfConfig = join(dir, 'self.json');
      writeFileSync(selfConfig, JSON.stringify({ secrets: [{ ID: 'prov/file', LocalPath: selfConfig }] }));
      expectFailure(await d.kc(bob, server, 'provision', ['--config', selfConfig]), 1, 'INVALID_INPUT');
      symlinkSync('elsewhere', join(dir, 'link'));
      execFileSync('mkfifo', [join(dir, 'fifo')]);
      for (const dest of [join(dir, 'link'), join(dir, 'fifo'), '/dev/null']) {
        const r = await d.kc(bob, server, 'provision', ['--config', config([{ ID: 'prov/tagged', Tag: 'p8-tagged' }, { ID: 'prov/file', LocalPath: dest }])]);
        expectFailure(r, 1, 'FILE_ERROR');
        expect(r.stderr).to.match(/not a regular file|symbolic link/);
        expect(r.stderr.match(/nothing was (replaced|written)/g)).to.deep.equal(['nothing was written']);
      }
      expect((await tagsOf(bob)).map((i) => i.tag)).not.to.include('p8-tagged');
      expectFailure(await d.kc(bob, server, 'provision', ['--config', config([{ ID: 'prov/file', Tag: 'key-server-storage-key' }])]), 1, 'INVALID_INPUT');
      expectFailure(await d.kc(bob, server, 'retrieve', ['prov/file', '--out', d.keyFile, '--force']), 1, 'INVALID_INPUT');
      expect(readFileSync(d.keyFile)).to.deep.equal(before);
    });
  });

  describe('audit log', () => {
    it('verifies an unedited audit log (exit 0), and names the line when one line is edited (exit 4)', async () => {
      // A key-server of its own, stopped before its log is read: the log then holds every decision.
      const auditor = await d.certify('auditor', 'key-server');
      const s = await d.startKeyServer(auditor);
      const c = await d.connect(s, alice);
      try {
        await c.store('audited/a', Buffer.from('a'));
        await c.store('audited/b', Buffer.from('b'));
        await c.retrieve('audited/a');
        await c.retrieve('audited/none').catch(() => {}); // a refusal is logged too
      } finally {
        await c.close();
      }
      await s.child.stop();
      const log = `${s.data}/audit.jsonl`;
      const lines = readFileSync(log, 'utf8').split('\n').slice(0, -1);
      expect(lines).to.have.length(4);
      expect(JSON.parse(lines[3]!)).to.include({ action: 'retrieve', resource: 'audited/none', decision: 'deny', code: 'NOT_FOUND' });

      const ok = await run('key-server', ['verify-audit', log]);
      expect(ok.status, ok.stderr).to.equal(0);
      const end = JSON.parse(lines[3]!).hash as string;
      expect(ok.out).to.equal(`ok: 4 line(s), chain intact\nend: seq 4, hash ${end} (keep it elsewhere: verify-audit --expect 4:HASH checks the chain still holds it)\n`);
      // The server's own log holds the chain's end where it started and where it stopped: anchors kept apart from the file.
      expect(s.child.stderr).to.match(new RegExp(`audit-continues path=\\S+audit\\.jsonl lastSeq=0 lastHash=${'0'.repeat(64)}\n`));
      expect(s.child.stderr).to.match(new RegExp(`audit-closed path=\\S+audit\\.jsonl lastSeq=4 lastHash=${end}\n.*stopped\n`));

      // One line edited: the retrieve of audited/a becomes a retrieve of audited/b.
      lines[2] = lines[2]!.replace('"resource":"audited/a"', '"resource":"audited/b"');
      writeFileSync(log, lines.join('\n') + '\n');
      const bad = await run('key-server', ['verify-audit', log]);
      expectFailure(bad, 4, 'INTEGRITY');
      expect(bad.stderr).to.match(/line 3 of .*audit\.jsonl: hash does not match the line's contents \(edited\)/);
      const json = await run('key-server', ['verify-audit', log, '--json']);
      expect(json.status).to.equal(4);
      expect(json.json().error).to.include({ code: 'INTEGRITY', exitStatus: 4 });
      expect(json.json().error.message).to.match(/^line 3 /);
    });

    it('answers a store carried out after its audit log broke NOT_RECORDED with the version made (exit 1), and refuses everything after it with FILE_ERROR', async () => {
      const breaking = await d.certify('audit-breaks', 'key-server');
      const s = await d.startKeyServer(breaking, { data: d.path('audit-breaks-data') });
      expectSuccess(await d.kc(alice, s, 'store', ['broken/k', '--in', '-'], Buffer.from('one')));
      rmSync(join(s.data, 'audit.jsonl')); // the next write to the log finds it gone
      const unrecorded = await d.kc(alice, s, 'store', ['broken/k', '--in', '-', '--json'], Buffer.from('two'));
      expect(unrecorded.status, unrecorded.stderr).to.equal(1);
      expect(unrecorded.json().error).to.include({ code: 'NOT_RECORDED', version: 2 });
      expect(unrecorded.json().error.message).to.contain('the key-server stored "broken/k" as version 2, but its audit log could not record it: do not store it again');
      const refused = await d.kc(alice, s, 'store', ['broken/k', '--in', '-'], Buffer.from('three'));
      expectFailure(refused, 1, 'FILE_ERROR');
      expect(refused.stderr).to.contain('nothing was changed');
      expect(s.child.stderr).to.match(/ audit-failed /).and.match(/ not-recorded conn=\S+ action=store resource=broken\/k version=2\n/);
      await s.child.stop().catch(() => {});
      // The store that was answered NOT_RECORDED is there; the refused one is not.
      const again = await d.startKeyServer(breaking, { data: s.data });
      const listed = expectSuccess(await d.kc(alice, again, 'list', ['broken/', '--json']));
      expect(listed.json().items.map((r: { version: number }) => r.version)).to.deep.equal([2]);
      expect(expectSuccess(await d.kc(alice, again, 'retrieve', ['broken/k', '--out', '-'])).out).to.equal('two');
      await again.child.stop();
    });

    it('goes on by itself once a log a full disk broke has room again: audit-failed says so, the next request logs audit-resumed with the seq and hash it goes on from, and is carried out', async () => {
      const full = await d.certify('audit-full', 'key-server');
      const flag = d.path('audit-full-once');
      const env = { NODE_OPTIONS: `--import ${join(ROOT, 'test/support/audit-faults.mjs')}`, AUDIT_FILE: '/audit.jsonl', AUDIT_FULL_ONCE: flag };
      const s = await d.startKeyServer(full, { data: d.path('audit-full-data'), env });
      try {
        expectSuccess(await d.kc(alice, s, 'store', ['full/k', '--in', '-'], Buffer.from('one')));
        writeFileSync(flag, ''); // the next line finds the disk full
        const unrecorded = await d.kc(alice, s, 'store', ['full/k', '--in', '-', '--json'], Buffer.from('two'));
        expect(unrecorded.json().error, unrecorded.stderr).to.include({ code: 'NOT_RECORDED', version: 2 });
        expect(await s.child.waitForLog(/ audit-failed code=FILE_ERROR /)).to.contain('goes on by itself (audit-resumed)');
        expectSuccess(await d.kc(alice, s, 'store', ['full/k', '--in', '-'], Buffer.from('three')));
        const first = JSON.parse(readFileSync(join(s.data, 'audit.jsonl'), 'utf8').split('\n')[0]!) as { hash: string };
        expect(await s.child.waitForLog(/ audit-resumed /)).to.match(new RegExp(` audit-resumed path=\\S+audit\\.jsonl lastSeq=1 lastHash=${first.hash}$`));
        const verified = expectSuccess(await run('key-server', ['verify-audit', join(s.data, 'audit.jsonl')]));
        expect(verified.out).to.match(/^ok: 2 line\(s\), chain intact\n/);
      } finally {
        await s.child.stop().catch(() => {});
      }
    });

    it('answers a store whose key database write failed after LevelDB had it OUTCOME_UNKNOWN (exit 1), audited as unknown, and the version is there after a restart', async () => {
      const failing = await d.certify('db-write-fails', 'key-server');
      const first = await d.startKeyServer(failing, { data: d.path('db-write-fails-data') });
      expectSuccess(await d.kc(alice, first, 'store', ['unknown/k', '--in', '-'], Buffer.from('one')));
      await first.child.stop();
      // This time LevelDB's first put reaches its log, then its sync fails (EIO).
      const env = { NODE_OPTIONS: `--import ${join(ROOT, 'test/support/level-put-fails.mjs')}`, LEVEL_PUT_FAILS: 'after-write' };
      const s = await d.startKeyServer(failing, { data: first.data, env });
      const unknown = await d.kc(alice, s, 'store', ['unknown/k', '--in', '-', '--json'], Buffer.from('two'));
      expect(unknown.status, unknown.stderr).to.equal(1);
      expect(unknown.json().error).to.include({ code: 'OUTCOME_UNKNOWN', version: 2 });
      expect(unknown.json().error.message).to.equal('the key-server\'s key database failed while writing "unknown/k" version 2: the store may or may not have been made; list "unknown/k" to see, and do not store it again blindly');
      await s.child.stop();
      const lines = readFileSync(join(s.data, 'audit.jsonl'), 'utf8').split('\n').slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.at(-1)).to.include({ action: 'store', resource: 'unknown/k', version: 2, decision: 'unknown', code: 'OUTCOME_UNKNOWN' });
      const again = await d.startKeyServer(failing, { data: s.data });
      const listed = expectSuccess(await d.kc(alice, again, 'list', ['unknown/', '--json']));
      expect(listed.json().items.map((r: { version: number }) => r.version)).to.deep.equal([2]);
      expect(expectSuccess(await d.kc(alice, again, 'retrieve', ['unknown/k', '--out', '-'])).out).to.equal('two');
      await again.child.stop();
      expect(expectSuccess(await run('key-server', ['verify-audit', join(s.data, 'audit.jsonl')])).out).to.match(/^ok: 4 line\(s\), chain intact\n/);
    });

    it('rotates the log into segments with --audit-rotate-mb, which verify-audit checks as one chain', async () => {
      const rotating = await d.certify('rotating', 'key-server');
      const s = await d.startKeyServer(rotating, { args: ['--audit-rotate-mb', '1'] });
      await d.withClient(s, alice, (c) => c.store('rotate/k', Buffer.from('v')));
      // About 400 bytes a line: 2,700 retrieves make more than 1 MiB. At most 1,000 per connection.
      for (let i = 0; i < 3; i++) {
        await d.withClient(s, alice, async (c) => {
          for (let j = 0; j < 900; j += 100) await Promise.all(Array.from({ length: 100 }, () => c.retrieve('rotate/k')));
        });
      }
      await s.child.stop();
      const rotated = /audit-rotated segment=(\S+) firstSeq=1 lastSeq=(\d+)/.exec(s.child.stderr);
      expect(rotated, s.child.stderr.slice(-2000)).to.not.equal(null);
      const segments = readdirSync(s.data).filter((n) => /^audit\.jsonl\.\d{12}-\d{12}$/.test(n)).sort().map((n) => join(s.data, n));
      expect(segments).to.deep.equal([rotated![1]]);
      const log = join(s.data, 'audit.jsonl');
      const all = expectSuccess(await run('key-server', ['verify-audit', ...segments, log]));
      expect(all.out).to.match(/^ok: 2701 line\(s\) in 2 file\(s\), seq 1\.\.2701, chain intact\nend: seq 2701, hash [0-9a-f]{64} /);
      const alone = await run('key-server', ['verify-audit', log]);
      // Its segment is beside it: not given, rather than lines missing.
      expectFailure(alone, 2, 'USAGE');
      expect(alone.stderr).to.contain(`the segment ${segments[0]} beside ${log}, which holds seq 1 to ${rotated![2]}, was not given`);
      // The glob the README gives leaves out the lock directory beside the log.
      const globbed = readdirSync(s.data).filter((n) => /^audit\.jsonl\.[0-9]/.test(n)).sort().map((n) => join(s.data, n));
      expect(globbed).to.deep.equal(segments);
      expect(readdirSync(s.data)).to.include('audit.jsonl.lock');
      const continuing = expectSuccess(await run('key-server', ['verify-audit', log, '--continuing']));
      expect(continuing.out).to.contain(`seq ${Number(rotated![2]) + 1}..2701, chain intact (from seq ${Number(rotated![2]) + 1}: it continues a segment not given)`);
    });

    it('keeps a second key-server off a log, a --data or a --store in use (STORE_LOCKED, exit 1, naming which) and off its own cryptstore as data (USAGE), and repair-audit moves a torn last line aside', async () => {
      const [first, second] = await Promise.all([d.certify('audit-1', 'key-server'), d.certify('audit-2', 'key-server')]);
      const s = await d.startKeyServer(first);
      const log = `${s.data}/audit.jsonl`;
      await d.withClient(s, alice, (c) => c.store('torn/a', Buffer.from('a')));
      const shared = await run('key-server', ['serve', '--domain', d.name, '--policy-cert', d.policyCertFile, '--data', d.path('audit-2-data'), '--audit', log, '--listen', '127.0.0.1:0', ...second.storeArgs]);
      expectFailure(shared, 1, 'STORE_LOCKED');
      expect(shared.stderr).to.contain(`the audit log ${log} is in use by another process`);
      // Its --data, or its --store, held by the running one: each named for what it is.
      const serving = ['serve', '--domain', d.name, '--policy-cert', d.policyCertFile, '--listen', '127.0.0.1:0'];
      const sameData = await run('key-server', [...serving, '--data', s.data, ...second.storeArgs]);
      expectFailure(sameData, 1, 'STORE_LOCKED');
      expect(sameData.stderr).to.contain(`the key-server data directory is in use by another process (${s.data})`).and.not.contain('cryptstore');
      const sameStore = await run('key-server', [...serving, '--data', d.path('audit-3-data'), ...first.storeArgs]);
      expectFailure(sameStore, 1, 'STORE_LOCKED');
      expect(sameStore.stderr).to.contain(`the cryptstore is in use by another process (${first.store})`).and.not.contain('data directory');
      const busy = await run('key-server', ['repair-audit', log]);
      expectFailure(busy, 1, 'STORE_LOCKED');
      expect(busy.stderr).to.contain('in use by a running key-server: stop it before repairing the log');
      // A directory given as the log is named as one, not as a file with two hard links.
      const auditDir = d.path('audit-dir');
      mkdirSync(auditDir);
      const serveArgs = d.keyServerArgs(second, d.path('audit-2-data'));
      for (const r of [await run('key-server', [...serveArgs, '--audit', auditDir]), await run('key-server', ['repair-audit', auditDir])]) {
        expectFailure(r, 1, 'FILE_ERROR');
        expect(r.stderr).to.contain(`${auditDir} is a directory, not an audit log`);
      }
      // Its own cryptstore as its key database: a usage error, not "in use by another process".
      const storeDir = second.storeArgs[second.storeArgs.indexOf('--store') + 1]!;
      const same = await run('key-server', d.keyServerArgs(second, `${storeDir}/`));
      expectFailure(same, 2, 'USAGE');
      expect(same.stderr).to.contain('--data and --store must be different directories');
      await s.child.stop();

      // A crash cut the last write short: serve refuses the log and names the way out.
      const whole = readFileSync(log, 'utf8');
      writeFileSync(log, `${whole}{"seq":2,"time":"20`);
      const refused = await run('key-server', d.keyServerArgs(first, s.data));
      expectFailure(refused, 4, 'INTEGRITY');
      expect(refused.stderr).to.contain(`key-server repair-audit ${log}`);
      const repaired = expectSuccess(await run('key-server', ['repair-audit', log, '--json'])).json();
      expect(repaired).to.include({ ok: true, lines: 1, removedBytes: 19 });
      expect(readFileSync(repaired.savedTo, 'utf8')).to.equal('{"seq":2,"time":"20');
      expect(readFileSync(log, 'utf8')).to.equal(whole);
      expect(expectSuccess(await run('key-server', ['repair-audit', log])).out).to.equal('nothing to repair: 1 line(s), chain intact\n');
      const again = await d.startKeyServer(first, { data: s.data });
      await d.withClient(again, alice, (c) => c.retrieve('torn/a'));
      await again.child.stop();
      expect(expectSuccess(await run('key-server', ['verify-audit', log])).out).to.match(/^ok: 2 line\(s\), chain intact\nend: seq 2, /);
      // The log moved away (not rotated, not restored): a new chain over a database with keys is said at start.
      renameSync(log, `${log}.moved`);
      const moved = await d.startKeyServer(first, { data: s.data });
      expect(moved.child.stderr).to.contain('begins a new chain, but the key database already holds keys');
      await moved.child.stop();
    });
  });
});

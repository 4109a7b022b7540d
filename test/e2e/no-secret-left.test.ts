// Scenario 1 through the real programs, then searched as an auditor would for the secrets it
// handled: every value, passphrase and key file is a random canary, looked for (raw, hex, base64,
// base64url, JSON text, and their prefixes) in every stdout and stderr of every program run and
// every file left under the test's folder (key databases, cryptstores, audit logs, locks, backups,
// configs). A canary may be only where the test lists it: its own input files, the files a
// provision writes, and the standard output of `retrieve --out -` and `get-item`.

import { expect } from 'chai';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Domain, expectFailure, expectSuccess, type KeyServer, type Machine } from './domain.ts';
import { run, runScript, type RunResult } from '../support/helpers.ts';
import { filesUnder, pemKeySecret, printable, scenarioCanaries, Scan, serverOutputs, storeSecrets, withTmpDir, type Place } from '../support/canaries.ts';
import { Cryptstore, KeyFileProtector, PassphraseProtector } from '../../cryptstore/index.ts';
import { loadIdentity } from '../../lib/certifier/index.ts';
import { KeyClient } from '../../lib/keyclient/index.ts';
import { fromKeyMessage } from '../../lib/crypto/keymessage.ts';
import { decode } from '../../lib/wire/index.ts';
import type { KeyMessage } from '../../lib/wire/types.ts';

/** Like expectFailure, for a run with --json: the error is the document on stdout. */
function expectJsonFailure(r: RunResult, status: number, code: string): void {
  expect(r.status, `exit status; stdout:\n${r.out}`).to.equal(status);
  expect(r.json().error.code).to.equal(code);
}

describe('e2e: no secret in any output or file at rest (canary scan of Scenario 1)', function () {
  this.timeout(120_000); // its before hook runs some 70 programs, which a loaded machine makes slow
  let d: Domain;
  let files: Place[] = [];
  const canaries = {
    ...scenarioCanaries(),
    storePassphrase: Buffer.from(`canary-pass-store-${printable(24)}`),
    newStorePassphrase: Buffer.from(`canary-pass-rekey-${printable(24)}`),
    vmPassphrase: Buffer.from(`canary-pass-vm-${printable(24)}`),
    bundlePassphrase: Buffer.from(`canary-pass-bundle-${printable(24)}`),
    writerKeyFile: Buffer.alloc(0), // new-key-file's, read once written
  };
  /**
   * Where each canary is meant to be: a file of the test's (by path under its folder) or a run's
   * output (by label). Its `made` are the secrets the programs made themselves, read at the end:
   * the private keys of the policy and the simulated platform (allowed in their own PEM file,
   * whose base64 may show a part of one), and the storage key, the stores' data keys and the
   * machines' keys (allowed nowhere).
   */
  const scan = new Scan(canaries);
  const { outputs, made } = scan;
  type Name = keyof typeof canaries;
  const allow = (place: string, ...names: Name[]) => scan.allow(place, ...names);
  const recorded = (label: string, r: Promise<RunResult>) => scan.recorded(label, r);
  const cu = (label: string, args: string[], input?: Buffer) => recorded(`cert-utility ${label}`, run('cert-utility', args, { cwd: d.dir, ...(input ? { input } : {}) }));
  const kc = (label: string, m: Machine, s: KeyServer, cmd: string, args: string[], input?: Buffer) => recorded(`key-client ${cmd} ${label}`, d.kc(m, s, cmd, args, input));
  /** A file of the test's own, allowed to hold the canaries it was written with. */
  const input = (name: string, bytes: Buffer, ...names: Name[]) => scan.input(d.dir, name, bytes, ...names);
  /** Init-trust of a machine whose store is protected by `protection` (made beforehand with a cheap KDF for a passphrase). */
  const certify = (name: string, program: string, protection: string[]) => d.certifyProtected(name, program, protection, cu);

  /**
   * Scenario 1's key-client work against `server`, round `r` of two (the first server logs text,
   * the second JSON), with the refusals where a secret is in hand: the writer's and the reader's
   * runs side by side (each machine's own one at a time: its cryptstore admits one process).
   */
  async function clientRound(r: 1 | 2, server: KeyServer, writer: Machine, reader: Machine, f: Record<'value32' | 'wrongPass' | 'vmPass', string>): Promise<void> {
    const n = (s: string) => `r${r}/${s}`;
    const json = r === 2 ? ['--json'] : [];
    const failure = r === 2 ? expectJsonFailure : expectFailure;
    expectSuccess(await kc(`${r} value32`, writer, server, 'store', [n('v32'), '--in', f.value32]));
    expectSuccess(await kc(`${r} value1k`, writer, server, 'store', [n('v1k'), '--in', '-', ...json], canaries.value1k));
    expectSuccess(await kc(`${r} valueText`, writer, server, 'store', [n('text'), '--in', '-'], canaries.valueText));
    expectSuccess(await kc(`${r} not exportable`, writer, server, 'store', [n('locked'), '--in', '-', '--not-exportable'], canaries.value32));
    const provisioned = join(d.dir, 'provisioned', `r${r}-text`);
    await Promise.all([
      r === 2 && firstBoot(server, [n('v32'), n('v1k')], f),
      (async () => {
        expectSuccess(await kc(`${r}`, writer, server, 'list', [`r${r}/`, ...json]));
        expectJsonFailure(await kc(`${r} version conflict --json`, writer, server, 'store', [n('v32'), '--in', '-', '--expected-version', '7', '--json'], canaries.valueText), 1, 'VERSION_CONFLICT');
        expectFailure(await kc(`${r} not exportable, into the store`, writer, server, 'retrieve', [n('locked')]), 1, 'NOT_EXPORTABLE');
      })(),
      (async () => {
        // The reader: into its cryptstore, to standard output, and by a provisioning config (a tag and a file).
        expectSuccess(await kc(`${r} into the store`, reader, server, 'retrieve', [n('v32'), n('v1k')]));
        const out = expectSuccess(await kc(`${r} --out -`, reader, server, 'retrieve', [n('text'), '--out', '-']));
        expect(out.stdout.equals(canaries.valueText)).to.equal(true);
        allow(`key-client retrieve ${r} --out -: stdout`, 'valueText');
        const config = join(d.dir, 'inputs', `provision-${r}.json`);
        writeFileSync(config, JSON.stringify({ secrets: [{ ID: n('v1k'), Tag: `r${r}-provisioned` }, { ID: n('text'), LocalPath: provisioned }] }));
        expectSuccess(await kc(`${r}`, reader, server, 'provision', ['--config', config, ...json]));
        allow(`provisioned/r${r}-text`, 'valueText');
        failure(await kc(`${r} refused by the ACL`, reader, server, 'store', [n('denied'), '--in', '-', ...json], canaries.value1k), 1, 'ACL_DENIED');
        failure(await kc(`${r} not exportable`, reader, server, 'retrieve', [n('locked'), '--out', '-', ...json]), 1, 'NOT_EXPORTABLE');
        const partial = join(d.dir, 'inputs', `provision-${r}-partial.json`);
        writeFileSync(partial, JSON.stringify({ secrets: [{ ID: n('v1k'), Tag: `r${r}-partial` }, { ID: n('text'), LocalPath: join(d.dir, 'provisioned', `r${r}-partial`) }, { ID: n('missing'), Tag: `r${r}-missing` }] }));
        failure(await kc(`${r} one name missing`, reader, server, 'provision', ['--config', partial, ...json]), 1, 'NOT_FOUND');
        const wrong = { ...reader, storeArgs: ['--store', reader.store, '--passphrase-file', f.wrongPass] };
        failure(await kc(`${r} wrong passphrase`, wrong, server, 'store', [n('wrong'), '--in', '-', ...json], canaries.value32), 4, 'WRONG_KEY');
      })(),
    ]);
    expect(readFileSync(provisioned).equals(canaries.valueText)).to.equal(true);
    expectSuccess(await kc(`${r}`, writer, server, 'delete', r === 1 ? [n('v1k'), '--version', '1'] : [n('text'), ...json]));
  }

  /**
   * The deployed VM of Scenario 1: scripts/first-boot.sh certifies it and fetches `names` into its
   * store (made beforehand with a cheap KDF), then, its passphrase mistyped, stops at the store.
   */
  async function firstBoot(server: KeyServer, names: string[], f: Record<'vmPass' | 'wrongPass', string>): Promise<void> {
    const store = join(d.dir, 'stores', 'vm');
    expectSuccess(await cu('create-store vm', ['create-store', '--scrypt-log-n', '10', '--store', store, '--passphrase-file', f.vmPass]));
    const args = (pass: string) => ['--host', '127.0.0.1', '--certifier-port', String(d.certifierPort), '--keyserver-port', String(server.port), '--keys', names.join(' '),
      '--domain', d.name, '--policy-cert', d.policyCertFile, '--store', store, '--passphrase-file', pass, '--platform-dir', d.platformDir,
      '--measurement-file', d.measurementFile('vm'), '--server-measurement', server.measurementHex, '--retries', '1'];
    expectSuccess(await recorded('first-boot.sh', runScript('first-boot.sh', args(f.vmPass), { cwd: d.dir })));
    const wrong = await recorded('first-boot.sh wrong passphrase', runScript('first-boot.sh', args(f.wrongPass), { cwd: d.dir }));
    expect(wrong.status, wrong.stderr).to.equal(4);
    expect(wrong.stderr).to.contain('[WRONG_KEY]');
  }

  /** The cryptstore commands, on a store of their own (a passphrase's, made with a cheap KDF). */
  async function storeCommands(f: Record<'value32' | 'storePass' | 'newStorePass' | 'wrongPass' | 'bundlePass', string>): Promise<void> {
    const storeDir = join(d.dir, 'stores', 'local');
    const store = ['--store', storeDir, '--passphrase-file', f.storePass];
    expectSuccess(await cu('create-store', ['create-store', '--scrypt-log-n', '10', ...store]));
    expectSuccess(await cu('put-item', ['put-item', '--tag', 'local/text', '--exportable', '--in', '-', ...store], canaries.valueText));
    expectSuccess(await cu('put-item --json', ['put-item', '--tag', 'local/v32', '--exportable', '--in', f.value32, '--json', ...store]));
    expectSuccess(await cu('put-item not exportable', ['put-item', '--tag', 'local/v1k', '--in', '-', ...store], canaries.value1k));
    const got = expectSuccess(await cu('get-item --out -', ['get-item', '--tag', 'local/v32', '--out', '-', ...store]));
    expect(got.stdout.equals(canaries.value32)).to.equal(true);
    allow('cert-utility get-item --out -: stdout', 'value32');
    expectSuccess(await cu('get-item --out - --json', ['get-item', '--tag', 'local/text', '--out', '-', '--json', ...store]));
    allow('cert-utility get-item --out - --json: stdout', 'valueText');
    expectSuccess(await cu('generate-key aes-256-gcm', ['generate-key', '--tag', 'local/aes', '--alg', 'aes-256-gcm', '--exportable', ...store]));
    expectSuccess(await cu('generate-key p256 --json', ['generate-key', '--tag', 'local/ec', '--alg', 'p256', '--json', ...store]));
    expectSuccess(await cu('list-items', ['list-items', ...store]));
    expectSuccess(await cu('list-items --json', ['list-items', '--json', ...store]));
    expectSuccess(await cu('print-store', ['print-store', ...store]));
    expectSuccess(await cu('export-store', ['export-store', '--out', join(d.dir, 'exports', 'bundle.bin'), '--bundle-passphrase-file', f.bundlePass, '--scrypt-log-n', '10', ...store]));
    const imported = ['--store', join(d.dir, 'stores', 'imported'), '--passphrase-file', f.storePass];
    expectSuccess(await cu('create-store imported', ['create-store', '--scrypt-log-n', '10', ...imported]));
    expectFailure(await cu('import-store wrong passphrase', ['import-store', '--in', join(d.dir, 'exports', 'bundle.bin'), '--bundle-passphrase-file', f.wrongPass, ...imported]), 4, 'WRONG_KEY');
    expectSuccess(await cu('import-store', ['import-store', '--in', join(d.dir, 'exports', 'bundle.bin'), '--bundle-passphrase-file', f.bundlePass, ...imported]));
    expectSuccess(await cu('verify-store', ['verify-store', ...store]));
    expectSuccess(await cu('delete-item', ['delete-item', '--tag', 'local/v1k', ...store]));
    // The passphrase from the environment, right and wrong.
    const env = (passphrase: Buffer) => ({ cwd: d.dir, env: { CRYPTSTORE_PASSPHRASE: passphrase.toString() } });
    expectSuccess(await recorded('cert-utility list-items CRYPTSTORE_PASSPHRASE', run('cert-utility', ['list-items', '--store', storeDir], env(canaries.storePassphrase))));
    expectFailure(await recorded('cert-utility get-item wrong CRYPTSTORE_PASSPHRASE', run('cert-utility', ['get-item', '--tag', 'local/v32', '--out', '-', '--store', storeDir], env(canaries.wrongPassphrase))), 4, 'WRONG_KEY');
    const wrong = ['--store', storeDir, '--passphrase-file', f.wrongPass];
    expectFailure(await cu('get-item wrong passphrase', ['get-item', '--tag', 'local/v32', '--out', '-', ...wrong]), 4, 'WRONG_KEY');
    expectJsonFailure(await cu('put-item wrong passphrase --json', ['put-item', '--tag', 'local/wrong', '--in', '-', '--json', ...wrong], canaries.value1k), 4, 'WRONG_KEY');
    expectSuccess(await cu('rekey-store', ['rekey-store', '--new-passphrase-file', f.newStorePass, '--scrypt-log-n', '10', ...store]));
    // The keys generate-key made, read back from the store.
    const rekeyed = await Cryptstore.open(storeDir, new PassphraseProtector(canaries.newStorePassphrase));
    try {
      made.push({ name: 'generated aes-256-gcm key', value: Buffer.from(decode<KeyMessage>('key_message', (await rekeyed.get('local/aes')).blob).secretKeyBits!) });
      const ec = fromKeyMessage(decode<KeyMessage>('key_message', (await rekeyed.get('local/ec')).blob));
      made.push({ name: 'generated p256 key', value: Buffer.from(ec.export({ format: 'jwk' }).d!, 'base64url') });
    } finally {
      await rekeyed.close();
    }
  }

  /**
   * Retrieves of a secret under a long name (from this process, pipelined) until the audit log
   * passes 1 MiB and is rotated: a segment and FILE.end beside it.
   */
  async function rotateAudit(server: KeyServer, writer: Machine): Promise<void> {
    const store = await Cryptstore.open(writer.store, new KeyFileProtector(canaries.writerKeyFile));
    const identity = await loadIdentity(store, d.name, d.policyCert).finally(() => store.close());
    const c = await KeyClient.connect({ host: '127.0.0.1', port: server.port, identity, policyCert: d.policyCert, serverMeasurements: [server.measurementHex] });
    try {
      const name = `r2/${'a-long-name-'.repeat(20)}`;
      await c.store(name, canaries.value1k);
      const rotated = () => readdirSync(join(d.dir, 'audit')).some((n) => /^audit\.jsonl\.\d+-\d+$/.test(n));
      for (let i = 0; i < 100 && !rotated(); i++) await Promise.all(Array.from({ length: 32 }, () => c.retrieve(name)));
      expect(rotated(), 'the audit log was rotated').to.equal(true);
    } finally {
      await c.close();
    }
  }

  before(async () => {
    d = await Domain.create({ programs: ['key-server', 'writer', 'reader', 'vm'] });
    for (const dir of ['inputs', 'stores', 'provisioned', 'audit', 'exports', 'tmp']) mkdirSync(join(d.dir, dir), { mode: 0o700 });
    let ks!: Machine, writer!: Machine, reader!: Machine, standby!: Machine;
    await withTmpDir(join(d.dir, 'tmp'), async () => {
      const f = {
        value32: input('value32.bin', canaries.value32, 'value32'),
        serverPass: input('server-pass.txt', canaries.serverPassphrase, 'serverPassphrase'),
        readerPass: input('reader-pass.txt', Buffer.concat([canaries.readerPassphrase, Buffer.from('\n')]), 'readerPassphrase'),
        wrongPass: input('wrong-pass.txt', canaries.wrongPassphrase, 'wrongPassphrase'),
        vmPass: input('vm-pass.txt', canaries.vmPassphrase, 'vmPassphrase'),
        storePass: input('store-pass.txt', canaries.storePassphrase, 'storePassphrase'),
        newStorePass: input('new-store-pass.txt', canaries.newStorePassphrase, 'newStorePassphrase'),
        bundlePass: input('bundle-pass.txt', canaries.bundlePassphrase, 'bundlePassphrase'),
        writerKey: join(d.dir, 'inputs', 'writer.key'),
      };
      expectSuccess(await cu('new-key-file', ['new-key-file', '--out', f.writerKey]));
      canaries.writerKeyFile = readFileSync(f.writerKey);
      allow('inputs/writer.key', 'writerKeyFile');

      [ks, writer, reader, standby] = await Promise.all([
        certify('keyserver', 'key-server', ['--passphrase-file', f.serverPass]),
        certify('writer', 'writer', ['--key-file', f.writerKey]),
        certify('reader', 'reader', ['--passphrase-file', f.readerPass]),
        d.certify('standby', 'key-server'), // a standby of the key-server, its store protected by the domain's key file
      ]);
      const acl = {
        version: 1,
        rules: [
          { comment: 'the writer stores, reads, lists and deletes', resources: ['**'], actions: ['store', 'retrieve', 'list', 'delete'], measurements: [d.measurementHex('writer')] },
          { comment: 'the reader only reads', resources: ['**'], actions: ['retrieve', 'list'], measurements: [d.measurementHex('reader')] },
          { comment: 'the deployed VM only retrieves', resources: ['**'], actions: ['retrieve'], measurements: [d.measurementHex('vm')] },
        ],
      };
      const data = join(d.dir, 'keyserver-data');
      const audit = ['--audit', join(d.dir, 'audit', 'audit.jsonl')];
      await Promise.all([
        storeCommands(f),
        (async () => {
          // A first run logging text, backed up on SIGUSR1; a second over the same data logging JSON.
          const first = await d.startKeyServer(ks, { data, acl, args: [...audit, '--backup-dir', join(d.dir, 'backups')] });
          await clientRound(1, first, writer, reader, f);
          const mark = first.child.mark();
          process.kill(first.child.pid, 'SIGUSR1');
          await first.child.waitForLog(/ backup-written /, mark);
          await first.child.stop();
          const second = await d.startKeyServer(ks, { data, acl, args: [...audit, '--log-json', '--audit-rotate-mb', '1', '--allow-replica-join'] });
          await clientRound(2, second, writer, reader, f);
          // The standby fetches the storage key into its store, as a standby or replica does.
          const joined = recorded('key-server join', run('key-server', ['join', '--from', second.address, '--domain', d.name, '--policy-cert', d.policyCertFile, ...standby.storeArgs], { cwd: d.dir }));
          await Promise.all([joined.then(expectSuccess), rotateAudit(second, writer)]);
          // What key-client put in the reader's store, read back as Scenario 1's VM does.
          const got = expectSuccess(await cu('get-item retrieved --out -', ['get-item', '--tag', 'r2/v32', '--out', '-', ...reader.storeArgs]));
          expect(got.stdout.equals(canaries.value32)).to.equal(true);
          allow('cert-utility get-item retrieved --out -: stdout', 'value32');
        })(),
      ]);
    });
    // Every server stopped, so that its logs are whole and its files at rest.
    await Promise.all(d.servers.map((c) => c.stop()));
    // key-server given a wrong passphrase, its log in text and in JSON.
    for (const log of [[], ['--log-json']]) {
      const args = ['serve', '--domain', d.name, '--policy-cert', d.policyCertFile, '--data', join(d.dir, 'keyserver-data'), '--listen', '127.0.0.1:0', '--store', ks.store, '--passphrase-file', join(d.dir, 'inputs', 'wrong-pass.txt'), ...log];
      const r = await recorded(`key-server serve wrong passphrase ${log.join(' ')}`, run('key-server', args, { cwd: d.dir }));
      expect(r.status, r.stderr).to.equal(4);
      expect(r.stderr).to.contain('WRONG_KEY');
    }
    for (const home of ['policy-key.pem', 'platform/platform-key.pem', 'platform/attest-key.pem']) made.push(pemKeySecret(home, join(d.dir, home), home));
    // The storage key, each store's data key and each machine's private key.
    const vm: Machine = { name: 'vm', program: 'vm', store: join(d.dir, 'stores', 'vm'), storeArgs: [] };
    for (const [m, protector] of [[ks, new PassphraseProtector(canaries.serverPassphrase)], [writer, new KeyFileProtector(canaries.writerKeyFile)], [reader, new PassphraseProtector(canaries.readerPassphrase)], [vm, new PassphraseProtector(canaries.vmPassphrase)], [standby, new KeyFileProtector(readFileSync(d.keyFile))]] as const) {
      const held = await storeSecrets(m.name, m.store, protector, d.name, d.policyCert);
      if (m === ks) made.push({ name: 'storage key', value: held.storageKey! });
      if (m === standby) expect(held.storageKey?.equals(made.find((c) => c.name === 'storage key')!.value), 'the standby holds the storage key').to.equal(true);
      made.push(...held.made);
    }
    outputs.push(...serverOutputs(d.servers));
    files = filesUnder(d.dir);
  });

  after(async () => {
    await d?.close();
  });

  it('keeps in the audit log, its segment included, the fields the README lists for a decision and nothing else', () => {
    const documented = ['seq', 'time', 'conn', 'peerSerial', 'measurement', 'role', 'credentialSerial', 'action', 'resource', 'version', 'deleted', 'decision', 'code', 'prev', 'hash'];
    // The log just rotated is empty until its next record: no line there.
    const lines = files.filter((f) => /^audit\/audit\.jsonl(\.\d+-\d+)?$/.test(f.label) && f.bytes.length > 0).flatMap((f) => f.bytes.toString('utf8').trim().split('\n'));
    expect(lines.length).to.be.above(1000);
    const fields = new Set(lines.flatMap((l) => Object.keys(JSON.parse(l) as object)));
    expect([...fields].filter((k) => !documented.includes(k))).to.deep.equal([]);
    expect(new Set(lines.map((l) => (JSON.parse(l) as { decision: string }).decision))).to.deep.equal(new Set(['allow', 'deny']));
  });

  it('finds each canary where the test put or asked for it, so the search would see a leak', () => {
    expect(scan.missed(files)).to.deep.equal([]);
  });

  it('finds no canary anywhere else: not in an output of any run, a log, the audit log, a key database, a cryptstore, a backup or a bundle', () => {
    expect(scan.leaks(files)).to.deep.equal([]);
    expect(made.map((c) => c.name)).to.have.length(16);
  });
});

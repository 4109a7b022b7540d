// The canary scan of no-secret-left.test.ts (its search and its rules: test/support/canaries.ts),
// over two paths it does not take. Two key-server replicas over one real PostgreSQL database:
// the replicas' outputs, audit logs and stores, the database as `pg_dump` prints it, the raw files
// of its data directory (tables and WAL) and PostgreSQL's own log, with every statement and its
// parameters logged. And a SEV-SNP machine certified through a test signer: the evidence saved,
// what explain prints of it, what cert-utility printed and simpleserver's log; then a VM's first
// boot there (scripts/first-boot.sh --platform sev-snp), which certifies it and fetches its key
// from a key-server: what the script and the programs it runs printed, key-server's log and data.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Domain, expectFailure, expectSuccess, startServer, type Child, type KeyServer, type Machine } from './domain.ts';
import { run, runScript, tempDir } from '../support/helpers.ts';
import { filesUnder, pemKeySecret, printable, scenarioCanaries, Scan, search, serverOutputs, storeSecrets, withTmpDir, type Canary, type Place } from '../support/canaries.ts';
import { KeyFileProtector, PassphraseProtector } from '../../cryptstore/index.ts';
import { issueAdmissionCert, readCertificate, toPem } from '../../lib/pki/index.ts';
import { generateKeyPair, importPrivateKey } from '../../lib/crypto/index.ts';
import { Cryptstore } from '../../cryptstore/index.ts';
import { identityItems } from '../bench/domain.ts';
import { findPgBin, PG_MISSING, PgServer } from '../postgres/pg-server.ts';
import { serveFakeTsm, type FakeTsm } from '../sev-snp/fake-tsm.ts';
import { TestSnpSigner } from '../sev-snp/signer.ts';

const bin = findPgBin();

describe('e2e: no secret left by two key-server replicas over PostgreSQL (canary scan)', function () {
  this.timeout(120_000);
  if (!bin) {
    it(PG_MISSING, function () {
      this.skip();
    });
    return;
  }
  let pgs: PgServer | undefined;
  let d: Domain;
  let files: Place[] = [];
  const scan = new Scan({
    ...scenarioCanaries(),
    pgPassword: Buffer.from(`canary-pg-${randomBytes(18).toString('base64url')}`), // as a URL holds it, unescaped
    replicaKeyFile: Buffer.alloc(0), // new-key-file's, read once written
  });
  const { canaries } = scan;
  /** Plain text put in the database by psql, to show that the search sees into the dump, the tables, the WAL and the log. */
  const probe = { name: 'probe', value: Buffer.from(`canary-probe-${randomBytes(16).toString('hex')}`) };

  const cu = (label: string, args: string[], input?: Buffer) => scan.recorded(`cert-utility ${label}`, run('cert-utility', args, { cwd: d.dir, ...(input ? { input } : {}) }));
  const kc = (label: string, m: Machine, s: KeyServer, cmd: string, args: string[], input?: Buffer) => scan.recorded(`key-client ${cmd} ${label}`, d.kc(m, s, cmd, args, input));

  const certify = (name: string, program: string, protection: string[]) => d.certifyProtected(name, program, protection, cu);

  /** Scenario 1's key-client work spread over the two replicas: what one stores, the other serves. */
  async function clientWork(r1: KeyServer, r2: KeyServer, writer: Machine, reader: Machine, f: Record<'value32' | 'wrongPass', string>): Promise<void> {
    expectSuccess(await kc('value32', writer, r1, 'store', ['p/v32', '--in', f.value32]));
    expectSuccess(await kc('value1k --json', writer, r1, 'store', ['p/v1k', '--in', '-', '--json'], canaries.value1k));
    expectSuccess(await kc('valueText', writer, r1, 'store', ['p/text', '--in', '-'], canaries.valueText));
    expectSuccess(await kc('not exportable', writer, r1, 'store', ['p/locked', '--in', '-', '--not-exportable'], canaries.value32));
    expectSuccess(await kc('on r2', writer, r2, 'store', ['p/from-r2', '--in', '-'], canaries.value1k));
    await Promise.all([
      (async () => {
        expectSuccess(await kc('--json', writer, r2, 'list', ['p/', '--json']));
        const conflict = await kc('version conflict --json', writer, r2, 'store', ['p/v32', '--in', '-', '--expected-version', '7', '--json'], canaries.valueText);
        expect(conflict.status).to.equal(1);
        expect(conflict.json().error.code).to.equal('VERSION_CONFLICT');
        expectFailure(await kc('not exportable, into the store', writer, r2, 'retrieve', ['p/locked']), 1, 'NOT_EXPORTABLE');
      })(),
      (async () => {
        expectSuccess(await kc('into the store', reader, r2, 'retrieve', ['p/v32', 'p/v1k']));
        expectSuccess(await kc('from r1', reader, r1, 'retrieve', ['p/from-r2']));
        const out = expectSuccess(await kc('--out -', reader, r2, 'retrieve', ['p/text', '--out', '-']));
        expect(out.stdout.equals(canaries.valueText)).to.equal(true);
        scan.allow('key-client retrieve --out -: stdout', 'valueText');
        const config = join(d.dir, 'inputs', 'provision.json');
        writeFileSync(config, JSON.stringify({ secrets: [{ ID: 'p/v1k', Tag: 'provisioned' }, { ID: 'p/text', LocalPath: join(d.dir, 'provisioned', 'text') }] }));
        expectSuccess(await kc('a config', reader, r2, 'provision', ['--config', config]));
        scan.allow('provisioned/text', 'valueText');
        expectFailure(await kc('refused by the ACL', reader, r1, 'store', ['p/denied', '--in', '-'], canaries.value1k), 1, 'ACL_DENIED');
        const wrong = { ...reader, storeArgs: ['--store', reader.store, '--passphrase-file', f.wrongPass] };
        expectFailure(await kc('wrong passphrase', wrong, r2, 'retrieve', ['p/v32']), 4, 'WRONG_KEY');
      })(),
    ]);
    expectSuccess(await kc('p/v1k', writer, r2, 'delete', ['p/v1k']));
  }

  before(async () => {
    pgs = await PgServer.start(bin);
    // Every statement with its parameters in PostgreSQL's log, as an auditing DBA might have it.
    await pgs.psql('postgres', "ALTER SYSTEM SET log_statement = 'all'");
    await pgs.psql('postgres', 'SELECT pg_reload_conf()');
    await pgs.createDatabase('keys');
    await pgs.psql('keys', `CREATE TABLE scan_probe (v text); INSERT INTO scan_probe VALUES ('${probe.value.toString()}')`);
    d = await Domain.create({ programs: ['key-server', 'writer', 'reader'] });
    for (const dir of ['inputs', 'stores', 'provisioned', 'tmp']) mkdirSync(join(d.dir, dir), { mode: 0o700 });
    let ks1!: Machine, ks2!: Machine, writer!: Machine, reader!: Machine;
    await withTmpDir(join(d.dir, 'tmp'), async () => {
      const f = {
        value32: scan.input(d.dir, 'value32.bin', canaries.value32, 'value32'),
        serverPass: scan.input(d.dir, 'server-pass.txt', canaries.serverPassphrase, 'serverPassphrase'),
        readerPass: scan.input(d.dir, 'reader-pass.txt', canaries.readerPassphrase, 'readerPassphrase'),
        wrongPass: scan.input(d.dir, 'wrong-pass.txt', canaries.wrongPassphrase, 'wrongPassphrase'),
        // The database's URL as a systemd EnvironmentFile gives it (the README's way: not in argv).
        env: scan.input(d.dir, 'key-server.env', Buffer.from(`KEY_SERVER_PG_URL=postgres://postgres:${canaries.pgPassword.toString()}@127.0.0.1:${pgs!.port}/keys\n`), 'pgPassword'),
        replicaKey: join(d.dir, 'inputs', 'replica.key'),
      };
      expectSuccess(await cu('new-key-file', ['new-key-file', '--out', f.replicaKey]));
      canaries.replicaKeyFile = readFileSync(f.replicaKey);
      scan.allow('inputs/replica.key', 'replicaKeyFile');
      [ks1, ks2, writer, reader] = await Promise.all([
        certify('ks1', 'key-server', ['--passphrase-file', f.serverPass]),
        certify('ks2', 'key-server', ['--key-file', f.replicaKey]),
        d.certify('writer', 'writer'),
        certify('reader', 'reader', ['--passphrase-file', f.readerPass]),
      ]);
      const acl = {
        version: 1,
        rules: [
          { comment: 'the writer stores, reads, lists and deletes', resources: ['**'], actions: ['store', 'retrieve', 'list', 'delete'], measurements: [d.measurementHex('writer')] },
          { comment: 'the reader only reads', resources: ['**'], actions: ['retrieve', 'list'], measurements: [d.measurementHex('reader')] },
        ],
      };
      const url = readFileSync(f.env, 'utf8').trim().replace(/^KEY_SERVER_PG_URL=/, '');
      // The first replica logs text and has the URL in its environment; the second logs JSON and
      // has it in --pg-url (warned of, the password never shown).
      const r1 = await d.startKeyServer(ks1, { acl, args: ['--backend', 'postgres', '--replica-id', 'r1', '--allow-replica-join'], env: { KEY_SERVER_PG_URL: url } });
      expectSuccess(await scan.recorded('key-server join', run('key-server', ['join', '--from', r1.address, '--domain', d.name, '--policy-cert', d.policyCertFile, ...ks2.storeArgs], { cwd: d.dir })));
      const r2 = await d.startKeyServer(ks2, { acl, args: ['--backend', 'postgres', '--replica-id', 'r2', '--log-json', '--pg-url', url] });
      await clientWork(r1, r2, writer, reader, f);
    });
    await Promise.all(d.servers.map((c) => c.stop()));
    const dump = await pgs.dump('keys');
    await pgs.halt(); // its buffers written out to the table files
    for (const home of ['policy-key.pem', 'platform/platform-key.pem', 'platform/attest-key.pem']) scan.made.push(pemKeySecret(home, join(d.dir, home), home));
    for (const [m, protector] of [[ks1, new PassphraseProtector(canaries.serverPassphrase)], [ks2, new KeyFileProtector(canaries.replicaKeyFile)], [writer, new KeyFileProtector(readFileSync(d.keyFile))], [reader, new PassphraseProtector(canaries.readerPassphrase)]] as const) {
      const held = await storeSecrets(m.name, m.store, protector, d.name, d.policyCert);
      if (m === ks1) scan.made.push({ name: 'storage key', value: held.storageKey! });
      if (m === ks2) expect(held.storageKey?.equals(scan.made.find((c) => c.name === 'storage key')!.value), 'the joined replica holds the storage key').to.equal(true);
      scan.made.push(...held.made);
    }
    scan.outputs.push(...serverOutputs(d.servers), { label: 'pg_dump', bytes: Buffer.from(dump) });
    files = [...filesUnder(d.dir), ...filesUnder(pgs.dir).map((p) => ({ ...p, label: `postgres/${p.label}` }))];
  });

  after(async () => {
    await d?.close();
    await pgs?.stop();
  });

  it('sees the probe put in the database in its dump, a table file, the WAL and PostgreSQL\'s log, and each canary where the test put or asked for it', () => {
    const places = new Set(search([...scan.outputs, ...files], [probe]).map((x) => x.place.replace(/^(postgres\/data\/(pg_wal|base)\/).*/, '$1')));
    expect([...places]).to.include.members(['pg_dump', 'postgres/data/base/', 'postgres/data/pg_wal/', 'postgres/server.log']);
    expect(scan.missed(files)).to.deep.equal([]);
  });

  it('finds no canary anywhere else: not in a replica\'s output or audit log, a store, the dump, the database\'s files or WAL, or PostgreSQL\'s log', () => {
    expect(scan.leaks(files)).to.deep.equal([]);
    expect(scan.made.map((c) => c.name)).to.have.length(12);
  });
});

describe('e2e: no secret left by a SEV-SNP machine\'s certification and a VM\'s first boot (canary scan, test signer)', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  let fake: FakeTsm | undefined;
  let files: Place[] = [];
  let simpleserver: Child | undefined;
  let keyServer: Child | undefined;
  /** What the evidence must show, not secret: the machines' public keys (x) and the measurement, to show the search reads it. */
  const shown: Canary[] = [];
  const scan = new Scan({
    storePassphrase: Buffer.from(`canary-pass-snp-${printable(24)}`),
    wrongPassphrase: Buffer.from(`canary-pass-wrong-${printable(24)}`),
    storeKeyFile: Buffer.alloc(0), // new-key-file's, read once written
    vmKey: randomBytes(32), // the key the VM's first boot fetches
  });
  const measurement = randomBytes(48);
  /** The measurement of key-server and of the operator's key-client, whose certificates are issued offline. */
  const serverMeasurement = randomBytes(32);

  /** A store under `inputs/store.key` holding an identity issued offline (as issue-cert makes one): key-server's and the operator's. */
  async function offlineStore(dir: string, name: string): Promise<string[]> {
    const policyKey = importPrivateKey(readFileSync(join(dir, 'policy-key.pem')));
    const policyCert = readCertificate(readFileSync(join(dir, 'policy-cert.pem')));
    const { privateKey, publicKey } = await generateKeyPair('p256');
    const cert = await issueAdmissionCert({ policyKey, policyCert, subjectPublicKey: publicKey, measurement: serverMeasurement, platform: 'issued-offline', domain: 'snp-test', validitySeconds: 86_400 });
    const store = await Cryptstore.create(join(dir, name), new KeyFileProtector(scan.canaries.storeKeyFile, 'store.key'));
    try {
      await store.putAll(identityItems('snp-test', privateKey, cert));
    } finally {
      await store.close();
    }
    return ['--store', join(dir, name), '--key-file', join(dir, 'inputs', 'store.key')];
  }

  /**
   * The VM's first boot: first-boot.sh --platform sev-snp certifies it (by the fake configfs-tsm)
   * and fetches its key, a canary the operator stored in key-server, into a store under a
   * passphrase; then, its passphrase mistyped, stops at the store.
   */
  async function firstBoot(dir: string, certifierPort: number, pass: string, wrongPass: string): Promise<void> {
    const [ksStore, opStore] = await Promise.all([offlineStore(dir, 'ks-store'), offlineStore(dir, 'op-store')]);
    const ks = await startServer('key-server', ['serve', '--domain', 'snp-test', '--policy-cert', join(dir, 'policy-cert.pem'), '--data', join(dir, 'ks-data'), '--listen', '127.0.0.1:0', ...ksStore]);
    keyServer = ks.child;
    const pin = ['--server-measurement', serverMeasurement.toString('hex')];
    const vmKey = scan.input(dir, 'vm-key.bin', scan.canaries.vmKey, 'vmKey');
    const stored = run('key-client', ['store', 'vm/disk-key', '--in', vmKey, '--server', `127.0.0.1:${ks.port}`, '--domain', 'snp-test', '--policy-cert', 'policy-cert.pem', ...pin, ...opStore], { cwd: dir });
    expectSuccess(await scan.recorded('key-client store', stored));
    expectSuccess(await scan.recorded('cert-utility create-store vm-store', run('cert-utility', ['create-store', '--scrypt-log-n', '10', '--store', 'vm-store', '--passphrase-file', pass], { cwd: dir })));
    const boot = (label: string, passFile: string) => scan.recorded(`first-boot.sh${label}`, runScript('first-boot.sh', [
      '--host', '127.0.0.1', '--certifier-port', String(certifierPort), '--keyserver-port', String(ks.port), '--keys', 'vm/disk-key', '--domain', 'snp-test',
      '--policy-cert', 'policy-cert.pem', '--store', 'vm-store', '--passphrase-file', passFile, '--platform', 'sev-snp', '--tsm-dir', 'tsm', ...pin, '--retries', '1',
    ], { cwd: dir }));
    expect(expectSuccess(await boot('', pass)).stderr).to.contain('done: vm/disk-key kept in vm-store');
    const wrong = await boot(' wrong passphrase', wrongPass);
    expect(wrong.status, wrong.stderr).to.equal(4);
    expect(wrong.stderr).to.contain('[WRONG_KEY]');
    await keyServer.stop();
  }

  before(async () => {
    tmp = tempDir('snp-scan-');
    const at = (f: string) => join(tmp.dir, f);
    const signer = TestSnpSigner.create();
    for (const dir of ['inputs', 'tsm', 'tmp']) mkdirSync(at(dir), { mode: 0o700 });
    writeFileSync(at('test-ark.pem'), toPem(signer.ark));
    fake = serveFakeTsm(at('tsm'), signer, { measurement });
    const cu = (label: string, args: string[]) => scan.recorded(`cert-utility ${label}`, run('cert-utility', args, { cwd: tmp.dir }));
    const explain = (label: string, policy: string, more: string[] = []) => scan.recorded(`simpleserver explain ${label}`, run('simpleserver', ['explain', '--policy', policy, '--policy-cert', 'policy-cert.pem', '--evidence', 'evidence.bin', ...more], { cwd: tmp.dir }));
    const policy = (out: string, trust: string[]) => cu(`make-policy ${out}`, ['make-policy', '--policy-key', 'policy-key.pem', '--policy-cert', 'policy-cert.pem', '--out', out, ...trust, '--snp-min-tcb', '3:0:8:115', '--trust-measurement', measurement.toString('hex')]);
    const pass = scan.input(tmp.dir, 'store-pass.txt', scan.canaries.storePassphrase, 'storePassphrase');
    const wrongPass = scan.input(tmp.dir, 'wrong-pass.txt', scan.canaries.wrongPassphrase, 'wrongPassphrase');
    await withTmpDir(at('tmp'), async () => {
      expectSuccess(await cu('generate-policy-key', ['generate-policy-key', '--domain', 'snp-test', '--key-out', 'policy-key.pem', '--cert-out', 'policy-cert.pem']));
      expectSuccess(await cu('new-key-file', ['new-key-file', '--out', 'inputs/store.key']));
      scan.canaries.storeKeyFile = readFileSync(at('inputs/store.key'));
      scan.allow('inputs/store.key', 'storeKeyFile');
      expectSuccess(await policy('policy.bin', ['--trust-amd-root-cert', 'test-ark.pem']));
      expectSuccess(await policy('policy-amd.bin', ['--trust-amd-root', 'milan']));
      expectSuccess(await cu('create-store', ['create-store', '--scrypt-log-n', '10', '--store', 'store-pass', '--passphrase-file', pass]));
      const server = await startServer('simpleserver', ['serve', '--policy-key', at('policy-key.pem'), '--policy-cert', at('policy-cert.pem'), '--policy', at('policy.bin'), '--listen', '127.0.0.1:0']);
      simpleserver = server.child;
      const initTrust = (label: string, store: string[], more: string[]) => cu(`init-trust ${label}`, ['init-trust', '--domain', 'snp-test', '--policy-cert', 'policy-cert.pem', '--server', `127.0.0.1:${server.port}`, ...store, '--platform', 'sev-snp', '--tsm-dir', 'tsm', ...more]);
      const byKeyFile = ['--store', 'store', '--key-file', 'inputs/store.key'];
      expectSuccess(await initTrust('key file', byKeyFile, ['--save-evidence', 'evidence.bin']));
      expectSuccess(await initTrust('passphrase --json', ['--store', 'store-pass', '--passphrase-file', pass], ['--save-evidence', 'evidence-pass.bin', '--json']));
      // A new key and certificate for the same store: the one read at the end.
      expectSuccess(await initTrust('again', byKeyFile, ['--force', '--save-evidence', 'evidence-again.bin']));
      expectFailure(await initTrust('wrong passphrase', ['--store', 'store-pass', '--passphrase-file', wrongPass], ['--force']), 4, 'WRONG_KEY');
      expectSuccess(await explain('allowed', 'policy.bin'));
      expect((await explain('refused --json', 'policy-amd.bin', ['--json'])).status).to.equal(4);
      await firstBoot(tmp.dir, server.port, pass, wrongPass);
      await simpleserver.stop();
    });
    fake.stop();
    scan.made.push(pemKeySecret('policy-key.pem', at('policy-key.pem'), 'policy-key.pem'));
    const policyCert = readCertificate(readFileSync(at('policy-cert.pem')));
    const byKeyFile = new KeyFileProtector(scan.canaries.storeKeyFile);
    const byPassphrase = new PassphraseProtector(scan.canaries.storePassphrase);
    for (const [name, protector] of [['store', byKeyFile], ['store-pass', byPassphrase], ['vm-store', byPassphrase], ['ks-store', byKeyFile], ['op-store', byKeyFile]] as const) {
      const held = await storeSecrets(name, at(name), protector, 'snp-test', policyCert);
      scan.made.push(...held.made, ...(held.storageKey ? [{ name: 'storage key', value: held.storageKey }] : []));
      shown.push({ name: `${name}'s public key`, value: held.publicX });
    }
    const vm = await Cryptstore.open(at('vm-store'), byPassphrase);
    try {
      expect(Buffer.from((await vm.get('vm/disk-key')).blob).equals(scan.canaries.vmKey), 'the first boot fetched the VM\'s key').to.equal(true);
    } finally {
      await vm.close();
    }
    shown.push({ name: 'measurement', value: measurement });
    scan.outputs.push(...serverOutputs([simpleserver!, keyServer!]));
    files = filesUnder(tmp.dir);
  });

  after(async () => {
    fake?.stop();
    await simpleserver?.stop();
    await keyServer?.stop();
    tmp?.cleanup();
  });

  it('certified by SEV-SNP evidence, and finds in it each machine\'s public key and its measurement, and each canary where the test put it', () => {
    expect(Buffer.concat(simpleserver!.written.stderr).toString()).to.match(/certification .*decision=allow .*platform=amd-sev-snp/);
    const seen = search([...scan.outputs, ...files], shown).map((x) => `${x.canary} in ${x.place}`);
    expect(seen).to.include.members(['store\'s public key in evidence-again.bin', 'store-pass\'s public key in evidence-pass.bin', 'measurement in evidence.bin',
      'measurement in simpleserver #0: stderr', 'measurement in simpleserver explain allowed: stdout',
      // The first boot's outputs and key-server's log and data are read too.
      'measurement in first-boot.sh: stderr', 'measurement in key-server #1: stderr', 'measurement in ks-data/audit.jsonl']);
    expect(scan.missed(files)).to.deep.equal([]);
  });

  it('finds no passphrase, key file, fetched key, data key, storage key or machine private key in the evidence, explain\'s output, cert-utility\'s, simpleserver\'s, first-boot.sh\'s (and its programs\'), or key-server\'s log and data', () => {
    expect(scan.leaks(files)).to.deep.equal([]);
    expect(scan.made.map((c) => c.name)).to.have.length(12);
  });
});

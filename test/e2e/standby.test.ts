// The README's recovery path for a single key-server on LevelDB, with the real programs: a
// standby machine running the same key-server program holds the storage key (key-server join),
// and a copy of the stopped primary's data directory is all it needs to serve every key.

import { expect } from 'chai';
import { chmodSync, cpSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { linkToDeep, ROOT, run } from '../support/helpers.ts';
import { ABANDON_MS, TASK_GRACE_MS } from '../../cmd/common/server.ts';
import { Domain, expectFailure, expectSuccess, sleep, type Machine } from './domain.ts';

describe('e2e: a standby key-server takes over from a copy of the data directory', function () {
  let d: Domain;
  let primary: Machine;
  let standby: Machine;
  let alice: Machine;

  before(async () => {
    ({ d, machines: { 'ks-primary': primary, 'ks-standby': standby, alice } } = await Domain.setUp({ 'ks-primary': 'key-server', 'ks-standby': 'key-server', alice: 'client-alice' }));
  });
  after(async () => d?.close());

  it('joins while the primary serves, then serves the primary\'s keys from the copy, byte for byte', async () => {
    const first = await d.startKeyServer(primary, { args: ['--allow-replica-join'] });
    expect(first.child.stderr).not.to.contain('is new and empty, made after'); // its storage key is made by this start
    const key = randomBytes(32);
    expectSuccess(await d.kc(alice, first, 'store', ['dr/disk-key', '--in', '-'], key));
    const joined = expectSuccess(await run('key-server', ['join', '--from', first.address, '--domain', d.name, '--policy-cert', d.policyCertFile, ...standby.storeArgs]));
    expect(joined.out).to.match(/^stored the deployment's storage key \(id [0-9a-f]+, from serial [0-9a-f]+\)\n$/);
    expect(await first.child.stop()).to.deep.equal({ code: 0, signal: null });

    // A copy of the data is ciphertext only: a key-server without the key, or with another one,
    // is refused at start rather than sealing new records under a key of its own.
    const bare = d.path('bare-copy');
    cpSync(first.data, bare, { recursive: true });
    rmSync(`${bare}/audit.jsonl`); // a start refused leaves no empty log (nor its lock) of its own
    const serveOn = (m: Machine, data: string) => run('key-server', d.keyServerArgs(m, data));
    const outsider = await d.certify('ks-outsider', 'key-server');
    const keyless = await serveOn(outsider, bare);
    expectFailure(keyless, 1, 'NOT_FOUND');
    expect(keyless.stderr).to.contain('key-server join');
    await d.startAndStop(outsider); // makes a storage key of its own
    const other = await serveOn(outsider, bare);
    expectFailure(other, 4, 'WRONG_KEY');
    expect(other.stderr).to.match(/sealed under storage key id [0-9a-f]+, and this key-server's cryptstore holds id [0-9a-f]+/);
    expect(readdirSync(bare).filter((f) => f.startsWith('audit'))).to.deep.equal([]);

    const copy = d.path('standby-data');
    cpSync(first.data, copy, { recursive: true });
    const second = await d.startKeyServer(standby, { data: copy });
    const got = expectSuccess(await d.kc(alice, second, 'retrieve', ['dr/disk-key', '--out', '-']));
    expect(got.stdout.equals(key)).to.equal(true);
    expectSuccess(await d.kc(alice, second, 'store', ['dr/after', '--in', '-'], randomBytes(16)));
    await second.child.stop();
    expect(expectSuccess(await run('key-server', ['verify-audit', `${copy}/audit.jsonl`])).out).to.match(/^ok: 4 line\(s\), chain intact\nend: seq 4, hash [0-9a-f]{64} /);
  });

  it('releases its storage key to no machine, not even one of its own measurement, unless started with --allow-replica-join', async () => {
    await d.withKeyServer(primary, {}, async (closed) => {
      const refused = await run('key-server', ['join', '--from', closed.address, '--domain', d.name, '--policy-cert', d.policyCertFile, ...standby.storeArgs]);
      expectFailure(refused, 1, 'RESERVED_NAME');
      expect(refused.stderr).to.contain('--allow-replica-join');
    });
  });

  it('writes a backup in the --backup-dir it checked when that is named through "link/..", not in the directory of that name beside the link', async () => {
    const top = d.path('linked');
    linkToDeep(top);
    mkdirSync(join(top, 'bk'));
    chmodSync(join(top, 'bk'), 0o777); // writable by every user: never a place for backups
    await d.withKeyServer(primary, { args: ['--backup-dir', `${top}/link/../bk`] }, async (server) => { // the kernel's real/bk
      const from = server.child.mark();
      process.kill(server.child.pid, 'SIGUSR1');
      expect(await server.child.waitForLog(/ backup-(written|failed) .*$/m, from)).to.match(/ backup-written /);
      expect(readdirSync(join(top, 'real', 'bk')).filter((n) => n.startsWith('keys-'))).to.have.length(1);
      expect(readdirSync(join(top, 'bk')), 'the directory beside the link').to.deep.equal([]);
    });
  });

  it('keeps its audit log in the --data it serves when that is named through "link/..", not in the directory of that name beside the link', async () => {
    const top = d.path('linked-data');
    linkToDeep(top);
    mkdirSync(join(top, 'd')); // another's, beside the link
    const server = await d.startKeyServer(primary, { data: `${top}/link/../d` }); // the kernel's real/d
    await server.child.stop();
    expect(readdirSync(join(top, 'real', 'd'))).to.include('audit.jsonl').and.include('CURRENT');
    expect(readdirSync(join(top, 'd')), 'the directory beside the link').to.deep.equal([]);
  });

  it('writes a backup on SIGUSR1 while serving (--backup-dir), from which a key-server serves the same keys', async () => {
    const backups = d.path('backups');
    const server = await d.startKeyServer(primary, { args: ['--backup-dir', backups] });
    const key = randomBytes(32);
    expectSuccess(await d.kc(alice, server, 'store', ['backup/disk-key', '--in', '-'], key));
    // Left by a key-server killed while writing it: removed after a backup even without --backup-keep.
    const dead = 'keys-2000-01-01T00-00-00-000Z.partial-2147483646-Ab3xY9';
    mkdirSync(join(backups, dead));
    utimesSync(join(backups, dead), new Date(Date.UTC(2000, 0, 1)), new Date(Date.UTC(2000, 0, 1))); // and long ago
    const from = server.child.mark();
    process.kill(server.child.pid, 'SIGUSR1');
    const line = await server.child.waitForLog(/ backup-written .*$/m, from);
    expect(line).to.contain(`pruned=${dead}`);
    const written = /path=(\S+) records=(\d+)/.exec(line)!;
    expect(Number(written[2])).to.be.at.least(1);
    expectSuccess(await d.kc(alice, server, 'retrieve', ['backup/disk-key', '--out', '-'])); // still serving
    // The directory opened to others since the start: the next backup is refused, not written there.
    chmodSync(backups, 0o770);
    try {
      const unsafe = server.child.mark();
      process.kill(server.child.pid, 'SIGUSR1');
      expect(await server.child.waitForLog(/ backup-(written|failed) .*$/m, unsafe)).to.match(/ backup-failed code=FILE_ERROR .*not safe for backups of keys/);
      expect(readdirSync(backups).filter((n) => n.startsWith('keys-'))).to.deep.equal([basename(written[1]!)]);
    } finally {
      chmodSync(backups, 0o700);
    }
    await server.child.stop();
    expect(server.child.stderr).not.to.contain('Debugger listening');

    const restored = await d.startKeyServer(primary, { data: written[1]! });
    try {
      const got = expectSuccess(await d.kc(alice, restored, 'retrieve', ['backup/disk-key', '--out', '-']));
      expect(got.stdout.equals(key)).to.equal(true);
      // Without --backup-dir, SIGUSR1 is logged and ignored: it never opens Node's inspector.
      const mark = restored.child.mark();
      process.kill(restored.child.pid, 'SIGUSR1');
      expect(await restored.child.waitForLog(/ backup-ignored .*$/m, mark)).to.contain('--backup-dir');
      expect(restored.child.stderr).not.to.contain('Debugger listening');
      expectSuccess(await d.kc(alice, restored, 'list', ['backup/']));
    } finally {
      await restored.child.stop();
    }
    expect(restored.child.stderr).not.to.contain('is new and empty, made after'); // a backup holds its records (new-database.test.ts)

    // --backup-keep: after each backup, only the newest N stay; the one served in place above
    // holds that server's audit log, so it is kept, not counted, and named.
    // Another key-server's backup (another storage key) in the same directory: never this one's to prune.
    const theirs = 'keys-2000-01-01T00-00-00-000Z';
    mkdirSync(join(backups, theirs));
    writeFileSync(join(backups, theirs, 'STORAGE-KEY-ID'), 'f'.repeat(32));
    await d.withKeyServer(primary, { args: ['--backup-dir', backups, '--backup-keep', '1'] }, async (kept) => {
      const mark = kept.child.mark();
      process.kill(kept.child.pid, 'SIGUSR1');
      const line = await kept.child.waitForLog(/ backup-written .*$/m, mark);
      expect(line).not.to.contain('pruned=');
      expect(line).to.contain(`otherFiles=${basename(written[1]!)}`).and.to.contain('it holds files a backup does not (served in place?)');
      expect(line).to.contain(`otherServer=${theirs}`).and.to.contain('backups of another key-server (another storage key) share this --backup-dir');
      expect(readdirSync(backups).filter((n) => n.startsWith('keys-'))).to.have.length(3);
      rmSync(`${written[1]}/audit.jsonl`); // its log kept elsewhere, say: still, it was served in place (LOG.old says so)
      rmSync(`${written[1]}/audit.jsonl.lock`, { recursive: true, force: true });
      const again = kept.child.mark();
      process.kill(kept.child.pid, 'SIGUSR1');
      const next = await kept.child.waitForLog(/ backup-written .*$/m, again);
      expect(next).to.match(/ pruned=keys-\S+ /).and.not.to.contain(`pruned=${basename(written[1]!)}`);
      expect(next).to.contain(`opened=${basename(written[1]!)}`).and.to.contain('it has been opened since it was written (served in place?)');
      expect(readdirSync(backups).filter((n) => n.startsWith('keys-'))).to.have.length(3);
      expect(readdirSync(backups)).to.include(theirs);
    });
    expectFailure(await run('key-server', ['serve', '--backup-keep', '2', '--domain', d.name, '--policy-cert', d.policyCertFile,
      '--data', d.path('keep-data'), '--listen', '127.0.0.1:0', ...primary.storeArgs]), 2, 'USAGE');
    // PostgreSQL has backups of its own: the flag is for the LevelDB key database only.
    const pg = await run('key-server', ['serve', '--backend', 'postgres', '--backup-dir', backups, '--domain', d.name, '--policy-cert', d.policyCertFile,
      '--data', d.path('pg-data'), '--listen', '127.0.0.1:0', ...primary.storeArgs]);
    expectFailure(pg, 2, 'USAGE');
    expect(pg.stderr).to.contain('back up PostgreSQL with its own tools');
  });
  it('refuses a backup of another key-server (its STORAGE-KEY-ID another key) before LevelDB opens it: the backup is left as written, so --backup-keep still counts it', async () => {
    const backups = d.path('foreign-backups');
    await d.withKeyServer(primary, { args: ['--backup-dir', backups] }, async (server) => {
      expectSuccess(await d.kc(alice, server, 'store', ['foreign/k', '--in', '-'], randomBytes(16)));
      const from = server.child.mark();
      process.kill(server.child.pid, 'SIGUSR1');
      expect(await server.child.waitForLog(/ backup-(written|failed) .*$/m, from)).to.match(/ backup-written /);
    });
    const backup = join(backups, readdirSync(backups).find((n) => n.startsWith('keys-'))!);
    const written = readdirSync(backup).sort();
    const outsider = await d.certify('ks-restorer', 'key-server');
    const keyless = await run('key-server', d.keyServerArgs(outsider, backup));
    expectFailure(keyless, 1, 'NOT_FOUND');
    expect(keyless.stderr).to.contain('key-server join');
    await d.startAndStop(outsider, { data: d.path('restorer-data') }); // makes a storage key of its own
    const other = await run('key-server', d.keyServerArgs(outsider, backup));
    expectFailure(other, 4, 'WRONG_KEY');
    expect(other.stderr).to.match(/sealed under storage key id [0-9a-f]+, and this key-server's cryptstore holds id [0-9a-f]+/);
    expect(readdirSync(backup).sort(), 'LevelDB never opened it (it renames LOG to LOG.old, which marks a backup served in place)').to.deep.equal(written);
  });

  it('finishes a backup and closes its audit log when SIGTERM, SIGINT and SIGTERM come while the backup is written, exit 0', async () => {
    // A second stop signal is not Node's default death: the stop it began goes on.
    const backups = d.path('stopped-backups');
    const env = { NODE_OPTIONS: `--import ${join(ROOT, 'test/support/slow-backup.mjs')}`, SLOW_BACKUP_MS: '1500' };
    const server = await d.startKeyServer(primary, { args: ['--backup-dir', backups], env });
    expectSuccess(await d.kc(alice, server, 'store', ['stop/k', '--in', '-'], Buffer.from('v')));
    process.kill(server.child.pid, 'SIGUSR1');
    await sleep(100);
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGTERM'] as const) {
      process.kill(server.child.pid, signal);
      await sleep(200); // the backup still being written: the stop waits for it
    }
    expect(await server.child.exited, server.child.stderr).to.deep.equal({ code: 0, signal: null });
    expect(server.child.stderr).to.match(/ backup-written path=\S+ records=1/).and.match(/SIGINT: already stopping/).and.match(/ audit-closed .*\n.*key-server: stopped\n$/);
    expect(readdirSync(backups).map((n) => n.replace(/[0-9TZ-]+/g, '#'))).to.deep.equal(['keys#']);
  });
  it('abandons a backup still being copied 10 s into a stop: the copy stops, its partial copy goes, the database and earlier backups stay whole', async function () {
    this.timeout(40_000);
    const backups = d.path('abandoned-backups');
    const data = d.path('abandoned-data');
    const values = [0, 1, 2, 3].map(() => randomBytes(16));
    const first = await d.startKeyServer(primary, { data, args: ['--backup-dir', backups] });
    for (const [i, v] of values.entries()) expectSuccess(await d.kc(alice, first, 'store', [`cut/k${i}`, '--in', '-'], v));
    process.kill(first.child.pid, 'SIGUSR1');
    await first.child.waitForLog(/ backup-written .*$/m);
    expect(await first.child.stop()).to.deep.equal({ code: 0, signal: null });
    const [earlier] = readdirSync(backups);
    const earlierFiles = readdirSync(join(backups, earlier!)).sort();

    // Each entry copied 1.5 s late: 4 records and the database's own entries take far longer than 10 s.
    const env = { NODE_OPTIONS: `--import ${join(ROOT, 'test/support/slow-backup.mjs')}`, SLOW_BACKUP_MS: '0', SLOW_BACKUP_ENTRY_MS: '1500' };
    const server = await d.startKeyServer(primary, { data, args: ['--backup-dir', backups], env });
    process.kill(server.child.pid, 'SIGUSR1');
    await sleep(1_000);
    expect(readdirSync(backups).filter((n) => n.includes('.partial-')), 'the copy is being written').to.have.length(1);
    const began = Date.now();
    process.kill(server.child.pid, 'SIGTERM');
    expect(await server.child.exited, server.child.stderr).to.deep.equal({ code: 0, signal: null });
    // The old stop waited 10 s, then for the copy loop until the process exited: the backup ran on.
    expect(Date.now() - began, server.child.stderr).to.be.below(TASK_GRACE_MS + ABANDON_MS);
    expect(server.child.stderr).to.contain('a reload or backup still running after 10 s is abandoned').and.match(/ backup-abandoned reason="the server is stopping"/);
    expect(server.child.stderr).not.to.contain('backup-written');
    expect(readdirSync(backups), 'no partial copy is left').to.deep.equal([earlier]);
    expect(readdirSync(join(backups, earlier!)).sort()).to.deep.equal(earlierFiles);

    await d.withKeyServer(primary, { data }, async (again) => {
      for (const [i, v] of values.entries()) expect(expectSuccess(await d.kc(alice, again, 'retrieve', [`cut/k${i}`, '--out', '-'])).stdout.equals(v)).to.equal(true);
    });
  });
  it('stops on time when a backup is stuck in one call past the abandon: exit 0, the backup logged as left unfinished, its partial copy never taken for a backup and gone with a backup made 10 minutes on', async function () {
    this.timeout(60_000);
    const backups = d.path('stuck-backups');
    const data = d.path('stuck-data');
    const value = randomBytes(16);
    const seed = await d.startKeyServer(primary, { data });
    expectSuccess(await d.kc(alice, seed, 'store', ['stuck/k', '--in', '-'], value));
    expect(await seed.child.stop()).to.deep.equal({ code: 0, signal: null });
    // The backup's first read from the database takes 120 s: a call that does not return (a hung disk).
    const env = { NODE_OPTIONS: `--import ${join(ROOT, 'test/support/slow-backup.mjs')}`, SLOW_BACKUP_MS: '0', SLOW_BACKUP_ENTRY_MS: '120000' };
    const server = await d.startKeyServer(primary, { data, args: ['--backup-dir', backups], env });
    process.kill(server.child.pid, 'SIGUSR1');
    await sleep(1_000);
    const [partial] = readdirSync(backups);
    expect(partial, 'the copy is being written').to.match(/\.partial-/);
    const began = Date.now();
    process.kill(server.child.pid, 'SIGTERM');
    expect(await server.child.exited, server.child.stderr).to.deep.equal({ code: 0, signal: null });
    expect(Date.now() - began, server.child.stderr).to.be.below(TASK_GRACE_MS + ABANDON_MS + 5_000);
    const abandoned = / backup-abandoned reason="the server is stopping" detail=(.*)\n/.exec(server.child.stderr);
    expect(abandoned?.[1], server.child.stderr).to.contain(partial).and.contain('unfinished');
    expect(server.child.stderr).to.match(/ audit-closed .*\n(.*\n)?.*key-server: stopped\n$/);
    // Left as it was, marked unfinished: a key-server refuses to serve it; the next backup removes it.
    expect(readdirSync(backups)).to.deep.equal([partial]);
    expectFailure(await run('key-server', ['serve', '--domain', d.name, '--policy-cert', d.policyCertFile, '--data', join(backups, partial!), '--listen', '127.0.0.1:0', ...primary.storeArgs]), 1, 'STORE_FORMAT');
    // Unchanged for 10 minutes (a copy changed since may still be being written by another key-server).
    const old = new Date(Date.now() - 11 * 60_000);
    for (const f of readdirSync(join(backups, partial!))) utimesSync(join(backups, partial!, f), old, old);
    utimesSync(join(backups, partial!), old, old);
    const again = await d.startKeyServer(primary, { data, args: ['--backup-dir', backups] });
    try {
      process.kill(again.child.pid, 'SIGUSR1');
      await again.child.waitForLog(/ backup-written .*$/m, 0, 20_000);
      expect(readdirSync(backups).filter((n) => n.includes('.partial-')), 'the stuck copy went with the next backup').to.deep.equal([]);
      expect(expectSuccess(await d.kc(alice, again, 'retrieve', ['stuck/k', '--out', '-'])).stdout.equals(value)).to.equal(true);
    } finally {
      await again.child.stop();
    }
  });
});

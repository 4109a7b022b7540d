// Two real key-server replicas (`key-server serve --backend postgres`) over one throwaway
// PostgreSQL database, with clients certified by a real simpleserver (test/e2e/domain.ts):
// joining a replica (done-when 2's set-up), a key crossing replicas and 100 concurrent stores
// (done-when 2), the database stopped under a stream of stores (done-when 3), no plaintext in
// any column (done-when 4), and one verifiable audit chain per replica.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isCertifierError } from '../../lib/errors/index.ts';
import type { KeyClient } from '../../lib/keyclient/index.ts';
import type { MachineIdentity } from '../../lib/certifier/index.ts';
import { run } from '../support/helpers.ts';
import { Domain, expectFailure, expectSuccess, sleep, type KeyServer, type Machine } from '../e2e/domain.ts';
import { PgBackend } from '../../lib/keyservice/pg-backend.ts';
import { replicaLockKey } from '../../lib/keyservice/pg-replica-lock.ts';
import { hostname } from 'node:os';
import pg from 'pg';
import { findPgBin, PG_MISSING, PgServer } from './pg-server.ts';

const bin = findPgBin();
/** A request the client stopped waiting for (its read timeout): the server never answered it. */
const CLIENT_GAVE_UP = /waiting for an answer from \S+ timed out/;
if (!bin) {
  describe('key-server replicas on PostgreSQL', () => {
    it(PG_MISSING, function () {
      this.skip();
    });
  });
} else {
  describe('key-server replicas on PostgreSQL', function () {
    this.timeout(180_000);
    let pgs: PgServer;
    let url: string;
    let d: Domain;
    let ks1: Machine;
    let ks2: Machine;
    let alice: Machine;
    let aliceId: MachineIdentity;
    let r1: KeyServer;
    let r2: KeyServer;
    const clients: KeyClient[] = [];

    /** key-server serve's flags for a replica on the database at `pgUrl` (none: the URL comes from the environment), under `id` (none: its default id). */
    const pgFlags = (pgUrl?: string, id?: string) => ['--backend', 'postgres', ...(pgUrl ? ['--pg-url', pgUrl] : []), ...(id ? ['--replica-id', id] : [])];
    /** `key-server serve` as `m` for a replica on `pgUrl`, with its own files in `data`. */
    const serveArgs = (m: Machine, data: string, pgUrl: string, id?: string, listen?: string) => [...d.keyServerArgs(m, data, listen), ...pgFlags(pgUrl, id)];

    /** Starts a replica; the URL goes in --pg-url or, as the README recommends, the environment. */
    const startReplica = (m: Machine, id: string, o: { urlInEnv?: string; allowJoin?: boolean; defaultId?: boolean } = {}): Promise<KeyServer> => d.startKeyServer(m, {
      data: d.path(`${id}-data`),
      args: [...pgFlags(o.urlInEnv ? undefined : url, o.defaultId ? undefined : id), ...(o.allowJoin ? ['--allow-replica-join'] : [])],
      env: o.urlInEnv ? { KEY_SERVER_PG_URL: o.urlInEnv } : {},
    });

    const joinArgs = (m: Machine, from: KeyServer) => ['join', '--from', from.address, '--domain', d.name, '--policy-cert', d.policyCertFile, ...m.storeArgs];
    const connect = async (s: KeyServer) => {
      const c = await d.connect(s, aliceId);
      clients.push(c);
      return c;
    };
    const psql = (sql: string) => pgs.psql('keys', sql, ['-tA']);

    before(async () => {
      pgs = await PgServer.start(bin);
      url = await pgs.createDatabase('keys');
      ({ d, machines: { ks1, ks2, alice } } = await Domain.setUp({ ks1: 'key-server', ks2: 'key-server', alice: 'client-alice' }));
      aliceId = await d.identity(alice);
      r1 = await startReplica(ks1, 'r1', { allowJoin: true });
    });

    after(async () => {
      await Promise.all(clients.map((c) => c.close().catch(() => {})));
      await d?.close();
      await pgs?.stop();
    });

    it('refuses a --replica-id that could name a file outside --data: USAGE, nothing made', async () => {
      const data = d.path('escape-data');
      for (const id of ['../../escaped', 'a/b', 'r 1', 'x'.repeat(65)]) {
        const r = await run('key-server', serveArgs(ks2, data, url, id));
        expectFailure(r, 2, 'USAGE');
        expect(r.stderr, id).to.contain("option '--replica-id <id>' argument").and.contain('expected 1 to 64 letters, digits');
      }
      // "../../escaped" would put its audit log (audit-ID.jsonl in --data) beside --data's folder.
      expect(existsSync(data) || existsSync(join(d.dir, 'escaped.jsonl'))).to.equal(false);
    });

    it('refuses to start a new replica without the storage key, and joins it from a running replica', async () => {
      // Without the deployment's storage key, a second replica is told to join (and makes no key).
      // (A password in --pg-url, which trust authentication ignores, is warned of once, never shown.)
      const withPassword = url.replace('postgres://postgres@', 'postgres://postgres:pw-s3cret@');
      expect(withPassword).to.not.equal(url);
      const aloneData = d.path('alone');
      const alone = await run('key-server', serveArgs(ks2, aloneData, withPassword));
      expectFailure(alone, 1, 'NOT_FOUND');
      expect(alone.stderr).to.match(/key-server join/).and.not.contain('pw-s3cret');
      expect(alone.stderr.match(/the password in --pg-url is visible/g)).to.have.length(1);
      // A start refused before it serves leaves no --data it made (its lock directory inside), as on LevelDB.
      expect(existsSync(aloneData), 'the --data the refused start made').to.equal(false);
      // A machine of another measurement cannot join: key-server join pins the serving replica to
      // its own measurement, and the serving replica keeps the name reserved for it.
      const other = await run('key-server', joinArgs(alice, r1));
      expectFailure(other, 4, 'UNTRUSTED_PEER');
      expect(other.stderr).to.contain(`${r1.address} runs measurement ${r1.measurementHex}, not this machine's (${d.measurementHex(alice.program)}): join takes the storage key only from another instance of the same key-server program`).and.not.contain('pinned');
      // SIGUSR1 backs nothing up on a replica, and its log line says how the keys are backed up.
      const mark = r1.child.mark();
      process.kill(r1.child.pid, 'SIGUSR1');
      expect(await r1.child.waitForLog(/ backup-ignored .*$/m, mark)).to.contain('back the database up with its own tools');
      const c = await connect(r1);
      const refused = await c.retrieve('key-server-storage-key').then(() => undefined, (e: unknown) => e);
      expect(isCertifierError(refused, 'RESERVED_NAME'), String(refused)).to.equal(true);
      const joined = expectSuccess(await run('key-server', [...joinArgs(ks2, r1), '--json'])).json();
      expect(joined).to.include({ ok: true, outcome: 'joined' });
      expect(expectSuccess(await run('key-server', [...joinArgs(ks2, r1), '--json'])).json()).to.include({ outcome: 'already', keyId: joined.keyId });
      expect(await psql("SELECT value FROM key_server_meta WHERE key = 'storage_key_id'")).to.equal(`${joined.keyId}\n`);
      // Kept not exportable: export-store and the like never let the deployment's key out of the store.
      const store = await d.openStore(ks2.store);
      try {
        expect((await store.get('key-server-storage-key')).exportable).to.equal(false);
      } finally {
        await store.close();
      }
      await c.store('stored-before-r2', new Uint8Array([1, 2, 3]));
      // Each replica's --data has one holder: one given r1's is refused before it listens (here on
      // r1's own port, which only a start past the lock would reach).
      const shared = await run('key-server', serveArgs(ks2, r1.data, url, 'r2', r1.address));
      expectFailure(shared, 1, 'STORE_LOCKED');
      expect(shared.stderr).to.contain('give each replica its own --data');
      expect(existsSync(join(r1.data, 'audit-r2.jsonl'))).to.equal(false);
      // One refused for its port (r1's) removes the --data it made and the folder above it it made;
      // a --data that was there keeps what was in it.
      const made = d.path('refused-start');
      const taken = await run('key-server', serveArgs(ks2, join(made, 'data'), url, 'r2', r1.address));
      expectFailure(taken, 1, 'ADDRESS_IN_USE');
      expect(taken.stderr).to.contain('address already in use');
      expect(existsSync(made), 'the folders the refused start made').to.equal(false);
      // So does one whose database is missing.
      const noDatabase = url.replace(/\/keys$/, '/no-such-keys');
      expect(noDatabase).to.not.equal(url);
      expectFailure(await run('key-server', serveArgs(ks2, join(made, 'data'), noDatabase, 'r2')), 1, 'NOT_FOUND');
      expect(existsSync(made), 'the folders the start refused by the database made').to.equal(false);
      const there = d.path('there-data');
      mkdirSync(there);
      writeFileSync(join(there, 'notes.txt'), 'kept\n');
      expectFailure(await run('key-server', serveArgs(ks2, there, url, 'r2', r1.address)), 1, 'ADDRESS_IN_USE');
      expect(readdirSync(there)).to.include('notes.txt');
      // The start-up line names the database, its password (in the environment, as the README says) masked.
      r2 = await startReplica(ks2, 'r2', { urlInEnv: withPassword });
      expect(r2.child.stderr).to.match(/data in postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/keys \(replica r2\)/).and.not.contain('pw-s3cret');
      // A new replica's first chain over keys the others stored is the normal case: no warning.
      expect(r2.child.stderr).to.not.contain('begins a new chain');
    });

    it('joins no store that holds another storage key without --force: ALREADY_EXISTS, its key kept', async () => {
      // A key-server machine that once served on its own: its store holds a storage key of its own.
      const ks3 = await d.certify('ks3', 'key-server');
      await d.startAndStop(ks3, { data: d.path('ks3-own-data') });
      const deployment = (await psql("SELECT value FROM key_server_meta WHERE key = 'storage_key_id'")).trim();
      const refused = await run('key-server', joinArgs(ks3, r1));
      expectFailure(refused, 1, 'ALREADY_EXISTS');
      const own = /this store already holds another storage key \(id ([0-9a-f]+); the deployment's is ([0-9a-f]+)\)/.exec(refused.stderr);
      expect(own?.[2], refused.stderr).to.equal(deployment);
      expect(own![1]).to.not.equal(deployment);
      // Still its own key: refused again, naming the same one.
      expect((await run('key-server', joinArgs(ks3, r1))).stderr).to.contain(`(id ${own![1]};`);
      expect(expectSuccess(await run('key-server', [...joinArgs(ks3, r1), '--force', '--json'])).json()).to.include({ outcome: 'joined', keyId: deployment });
      expect(expectSuccess(await run('key-server', [...joinArgs(ks3, r1), '--json'])).json()).to.include({ outcome: 'already', keyId: deployment });
    });

    it('refuses a second live replica under an id a live one holds (machines cloned from one image), before it serves; frees the id of one killed at once; stops one whose id another took', async () => {
      // Two machines cloned from one image: the same host name, so the same default --replica-id.
      const id = hostname().replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64) || 'replica';
      const [a, b] = await Promise.all([d.certify('clone-a', 'key-server'), d.certify('clone-b', 'key-server')]);
      expectSuccess(await run('key-server', joinArgs(a, r1)));
      let cloneA = await startReplica(a, 'clone-a', { defaultId: true, allowJoin: true });
      expect(cloneA.child.stderr).to.contain(`(replica ${id})`);
      // join takes no replica id and holds no lock: a clone may join from the replica whose id it shares.
      expectSuccess(await run('key-server', joinArgs(b, cloneA)));
      const cloneData = d.path('clone-b-data');
      const refused = await run('key-server', serveArgs(b, cloneData, url));
      expectFailure(refused, 1, 'REPLICA_ID_IN_USE');
      expect(refused.out, 'it never listened').to.equal('');
      expect(refused.stderr).to.contain(`holds --replica-id ${id} on this database (its connection from 127.0.0.1, since `).and.contain('give each replica its own --replica-id');
      expect(existsSync(cloneData), 'the --data the refused start made').to.equal(false);
      // Killed, its id is free again at once: the same replica starts again.
      expect((await cloneA.child.stop('SIGKILL')).signal).to.equal('SIGKILL');
      cloneA = await startReplica(a, 'clone-a', { defaultId: true });
      expectSuccess(await d.kc(alice, cloneA, 'store', ['clone-a/key', '--in', '-'], Buffer.from('x')));
      // Its lock's connection ends while another takes the id: it stops, saying so, and exits 1.
      const other = new pg.Client({ connectionString: url });
      await other.connect();
      try {
        const mark = cloneA.child.mark();
        // The database closed to new connections meanwhile, so the test takes the id before the clone can.
        await pgs.psql('postgres', 'ALTER DATABASE keys ALLOW_CONNECTIONS false');
        try {
          await other.query(`SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = left('key-server-lock ${id}', 63)`);
          await cloneA.child.waitForLog(/ replica-lock-retry-failed /, mark);
          // Meanwhile it answers nothing, though its pool still holds connections to the database.
          expectFailure(await d.kc(alice, cloneA, 'retrieve', ['clone-a/key', '--out', '-']), 3, 'UNREACHABLE');
          await other.query(`SELECT pg_advisory_lock(${replicaLockKey(id)})`);
        } finally {
          await pgs.psql('postgres', 'ALTER DATABASE keys ALLOW_CONNECTIONS true');
        }
        expect(await cloneA.child.waitForLog(/ replica-id-taken /, mark)).to.contain(`took --replica-id ${id}`);
        const exit = await cloneA.child.exited;
        expect(exit.code, cloneA.child.stderr).to.equal(1);
        expect(cloneA.child.stderr.slice(mark)).to.contain('[REPLICA_ID_IN_USE]');
      } finally {
        await other.end();
      }
      // Once the holder is gone, the clone serves under the id.
      const cloneB = await startReplica(b, 'clone-b', { defaultId: true });
      await cloneB.child.stop();
    });

    it('refuses to start, exit status 3 (UNREACHABLE, naming the connection limit), while the database\'s connection limit leaves no room for its id\'s lock, removing the --data it made', async () => {
      await pgs.psql('postgres', 'CREATE ROLE full_role LOGIN CONNECTION LIMIT 1');
      const limited = url.replace('postgres@', 'full_role@');
      const holder = new pg.Client({ connectionString: limited });
      await holder.connect();
      try {
        const m = await d.certify('ks-full', 'key-server');
        const data = d.path('full-data');
        const r = await run('key-server', serveArgs(m, data, limited, 'ks-full'));
        expectFailure(r, 3, 'UNREACHABLE');
        expect(r.stderr).to.contain('its connection limit is reached').and.contain('plus one for its --replica-id').and.contain('too many connections for role "full_role"');
        expect(r.out, 'it never listened').to.equal('');
        expect(existsSync(data), 'the --data the refused start made').to.equal(false);
      } finally {
        await holder.end();
      }
    });

    it('takes its id again when the database ends the lock\'s connection, and serves on', async () => {
      const mark = r1.child.mark();
      expect(await psql("SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = 'key-server-lock r1') t")).to.equal('1\n');
      await r1.child.waitForLog(/ replica-lock-lost .*replica=r1/, mark);
      await r1.child.waitForLog(/ replica-lock-retaken .*replica=r1/, mark);
      expect(await (await connect(r1)).store('after-lock-lost', randomBytes(8))).to.equal(1);
    });

    it('retrieves through one replica a key stored through the other', async () => {
      const key = randomBytes(32);
      expect(expectSuccess(await d.kc(alice, r1, 'store', ['vhd/disk-1', '--in', '-'], key)).out).to.equal('stored vhd/disk-1 version 1\n');
      const got = expectSuccess(await d.kc(alice, r2, 'retrieve', ['vhd/disk-1', '--out', '-']));
      expect(got.stdout.equals(key)).to.equal(true);
    });

    it('names the replica in its log lines: a connection the database drops while idle is logged with replica=ID', async () => {
      // A request through each replica leaves an idle connection in its pool, which the database then ends.
      await Promise.all([r1, r2].map(async (r) => (await connect(r)).store('logged', randomBytes(8))));
      const marks = [r1.child.mark(), r2.child.mark()];
      await psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'key-server'");
      for (const [i, r] of [r1, r2].entries()) {
        const line = await r.child.waitForLog(/ storage-connection-lost /, marks[i]);
        expect(line, line).to.match(new RegExp(` replica=r${i + 1}( |$)`));
      }
    });

    it('gives 100 concurrent stores of one name spread over both replicas versions 1 to 100, no gap, no duplicate', async () => {
      // Several connections per replica, so the stores really run side by side on both servers.
      const conns = await Promise.all([r1, r2, r1, r2, r1, r2, r1, r2].map(connect));
      const values = Array.from({ length: 100 }, (_, i) => Buffer.from(`busy value ${i}`));
      const versions = await Promise.all(values.map((v, i) => conns[i % conns.length]!.store('busy', v)));
      const all = Array.from({ length: 100 }, (_, i) => i + 1);
      expect([...versions].sort((a, b) => a - b)).to.deep.equal(all);
      expect((await psql("SELECT version FROM key_server_records WHERE name = 'busy' ORDER BY version")).trim().split('\n').map(Number)).to.deep.equal(all);
      // Each version holds the value whose store was answered with it, read through either replica.
      for (const i of [0, 37, 99]) expect(Buffer.from((await conns[(i + 1) % conns.length]!.retrieve('busy', versions[i]!)).blob).equals(values[i]!)).to.equal(true);
    });

    it('keeps every acknowledged store through a database outage, fails fast with a retryable code meanwhile, and serves again without a restart', async () => {
      const [c1, c2] = await Promise.all([connect(r1), connect(r2)]);
      const acked = new Map<number, Buffer>();
      const codes: string[] = [];
      const givenUp: string[] = []; // failures that were the client's own read timeout, not the server's answer
      let stop = false;
      const stream = async (c: KeyClient, who: string) => {
        for (let i = 0; !stop; i++) {
          const value = Buffer.from(`stream ${who} ${i} ${randomBytes(8).toString('hex')}`);
          try {
            acked.set(await c.store('stream', value), value);
          } catch (e) {
            if (!isCertifierError(e)) throw e;
            codes.push(e.code);
            if (CLIENT_GAVE_UP.test(e.message)) givenUp.push(e.message);
            await sleep(100);
          }
        }
      };
      const streams = [stream(c1, 'r1'), stream(c2, 'r2')];
      while (acked.size < 20) await sleep(20);
      const marks = [r1.child.mark(), r2.child.mark()];
      await pgs.halt();
      const ackedBefore = acked.size;
      try {
        // Through key-client: exit status 3 with the retryable code, and quickly: the server's answer,
        // not the client giving up (which a clock bound could not tell from a slow machine).
        const cli = await d.kc(alice, r2, 'store', ['during-outage', '--in', '-'], Buffer.from('x'));
        expect(cli.status, cli.stderr).to.equal(3);
        expect(cli.stderr).to.match(/\[(UNREACHABLE|TIMEOUT)\]/);
        expect(cli.stderr, 'the server answered').not.to.match(CLIENT_GAVE_UP);
        while (codes.length < 6) await sleep(50);
      } finally {
        await pgs.resume();
      }
      // The same processes serve again by themselves, once each holds its id again (tried every second).
      for (const [i, r] of [r1, r2].entries()) await r.child.waitForLog(/ replica-lock-retaken /, marks[i], 30_000);
      const until = Date.now() + 30_000;
      const before = acked.size;
      while (acked.size < before + 10 && Date.now() < until) await sleep(50);
      stop = true;
      await Promise.all(streams);
      expect(acked.size, 'stores succeed again after the restart').to.be.at.least(before + 10);
      expect(acked.size - ackedBefore).to.be.at.least(10);
      // OUTCOME_UNKNOWN for a store whose COMMIT was on its way as the database stopped.
      expect(new Set(codes)).to.satisfy((s: Set<string>) => [...s].every((c) => c === 'UNREACHABLE' || c === 'TIMEOUT' || c === 'OUTCOME_UNKNOWN'), `codes: ${[...new Set(codes)]}`);
      expect(codes.filter((c) => c === 'OUTCOME_UNKNOWN').length, 'at most one store per replica was caught in its COMMIT').to.be.at.most(2);
      expect(givenUp, 'failures are fast: the server answered each one before the client gave up waiting').to.deep.equal([]);
      for (const r of [r1, r2]) expect(r.child.running, `${r.address} still running`).to.equal(true);
      // Every acknowledged store is there, with its value, through either replica.
      for (const [version, value] of acked) expect(Buffer.from((await (version % 2 ? c1 : c2).retrieve('stream', version)).blob).equals(value), `version ${version}`).to.equal(true);
    });

    it('leaves no plaintext value in any column of any table', async () => {
      const canary = `PLAINTEXT-CANARY-${randomBytes(12).toString('hex')}`;
      expectSuccess(await d.kc(alice, r1, 'store', ['canary/name', '--in', '-'], Buffer.from(canary)));
      const tables = (await psql("SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'")).trim().split('\n');
      expect(tables).to.include.members(['public.key_server_records', 'public.key_server_names', 'public.key_server_meta', 'public.key_server_schema']);
      // Every row of every table as JSON text (bytea appears as \x hex), searched for the value as
      // text, as lowercase and uppercase hex, and as base64.
      let dump = '';
      for (const t of tables) dump += await psql(`SELECT row_to_json(t)::text FROM ${t} t`);
      expect(dump, 'the search sees the rows (the name is metadata)').to.contain('canary/name');
      const hex = Buffer.from(canary).toString('hex');
      for (const form of [canary, hex, hex.toUpperCase(), Buffer.from(canary).toString('base64')]) expect(dump).not.to.contain(form);
      // And the same through the key service: it is there, only sealed.
      expect(expectSuccess(await d.kc(alice, r2, 'retrieve', ['canary/name', '--out', '-'])).out).to.equal(canary);
    });

    it('keeps one hash-chained audit log per replica, named after it, each verified by key-server verify-audit', async () => {
      for (const r of [r1, r2]) {
        const id = r === r1 ? 'r1' : 'r2';
        const file = join(r.data, `audit-${id}.jsonl`);
        expect(existsSync(file), file).to.equal(true);
        expect(expectSuccess(await run('key-server', ['verify-audit', file])).out).to.match(/^ok: \d+ line\(s\), chain intact/);
      }
      const { readFileSync } = await import('node:fs');
      const lines = readFileSync(join(r1.data, 'audit-r1.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      // The release of the storage key to the joining replica is recorded like any decision.
      expect(lines.some((l) => l.action === 'retrieve' && l.resource === 'key-server-storage-key' && l.decision === 'allow' && l.measurement === d.measurementHex('key-server'))).to.equal(true);
    });

    // Last: it leaves the replicas' URL on another deployment's database.
    it('refuses stores with WRONG_KEY (exit 4), writing nothing, once another deployment\'s database is swapped in behind the URL', async () => {
      const other = await PgBackend.open({ url: await pgs.createDatabase('other') });
      await other.bindStorageKey('22'.repeat(16));
      await other.close();
      // Closed first: each replica connects again at once to take its id again (the lock's connection).
      const marks = [r1.child.mark(), r2.child.mark()];
      await pgs.psql('postgres', 'ALTER DATABASE keys ALLOW_CONNECTIONS false');
      await pgs.psql('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'keys'");
      await pgs.psql('postgres', 'ALTER DATABASE keys RENAME TO keys_before');
      await pgs.psql('postgres', 'ALTER DATABASE other RENAME TO keys');
      // Until then its requests are refused as UNREACHABLE; the id is taken on whatever database the URL reaches.
      for (const [i, r] of [r1, r2].entries()) await r.child.waitForLog(/ replica-lock-retaken /, marks[i], 10_000);
      for (const r of [r1, r2]) expectFailure(await d.kc(alice, r, 'store', ['swapped', '--in', '-'], Buffer.from('x')), 4, 'WRONG_KEY');
      expect(await psql('SELECT count(*) FROM key_server_records')).to.equal('0\n');
      expect(r1.child.stderr).to.contain('the key database now records another storage key');
    });
  });
}

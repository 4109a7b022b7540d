// Stopping the real `key-server serve --backend postgres` while it executes a store: the test
// holds a lock in PostgreSQL (LOCK TABLE in a transaction of its own) so the store blocks in the
// database, waits until pg_stat_activity shows the key-server's statement waiting on it, signals
// the server, and only then releases the lock. No timing decides the outcome: the request is
// received and in flight when the signal comes, every time.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { Domain, expectSuccess, sleep, type Child, type KeyServer, type Machine } from '../e2e/domain.ts';
import { findPgBin, PG_MISSING, PgServer } from './pg-server.ts';

const bin = findPgBin();

/** Whether `signals` are all delivered to `pid`: none pending (caught, or the process is gone). */
function delivered(pid: number, signals: NodeJS.Signals[]): boolean {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return true; // reaped
  }
  const numbers = { SIGHUP: 1, SIGUSR1: 10 } as Record<string, number>;
  const pending = ['SigPnd', 'ShdPnd'].map((f) => BigInt(`0x${new RegExp(`^${f}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? '0'}`));
  return signals.every((s) => pending.every((mask) => (mask & (1n << BigInt(numbers[s]! - 1))) === 0n));
}

if (!bin) {
  describe('key-server serve on PostgreSQL: stopping with a request in flight', () => {
    it(PG_MISSING, function () {
      this.skip();
    });
  });
} else {
  describe('key-server serve on PostgreSQL: stopping with a request in flight', function () {
    this.timeout(120_000);
    let pgs: PgServer;
    let url: string;
    let d: Domain;
    let ks: Machine;
    let alice: Machine;
    const data = () => join(d.dir, 'replica-data');

    /** The key-server, replica r1 of the database, on the same --data each time. */
    const start = (): Promise<KeyServer> => d.startKeyServer(ks, { data: data(), args: ['--backend', 'postgres', '--pg-url', url, '--replica-id', 'r1'] });

    /**
     * Stores `value` under `name` through `key-client store` while the table of names is locked,
     * sends `signal` once the key-server's statement waits on the lock, runs `meanwhile` (the
     * request still held), then releases the lock. Returns the server, its stderr from the signal
     * on, and how the store and the server ended.
     */
    async function stopDuringStore(signal: NodeJS.Signals, name: string, value: Uint8Array, meanwhile: (child: Child) => Promise<void> = async () => {}) {
      const server = await start();
      const lock = new pg.Client({ connectionString: url });
      await lock.connect();
      let from: number;
      let stored: ReturnType<Domain['kc']>;
      try {
        await lock.query('BEGIN');
        // EXCLUSIVE lets the key-server read (its bound storage key) but blocks its insert of the name.
        await lock.query('LOCK TABLE key_server_names IN EXCLUSIVE MODE');
        stored = d.kc(alice, server, 'store', [name, '--in', '-'], value);
        let finished = false;
        void stored.then(() => (finished = true));
        for (const until = Date.now() + 30_000; ;) {
          const { rows } = await lock.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'key-server' AND wait_event_type = 'Lock'");
          if (Number(rows[0]!.n) > 0) break;
          if (finished) throw new Error(`the store ended before it waited on the lock:\n${(await stored).stderr}`);
          if (Date.now() > until) throw new Error(`the key-server's store never waited on the lock; its log:\n${server.child.stderr}`);
          await sleep(25);
        }
        from = server.child.mark();
        process.kill(server.child.pid, signal);
        await server.child.waitForLog(/finishing requests in flight, then stopping/, from, 10_000);
        expect(server.child.running, 'still running, the request held').to.equal(true);
        await meanwhile(server.child);
      } finally {
        await lock.query('ROLLBACK').catch(() => {});
        await lock.end();
      }
      const [result, exit] = await Promise.all([stored, server.child.exited]);
      return { server, log: server.child.stderr.slice(from), result, exit };
    }

    /** A restarted key-server on the same database gives back `value` as `name`'s version 1. */
    async function expectAfterRestart(name: string, value: Uint8Array): Promise<void> {
      const again = await start();
      try {
        const got = expectSuccess(await d.kc(alice, again, 'retrieve', [name, '--version', '1', '--out', '-']));
        expect(Buffer.compare(got.stdout, value), 'the value stored before the stop').to.equal(0);
      } finally {
        expect(await again.child.stop()).to.deep.equal({ code: 0, signal: null });
      }
    }

    before(async () => {
      pgs = await PgServer.start(bin);
      url = await pgs.createDatabase('keys');
      ({ d, machines: { ks, alice } } = await Domain.setUp({ ks: 'key-server', alice: 'client-alice' }));
    });

    after(async () => {
      await d?.close();
      await pgs?.stop();
    });

    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      it(`${signal} answers the store it is executing, which survives a restart, and exits 0 with its stop lines`, async () => {
        const name = `held/${signal}`;
        const value = randomBytes(32);
        const { server, log, result, exit } = await stopDuringStore(signal, name, value);
        expect(expectSuccess(result).out).to.equal(`stored ${name} version 1\n`);
        expect(exit).to.deep.equal({ code: 0, signal: null });
        expect(server.child.stdout).to.equal(`listening 127.0.0.1:${server.port}\n`);
        // In this order: the signal, the server closed, the audit chain's end, the last word.
        expect(log).to.match(new RegExp(`^key-server: ${signal}: finishing requests in flight, then stopping\n`
          + `(.*\n)*key-server: \\S+ stopped host=127\\.0\\.0\\.1 port=${server.port}\n`
          + 'key-server: \\S+ audit-closed path=\\S+audit-r1\\.jsonl lastSeq=\\d+ lastHash=[0-9a-f]{64}\n'
          + 'key-server: stopped\n$'));
        // The store's audit record, written before it was answered.
        const audit = readFileSync(join(server.data, 'audit-r1.jsonl'), 'utf8').split('\n').slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>);
        expect(audit.at(-1)).to.include({ action: 'store', resource: name, decision: 'allow' });
        await expectAfterRestart(name, value);
      });
    }

    it('SIGHUP and SIGUSR1 during the stop neither kill the server nor reload or back up: the store is answered and it exits 0', async () => {
      const name = 'held/hup-usr1';
      const value = randomBytes(32);
      const { log, result, exit } = await stopDuringStore('SIGTERM', name, value, async (child) => {
        process.kill(child.pid, 'SIGHUP');
        process.kill(child.pid, 'SIGUSR1');
        // Both taken by the process (its handlers, or the default action) before the lock goes.
        for (const until = Date.now() + 10_000; !delivered(child.pid, ['SIGHUP', 'SIGUSR1']);) {
          if (Date.now() > until) throw new Error('SIGHUP and SIGUSR1 still pending after 10 s');
          await sleep(10);
        }
      });
      expect(exit).to.deep.equal({ code: 0, signal: null });
      expect(expectSuccess(result).out).to.equal(`stored ${name} version 1\n`);
      expect(log).to.match(/\nkey-server: stopped\n$/);
      // Too late for either: no reload or backup is tried, or refused, once it is stopping.
      expect(log).to.not.match(/reload|backup/);
      await expectAfterRestart(name, value);
    });
  });
}

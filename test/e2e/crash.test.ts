// key-server killed with SIGKILL in the middle of 50 concurrent stores (50 always in flight), then restarted on the same
// data directory and cryptstore: every store it acknowledged is there, with its bytes and version.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import type { MachineIdentity } from '../../lib/certifier/index.ts';
import type { KeyClient } from '../../lib/keyclient/index.ts';
import { CertifierError } from '../../lib/errors/index.ts';
import { Domain, expectSuccess, type KeyServer, type Machine } from './domain.ts';

const STORES = 50; // stores in flight at every moment: one per worker, each storing again once answered
const CONNECTIONS = 5;
const NAMES = 10; // five workers per name, so versions are handed out under concurrency
const KILL_AFTER = 60; // acknowledgements seen before the SIGKILL
const MAX_ROUNDS = 40; // a worker's limit, should the kill never land

describe('e2e: key-server killed during concurrent stores', function () {
  let d: Domain;
  let ks: Machine;
  let writer: Machine;
  let identity: MachineIdentity;
  let server: KeyServer;

  before(async () => {
    ({ d, server, machines: { keyserver: ks, writer } } = await Domain.setUp({ keyserver: 'key-server', writer: 'client-writer' }, { serve: 'keyserver' }));
    identity = await d.identity(writer);
  });
  after(async () => d?.close());

  it('keeps every acknowledged store, with its bytes and version, across a SIGKILL and a restart on the same data', async () => {
    const clients: KeyClient[] = await Promise.all(Array.from({ length: CONNECTIONS }, () => d.connect(server, identity)));
    const acked: { name: string; version: number; value: Buffer }[] = [];
    const refused: string[] = [];
    let killed: Promise<unknown> | undefined;

    // Each worker stores again as soon as it is answered, so the kill always finds stores in flight
    // (had all 50 been sent at once, a busy machine could answer every one before the kill landed).
    const workers = Array.from({ length: STORES }, async (_, i) => {
      const name = `crash/key-${i % NAMES}`;
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const value = randomBytes(64 + i + round);
        try {
          const version = await clients[i % CONNECTIONS]!.store(name, value);
          acked.push({ name, version, value });
          if (acked.length === KILL_AFTER) killed = server.child.stop('SIGKILL');
        } catch (e) {
          expect(e, String(e)).to.be.instanceOf(CertifierError);
          refused.push((e as CertifierError).code);
          return;
        }
      }
    });
    await Promise.all(workers);
    for (const c of clients) await c.close().catch(() => {});
    const end = await killed;
    expect(end, 'the server was killed').to.deep.equal({ code: null, signal: 'SIGKILL' });

    // The kill landed while stores were in flight: every worker's last store failed, as unreachable
    // where it had not been sent, and as OUTCOME_UNKNOWN where it had (the server may have made it
    // before it died: a store again would be another version).
    expect(acked.length).to.be.at.least(KILL_AFTER);
    expect(refused).to.have.length(STORES);
    expect(new Set(refused)).to.satisfy((s: Set<string>) => [...s].every((c) => c === 'UNREACHABLE' || c === 'TIMEOUT' || c === 'OUTCOME_UNKNOWN'), refused.join(' '));
    // No version of a name was acknowledged twice.
    const keys = acked.map((a) => `${a.name}@${a.version}`);
    expect(new Set(keys).size).to.equal(keys.length);

    // Restarted on the same data directory and the same cryptstore.
    const restarted = await d.startKeyServer(ks, { data: server.data });
    const c = await d.connect(restarted, identity);
    try {
      for (const a of acked) {
        const e = await c.retrieve(a.name, a.version);
        expect(e.version, `${a.name}@${a.version}`).to.equal(a.version);
        expect(Buffer.from(e.blob).equals(a.value), `bytes of ${a.name}@${a.version}`).to.equal(true);
      }
      // The latest version of every name is at least the highest acknowledged one.
      const latest = new Map((await c.list('crash/')).map((i) => [i.name, i.version]));
      for (const a of acked) expect(latest.get(a.name)).to.be.at.least(a.version);
    } finally {
      await c.close();
    }

    // And key-client, the real program, reads one of them back byte for byte.
    const one = acked[acked.length - 1]!;
    const r = expectSuccess(await d.kc(writer, restarted, 'retrieve', [one.name, '--version', String(one.version), '--out', '-']));
    expect(r.stdout.equals(one.value)).to.equal(true);
  });
});

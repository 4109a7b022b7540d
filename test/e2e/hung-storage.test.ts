// A key-server whose key database stops answering for some names (a hung disk, a frozen
// database): the requests that reach them never settle, and that must cost neither the new
// connections their answers nor a stop its end.

import { expect } from 'chai';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { KeyClient } from '../../lib/keyclient/index.ts';
import { ROOT } from '../support/helpers.ts';
import type { MachineIdentity } from '../../lib/certifier/index.ts';
import { Domain, expectSuccess, sleep, type KeyServer, type Machine } from './domain.ts';

describe('e2e: key-server with storage that hangs', function () {
  this.timeout(180_000);
  let d: Domain;
  let ks: Machine;
  let alice: Machine;

  before(async () => {
    ({ d, machines: { 'ks-hang': ks, alice } } = await Domain.setUp({ 'ks-hang': 'key-server', alice: 'client-alice' }));
  });
  after(async () => d?.close());
  /** A KeyClient of `identity` that gives up on an answer after half a second. */
  const impatient = (server: KeyServer, identity: MachineIdentity) => KeyClient.connect({ host: '127.0.0.1', port: server.port, identity, policyCert: d.policyCert, serverMeasurements: [server.measurementHex], waits: { readTimeoutMs: 500 } });

  it('serves a new connection once those whose requests hang have given up (their places among the answers given back), and a stop then ends within its bounds', async () => {
    // The names stored first, by a server that reads them all (those it knows are not in memory after a restart).
    const data = d.path('hang-data');
    const value = randomBytes(16);
    const first = await d.startKeyServer(ks, { data });
    await d.withClient(first, alice, async (c) => {
      await c.store('ok/k', value);
      for (let i = 0; i < 32; i++) await c.store(`hang/${i}`, randomBytes(8));
    });
    expect(await first.child.stop()).to.deep.equal({ code: 0, signal: null });
    const env = { NODE_OPTIONS: `--import ${join(ROOT, 'test/support/level-hangs.mjs')}`, LEVEL_HANGS: 'hang/' };
    const server = await d.startKeyServer(ks, { data, env });
    try {
      // One address may take half of the 64 answers the server makes at once: 32 requests that
      // hang, each on a connection its client gives up on after half a second.
      const identity = await d.identity(alice);
      const connect = () => impatient(server, identity);
      const codes = await Promise.all(Array.from({ length: 32 }, async (_, i) => {
        const c = await connect();
        try {
          return await c.retrieve(`hang/${i}`).then(() => 'ok', (e: { code?: string }) => e.code);
        } finally {
          await c.close();
        }
      }));
      expect(codes).to.deep.equal(Array(32).fill('TIMEOUT'));
      // Their clients ended their side: no answer comes, and the idle time (30 s) later each is cut,
      // giving back its place (before, they held them until the server stopped).
      const cut = () => (server.child.stderr.match(/ closed .*unanswered=1/g) ?? []).length;
      for (const until = Date.now() + 60_000; cut() < 32 && Date.now() < until;) await sleep(200);
      expect(cut(), server.child.stderr).to.equal(32);
      const served = expectSuccess(await d.kc(alice, server, 'retrieve', ['ok/k', '--out', '-', '--timeout', '5']));
      expect(served.stdout.equals(value)).to.equal(true);

      // A store that hangs: the stop waits for it as long as the README says, then leaves the
      // database held by it to the process's exit (the warning), and ends. The client's wait runs
      // out first, the store sent: it may yet be made, OUTCOME_UNKNOWN (not TIMEOUT, "try again").
      const c = await connect();
      expect(await c.store('hang/s', randomBytes(8)).then(() => 'ok', (e: { code?: string }) => e.code)).to.equal('OUTCOME_UNKNOWN');
      await c.close();
      process.kill(server.child.pid, 'SIGTERM');
      expect(await server.child.exited, server.child.stderr).to.deep.equal({ code: 0, signal: null });
      expect(server.child.stderr).to.match(/warning: the key database did not close within \d+ s/).and.match(/key-server: stopped\n/);
    } finally {
      await server.child.stop('SIGKILL');
    }
  });

  it('stops within its bounds when the audit log\'s writes hang: the log is left to the process\'s exit with one warning, and no audit-closed line', async function () {
    // Before, the stop waited for the log's close for ever: the mocha timeout ends the test, and
    // d.close() (after) stops the server by its pid.
    this.timeout(60_000);
    const env = { NODE_OPTIONS: `--import ${join(ROOT, 'test/support/audit-faults.mjs')}`, AUDIT_FILE: '/audit.jsonl', AUDIT_HANGS: '1' };
    const server = await d.startKeyServer(ks, { data: d.path('audit-hang-data'), env });
    try {
      // A refusal is audited too: its answer waits for a write that never returns.
      const identity = await d.identity(alice);
      const c = await impatient(server, identity);
      expect(await c.retrieve('absent').then(() => 'ok', (e: { code?: string }) => e.code)).to.equal('TIMEOUT');
      await c.close();
      process.kill(server.child.pid, 'SIGTERM');
      expect(await server.child.exited, server.child.stderr).to.deep.equal({ code: 0, signal: null });
      expect(server.child.stderr).to.match(/warning: the audit log did not close within \d+ s/).and.match(/key-server: stopped\n/);
      expect(server.child.stderr.match(/did not close/g), server.child.stderr).to.have.length(1);
      expect(server.child.stderr).not.to.match(/audit-closed/);
    } finally {
      await server.child.stop('SIGKILL');
    }
  });
});

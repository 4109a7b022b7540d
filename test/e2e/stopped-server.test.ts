// The client programs against a real server that takes the connection and then says nothing: a
// process stopped with SIGSTOP (its kernel still accepts TCP). Each gives up after its --timeout
// (10 s by default) with TIMEOUT, exit 3, which first-boot.sh retries; none waits for ever.

import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { KeyClient } from '../../lib/keyclient/index.ts';
import { rejects } from '../support/rejects.ts';
import { run, type RunResult } from '../support/helpers.ts';
import { Domain, expectFailure, expectSuccess, type Child, type KeyServer, type Machine } from './domain.ts';

/** Runs `fn` while `child` is stopped (SIGSTOP), and continues it (SIGCONT) however fn ends. */
async function whileStopped<T>(child: Child, fn: () => Promise<T>): Promise<T> {
  process.kill(child.pid, 'SIGSTOP');
  try {
    return await fn();
  } finally {
    process.kill(child.pid, 'SIGCONT');
  }
}

/** `r`, a wait that ran out at `step` after `seconds`, as the programs say it. */
function expectTimedOut(r: RunResult, step: string, seconds: number): void {
  expectFailure(r, 3, 'TIMEOUT');
  expect(r.stderr).to.contain(`${step}`).and.contain(`timed out after ${seconds * 1000} ms (--timeout ${seconds})`).and.contain('give it longer with --timeout');
}

describe('e2e: client programs against a stopped server (it takes the connection and says nothing)', function () {
  this.timeout(120_000);
  let d: Domain;
  let server: KeyServer;
  let client: Machine;
  let replica: Machine;

  before(async () => {
    ({ d, server, machines: { client, replica } } = await Domain.setUp({ ks: 'key-server', client: 'client', replica: 'key-server' }, { serve: 'ks', keyServer: { args: ['--allow-replica-join'] } }));
  });
  after(() => d?.close());

  const timed = async (fn: () => Promise<RunResult>) => {
    const t0 = performance.now();
    const r = await fn();
    return { r, seconds: (performance.now() - t0) / 1000 };
  };

  it('key-client gives up on the TLS handshake after --timeout: TIMEOUT, exit 3, naming the step and the flag; and fetches once the server goes on', async () => {
    const { r, seconds } = await whileStopped(server.child, () => timed(() => d.kc(client, server, 'list', ['--timeout', '1'])));
    expectTimedOut(r, 'TLS handshake with', 1);
    expect(seconds, 'seconds until it gave up').to.be.within(0.9, 8);
    expectSuccess(await d.kc(client, server, 'list', ['--timeout', '1']));
  });

  it('key-client without --timeout gives up after 10 s, not never', async () => {
    const { r, seconds } = await whileStopped(server.child, () => timed(() => d.kc(client, server, 'retrieve', ['vhd/disk-1'])));
    expectTimedOut(r, 'TLS handshake with', 10);
    expect(seconds, 'seconds until it gave up').to.be.within(9.5, 25);
  });

  it('a key-server stopped after the handshake costs each answer its wait (waits.readTimeoutMs), TIMEOUT', async () => {
    const identity = await d.identity(client);
    const c = await KeyClient.connect({ host: '127.0.0.1', port: server.port, identity, policyCert: d.policyCert, serverMeasurements: [server.measurementHex], waits: { readTimeoutMs: 500 } });
    try {
      const t0 = performance.now();
      const e = await whileStopped(server.child, () => rejects(c.list(''), 'TIMEOUT'));
      expect(e.message).to.match(/waiting for an answer from .* timed out after 500 ms/);
      expect(performance.now() - t0, 'ms until it gave up').to.be.below(5_000);
    } finally {
      await c.close().catch(() => {});
    }
  });

  it('cert-utility init-trust gives up after --timeout (TIMEOUT, exit 3) and removes the store it made', async () => {
    const machine: Machine = { name: 'late', program: 'client', store: d.path('late-store'), storeArgs: [] };
    machine.storeArgs = ['--store', machine.store, '--key-file', d.keyFile];
    const simpleserver = d.servers[0]!;
    const { r, seconds } = await whileStopped(simpleserver, () => timed(() => run('cert-utility', [...d.initTrustArgs(machine), '--timeout', '1'], { cwd: d.dir })));
    expectTimedOut(r, 'TLS handshake with', 1);
    expect(seconds, 'seconds until it gave up').to.be.within(0.9, 8);
    expect(existsSync(machine.store), 'the store it made').to.equal(false);
    expectSuccess(await run('cert-utility', [...d.initTrustArgs(machine), '--timeout', '1'], { cwd: d.dir }));
  });

  it('key-server join gives up after --timeout (TIMEOUT, exit 3)', async () => {
    const args = ['join', '--from', server.address, '--domain', d.name, '--policy-cert', d.policyCertFile, ...replica.storeArgs, '--timeout', '1'];
    const { r, seconds } = await whileStopped(server.child, () => timed(() => run('key-server', args, { cwd: d.dir })));
    expectTimedOut(r, 'TLS handshake with', 1);
    expect(seconds, 'seconds until it gave up').to.be.within(0.9, 8);
    expectSuccess(await run('key-server', args, { cwd: d.dir }));
  });

  it('refuses a --timeout that is no whole number of seconds from 1 to 3600 (USAGE, exit 2), by --check-only too', async () => {
    for (const bad of ['0', '1.5', '3601', '-1', '']) {
      expectFailure(await d.kc(client, server, 'retrieve', ['--check-only', `--timeout=${bad}`, 'x']), 2, 'USAGE');
      expectFailure(await run('cert-utility', [...d.initTrustArgs(client), '--check-only', `--timeout=${bad}`], { cwd: d.dir }), 2, 'USAGE');
    }
    expectSuccess(await d.kc(client, server, 'retrieve', ['--check-only', '--timeout', '3600', 'x']));
  });
});

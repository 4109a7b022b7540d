// A server whose standard output cannot be written (it goes to /dev/full: every write fails with
// ENOSPC). Its "listening" line, and with --json its last document, are lost: that is said once on
// stderr with its code, FILE_ERROR, and no stack trace; the server serves on (its log line names
// the port) and, stopped, exits with FILE_ERROR's status, 1, after its usual stop lines.

import { expect } from 'chai';
import { closeSync, openSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Domain, expectSuccess, spawnWithStdout, type Child, type KeyServer, type Machine } from './domain.ts';

describe('e2e: a server whose standard output cannot be written', function () {
  let d: Domain;
  let ks: Machine;
  let alice: Machine;

  before(async () => {
    ({ d, machines: { keyserver: ks, alice } } = await Domain.setUp({ keyserver: 'key-server', alice: 'client-alice' }));
  });
  after(async () => d?.close());

  /** Starts `program serve ARGS` with stdout on /dev/full; resolves once its log says where it listens. */
  async function startOnFullStdout(program: 'simpleserver' | 'key-server', args: string[]): Promise<{ child: Child; port: number }> {
    const full = openSync('/dev/full', 'w');
    let child: Child;
    try {
      child = spawnWithStdout(program, ['serve', ...args, '--listen', '127.0.0.1:0'], full);
    } finally {
      closeSync(full); // the child holds its own copy
    }
    d.adopt(child);
    const died = child.exited.then((e) => {
      throw new Error(`${program} exited (${e.code ?? e.signal}) while starting:\n${child.stderr}`);
    });
    died.catch(() => {}); // raced below; stopping it later is no failure
    const line = await Promise.race([child.waitForLog(/ listening host=127\.0\.0\.1 port=\d+/, 0, 20_000), died]);
    // Once the announcement was tried, and failed.
    await Promise.race([child.waitForLog(/cannot write standard output/, 0, 10_000), died]);
    return { child, port: Number(/ port=(\d+)/.exec(line)![1]) };
  }

  /** Stopped, it exits 1 after its stop lines, having said once (and only once) why, with no stack trace. */
  async function expectStoppedWithFileError(program: string, child: Child): Promise<void> {
    expect(child.running, 'serving after the failed write').to.equal(true);
    expect(await child.stop('SIGTERM', 20_000)).to.deep.equal({ code: 1, signal: null });
    expect(child.stderr.match(/cannot write standard output/g), child.stderr).to.deep.equal(['cannot write standard output']);
    expect(child.stderr).to.contain(`${program}: error: cannot write standard output: ENOSPC [FILE_ERROR]\n`);
    expect(child.stderr).to.match(new RegExp(`${program}: SIGTERM: finishing requests in flight, then stopping\n(.*\n)*${program}: stopped\n$`));
    expect(child.stderr, 'no stack trace').to.not.match(/\n\s+at |Unhandled|internal error/);
  }

  it('simpleserver serve --json says FILE_ERROR once, certifies on, and exits 1 when stopped', async () => {
    const { child, port } = await startOnFullStdout('simpleserver', ['--json', '--policy-key', d.policyKey, '--policy-cert', d.policyCertFile, '--policy', d.policyFile]);
    // Still a certifier: a machine is certified through it.
    const bob = ['--store', d.path('bob-store'), '--key-file', d.keyFile];
    await d.cu(['init-trust', '--domain', d.name, '--policy-cert', d.policyCertFile, '--server', `127.0.0.1:${port}`, ...bob,
      '--platform', 'simulated', '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile('client-alice')]);
    await expectStoppedWithFileError('simpleserver', child);
  });

  it('key-server serve says FILE_ERROR once, serves on, and exits 1 when stopped', async () => {
    const data = d.path('keyserver-data');
    const { child, port } = await startOnFullStdout('key-server', ['--domain', d.name, '--policy-cert', d.policyCertFile, '--data', data, ...ks.storeArgs]);
    const server: KeyServer = { child, port, address: `127.0.0.1:${port}`, data, machine: ks, measurementHex: d.measurementHex('key-server') };
    const value = randomBytes(32);
    expectSuccess(await d.kc(alice, server, 'store', ['full-stdout/k', '--in', '-'], value));
    expect(Buffer.compare(expectSuccess(await d.kc(alice, server, 'retrieve', ['full-stdout/k', '--out', '-'])).stdout, value)).to.equal(0);
    await expectStoppedWithFileError('key-server', child);
  });
});

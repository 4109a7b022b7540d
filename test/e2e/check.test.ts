// key-client check with the real programs on loopback: the connection a request would open, no
// request, the server's and this machine's certificates as found; each failure the code and exit
// status retrieve gives for the same fault; and in the key-server's log a plain closed line with
// no request and no audit line.

import { expect } from 'chai';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { checkServer } from '../../lib/keyclient/index.ts';
import { DEFAULT_LIMITS } from '../../lib/channel/index.ts';
import type { MachineIdentity } from '../../lib/certifier/index.ts';
import { readCertificateSummary } from '../../lib/pki/index.ts';
import { Domain, sleep, expectFailure, expectSuccess, type KeyServer, type Machine } from './domain.ts';
import { rejects } from '../support/rejects.ts';
import { closedPort } from '../support/helpers.ts';

describe('e2e: key-client check', function () {
  let d: Domain;
  let other: Domain; // a second domain of the same name, under another policy key
  let server: KeyServer;
  let good: Machine;
  let stranger: Machine;
  let serverIdentity: MachineIdentity;
  let goodIdentity: MachineIdentity;
  const audit = () => statSync(join(server.data, 'audit.jsonl')).size;
  /** What `check` and `retrieve` of `machine` give against `target` (one after the other: each locks the store). */
  const both = async (machine: Machine, target: KeyServer) => [await d.kc(machine, target, 'check'), await d.kc(machine, target, 'retrieve', ['canary', '--out', '-'])] as const;

  before(async () => {
    let ks: Machine;
    [{ d, machines: { keyserver: ks, good } }, { d: other, machines: { stranger } }] = await Promise.all([
      Domain.setUp({ keyserver: 'key-server', good: 'client-good' }), Domain.setUp({ stranger: 'client-stranger' }),
    ]);
    [serverIdentity, goodIdentity] = await Promise.all([d.identity(ks), d.identity(good)]);
    server = await d.startKeyServer(ks);
  });
  after(async () => {
    await d?.close();
    await other?.close();
  });

  it('--check-only checks the flags and connects to nothing: exit 0 with a server that is down', async () => {
    const r = expectSuccess(await d.kc(good, { ...server, address: `127.0.0.1:${await closedPort()}` }, 'check', ['--check-only', '--json']));
    expect(r.json()).to.deep.equal({ ok: true, checked: true });
    expectFailure(await d.kc(good, { ...server, measurementHex: 'zz' }, 'check', ['--check-only']), 2, 'USAGE');
  });

  it('prints the server\'s measurement, both certificates\' serials and ends, and the handshake\'s time; the server logs a plain closed line with no request and no audit line', async () => {
    const before = audit();
    const from = server.child.mark();
    const r = expectSuccess(await d.kc(good, server, 'check', ['--json']));
    expect(r.stderr).to.equal('');
    const doc = r.json();
    expect(doc.server).to.deep.equal({
      address: server.address, measurement: server.measurementHex, platform: 'simulated-enclave',
      serial: serverIdentity.peer.serialHex, notAfter: serverIdentity.peer.notAfter.toISOString(),
    });
    expect(doc.own).to.deep.equal({ measurement: d.measurementHex('client-good'), serial: goodIdentity.peer.serialHex, notAfter: goodIdentity.peer.notAfter.toISOString() });
    expect(doc.handshakeMs).to.be.a('number').above(0).below(DEFAULT_LIMITS.handshakeTimeoutMs);
    expect(doc.attempts, 'accepted on the first try').to.equal(1);
    const line = await server.child.waitForLog(/ closed /, from);
    expect(line).to.match(/ reason=client-closed requests=0 answered=0 dropped=0 /).and.not.to.match(/ code=/);
    expect(server.child.stderr.slice(from)).not.to.match(/ refused | error /);
    expect(audit(), 'no audit line').to.equal(before);

    const text = expectSuccess(await d.kc(good, server, 'check'));
    expect(text.out.split('\n')).to.deep.equal([
      `key-server ${server.address} accepted this machine; handshake ${/handshake (\S+) ms/.exec(text.out)![1]} ms`,
      `server: measurement ${server.measurementHex}, platform simulated-enclave, certificate serial ${serverIdentity.peer.serialHex}, notAfter ${serverIdentity.peer.notAfter.toISOString()}`,
      `this machine: measurement ${d.measurementHex('client-good')}, certificate serial ${goodIdentity.peer.serialHex}, notAfter ${goodIdentity.peer.notAfter.toISOString()}`,
      '',
    ]);
  });

  it('warns on stderr of a certificate as near its end as init-trust renews at (past half its life, for a short one), and exits 0', async () => {
    // Signed by the real policy key for the good client's measurement, for two minutes: backdated by
    // the clock skew allowed, it is past half its life from the start.
    const { machine: ending, certificate } = await d.issuedMachine('ending', 'client-good', 120);
    const r = expectSuccess(await d.kc(ending, server, 'check', ['--json']));
    const { notAfter } = readCertificateSummary(certificate);
    expect(r.json().own.notAfter).to.equal(notAfter.toISOString());
    expect(r.stderr).to.match(new RegExp(`^key-client: warning: this machine's admission certificate \\(serial [0-9a-f]+\\) ends at ${notAfter.toISOString()}, in 0 hours: run cert-utility init-trust on this machine's store, which renews it now\n$`));
  });

  it('fails as retrieve does with the server down: UNREACHABLE, exit 3', async () => {
    const down = { ...server, address: `127.0.0.1:${await closedPort()}` };
    const [check, retrieve] = await both(good, down);
    expectFailure(retrieve, 3, 'UNREACHABLE');
    expectFailure(check, 3, 'UNREACHABLE');
    expect(check.out).to.equal('');
    const json = (await d.kc(good, down, 'check', ['--json'])).json();
    expect(json).to.deep.include({ ok: false });
    expect(json.error).to.include({ code: 'UNREACHABLE', exitStatus: 3 });
  });

  it('fails as retrieve does for a server whose measurement is not pinned: UNTRUSTED_PEER, exit 4, and sends nothing', async () => {
    const from = server.child.mark();
    const [check, retrieve] = await both(good, { ...server, measurementHex: '00'.repeat(32) });
    expectFailure(retrieve, 4, 'UNTRUSTED_PEER');
    expectFailure(check, 4, 'UNTRUSTED_PEER');
    expect(check.stderr).to.contain(`runs measurement ${server.measurementHex}, not one of those pinned: check that --server names the key-server, and, for a new key-server program, pin its measurement too (--server-measurement, repeatable; README "Upgrading")`);
    expect(server.child.stderr.slice(from)).not.to.match(/ requests=[1-9]/);
  });

  it('fails as retrieve does for a machine of another policy key: UNTRUSTED_PEER, exit 4, from key-client and, presented anyway, from the server', async () => {
    const [check, retrieve] = await both(stranger, server);
    expectFailure(retrieve, 4, 'UNTRUSTED_PEER');
    expectFailure(check, 4, 'UNTRUSTED_PEER');
    expect(check.stderr).to.contain('this machine\'s own admission certificate');
    // Presented anyway (from this process): the server's refusal, which comes after our side of
    // the handshake is done, is waited for, never taken for an acceptance.
    const from = server.child.mark();
    const e = await rejects(checkServer({ host: '127.0.0.1', port: server.port, identity: await other.identity(stranger), policyCert: d.policyCert, serverMeasurements: [server.measurementHex] }), 'UNTRUSTED_PEER');
    expect(e.exitStatus).to.equal(4);
    expect(e.message).to.contain('without accepting it: it refused our certificate');
    expect(e.message, 'asked again, as a request would be').to.contain('asked twice');
    // Both refusals logged here, the second too: it would otherwise land in the next test's lines.
    const refused = () => server.child.stderr.slice(from).split('\n').filter((l) => / refused .*reason=untrusted-peer/.test(l));
    for (let waited = 0; refused().length < 2 && waited < 10_000; waited += 50) await sleep(50);
    expect(refused()).to.have.length(2);
  });

  it('counts a check as any connection: more checks in a row than the connections allowed from one address all pass, each logged closed', async () => {
    const from = server.child.mark();
    const n = DEFAULT_LIMITS.maxConnectionsPerAddress + 6;
    for (let i = 0; i < n; i++) {
      const c = await checkServer({ host: '127.0.0.1', port: server.port, identity: goodIdentity, policyCert: d.policyCert, serverMeasurements: [server.measurementHex] });
      expect(c.server.serialHex).to.equal(serverIdentity.peer.serialHex);
    }
    const closed = () => server.child.stderr.slice(from).split('\n').filter((l) => / closed .*reason=client-closed requests=0 answered=0 /.test(l));
    for (let waited = 0; closed().length < n && waited < 5_000; waited += 50) await sleep(50); // log lines come a little after
    expect(closed()).to.have.length(n);
    const lines = server.child.stderr.slice(from).split('\n');
    expect(lines.filter((l) => / refused /.test(l))).to.deep.equal([]);
  });
});

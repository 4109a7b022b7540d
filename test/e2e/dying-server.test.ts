// key-client against a real key-server process killed (SIGKILL) part way through the TLS
// handshake. Killed with bytes of the client's unread, its kernel resets the connection: a
// hang-up (UNREACHABLE, exit 3), which first-boot.sh retries. Killed once it has read the
// client's whole side of the handshake, before its session tickets leave, it closes the
// connection exactly as our refusals do (no alert, no ticket, a clean close), and so does one
// frozen past a second with the client's request unread, then killed (a refusal that came
// late): the client cannot tell these from a refusal, so it asks once more, and hears that
// nobody is there (UNREACHABLE, exit 3), or is served by the server that took its place.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { ROOT, type RunResult } from '../support/helpers.ts';
import { waitFor } from '../channel/harness.ts';
import { SECOND_TRY_PAUSE_MS } from '../../lib/channel/index.ts';
import { rejects } from '../support/rejects.ts';
import { Domain, expectFailure, expectSuccess, sleep, type KeyServer, type Machine } from './domain.ts';

/** Bytes received and not yet read by the process on the established TCP connections to `port` (IPv4). */
function unreadAt(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(`:${hex}`) && f[3] === '01')
    .reduce((sum, f) => sum + parseInt(f[4]!.split(':')[1]!, 16), 0);
}

/** Whether process `pid` is stopped (SIGSTOP). */
const isStopped = (pid: number) => / T /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^\d+ \(.*\)/, ''));

describe('e2e: key-client against a key-server killed part way through the TLS handshake', function () {
  this.timeout(120_000);
  let d: Domain;
  let ks: Machine;
  let client: Machine;

  before(async () => {
    ({ d, machines: { ks, client } } = await Domain.setUp({ ks: 'key-server', client: 'client' }));
  });
  after(() => d?.close());

  /** A key-server preloaded with test/support/die-in-handshake.mjs, armed once it listens. */
  async function dying(when: 'finished' | 'stop'): Promise<KeyServer> {
    const armed = d.path('armed');
    const server = await d.startKeyServer(ks, { env: { NODE_OPTIONS: `--import=${join(ROOT, 'test/support/die-in-handshake.mjs')}`, DIE_IN_HANDSHAKE: when, DIE_ARMED_FILE: armed } });
    writeFileSync(armed, '');
    return server;
  }

  const retrieve = (server: KeyServer): Promise<RunResult> => d.kc(client, server, 'retrieve', ['vhd/disk-1', '--timeout', '30']);

  /** key-client retrieve against `server`, which is killed (SIGKILL) once `ready` is done. */
  async function retrieveThenKill(server: KeyServer, ready: () => Promise<void>): Promise<RunResult> {
    const fetching = retrieve(server);
    try {
      await ready();
    } finally {
      process.kill(server.child.pid, 'SIGKILL');
    }
    return fetching;
  }
  const stoppedAfterFlight = (server: KeyServer) => waitFor(() => isStopped(server.child.pid), 30_000, 'the key-server stopped after its flight');

  it('is UNREACHABLE (exit 3) when it is killed after taking the TCP connection, the ClientHello unread (stopped, then SIGKILL)', async () => {
    const server = await d.startKeyServer(ks);
    process.kill(server.child.pid, 'SIGSTOP');
    const r = await retrieveThenKill(server, () => waitFor(() => unreadAt(server.port) > 0, 30_000, 'the ClientHello waiting unread'));
    expectFailure(r, 3, 'UNREACHABLE');
  });

  it('is UNREACHABLE (exit 3) when it is killed after sending its side of the handshake, the client\'s answer to it unread', async () => {
    const server = await dying('stop');
    const r = await retrieveThenKill(server, async () => {
      await stoppedAfterFlight(server);
      await waitFor(() => unreadAt(server.port) > 0, 30_000, 'the client\'s flight waiting unread');
    });
    expectFailure(r, 3, 'UNREACHABLE');
    expect(r.stderr).not.to.contain('refused');
  });

  it('is UNREACHABLE (exit 3) when it froze after sending its side of the handshake and is killed over a second later, the client\'s request unread: the wire is that of a refusal that came late, and the second try finds nobody', async () => {
    const server = await dying('stop');
    const r = await retrieveThenKill(server, async () => {
      await stoppedAfterFlight(server);
      await sleep(2_500); // past the second the client holds its requests for the server's verdict
    });
    expectFailure(r, 3, 'UNREACHABLE');
    expect(r.stderr).to.contain('connection refused');
  });

  it('is UNREACHABLE (exit 3) when it is killed once it has read the client\'s whole handshake: the wire is that of our refusals, and the second try finds nobody', async () => {
    const server = await dying('finished');
    const r = await retrieve(server);
    expect((await server.child.exited).signal).to.equal('SIGKILL');
    expectFailure(r, 3, 'UNREACHABLE');
    expect(r.stderr).to.contain('connection refused').and.not.to.contain('refused our certificate');
  });

  it('retrieves the value when a server has taken the killed one\'s place by the second try (the port passed to a healthy key-server, as a restart would)', async () => {
    // The port is a forwarder of ours: its first connection goes to the dying key-server, every
    // later one to a healthy key-server of the same program holding the value. It passes each
    // side's end on as an end, so the client sees the dying server's clean close as it is.
    const [healthy, dyingOne] = await Promise.all([
      d.certify('ks-healthy', 'key-server').then((m) => d.startKeyServer(m, { data: d.path('healthy-data') })),
      dying('finished'),
    ]);
    const value = randomBytes(32);
    await d.withClient(healthy, client, (c) => c.store('vhd/disk-1', value));
    const { port, close } = await forwarder([dyingOne.port, healthy.port]);
    try {
      const r = expectSuccess(await retrieve({ ...healthy, port, address: `127.0.0.1:${port}` }));
      expect((await dyingOne.child.exited).signal).to.equal('SIGKILL');
      expect(r.stderr).not.to.contain('refused');
      const store = await d.openStore(client.store);
      try {
        expect(Buffer.from((await store.get('vhd/disk-1'))!.blob)).to.deep.equal(value);
      } finally {
        await store.close();
      }
    } finally {
      await close();
    }
  });

  it('key-client check served on the second try prints the time of that handshake alone, not the first try and the pause, and says it was a second try (text and --json)', async () => {
    const healthy = await d.certify('ks-healthy-check', 'key-server').then((m) => d.startKeyServer(m, { data: d.path('healthy-check-data') }));
    for (const json of [true, false]) {
      // As above: the first connection goes to a key-server that dies as a refusal closes, the second to a healthy one.
      const dyingOne = await dying('finished');
      const { port, close } = await forwarder([dyingOne.port, healthy.port]);
      try {
        const started = performance.now();
        const r = expectSuccess(await d.kc(client, { ...healthy, port, address: `127.0.0.1:${port}` }, 'check', json ? ['--json'] : []));
        const elapsed = performance.now() - started;
        expect((await dyingOne.child.exited).signal).to.equal('SIGKILL');
        const handshakeMs = json ? r.json().handshakeMs : Number(/handshake (\S+) ms/.exec(r.out)?.[1]);
        // The handshake that counted began after the first try and the pause, within this run.
        expect(handshakeMs).to.be.a('number').above(0).and.at.most(elapsed - SECOND_TRY_PAUSE_MS);
        if (json) expect(r.json()).to.include({ attempts: 2 });
        else expect(r.out.split('\n')[0]).to.equal(`key-server 127.0.0.1:${port} accepted this machine; handshake ${handshakeMs} ms, on a second try: the first connection closed right after its handshake, as a refusal does (and a server killed in it), and was tried again ${SECOND_TRY_PAUSE_MS} ms later`);
      } finally {
        await close();
      }
    }
  });

  it('still takes a real refusal for one (UNTRUSTED_PEER, exit 4), asked twice: the key-server logs each refused connection alike, and sees no third', async () => {
    // A machine of another policy key of the same domain name, whose certificate the key-server's TLS refuses.
    const other = await Domain.create({ programs: ['client'], name: d.name });
    try {
      const stranger = await other.identity(await other.certify('stranger', 'client'));
      const server = await d.startKeyServer(ks);
      const from = server.child.mark();
      const e = await rejects(d.connect(server, stranger).then((c) => c.retrieve('vhd/disk-1')), 'UNTRUSTED_PEER');
      expect(e.exitStatus).to.equal(4);
      expect(e.message).to.contain('closed the connection right after the TLS handshake without accepting it').and.contain('asked twice');
      const refused = () => server.child.stderr.slice(from).split('\n').filter((l) => / refused .*reason=untrusted-peer/.test(l));
      await waitFor(() => refused().length === 2, 30_000, 'both refusals logged');
      await sleep(1_500);
      expect(refused()).to.have.length(2);
      for (const line of refused()) expect(line).to.contain('code=UNTRUSTED_PEER');
    } finally {
      await other.close();
    }
  });
});

/** A TCP forwarder on 127.0.0.1 sending its n-th connection to `ports[n]` (the last one for any later). */
async function forwarder(ports: number[]): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let n = 0;
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: ports[Math.min(n++, ports.length - 1)]!, allowHalfOpen: true });
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from);
      from.pipe(to);
      from.on('error', () => (client.destroy(), upstream.destroy()));
      from.on('close', () => sockets.delete(from));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

// key-client against a real key-server process killed (SIGKILL) part way through the TLS
// handshake. Killed with bytes of the client's unread, its kernel resets the connection: a
// hang-up (UNREACHABLE, exit 3), which first-boot.sh retries. Killed once it has read the
// client's whole side of the handshake, before its session tickets leave, it closes the
// connection exactly as our refusals do (no alert, no ticket, a clean close): the client cannot
// tell, and says UNTRUSTED_PEER (exit 4); so it does for one frozen past a second with the
// client's request unread, then killed (a refusal that came late): the cases README's Design
// names as not told apart.

import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, type RunResult } from '../support/helpers.ts';
import { waitFor } from '../channel/harness.ts';
import { Domain, expectFailure, sleep, type KeyServer, type Machine } from './domain.ts';

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
    d = await Domain.create({ programs: ['key-server', 'client'] });
    [ks, client] = await Promise.all([d.certify('ks', 'key-server'), d.certify('client', 'client')]);
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

  it('is still taken for a refusal (UNTRUSTED_PEER, exit 4) when it froze after sending its side of the handshake and is killed over a second later, the client\'s request unread: the wire is that of a refusal that came late', async () => {
    const server = await dying('stop');
    const r = await retrieveThenKill(server, async () => {
      await stoppedAfterFlight(server);
      await sleep(2_500); // past the second the client holds its requests for the server's verdict
    });
    expectFailure(r, 4, 'UNTRUSTED_PEER');
  });

  it('is still taken for a refusal (UNTRUSTED_PEER, exit 4) when it is killed once it has read the client\'s whole handshake: the wire is that of our refusals', async () => {
    const server = await dying('finished');
    const r = await retrieve(server);
    expect((await server.child.exited).signal).to.equal('SIGKILL');
    expectFailure(r, 4, 'UNTRUSTED_PEER');
    expect(r.stderr).to.contain('closed the connection right after the TLS handshake without accepting it');
  });
});

// What a VM at first boot meets before its servers answer, said in words with what it means, each
// UNREACHABLE (exit 3, which first-boot retries) rather than Node's "connect ENETUNREACH ... -
// Local (0.0.0.0:0)" or "read ECONNRESET": its network not up yet (no route), a host name no name
// server could be asked for or none knows, a server that reset the connection (killed as it
// restarted). Those of the network run in namespaces of their own, whose loopback is down
// (unshare, as an unprivileged user where the kernel allows it; skipped elsewhere).

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { ROOT, run } from '../support/helpers.ts';
import { Domain, type Machine } from '../e2e/domain.ts';
import { OWN_RESOLVER, resolverFiles } from '../support/resolver.ts';

describe('a server that cannot be reached, at first boot', function () {
  this.timeout(60_000);
  let d: Domain;
  let vm: Machine;
  /** Whether this machine lets an unprivileged user make network and mount namespaces. */
  const namespaces = spawnSync('unshare', ['-r', '-n', '-m', 'true']).status === 0;

  before(async () => {
    ({ d, machines: { vm } } = await Domain.setUp({ vm: 'vm' }));
  });
  after(() => d?.close());

  it('fails init-trust and key-client with UNREACHABLE (exit 3), saying there is no route: the network not up yet', function () {
    if (!namespaces) this.skip();
    const common = ['--domain', d.name, '--policy-cert', d.policyCertFile, '--server', `127.0.0.1:${d.certifierPort}`];
    for (const args of [
      [join(ROOT, 'cmd/bin/cert-utility.js'), 'init-trust', ...common, '--store', d.path('vm-new'), '--key-file', d.keyFile, '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile('vm')],
      [join(ROOT, 'cmd/bin/key-client.js'), 'check', ...common, ...vm.storeArgs],
    ]) {
      const r = spawnSync('unshare', ['-r', '-n', process.execPath, ...args], { encoding: 'utf8' });
      expect(r.status, r.stderr).to.equal(3);
      expect(r.stderr, args[1]).to.contain(`error: cannot reach 127.0.0.1:${d.certifierPort}: this machine has no route to its network (ENETUNREACH): its network is not up yet, or not configured for that address [UNREACHABLE]`);
    }
  });

  it('says a connection reset as the server reads the handshake (ECONNRESET: a server killed as it restarts) is a server stopped or restarted, which a retry may mend: UNREACHABLE (exit 3)', async () => {
    // Takes the connection, then resets it at the first bytes, as the kernel does for a server killed then.
    const resets = createServer((s) => (s.on('error', () => {}), s.once('data', () => s.resetAndDestroy())));
    await new Promise<void>((r) => resets.listen(0, '127.0.0.1', r));
    const server = `127.0.0.1:${(resets.address() as AddressInfo).port}`;
    try {
      const common = ['--domain', d.name, '--policy-cert', d.policyCertFile, '--server', server];
      const runs = await Promise.all([
        run('cert-utility', ['init-trust', ...common, '--store', d.path('vm-new'), '--key-file', d.keyFile, '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile('vm')]),
        run('key-client', ['check', ...common, ...vm.storeArgs]),
      ]);
      for (const r of runs) {
        expect(r.status, r.stderr).to.equal(3);
        expect(r.stderr).to.contain(`error: cannot reach ${server}: the connection was reset (ECONNRESET): the server stopped or restarted as it answered, or something between cut the connection; a retry may succeed [UNREACHABLE]`);
      }
    } finally {
      resets.close();
    }
  });

  it('says a host name that no name server could be asked for (EAI_AGAIN) may resolve once the network is up, and one no name server knows (ENOTFOUND) is to be checked: both UNREACHABLE (exit 3)', function () {
    if (!namespaces) this.skip();
    const initTrust = (server: string) => [process.execPath, join(ROOT, 'cmd/bin/cert-utility.js'), 'init-trust', '--domain', d.name, '--policy-cert', d.policyCertFile, '--server', server,
      '--store', d.path('vm-new'), '--key-file', d.keyFile, '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile('vm')];
    // Names looked up as `hosts` says (NSS), from a name server at 127.0.0.1, on this loopback that is down.
    const resolving = (hosts: string, args: string[]) => spawnSync('unshare', ['-r', '-n', '-m', 'bash', '-c', `set -e${OWN_RESOLVER}exec "$@"`, 'resolving', ...args], {
      encoding: 'utf8', env: { ...process.env, ...resolverFiles(d.dir, hosts, 'nameserver 127.0.0.1\n') },
    });
    // The name server not reached: getaddrinfo's "try again".
    const later = resolving('files dns', initTrust('keys.example:8123'));
    expect(later.status, later.stderr).to.equal(3);
    expect(later.stderr).to.contain('error: cannot reach keys.example:8123: the name keys.example could not be looked up now (EAI_AGAIN): no name server could be reached or answered, as before the network is up [UNREACHABLE]');
    // A name no source knows.
    const unknown = resolving('files', initTrust('keys.example:8123'));
    expect(unknown.status, unknown.stderr).to.equal(3);
    expect(unknown.stderr).to.contain('error: cannot reach keys.example:8123: the name keys.example is not known (ENOTFOUND): check it, and /etc/hosts or the name server that should know it [UNREACHABLE]');
  });
});

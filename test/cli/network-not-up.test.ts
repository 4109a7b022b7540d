// A VM at first boot may try its servers before its network is up: the kernel then refuses the
// connection at once (no route: ENETUNREACH). The programs say that in words, and what it means,
// as UNREACHABLE (exit 3, which first-boot retries), rather than Node's "connect ENETUNREACH ...
// - Local (0.0.0.0:0)". Run in a network namespace of its own whose loopback is down (unshare, as
// an unprivileged user where the kernel allows it; skipped elsewhere).

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../support/helpers.ts';
import { Domain, type Machine } from '../e2e/domain.ts';

describe('a server tried before this machine\'s network is up', function () {
  this.timeout(60_000);
  let d: Domain;
  let vm: Machine;

  before(async function () {
    if (spawnSync('unshare', ['-r', '-n', '-m', 'true']).status !== 0) this.skip();
    ({ d, machines: { vm } } = await Domain.setUp({ vm: 'vm' }));
  });
  after(() => d?.close());

  it('fails init-trust and key-client with UNREACHABLE (exit 3), saying there is no route: the network not up yet', () => {
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

  it('says a host name that no name server could be asked for (EAI_AGAIN) may resolve once the network is up, and one no name server knows (ENOTFOUND) is to be checked: both UNREACHABLE (exit 3)', () => {
    const initTrust = (server: string) => [process.execPath, join(ROOT, 'cmd/bin/cert-utility.js'), 'init-trust', '--domain', d.name, '--policy-cert', d.policyCertFile, '--server', server,
      '--store', d.path('vm-new'), '--key-file', d.keyFile, '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile('vm')];
    // Names looked up as `hosts` says (NSS), from a name server at 127.0.0.1, on this loopback that is down.
    const resolving = (hosts: string, args: string[]) => {
      writeFileSync(join(d.dir, 'nsswitch.conf'), `hosts: ${hosts}\n`);
      writeFileSync(join(d.dir, 'resolv.conf'), 'nameserver 127.0.0.1\n');
      const script = 'mount --bind "$0/nsswitch.conf" /etc/nsswitch.conf && mount --bind "$0/resolv.conf" /etc/resolv.conf && exec "$@"';
      return spawnSync('unshare', ['-r', '-n', '-m', 'bash', '-c', script, d.dir, ...args], { encoding: 'utf8' });
    };
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

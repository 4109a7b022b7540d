// A VM at first boot may try its servers before its network is up: the kernel then refuses the
// connection at once (no route: ENETUNREACH). The programs say that in words, and what it means,
// as UNREACHABLE (exit 3, which first-boot retries), rather than Node's "connect ENETUNREACH ...
// - Local (0.0.0.0:0)". Run in a network namespace of its own whose loopback is down (unshare, as
// an unprivileged user where the kernel allows it; skipped elsewhere).

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../support/helpers.ts';
import { Domain, type Machine } from '../e2e/domain.ts';

describe('a server tried before this machine\'s network is up', function () {
  this.timeout(60_000);
  let d: Domain;
  let vm: Machine;

  before(async function () {
    if (spawnSync('unshare', ['-r', '-n', 'true']).status !== 0) this.skip();
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
});

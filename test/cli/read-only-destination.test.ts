// A destination on a read-only file system: a VM's root mounted read-only, or, far more often, a
// path the service's unit does not let it write (ProtectSystem=strict, as first-boot.service has,
// makes every path read-only but its ReadWritePaths=), where `mount` shows the disk writable. The
// refusal (FILE_ERROR, exit 1, nothing written) names both. Run in a mount namespace of its own
// whose directory is bound read-only (unshare, as an unprivileged user where the kernel allows it;
// skipped elsewhere).

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { closedPort, ROOT } from '../support/helpers.ts';
import { Domain, type Machine } from '../e2e/domain.ts';

const READ_ONLY = 'the file system is read-only, to this process at least: a service whose unit has ProtectSystem= may write only under its ReadWritePaths=';

describe('a destination on a read-only file system', function () {
  this.timeout(60_000);
  let d: Domain;
  let vm: Machine;
  let ro: string;
  /** `args` run by node with `ro` bound read-only over itself. */
  const readOnly = (args: string[]) => spawnSync('unshare', ['-r', '-m', 'bash', '-c', 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"', ro, process.execPath, ...args], { encoding: 'utf8' });

  before(async function () {
    if (spawnSync('unshare', ['-r', '-m', 'true']).status !== 0) this.skip();
    ({ d, machines: { vm } } = await Domain.setUp({ vm: 'vm' }));
    ro = d.path('read-only');
    mkdirSync(ro);
  });
  after(() => d?.close());

  it('is refused by init-trust (a store) and key-client retrieve --out (a file) with FILE_ERROR (exit 1), naming a unit\'s ReadWritePaths= too, and nothing is written', async () => {
    const server = ['--domain', d.name, '--policy-cert', d.policyCertFile];
    const runs = [
      readOnly([join(ROOT, 'cmd/bin/cert-utility.js'), 'init-trust', ...server, '--server', `127.0.0.1:${d.certifierPort}`, '--store', join(ro, 'store'), '--key-file', d.keyFile, '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile('vm')]),
      readOnly([join(ROOT, 'cmd/bin/key-client.js'), 'retrieve', 'vhd/disk-1', '--out', join(ro, 'disk-1'), ...server, '--server', `127.0.0.1:${await closedPort()}`, ...vm.storeArgs]),
    ];
    for (const r of runs) {
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.contain(READ_ONLY).and.contain('[FILE_ERROR]');
    }
    expect(readdirSync(ro)).to.deep.equal([]);
    expect(existsSync(join(ro, 'store'))).to.equal(false);
  });
});

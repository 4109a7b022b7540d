// Scenario 1 on one machine: a deployment machine (policy, simpleserver, a certified key-server,
// two VHD keys provisioned with key-client) and a deployed VM that runs scripts/first-boot.sh and
// ends up with both keys in its own encrypted cryptstore. Run with `npm run demo`.

import { randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main, ROOT, Scenario } from '../common.ts';

const s = new Scenario('scenario1');
const D = 'datica';
const deploy = (f = '') => join(s.dir, 'deployment', f);
const vm = (f = '') => join(s.dir, 'vm', f);

await main(s, async () => {
  s.mkdir(deploy());
  s.mkdir(vm());
  // The programs the policy admits: here stand-ins whose contents are measured.
  s.writePublic(deploy('key-server.program'), 'key-server program image\n');
  s.writePublic(deploy('key-client.program'), 'deployment key-client program image\n');
  s.writePublic(vm('vm-image'), 'deployed VM image: cert-utility, key-client, first-boot.sh\n');

  s.say('deployment: policy key, simulated platform keys, measurements, signed policy, key-server\'s ACL');
  await s.run(join(ROOT, 'scripts/deployment-setup.sh'), [
    '--dir', deploy('setup'), '--domain', D, '--measure', deploy('key-server.program'), '--measure', deploy('key-client.program'), '--measure', vm('vm-image'),
  ]);
  const setup = (f: string) => deploy(join('setup', f));

  s.say('deployment: simpleserver starts (TLS, loopback, a port of its own choosing)');
  const cport = await s.serve('simpleserver', ['serve', '--policy-key', setup('policy-key.pem'), '--policy-cert', setup('policy-cert.pem'), '--policy', setup('policy.bin'), '--listen', '127.0.0.1:0']);

  const platform = (program: string) => ['--platform', 'simulated', '--platform-dir', setup('platform'), '--measurement-file', setup(`measurements/${program}.measurement`)];
  const ksStore = ['--store', deploy('keyserver-store'), '--sealed', ...platform('key-server.program')];
  s.say('deployment: key-server gets certified by simpleserver (init-trust, sealed cryptstore)');
  await s.run('cert-utility', ['init-trust', '--domain', D, '--policy-cert', setup('policy-cert.pem'), '--server', `127.0.0.1:${cport}`, ...ksStore]);

  // The ACL deployment-setup.sh wrote: key-client's measurement stores the keys, the VM image's only retrieves them.
  s.say('deployment: key-server starts (mutual TLS; its ACL: key-client stores, the VM only retrieves; it renews its own certificate through simpleserver)');
  const kport = await s.serve('key-server', ['serve', '--domain', D, '--policy-cert', setup('policy-cert.pem'), '--data', deploy('keyserver-data'), '--listen', '127.0.0.1:0', '--certifier', `127.0.0.1:${cport}`, '--acl', setup('acl.json'), ...ksStore]);
  const ksMeasurement = readFileSync(setup('measurements/key-server.program.measurement')).toString('hex');

  const kcStore = ['--store', deploy('keyclient-store'), '--sealed', ...platform('key-client.program')];
  s.say('deployment: key-client gets certified too');
  await s.run('cert-utility', ['init-trust', '--domain', D, '--policy-cert', setup('policy-cert.pem'), '--server', `127.0.0.1:${cport}`, ...kcStore]);

  s.say('deployment: two VHD encryption keys generated and stored in key-server with key-client');
  const keys = { 'vhd/disk-1': randomBytes(32), 'vhd/disk-2': randomBytes(32) };
  for (const [name, key] of Object.entries(keys)) {
    await s.run('key-client', ['store', name, '--in', '-', '--server', `127.0.0.1:${kport}`, '--domain', D, '--policy-cert', setup('policy-cert.pem'), '--server-measurement', ksMeasurement, ...kcStore], { input: key });
  }

  s.say('deployed VM: its image holds the policy certificate, its platform files and its measurement');
  s.mkdir(vm('platform'));
  for (const f of ['attest-key.pem', 'endorsement.bin']) copyFileSync(setup(`platform/${f}`), vm(`platform/${f}`));
  copyFileSync(setup('policy-cert.pem'), vm('policy-cert.pem'));
  await s.run('cert-utility', ['measure', vm('vm-image'), '--out', vm('measurement')]);

  s.say('deployed VM: scripts/first-boot.sh certifies the VM and fetches both keys');
  const firstBoot = [
    '--host', '127.0.0.1', '--certifier-port', String(cport), '--keyserver-port', String(kport), '--keys', Object.keys(keys).join(' '),
    '--domain', D, '--policy-cert', vm('policy-cert.pem'), '--store', vm('store'), '--platform-dir', vm('platform'),
    '--measurement-file', vm('measurement'), '--server-measurement', ksMeasurement, '--retries', '3',
  ];
  await s.run(join(ROOT, 'scripts/first-boot.sh'), firstBoot);

  s.say('deployed VM: cert-utility get-item reads both keys back; they equal the originals');
  for (const [name, key] of Object.entries(keys)) {
    const got = await s.run('cert-utility', ['get-item', '--tag', name, '--out', '-', '--store', vm('store'), '--sealed', '--platform-dir', vm('platform'), '--measurement-file', vm('measurement')]);
    if (!got.equals(key)) throw new Error(`${name} on the VM differs from the original`);
  }

  s.say('deployed VM: after a reboot, with both servers stopped, first-boot.sh succeeds offline at once');
  await s.stop(cport);
  await s.stop(kport);
  const t = Date.now();
  await s.run(join(ROOT, 'scripts/first-boot.sh'), firstBoot);
  if (Date.now() - t > 10_000) throw new Error('first-boot.sh took too long on a certified, provisioned VM');
});

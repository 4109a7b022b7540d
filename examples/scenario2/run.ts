// Scenario 2 with the same software: the key-server runs in a certified "cloud VM" rather than on
// the deployment machine, and the deployment machine's key-client is admitted with a certificate
// signed directly by the policy key (cert-utility issue-cert), without simpleserver, naming the
// key-client's measurement: the one the key-server's ACL lets store keys, the VMs only retrieving.
// Run with `npm run demo:scenario2`.

import { randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main, ROOT, Scenario } from '../common.ts';

const s = new Scenario('scenario2');
const D = 'datica';
const at = (machine: string, f = '') => join(s.dir, machine, f);

await main(s, async () => {
  for (const m of ['deployment', 'cloud-vm', 'vm']) s.mkdir(at(m));
  // The names tell deployment-setup.sh whose measurement the ACL it writes lets store keys
  // (key-client's), and whose it leaves out (key-server's).
  s.writePublic(at('cloud-vm', 'key-server-vm.img'), 'cloud VM image running key-server\n');
  s.writePublic(at('deployment', 'key-client.program'), 'deployment key-client program image\n');
  s.writePublic(at('vm', 'deployed-vm.img'), 'deployed VM image: cert-utility, key-client, first-boot.sh\n');

  s.say('deployment: policy, simulated platform keys, measurements of both VM images and of key-client, key-server\'s ACL');
  const setup = (f: string) => at('deployment', join('setup', f));
  await s.run(join(ROOT, 'scripts/deployment-setup.sh'), ['--dir', at('deployment', 'setup'), '--domain', D, '--measure', at('cloud-vm', 'key-server-vm.img'), '--measure', at('deployment', 'key-client.program'), '--measure', at('vm', 'deployed-vm.img')]);
  const cport = await s.serve('simpleserver', ['serve', '--policy-key', setup('policy-key.pem'), '--policy-cert', setup('policy-cert.pem'), '--policy', setup('policy.bin'), '--listen', '127.0.0.1:0']);
  s.say(`deployment: simpleserver listening on port ${cport}`);

  // Each VM holds only what its image carries: the policy certificate, platform files, measurement.
  for (const m of ['cloud-vm', 'vm']) {
    s.mkdir(at(m, 'platform'));
    for (const f of ['attest-key.pem', 'endorsement.bin']) copyFileSync(setup(`platform/${f}`), at(m, `platform/${f}`));
    copyFileSync(setup('policy-cert.pem'), at(m, 'policy-cert.pem'));
    await s.run('cert-utility', ['measure', at(m, m === 'vm' ? 'deployed-vm.img' : 'key-server-vm.img'), '--out', at(m, 'measurement')]);
  }
  // The cloud VM's key-server is given the ACL deployment-setup.sh wrote: without one, every
  // admitted VM could store a new version of any key.
  s.writePublic(at('cloud-vm', 'acl.json'), readFileSync(setup('acl.json'), 'utf8'));
  const sealed = (m: string) => ['--store', at(m, 'store'), '--sealed', '--platform', 'simulated', '--platform-dir', at(m, 'platform'), '--measurement-file', at(m, 'measurement')];

  // The cloud VM has an address of its own: here 127.0.0.2, another loopback address than the
  // deployment machine's 127.0.0.1.
  const cloudVm = '127.0.0.2';
  s.say(`cloud VM: certified by simpleserver, then key-server starts there (at ${cloudVm}; its ACL: key-client stores, the VMs only retrieve)`);
  await s.run('cert-utility', ['init-trust', '--domain', D, '--policy-cert', at('cloud-vm', 'policy-cert.pem'), '--server', `127.0.0.1:${cport}`, ...sealed('cloud-vm')]);
  const kport = await s.serve('key-server', ['serve', '--domain', D, '--policy-cert', at('cloud-vm', 'policy-cert.pem'), '--data', at('cloud-vm', 'keyserver-data'), '--listen', `${cloudVm}:0`, '--acl', at('cloud-vm', 'acl.json'), ...sealed('cloud-vm')]);
  const ksMeasurement = readFileSync(at('cloud-vm', 'measurement')).toString('hex');

  s.say('deployment: key-client admitted directly with issue-cert (no simpleserver), naming its measurement');
  const kc = ['--store', at('deployment', 'client-store'), '--key-file', at('deployment', 'client-store.key')];
  await s.run('cert-utility', ['new-key-file', '--out', at('deployment', 'client-store.key')]);
  await s.run('cert-utility', ['create-store', ...kc]);
  await s.run('cert-utility', ['generate-key', '--tag', `${D}-private-auth-key`, '--alg', 'p256', '--public-key-out', at('deployment', 'client.pub.pem'), ...kc]);
  // The measurement the ACL lets store keys: a VM image's would let the key-client only retrieve them.
  const kcMeasurement = readFileSync(setup('measurements/key-client.program.measurement')).toString('hex');
  await s.run('cert-utility', ['issue-cert', '--policy-key', setup('policy-key.pem'), '--policy-cert', setup('policy-cert.pem'), '--public-key', at('deployment', 'client.pub.pem'), '--measurement', kcMeasurement, '--policy', setup('policy.bin'), '--days', '1', '--out', at('deployment', 'client-cert.pem')]);
  await s.run('cert-utility', ['put-item', '--tag', `${D}-admission-certificate`, '--type', 'X509-der-cert', '--in', at('deployment', 'client-cert.pem'), ...kc]);

  s.say('deployment: two VHD keys stored in the cloud key-server');
  const keys = { 'vhd/disk-1': randomBytes(32), 'vhd/disk-2': randomBytes(32) };
  for (const [name, key] of Object.entries(keys)) {
    await s.run('key-client', ['store', name, '--in', '-', '--server', `${cloudVm}:${kport}`, '--domain', D, '--policy-cert', setup('policy-cert.pem'), '--server-measurement', ksMeasurement, ...kc], { input: key });
  }

  s.say('deployed VM: first-boot.sh, certifier on the deployment machine, keys from the cloud VM');
  await s.run(join(ROOT, 'scripts/first-boot.sh'), [
    '--host', '127.0.0.1', '--certifier-port', String(cport), '--keyserver-host', cloudVm, '--keyserver-port', String(kport), '--keys', Object.keys(keys).join(' '),
    '--domain', D, '--policy-cert', at('vm', 'policy-cert.pem'), '--store', at('vm', 'store'), '--platform-dir', at('vm', 'platform'),
    '--measurement-file', at('vm', 'measurement'), '--server-measurement', ksMeasurement, '--retries', '3',
  ]);

  s.say('deployed VM: both keys read back with cert-utility get-item equal the originals');
  for (const [name, key] of Object.entries(keys)) {
    const got = await s.run('cert-utility', ['get-item', '--tag', name, '--out', '-', ...sealed('vm')]);
    if (!got.equals(key)) throw new Error(`${name} on the VM differs from the original`);
  }
});


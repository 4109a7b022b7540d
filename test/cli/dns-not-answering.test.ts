// A VM at first boot may ask for a server's name before its name server answers. The programs'
// --timeout covers the lookup, and the refusal (TIMEOUT, exit 3, which first-boot retries) says it
// was the name's lookup that got no answer, never asking the server, rather than blaming a server
// stopped or cut off. Run in namespaces of its own (unshare, as an unprivileged user where the
// kernel allows it; skipped elsewhere): its /etc/resolv.conf names a loopback name server that
// takes every question and answers none, and the resolver gives up after 4 s (the programs end
// only then: the resolver's call cannot be called off).

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../support/helpers.ts';
import { Domain, type Machine } from '../e2e/domain.ts';
import { OWN_RESOLVER, resolverFiles } from '../support/resolver.ts';

/** bash, in new user, network and mount namespaces with a resolver of its own (OWN_RESOLVER) and a silent name server on 127.0.0.1:53, running $NODE with its arguments. */
const SILENT_DNS = `
set -e
ip link set lo up
${OWN_RESOLVER}
"$NODE" -e 'require("dgram").createSocket("udp4").on("message", () => {}).bind(53, "127.0.0.1")' &
silent=$!
until [ -n "$(ss -Hlun 'sport = 53')" ]; do sleep 0.05; done
set +e
# Bounded here: a program still waiting on the resolver is stopped (124) rather than the test left hanging.
timeout 30 "$NODE" "$@"
echo "status $?" >&2
kill "$silent"
`;

describe('a host name whose name server does not answer (DNS not up yet)', function () {
  this.timeout(90_000);
  let d: Domain;
  let vm: Machine;
  let resolver: ReturnType<typeof resolverFiles>;
  const inNamespaces = (args: string[]) => spawnSync('unshare', ['-r', '-n', '-m', 'bash', '-c', SILENT_DNS, 'silent-dns', ...args], {
    cwd: d.dir, encoding: 'utf8', env: { ...process.env, ...resolver, NODE: process.execPath },
  });

  before(async function () {
    if (spawnSync('unshare', ['-r', '-n', '-m', 'true']).status !== 0 || spawnSync('ip', ['-V']).status !== 0 || spawnSync('ss', ['-V']).status !== 0) this.skip();
    ({ d, machines: { vm } } = await Domain.setUp({ vm: 'vm' }));
    resolver = resolverFiles(d.dir, 'files dns', 'nameserver 127.0.0.1\noptions timeout:4 attempts:1\n');
  });
  after(() => d?.close());

  it('fails init-trust and key-client after --timeout with TIMEOUT (exit 3), saying the name\'s lookup got no answer, not that the server is stopped', () => {
    const common = ['--domain', d.name, '--policy-cert', d.policyCertFile, '--server', 'keys.example:8123', '--timeout', '1'];
    for (const args of [
      [join(ROOT, 'cmd/bin/cert-utility.js'), 'init-trust', ...common, '--store', d.path('vm-new'), '--key-file', d.keyFile, '--platform-dir', d.platformDir, '--measurement-file', d.measurementFile('vm')],
      [join(ROOT, 'cmd/bin/key-client.js'), 'check', ...common, ...vm.storeArgs],
    ]) {
      const r = inNamespaces(args);
      expect(r.stderr, args[1]).to.contain('status 3\n');
      expect(r.stderr, args[1]).to.contain('error: looking up the name keys.example (of keys.example:8123) timed out after 1000 ms (--timeout 1): no name server answered');
      expect(r.stderr, args[1]).to.contain('[TIMEOUT]').and.not.contain('the server is stopped');
    }
  });
});

// HOST:PORT as --server, --from, --certifier and --listen take it: a host name or IP address (an
// IPv6 address in brackets), a port from 1 to 65535 (0 only to listen), and nothing else.

import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { CertifierError } from '../../lib/errors/index.ts';
import { parseHostPort } from '../../cmd/common/keys.ts';
import { spawn } from 'node:child_process';
import { ROOT, run, tempDir } from '../support/helpers.ts';
import { waitFor } from '../channel/harness.ts';
import { Child, Domain, expectSuccess, startServer, type Machine } from '../e2e/domain.ts';

describe('HOST:PORT on the command line', () => {
  const refusal = (value: string, listen = false): CertifierError => {
    try {
      parseHostPort(value, '--server', { listen });
    } catch (e) {
      return e as CertifierError;
    }
    throw new Error(`${value} was taken`);
  };

  it('takes the ends of the port range, and an IPv6 address in brackets as its host without them', () => {
    expect(parseHostPort('127.0.0.1:1', '--server')).to.deep.equal({ host: '127.0.0.1', port: 1 });
    expect(parseHostPort('127.0.0.1:65535', '--server')).to.deep.equal({ host: '127.0.0.1', port: 65535 });
    expect(parseHostPort('[::1]:8120', '--server')).to.deep.equal({ host: '::1', port: 8120 });
    expect(parseHostPort('[fe80::1%eth0]:8120', '--server')).to.deep.equal({ host: 'fe80::1%eth0', port: 8120 });
    expect(parseHostPort('keys.internal:08120', '--server')).to.deep.equal({ host: 'keys.internal', port: 8120 });
    expect(parseHostPort('127.0.0.1:0', '--listen', { listen: true })).to.deep.equal({ host: '127.0.0.1', port: 0 });
  });

  it('refuses port 65536, port 0 where a server is to be reached, a port that is no number, and an address it cannot split (USAGE)', () => {
    for (const value of ['127.0.0.1:65536', '[::1]:65536', '127.0.0.1:99999', '127.0.0.1:123456', '127.0.0.1:0', '[::1]:0', '127.0.0.1:http', '127.0.0.1:', '127.0.0.1:-1',
      '127.0.0.1:1e3', '127.0.0.1:0x50', '127.0.0.1: 80', '127.0.0.1:80 ', '127.0.0.1', '[::1]8120',
      // No host at all: an empty one listened on every interface, and connected to localhost.
      '[]:8120', '[::1:8120', '::1]:8120', '[a]b]:8120', 'a[b:8120']) {
      const e = refusal(value);
      expect(e, value).to.be.instanceOf(CertifierError);
      expect(e.code, value).to.equal('USAGE');
      expect(e.message).to.equal(`--server must be HOST:PORT with a port from 1 to 65535, not "${value}"`);
    }
    expect(refusal('127.0.0.1:65536', true).message).to.equal('--server must be HOST:PORT with a port from 0 (any free port) to 65535, not "127.0.0.1:65536"');
  });

  it('says a port given without its host needs one (USAGE), where it blamed the port: --listen 8120', () => {
    for (const value of ['8120', ':8120']) {
      expect(refusal(value).code, value).to.equal('USAGE');
      expect(refusal(value).message, value).to.equal(`--server must be HOST:PORT, a host before the port (the server's address: 10.0.0.5:8120), not "${value}"`);
      expect(refusal(value, true).message, value).to.equal(`--server must be HOST:PORT, a host before the port (127.0.0.1:8120 for this machine alone, 0.0.0.0:8120 for every interface), not "${value}"`);
    }
  });

  it('says an IPv6 address without brackets needs them (USAGE), where it blamed the port: first-boot.sh --host 2001:db8::5 made "2001:db8::5:8123"', () => {
    for (const [value, bracketed] of [['::1:8120', '[::1]:8120'], ['2001:db8::5:8123', '[2001:db8::5]:8123'], ['fe80::1%eth0:8120', '[fe80::1%eth0]:8120']]) {
      const e = refusal(value!);
      expect(e.code, value).to.equal('USAGE');
      expect(e.message, value).to.equal(`--server must be HOST:PORT with an IPv6 address in brackets, the port after them (${bracketed} if that is the address and the port), not "${value}"`);
    }
    // Not an IPv6 address before the last colon: the port is what is wrong, as before.
    expect(refusal('a:b:8120').message).to.equal('--server must be HOST:PORT with a port from 1 to 65535, not "a:b:8120"');
  });

  it('takes a host name (a label may hold "_", a final dot), an IPv4 address, or an IPv6 address in brackets, with a zone', () => {
    const longest = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`; // 253 characters, labels of 63
    for (const [value, host] of [[`${longest}:8120`, longest], [`${longest}.:8120`, `${longest}.`], ['kms.internal:8120', 'kms.internal'], ['_svc.kms-1.example.:8120', '_svc.kms-1.example.'], ['10.0.0.5:8120', '10.0.0.5'],
      ['[2001:db8::5]:8120', '2001:db8::5'], ['[::ffff:10.0.0.5]:8120', '::ffff:10.0.0.5'], ['[::]:8120', '::'], ['[fe80::1%eth0.1]:8120', 'fe80::1%eth0.1']]) {
      expect(parseHostPort(value!, '--server').host, value).to.equal(host);
    }
  });

  it('refuses a host that is no host name or IP address (USAGE), which failed only on connecting', () => {
    for (const value of ['a..b:8120', '.a:8120', '-v:8120', 'a-:8120', 'kms internal:8120', 'k\u00e9ys:8120', 'a\nb:8120', '[:]:8120', '[1:2:3]:8120', '[10.0.0.5]:8120', '[fe80::1%]:8120', '[fe80::1%a b]:8120',
      // A label past 63 characters, a name past 253 (getaddrinfo: EINVAL): they failed only on connecting, UNREACHABLE (exit 3, retried).
      `${'a'.repeat(64)}.example:8120`, `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}:8120`, `${'x'.repeat(5000)}:8120`]) {
      const e = refusal(value);
      expect(e.code, value).to.equal('USAGE');
      expect(e.message).to.equal(`--server must be HOST:PORT with HOST a host name or an IP address (an IPv6 address in brackets: [2001:db8::5]), not "${value}"`);
    }
    expect(refusal('a..b:0', true).code, 'to listen on too').to.equal('USAGE');
  });

  it('refuses a host of numbers that is no IPv4 address (USAGE), which the system\'s resolver read its own way: 010.0.0.5 as octal, 8.0.0.5', () => {
    // getaddrinfo reads a name of one to four numbers with inet_aton (a leading 0 octal, 0x hex,
    // fewer than four parts filling the last), and looks up any other name ending in a number in
    // DNS, where no such name can be: a typo (10.0.0.256) failed only on connecting, and was retried.
    for (const host of ['010.0.0.5', '10.0.0.05', '127.1', '1234', '0x7f.0.0.1', '10.0.0.0x5', '10.0.0.256', '1.2.3.4.5', '10.0.0.5.', 'kms.8120', '0']) {
      const e = refusal(`${host}:8120`);
      expect(e.code, host).to.equal('USAGE');
      expect(e.message, host).to.equal(`--server must be HOST:PORT with HOST a host name or an IP address (an IPv4 address is four numbers from 0 to 255 without leading zeros; a host name does not end in a number), not "${host}:8120"`);
    }
    expect(refusal('010.0.0.5:0', true).code, 'to listen on too').to.equal('USAGE');
    for (const host of ['10.0.0.5', '0.0.0.0', '255.255.255.255', '10.0.0.5x', '1a.example', 'example.0x5', 'kms-1.internal']) expect(parseHostPort(`${host}:8120`, '--server').host, host).to.equal(host);
  });
});

describe('an IPv6 HOST:PORT in what the programs say', function () {
  this.slow(8_000);
  const tmp = tempDir('host-port-');
  const at = (name: string) => join(tmp.dir, name);
  after(() => tmp.cleanup());
  const listenOnLoopback6 = async (): Promise<Server> => {
    const srv = createServer();
    await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '::1', resolve));
    return srv;
  };

  it('writes the address in brackets, as --server and --listen take it: "[::1]:8120", not "::1:8120"; and says an address to listen on is not this machine\'s', async () => {
    for (const args of [['generate-policy-key', '--domain', 'datica', '--key-out', at('policy-key.pem'), '--cert-out', at('policy-cert.pem')], ['generate-platform-keys', '--out-dir', at('platform')]]) {
      const made = await run('cert-utility', args);
      expect(made.status, made.stderr).to.equal(0);
    }
    writeFileSync(at('m'), Buffer.alloc(32, 7));
    writeFileSync(at('key'), Buffer.alloc(32, 9), { mode: 0o600 });
    const held = await listenOnLoopback6();
    const port = (held.address() as { port: number }).port;
    try {
      // Nobody listens on the next port; the held one is in use.
      const closed = port === 65535 ? port - 1 : port + 1;
      const reach = await run('cert-utility', ['init-trust', '--domain', 'datica', '--policy-cert', at('policy-cert.pem'), '--server', `[::1]:${closed}`,
        '--store', at('store'), '--key-file', at('key'), '--platform-dir', at('platform'), '--measurement-file', at('m')]);
      expect(reach.status, reach.stderr).to.equal(3);
      expect(reach.stderr).to.contain(`cert-utility: error: cannot reach [::1]:${closed}: connection refused (nothing listens there: check the address, and that the server runs) [UNREACHABLE]`);
      const made = await run('cert-utility', ['make-policy', '--policy-key', at('policy-key.pem'), '--policy-cert', at('policy-cert.pem'), '--trust-platform', at('platform/platform-cert.pem'),
        '--trust-measurement', '07'.repeat(32), '--out', at('policy.bin')]);
      expect(made.status, made.stderr).to.equal(0);
      const listen = await run('simpleserver', ['serve', '--policy-key', at('policy-key.pem'), '--policy-cert', at('policy-cert.pem'), '--policy', at('policy.bin'), '--listen', `[::1]:${port}`]);
      expect(listen.status, listen.stderr).to.equal(1);
      expect(listen.stderr).to.contain(`simpleserver: error: cannot listen on [::1]:${port}: address already in use: another process holds that port (stop it, or give --listen another port) [ADDRESS_IN_USE]`);
      // An address of another machine (a typo, or the address a client reaches it by through NAT).
      const elsewhere = await run('simpleserver', ['serve', '--policy-key', at('policy-key.pem'), '--policy-cert', at('policy-cert.pem'), '--policy', at('policy.bin'), '--listen', '192.0.2.1:8123']);
      expect([elsewhere.status, elsewhere.out], elsewhere.stderr).to.deep.equal([1, '']);
      expect(elsewhere.stderr).to.contain('simpleserver: error: cannot listen on 192.0.2.1:8123: 192.0.2.1 is not an address of this machine (listen on one of its own, or 0.0.0.0 for all of them) [INVALID_INPUT]');
      const unknown = await run('simpleserver', ['serve', '--policy-key', at('policy-key.pem'), '--policy-cert', at('policy-cert.pem'), '--policy', at('policy.bin'), '--listen', 'nosuch.invalid:8123']);
      expect([unknown.status, unknown.out], unknown.stderr).to.deep.equal([1, '']);
      expect(unknown.stderr).to.contain('simpleserver: error: cannot listen on nosuch.invalid:8123: the name nosuch.invalid is not resolved (listen on an address of this machine) [INVALID_INPUT]');
    } finally {
      await new Promise((r) => held.close(r));
    }
  });
});

describe('a server listening on an IPv6 address says where as --server takes it', function () {
  this.timeout(60_000);
  let d: Domain;
  let ks: Machine;
  let client: Machine;
  before(async () => {
    ({ d, machines: { ks, client } } = await Domain.setUp({ ks: 'key-server', client: 'client' }));
  });
  after(async () => d?.close());

  it('simpleserver and key-server print "listening [::1]:PORT", which key-client --server takes as printed; --json keeps {host, port}', async () => {
    const simple = await startServer('simpleserver', d.simpleserverArgs(d.policyFile, '[::1]:0'));
    d.adopt(simple.child);
    expect(simple.child.stdout).to.equal(`listening [::1]:${simple.port}\n`);
    const server = await d.startKeyServer(ks, { listen: '[::1]:0' });
    const printed = /^listening (\S+)\n$/.exec(server.child.stdout)?.[1];
    expect(printed, server.child.stdout).to.equal(`[::1]:${server.port}`);
    const checked = expectSuccess(await d.kc(client, { ...server, address: printed! }, 'check'));
    expect(checked.out).to.contain(`key-server [::1]:${server.port} accepted this machine`);
    // The document for programs is unchanged: the host as it is, and the port.
    const json = new Child('simpleserver', spawn(process.execPath, [join(ROOT, 'cmd', 'bin', 'simpleserver.js'), ...d.simpleserverArgs(d.policyFile, '[::1]:0'), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    d.adopt(json);
    await waitFor(() => json.stdout.endsWith('\n') || !json.running, 20_000, 'simpleserver --json listening');
    const doc = JSON.parse(json.stdout);
    expect(doc).to.deep.equal({ ok: true, listening: { host: '::1', port: doc.listening.port } });
    expect(doc.listening.port).to.be.a('number').above(0);
  });
});

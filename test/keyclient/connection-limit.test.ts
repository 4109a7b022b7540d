// KeyClient past the key-server's requests per connection: a server answers so many requests on
// one connection and closes it; requests made past that, all at once or not, a challenged one's
// two halves together, go on a new connection and every one is answered. The connections share
// one TLS context (made once per KeyClient), and each checks the server again.

import { expect } from 'chai';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { SIMULATED_ENCLAVE } from '../../lib/attest/index.ts';
import { generateKeyPair, randomBytes, sha256, utf8 } from '../../lib/crypto/index.ts';
import { serve, type ChannelServer } from '../../lib/channel/index.ts';
import { KeyClient, type KeyClientOptions } from '../../lib/keyclient/index.ts';
import { parseAcl } from '../../lib/keyservice/acl.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { issueRoleCert } from '../../lib/keyservice/roles.ts';
import { startKeyServer } from '../../lib/keyservice/server.ts';
import type { Cryptstore } from '../../cryptstore/index.ts';
import { certifiedStore, issueLeaf, machineIdentity, makeDomain, type BenchDomain } from '../bench/domain.ts';
import { tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';
import type { CertifierError } from '../../lib/errors/index.ts';

describe('keyclient: more requests than the key-server answers on one connection', function () {
  this.timeout(30_000);
  const PER_CONNECTION = 5;
  let tmp: ReturnType<typeof tempDir>;
  let store: Cryptstore;
  let backend: LevelBackend;
  let server: ChannelServer;
  let options: KeyClientOptions;
  let operator: NonNullable<KeyClientOptions['credential']>;
  let domain: BenchDomain;
  const closed: { reason?: string; requests?: number; answered?: number }[] = [];

  before(async () => {
    tmp = tempDir('keyclient-limit-');
    domain = await makeDomain('limit');
    const clientMeasurement = sha256(utf8('the key-client'));
    const serverLeaf = await issueLeaf(domain, { measurement: sha256(utf8('the key-server')), platform: SIMULATED_ENCLAVE });
    const clientLeaf = await issueLeaf(domain, { measurement: clientMeasurement, platform: SIMULATED_ENCLAVE });
    store = await certifiedStore(domain, serverLeaf, join(tmp.dir, 'store'), join(tmp.dir, 'store.key'));
    backend = await LevelBackend.open(join(tmp.dir, 'data'));
    const acl = parseAcl(JSON.stringify({ version: 1, rules: [
      { resources: ['**'], actions: ['store', 'retrieve', 'list'], measurements: [Buffer.from(clientMeasurement).toString('hex')] },
      { resources: ['**'], actions: ['list'], roles: ['operator'] },
    ] }));
    const started = await startKeyServer({
      store, domain: domain.name, policyCert: domain.policyCert, backend, acl, host: '127.0.0.1', port: 0,
      limits: { maxRequestsPerConnection: PER_CONNECTION },
      log: (r) => void ((r as { event?: string }).event === 'closed' && closed.push(r)),
    });
    server = started.server;
    options = {
      host: '127.0.0.1', port: server.address.port, identity: machineIdentity(domain, clientLeaf), policyCert: domain.policyCert,
      serverMeasurements: [started.identity.measurementHex], requestsPerConnection: PER_CONNECTION,
    };
    const role = await generateKeyPair('p256');
    operator = {
      key: role.privateKey,
      chain: [await issueRoleCert({ policyKey: domain.policyKey, policyCert: domain.policyCert, subjectPublicKey: role.publicKey, role: 'operator', domain: domain.name, validitySeconds: 3600 })],
    };
  });
  after(async () => {
    await server?.close();
    await backend?.close();
    await store?.close();
    tmp?.cleanup();
  });

  it('answers 23 stores made at once, then 23 retrieves made at once, each with its own value, over several connections', async () => {
    const client = await KeyClient.connect(options);
    const values = Array.from({ length: 23 }, () => randomBytes(32));
    try {
      const versions = await Promise.all(values.map((v, i) => client.store(`limit/${i}`, v)));
      expect(versions).to.deep.equal(values.map(() => 1));
      const entries = await Promise.all(values.map((_, i) => client.retrieve(`limit/${i}`)));
      expect(entries.map((e) => Buffer.from(e.blob).toString('hex'))).to.deep.equal(values.map((v) => Buffer.from(v).toString('hex')));
    } finally {
      await client.close();
    }
    // 46 requests: nine connections used up and closed by the server, every request answered.
    expect(closed.filter((c) => c.reason === 'max-requests')).to.have.length(9);
    expect(closed.every((c) => c.requests === c.answered)).to.equal(true);
  });

  it('sends both halves of a challenged request on one connection, 12 at once past the limit', async () => {
    const client = await KeyClient.connect({ ...options, credential: operator });
    try {
      const listings = await Promise.all(Array.from({ length: 12 }, () => client.list('limit/')));
      for (const names of listings) expect(names.map((i) => i.name)).to.include('limit/22');
    } finally {
      await client.close();
    }
  });

  it('answers every request made before close, those waiting for a new connection too, and sends none made after it', async () => {
    const client = await KeyClient.connect(options);
    closed.length = 0;
    // 12 at once: 5 on this connection, 5 on the next, 2 on a third, which close must not send on the second.
    const made = Array.from({ length: 12 }, (_, i) => client.retrieve(`limit/${i}`).then((e) => e.tag, (e: CertifierError) => e.code));
    await client.close();
    expect(await Promise.all(made)).to.deep.equal(Array.from({ length: 12 }, (_, i) => `limit/${i}`));
    await rejects(client.retrieve('limit/0'), 'UNREACHABLE');
    expect(closed.every((c) => c.requests === c.answered), JSON.stringify(closed)).to.equal(true);
  });

  it('makes its TLS context (key, certificate and trust anchor in OpenSSL) once, not once per connection', async () => {
    const made = tls.createSecureContext;
    let contexts = 0;
    tls.createSecureContext = (o) => (contexts++, made(o));
    try {
      const client = await KeyClient.connect(options);
      try {
        // 12 retrieves: three connections, each checked again (the server's chain, its measurement).
        const entries = await Promise.all(Array.from({ length: 12 }, (_, i) => client.retrieve(`limit/${i}`)));
        expect(entries.map((e) => e.tag)).to.deep.equal(Array.from({ length: 12 }, (_, i) => `limit/${i}`));
      } finally {
        await client.close();
      }
    } finally {
      tls.createSecureContext = made;
    }
    expect(contexts).to.equal(1);
  });

  it('checks the server on every connection: a machine not pinned behind the same address is refused on the second (UNTRUSTED_PEER)', async () => {
    // Another admitted machine of the domain, not running the pinned measurement; its handler is never reached.
    const other = await issueLeaf(domain, { measurement: sha256(utf8('another program')), platform: SIMULATED_ENCLAVE });
    const impostor = await serve({
      host: '127.0.0.1', port: 0, tls: { key: other.key, cert: other.pem, ca: domain.policyPem, requestCert: true }, handler: async () => new Uint8Array(),
    });
    // The first connection goes to the key-server, every later one to the other machine.
    let connections = 0;
    const proxy = net.createServer((socket) => {
      const to = net.connect({ host: '127.0.0.1', port: (connections++ === 0 ? server : impostor).address.port });
      socket.pipe(to).pipe(socket);
      socket.on('error', () => to.destroy());
      to.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const client = await KeyClient.connect({ ...options, port: (proxy.address() as net.AddressInfo).port });
      try {
        const made = Array.from({ length: 6 }, (_, i) => client.retrieve(`limit/${i}`).then((e) => e.tag, (e: CertifierError) => e));
        const [first, ...rest] = [await Promise.all(made.slice(0, 5)), await made[5]];
        expect(first).to.deep.equal(Array.from({ length: 5 }, (_, i) => `limit/${i}`));
        const refused = rest[0] as CertifierError;
        expect(refused.code, String(refused)).to.equal('UNTRUSTED_PEER');
        expect(refused.details?.reason).to.equal('measurement-not-pinned');
      } finally {
        await client.close();
      }
      expect(connections).to.equal(2);
    } finally {
      proxy.close();
      await impostor.close();
    }
  });

  it('refuses a requestsPerConnection that leaves no room for a request, before connecting', async () => {
    for (const n of [0, 1.5, Number.NaN]) await rejects(KeyClient.connect({ ...options, requestsPerConnection: n }), 'INVALID_INPUT');
    await rejects(KeyClient.connect({ ...options, credential: operator, requestsPerConnection: 1 }), 'INVALID_INPUT');
  });
});

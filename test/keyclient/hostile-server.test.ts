// key-client against a key-server that breaks the protocol's order (answers matched to requests by
// their place on a pipelined connection must be for the resource each request named; a challenge
// comes once a request).
// The server here is a bare TLS listener on 127.0.0.1 that answers as each test scripts it.

import { expect } from 'chai';
import tls from 'node:tls';
import { SIMULATED_ENCLAVE } from '../../lib/attest/index.ts';
import { generateKeyPair, sha256, utf8 } from '../../lib/crypto/index.ts';
import { encodeFrame, FrameDecoder } from '../../lib/wire/index.ts';
import { KeyClient, type KeyClientOptions } from '../../lib/keyclient/index.ts';
import { challenge, parseKeyRequest, succeeded, type KeyRequest } from '../../lib/keyservice/protocol.ts';
import { issueRoleCert } from '../../lib/keyservice/roles.ts';
import { issueLeaf, machineIdentity, makeDomain } from '../bench/domain.ts';
import { rejects } from '../support/rejects.ts';

/** What the server does once a request has come: `asked` holds those not yet answered (the script takes them out). */
type Script = (asked: KeyRequest[], answer: (body: Uint8Array) => void, socket: tls.TLSSocket) => void;

describe('keyclient: a key-server that breaks the order of the protocol', function () {
  this.timeout(30_000);
  let script: Script = () => {};
  let server: tls.Server;
  let options: KeyClientOptions;
  let credential: NonNullable<KeyClientOptions['credential']>;

  before(async () => {
    const domain = await makeDomain('hostile');
    const own = await issueLeaf(domain, { measurement: sha256(utf8('key-server')), platform: SIMULATED_ENCLAVE });
    const machine = await issueLeaf(domain, { measurement: sha256(utf8('key-client')), platform: SIMULATED_ENCLAVE });
    server = tls.createServer({ key: own.key.export({ type: 'pkcs8', format: 'pem' }), cert: own.pem, ca: domain.policyPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (socket) => {
      const frames = new FrameDecoder();
      const asked: KeyRequest[] = [];
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        for (const frame of frames.read(chunk).frames) asked.push(parseKeyRequest(frame));
        script(asked, (body) => socket.write(encodeFrame(body)), socket);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    options = { host: '127.0.0.1', port, identity: machineIdentity(domain, machine), policyCert: domain.policyCert };
    const role = await generateKeyPair('p256');
    credential = {
      key: role.privateKey,
      chain: [await issueRoleCert({ policyKey: domain.policyKey, policyCert: domain.policyCert, subjectPublicKey: role.publicKey, role: 'operator', domain: domain.name, validitySeconds: 3600 })],
    };
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('refuses two pipelined stores answered in each other\'s place (INTEGRITY), rather than report each the other\'s version', async () => {
    script = (asked, answer) => {
      if (asked.length < 2) return;
      const [a, b] = asked.splice(0);
      answer(succeeded(b!.name, { version: 9 }));
      answer(succeeded(a!.name, { version: 1 }));
    };
    const client = await KeyClient.connect(options);
    try {
      // Both sent before either is answered: on one connection, pipelined.
      await Promise.all([rejects(client.store('a', utf8('v')), 'INTEGRITY'), rejects(client.store('b', utf8('v')), 'INTEGRITY')]);
    } finally {
      await client.close();
    }
  });

  it('refuses a second auth-challenge, sent for a request whose first was answered, as the key-server\'s fault (CHALLENGE_FAILED), answering it not', async () => {
    let asked = 0;
    script = (waiting, answer) => {
      for (const req of waiting.splice(0)) asked++, answer(challenge(req.name, new Uint8Array(32)));
    };
    const client = await KeyClient.connect({ ...options, credential });
    try {
      const e = await rejects(client.retrieve('k'), 'CHALLENGE_FAILED');
      expect(e.message).to.equal('the key-server asked again for an auth-challenge to the retrieve of "k", which it had just been given the answer to: a fault of the key-server');
      expect(asked).to.equal(2);
    } finally {
      await client.close();
    }
  });

  it('fails a request answered with a length of 4 GiB at once (FRAME_TOO_LARGE), naming the key-server and its fault, none of the length\'s bytes awaited', async () => {
    script = (waiting, _answer, socket) => {
      if (waiting.splice(0).length) socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    };
    const client = await KeyClient.connect(options);
    try {
      const e = await rejects(client.retrieve('k'), 'FRAME_TOO_LARGE');
      expect(e.message).to.equal(`${options.host}:${options.port} sent an answer announced as 4294967295 bytes, over the 1048576-byte limit on one message: a fault of the server`);
    } finally {
      await client.close();
    }
  });
});

// key-client, the real program, against a key-server that is slow or hangs up on purpose: answers
// each given just inside --timeout, a listing that never ends, a store whose answer never comes.
// The server is a stand-in (scripted-key-server.ts) answering as each test scripts it; key-client
// runs as a child, as first-boot runs it.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode, encodeFrame } from '../../lib/wire/index.ts';
import { utf8 } from '../../lib/crypto/index.ts';
import { challenge, failed, LIST_PAGE, succeeded } from '../../lib/keyservice/protocol.ts';
import { KeyClient, LIST_GATHERED } from '../../lib/keyclient/index.ts';
import { rejects } from '../support/rejects.ts';
import { ROOT, run, type RunResult } from '../support/helpers.ts';
import { reset, scriptedKeyServer, ticketlessProxy, type ScriptedKeyServer } from '../support/scripted-key-server.ts';
import { Domain, type Machine } from '../e2e/domain.ts';

describe('key-client against a slow or hostile key-server', function () {
  this.timeout(60_000);
  let d: Domain;
  let vm: Machine;
  let server: ScriptedKeyServer;
  const timers = new Set<NodeJS.Timeout>();

  before(async () => {
    ({ d, machines: { vm } } = await Domain.setUp({ vm: 'vm' }, { programs: ['vm', 'key-server'] }));
    server = await scriptedKeyServer(await d.identity(await d.certify('ks', 'key-server')), d.policyCert);
  });
  afterEach(() => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
  });
  after(async () => {
    await server?.close();
    await d?.close();
  });

  /** Runs `ms` from now, unless the test has ended. */
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => (timers.delete(t), fn()), ms);
    timers.add(t);
  };
  const common = () => ['--server', `127.0.0.1:${server.port}`, '--domain', d.name, '--policy-cert', d.policyCertFile, '--server-measurement', d.measurementHex('key-server'), ...vm.storeArgs];
  const kc = (cmd: string, args: string[]): Promise<RunResult> => run('key-client', [cmd, ...args, ...common()], { cwd: d.dir });
  const entry = (name: string) => encode('cryptstore_entry', { type: 'binary-blob', tag: name, version: 1, blob: utf8(`value of ${name}`), timeEntered: utf8('2026-12-05T00:00:00Z'), exportable: true });
  const info = (name: string) => ({ resourceName: name, version: 1, valueType: 'binary-blob', timeEntered: '2026-12-05T00:00:00Z', exportable: true, size: 32 });
  const tags = async () => (await d.store(vm, 'list-items', ['--json'])).json().items.map((i: { tag: string }) => i.tag).filter((t: string) => t.startsWith('k/'));

  it('stops a retrieve whose answers each come just inside --timeout once --deadline has passed: DEADLINE, exit 3, nothing written, the names that had not arrived named', async () => {
    // Each answer 2.5 s after the one before: inside --timeout 4 each, 7.5 s for the three. The
    // deadline (6 s from the program's start) leaves a busy machine 3.5 s to start it and connect.
    let due = 0;
    server.script = (req, answer) => later((due += 2500), () => answer(succeeded(req.name, { data: entry(req.name) })));
    const r = await kc('retrieve', ['--timeout', '4', '--deadline', '6', 'k/a', 'k/b', 'k/c']);
    expect(r.status, r.stderr).to.equal(3);
    expect(r.stderr).to.match(/^key-client: error: .*--deadline 6.*nothing was written.* \[DEADLINE\]\n$/m);
    expect(r.stderr).to.contain('"k/c"');
    expect(await tags()).to.deep.equal([]);
  });

  it('takes an answer sent one byte per TLS record, and times out one dribbled over longer than --timeout (the wait is the answer\'s, not each byte\'s): TIMEOUT, exit 3, nothing written', async () => {
    const dribble = (gapMs: number): typeof server.script => (req, _answer, socket) => {
      const frame = encodeFrame(succeeded(req.name, { data: entry(req.name) }));
      const next = (i: number) => {
        if (i >= frame.length || !socket.writable) return;
        socket.write(frame.subarray(i, i + 1)); // a write of its own: a TLS record of one byte
        later(gapMs, () => next(i + 1));
      };
      next(0);
    };
    server.script = dribble(0);
    const quick = await kc('retrieve', ['k/bytes', '--timeout', '5']);
    expect(quick.status, quick.stderr).to.equal(0);
    server.script = dribble(30); // some 100 bytes: 3 s, over --timeout 1, each byte well inside it
    const slow = await kc('retrieve', ['k/slow', '--timeout', '1']);
    expect(slow.status, slow.stderr).to.equal(3);
    expect(slow.stderr).to.contain('waiting for an answer from').and.contain('timed out after 1000 ms (--timeout 1)').and.contain('[TIMEOUT]');
    expect(await tags()).to.deep.equal(['k/bytes']);
  });

  it('keeps what arrived before --deadline with provision --allow-partial, naming the rest FAILED (DEADLINE): exit 0', async () => {
    server.script = (req, answer) => void (req.name === 'k/a' && answer(succeeded(req.name, { data: entry(req.name) })));
    const config = join(d.dir, 'late.json');
    writeFileSync(config, JSON.stringify({ secrets: [{ ID: 'k/a', Tag: 'k/a' }, { ID: 'k/late', Tag: 'k/late' }] }));
    const r = await kc('provision', ['--config', config, '--allow-partial', '--deadline', '6', '--json']);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.json().items).to.deep.equal([{ name: 'k/a', tag: 'k/a', version: 1, storeVersion: 1, written: 'new' }, { name: 'k/late', tag: 'k/late', error: 'DEADLINE' }]);
    expect(r.stderr).to.match(/could not provision "k\/late": the run's --deadline 6 passed .* \[DEADLINE\]\n/);
    expect(await tags()).to.deep.equal(['k/a', 'k/bytes']);
  });

  it('writes nothing of a provision --deadline cut off without --allow-partial (DEADLINE, exit 3, naming what had not arrived), and a run again, the server answering, writes every secret once', async () => {
    server.script = (req, answer) => void (req.name === 'k/p1' && answer(succeeded(req.name, { data: entry(req.name) })));
    const config = join(d.dir, 'cut.json');
    writeFileSync(config, JSON.stringify({ secrets: [{ ID: 'k/p1', Tag: 'k/p1' }, { ID: 'k/p2', Tag: 'k/p2' }] }));
    const cut = await kc('provision', ['--config', config, '--deadline', '6']);
    expect(cut.status, cut.stderr).to.equal(3);
    expect(cut.stderr).to.match(/^key-client: error: could not provision "k\/p2": the run's --deadline 6 passed .*; nothing was written \[DEADLINE\]\n$/m);
    expect((await tags()).filter((t: string) => t.startsWith('k/p'))).to.deep.equal([]);
    server.script = (req, answer) => answer(succeeded(req.name, { data: entry(req.name) }));
    const again = await kc('provision', ['--config', config, '--json']);
    expect(again.status, again.stderr).to.equal(0);
    expect(again.json().items.map((i: { written: string }) => i.written)).to.deep.equal(['new', 'new']);
    expect((await tags()).filter((t: string) => t.startsWith('k/p'))).to.deep.equal(['k/p1', 'k/p2']);
  });

  it('says a store whose connection was reset once it was sent may or may not have been made (OUTCOME_UNKNOWN, exit 1), not that the server was unreachable (exit 3, which a retry would answer with another version)', async () => {
    server.script = (req, _answer, socket) => void (req.action === 'store' && reset(socket));
    const r = await run('key-client', ['store', 'k/s', '--in', '-', ...common()], { cwd: d.dir, input: 'v' });
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.match(/^key-client: error: the store of "k\/s" was sent, but the connection ended \(closed or reset\) before its answer came: it may or may not have been made; .*--expected-version.* \[OUTCOME_UNKNOWN\]\n$/);
  });

  it('says the same of a store whose answer --deadline or --timeout cut off, and that a run again with --expected-version is made only if the first was not', async () => {
    server.script = () => {};
    for (const [flags, cause] of [[['--deadline', '6'], /but the run's --deadline passed before its answer came:/], [['--timeout', '3'], /but its answer did not come in time \(--timeout\):/]] as const) {
      const r = await run('key-client', ['store', 'k/s', '--in', '-', '--expected-version', '3', ...flags, ...common()], { cwd: d.dir, input: 'v' });
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.match(cause).and.match(/it may or may not have been made; run it again as it is: with --expected-version 3 it is made only if this one was not \(VERSION_CONFLICT if it was\) \[OUTCOME_UNKNOWN\]\n$/);
    }
  });

  it('says a delete whose connection was reset once it was sent may or may not have been made (OUTCOME_UNKNOWN, exit 1, as a store), and that a run again deletes what is left or finds it gone (NOT_FOUND), not that a retry may succeed', async () => {
    server.script = (req, _answer, socket) => void (req.action === 'delete' && reset(socket));
    for (const [flags, what] of [[[], 'every version of "k/d"'], [['--version', '2'], 'version 2 of "k/d"']] as const) {
      const r = await kc('delete', ['k/d', ...flags]);
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.match(/^key-client: error: the delete of .* was sent, but the connection ended \(closed or reset\) before its answer came: it may or may not have been made; .* \[OUTCOME_UNKNOWN\]\n$/);
      expect(r.stderr).to.contain(`the delete of ${what} was sent`).and.contain('NOT_FOUND').and.not.contain('a retry may succeed');
    }
  });

  it('never sends a store again on a second connection after a close that reads as a refusal but came once the store was written (a server that read it and hung up without its tickets): OUTCOME_UNKNOWN, exit 1, read once, as a delete; one with --expected-version, which cannot make a second version, goes again', async () => {
    /** A store (or `action`) through a ticketless proxy whose first connection the server closes once it has read it: the program's result, and how many the server read. */
    const sendThrough = async (extra: string[], action = 'store'): Promise<[RunResult, number]> => {
      const proxy = await ticketlessProxy(server.port);
      let stores = 0;
      server.script = (req, answer) => {
        if (req.action !== action) return;
        if (++stores === 1) return proxy.endFirst(); // read, and the connection closed as a refusal closes
        answer(succeeded(req.name, { version: (req.expectedVersion ?? 0) + 1 }));
      };
      try {
        const args = common().map((a) => (a === `127.0.0.1:${server.port}` ? `127.0.0.1:${proxy.port}` : a));
        const what = action === 'store' ? ['--in', '-'] : [];
        return [await run('key-client', [action, 'k/once', ...what, ...extra, ...args], { cwd: d.dir, input: 'v' }), stores];
      } finally {
        await proxy.close();
      }
    };
    const [r, stores] = await sendThrough([]);
    expect(stores, 'stores the server read').to.equal(1);
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.match(/^key-client: error: the store of "k\/once" was sent, but the connection ended .*: it may or may not have been made; .* \[OUTCOME_UNKNOWN\]\n$/);
    const [expected, read] = await sendThrough(['--expected-version', '3']);
    expect(expected.status, expected.stderr).to.equal(0);
    expect(read, 'stores the server read').to.equal(2);
    // A delete, which a repeat would carry out again too (another version stored since, say).
    const [deleted, deletes] = await sendThrough([], 'delete');
    expect(deletes, 'deletes the server read').to.equal(1);
    expect(deleted.status, deleted.stderr).to.equal(1);
    expect(deleted.stderr).to.match(/^key-client: error: the delete of every version of "k\/once" was sent, but the connection ended .*: it may or may not have been made; .* \[OUTCOME_UNKNOWN\]\n$/);
  });

  /**
   * As the key-server does once the ACL revokes the machine: the refusal is the connection's last
   * answer, nothing after it is read, and every request on a new connection is refused too. With
   * `challenges`, each request without an answer to a challenge gets one first, as one sent with a
   * role credential does: the machine revoked between a challenge and its answer. `stores`: the
   * stores (with `challenges`, the challenge answers) the server read.
   */
  const revokingServer = (challenges: boolean) => {
    let connections = 0;
    const stores: string[] = [];
    const [seen, refused] = [new WeakSet<object>(), new WeakSet<object>()];
    server.script = (req, answer, socket) => {
      if (!seen.has(socket)) (seen.add(socket), connections++);
      if (refused.has(socket)) return; // not read
      if (challenges && !req.challengeNonce) return answer(challenge(req.name, randomBytes(32)));
      if (req.action === 'store') stores.push(req.name);
      answer(failed(req.name, 'CERT_REVOKED'));
      refused.add(socket);
      socket.end();
    };
    return { stores, connections: () => connections };
  };

  it('takes a store cut off unread by the close after a CERT_REVOKED, the connection\'s last answer, for one never carried out: sent again on a new connection (refused CERT_REVOKED there), not OUTCOME_UNKNOWN', async () => {
    const { stores, connections } = revokingServer(false);
    const client = await KeyClient.connect({ host: '127.0.0.1', port: server.port, identity: await d.identity(vm), policyCert: d.policyCert });
    try {
      const [first, second] = [client.retrieve('k/a'), client.store('k/b', utf8('v'))];
      await rejects(first, 'CERT_REVOKED');
      const e = await rejects(second, 'CERT_REVOKED');
      expect(e.message).to.contain('the key-server refused to store "k/b"');
      expect(stores, 'stores the server read').to.deep.equal(['k/b']);
      expect(connections()).to.equal(2);
    } finally {
      await client.close();
    }
  });

  it('with a role credential, takes a store whose challenge answer was cut off by the close after a CERT_REVOKED (the machine\'s, the last answer) for one never carried out: sent again on a new connection (refused CERT_REVOKED there), not OUTCOME_UNKNOWN', async () => {
    const { stores, connections } = revokingServer(true);
    const identity = await d.identity(vm);
    // Any certificate and key do for a credential here: this server answers challenges without looking.
    const credential = { chain: [identity.certificate], key: identity.key };
    const client = await KeyClient.connect({ host: '127.0.0.1', port: server.port, identity, policyCert: d.policyCert, credential });
    try {
      const [first, second] = [client.store('k/a', utf8('v')), client.store('k/b', utf8('v'))];
      await rejects(first, 'CERT_REVOKED');
      await rejects(second, 'CERT_REVOKED');
      expect(stores, 'challenge answers the server read').to.deep.equal(['k/a', 'k/b']);
      expect(connections()).to.equal(2);
    } finally {
      await client.close();
    }
  });

  it('says of a provision whose tags\' batch failed in the cryptstore once it may have been written that the tags may be there, not that none was written, and a run again keeps what is there and writes the rest', async () => {
    server.script = (req, answer) => answer(succeeded(req.name, { data: entry(req.name) }));
    const config = join(d.dir, 'batch.json');
    const file = join(d.dir, 'batch-file');
    writeFileSync(config, JSON.stringify({ secrets: [{ ID: 'k/tag', Tag: 'k/tag' }, { ID: 'k/file', LocalPath: file }] }));
    const failing = await run('key-client', ['provision', '--config', config, ...common()], { cwd: d.dir, env: { NODE_OPTIONS: `--import ${join(ROOT, 'test/support/level-put-fails.mjs')}`, LEVEL_BATCH_FAILS: 'after-write' } });
    expect(failing.status, failing.stderr).to.equal(1);
    expect(failing.stderr).to.contain('may or may not have been made').and.not.contain('no cryptstore tag was written');
    expect(failing.stderr).to.match(/the cryptstore tags \("k\/tag"\) may or may not have been written: a run again .* \[FILE_ERROR\]\n$/);
    const again = await kc('provision', ['--config', config, '--json']);
    expect(again.status, again.stderr).to.equal(0);
    expect(again.json().items).to.deep.equal([{ name: 'k/tag', tag: 'k/tag', version: 1, storeVersion: 1, written: 'unchanged' }, { name: 'k/file', file, version: 1, written: 'new' }]);
  });

  it('gathers at most LIST_GATHERED names into one array (KeyClient.list), failing INVALID_INPUT past them rather than growing for as long as a server sends pages; listEach takes any number', async () => {
    let n = 0;
    server.script = (req, answer) => {
      const resources = Array.from({ length: LIST_PAGE }, () => info(`k/${String(++n).padStart(12, '0')}`));
      answer(succeeded(req.name, { data: encode('key_service_list', { resources, nextAfter: resources.at(-1)!.resourceName }) }));
    };
    const client = await KeyClient.connect({ host: '127.0.0.1', port: server.port, identity: await d.identity(vm), policyCert: d.policyCert });
    try {
      const e = await rejects(client.list('k/'), 'INVALID_INPUT');
      expect(e.message).to.equal(`the key-server's listing of "k/" holds more than ${LIST_GATHERED.toLocaleString('en-US')} names, the most a listing gathers into memory: list them page by page (KeyClient.listEach, as key-client list does)`);
      expect(n, 'pages asked for').to.equal(LIST_GATHERED + LIST_PAGE);
    } finally {
      await client.close();
    }
  });

  it('stops a listing that never ends (a page after every page, at once) once --deadline has passed: DEADLINE, exit 3, the names given until then written', async () => {
    let n = 0;
    server.script = (req, answer) => {
      const name = `k/${String(++n).padStart(12, '0')}`;
      answer(succeeded(req.name, { data: encode('key_service_list', { resources: [info(name)], nextAfter: name }) }));
    };
    const r = await kc('list', ['k/', '--deadline', '6']);
    expect(r.status, r.stderr).to.equal(3);
    expect(r.stderr).to.match(/--deadline 6.* \[DEADLINE\]\n$/);
    expect(r.out.split('\n')[0]).to.match(/^k\/000000000001\tv1\t/);
  });
});

// The provisioning config (key-client provision --config) and where fetched secrets may go: the
// catalogue of configs refused before any connection, with the problem each must report, and
// keepAll refusing, before writing anything, destinations that would collide or overwrite the
// machine's identity.

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';
import { destinationProblems, keepAll, parseProvisionConfig, provision, sweepDestinations, type KeyClient, type Outcome } from '../../lib/keyclient/index.ts';
import type { ValidEntry } from '../../lib/wire/index.ts';
import { encodeKeyRequest } from '../../lib/keyservice/protocol.ts';
import { rejects } from '../support/rejects.ts';
import { utf8Text } from '../../lib/util/json.ts';
import { tempDir } from '../support/helpers.ts';
import { chmodSync, chownSync, existsSync, mkdirSync, promises as fsp, readdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

const config = (secrets: unknown) => JSON.stringify({ secrets });

function problemOf(text: string): string {
  try {
    parseProvisionConfig(text);
  } catch (e) {
    expect(e).to.be.instanceOf(CertifierError);
    expect((e as CertifierError).code).to.equal('INVALID_INPUT');
    return (e as CertifierError).message;
  }
  throw new Error('the config was accepted');
}

describe('keyclient: the provisioning config and where secrets may be written', () => {
  it('reads names, versions (up to 2147483647), tags, files and modes', () => {
    expect(parseProvisionConfig(config([
      { ID: 'vhd/disk-1', Tag: 'disk-1' },
      { ID: 'vhd/disk-2', Version: 3, LocalPath: '/run/keys/disk-2', Mode: '0640' },
      { ID: 'vhd/disk-3', Version: 2147483647, Tag: 'disk-3' },
    ]))).to.deep.equal([
      { name: 'vhd/disk-1', version: 0, tag: 'disk-1' },
      { name: 'vhd/disk-2', version: 3, file: '/run/keys/disk-2', mode: 0o640 },
      { name: 'vhd/disk-3', version: 2147483647, tag: 'disk-3' },
    ]);
  });

  const refused: [string, unknown, string][] = [
    ['two secrets into one tag', [{ ID: 'a', Tag: 't' }, { ID: 'b', Tag: 't' }], 'secrets[1] has the same Tag "t" as secrets[0]'],
    ['two secrets into one file, however the path is spelled', [{ ID: 'a', LocalPath: '/run/k' }, { ID: 'b', LocalPath: '/run/./x/../k' }], 'secrets[1] has the same LocalPath "/run/./x/../k" as secrets[0]'],
    ['the tag of the machine\'s key', [{ ID: 'a', Tag: 'datica-private-auth-key' }], 'secrets[0].Tag "datica-private-auth-key" is where init-trust keeps this machine\'s identity'],
    ['an identity tag with an invisible character, shown escaped', [{ ID: 'a', Tag: 'x\u200e-private-auth-key' }], 'secrets[0].Tag "x\\u200e-private-auth-key" is where init-trust keeps'],
    ['the tag of the machine\'s certificate, any domain', [{ ID: 'a', Tag: 'other-admission-certificate' }], 'secrets[0].Tag "other-admission-certificate" is where init-trust keeps'],
    ['no secrets', [], 'needs a non-empty "secrets" list'],
    ['an unknown field', [{ ID: 'a', Tag: 't', Path: 'x' }], 'secrets[0] has unknown field "Path"'],
    ['a list where a secret goes', [[{ ID: 'a', Tag: 't' }]], 'secrets[0] is not an object'],
    ['both destinations', [{ ID: 'a', Tag: 't', LocalPath: '/x' }], 'secrets[0] needs exactly one of "Tag" or "LocalPath"'],
    ['an empty name', [{ ID: '', Tag: 't' }], 'secrets[0].ID is empty'],
    ['a tag too long, saying why', [{ ID: 'a', Tag: 't'.repeat(257) }], 'secrets[0].Tag is longer than 256'],
    ['a mode for a tag, which has none', [{ ID: 'a', Tag: 't', Mode: '0600' }], 'secrets[0].Mode applies to a LocalPath, not a Tag'],
    ['a path holding NUL', [{ ID: 'a', LocalPath: 'out/a\u0000b' }], 'secrets[0].LocalPath must be a path (text without NUL)'],
    ['the tag of a key-server\'s storage key', [{ ID: 'a', Tag: 'key-server-storage-key' }], 'is where a key-server keeps its storage key'],
    ['the storage key\'s name as the ID, into a file', [{ ID: 'key-server-storage-key', LocalPath: '/x' }], 'secrets[0].ID "key-server-storage-key" is a key-server\'s storage key'],
    ['a negative version', [{ ID: 'a', Version: -1, Tag: 't' }], 'secrets[0].Version must be a whole number'],
    ['a version past int32 (it would wrap to another version on the wire)', [{ ID: 'a', Version: 4294967297, Tag: 't' }], 'secrets[0].Version must be a whole number from 0 (latest) to 2147483647'],
    ['a version of 2^31', [{ ID: 'a', Version: 2147483648, Tag: 't' }], 'secrets[0].Version must be a whole number from 0'],
    ['a mode that is not octal', [{ ID: 'a', LocalPath: '/x', Mode: '0999' }], 'secrets[0].Mode must be an octal string'],
    ['a mode open to every user', [{ ID: 'a', LocalPath: '/x', Mode: '0644' }], 'secrets[0].Mode 0644 lets every user of the machine at the secret'],
    ['a mode others may write', [{ ID: 'a', LocalPath: '/x', Mode: '602' }], 'secrets[0].Mode 602 lets every user'],
    ['a mode its group may write', [{ ID: 'a', LocalPath: '/x', Mode: '0660' }], 'secrets[0].Mode 0660 lets the file\'s group change the secret'],
    ['a mode its owner cannot read', [{ ID: 'a', LocalPath: '/x', Mode: '0200' }], 'secrets[0].Mode 0200 does not let the file\'s owner read the secret'],
    ['no mode at all', [{ ID: 'a', LocalPath: '/x', Mode: '0000' }], 'does not let the file\'s owner read'],
    ['an executable mode', [{ ID: 'a', LocalPath: '/x', Mode: '0700' }], 'secrets[0].Mode 0700 makes the secret executable'],
    ['a null version (not "latest")', [{ ID: 'a', Version: null, Tag: 't' }], 'secrets[0].Version must be a whole number'],
    ['a LocalPath of "-"', [{ ID: 'a', LocalPath: '-' }], 'secrets[0].LocalPath "-" would be a file named "-"'],
  ];
  for (const [what, secrets, problem] of refused) {
    it(`refuses ${what}`, () => {
      expect(problemOf(config(secrets))).to.contain(problem);
    });
  }

  it('refuses a field beside "secrets" (a misspelt list would be skipped), and lists at most 20 problems', () => {
    expect(problemOf(JSON.stringify({ secrets: [{ ID: 'a', Tag: 't' }], Secrets: [{ ID: 'b', Tag: 'u' }] }))).to.contain('the config has unknown field "Secrets"');
    const many = problemOf(config(Array.from({ length: 100 }, () => ({ ID: 'a', Version: -1, Tag: 't' }))));
    expect(many.match(/must be a whole number/g)).to.have.length(20);
    expect(many).to.match(/; and \d+ more$/);
  });

  it('takes the modes a secret may have: 0600, 0400, and 0640 or 0440 for a group', () => {
    for (const Mode of ['0600', '0400', '0640', '0440', '600']) {
      expect(parseProvisionConfig(config([{ ID: 'a', LocalPath: '/x', Mode }]))[0]!.mode, Mode).to.equal(parseInt(Mode, 8));
    }
  });

  it('refuses a config that is not UTF-8 rather than writing to a path with U+FFFD in it', () => {
    const bytes = new Uint8Array([...Buffer.from('{"secrets":[{"ID":"a","LocalPath":"out/'), 0xff, ...Buffer.from('"}]}')]);
    expect(() => utf8Text(bytes, 'the provisioning config c.json')).to.throw('the provisioning config c.json is not UTF-8 text');
    expect(utf8Text(Buffer.from('{"é":1}'), 'x')).to.equal('{"é":1}');
  });

  it('refuses two secrets into one file through a linked directory', () => {
    const tmp = tempDir();
    try {
      mkdirSync(join(tmp.dir, 'out'));
      symlinkSync(join(tmp.dir, 'out'), join(tmp.dir, 'link'));
      const problems = destinationProblems([{ name: 'a', version: 0, file: join(tmp.dir, 'out', 'k') }, { name: 'b', version: 0, file: join(tmp.dir, 'link', 'k') }]);
      expect(problems).to.have.length(1);
      expect(problems[0]).to.contain('secrets[1] has the same LocalPath');
    } finally {
      tmp.cleanup();
    }
  });

  it('refuses a version the wire cannot carry before encoding a request (INVALID_INPUT)', () => {
    for (const version of [2 ** 31, 2 ** 32 + 1, -1, 1.5]) {
      expect(() => encodeKeyRequest({ action: 'retrieve', name: 'a', version })).to.throw(CertifierError).with.property('code', 'INVALID_INPUT');
      expect(() => encodeKeyRequest({ action: 'store', name: 'a', expectedVersion: version })).to.throw(CertifierError).with.property('code', 'INVALID_INPUT');
    }
    encodeKeyRequest({ action: 'retrieve', name: 'a', version: 2 ** 31 - 1 });
  });

  it('allows one name fetched into two different places', () => {
    expect(destinationProblems([{ name: 'a', version: 0, tag: 'x' }, { name: 'a', version: 0, file: '/run/a' }])).to.deep.equal([]);
  });

  it('keepAll writes nothing, and opens nothing, when two outcomes share a tag or one is an identity tag', async () => {
    const entry: ValidEntry = { tag: 'a', type: 'binary-blob', version: 1, timeEntered: '', blob: new Uint8Array([1]), exportable: true };
    const collide: Outcome[] = [{ spec: { name: 'a', version: 0, tag: 't' }, entry }, { spec: { name: 'b', version: 0, tag: 't' }, entry }];
    // No store at all: the refusal comes before any use of it.
    expect((await rejects(keepAll(undefined, collide), 'INVALID_INPUT')).message).to.contain('nothing was written');
    const identity: Outcome[] = [{ spec: { name: 'a', version: 0, tag: 'x-private-auth-key' }, entry }];
    await rejects(keepAll(undefined, identity), 'INVALID_INPUT');
  });

  it('keepAll says once that nothing was written when a LocalPath is a symbolic link', async () => {
    const tmp = tempDir('keepall-');
    try {
      symlinkSync('elsewhere', join(tmp.dir, 'link'));
      const entry: ValidEntry = { tag: 'a', type: 'binary-blob', version: 1, timeEntered: '', blob: new Uint8Array([7]), exportable: true };
      const e = await rejects(keepAll(undefined, [{ spec: { name: 'a', version: 0, file: join(tmp.dir, 'link') }, entry }]), 'FILE_ERROR');
      expect(e.message).to.match(/it is a symbolic link \(to elsewhere\); name the file itself; nothing was written$/);
    } finally {
      tmp.cleanup();
    }
  });

  it('a re-run leaves a LocalPath already holding the value alone even where its directory cannot be written (a read-only file system)', async function () {
    const tmp = tempDir('keepall-');
    const dir = join(tmp.dir, 'ro');
    mkdirSync(dir);
    const file = join(dir, 'secret');
    writeFileSync(file, new Uint8Array([7]), { mode: 0o600 });
    // A directory no one may write in, root included: immutable (chattr), where the file system
    // allows it; otherwise, for a user other than root, its mode.
    const immutable = spawnSync('chattr', ['+i', dir]).status === 0;
    if (!immutable) {
      if (process.getuid?.() === 0) {
        tmp.cleanup();
        this.skip();
      }
      chmodSync(dir, 0o555);
    }
    try {
      const entry = (b: number): ValidEntry => ({ tag: 'a', type: 'binary-blob', version: 1, timeEntered: '', blob: new Uint8Array([b]), exportable: true });
      const same: Outcome[] = [{ spec: { name: 'a', version: 0, file }, entry: entry(7) }];
      await keepAll(undefined, same);
      expect(same[0]!.written).to.equal('unchanged');
      // A new value there cannot be written: refused, as before, saying where.
      expect((await rejects(keepAll(undefined, [{ spec: { name: 'a', version: 0, file }, entry: entry(8) }]), 'FILE_ERROR')).message).to.contain(`cannot write in ${dir}`);
    } finally {
      if (immutable) spawnSync('chattr', ['-i', dir]);
      else chmodSync(dir, 0o755);
      tmp.cleanup();
    }
  });

  it('sweepDestinations removes what a killed run left beside a LocalPath, and names what is too new to go or could not be removed', async function () {
    const tmp = tempDir('keepall-');
    const now = Date.now;
    try {
      const file = join(tmp.dir, 'secret');
      writeFileSync(file, new Uint8Array([7]), { mode: 0o600 });
      // Left by a run killed while replacing it: the new value's temporary file (written long
      // ago), and the previous value kept aside (just now: its ctime is when it was made).
      const tmpFile = join(tmp.dir, '.secret.0123456789ab.tmp');
      const kept = join(tmp.dir, '.secret.ba9876543210.old');
      for (const f of [tmpFile, kept]) writeFileSync(f, 'old secret');
      utimesSync(tmpFile, new Date(now() - 3_600_000), new Date(now() - 3_600_000));
      const run = async () => (await sweepDestinations([{ name: 'a', version: 0, file }, { name: 'b', version: 0, tag: 'b' }], undefined))[0]?.left;
      const left = await run();
      expect(left?.map((l) => l.path)).to.deep.equal([kept]);
      expect(left![0]!.removableAfter.getTime()).to.be.within(now() + 9 * 60_000, now() + 10 * 60_000);
      expect(left![0]!.notRemoved).to.equal(undefined);
      expect(readdirSync(tmp.dir).sort()).to.deep.equal(['.secret.ba9876543210.old', 'secret']);
      // A run eleven minutes later takes the kept value too, unless its directory cannot be
      // written (immutable, or a read-only mount): then it is named, with why.
      const later = now() + 11 * 60_000;
      Date.now = () => later;
      if (spawnSync('chattr', ['+i', tmp.dir]).status === 0) {
        try {
          expect(await run()).to.deep.equal([{ path: kept, removableAfter: left![0]!.removableAfter, notRemoved: 'permission denied' }]);
        } finally {
          spawnSync('chattr', ['-i', tmp.dir]);
        }
      }
      expect(await run()).to.equal(undefined);
      expect(readdirSync(tmp.dir)).to.deep.equal(['secret']);
    } finally {
      Date.now = now;
      tmp.cleanup();
    }
  });

  it('keepAll sweeps what a killed run left beside a LocalPath it writes, unless the caller swept it already (swept)', async () => {
    const tmp = tempDir('keepall-');
    try {
      const file = join(tmp.dir, 'secret');
      const stale = join(tmp.dir, '.secret.0123456789ab.tmp');
      const entry = (b: number): ValidEntry => ({ tag: 'a', type: 'binary-blob', version: 1, timeEntered: '', blob: new Uint8Array([b]), exportable: true });
      writeFileSync(stale, 'old secret');
      utimesSync(stale, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
      await keepAll(undefined, [{ spec: { name: 'a', version: 0, file }, entry: entry(7) }], { swept: true });
      expect(readdirSync(tmp.dir).sort()).to.deep.equal(['.secret.0123456789ab.tmp', 'secret']);
      await keepAll(undefined, [{ spec: { name: 'a', version: 0, file }, entry: entry(8) }]);
      expect(readdirSync(tmp.dir)).to.deep.equal(['secret']);
    } finally {
      tmp.cleanup();
    }
  });

  it('keepAll gives a file it writes its own group, or a set-group-ID directory\'s: a file it replaces keeps no group of its own, one it leaves alone does (as the README says)', async function () {
    if (process.getuid?.() !== 0) this.skip(); // chown to another group
    const tmp = tempDir('keepall-');
    try {
      const entry = (b: number): ValidEntry => ({ tag: 'a', type: 'binary-blob', version: 1, timeEntered: '', blob: new Uint8Array([b]), exportable: true });
      const keep = (file: string, b: number) => keepAll(undefined, [{ spec: { name: 'a', version: 0, file, mode: 0o640 }, entry: entry(b) }]);
      const app = 4242;
      const plain = join(tmp.dir, 'plain');
      const shared = join(tmp.dir, 'shared');
      mkdirSync(plain, { mode: 0o750 });
      mkdirSync(shared, { mode: 0o750 });
      chmodSync(plain, 0o750); // not set-group-ID, even under a temporary directory that is
      chownSync(shared, 0, app);
      chmodSync(shared, 0o2750);
      for (const dir of [plain, shared]) {
        writeFileSync(join(dir, 's'), new Uint8Array([7]), { mode: 0o640 });
        chownSync(join(dir, 's'), 0, app);
      }
      await keep(join(plain, 's'), 7);
      expect(statSync(join(plain, 's')).gid, 'left alone').to.equal(app);
      await keep(join(plain, 's'), 8);
      expect(statSync(join(plain, 's')).gid, 'replaced: the chgrp undone').to.equal(process.getgid!());
      await keep(join(shared, 's'), 8);
      expect(statSync(join(shared, 's')).gid, 'replaced in a set-group-ID directory').to.equal(app);
    } finally {
      tmp.cleanup();
    }
  });

  it('keepAll undoes the files it put in place when the batch of tags after them fails', async () => {
    const tmp = tempDir('keepall-');
    try {
      const file = join(tmp.dir, 'secret');
      const entry: ValidEntry = { tag: 'a', type: 'binary-blob', version: 1, timeEntered: '', blob: new Uint8Array([7]), exportable: true };
      // A store whose batch fails (a full disk): a stand-in for what the cryptstore reports then.
      const failing = {
        get: async () => Promise.reject(new CertifierError('NOT_FOUND', 'none')),
        putAll: async () => Promise.reject(new CertifierError('FILE_ERROR', 'cannot write the cryptstore: ENOSPC')),
      } as unknown as Cryptstore;
      const outcomes: Outcome[] = [{ spec: { name: 'a', version: 0, file }, entry }, { spec: { name: 'b', version: 0, tag: 'b' }, entry }];
      const e = await rejects(keepAll(failing, outcomes), 'FILE_ERROR');
      expect(e.message).to.contain('cannot write the cryptstore: ENOSPC; nothing was written; no cryptstore tag was written');
      expect(existsSync(file)).to.equal(false);
    } finally {
      tmp.cleanup();
    }
  });

  it('a re-run leaves a Tag alone only where its newest version holds the value as provision keeps it: same bytes, same type, not exportable', async () => {
    const tmp = tempDir('keepall-');
    const store = await Cryptstore.create(join(tmp.dir, 'store'), new KeyFileProtector(randomBytes(32)));
    try {
      const blob = new Uint8Array([1, 2, 3]);
      const entry: ValidEntry = { tag: 'k', type: 'binary-blob', version: 1, timeEntered: '', blob, exportable: true };
      const keep = async (tag: string) => {
        const outcomes: Outcome[] = [{ spec: { name: 'k', version: 0, tag }, entry }];
        await keepAll(store, outcomes);
        return [outcomes[0]!.written, outcomes[0]!.storeVersion];
      };
      await store.put('same', blob, { type: 'binary-blob' });
      expect(await keep('same'), 'held as provision keeps it').to.deep.equal(['unchanged', 1]);
      await store.put('typed', blob, { type: 'other' });
      expect(await keep('typed'), 'the same bytes under another type').to.deep.equal(['new', 2]);
      await store.put('exportable', blob, { type: 'binary-blob', exportable: true });
      expect(await keep('exportable'), 'the same bytes, exportable').to.deep.equal(['new', 2]);
      for (const tag of ['typed', 'exportable']) expect(await store.get(tag)).to.deep.include({ version: 2, type: 'binary-blob', exportable: false });
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });

  it('provision stores a secret kept under a Tag as not exportable, even when the key server holds it exportable', async () => {
    const tmp = tempDir('keepall-');
    const store = await Cryptstore.create(join(tmp.dir, 'store'), new KeyFileProtector(randomBytes(32)));
    try {
      const entry: ValidEntry = { tag: 'db/password', type: 'binary-blob', version: 1, timeEntered: '', blob: new Uint8Array([1, 2, 3]), exportable: true };
      const client = { retrieve: async () => entry } as unknown as KeyClient;
      await provision(client, store, [{ name: 'db/password', version: 0, tag: 'db/password' }]);
      expect((await store.list()).map((e) => [e.tag, e.exportable])).to.deep.equal([['db/password', false]]);
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });

  it('provision names the first 20 secrets it could not fetch, and how many more, when none arrived', async () => {
    const client = { retrieve: async () => { throw new CertifierError('NOT_FOUND', 'none'); } } as unknown as KeyClient;
    const specs = Array.from({ length: 960 }, (_, i) => ({ name: `missing/${i}`, version: 0, tag: `missing/${i}` }));
    const e = await rejects(provision(client, { has: async () => false } as unknown as Cryptstore, specs), 'NOT_FOUND');
    expect(e.message).to.contain('"missing/19"; and 940 more: none; nothing was written').and.not.to.contain('"missing/20"');
  });

  it('provision names each secret\'s code when they differ from the one its error has, and none when all are that one', async () => {
    const specs = ['a', 'b'].map((name) => ({ name, version: 0, tag: name }));
    const fails = (codes: Record<string, 'NOT_FOUND' | 'ACL_DENIED'>) => ({ retrieve: async (name: string) => { throw new CertifierError(codes[name]!, `refused ${name}`); } }) as unknown as KeyClient;
    const none = { has: async () => false } as unknown as Cryptstore;
    expect((await rejects(provision(fails({ a: 'NOT_FOUND', b: 'ACL_DENIED' }), none, specs), 'NOT_FOUND')).message).to.equal('could not provision "a" (NOT_FOUND); "b" (ACL_DENIED); nothing was written');
    expect((await rejects(provision(fails({ a: 'ACL_DENIED', b: 'ACL_DENIED' }), none, specs), 'ACL_DENIED')).message).to.equal('could not provision "a"; "b"; nothing was written');
  });

  it('provision gives the reason once when every secret failed for the same one (the connection timed out or closed), not only the names', async () => {
    const specs = ['a', 'b'].map((name) => ({ name, version: 0, tag: name }));
    const cut = { retrieve: async () => { throw new CertifierError('TIMEOUT', 'waiting for an answer from 127.0.0.1:8120 timed out after 2000 ms'); } } as unknown as KeyClient;
    const e = await rejects(provision(cut, { has: async () => false } as unknown as Cryptstore, specs), 'TIMEOUT');
    expect(e.message).to.equal('could not provision "a"; "b": waiting for an answer from 127.0.0.1:8120 timed out after 2000 ms; nothing was written');
  });

  it('provision refuses, before fetching anything, a LocalPath in a directory (or under one) that its group or other users may write in without the sticky bit: they could replace the secret', async () => {
    const tmp = tempDir('keepall-');
    try {
      let fetched = 0;
      const entry: ValidEntry = { tag: 'a', type: 'binary-blob', version: 1, timeEntered: '', blob: new Uint8Array([7]), exportable: true };
      const client = { retrieve: async () => { fetched++; return entry; } } as unknown as KeyClient;
      const dir = (name: string, mode: number) => {
        mkdirSync(join(tmp.dir, name));
        chmodSync(join(tmp.dir, name), mode);
        return join(tmp.dir, name);
      };
      const open = dir('open', 0o777);
      const group = dir('group', 0o770);
      mkdirSync(join(open, 'private'), { mode: 0o700 });
      for (const [file, who, mode] of [[join(open, 'k'), 'other users', '0777'], [join(group, 'k'), 'its group', '0770'], [join(open, 'private', 'k'), 'other users', '0777']] as const) {
        const e = await rejects(provision(client, undefined, [{ name: 'a', version: 0, file }]), 'FILE_ERROR');
        expect(e.message, file).to.equal(`cannot write ${file}: ${file.startsWith(group) ? group : open} is writable by ${who} (mode ${mode}), who could replace what is written there; chmod go-w it, or use another directory; nothing was written`);
        expect(existsSync(file), file).to.equal(false);
      }
      expect(fetched).to.equal(0);
      // A sticky directory (as /tmp) keeps each user's files their own.
      const sticky = dir('sticky', 0o1777);
      const outcomes = await provision(client, undefined, [{ name: 'a', version: 0, file: join(sticky, 'k') }, { name: 'a', version: 0, file: join(dir('mine', 0o755), 'k') }]);
      expect(outcomes.map((x) => x.written)).to.deep.equal(['new', 'new']);
      // Another user's (not root's) could be replaced by its owner, whatever its mode (only root can give one away).
      if (process.getuid?.() === 0) {
        const theirs = dir('theirs', 0o755);
        chownSync(theirs, 65534, 65534);
        const e = await rejects(provision(client, undefined, [{ name: 'a', version: 0, file: join(theirs, 'k') }]), 'FILE_ERROR');
        expect(e.message).to.equal(`cannot write ${join(theirs, 'k')}: ${theirs} belongs to another user (uid 65534), who could replace what is written there; use a directory of your own (or root's); nothing was written`);
        expect(existsSync(join(theirs, 'k'))).to.equal(false);
      }
    } finally {
      tmp.cleanup();
    }
  });

  it('provision looks at the directories above its LocalPaths once a run, however many LocalPaths share them, and again on the next run', async () => {
    const tmp = tempDir('provision-dirs-');
    const stat = fsp.stat;
    try {
      const entry: ValidEntry = { tag: 'a', type: 'binary-blob', version: 1, timeEntered: '', blob: new Uint8Array([7]), exportable: true };
      const client = { retrieve: async () => entry } as unknown as KeyClient;
      mkdirSync(join(tmp.dir, 'secrets'));
      const specs = Array.from({ length: 40 }, (_, i) => ({ name: 'a', version: 0, file: join(tmp.dir, 'secrets', `k${i}`) }));
      // The directory above the LocalPaths' is looked at by that check alone.
      const seen: string[] = [];
      fsp.stat = ((p: string, ...rest: []) => (seen.push(String(p)), stat(p, ...rest))) as typeof fsp.stat;
      expect((await provision(client, undefined, specs)).map((x) => x.written)).to.deep.equal(specs.map(() => 'new'));
      expect(seen.filter((p) => p === tmp.dir)).to.have.length(1);
      await provision(client, undefined, specs);
      expect(seen.filter((p) => p === tmp.dir), 'looked at again').to.have.length(2);
    } finally {
      fsp.stat = stat;
      tmp.cleanup();
    }
  });

  it('provision refuses a Tag that would look like another before fetching anything, unless the store holds it already', async () => {
    const held = new Set(['old/cafe\u0301']);
    const store = { has: async (t: string) => held.has(t) } as unknown as Cryptstore;
    let fetched = 0;
    const client = { retrieve: async () => { fetched++; throw new CertifierError('NOT_FOUND', 'none'); } } as unknown as KeyClient;
    const e = await rejects(provision(client, store, [{ name: 'n', version: 0, tag: 'new/cafe\u0301' }]), 'INVALID_INPUT');
    expect(e.message).to.contain('nothing was fetched or written').and.contain('normalization form C');
    expect(fetched).to.equal(0);
    // A tag the store holds gets its new version: the run goes on to fetch.
    await rejects(provision(client, store, [{ name: 'n', version: 0, tag: 'old/cafe\u0301' }]), 'NOT_FOUND');
    expect(fetched).to.equal(1);
  });
});

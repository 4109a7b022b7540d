// lib/files: several files written all or none, checks made before work that would be lost, and
// temporary files removed when a program is interrupted.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, existsSync, promises as fsp, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmdirSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkWritable, describeErrno, dirIdentity, directoriesLookedIn, DirChecks, makeOwnDirs, makePrivateDir, modeText, ownDirProblem, readFileLimited, readSecretFile, realLocation, refuseOwnFiles, refuseReplaceable, stageFile, unmakeDirs, unmakeHeld, unmakeHeldAndDirs, writeFileAtomic, writeFilesAtomic } from '../../lib/files/index.ts';
import { supportScript, tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const text = (s: string) => new TextEncoder().encode(s);

describe('lib/files', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  it('writes several files, or none of them when one name is taken, leaving no temporary file', async () => {
    const [a, b] = [join(tmp.dir, 'a.pem'), join(tmp.dir, 'b.pem')];
    writeFileSync(b, 'old');
    await rejects(writeFilesAtomic([{ path: a, data: text('A'), exclusive: true }, { path: b, data: text('B'), exclusive: true }]), 'ALREADY_EXISTS');
    expect(readdirSync(tmp.dir)).to.deep.equal(['b.pem']);
    const missing = await rejects(writeFilesAtomic([{ path: a, data: text('A') }, { path: join(tmp.dir, 'none', 'c.pem'), data: text('C') }]), 'FILE_ERROR');
    expect(missing.message).to.contain(`c.pem: no directory ${join(tmp.dir, 'none')}`);
    expect(readdirSync(tmp.dir)).to.deep.equal(['b.pem']);
    await writeFilesAtomic([{ path: a, data: text('A'), exclusive: true }, { path: b, data: text('B') }]);
    expect([readFileSync(a, 'utf8'), readFileSync(b, 'utf8')]).to.deep.equal(['A', 'B']);
  });

  it('undoes the files already in place when a later one fails as it is put in place: a file made is removed, a file replaced comes back', async () => {
    // "here/x" is "x" through a link to the folder: both pass the checks, and the second finds the first.
    symlinkSync('.', join(tmp.dir, 'here'));
    const [x, viaLink] = [join(tmp.dir, 'x'), join(tmp.dir, 'here', 'x')];
    await rejects(writeFilesAtomic([{ path: x, data: text('key'), exclusive: true }, { path: viaLink, data: text('cert'), exclusive: true }]), 'ALREADY_EXISTS');
    expect(readdirSync(tmp.dir).sort()).to.deep.equal(['here']);
    // A replaced file comes back with its content, when a file after it cannot be put in place.
    const [kept, blocked] = [join(tmp.dir, 'kept'), join(tmp.dir, 'blocked')];
    writeFileSync(kept, 'old');
    await rejects(writeFilesAtomic([{ path: kept, data: text('new') }, { path: x, data: text('X'), exclusive: true }, { path: blocked, data: text('B'), exclusive: true }, { path: join(tmp.dir, 'here', 'blocked'), data: text('C'), exclusive: true }]), 'ALREADY_EXISTS');
    expect(readFileSync(kept, 'utf8')).to.equal('old');
    expect(readdirSync(tmp.dir).sort()).to.deep.equal(['here', 'kept']);
  });

  it('keeps a replaced file\'s previous content, and names where, when it cannot be put back', async () => {
    const path = join(tmp.dir, 'key');
    writeFileSync(path, 'old');
    const staged = await stageFile(path, text('new'));
    await staged.commit(false, true);
    rmSync(path);
    mkdirSync(path); // something in the way: the rename back fails
    const lost = await staged.undo();
    expect(lost).to.match(/could not be put back: its previous content is in .*\.key\.[0-9a-f]{12}\.old$/);
    const kept = readdirSync(tmp.dir).find((f) => f.startsWith('.key.'))!;
    expect(readFileSync(join(tmp.dir, kept), 'utf8')).to.equal('old');
  });

  it('removes the staged files after one that cannot be put in place: they may hold secrets', async () => {
    symlinkSync('.', join(tmp.dir, 'here'));
    const files = [
      { path: join(tmp.dir, 'x'), data: text('key'), exclusive: true },
      { path: join(tmp.dir, 'here', 'x'), data: text('cert'), exclusive: true },
      { path: join(tmp.dir, 'secret.key'), data: text('SECRET') },
    ];
    await rejects(writeFilesAtomic(files), 'ALREADY_EXISTS');
    expect(readdirSync(tmp.dir)).to.deep.equal(['here']);
  });

  it('leaves a replaced file in place on undo where no link could keep the previous one (a file system without hard links)', async () => {
    const path = join(tmp.dir, 'key');
    writeFileSync(path, 'old');
    const staged = await stageFile(path, text('new'));
    const link = fsp.link;
    fsp.link = async () => { throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' }); };
    try {
      await staged.commit(false, true);
    } finally {
      fsp.link = link;
    }
    expect(await staged.undo()).to.equal(undefined);
    expect(readFileSync(path, 'utf8')).to.equal('new');
  });

  it('leaves on undo a file someone else put where it made one, after the commit', async () => {
    const path = join(tmp.dir, 'key');
    const staged = await stageFile(path, text('ours'));
    await staged.commit(false, true);
    // Renamed over ours while ours still exists: theirs cannot reuse its inode number.
    writeFileSync(join(tmp.dir, 'theirs'), 'theirs');
    renameSync(join(tmp.dir, 'theirs'), path);
    await staged.undo();
    expect(readFileSync(path, 'utf8')).to.equal('theirs');
  });

  it('reads a file of exactly the limit, and refuses one a byte longer with INVALID_INPUT', async () => {
    const [full, over] = [join(tmp.dir, 'full'), join(tmp.dir, 'over')];
    writeFileSync(full, '12345678');
    writeFileSync(over, '123456789');
    for (const read of [readFileLimited, readSecretFile]) {
      expect(Buffer.from(await read(full, 8)).toString()).to.equal('12345678');
      expect((await rejects(read(over, 8), 'INVALID_INPUT')).message).to.equal(`${over} is larger than 8 bytes`);
    }
  });

  it('gives a file the mode asked for whatever the umask: 0644 and 0640 under umask 077', async () => {
    const umask = process.umask(0o077);
    try {
      await writeFileAtomic(join(tmp.dir, 'cert.pem'), text('x'), { mode: 0o644 });
      await writeFileAtomic(join(tmp.dir, 'group-secret'), text('x'), { mode: 0o640 });
    } finally {
      process.umask(umask);
    }
    expect(['cert.pem', 'group-secret'].map((f) => statSync(join(tmp.dir, f)).mode & 0o777)).to.deep.equal([0o644, 0o640]);
  });

  it('describes a failure in words, without Node\'s code and call', () => {
    const errno = (code: string, message: string) => Object.assign(new Error(message), { code });
    expect(describeErrno(errno('EACCES', "EACCES: permission denied, open 'nr.in'"))).to.equal('permission denied');
    expect(describeErrno(errno('ENOTDIR', "ENOTDIR: not a directory, open 'f/x'"))).to.equal('not a directory');
    // The disk's or a limit's as LevelDB's failures are said (describeDiskErrno).
    expect(describeErrno(errno('ENOSPC', 'ENOSPC: no space left on device, write'))).to.equal('the disk is full');
    expect(describeErrno(errno('EMFILE', "EMFILE: too many open files, scandir 'd'"))).to.equal('this process has no file descriptor left (ulimit -n, LimitNOFILE=)');
    expect(describeErrno(new Error('something else'))).to.equal('something else');
  });

  it('writes a mode in a message as four octal digits with the leading 0, as stat and chmod do, the file type left out: 0770, 0600, 1777', () => {
    expect([0o40770, 0o100600, 0o41777, 0o755, 0o104755].map(modeText)).to.deep.equal(['0770', '0600', '1777', '0755', '4755']);
  });

  it('ownDirProblem passes only a directory of this user\'s that no one else can write in', () => {
    const me = 1000;
    const table: [string, { uid: number; mode: number }, number | undefined, ReturnType<typeof ownDirProblem>][] = [
      ['private', { uid: me, mode: 0o40700 }, me, undefined],
      ['readable by all', { uid: me, mode: 0o40755 }, me, undefined],
      ['no user ids (uid undefined): the owner is not checked', { uid: 0, mode: 0o40700 }, undefined, undefined],
      ['a regular file', { uid: me, mode: 0o100600 }, me, 'not a directory'],
      ['a symbolic link (from an lstat), even to a directory of ours', { uid: me, mode: 0o120777 }, me, 'a symbolic link'],
      ['another user\'s, private to them', { uid: 65534, mode: 0o40700 }, me, "another user's"],
      ['root\'s, to a user', { uid: 0, mode: 0o40755 }, me, "another user's"],
      ['another user\'s and open to all: the owner first', { uid: 65534, mode: 0o40777 }, me, "another user's"],
      ['group-writable', { uid: me, mode: 0o40770 }, me, 'writable by its group'],
      ['writable by all', { uid: me, mode: 0o40777 }, me, 'writable by others'],
      ['sticky, as /tmp: others still plant names', { uid: me, mode: 0o41777 }, me, 'writable by others'],
      ['writable by others but not its group', { uid: me, mode: 0o40702 }, me, 'writable by others'],
      ['writable by all, with no user ids', { uid: 0, mode: 0o40777 }, undefined, 'writable by others'],
    ];
    for (const [name, st, uid, problem] of table) expect(ownDirProblem(st, uid), name).to.equal(problem);
  });

  it('makePrivateDir makes a directory 0700, and refuses one another user or group could write in, or a file in the way', async function () {
    const made = join(tmp.dir, 'a', 'b');
    await makePrivateDir(made, 'the output directory');
    expect(statSync(made).mode & 0o777).to.equal(0o700);
    await makePrivateDir(made, 'the output directory'); // its own, again
    for (const [name, mode, why] of [['open', 0o777, 'writable by other users (mode 0777)'], ['sticky', 0o1777, 'writable by other users (mode 1777)'], ['group', 0o770, 'writable by its group (mode 0770)']] as const) {
      const dir = join(tmp.dir, name);
      mkdirSync(dir);
      chmodSync(dir, mode);
      const e = await rejects(makePrivateDir(dir, 'the output directory'), 'FILE_ERROR');
      expect(e.message).to.equal(`cannot use ${dir} as the output directory: it is ${why}, who could replace what is written there; chmod go-w ${dir}, or use another directory`);
    }
    writeFileSync(join(tmp.dir, 'file'), 'x');
    expect((await rejects(makePrivateDir(join(tmp.dir, 'file'), 'the output directory'), 'FILE_ERROR')).message).to.contain('a file is in the way');
    // Another user's directory, even one private to them: only root can give one away.
    if (process.getuid?.() !== 0) return;
    const theirs = join(tmp.dir, 'theirs');
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, 65534, 65534);
    expect((await rejects(makePrivateDir(theirs, 'the output directory'), 'FILE_ERROR')).message).to.contain('it belongs to another user (uid 65534)');
  });

  it('refuseReplaceable refuses a secret in a directory, or under one, of another user than this one or root, though no one else may write in it (FILE_ERROR naming it and its owner): its owner could replace the file', async function () {
    // Only root can give a directory away.
    if (process.getuid?.() !== 0) this.skip();
    const theirs = join(tmp.dir, 'theirs');
    mkdirSync(join(theirs, 'mine'), { recursive: true, mode: 0o755 });
    chownSync(theirs, 65534, 65534);
    for (const file of [join(theirs, 'k'), join(theirs, 'mine', 'k')]) {
      const e = await rejects(refuseReplaceable(file), 'FILE_ERROR');
      expect(e.message, file).to.equal(`cannot write ${file}: ${theirs} belongs to another user (uid 65534), who could replace what is written there; use a directory of your own (or root's); nothing was written`);
    }
    // This user's (root's) and root's: taken, as is a directory not there yet.
    await refuseReplaceable(join(tmp.dir, 'k'));
    await refuseReplaceable(join(tmp.dir, 'none', 'k'));
  });

  it('refuseReplaceable given one run\'s DirChecks looks at each directory once, however many files go in it; a new run looks again (a directory may have changed)', async () => {
    const dir = join(tmp.dir, 'many');
    mkdirSync(dir);
    const stat = fsp.stat;
    const seen: string[] = [];
    fsp.stat = ((p: string, ...rest: []) => (seen.push(String(p)), stat(p, ...rest))) as typeof fsp.stat;
    try {
      const run = new DirChecks();
      for (let i = 0; i < 50; i++) await refuseReplaceable(join(dir, `k${i}`), run);
      expect(seen.filter((p) => p === dir), 'the directory').to.have.length(1);
      expect(seen.filter((p) => p === '/'), 'the root').to.have.length(1);
      chmodSync(dir, 0o777);
      await refuseReplaceable(join(dir, 'k0'), run); // the same run: as it found it
      const e = await rejects(refuseReplaceable(join(dir, 'k0'), new DirChecks()), 'FILE_ERROR');
      expect(e.message).to.contain(`${dir} is writable by other users (mode 0777)`);
    } finally {
      fsp.stat = stat;
    }
  });

  it('checkWritable refuses a taken name, a missing directory and a directory, and passes a free name', async () => {
    writeFileSync(join(tmp.dir, 'taken'), 'x');
    mkdirSync(join(tmp.dir, 'sub'));
    await rejects(checkWritable(join(tmp.dir, 'taken'), { exclusive: true }), 'ALREADY_EXISTS');
    await checkWritable(join(tmp.dir, 'taken'));
    expect((await rejects(checkWritable(join(tmp.dir, 'none', 'f')), 'FILE_ERROR')).message).to.contain('no directory');
    await rejects(checkWritable(join(tmp.dir, 'sub')), 'FILE_ERROR');
    await checkWritable(join(tmp.dir, 'free'), { exclusive: true });
    expect(readdirSync(tmp.dir).sort()).to.deep.equal(['sub', 'taken']);
  });

  it('checkWritable and the write, replacing or not (no --force), say that a name ending in "/" is a directory\'s, or that a directory is there', async () => {
    mkdirSync(join(tmp.dir, 'sub'));
    for (const write of [(p: string) => checkWritable(p, { exclusive: true }), (p: string) => writeFilesAtomic([{ path: p, data: text('secret') }]), (p: string) => writeFilesAtomic([{ path: p, data: text('secret'), exclusive: true }])]) {
      expect((await rejects(write(`${join(tmp.dir, 'sub', 'new')}/`), 'FILE_ERROR')).message).to.contain('new/: a name ending in "/" is a directory\'s; name the file itself');
      expect((await rejects(write(`${join(tmp.dir, 'none')}/.`), 'FILE_ERROR')).message).to.contain('none/.: a name ending in "/." is a directory\'s; name the file itself');
      expect((await rejects(write(`${join(tmp.dir, 'sub')}/`), 'FILE_ERROR')).message).to.contain('sub/: is a directory');
      // And what to give instead: a file's name, in it or elsewhere.
      expect((await rejects(write(join(tmp.dir, 'sub')), 'FILE_ERROR')).message).to.equal(`cannot write ${join(tmp.dir, 'sub')}: is a directory; name a file (in it, or elsewhere); nothing was written`);
    }
    expect(readdirSync(join(tmp.dir, 'sub'))).to.deep.equal([]);
  });

  it('of several files, a directory\'s name in a later one is FILE_ERROR before a taken name in an earlier one is ALREADY_EXISTS (--force would not help)', async () => {
    writeFileSync(join(tmp.dir, 'taken'), 'x');
    mkdirSync(join(tmp.dir, 'sub'));
    const files = [{ path: join(tmp.dir, 'taken'), data: text('key'), exclusive: true }, { path: `${join(tmp.dir, 'sub')}/`, data: text('cert'), exclusive: true }];
    expect((await rejects(writeFilesAtomic(files), 'FILE_ERROR')).message).to.contain('sub/: is a directory');
    // So is a directory named without the "/", which no --force replaces either.
    const named = [files[0]!, { path: join(tmp.dir, 'sub'), data: text('cert'), exclusive: true }];
    expect((await rejects(writeFilesAtomic(named), 'FILE_ERROR')).message).to.contain('sub: is a directory');
    expect((await rejects(checkWritable(join(tmp.dir, 'sub'), { exclusive: true }), 'FILE_ERROR')).message).to.contain('sub: is a directory');
    expect(readdirSync(tmp.dir).sort()).to.deep.equal(['sub', 'taken']);
  });

  it('calls what no force replaces FILE_ERROR without force too, before a taken name in an earlier file is ALREADY_EXISTS', async () => {
    writeFileSync(join(tmp.dir, 'taken'), 'x');
    writeFileSync(join(tmp.dir, 'real'), 'real');
    mkdirSync(join(tmp.dir, 'dir'));
    symlinkSync('real', join(tmp.dir, 'link'));
    symlinkSync('none', join(tmp.dir, 'dangling'));
    symlinkSync('dir', join(tmp.dir, 'dirlink'));
    execFileSync('mkfifo', [join(tmp.dir, 'fifo')]);
    const table = [
      ['link', 'a symbolic link (to real)'],
      ['dangling', 'a symbolic link (to none)'],
      ['dirlink', 'a symbolic link (to dir)'],
      ['fifo', 'a FIFO'],
      ['/dev/null', 'a device'],
    ] as const;
    const taken = { path: join(tmp.dir, 'taken'), data: text('key'), exclusive: true };
    for (const [name, what] of table) {
      const path = name.startsWith('/') ? name : join(tmp.dir, name);
      expect((await rejects(checkWritable(path, { exclusive: true }), 'FILE_ERROR')).message, name).to.contain(what);
      expect((await rejects(writeFilesAtomic([taken, { path, data: text('cert'), exclusive: true }]), 'FILE_ERROR')).message, name).to.contain(what);
    }
    expect(readdirSync(tmp.dir).sort()).to.deep.equal(['dangling', 'dir', 'dirlink', 'fifo', 'link', 'real', 'taken']);
  });

  it('replaces only regular files: a symbolic link, a FIFO or a device at the destination is refused, even with force', async () => {
    writeFileSync(join(tmp.dir, 'real'), 'real');
    symlinkSync('real', join(tmp.dir, 'link'));
    execFileSync('mkfifo', [join(tmp.dir, 'fifo')]);
    for (const [name, what] of [['link', 'symbolic link (to real)'], ['fifo', 'FIFO']] as const) {
      expect((await rejects(writeFilesAtomic([{ path: join(tmp.dir, name), data: text('secret') }]), 'FILE_ERROR')).message).to.contain(what);
      await rejects(checkWritable(join(tmp.dir, name)), 'FILE_ERROR');
    }
    expect((await rejects(checkWritable('/dev/null'), 'FILE_ERROR')).message).to.contain('a device').and.contain('--out -');
    // /dev/stdout is a link to /proc/self/fd/1: the message says what to give instead.
    symlinkSync('/proc/self/fd/1', join(tmp.dir, 'stdout'));
    expect((await rejects(checkWritable(join(tmp.dir, 'stdout')), 'FILE_ERROR')).message).to.contain('standard output is --out -');
    unlinkSync(join(tmp.dir, 'stdout'));
    expect(lstatSync(join(tmp.dir, 'link')).isSymbolicLink()).to.equal(true);
    expect(lstatSync(join(tmp.dir, 'fifo')).isFIFO()).to.equal(true);
    expect(readFileSync(join(tmp.dir, 'real'), 'utf8')).to.equal('real');
    expect(readdirSync(tmp.dir).sort()).to.deep.equal(['fifo', 'link', 'real']);
  });

  it('reads "link/.." as the kernel does: a write lands, and an own file is recognised, where the path really leads', async () => {
    mkdirSync(join(tmp.dir, 'a', 'b'), { recursive: true });
    mkdirSync(join(tmp.dir, 'r'));
    symlinkSync(join(tmp.dir, 'a', 'b'), join(tmp.dir, 'bl'));
    writeFileSync(join(tmp.dir, 'a', 'k'), 'the key');
    // bl/.. is a, not the temporary directory: a's key file is the command's own.
    expect(() => refuseOwnFiles(`${tmp.dir}/bl/../k`, { dirs: [], files: [join(tmp.dir, 'a', 'k')] })).to.throw(/which this command needs/);
    expect(() => refuseOwnFiles(`${tmp.dir}/bl/../k`, { dirs: [join(tmp.dir, 'a')], files: [] })).to.throw(/is inside/);
    // A name beginning with two dots is inside too; only the parent is not.
    expect(() => refuseOwnFiles(join(tmp.dir, 'a', '..dotdot'), { dirs: [join(tmp.dir, 'a')], files: [] })).to.throw(/is inside/);
    expect(() => refuseOwnFiles(join(tmp.dir, 'r', 'x'), { dirs: [join(tmp.dir, 'a')], files: [] })).not.to.throw();
    // And a write through it goes to a/out, its temporary file beside it.
    await writeFilesAtomic([{ path: `${tmp.dir}/bl/../out`, data: text('x') }]);
    expect(readFileSync(join(tmp.dir, 'a', 'out'), 'utf8')).to.equal('x');
    expect(existsSync(join(tmp.dir, 'out'))).to.equal(false);
  });

  it('directoriesLookedIn names every directory opening a path looks a name up in: as named, and on each link\'s way, "link/.." as the kernel reads it', async () => {
    const real = realpathSync(tmp.dir);
    const above = (dir: string) => { const all: string[] = []; for (let d = dir; ; d = dirname(d)) { all.unshift(d); if (d === dirname(d)) return all; } };
    for (const d of ['safe', 'mid', join('open', 'ks')]) mkdirSync(join(real, d), { recursive: true });
    writeFileSync(join(real, 'open', 'acl.json'), '{}');
    symlinkSync(join(real, 'open', 'acl.json'), join(real, 'mid', 'hop'));
    symlinkSync('../mid/hop', join(real, 'safe', 'acl.json')); // relative, read from safe/
    symlinkSync(join(real, 'open', 'ks'), join(real, 'safe', 'ks'));
    const at = (...p: string[]) => join(real, ...p);
    expect(await directoriesLookedIn(at('safe', 'acl.json'))).to.deep.equal([...above(real), at('safe'), at('mid'), at('open')]);
    expect(await directoriesLookedIn(`${at('safe', 'ks')}/../acl.json`), 'ks/.. is open, where the link leads').to.deep.equal([...above(real), at('safe'), at('open')]);
    const cwd = process.cwd();
    try {
      process.chdir(at('safe'));
      expect(await directoriesLookedIn('ks/x')).to.deep.equal([...above(real), at('safe'), at('open'), at('open', 'ks')]);
    } finally {
      process.chdir(cwd);
    }
    expect(await directoriesLookedIn(at('missing', 'x')), 'the walk ends where a name is missing').to.deep.equal(above(real));
    expect(await directoriesLookedIn(`${at('open', 'ks')}/../../safe/ks/../acl.json`), 'the file\'s own directory last, though looked in before').to.deep.equal([...above(real), at('safe'), at('open')]);
  });

  it('places a path under directories not there yet where making them (mkdir -p) puts it: a link after their ".." is followed (realLocation)', () => {
    const real = realpathSync(tmp.dir);
    mkdirSync(join(tmp.dir, 'real', 'deep'), { recursive: true });
    symlinkSync('real', join(tmp.dir, 'link'));
    symlinkSync('real/deep', join(tmp.dir, 'deeplink'));
    const path = `${tmp.dir}/new/../link/x/f`; // not join(), which takes the ".." as text
    const before = realLocation(path);
    mkdirSync(dirname(path), { recursive: true });
    expect(before).to.equal(join(real, 'real', 'x', 'f')).and.to.equal(realLocation(path));
    expect(realLocation(`${tmp.dir}/none/./more/../f`)).to.equal(join(real, 'none', 'f'));
    expect(realLocation(`${tmp.dir}/none/../deeplink/../f`), 'a ".." after the link, as the kernel takes it').to.equal(join(real, 'real', 'f'));
  });

  it('removes a store it made named through "link/..", where the link leads (unmakeHeld), and nothing beside the link', () => {
    mkdirSync(join(tmp.dir, 'a', 'b'), { recursive: true });
    mkdirSync(join(tmp.dir, 's'));
    writeFileSync(join(tmp.dir, 's', 'CURRENT'), 'another\'s');
    symlinkSync(join(tmp.dir, 'a', 'b'), join(tmp.dir, 'bl'));
    mkdirSync(join(tmp.dir, 'a', 's'));
    for (const f of ['CURRENT', 'LOCK', '000003.log']) writeFileSync(join(tmp.dir, 'a', 's', f), '');
    expect(unmakeHeld(`${tmp.dir}/bl/../s`, dirIdentity(join(tmp.dir, 'a', 's')))).to.equal(true);
    expect(readFileSync(join(tmp.dir, 's', 'CURRENT'), 'utf8'), 'beside the link').to.equal('another\'s');
    expect(existsSync(join(tmp.dir, 'a', 's')), 'the store made').to.equal(false);
  });

  it('removes nothing of a directory that is not the one the run made (unmakeHeld checks its identity)', () => {
    const s = join(tmp.dir, 's');
    mkdirSync(s);
    const made = dirIdentity(s);
    renameSync(s, join(tmp.dir, 'gone'));
    mkdirSync(s);
    writeFileSync(join(s, 'diary'), 'mine');
    expect(unmakeHeld(s, made)).to.equal(false);
    expect(readdirSync(s)).to.deep.equal(['diary']);
  });

  it('unmakes every directory a making made, "up/new/../sub" too, and none that is not the one it made (its identity)', async () => {
    const made = await makeOwnDirs(`${tmp.dir}/up/new/../sub`, 0o700); // not join(), which takes the .. as text
    expect(readdirSync(join(tmp.dir, 'up')).sort()).to.deep.equal(['new', 'sub']);
    renameSync(join(tmp.dir, 'up', 'new'), join(tmp.dir, 'up', 'old'));
    mkdirSync(join(tmp.dir, 'up', 'new')); // another's, in the place of the one made
    await unmakeDirs(made);
    expect(readdirSync(join(tmp.dir, 'up')).sort()).to.deep.equal(['new', 'old']);
  });

  it('unmakes the folders made for a store already gone (removed by a making that failed, when a signal comes after): gone is removed', async () => {
    const store = join(tmp.dir, 'gone-up', 'new', 'store');
    const made = await makeOwnDirs(store, 0o700);
    rmdirSync(store);
    expect(unmakeHeld(store, made.self), 'nothing left to remove').to.equal(true);
    await unmakeHeldAndDirs(store, made);
    expect(existsSync(join(tmp.dir, 'gone-up'))).to.equal(false);
  });

  it('removes temporary files a killed run left beside the file it writes, once they are old', async () => {
    const left = join(tmp.dir, '.key.0123456789ab.tmp');
    const fresh = join(tmp.dir, '.key.ba9876543210.tmp');
    const other = join(tmp.dir, '.key.notours.tmp');
    // A copy of a replaced file kept by a killed run: the previous file's (old) mtime, made just now.
    const kept = join(tmp.dir, '.key.00112233aabb.old');
    for (const f of [left, fresh, other, kept]) writeFileSync(f, 'secret');
    const old = new Date(Date.now() - 3_600_000);
    for (const f of [left, other, kept]) utimesSync(f, old, old);
    await writeFilesAtomic([{ path: join(tmp.dir, 'key'), data: text('K') }]);
    expect(readdirSync(tmp.dir).sort()).to.deep.equal(['.key.00112233aabb.old', '.key.ba9876543210.tmp', '.key.notours.tmp', 'key']);
  });

  it('writes and replaces a file whose name is as long as a name may be (255 bytes), its temporary and kept names fitting too, and sweeps what a killed run left of it', async () => {
    // A name of 240 bytes was refused "name too long": `.NAME.XXXXXXXXXXXX.tmp` is 18 bytes longer.
    for (const name of ['k'.repeat(255), 'é'.repeat(127), `${'k'.repeat(200)}é${'k'.repeat(40)}`]) {
      const dir = join(tmp.dir, String(Buffer.byteLength(name)) + name.length);
      mkdirSync(dir);
      const path = join(dir, name);
      await writeFileAtomic(path, text('A'), { exclusive: true });
      // Replaced beside another file: the previous content is kept aside (.old) until both stand.
      await writeFilesAtomic([{ path, data: text('B') }, { path: join(dir, 'other'), data: text('C') }]);
      expect(readFileSync(path, 'utf8')).to.equal('B');
      expect(readdirSync(dir).sort()).to.deep.equal([name, 'other'].sort());
      // A run killed once it had staged the file leaves its temporary file; the next write, once it is old, removes it.
      await stageFile(path, text('D'));
      const left = readdirSync(dir).filter((f) => f !== name && f !== 'other');
      expect(left).to.have.length(1);
      expect(Buffer.byteLength(left[0]!)).to.be.at.most(255);
      const old = new Date(Date.now() - 3_600_000);
      utimesSync(join(dir, left[0]!), old, old);
      await writeFileAtomic(path, text('E'));
      expect(readdirSync(dir).sort()).to.deep.equal([name, 'other'].sort());
    }
  });

  async function stagedChild(path: string, mode?: string) {
    const child = spawn(process.execPath, supportScript('stage-and-wait.ts', [path, ...(mode ? [mode] : [])]), { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    while (!out.includes('staged')) await once(child.stdout, 'data');
    return child;
  }

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`removes a staged file (it may hold a secret) when ${signal} ends the program, which still dies of the signal`, async () => {
      const path = join(tmp.dir, 'secret.out');
      const child = await stagedChild(path);
      expect(readdirSync(tmp.dir)).to.have.length(1); // the temporary file
      child.kill(signal);
      const [code, sig] = await once(child, 'exit');
      expect([code, sig]).to.deep.equal([null, signal]);
      expect(readdirSync(tmp.dir)).to.deep.equal([]);
    });
  }

  it('undoes the files of an unfinished commitAll when a signal ends the program: the replaced file comes back, the made one goes', async () => {
    const path = join(tmp.dir, 'key.pem');
    writeFileSync(path, 'old');
    const child = await stagedChild(path, 'half-committed');
    expect(readFileSync(path, 'utf8')).to.equal('new');
    child.kill('SIGTERM');
    const [code, sig] = await once(child, 'exit');
    expect([code, sig]).to.deep.equal([null, 'SIGTERM']);
    expect(readdirSync(tmp.dir)).to.deep.equal(['key.pem']);
    expect(readFileSync(path, 'utf8')).to.equal('old');
  });

  // The steps of writing A (replacing a file) and B (new, exclusive) together: link A's previous
  // content aside, rename A's new one in, link B in, unlink B's temporary name, unlink A's copy.
  // A signal waits while the files go in place: one during or after any step but the last (the
  // copy of A's previous content dropped, once all stand) leaves the old files, none of the new.
  for (const when of ['during', 'after'] as const) {
    for (const [op, n] of [['link', 1], ['rename', 1], ['link', 2], ['unlink', 1], ['unlink', 2]] as const) {
      it(`leaves both files old, or both new once all stand, when a signal comes ${when} ${op} #${n} of a commitAll, and no temporary file`, async () => {
        writeFileSync(join(tmp.dir, 'a'), 'old');
        const child = spawn(process.execPath, supportScript('signal-in-commit.ts', [tmp.dir, op, String(n), when]), { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
        const [code, sig] = await once(child, 'exit');
        expect([code, sig]).to.deep.equal([null, 'SIGTERM']);
        const state = { files: readdirSync(tmp.dir).sort(), a: readFileSync(join(tmp.dir, 'a'), 'utf8') };
        expect(state).to.deep.equal(op === 'unlink' && n === 2 ? { files: ['a', 'b'], a: 'new' } : { files: ['a'], a: 'old' });
      });
    }
  }

  for (const mode of ['handler', 'once']) {
    it(`leaves a staged file alone in a program that handles the signal itself (process.${mode === 'once' ? 'once' : 'on'}: a server finishing its work)`, async () => {
      const child = await stagedChild(join(tmp.dir, 'secret.out'), mode);
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      expect(code).to.equal(0);
      expect(readdirSync(tmp.dir)).to.have.length(1);
      expect(existsSync(join(tmp.dir, 'secret.out'))).to.equal(false);
    });
  }
});

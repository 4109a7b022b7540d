// lib/files' reading of LevelDB's failures (levelFileError), shared by the key database and the
// cryptstore: which are a file operation's, which of those are the disk's or a limit's, and what
// an operator is told of each. The shapes are classic-level's: a read's or write's error is
// LevelDB's status ("IO error: FILE: strerror", code LEVEL_IO_ERROR); a failed open's wraps it as
// its cause.

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';
import { describeDiskErrno, diskErrno, diskErrnoOfText, levelFileError, levelWriteMayHaveLanded } from '../../lib/files/index.ts';

const io = (message: string) => Object.assign(new Error(message), { code: 'LEVEL_IO_ERROR' });
const opening = (cause: Error) => Object.assign(new Error('Database failed to open'), { code: 'LEVEL_DATABASE_NOT_OPEN', cause });
const ioText = (file: string, text: string) => `IO error: /d/${file}: ${text}`;

describe('lib/files: LevelDB failures', () => {
  it('tells a failed write that may have been made (its log failed, the sync perhaps) from one refused before its record was whole', () => {
    // [shape, the failure, whether the write may have been made]
    const table: [string, unknown, boolean][] = [
      ['an I/O error on the log (its sync)', io(ioText('000003.log', 'Input/output error')), true],
      ['a full disk under the log (its sync, or its append)', io(ioText('000003.log', 'No space left on device')), true],
      ['a used-up quota under the log', io(ioText('000003.log', 'Disk quota exceeded')), true],
      ['another failure of the log', io(ioText('000003.log', 'Permission denied')), true],
      ['a file-size limit, which cuts the record short', io(ioText('000003.log', 'File too large')), false],
      ['no descriptor for a new log', io(ioText('000007.log', 'Too many open files')), false],
      ['no descriptor left in the system', io(ioText('000007.log', 'Too many open files in system')), false],
      ['a flush to a table failed earlier', io(ioText('000005.ldb', 'Input/output error')), false],
      ['the manifest failed earlier', io(ioText('MANIFEST-000001', 'No space left on device')), false],
      ['not a file\'s failure', Object.assign(new Error('Corruption: bad block in /d/000005.ldb'), { code: 'LEVEL_CORRUPTION' }), false],
      ['one of ours', new CertifierError('FILE_ERROR', 'IO error: /d/000003.log: Input/output error'), false],
    ];
    for (const [shape, e, may] of table) expect(levelWriteMayHaveLanded(e), shape).to.equal(may);
  });

  it('tells a file operation\'s failure, and the disk\'s or a limit\'s among them, from any other, whatever its shape', () => {
    // [shape, what the reader is told after "the store at /d cannot be written: ", or undefined where it is not a file's failure]
    const table: [string, unknown, string | undefined][] = [
      ['a full disk', io(ioText('000003.log', 'No space left on device')), `the disk is full: ${ioText('000003.log', 'No space left on device')}`],
      ['a used-up quota', io(ioText('000003.log', 'Disk quota exceeded')), `the disk quota is used up: ${ioText('000003.log', 'Disk quota exceeded')}`],
      ['a file size limit', io(ioText('000003.log', 'File too large')), `a file size limit is reached (ulimit -f, LimitFSIZE=): ${ioText('000003.log', 'File too large')}`],
      ['a read-only file system', io(ioText('LOCK', 'Read-only file system')), `the file system is read-only, to this process at least: a service whose unit has ProtectSystem= may write only under its ReadWritePaths=: ${ioText('LOCK', 'Read-only file system')}`],
      ['an I/O error', io(ioText('000005.ldb', 'Input/output error')), `the disk reported an I/O error: ${ioText('000005.ldb', 'Input/output error')}`],
      ['no descriptor left for the process', io(ioText('000005.ldb', 'Too many open files')), `this process has no file descriptor left (ulimit -n, LimitNOFILE=): ${ioText('000005.ldb', 'Too many open files')}`],
      ['no descriptor left in the system', io(ioText('000005.ldb', 'Too many open files in system')), `the system has no file descriptor left (fs.file-max): ${ioText('000005.ldb', 'Too many open files in system')}`],
      ['a failed open, the status its cause', opening(io(ioText('MANIFEST-000001', 'No space left on device'))), `the disk is full: ${ioText('MANIFEST-000001', 'No space left on device')}`],
      ['a status without classic-level\'s code', { cause: { message: ioText('CURRENT', 'File too large') } }, `a file size limit is reached (ulimit -f, LimitFSIZE=): ${ioText('CURRENT', 'File too large')}`],
      ['a file name holding a strerror', io('IO error: /d/No space left on device: x/000003.log: Permission denied'), 'IO error: /d/No space left on device: x/000003.log: Permission denied'],
      ['another file operation\'s (said as LevelDB says it)', io(ioText('000005.ldb', 'Permission denied')), ioText('000005.ldb', 'Permission denied')],
      ['a missing table', io(ioText('000005.ldb', 'No such file or directory')), ioText('000005.ldb', 'No such file or directory')],
      ['its lock held by another process', opening(Object.assign(new Error('IO error: lock /d/LOCK: already held by process'), { code: 'LEVEL_LOCKED' })), undefined],
      ['a damaged database', Object.assign(new Error('Corruption: bad block in /d/000005.ldb'), { code: 'LEVEL_CORRUPTION' }), undefined],
      ['a damaged database, opening', opening(Object.assign(new Error('Corruption: 1 missing files; e.g.: /d/000005.ldb'), { code: 'LEVEL_CORRUPTION' })), undefined],
      ['a missing database', opening(new Error('Invalid argument: /d: does not exist (create_if_missing is false)')), undefined],
      ['a strerror outside LevelDB\'s status', new Error('No space left on device'), undefined],
      ['one of ours, already in words', new CertifierError('FILE_ERROR', 'IO error: said already'), undefined],
      ['nothing', undefined, undefined],
    ];
    for (const [shape, e, told] of table) {
      const got = levelFileError(e, 'the store at /d', 'written');
      expect(got && [got.code, got.message], shape).to.deep.equal(told === undefined ? undefined : ['FILE_ERROR', `the store at /d cannot be written: ${told}`]);
      if (got) expect(got.cause, shape).to.equal(e);
    }
  });

  it('says what an open that failed did to the database: unchanged, and why LevelDB met the disk, only where it knows', () => {
    const opened = (text: string) => levelFileError(opening(io(ioText('MANIFEST-000009', text))), 'the store at /d', 'opened')?.message;
    const writes = 'the store at /d cannot be opened, as LevelDB writes to a store to open it (what it holds is unchanged): ';
    expect(opened('No space left on device')).to.equal(`${writes}the disk is full: ${ioText('MANIFEST-000009', 'No space left on device')}`);
    for (const text of ['Disk quota exceeded', 'File too large', 'Read-only file system']) expect(opened(text), text).to.contain(writes);
    expect(opened('Too many open files')).to.equal(`the store at /d cannot be opened (what it holds is unchanged): this process has no file descriptor left (ulimit -n, LimitNOFILE=): ${ioText('MANIFEST-000009', 'Too many open files')}`);
    expect(opened('Too many open files in system')).to.contain('/d cannot be opened (what it holds is unchanged): the system has no');
    // An I/O error may have come from anywhere, and another failure is LevelDB's alone to say.
    expect(opened('Input/output error')).to.equal(`the store at /d cannot be opened: the disk reported an I/O error: ${ioText('MANIFEST-000009', 'Input/output error')}`);
    expect(opened('Permission denied')).to.equal(`the store at /d cannot be opened: ${ioText('MANIFEST-000009', 'Permission denied')}`);
    // A read changes nothing, and a failed write may have reached the disk: neither says so.
    expect(levelFileError(io(ioText('000005.ldb', 'Too many open files')), 'the store at /d', 'read')?.message).to.equal(`the store at /d cannot be read: this process has no file descriptor left (ulimit -n, LimitNOFILE=): ${ioText('000005.ldb', 'Too many open files')}`);
  });

  it('names the same failures of a Node call by errno, in the same words', () => {
    const errno = (code: string) => Object.assign(new Error(`${code}: x, write`), { code });
    expect(['ENOSPC', 'EDQUOT', 'EFBIG', 'EROFS', 'EIO', 'EMFILE', 'ENFILE', 'EACCES', 'ENOENT'].map((c) => diskErrno(errno(c)))).to.deep.equal(['ENOSPC', 'EDQUOT', 'EFBIG', 'EROFS', 'EIO', 'EMFILE', 'ENFILE', undefined, undefined]);
    expect([diskErrno(undefined), diskErrno({ code: 'toString' }), diskErrnoOfText('Too many open files in system'), diskErrnoOfText('Permission denied')]).to.deep.equal([undefined, undefined, 'ENFILE', undefined]);
    expect(describeDiskErrno('ENOSPC')).to.equal('the disk is full');
  });
});

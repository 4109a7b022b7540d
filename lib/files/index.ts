// Files holding secrets: read with a size cap, written 0600 atomically (temporary file in the
// same directory, fsync, rename, fsync of the directory), so a crash leaves the old file or the
// new one, never half of one.
//
// errno.ts: failures in words; read.ts: reading with a cap; places.ts: where a file may go, and
// directories; write.ts: atomic writes, all-or-none commits, leftovers; signals.ts: signals while
// secrets are written; level-reopen.ts: a LevelDB database reopened after a failed write;
// level-failure.ts: a LevelDB failure that is a file operation's, in words; level-files.ts: a
// LevelDB directory's files made private and compacted; control-file.ts: a
// file that decides who gets which secret (an ACL, a provisioning config), changeable by its owner alone;
// mode.ts: a file's mode as messages write it.

export * from './errno.ts';
export * from './read.ts';
export * from './places.ts';
export * from './write.ts';
export * from './control-file.ts';
export * from './mode.ts';
export { discardUnplaced, holdingSignals } from './signals.ts';
export { LevelReopener, type OperationKind } from './level-reopen.ts';
export { describeLevelFailure, levelFileError, levelWriteMayHaveLanded } from './level-failure.ts';
export { compactRange, tightenFiles } from './level-files.ts';

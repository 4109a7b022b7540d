// A failed file operation in words: what it met, and the CertifierError a command reports.

import { dirname } from 'node:path';
import { CertifierError } from '../errors/index.ts';

/** What a failed file operation met, in a few words ("permission denied"), without Node's code and call. */
export function describeErrno(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'EEXIST') return 'already exists';
  const message = (cause as Error)?.message ?? String(cause);
  // "ENOSPC: no space left on device, write": the words between the code and the call.
  return /^E[A-Z]+: ([^,]+)/.exec(message)?.[1] ?? message;
}

/** FILE_ERROR (ALREADY_EXISTS for EEXIST): "cannot WHAT PATH: why". */
export function fileError(what: string, path: string, cause: unknown): CertifierError {
  const code = (cause as NodeJS.ErrnoException)?.code;
  // Writing, a missing name is a directory on the way: the file itself is created.
  const why = code === 'ENOENT' && what === 'write' ? `no directory ${dirname(path)}` : describeErrno(cause);
  return new CertifierError(code === 'EEXIST' ? 'ALREADY_EXISTS' : 'FILE_ERROR', `cannot ${what} ${path}: ${why}`, { cause });
}

// Reading files and standard input with a size cap; a secret file into one buffer outside the
// garbage-collected heap.

import { promises as fs, constants as C, fstatSync, type Stats } from 'node:fs';
import { CertifierError } from '../errors/index.ts';
import { fileError } from './errno.ts';

export const DEFAULT_READ_LIMIT = 64 * 1024 * 1024;

/**
 * Opens `path` to read, refusing a directory, and runs `read` on it: what either throws other than
 * a CertifierError is FILE_ERROR ("cannot read PATH: why"). The file is closed however it ends.
 */
async function withReadHandle<T>(path: string, flags: number, read: (handle: fs.FileHandle, st: Stats) => Promise<T>): Promise<T> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(path, flags);
    const st = await handle.stat();
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    return await read(handle, st);
  } catch (e) {
    if (e instanceof CertifierError) throw e;
    throw fileError('read', path, e);
  } finally {
    await handle?.close();
  }
}

/** An input over `limit`; details.limit lets a command say what the limit is for. */
const tooLarge = (path: string, limit: number) => new CertifierError('INVALID_INPUT', `${path} is larger than ${limit} bytes`, { details: { limit } });

/**
 * Reads a whole file, refusing files larger than `limit`. With `regularOnly`, anything but a
 * regular file is refused, without blocking: what a running server reads again (a policy, an ACL,
 * a revocation list on SIGHUP) must not wait in open() on a FIFO put in a file's place. `check`
 * sees the status of the file opened (not of a path another may have changed since), and may throw.
 */
export function readFileLimited(path: string, limit = DEFAULT_READ_LIMIT, o: { regularOnly?: boolean; check?: (st: Stats) => void } = {}): Promise<Uint8Array> {
  return withReadHandle(path, o.regularOnly ? C.O_RDONLY | C.O_NONBLOCK : C.O_RDONLY, async (handle, st) => {
    if (o.regularOnly && !st.isFile()) throw new CertifierError('FILE_ERROR', `cannot read ${path}: not a regular file`);
    o.check?.(st);
    if (st.size > limit) throw tooLarge(path, limit);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.alloc(Math.min(1 << 20, limit + 1 - total) || 1);
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > limit) throw tooLarge(path, limit);
      chunks.push(buf.subarray(0, bytesRead));
    }
    return new Uint8Array(Buffer.concat(chunks, total));
  });
}

/**
 * Reads a whole file holding a secret (a passphrase, a key file), refusing files larger than
 * `limit`: into one buffer, outside the garbage-collected heap (which moves what it keeps, and
 * leaves the old copy behind), and never a shared pool's. The bytes returned are a view of it, the
 * only copy: wipe() them once used. Refused, the buffer is wiped here.
 */
export async function readSecretFile(path: string, limit: number): Promise<Uint8Array> {
  const buf = new Uint8Array(new ArrayBuffer(limit + 1));
  try {
    return await withReadHandle(path, C.O_RDONLY, async (handle) => {
      let total = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buf, total, buf.length - total, null);
        total += bytesRead;
        if (bytesRead === 0 || total > limit) break;
      }
      if (total > limit) throw tooLarge(path, limit);
      return buf.subarray(0, total);
    });
  } catch (e) {
    buf.fill(0);
    throw e;
  }
}

/** Reads all of standard input, refusing more than `limit` bytes. */
export async function readStdin(limit = DEFAULT_READ_LIMIT): Promise<Uint8Array> {
  // A directory as standard input (`< .`) reads as nothing at all; say what it is instead.
  const st = (() => {
    try {
      return fstatSync(0);
    } catch {
      return undefined;
    }
  })();
  if (st?.isDirectory()) throw new CertifierError('FILE_ERROR', 'cannot read standard input: it is a directory');
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of process.stdin) {
      total += (chunk as Buffer).length;
      if (total > limit) throw tooLarge('standard input', limit);
      chunks.push(chunk as Buffer);
    }
  } catch (e) {
    if (e instanceof CertifierError) throw e;
    // Opened for writing only (`0>file`), say: EBADF.
    throw new CertifierError('FILE_ERROR', `cannot read standard input: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}

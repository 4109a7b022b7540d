// Reading another process's memory (Linux, /proc/PID/mem): how many copies of some bytes its
// writable private memory holds (the heap, Node's and V8's anonymous mappings), to check that a
// secret is wiped, not merely dropped.

import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

const CHUNK = 1 << 20;

/** The readable and writable anonymous regions (and [heap]) of `pid`, as [start, end) addresses. */
function writableRegions(pid: number): [number, number][] {
  const regions: [number, number][] = [];
  for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) rw.p \S+ \S+ 0\s*(.*)$/.exec(line);
    if (m && (m[3] === '' || m[3] === '[heap]' || m[3]!.startsWith('[anon'))) regions.push([parseInt(m[1]!, 16), parseInt(m[2]!, 16)]);
  }
  return regions;
}

/** Whether this process may read `pid`'s memory at all (EACCES or EPERM where the kernel forbids it). */
export function memoryReadable(pid: number): boolean {
  try {
    closeSync(openSync(`/proc/${pid}/mem`, 'r'));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EACCES' || (e as NodeJS.ErrnoException).code === 'EPERM') return false;
    throw e;
  }
}

/** How many times `needle` occurs in `pid`'s writable anonymous memory (stopping at `max`). */
export function copiesInMemory(pid: number, needle: Uint8Array, max = Infinity): number {
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const buf = Buffer.allocUnsafeSlow(CHUNK + needle.length);
  const target = Buffer.from(needle);
  let found = 0;
  try {
    for (const [start, end] of writableRegions(pid)) {
      // Chunks overlap by the needle's length, so a copy across two of them is still found.
      for (let at = start; at < end && found < max; at += CHUNK) {
        let n: number;
        try {
          n = readSync(fd, buf, 0, Math.min(CHUNK + needle.length, end - at), at);
        } catch {
          break; // a region unmapped meanwhile
        }
        for (let i = buf.subarray(0, n).indexOf(target); i >= 0 && i < CHUNK && found < max; i = buf.subarray(0, n).indexOf(target, i + 1)) found++;
      }
    }
  } finally {
    buf.fill(0);
    closeSync(fd);
  }
  return found;
}

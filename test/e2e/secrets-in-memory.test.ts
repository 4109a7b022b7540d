// A running key-server keeps no copy of its store's key file: read, used to open the store, and
// wiped. Checked as an attacker with the process's memory would: /proc/PID/mem of the real program.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Domain, type KeyServer } from './domain.ts';
import { copiesInMemory, memoryReadable } from '../support/process-memory.ts';

describe('e2e: secrets in a running key-server\'s memory', function () {
  let d: Domain;
  let server: KeyServer;

  before(async function () {
    if (process.platform !== 'linux') this.skip();
    ({ d, server } = await Domain.setUp({ keyserver: 'key-server' }, { serve: 'keyserver' }));
    // Where the kernel lets no process read another's memory (Yama ptrace_scope 3, some containers).
    if (!memoryReadable(server.child.pid!)) this.skip();
  });

  after(async () => {
    await d?.close();
  });

  it('holds no copy of the key file once the store is open, where the scan finds what it does hold', () => {
    const pid = server.child.pid;
    // The policy certificate stays in memory (it is checked on every connection): the scan sees it.
    expect(copiesInMemory(pid, d.policyCert.subarray(-48, -16), 1), 'the policy certificate').to.equal(1);
    expect(copiesInMemory(pid, randomBytes(32)), 'bytes it never saw').to.equal(0);
    expect(copiesInMemory(pid, readFileSync(d.keyFile)), 'the key file').to.equal(0);
  });
});

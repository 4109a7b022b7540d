// A server out of file descriptors (EMFILE in accepting a connection): as the README says, the
// connections it cannot accept are closed at once (Node's libuv accepts and closes them with a
// descriptor it keeps in reserve, and tells the program nothing), their clients are told
// UNREACHABLE (exit 3, worth a retry), and it goes on listening and serves again once a
// descriptor is free. The limit is lowered on the running simpleserver with prlimit (util-linux).

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { run } from '../support/helpers.ts';
import { hasPrlimit } from '../support/level-child.ts';
import { Domain } from './domain.ts';

const setOpenFiles = (pid: number, limit: number | 'unlimited') =>
  expect(spawnSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:`]).status, 'prlimit').to.equal(0);

describe('e2e: a server with no file descriptor left', function () {
  this.timeout(60_000);
  this.slow(10_000);

  it('closes the connections it cannot accept (UNREACHABLE, exit 3), keeps listening, and certifies once descriptors are free', async function () {
    if (!hasPrlimit) this.skip();
    const d = await Domain.create({ programs: ['vm'] });
    try {
      const server = d.servers[0]!;
      const soft = spawnSync('prlimit', ['--pid', String(server.pid), '--nofile', '--raw', '--noheadings', '--output=SOFT']).stdout.toString().trim();
      // A new descriptor takes the lowest free number, which must be below the soft limit: a limit
      // of that number leaves none (Node holds one of its own high above the others).
      const open = new Set(readdirSync(`/proc/${server.pid}/fd`).map(Number));
      let lowestFree = 0;
      while (open.has(lowestFree)) lowestFree++;
      setOpenFiles(server.pid, lowestFree);
      const store = d.path('during');
      const refused = await run('cert-utility', d.initTrustArgs({ name: 'during', program: 'vm', store, storeArgs: ['--store', store, '--key-file', d.keyFile] }));
      expect(refused.status, refused.stderr).to.equal(3);
      // Closed at once: "closed the connection before it was established", naming this among the
      // causes, or, where the close meets the client's first bytes, whatever the reset says.
      expect(refused.stderr, refused.stderr).to.contain('[UNREACHABLE]');
      setOpenFiles(server.pid, Number(soft) > 0 ? Number(soft) : 'unlimited');
      await d.certify('after', 'vm');
      expect(server.running).to.equal(true);
    } finally {
      await d.close();
    }
  });
});

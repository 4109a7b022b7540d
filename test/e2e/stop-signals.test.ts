// key-server stopped by more than one signal: a second SIGINT or SIGTERM while it stops (a backup
// still being written, requests finishing) is not Node's default death; the stop it began goes on,
// and ends as one does (the backup whole, the audit log closed, exit 0).

import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../support/helpers.ts';
import { Domain, expectSuccess, sleep, type Machine } from './domain.ts';

describe('e2e: key-server signalled again while it stops', function () {
  this.timeout(60_000);
  let d: Domain;
  let ks: Machine;
  let alice: Machine;

  before(async () => {
    d = await Domain.create({ programs: ['key-server', 'client-alice'] });
    [ks, alice] = await Promise.all([d.certify('keyserver', 'key-server'), d.certify('alice', 'client-alice')]);
  });
  after(async () => d?.close());

  it('finishes a backup and closes its audit log when SIGTERM, SIGINT and SIGTERM come during the backup, exit 0', async () => {
    const backups = d.path('backups');
    const env = { NODE_OPTIONS: `--import ${join(ROOT, 'test/support/slow-backup.mjs')}`, SLOW_BACKUP_MS: '1500' };
    const server = await d.startKeyServer(ks, { args: ['--backup-dir', backups], env });
    expectSuccess(await d.kc(alice, server, 'store', ['stop/k', '--in', '-'], Buffer.from('v')));
    process.kill(server.child.pid, 'SIGUSR1');
    await sleep(100);
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGTERM'] as const) {
      process.kill(server.child.pid, signal);
      await sleep(200); // the backup still being written: the stop waits for it
    }
    expect(await server.child.exited, server.child.stderr).to.deep.equal({ code: 0, signal: null });
    expect(server.child.stderr).to.match(/ backup-written path=\S+ records=1/).and.match(/SIGINT: already stopping/).and.match(/ audit-closed .*\n.*key-server: stopped\n$/);
    expect(readdirSync(backups).map((n) => n.replace(/[0-9TZ-]+/g, '#'))).to.deep.equal(['keys#']);
  });
});

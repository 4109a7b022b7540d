// What the threat model says of a key-server started without an ACL, through the real programs:
// it warns of it; every certified machine may store a new version of any name, which the next
// fetch of the latest version returns in place of the owner's; and nobody may delete.

import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Domain, expectFailure, expectSuccess, type KeyServer, type Machine } from './domain.ts';

describe('e2e: a key-server without an ACL', function () {
  this.timeout(60_000);
  let d: Domain;
  let server: KeyServer;
  let owner: Machine;
  let other: Machine;

  before(async () => {
    ({ d, server, machines: { owner, other } } = await Domain.setUp({ keyserver: 'key-server', owner: 'owner', other: 'other' }, { serve: 'keyserver' }));
  });
  after(async () => {
    await d?.close();
  });

  it('says so when it starts', () => {
    expect(server.child.stderr).to.contain('key-server: warning: no --acl: every admitted machine of the domain may store, retrieve and list any key (delete needs an ACL)');
  });

  it('lets any certified machine store a new version of a name another stored, which a fetch of the latest then returns', async () => {
    const [mine, theirs] = [randomBytes(32), randomBytes(32)];
    expectSuccess(await d.kc(owner, server, 'store', ['vm/disk-key', '--in', '-'], mine));
    expectSuccess(await d.kc(other, server, 'store', ['vm/disk-key', '--in', '-'], theirs));
    const latest = expectSuccess(await d.kc(owner, server, 'retrieve', ['vm/disk-key', '--out', '-']));
    expect(latest.stdout.equals(theirs), 'the latest version is the other machine\'s').to.equal(true);
  });

  it('lets no machine delete, not even the one that stored the name (ACL_DENIED, exit 1)', async () => {
    expectSuccess(await d.kc(owner, server, 'store', ['kept', '--in', '-'], randomBytes(16)));
    for (const m of [owner, other]) expectFailure(await d.kc(m, server, 'delete', ['kept']), 1, 'ACL_DENIED');
    expectSuccess(await d.kc(owner, server, 'retrieve', ['kept', '--out', '-']));
  });
});

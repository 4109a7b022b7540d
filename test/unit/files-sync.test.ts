// What a power failure depends on in lib/files' atomic writes, checked in the system calls they
// make (test/support/strace.ts): a file's content is synced before it is renamed (or linked) into
// place, and its directory is synced after, as after an undo puts a file back or removes one.
import { expect } from 'chai';
import { dirname, join } from 'node:path';
import { sharedTrace } from '../support/strace.ts';

describe('lib/files durability (strace)', function () {
  const traceOf = sharedTrace('sync-files.ts', (dir) => [dir]);

  it('syncs a replacing file\'s content before the rename, and its directory after it, before returning', async function () {
    const { trace, dir } = await traceOf(this);
    const dest = join(dir, 'replaced');
    const ren = trace.first('rename', (r) => r.to === dest, `rename onto ${dest}`);
    expect(ren.from).to.match(/\/\.replaced\.[0-9a-f]{12}\.tmp$/);
    expect(trace.syncsBetween(ren.from, undefined, ren.call), `no fsync of ${ren.from} before its rename\n${trace}`).to.not.be.empty;
    expect(trace.syncsBetween(dir, ren.call, trace.mark('replaced')), `no fsync of ${dir} after the rename\n${trace}`).to.not.be.empty;
  });

  it('syncs an exclusive file\'s content before linking it into place, and its directory after', async function () {
    const { trace, dir } = await traceOf(this);
    const dest = join(dir, 'exclusive');
    const link = trace.first('link', (l) => l.to === dest, `link onto ${dest}`);
    const gone = trace.first('unlink', (u) => u.path === link.from, `unlink of ${link.from}`);
    expect(trace.syncsBetween(link.from, undefined, link.call), `no fsync of ${link.from} before its link\n${trace}`).to.not.be.empty;
    expect(trace.syncsBetween(dir, gone.call, trace.mark('exclusive')), `no fsync of ${dir} after the link\n${trace}`).to.not.be.empty;
  });

  it('syncs the directory after an undo puts a replaced file back and removes a new one', async function () {
    const { trace, dir } = await traceOf(this);
    const from = trace.mark('exclusive');
    const back = trace.first('rename', (r) => r.to === join(dir, 'kept') && /\.old$/.test(r.from) && r.call.start > from.end, 'rename putting kept back');
    const removed = trace.first('unlink', (u) => u.path === join(dir, 'made') && u.call.start > from.end, 'unlink of the new file');
    const end = trace.mark('undone');
    expect(trace.syncsBetween(dir, back.call, end), `no fsync of ${dir} after putting kept back\n${trace}`).to.not.be.empty;
    expect(trace.syncsBetween(dir, removed.call, end), `no fsync of ${dir} after removing made\n${trace}`).to.not.be.empty;
  });

  it('names each output directory it makes durably in its parent before going on', async function () {
    const { trace, dir } = await traceOf(this);
    for (const made of [join(dir, 'out'), join(dir, 'out', 'deep')]) {
      const mkdir = trace.first('mkdir', (m) => m.path === made, `mkdir of ${made}`).call;
      expect(trace.syncsBetween(dirname(made), mkdir, trace.mark('private dir')), `no fsync of ${dirname(made)} after ${made} was made\n${trace}`).to.not.be.empty;
    }
  });

  it('names each directory it makes durably in its parent, those made off the way to the one asked for too ("up/new/deeper/../../sub")', async function () {
    const { trace, dir } = await traceOf(this);
    for (const made of [join(dir, 'up', 'new'), join(dir, 'up', 'new', 'deeper'), join(dir, 'up', 'sub')]) {
      const mkdir = trace.first('mkdir', (m) => m.path === made || (made.endsWith('/sub') && m.path === join(dir, 'up', 'new', 'deeper') + '/../../sub'), `mkdir of ${made}`).call;
      expect(trace.syncsBetween(dirname(made), mkdir, trace.mark('off the way')), `no fsync of ${dirname(made)} after ${made} was made\n${trace}`).to.not.be.empty;
    }
  });
});

// What a power failure depends on in the audit log's files, checked in the system calls made
// (test/support/strace.ts): a new log is named durably in its directory before the first line is
// written, a rotation's rename and new file are synced in the directory before the next line, an
// unused log's removal is synced, and repair-audit syncs the log it cut short. (That lines are
// written O_DSYNC is checked in audit.test.ts, from the open file's flags.)
import { expect } from 'chai';
import { join } from 'node:path';
import { sharedTrace } from '../support/strace.ts';

describe('audit log durability (strace)', function () {
  const traceOf = sharedTrace('sync-audit.ts', (dir) => [dir]);

  it('syncs the directory of a log it creates before the log is used', async function () {
    const { trace, dir } = await traceOf(this);
    const path = join(dir, 'audit.log');
    const made = trace.first('open', (o) => o.path === path && o.flags.includes('O_CREAT'), `creating open of ${path}`).call;
    expect(trace.syncsBetween(dir, made, trace.mark('opened')), `no fsync of ${dir} after ${path} was made\n${trace}`).to.not.be.empty;
  });

  it('syncs the directory after a rotation\'s rename and new file, before the next line is written', async function () {
    const { trace, dir } = await traceOf(this);
    const path = join(dir, 'audit.log');
    const ren = trace.first('rename', (r) => r.from === path, `rename of ${path}`).call;
    const next = trace.first('open', (o) => o.path === path && o.flags.includes('O_EXCL') && o.call.start > ren.end, `new ${path} after the rotation`).call;
    const line = trace.first('write', (w) => w.path === path && w.call.start > next.end, `a line written to the new ${path}`).call;
    expect(trace.syncsBetween(dir, next, line), `no fsync of ${dir} between the new file and its first line\n${trace}`).to.not.be.empty;
  });

  it('syncs the directory after removing a log it made and never used', async function () {
    const { trace, dir } = await traceOf(this);
    const unused = join(dir, 'unused.log');
    const gone = trace.first('unlink', (u) => u.path === unused, `unlink of ${unused}`).call;
    expect(trace.syncsBetween(dir, gone, trace.mark('unused removed')), `no fsync of ${dir} after ${unused} was removed\n${trace}`).to.not.be.empty;
  });

  it('syncs the log repair-audit cut short before it returns', async function () {
    const { trace, dir } = await traceOf(this);
    const path = join(dir, 'audit.log');
    const cut = trace.first('truncate', (t) => t.path === path, `ftruncate of ${path}`).call;
    expect(trace.syncsBetween(path, cut, trace.mark('repaired')), `no fsync of ${path} after it was cut short\n${trace}`).to.not.be.empty;
  });
});

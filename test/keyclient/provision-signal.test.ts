// key-client provision's files and tags are one all-or-none step, even when SIGTERM comes between
// the files going in place and the tags' batch, or while the batch is written.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { ROOT, supportScript, tempDir } from '../support/helpers.ts';

describe('provision: files and tags all or none when a signal comes', function () {
  this.timeout(20_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  async function signalled(when: 'before' | 'during' | 'partial') {
    const child = spawn(process.execPath, supportScript('signal-in-provision.ts', [tmp.dir, when]), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const [code, signal] = await once(child, 'exit');
    const store = await Cryptstore.open(join(tmp.dir, 'store'), new KeyFileProtector(readFileSync(join(tmp.dir, 'key'))));
    try {
      const tags = (await store.list()).map((e) => e.tag);
      const out = join(tmp.dir, 'out');
      return { code, signal, stderr, tags, files: readdirSync(out).sort(), replaced: readFileSync(join(out, 'replaced'), 'utf8') };
    } finally {
      await store.close();
    }
  }

  it('undoes the files it put in place, writes no tag, and does not say it was complete, when a signal comes before the tags\' batch', async () => {
    const r = await signalled('before');
    expect(r).to.deep.include({ code: null, signal: 'SIGTERM', tags: [], files: ['replaced'], replaced: 'old' });
    expect(r.stderr).to.equal('');
  });

  it('writes the tags and keeps the files when a signal comes while the tags\' batch is written, and says the run was complete', async () => {
    const r = await signalled('during');
    expect(r).to.deep.include({ code: null, signal: 'SIGTERM', tags: ['held/a'], files: ['made', 'replaced'], replaced: 'new' });
    expect(r.stderr).to.equal('SIGTERM waited: all written\n');
  });

  it('names what did not arrive (--allow-partial) when a signal comes while the tags\' batch is written', async () => {
    const r = await signalled('partial');
    expect(r).to.deep.include({ code: null, signal: 'SIGTERM', tags: ['held/a'], files: ['made', 'replaced'], replaced: 'new' });
    expect(r.stderr).to.equal('SIGTERM waited: not "k/missing" (NOT_FOUND)\n');
  });
});

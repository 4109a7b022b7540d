// Kill -9 in the middle of a stream of puts: every acknowledged put survives, nothing is damaged.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from '../../lib/crypto/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { ROOT, supportScript, tempDir } from '../support/helpers.ts';

interface Ack { tag: string; version: number; seq: number }

/** Runs the put stream until `acks` puts are acknowledged, then SIGKILLs it. */
function streamThenKill(dir: string, keyFile: string, acks: number): Promise<Ack[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, supportScript('put-stream.ts', [dir, keyFile, '4']), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const seen: Ack[] = [];
    let buffer = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const m = /^ack (\S+) (\d+) (\d+)$/.exec(line);
        if (m) seen.push({ tag: m[1]!, version: Number(m[2]), seq: Number(m[3]) });
        if (seen.length >= acks && !child.killed) child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`put stream ended without being killed: ${stderr}`));
      else resolve(seen);
    });
  });
}

describe('cryptstore crash safety', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => tmp.cleanup());

  it('keeps every acknowledged put and no damaged entry after SIGKILL mid-stream, three times over', async () => {
    const dir = join(tmp.dir, 'store');
    const keyFile = join(tmp.dir, 'key');
    const key = randomBytes(32);
    writeFileSync(keyFile, key);
    await (await Cryptstore.create(dir, new KeyFileProtector(key))).close();

    const all: Ack[] = [];
    for (const [round, acks] of [[1, 150], [2, 237], [3, 311]] as const) {
      const acked = await streamThenKill(dir, keyFile, acks);
      expect(acked.length, `round ${round}`).to.be.at.least(acks);
      all.push(...acked);

      const store = await Cryptstore.open(dir, new KeyFileProtector(key));
      try {
        const report = await store.verify();
        expect(report.problems, `round ${round}`).to.deep.equal([]);
        for (const a of all) {
          const e = await store.get(a.tag, a.version);
          expect(Buffer.from(e.blob).toString('latin1').startsWith(`${a.tag}:${a.seq}:`), `${a.tag} v${a.version}`).to.equal(true);
        }
        // Versions of each tag have no gaps: a put is either fully there or not at all.
        const byTag = new Map<string, number[]>();
        for (const i of await store.list()) byTag.set(i.tag, [...(byTag.get(i.tag) ?? []), i.version]);
        for (const [tag, versions] of byTag) {
          expect(versions, tag).to.deep.equal(Array.from({ length: versions.length }, (_, i) => i + 1));
        }
      } finally {
        await store.close();
      }
    }
  });
});

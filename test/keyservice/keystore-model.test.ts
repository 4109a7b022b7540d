// The model-based random test of KeyStore (keystore-model.ts) over LevelBackend, its caches small,
// with restarts and processes killed part-way through their stores.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { randomBytes, toHex } from '../../lib/crypto/index.ts';
import { KeyStore } from '../../lib/keyservice/keystore.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import { ROOT, supportScript, tempDir } from '../support/helpers.ts';
import { describeKeyStoreModel, reopenable, type ChildOp } from './keystore-model.ts';

/** Sends `ops` to a keystore-child on `dir` and kills it (SIGKILL) once `killAfter` are answered: the answers, by index. */
async function killedPart(dir: string, key: Uint8Array, ops: ChildOp[], killAfter: number): Promise<Map<number, unknown>> {
  const child = spawn(process.execPath, supportScript('keystore-child.ts', [dir]), { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const acked = new Map<number, unknown>();
  try {
    child.stdin.write(`${toHex(key)}\n`);
    const lines = createInterface({ input: child.stdout });
    for await (const line of lines) {
      const [word, i, v] = line.split(' ');
      if (word === 'ready') {
        for (const o of ops) child.stdin.write(`${JSON.stringify(o)}\n`);
      } else if (word === 'ok') acked.set(Number(i), JSON.parse(v!));
      else throw new Error(`keystore-child: ${line}`);
      if (acked.size >= killAfter && child.exitCode === null && !child.killed) child.kill('SIGKILL');
      if (acked.size === ops.length) break;
    }
  } finally {
    if (!child.killed && child.exitCode === null) child.kill('SIGKILL');
    await exited;
  }
  return acked;
}

describe('KeyStore over LevelBackend against a model', function () {
  describeKeyStoreModel('LevelBackend', async (tuning) => {
    const tmp = tempDir('keystore-model-');
    const dir = join(tmp.dir, 'data');
    const key = randomBytes(32);
    const open = async () => new KeyStore(await LevelBackend.open(dir, tuning), key, tuning);
    const fx = await reopenable(open);
    return Object.assign(fx, {
      crash: async (ops: ChildOp[], killAfter: number) => {
        await fx.close();
        const acked = await killedPart(dir, key, ops, killAfter);
        fx.store = await open();
        return acked;
      },
      cleanup: async () => {
        await fx.close();
        tmp.cleanup();
      },
    });
  });
});

// A server run by runUntilSignal, its signals sent in-process: a SIGHUP reload (key-server's
// ACL) goes ahead while a SIGUSR1 backup is still being written, which may take minutes; a
// revocation must not wait for it. A stop waits for both.

import { expect } from 'chai';
import type { ChannelServer } from '../../lib/channel/index.ts';
import { runUntilSignal } from '../../cmd/common/server.ts';

const SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGINT', 'SIGTERM'] as const;

describe('a server\'s signals (runUntilSignal)', () => {
  let before: Map<string, Function[]>;
  let writes: [typeof process.stdout.write, typeof process.stderr.write];
  beforeEach(() => {
    before = new Map(SIGNALS.map((s) => [s, process.listeners(s)]));
    writes = [process.stdout.write, process.stderr.write];
    process.stdout.write = process.stderr.write = (() => true) as typeof process.stdout.write; // its "listening" and "stopped" lines
  });
  afterEach(() => {
    [process.stdout.write, process.stderr.write] = writes;
    // The listeners it leaves (a stop's no-op SIGHUP and SIGUSR1, the SIGINT it did not get) would
    // keep Ctrl-C from stopping mocha.
    for (const s of SIGNALS) for (const l of process.listeners(s)) if (!before.get(s)!.includes(l)) process.off(s, l as () => void);
  });

  it('reloads on SIGHUP while a backup (SIGUSR1) is still being written, and stops once both are done', async () => {
    const server = { address: { host: '127.0.0.1', port: 1 }, connections: 0, setIdentity: () => {}, close: async () => {} } satisfies ChannelServer;
    const events: string[] = [];
    let finishBackup = () => {};
    const backupHeld = new Promise<void>((r) => (finishBackup = r));
    let reloaded = () => {};
    const reloadDone = new Promise<'reloaded'>((r) => (reloaded = () => r('reloaded')));
    const running = runUntilSignal('test-server', server, false, {
      log: (r) => void events.push(String((r as { event: string }).event)),
      reload: async () => {
        reloaded();
        return { acl: 'acl.json' };
      },
      backup: async () => {
        await backupHeld;
        return { path: 'keys-1' };
      },
    });
    process.emit('SIGUSR1');
    process.emit('SIGHUP');
    let timer: NodeJS.Timeout | undefined;
    // Waiting for the backup, it would wait for the test: a generous bound tells the two apart on a slow machine too.
    const first = await Promise.race([reloadDone, new Promise((r) => (timer = setTimeout(() => r('still waiting'), 10_000)))]);
    clearTimeout(timer);
    expect(first, 'the reload waited for the backup').to.equal('reloaded');
    finishBackup();
    process.emit('SIGTERM');
    expect(await running).to.deep.equal({ stopped: 'SIGTERM' });
    expect(events).to.deep.equal(['reloaded', 'backup-written']);
  });

  it('logs a reload that failed with a fault not of ours by its class only (INTERNAL): its message may quote the file', async () => {
    const server = { address: { host: '127.0.0.1', port: 1 }, connections: 0, setIdentity: () => {}, close: async () => {} } satisfies ChannelServer;
    const lines: Record<string, unknown>[] = [];
    const running = runUntilSignal('test-server', server, false, { log: (r) => void lines.push(r as Record<string, unknown>), reload: async () => JSON.parse('{"k":hush-canary}') });
    process.emit('SIGHUP');
    for (let i = 0; i < 200 && !lines.length; i++) await new Promise((r) => setTimeout(r, 10));
    process.emit('SIGTERM');
    await running;
    expect(lines[0]).to.include({ event: 'reload-failed', code: 'INTERNAL', reason: 'SyntaxError' });
  });

  it('makes one more backup for a storm of SIGUSR1 while one is written, and none begun after a stop', async () => {
    const server = { address: { host: '127.0.0.1', port: 1 }, connections: 0, setIdentity: () => {}, close: async () => {} } satisfies ChannelServer;
    const events: string[] = [];
    let release = () => {};
    let begun = 0;
    const running = runUntilSignal('test-server', server, false, {
      log: (r) => void events.push(String((r as { event: string }).event)),
      backup: async () => {
        begun++;
        await new Promise<void>((r) => (release = r));
        return { path: `keys-${begun}` };
      },
    });
    const settle = () => new Promise((r) => setTimeout(r, 20));
    process.emit('SIGUSR1');
    await settle();
    for (let i = 0; i < 10; i++) process.emit('SIGUSR1'); // while the first is written: one more, of the database as it is then
    release();
    await settle();
    expect(begun).to.equal(2);
    process.emit('SIGUSR1'); // waits its turn behind the second, which the stop waits for
    process.emit('SIGTERM');
    await settle();
    release();
    expect(await running).to.deep.equal({ stopped: 'SIGTERM' });
    expect(begun, 'a backup begun after the stop').to.equal(2);
    expect(events).to.deep.equal(['backup-written', 'backup-written', 'backup-ignored']);
  });
});

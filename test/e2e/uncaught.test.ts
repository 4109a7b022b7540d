// The programs' last line of defence (cmd/common/uncaught.ts): a bug in an event handler of a
// real server (injected by test/support/fault-in-handler.mjs), outside any command's await, is
// said as the README's Errors section says an INTERNAL error is, its message (which may quote a
// secret) kept out of it but under CERTIFIER_DEBUG=1, and the server exits 1 at once: it serves
// no more in a state nobody planned, and a restart (systemd's) serves again.

import { expect } from 'chai';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { readdirSync, writeFileSync } from 'node:fs';
import { ROOT, run, tempDir } from '../support/helpers.ts';
import { Child, Domain, startServer, type Machine } from './domain.ts';

const injected = (fault: 'throw' | 'reject' | 'after-output' | 'in-write' | 'in-action') => ({ NODE_OPTIONS: `--import=${join(ROOT, 'test/support/fault-in-handler.mjs')}`, FAULT_IN_HANDLER: fault });

/** Opens a TCP connection to `port` (which meets the fault) and waits for the server to exit: one still serving 20 s later is killed (SIGKILL). */
async function connectAndWait(child: Child, port: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {}); // the server dies with it open
  const serving = setTimeout(() => void child.stop('SIGKILL'), 20_000);
  try {
    return await child.exited;
  } finally {
    clearTimeout(serving);
    socket.destroy();
  }
}

describe('e2e: an exception nothing caught in a server', function () {
  this.timeout(120_000);
  let d: Domain;
  let ks: Machine;

  before(async () => {
    ({ d, machines: { ks } } = await Domain.setUp({ ks: 'key-server' }));
  });
  after(() => d?.close());

  it('simpleserver says INTERNAL in one line, without the message or a stack, and exits 1', async () => {
    const { child, port } = await startServer('simpleserver', d.simpleserverArgs(), undefined, injected('throw'));
    d.adopt(child);
    const from = child.mark();
    expect(await connectAndWait(child, port)).to.deep.equal({ code: 1, signal: null });
    const said = child.stderr.slice(from);
    expect(said).to.equal('simpleserver: error: internal error: TypeError, thrown where nothing caught it: stopping (a bug: please report it; CERTIFIER_DEBUG=1 shows where) [INTERNAL]\n');
  });

  it('key-server --log-json logs a promise nobody awaited as one INTERNAL error line, exits 1, and serves again when restarted', async () => {
    const data = d.path('keyserver-data');
    const server = await d.startKeyServer(ks, { data, args: ['--log-json'], env: injected('reject') });
    const from = server.child.mark();
    expect(await connectAndWait(server.child, server.port)).to.deep.equal({ code: 1, signal: null });
    const lines = server.child.stderr.slice(from).trimEnd().split('\n');
    expect(lines).to.have.length(1);
    const { time, ...line } = JSON.parse(lines[0]!);
    expect(time).to.be.a('string');
    expect(line).to.deep.equal({ event: 'error', code: 'INTERNAL', message: 'internal error: TypeError, a promise rejected where nothing awaited it: stopping (a bug: please report it; CERTIFIER_DEBUG=1 shows where)', exitStatus: 1 });
    expect(server.child.stderr).not.to.contain('canary-of-fault-in-handler');
    // What systemd's restart then does: the key database and the audit log are taken up again.
    const again = await d.startKeyServer(ks, { data, args: ['--log-json'] });
    expect(again.child.stderr).to.match(/"event":"audit-continues"/);
    expect((await again.child.stop()).code).to.equal(0);
  });

  it('simpleserver --json writes the error as one JSON document, and CERTIFIER_DEBUG=1 shows what was thrown and where', async () => {
    const proc = spawn(process.execPath, [join(ROOT, 'cmd', 'bin', 'simpleserver.js'), ...d.simpleserverArgs(), '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...injected('throw'), CERTIFIER_DEBUG: '1' } });
    const child = new Child('simpleserver', proc);
    d.adopt(child);
    while (!child.stdout.includes('\n') && child.running) await new Promise((r) => setTimeout(r, 50));
    const port = JSON.parse(child.stdout.split('\n')[0]!).listening.port as number;
    expect(await connectAndWait(child, port)).to.deep.equal({ code: 1, signal: null });
    const docs = child.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(docs).to.have.length(2);
    expect(docs[1]).to.deep.equal({ ok: false, error: { code: 'INTERNAL', message: 'internal error: TypeError, thrown where nothing caught it: stopping (a bug: please report it; CERTIFIER_DEBUG=1 shows where)', exitStatus: 1 } });
    expect(child.stdout).not.to.contain('canary-of-fault-in-handler');
    expect(child.stderr).to.contain(`TypeError: an injected fault: canary-of-fault-in-handler`).and.to.match(/\n\s+at /);
  });
});

describe('e2e: an exception nothing caught in a command', () => {
  it('leaves --json\'s one document on stdout, the result, and says INTERNAL on stderr, exit 1', async () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'image');
      writeFileSync(file, 'a program\n');
      const r = await run('cert-utility', ['measure', '--json', file], { env: injected('after-output') });
      expect(r.status, r.stderr).to.equal(1);
      expect(r.out.trimEnd().split('\n')).to.have.length(1);
      expect(r.json().ok).to.equal(true);
      expect(r.stderr).to.equal('cert-utility: error: internal error: TypeError, thrown where nothing caught it: stopping (a bug: please report it; CERTIFIER_DEBUG=1 shows where) [INTERNAL]\n');
    } finally {
      tmp.cleanup();
    }
  });
});

describe('e2e: an exception nothing caught while a command writes a file', () => {
  it('removes the temporary file, which may hold a secret, as a signal does: nothing is left of what it was asked to write', async () => {
    const tmp = tempDir();
    try {
      const r = await run('cert-utility', ['new-key-file', '--out', join(tmp.dir, 'store.key')], { env: injected('in-write') });
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.contain('[INTERNAL]');
      expect(readdirSync(tmp.dir)).to.deep.equal([]);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('e2e: an error not of ours that a command\'s own await caught', () => {
  // JSON.parse quotes the text it failed on, as a value just decrypted: the canary stands for it.
  const file = (dir: string) => {
    writeFileSync(join(dir, 'image'), 'fault-in-action\n');
    return join(dir, 'image');
  };

  it('is said as the last line of defence says one, by its class only, the message kept out of stdout and stderr', async () => {
    const tmp = tempDir();
    try {
      const r = await run('cert-utility', ['measure', file(tmp.dir)], { env: injected('in-action') });
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.equal('cert-utility: error: internal error: SyntaxError [INTERNAL]\nhint: set CERTIFIER_DEBUG=1 to see where it happened\n');
      const j = await run('cert-utility', ['measure', '--json', file(tmp.dir)], { env: injected('in-action') });
      expect(j.json()).to.deep.equal({ ok: false, error: { code: 'INTERNAL', message: 'internal error: SyntaxError', exitStatus: 1 } });
      expect(j.out + j.stderr).not.to.contain('hush-canary');
    } finally {
      tmp.cleanup();
    }
  });

  it('shows its message and stack with CERTIFIER_DEBUG=1', async () => {
    const tmp = tempDir();
    try {
      const r = await run('cert-utility', ['measure', file(tmp.dir)], { env: { ...injected('in-action'), CERTIFIER_DEBUG: '1' } });
      expect(r.status, r.stderr).to.equal(1);
      expect(r.stderr).to.contain('hush-canary').and.to.match(/\n\s+at /);
    } finally {
      tmp.cleanup();
    }
  });
});

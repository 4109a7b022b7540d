// Shared set-up for the end-to-end tests: a throwaway policy domain built and run with the real
// programs on loopback. A Domain holds a policy key and certificate, a simulated platform, the
// measurements of stand-in programs, a signed policy and a running simpleserver; it certifies
// machines (cert-utility init-trust into cryptstores protected by a key file) and starts
// key-servers on port 0, reading the port from their "listening HOST:PORT" line. Every child is
// stopped by its pid (SIGTERM, then SIGKILL if it lingers) and the directory removed by close().

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import type { KeyObject } from 'node:crypto';
import { admissionCertTag, authKeyTag, loadIdentity, type MachineIdentity } from '../../lib/certifier/index.ts';
import { generateKeyPair, toKeyMessage } from '../../lib/crypto/index.ts';
import { issueAdmissionCert, readCertificate } from '../../lib/pki/index.ts';
import { encode } from '../../lib/wire/index.ts';
import { readPrivateKeyFile } from '../../cmd/common/keys.ts';
import { KeyClient, type Credential } from '../../lib/keyclient/index.ts';
import { Cryptstore, KeyFileProtector } from '../../cryptstore/index.ts';
import { ROOT, run, tempDir, type Program, type RunResult } from '../support/helpers.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A program the test started and must stop: its output so far and how it ended. */
export class Child {
  stdout = '';
  stderr = '';
  /** Everything it wrote, as bytes (stdout and stderr above are those decoded as UTF-8). */
  readonly written = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private static readonly live = new Set<Child>();

  constructor(readonly name: string, readonly proc: ChildProcess) {
    Child.live.add(this);
    proc.stdout?.on('data', (d: Buffer) => {
      this.stdout += d.toString('utf8');
      this.written.stdout.push(d);
    }); // none when it goes to a file given
    proc.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString('utf8');
      this.written.stderr.push(d);
    });
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
      Child.live.delete(this);
      resolve({ code, signal });
    }));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Sends `signal` to the pid and waits for the exit; a SIGTERM that is ignored becomes a SIGKILL. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) {
      process.kill(this.pid, signal);
      const timer = setTimeout(() => this.running && process.kill(this.pid, 'SIGKILL'), graceMs);
      await this.exited.finally(() => clearTimeout(timer));
    }
    return this.exited;
  }

  /** Where stderr ends now: give it to waitForLog to look only at what comes after. */
  mark(): number {
    return this.stderr.length;
  }

  /** Waits until a line of stderr (after `from`) matches `re`: log lines arrive a little after the answers. */
  async waitForLog(re: RegExp, from = 0, timeoutMs = 5_000): Promise<string> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = this.stderr.slice(from).split('\n').find((l) => re.test(l));
      if (m !== undefined) return m;
      if (Date.now() > until) {
        const tail = this.stderr.slice(from).split('\n').slice(-15).join('\n');
        throw new Error(`${this.name}: no log line matching ${re} within ${timeoutMs} ms; its last lines:\n${tail}`);
      }
      await sleep(50);
    }
  }

  /** A last resort if a test run is torn down without close(): never leave servers behind. */
  static killAll(): void {
    for (const c of Child.live) if (c.running) process.kill(c.pid, 'SIGKILL');
  }
}
process.once('exit', () => Child.killAll());

/** Starts a server program and resolves with the port from its "listening HOST:PORT" line. */
export function startServer(program: Program, args: string[], onSpawn?: (child: Child) => void, env: Record<string, string> = {}): Promise<{ child: Child; port: number }> {
  const proc = spawn(process.execPath, [join(ROOT, 'cmd', 'bin', `${program}.js`), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...serverEnv(), ...env } });
  const child = new Child(program, proc);
  onSpawn?.(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void child.stop('SIGKILL');
      reject(new Error(`${program} did not listen within 20 s:\n${child.stderr}`));
    }, 20_000);
    const onData = () => {
      const m = /^listening (\S+):(\d+)$/m.exec(child.stdout);
      if (!m) return;
      clearTimeout(timer);
      proc.stdout!.off('data', onData);
      resolve({ child, port: Number(m[2]) });
    };
    proc.stdout!.on('data', onData);
    void child.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${program} exited (${code ?? signal}) before listening:\n${child.stderr}`));
    });
  });
}

/**
 * Starts a server program whose standard output goes to the open file `stdoutFd` (stderr is read
 * as usual); it does not wait for it to listen.
 */
export function spawnWithStdout(program: Program, args: string[], stdoutFd: number): Child {
  return new Child(program, spawn(process.execPath, [join(ROOT, 'cmd', 'bin', `${program}.js`), ...args], { stdio: ['ignore', stdoutFd, 'pipe'], env: serverEnv() }));
}

function serverEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'CERTIFIER_DEBUG' && k !== 'CRYPTSTORE_PASSPHRASE') env[k] = v;
  return env;
}

/** Asserts a program failed the documented way: exit status, "[CODE]" on stderr, no stack trace. */
export function expectFailure(r: RunResult, status: number, code: string): void {
  expect(r.status, `exit status; stderr:\n${r.stderr}`).to.equal(status);
  expect(r.stderr).to.contain(`[${code}]`);
  expect(r.stderr, 'no stack trace').not.to.match(/\n\s+at /);
}

/** Asserts a program succeeded; returns its result. */
export function expectSuccess(r: RunResult): RunResult {
  expect(r.status, `exit status; stderr:\n${r.stderr}`).to.equal(0);
  return r;
}

/** A machine of the domain: a program (its measurement) and its certified cryptstore. */
export interface Machine {
  name: string;
  program: string;
  store: string;
  /** --store and --key-file, for every command that opens the store. */
  storeArgs: string[];
}

export interface KeyServer {
  child: Child;
  port: number;
  address: string;
  data: string;
  machine: Machine;
  measurementHex: string;
  /** The file given with --acl, when there is one. */
  aclFile?: string;
}

export interface KeyServerOptions {
  /** The key database directory (default: a new one under the domain's directory). */
  data?: string;
  /** An ACL document, written to a file and given with --acl. */
  acl?: object;
  /** More flags for key-server serve. */
  args?: string[];
  /** The address to listen on (default 127.0.0.1:0). */
  listen?: string;
  /** More environment variables for the server (a module to preload, say). */
  env?: Record<string, string>;
}

/** What Domain.setUp makes: the domain and its certified machines, by name. */
export interface Setup<N extends string> {
  d: Domain;
  machines: Record<N, Machine>;
}

export interface SetupOptions {
  /** The programs the policy trusts (default: the machines' programs, each once, in their order). */
  programs?: string[];
  name?: string;
}

export class Domain {
  readonly policyKey: string;
  readonly policyCertFile: string;
  readonly policyFile: string;
  readonly platformDir: string;
  readonly keyFile: string;
  certifierPort = 0;
  private readonly measurements = new Map<string, string>();
  private readonly children: Child[] = [];
  private serial = 0;

  private constructor(readonly name: string, readonly dir: string, private readonly cleanup: () => void) {
    this.policyKey = join(dir, 'policy-key.pem');
    this.policyCertFile = join(dir, 'policy-cert.pem');
    this.policyFile = join(dir, 'policy.bin');
    this.platformDir = join(dir, 'platform');
    this.keyFile = join(dir, 'store.key');
  }

  /**
   * A new domain trusting one measured stand-in program per name in `programs`, with its
   * simpleserver running. Steps that do not depend on each other run side by side.
   */
  static async create(o: { name?: string; programs: string[] }): Promise<Domain> {
    const tmp = tempDir('e2e-domain-');
    const d = new Domain(o.name ?? 'e2etest', tmp.dir, tmp.cleanup);
    try {
      mkdirSync(join(d.dir, 'programs'));
      mkdirSync(join(d.dir, 'measurements'));
      const files = o.programs.map((p) => {
        const f = join(d.dir, 'programs', p);
        writeFileSync(f, `${p}: a stand-in program image of ${d.dir}\n`);
        return f;
      });
      const [, , measured] = await Promise.all([
        d.cu(['generate-policy-key', '--domain', d.name, '--key-out', d.policyKey, '--cert-out', d.policyCertFile]),
        d.cu(['generate-platform-keys', '--out-dir', d.platformDir]),
        d.cu(['measure', '--json', ...files]),
        d.cu(['new-key-file', '--out', d.keyFile]),
      ]);
      for (const m of measured!.json().measurements as { file: string; measurement: string }[]) {
        const program = o.programs[files.indexOf(m.file)]!;
        d.measurements.set(program, m.measurement);
        writeFileSync(d.measurementFile(program), Buffer.from(m.measurement, 'hex'));
      }
      await d.cu(['make-policy', '--policy-key', d.policyKey, '--policy-cert', d.policyCertFile, '--trust-platform', join(d.platformDir, 'platform-cert.pem'),
        ...[...d.measurements.values()].flatMap((m) => ['--trust-measurement', m]), '--out', d.policyFile]);
      const { child, port } = await startServer('simpleserver', d.simpleserverArgs());
      d.children.push(child);
      d.certifierPort = port;
      return d;
    } catch (e) {
      await d.close();
      throw e;
    }
  }

  /**
   * The set-up most end-to-end tests share: a new domain, then the machines `machines` names (each
   * name mapped to the program it runs), certified side by side; with `serve`, a key-server started
   * with that machine's store once all are certified (with `keyServer`'s options). The domain is
   * closed if a step fails; else the caller closes it.
   */
  static async setUp<N extends string>(machines: Record<N, string>, o?: SetupOptions): Promise<Setup<N>>;
  static async setUp<N extends string>(machines: Record<N, string>, o: SetupOptions & { serve: NoInfer<N>; keyServer?: KeyServerOptions }): Promise<Setup<N> & { server: KeyServer }>;
  static async setUp<N extends string>(machines: Record<N, string>, o: SetupOptions & { serve?: NoInfer<N>; keyServer?: KeyServerOptions } = {}): Promise<Setup<N> & { server?: KeyServer }> {
    const entries = Object.entries(machines) as [N, string][];
    const d = await Domain.create({ programs: o.programs ?? [...new Set(entries.map(([, program]) => program))], ...(o.name ? { name: o.name } : {}) });
    try {
      const certified = await Promise.all(entries.map(([name, program]) => d.certify(name, program)));
      const byName = Object.fromEntries(entries.map(([name], i) => [name, certified[i]!])) as Record<N, Machine>;
      if (o.serve === undefined) return { d, machines: byName };
      return { d, machines: byName, server: await d.startKeyServer(byName[o.serve], o.keyServer) };
    } catch (e) {
      await d.close();
      throw e;
    }
  }

  /** Every server it started (its simpleserver first), running or stopped, with what each wrote. */
  get servers(): readonly Child[] {
    return [...this.children];
  }

  /** Stops `child` with the domain's other servers. */
  adopt(child: Child): void {
    this.children.push(child);
  }

  /** The policy certificate, DER. */
  get policyCert(): Uint8Array {
    return readCertificate(readFileSync(this.policyCertFile));
  }

  measurementFile(program: string): string {
    return join(this.dir, 'measurements', `${program}.measurement`);
  }

  measurementHex(program: string): string {
    const m = this.measurements.get(program);
    if (!m) throw new Error(`no program "${program}" in this domain`);
    return m;
  }

  /** A fresh path under the domain's directory. */
  path(name: string): string {
    return join(this.dir, `${name}-${++this.serial}`);
  }

  /** Runs cert-utility; throws with its stderr unless it succeeds. */
  async cu(args: string[], input?: Uint8Array): Promise<RunResult> {
    const r = await run('cert-utility', args, { cwd: this.dir, ...(input ? { input } : {}) });
    if (r.status !== 0) throw new Error(`cert-utility ${args[0]} exited ${r.status}:\n${r.stderr}`);
    return r;
  }

  /** A machine running `program`, certified by this domain's simpleserver (cert-utility init-trust). */
  async certify(name: string, program: string): Promise<Machine> {
    const store = join(this.dir, 'stores', name);
    mkdirSync(join(this.dir, 'stores'), { recursive: true });
    const machine: Machine = { name, program, store, storeArgs: ['--store', store, '--key-file', this.keyFile] };
    await this.cu(this.initTrustArgs(machine));
    return machine;
  }

  /**
   * A machine running `program` whose identity was issued offline by the policy key (no
   * init-trust): a new key and its certificate for `validitySeconds` from `now` (backdated by the
   * clock skew allowed, as every certificate is), put in a store of its own by hand.
   */
  async issuedMachine(name: string, program: string, validitySeconds: number, now?: Date): Promise<{ machine: Machine; key: KeyObject; certificate: Uint8Array }> {
    const { privateKey, publicKey } = await generateKeyPair('p256');
    const certificate = await issueAdmissionCert({
      policyKey: await readPrivateKeyFile(this.policyKey), policyCert: this.policyCert, subjectPublicKey: publicKey,
      measurement: Buffer.from(this.measurementHex(program), 'hex'), platform: 'simulated', domain: this.name, validitySeconds, ...(now ? { now } : {}),
    });
    const dir = join(this.dir, 'stores', name);
    const store = await this.createStore(dir);
    try {
      await store.putAll([
        { tag: authKeyTag(this.name), blob: encode('key_message', toKeyMessage(privateKey, 'auth-key')), options: { type: 'key-message-serialized-protobuf', exportable: false } },
        { tag: admissionCertTag(this.name), blob: certificate, options: { type: 'X509-der-cert', exportable: true } },
      ]);
    } finally {
      await store.close();
    }
    return { machine: { name, program, store: dir, storeArgs: ['--store', dir, '--key-file', this.keyFile] }, key: privateKey, certificate };
  }

  /**
   * A machine running `program` whose store is protected by `protection` (`--passphrase-file F`,
   * the store made first with a cheap KDF, or `--key-file F`), certified by this domain's
   * simpleserver; `cu` runs cert-utility (a test's own runner, which may keep what it printed).
   */
  async certifyProtected(name: string, program: string, protection: string[], cu: (label: string, args: string[]) => Promise<RunResult>): Promise<Machine> {
    const store = join(this.dir, 'stores', name);
    mkdirSync(join(this.dir, 'stores'), { recursive: true });
    const machine: Machine = { name, program, store, storeArgs: ['--store', store, ...protection] };
    if (protection[0] === '--passphrase-file') expectSuccess(await cu(`create-store ${name}`, ['create-store', '--scrypt-log-n', '10', ...machine.storeArgs]));
    expectSuccess(await cu(`init-trust ${name}`, this.initTrustArgs(machine)));
    return machine;
  }

  /** cert-utility's arguments that certify `machine` (its store as its storeArgs say) by this domain's simpleserver. */
  initTrustArgs(machine: Machine): string[] {
    return ['init-trust', '--domain', this.name, '--policy-cert', this.policyCertFile, '--server', `127.0.0.1:${this.certifierPort}`,
      ...machine.storeArgs, '--platform', 'simulated', '--platform-dir', this.platformDir, '--measurement-file', this.measurementFile(machine.program)];
  }

  /** simpleserver serve's arguments for this domain's policy (or `policy`), listening on `listen`; more flags go after. */
  simpleserverArgs(policy = this.policyFile, listen = '127.0.0.1:0'): string[] {
    return ['serve', '--policy-key', this.policyKey, '--policy-cert', this.policyCertFile, '--policy', policy, '--listen', listen];
  }

  /** key-server serve's arguments for `machine`'s store and the key database `data`, as startKeyServer gives them; more flags go after. */
  keyServerArgs(machine: Machine, data: string, listen = '127.0.0.1:0'): string[] {
    return ['serve', '--domain', this.name, '--policy-cert', this.policyCertFile, '--data', data, '--listen', listen, ...machine.storeArgs];
  }

  /** Starts key-server with `machine`'s store on 127.0.0.1 (or `o.listen`), port 0. */
  async startKeyServer(machine: Machine, o: KeyServerOptions = {}): Promise<KeyServer> {
    const data = o.data ?? this.path('keyserver-data');
    const args = [...this.keyServerArgs(machine, data, o.listen), ...(o.args ?? [])];
    const aclFile = o.acl ? this.path('acl.json') : undefined;
    if (aclFile) {
      writeFileSync(aclFile, JSON.stringify(o.acl, null, 2));
      args.push('--acl', aclFile);
    }
    const { child, port } = await startServer('key-server', args, undefined, o.env);
    this.children.push(child);
    const host = (o.listen ?? '127.0.0.1:0').replace(/:\d+$/, '');
    return { child, port, address: `${host}:${port}`, data, machine, measurementHex: this.measurementHex(machine.program), ...(aclFile ? { aclFile } : {}) };
  }

  /** Runs `fn` with a key-server started as startKeyServer does, and stops it (SIGTERM) however fn ends. */
  async withKeyServer<T>(machine: Machine, o: KeyServerOptions, fn: (server: KeyServer) => Promise<T>): Promise<T> {
    const server = await this.startKeyServer(machine, o);
    try {
      return await fn(server);
    } finally {
      await server.child.stop();
    }
  }

  /**
   * Starts key-server as startKeyServer does and, once it listens, stops it (SIGTERM): for what a
   * start alone does (its storage key made, a warning said).
   */
  async startAndStop(machine: Machine, o: KeyServerOptions = {}): Promise<KeyServer> {
    const server = await this.startKeyServer(machine, o);
    await server.child.stop();
    return server;
  }

  /** The flags every key-client command of `machine` needs to reach `server` (pinned by measurement). */
  clientArgs(machine: Machine, server: KeyServer): string[] {
    return ['--server', server.address, '--domain', this.name, '--policy-cert', this.policyCertFile, '--server-measurement', server.measurementHex, ...machine.storeArgs];
  }

  /** Runs `key-client CMD ARGS...` as `machine` against `server`; never throws. */
  kc(machine: Machine, server: KeyServer, cmd: string, args: string[] = [], input?: Uint8Array): Promise<RunResult> {
    return run('key-client', [cmd, ...args, ...this.clientArgs(machine, server)], { cwd: this.dir, ...(input ? { input } : {}) });
  }

  /** Runs cert-utility on `machine`'s store; never throws. */
  store(machine: Machine, cmd: string, args: string[] = []): Promise<RunResult> {
    return run('cert-utility', [cmd, ...args, ...machine.storeArgs], { cwd: this.dir });
  }

  /** Opens a cryptstore protected by this domain's key file (the machine's store must be idle). */
  openStore(dir: string): Promise<Cryptstore> {
    return Cryptstore.open(dir, new KeyFileProtector(readFileSync(this.keyFile)));
  }

  createStore(dir: string): Promise<Cryptstore> {
    return Cryptstore.create(dir, new KeyFileProtector(readFileSync(this.keyFile)));
  }

  /** `machine`'s key and admission certificate, read from its store in this process. */
  async identity(machine: Machine): Promise<MachineIdentity> {
    const store = await this.openStore(machine.store);
    try {
      return await loadIdentity(store, this.name, this.policyCert);
    } finally {
      await store.close();
    }
  }

  /** A KeyClient in this process: `identity` (or `machine`'s own) talking to `server`. */
  async connect(server: KeyServer, who: Machine | MachineIdentity, credential?: Credential): Promise<KeyClient> {
    const identity = 'storeArgs' in who ? await this.identity(who) : who;
    return KeyClient.connect({ host: '127.0.0.1', port: server.port, identity, policyCert: this.policyCert, serverMeasurements: [server.measurementHex], ...(credential ? { credential } : {}) });
  }

  /** Runs `fn` with a KeyClient of `who` connected to `server`, and closes it however fn ends. */
  async withClient<T>(server: KeyServer, who: Machine | MachineIdentity, fn: (c: KeyClient) => Promise<T>): Promise<T> {
    const c = await this.connect(server, who);
    try {
      return await fn(c);
    } finally {
      await c.close();
    }
  }

  /** Stops every child this domain started (SIGTERM by pid) and removes its directory. */
  async close(): Promise<void> {
    await Promise.all(this.children.map((c) => c.stop()));
    if (process.env.KEEP_E2E !== '1') this.cleanup();
  }
}

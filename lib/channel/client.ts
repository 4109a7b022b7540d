// The channel client: one connection, requests written as they come (pipelining) and answers
// matched in order. Every failure becomes a CertifierError whose code says whether to retry.

import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { CertifierError } from '../errors/index.ts';
import { FrameDecoder, encodeFrame } from '../wire/index.ts';
import { channelError, errnoOf, lookupTimeoutError, timeoutError, type PeerDates } from './errors.ts';
import { markUnsure, SECOND_TRY_PAUSE_MS, withSecondTry } from './second-try.ts';
import { baseTlsOptions, chainOf, exporterFor, hostPort, runVerifyPeer } from './tlsutil.ts';
import { resolveLimits, type ClientConnection, type ConnectOptions, type PreparedClientTls, type ResolvedLimits, type TlsIdentity, type TlsTrust } from './types.ts';

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** How a peer's close with our bytes unread reaches us (on a read, or on a write). */
const RESETS: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE']);
const LINGER_MS = 1_000;
/**
 * How long requests wait, under mutual TLS, for the server's session tickets (its acceptance of
 * our certificate) before they go anyway: a server that sends none costs each connection this.
 */
const VERDICT_WAIT_MS = 1_000;

interface Pending {
  resolve: (body: Uint8Array) => void;
  reject: (e: CertifierError) => void;
  settled: Promise<unknown>;
}

/** `t` made into OpenSSL's context once, for connect to use on every connection it is given to. */
export function prepareClientTls(t: TlsIdentity | TlsTrust): PreparedClientTls {
  const identity: Partial<TlsIdentity> & TlsTrust = t;
  return { ca: t.ca, mutual: identity.key !== undefined, context: tls.createSecureContext(baseTlsOptions(identity.ca, identity.key, identity.cert)) };
}

export async function connect<P>(opts: ConnectOptions<P>): Promise<ClientConnection<P>> {
  const limits = resolveLimits(opts.limits);
  const target = hostPort(opts.host, opts.port);
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) throw new CertifierError('INVALID_INPUT', `bad port ${String(opts.port)}`);
  if (opts.tls && opts.plain) throw new CertifierError('INVALID_INPUT', 'choose either tls or plain, not both');
  if (!opts.tls && opts.plain !== true) throw new CertifierError('INVALID_INPUT', 'a connection without tls must say plain: true');
  if (opts.verifyPeer && !opts.tls) throw new CertifierError('INVALID_INPUT', 'verifyPeer needs tls');
  const prepared = opts.tls && 'context' in opts.tls ? opts.tls : opts.tls ? prepareClientTls(opts.tls) : undefined;
  // Abandoned with a reason of ours (a run's deadline, say), the connection fails with it.
  const abandoned = () => opts.signal?.reason instanceof CertifierError ? opts.signal.reason : new CertifierError('UNREACHABLE', `the connection to ${target} was abandoned`);
  if (!prepared?.mutual) return connectOnce(opts, prepared, limits, target, 1, abandoned);
  return withSecondTry((attempt) => connectOnce(opts, prepared, limits, target, attempt, abandoned), opts.signal, abandoned);
}

/** One connection; `attempt` 2 is the second try after an unsure refusal (second-try.ts). */
async function connectOnce<P>(opts: ConnectOptions<P>, prepared: PreparedClientTls | undefined, limits: ResolvedLimits, target: string, attempt: 1 | 2, abandoned: () => CertifierError): Promise<Connection<P>> {
  const connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;

  let socket: Socket;
  let tlsSocket: TLSSocket | undefined;
  let served: Uint8Array[] | undefined;
  if (prepared) {
    tlsSocket = tls.connect({
      host: opts.host,
      port: opts.port,
      secureContext: prepared.context,
      rejectUnauthorized: true,
      // Our certificates name measurements, not hosts: identity is verifyPeer's job. Node hands
      // this callback the verified chain it has just read; keeping it spares verifyPeer a second read.
      checkServerIdentity: (_host, cert) => {
        served = chainOf(cert);
        return undefined;
      },
    });
    socket = tlsSocket;
  } else {
    socket = net.connect({ host: opts.host, port: opts.port });
  }
  // Listeners go on before the first tick so no early error is ever unhandled.
  // A name is looked up before connecting ('lookup' says it has been); the connect wait covers both.
  let lookingUp = net.isIP(opts.host) === 0;
  if (lookingUp) socket.once('lookup', () => void (lookingUp = false)); // an address is not looked up: no listener
  const connectTimeout = () => lookingUp ? lookupTimeoutError(opts.host, target, connectTimeoutMs) : timeoutError('connecting to', target, connectTimeoutMs);
  const conn = new Connection<P>(socket, tlsSocket, limits, target, prepared?.mutual ?? false, connectTimeoutMs, connectTimeout, attempt, prepared?.ca);
  const { signal } = opts;
  if (signal) {
    const abandon = () => conn.abort(abandoned());
    if (signal.aborted) abandon();
    else {
      signal.addEventListener('abort', abandon, { once: true });
      socket.once('close', () => signal.removeEventListener('abort', abandon));
    }
  }
  await conn.ready;
  // A refusal can arrive in the same read as the end of the handshake.
  if (conn.failed) throw conn.failed;
  if (opts.verifyPeer && tlsSocket) {
    try {
      conn.peer = runVerifyPeer(opts.verifyPeer, tlsSocket, served?.length ? served : undefined);
    } catch (e) {
      const err = e instanceof CertifierError ? e : new CertifierError('UNTRUSTED_PEER', `${target} is not a trusted peer`, { cause: e });
      conn.abort(err);
      throw err;
    }
  }
  return conn;
}

class Connection<P> implements ClientConnection<P> {
  peer: P | undefined = undefined;
  /** Made as the socket began connecting (connectOnce). */
  readonly startedAt = performance.now();
  readonly ready: Promise<void>;
  readonly exportKeyingMaterial: (label: string, length: number) => Uint8Array | undefined;
  private readonly decoder: FrameDecoder;
  private readonly pending: Pending[] = [];
  /** fail has run: the connection is over, and failure says why. */
  private ended = false;
  private failureError: CertifierError | undefined;
  private closing = false;
  private closed: Promise<void> | undefined;
  private isReady = false;
  private secureAt = 0;
  private sawTicket = false;
  /** Requests held until the server has accepted our certificate (mutual TLS), each with whom to tell once it is written; undefined once they may go. */
  private held: { frame: Uint8Array; written?: () => void }[] | undefined;
  private heldTimer: NodeJS.Timeout | undefined;
  private answered = 0;
  /** A request of ours has been written (under mutual TLS, not before the server's verdict or VERDICT_WAIT_MS). */
  private sent = false;
  private corked = false;
  private timer: NodeJS.Timeout | undefined;
  /** The timer is the one for answers: it fires at answerDue (performance.now()), or waits on to a later one. */
  private answerTimer = false;
  private answerDue = 0;
  private settleReady!: (e?: CertifierError) => void;
  /** Those waiting for the server's verdict on our certificate (accepted), and how long they wait. */
  private readonly verdictWaiters: { resolve: () => void; reject: (e: CertifierError) => void }[] = [];
  private verdictTimer: NodeJS.Timeout | undefined;
  /** The dates of the server's certificate, read only when Node's check of its chain failed. */
  private peerDates: PeerDates | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly tlsSocket: TLSSocket | undefined,
    private readonly limits: ResolvedLimits,
    private readonly target: string,
    private readonly mutual: boolean,
    connectTimeoutMs: number,
    /** The error for a connect wait that ran out. */
    connectTimeout: () => CertifierError,
    /** 2 on the second try after an unsure refusal, whose refusal is then taken as one. */
    readonly attempt: 1 | 2,
    private readonly ca?: string,
  ) {
    this.decoder = new FrameDecoder(limits.frameLimit);
    if (mutual) this.held = [];
    this.exportKeyingMaterial = exporterFor(tlsSocket);
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = (e) => (e ? reject(e) : resolve());
    });
    this.ready.catch(() => {}); // the failure is also reported through connect()
    this.arm(connectTimeoutMs, connectTimeout);
    socket.once('connect', () => {
      socket.setNoDelay(true);
      if (!tlsSocket) return this.becomeReady();
      const ms = limits.handshakeTimeoutMs;
      this.arm(ms, () => timeoutError('TLS handshake with', target, ms));
    });
    tlsSocket?.once('secureConnect', () => {
      this.secureAt = performance.now();
      this.becomeReady();
    });
    // Node checks the server's chain when the handshake is done ('secure'), and a socket whose
    // chain failed is destroyed, its certificate gone, before the error is seen. So the dates of
    // one that failed are read first, here: for a certificate not valid yet, or ended, they tell how
    // far this machine's clock may lag or run ahead (channelError). Only then, as reading a certificate costs.
    tlsSocket?.prependOnceListener('secure', () => {
      const handle = (tlsSocket as unknown as { _handle?: { verifyError?: () => unknown } })._handle;
      if (!handle?.verifyError?.()) return;
      const cert = tlsSocket.getPeerCertificate(false);
      const date = (text: string | undefined) => {
        const d = new Date(text ?? NaN);
        return Number.isFinite(d.getTime()) ? d : undefined;
      };
      this.peerDates = { notBefore: date(cert?.valid_from), notAfter: date(cert?.valid_to) };
    });
    // A TLS 1.3 server that accepted our certificate sends session tickets right after the
    // handshake; ours (and Node's own chain check) refuse by closing without them, in the same
    // tick, and send no alert. Requests wait for the tickets, so a clean close without them reads
    // as a refusal (as does a server killed in the handshake: connect asks it again, second-try.ts),
    // and one after them a hang-up. A reset reads as a refusal only after a request went (classify
    // says why).
    tlsSocket?.on('session', () => {
      this.sawTicket = true;
      clearTimeout(this.verdictTimer);
      for (const w of this.verdictWaiters.splice(0)) w.resolve();
      // Not from inside this callback: OpenSSL is reading, and a write made now sits unsent.
      if (this.held) setImmediate(() => this.release());
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // Errors are made only when they will be used: a connection ends with 'end' and 'close' both,
    // and each error costs a stack trace.
    socket.on('error', (e) => this.fail(() => this.classify(e)));
    socket.on('end', () => this.fail(this.closedError));
    socket.on('close', () => this.fail(this.closedError));
  }

  /**
   * Why the connection is over, made when first asked for: a close of ours with nothing pending
   * (every connection's end) then costs no error and no stack trace unless someone looks.
   */
  private get failure(): CertifierError | undefined {
    if (!this.ended) return undefined;
    this.failureError ??= new CertifierError('UNREACHABLE', `the connection to ${this.target} is closed`);
    return this.failureError;
  }

  request(body: Uint8Array, written?: () => void): Promise<Uint8Array> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new CertifierError('UNREACHABLE', `the connection to ${this.target} is closing`));
    let frame: Uint8Array;
    try {
      frame = encodeFrame(body, this.limits.frameLimit);
    } catch (e) {
      return Promise.reject(e);
    }
    let entry!: Pending;
    const promise = new Promise<Uint8Array>((resolve, reject) => {
      entry = { resolve, reject, settled: Promise.resolve() };
    });
    entry.settled = promise.catch(() => {});
    this.pending.push(entry);
    // Each answer gets readTimeoutMs from the moment it becomes the one we wait for.
    if (this.pending.length === 1) this.armResponseTimer();
    if (this.held) {
      this.held.push({ frame, ...(written ? { written } : {}) });
      this.heldTimer ??= setTimeout(() => this.release(), VERDICT_WAIT_MS);
    } else this.send(frame, written);
    return promise;
  }

  /**
   * Writes a request. Requests made together (a pipelining caller answering a batch of answers
   * with as many new requests) leave in one TLS record and one system call, not one each: the
   * socket is corked until the current tick's work is done, as the server does for its answers.
   */
  private send(frame: Uint8Array, written?: () => void): void {
    this.sent = true;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(frame);
    written?.();
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  /** Sends the requests held for the server's verdict on our certificate, and any later at once. */
  private release(): void {
    const frames = this.held;
    this.held = undefined;
    clearTimeout(this.heldTimer);
    if (this.ended) return;
    for (const { frame, written } of frames ?? []) this.send(frame, written);
  }

  /**
   * Resolves once the server has accepted our certificate (its session tickets came: see the
   * constructor), also when the connection has ended since (a hang-up after the tickets), and at
   * once on a live connection without mutual TLS; rejects with why the connection ended if it
   * ends first (a refusal is UNTRUSTED_PEER, as a request would learn it), or with TIMEOUT when no
   * verdict comes within the handshake's time. Sends nothing: key-client check asks only this.
   */
  accepted(): Promise<void> {
    if (this.sawTicket) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    if (!this.mutual) return Promise.resolve();
    const ms = this.limits.handshakeTimeoutMs;
    this.verdictTimer ??= setTimeout(() => this.fail(timeoutError('waiting for the verdict on our certificate from', this.target, ms)), ms);
    return new Promise((resolve, reject) => this.verdictWaiters.push({ resolve, reject }));
  }

  /** Idempotent: every call waits for the same close. */
  close(): Promise<void> {
    this.closed ??= this.closeOnce();
    return this.closed;
  }

  private async closeOnce(): Promise<void> {
    this.closing = true;
    await Promise.all(this.pending.map((p) => p.settled));
    if (this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const linger = setTimeout(() => this.socket.destroy(), LINGER_MS);
      this.socket.once('close', () => {
        clearTimeout(linger);
        resolve();
      });
      this.socket.end();
    });
  }

  get failed(): CertifierError | undefined {
    return this.failure;
  }

  /** Ends the connection with `err` (used when our own verifyPeer refuses the server). */
  abort(err: CertifierError): void {
    this.fail(err);
  }

  private becomeReady(): void {
    this.isReady = true;
    this.clearTimer();
    this.settleReady();
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    // The answers this read completed before a length over the limit are the requests' own (a
    // store's is how it learns its version); the requests after them fail with the length's error.
    const first = this.answered === 0 && this.decoder.pending === 0 ? chunk.subarray(0, 4) : undefined;
    const { frames, error: refused } = this.decoder.read(chunk);
    const named = refused && first && frames.length === 0 ? this.notCertifier(refused, first) : refused;
    const error = named && named === refused ? this.overLimit(named) : named;
    for (const frame of frames) {
      const next = this.pending.shift();
      if (!next) return this.fail(new CertifierError('DECODE_FAILED', `${this.target} sent an answer to no request`));
      this.answered++;
      next.resolve(frame);
      if (this.pending.length > 0) this.armResponseTimer();
      else this.clearTimer();
    }
    if (error) this.fail(error);
  }

  /**
   * A plain-TCP peer whose first bytes announce a message over the limit is another service (SSH
   * greets with "SSH-", HTTP answers "HTTP"): say so, and show those bytes when they are text.
   */
  private notCertifier(e: CertifierError, first: Uint8Array): CertifierError {
    if (this.tlsSocket || e.code !== 'FRAME_TOO_LARGE' || first.length < 4) return e;
    const text = first.every((b) => b >= 0x20 && b < 0x7f) ? `, "${Buffer.from(first).toString('latin1')}",` : '';
    return new CertifierError(e.code, `${this.target} answered with what is no Certifier message (its first bytes${text} announce a message of ${Buffer.from(first).readUInt32LE(0)} bytes, over the ${this.decoder.limit}-byte limit): is --server the address of a simpleserver --plain? Another service listens there`, { cause: e });
  }

  /** A length over the limit, said to be the server's: the decoder's own words name no peer. */
  private overLimit(e: CertifierError): CertifierError {
    const announced = e.details?.announced;
    if (e.code !== 'FRAME_TOO_LARGE' || typeof announced !== 'number') return e;
    return new CertifierError(e.code, `${this.target} sent an answer announced as ${announced} bytes, over the ${this.decoder.limit}-byte limit on one message: a fault of the server`, { cause: e, details: e.details });
  }

  /**
   * The answer now waited for is due readTimeoutMs from now. Pipelined answers arrive many to a
   * read: rather than a timer replaced per answer, the one armed moves its due time, and on
   * firing waits out what is left of it.
   */
  private armResponseTimer(): void {
    this.answerDue = performance.now() + this.limits.readTimeoutMs;
    if (this.answerTimer) return;
    this.clearTimer();
    this.answerTimer = true;
    this.timer = setTimeout(this.answerLate, this.limits.readTimeoutMs);
  }

  private readonly answerLate = (): void => {
    const left = this.answerDue - performance.now();
    if (left > 0) {
      this.timer = setTimeout(this.answerLate, left);
      return;
    }
    const ms = this.limits.readTimeoutMs;
    this.fail(timeoutError('waiting for an answer from', this.target, ms));
  };

  private arm(ms: number, error: () => CertifierError): void {
    this.clearTimer();
    this.timer = setTimeout(() => this.fail(error()), ms);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.answerTimer = false;
  }

  /**
   * True when a mutual-TLS server dropped us after the handshake without accepting (no session
   * ticket, no answer), within the handshake's time: a server slow to refuse (its event loop busy
   * past VERDICT_WAIT_MS, when our requests went anyway) refuses all the same. A server that
   * accepted sent its tickets before any request of ours went, so one dying on a request is not this.
   */
  private looksRefused(): boolean {
    return this.mutual && this.secureAt > 0 && !this.sawTicket && this.answered === 0
      && performance.now() - this.secureAt <= this.limits.handshakeTimeoutMs;
  }

  /**
   * A refusing server has read all we sent (our side of the handshake) and closes cleanly. A
   * reset says it closed with bytes of ours unread: a server that cut a handshake it had not
   * finished (one stopping, or dying), unless a request of ours had gone by then, when it may be
   * a refusal that came late. Any other error (a TLS alert not about certificates, say) is what
   * the peer said, and no refusal.
   */
  private classify(e: unknown): CertifierError {
    const err = channelError(e, this.target, this.tlsSocket?.authorizationError ? String(this.tlsSocket.authorizationError) : undefined, this.ca, this.peerDates);
    const reset = RESETS.has(errnoOf(e) ?? '');
    if (err.code === 'UNREACHABLE' && reset && this.sent && this.looksRefused()) return this.refusedError(e);
    return err;
  }

  private readonly closedError = (): CertifierError => {
    if (this.looksRefused()) return this.refusedError();
    if (!this.isReady) {
      const hint = this.tlsSocket ? ': a server closes a TLS handshake so when it has too many connections from this address (its log says), when it has no file descriptor left (nothing in its log), or when it speaks the original plain protocol (simpleserver --plain)' : '';
      return new CertifierError('UNREACHABLE', `${this.target} closed the connection before it was established${hint}`);
    }
    const partial = this.decoder.pending > 0 ? ` (${this.decoder.pending} bytes of an answer received)` : '';
    const when = this.pending.length > 0 ? ' before answering' : '';
    // A TLS server reads a plain request as a broken handshake and closes without a word.
    const plainHint = !this.tlsSocket && this.answered === 0 && this.pending.length > 0 && this.decoder.pending === 0
      ? ': a server that speaks TLS closes a plain-TCP connection this way' : '';
    return new CertifierError('UNREACHABLE', `${this.target} closed the connection${when}${partial}${plainHint}`, { details: { target: this.target } });
  };

  /**
   * A refusal as our servers make it, or a server killed in the handshake: unsure on a first try
   * (asked again, second-try.ts), taken as a refusal on the second.
   */
  private refusedError(cause?: unknown): CertifierError {
    const twice = this.attempt === 2 ? ` (asked twice, ${SECOND_TRY_PAUSE_MS} ms apart, as a server process killed in the handshake closes the same way)` : '';
    const err = new CertifierError('UNTRUSTED_PEER',
      `${this.target} closed the connection right after the TLS handshake without accepting it: it refused our certificate (its log says why: outside its dates by the server's clock, when this machine was certified minutes ago, means a clock more than 5 minutes off)${twice}`,
      { cause, details: { target: this.target, attempts: this.attempt } });
    return this.attempt === 1 ? markUnsure(err) : err;
  }

  /** Ends the connection once; `err` (or what it makes, only if used) says why. */
  private fail(err: CertifierError | (() => CertifierError)): void {
    if (this.ended) return;
    // Closing on purpose is not a failure of the requests already answered: failure then says
    // the connection is closed, an error made only if asked for.
    if (!(this.closing && this.pending.length === 0)) this.failureError = typeof err === 'function' ? err() : err;
    this.ended = true;
    this.clearTimer();
    clearTimeout(this.heldTimer);
    clearTimeout(this.verdictTimer);
    if (!this.isReady) this.settleReady(this.failure);
    for (const w of this.verdictWaiters.splice(0)) w.reject(this.failure!);
    for (const p of this.pending.splice(0)) p.reject(this.failure!);
    this.socket.destroy();
  }
}

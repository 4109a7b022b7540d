// One accepted connection on the server: frames in, handler, frames out, in order, under the
// read/idle/request limits. Every way it ends is logged once, and only this connection ends.
//
// Requests start one at a time, in order: the next starts once the handler says the effects of
// this one are in place. An answer the handler gives as a LaterAnswer waits in the outbox while
// the next request starts, so a pipelining client is not held up by, say, each answer's audit
// sync, or a read that changes nothing. The outbox is written strictly in order.

import type { Socket } from 'node:net';
import { FrameDecoder, encodeFrame } from '../wire/index.ts';
import { CertifierError } from '../errors/index.ts';
import { wipe } from '../crypto/index.ts';
import { logCode } from './errors.ts';
import type { ChannelLog, ConnectionInfo, Handler, ResolvedLimits } from './types.ts';

// Received but unanswered requests held per connection, and their bytes (requests, and answers
// ready but not yet passed on by the socket), before we stop reading: a pipelining client gets throughput (and
// its reads share audit syncs), a flooding one, or one that does not read what it asked for, gets
// TCP backpressure instead of our memory. One request of any allowed size is always taken.
const PIPELINE_DEPTH = 32;
const PIPELINE_BYTES = 1024 * 1024;
// After a graceful end, how long the peer gets to close its side before we cut it off.
export const LINGER_MS = 2_000;

/**
 * What all the connections of one server may hold at once. A connection's own limits count an
 * answer's bytes only once it is ready, and a read's size is known only then, so 32 reads of
 * 1 MiB values started together would hold 32 MiB on one connection (8 GiB on 256). Across the
 * server, at most `maxInFlight` answers are being made at a time and `maxHeld` bytes of ready
 * answers wait to be written or are being written (until the socket has passed them on to the
 * system); past either, connections start nothing until some is (their clients meet TCP
 * backpressure). A client that asks for large values and never reads
 * them holds what it took until its write timeout: no one address may take more than half of
 * what the others leave, and bytes from maxHeld to twice it are kept for addresses holding
 * none (see full). full() is asked only when an answer starts, and answers already being made
 * add their bytes when they are ready: ready bytes stay below 2 maxHeld plus maxInFlight of the
 * largest answers (a frame each), 128 MiB + 64 x 1 MiB = 192 MiB with the defaults.
 */
export class AnswerBudget {
  held = 0;
  inFlight = 0;
  private readonly byAddress = new Map<string, { held: number; inFlight: number }>();
  private readonly waiting = new Set<() => void>();
  constructor(readonly maxHeld = 64 * 1024 * 1024, readonly maxInFlight = 64) {}

  /**
   * No room for another answer from `address`. Answers being made are capped server-wide. Ready
   * bytes are capped at maxHeld for addresses holding or making some, and at twice that for one
   * with none, which may so start one answer however many hosts hold the rest and never read. And an address may hold at most
   * half of what the others leave: alone, half the budget; k of them taking all they may get
   * 1/(k+1) each.
   */
  full(address?: string): boolean {
    if (this.inFlight >= this.maxInFlight) return true;
    const mine = address === undefined ? undefined : this.byAddress.get(address);
    // Bytes above maxHeld (up to twice it) are kept for addresses holding none and making none:
    // an answer being made is bytes to come (its size is known only when it is ready).
    const holdsSome = address === undefined || (mine !== undefined && (mine.held > 0 || mine.inFlight > 0));
    if (this.held >= (holdsSome ? this.maxHeld : 2 * this.maxHeld)) return true;
    if (mine === undefined) return false;
    const heldShare = (this.maxHeld - (this.held - mine.held)) / 2;
    const inFlightShare = Math.floor((this.maxInFlight - (this.inFlight - mine.inFlight)) / 2);
    // An answer being made counts as its fair part of the budget (its size is known only when
    // it is ready), so an address cannot start its whole share of answers and overshoot its bytes.
    const coming = mine.inFlight * (this.maxHeld / this.maxInFlight);
    return mine.held + coming >= Math.max(1, heldShare) || mine.inFlight >= Math.max(1, inFlightShare);
  }

  /** Counts bytes of ready answers and answers being made against the budget and `address`'s share. */
  take(address: string, bytes: number, answers: number): void {
    this.held += bytes;
    this.inFlight += answers;
    const mine = this.byAddress.get(address) ?? { held: 0, inFlight: 0 };
    mine.held += bytes;
    mine.inFlight += answers;
    this.byAddress.set(address, mine);
  }

  /** Calls `wake` once, when there may be room again. */
  wait(wake: () => void): void {
    this.waiting.add(wake);
  }

  forget(wake: () => void): void {
    this.waiting.delete(wake);
  }

  /** Bytes passed on by a socket (or dropped) and answers made: room for others, whom it wakes. */
  release(address: string, bytes: number, answers: number): void {
    this.held -= bytes;
    this.inFlight -= answers;
    const mine = this.byAddress.get(address);
    if (mine) {
      mine.held -= bytes;
      mine.inFlight -= answers;
      if (mine.held <= 0 && mine.inFlight <= 0) this.byAddress.delete(address);
    }
    // Every waiter checks its own room again (an address holding nothing needs only a free
    // answer slot), and waits again if there is none.
    if (this.waiting.size === 0 || this.inFlight >= this.maxInFlight) return;
    const woken = [...this.waiting];
    this.waiting.clear();
    for (const wake of woken) wake();
  }
}

/**
 * A TLS record carrying a ClientHello, checked far enough that no frame of ours can pass for one
 * (a 66,326-byte frame starts 16 03 01 00 too): handshake record, version 3.1-3.4, a record
 * length, message type 1, and a handshake length 4 less than the record's.
 */
function isClientHello(b: Uint8Array): boolean {
  if (b.length < 9 || b[0] !== 0x16 || b[1] !== 0x03 || b[2]! < 0x01 || b[2]! > 0x04 || b[5] !== 0x01) return false;
  const record = (b[3]! << 8) | b[4]!;
  const message = (b[6]! << 16) | (b[7]! << 8) | b[8]!;
  return record >= 4 && message === record - 4;
}

export type CloseReason =
  | 'client-closed' | 'idle-timeout' | 'read-timeout' | 'write-timeout' | 'frame-error'
  | 'handler-error' | 'max-requests' | 'server-closing' | 'connection-error' | 'last-answer';

/** Why reading stops before the requests received are answered (stopReading). */
type StopReason = 'frame-error' | 'read-timeout' | 'last-answer';

/** What a plain-protocol server says to a TLS client before closing (see onData). */
const NOT_TLS_REPLY = new TextEncoder().encode('this server speaks the plain protocol, not TLS\n');

export class ServerSession<P> {
  private readonly decoder: FrameDecoder;
  private readonly queue: Uint8Array[] = []; // received, not started
  private readonly outbox: Promise<Uint8Array>[] = []; // started, answer not written yet
  private readonly secrets = new WeakSet<Promise<Uint8Array>>(); // of them, those holding a secret (LaterAnswer.secret)
  private readonly sizes: number[] = []; // of the requests not answered yet, in order
  private requestBytes = 0; // of the requests received and not answered
  private answerBytes = 0; // of the answers ready and not yet passed on by the socket
  private readonly started = performance.now(); // monotonic: a clock step does not change a duration
  /** The peer's address, whose share of the server's answer budget this connection draws on. */
  private readonly address: string;
  private received = 0; // frames read whole, those past the request limit too
  private handed = 0; // of them, handed to the handler
  private answered = 0;
  private busy = false; // a handler is starting a request
  private writing = false; // the outbox is being written
  private stopped = false; // a handler failed or gave the last answer, or bytes made no frame: answer what came before, then close
  /** Why reading stopped with requests still to answer: the close's reason once they are answered. */
  private endAfterAnswers: { reason: StopReason; error?: unknown } | undefined;
  private peerEnded = false;
  private draining = false; // server closing: answer what was received, read nothing more
  private finished = false;
  private paused = false;
  private corked = false;
  private readTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Once nothing more is read, with answers still being made: how long they have to come. */
  private graceTimer: NodeJS.Timeout | undefined;
  /**
   * The answers being made, each by what gives its place in the server's budget back: once, when
   * it settles or when the connection ends, whichever comes first. A handler that never settles
   * (storage that hangs) must not keep the place of an answer no one can receive.
   */
  private readonly making = new Set<() => void>();
  private lingerTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly info: ConnectionInfo<P>,
    private readonly handler: Handler<P>,
    private readonly limits: ResolvedLimits,
    private readonly log: ChannelLog,
    private readonly transport: string,
    private readonly onDone: () => void,
    private readonly budget: AnswerBudget = new AnswerBudget(),
  ) {
    this.decoder = new FrameDecoder(limits.frameLimit);
    this.address = socket.remoteAddress ?? 'unknown';
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (e) => this.finish('connection-error', e));
    socket.on('close', () => {
      this.finish('client-closed');
      this.clearTimers();
      if (this.lingerTimer) clearTimeout(this.lingerTimer);
      this.onDone();
    });
    this.rearm();
  }

  /** Graceful shutdown: answer received requests, then end. Idle connections end at once. */
  drain(): void {
    if (this.finished) return;
    this.draining = true;
    this.setPaused(true);
    if (this.idle()) this.finish('server-closing');
  }

  /** Hard stop, used when the shutdown grace period runs out. */
  destroy(): void {
    this.finish('server-closing');
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.finished || this.draining || this.stopped) return;
    // A TLS ClientHello read as a frame would announce ~64 KiB and wait out the read timeout:
    // on the plain protocol, it is told apart at once (a client that left out --plain).
    if (this.transport === 'plain' && this.received === 0 && this.decoder.pending === 0 && isClientHello(chunk)) {
      // Told, not just dropped: a line that is no TLS record fails the client's handshake with
      // "wrong version number" (UNSUPPORTED, not retried), where a bare close reads as a network fault.
      this.finish('frame-error', new CertifierError('DECODE_FAILED', 'a TLS handshake on the plain protocol (a client that should use --plain, or a server that should not)'), NOT_TLS_REPLY);
      return;
    }
    // The frames before a length over the limit, in this chunk as in those before, are answered.
    const { frames, error } = this.decoder.read(chunk);
    if (error) this.stopReading('frame-error', error);
    if (frames.length > 0 && this.readTimer) {
      // Each frame gets its own readTimeoutMs, counted from its first byte (roughly: this chunk).
      clearTimeout(this.readTimer);
      this.readTimer = undefined;
    }
    for (const frame of frames) {
      this.received++;
      // Frames past the per-connection budget are never handed to the handler (counted dropped).
      if (this.received > this.limits.maxRequestsPerConnection) continue;
      this.queue.push(frame);
      this.sizes.push(frame.length);
      this.requestBytes += frame.length;
    }
    this.updatePaused();
    this.rearm();
    void this.pump();
  }

  private onEnd(): void {
    this.peerEnded = true;
    try {
      this.decoder.end();
    } catch (e) {
      this.stopReading('frame-error', e);
      this.settle();
      return;
    }
    // A client may half-close after its last request; answer it first (allowHalfOpen).
    if (this.idle()) this.finish('client-closed');
    else this.awaitAnswers();
  }

  /**
   * Bytes that make no frame (a length over the limit, a frame cut short by the end), a frame
   * stalled past the read timeout while requests are being carried out, or an answer the handler
   * called the last: nothing more is read, and the requests before (those received, for the
   * last answer) are carried out and answered, in order, as any others; then the connection
   * closes for `reason` (at once when there are none).
   */
  private stopReading(reason: StopReason, error?: unknown): void {
    this.endAfterAnswers ??= { reason, error };
    this.stopped = true;
    this.setPaused(true);
    this.awaitAnswers();
  }

  /**
   * Nothing more will be read (the peer ended its side, or reading stopped) while answers are
   * still to come: they get the idle time from the last one written. Past it (a handler whose
   * storage hangs) the connection is cut, its requests unanswered, rather than kept, with its
   * share of the server's answers, until the server stops. The time starts again with each answer
   * written, so a long pipeline whose answers keep coming is not cut.
   */
  private awaitAnswers(): void {
    if (this.finished || this.idle() || !(this.peerEnded || this.stopped)) return;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => {
      this.finish(this.endAfterAnswers?.reason ?? (this.peerEnded ? 'client-closed' : 'handler-error'), this.endAfterAnswers?.error);
      this.socket.destroy();
    }, this.limits.idleTimeoutMs);
  }

  /** Takes a place among the answers the server makes at once; the function returned gives it back, once. */
  private takeAnswerSlot(): () => void {
    this.budget.take(this.address, 0, 1);
    const release = () => {
      if (this.making.delete(release)) this.budget.release(this.address, 0, 1);
    };
    this.making.add(release);
    return release;
  }

  /** Nothing received, started or unwritten. */
  private idle(): boolean {
    return !this.busy && !this.writing && this.queue.length === 0 && this.outbox.length === 0;
  }

  private holdAnswer(bytes: number | undefined): void {
    if (bytes === undefined || this.finished) return; // not bytes: flush refuses it; finished: never written
    this.answerBytes += bytes;
    this.budget.take(this.address, bytes, 0);
    this.updatePaused();
  }

  /** Room to start another request: few enough started and unwritten, their answers small enough, and the server's budget not spent. */
  private roomToStart(): boolean {
    return this.outbox.length < PIPELINE_DEPTH && this.answerBytes < PIPELINE_BYTES && !this.budget.full(this.address);
  }

  private readonly wake = () => void this.pump();

  /** Stops reading while too many requests or bytes are unanswered, or the request budget is spent. */
  private updatePaused(): void {
    const unanswered = this.queue.length + this.outbox.length;
    const bytes = this.requestBytes + this.answerBytes;
    const full = unanswered >= PIPELINE_DEPTH || bytes >= PIPELINE_BYTES;
    if (this.received >= this.limits.maxRequestsPerConnection || full) this.setPaused(true);
    else if (!this.draining && !this.stopped && unanswered < PIPELINE_DEPTH / 2 && bytes < PIPELINE_BYTES / 2) this.setPaused(false);
  }

  /** Starts queued requests one at a time, in order, while there is room; their answers go to the outbox. */
  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    this.rearm();
    while (!this.finished && this.queue.length > 0 && this.roomToStart()) {
      const request = this.queue.shift()!;
      this.handed++;
      let answer: Promise<Uint8Array>;
      // An answer counts as being made from the moment it is started, before the handler runs:
      // connections whose frames arrive in the same turn each see the others' (counted after
      // the handler, they all found room and together passed every limit).
      const release = this.takeAnswerSlot();
      try {
        const result = await this.handler(request, this.info);
        answer = result instanceof Uint8Array ? Promise.resolve(result) : result.later;
        if (!(result instanceof Uint8Array) && result.secret) this.secrets.add(answer);
        if (!(result instanceof Uint8Array) && result.last) this.stopReading('last-answer');
        // A ready answer counts against the byte budget until the socket has passed it on: a
        // client that asks for large values and does not read them stops being read (registered
        // before flush awaits it, so it is counted before its write uncounts it). A rejection is
        // handled when its turn to be written comes.
        answer.then((a) => {
          this.holdAnswer(a instanceof Uint8Array ? a.length : undefined);
          release();
        }, release);
      } catch (e) {
        release();
        // The protocol layer above decides what error answer to send; we only close, once the
        // answers before this one are written. Nothing more is read or started.
        answer = Promise.reject(e);
        answer.catch(() => {});
        this.stopped = true;
        this.queue.length = 0;
        this.setPaused(true);
      }
      this.outbox.push(answer);
      if (this.finished) this.unsent(answer); // the connection ended while the handler ran
      void this.flush();
    }
    this.busy = false;
    // Stopped by the server's budget, not our own: start again when there is room.
    if (!this.finished && this.queue.length > 0 && this.budget.full(this.address)) this.budget.wait(this.wake);
    this.settle();
  }

  /** Writes the outbox in order, each answer as soon as it and those before it are ready. */
  private async flush(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    while (!this.finished && this.outbox.length > 0) {
      let frame: Uint8Array;
      let held: number;
      const secret = this.secrets.has(this.outbox[0]!);
      let response: Uint8Array | undefined;
      try {
        response = await this.outbox[0]!;
        if (!(response instanceof Uint8Array)) throw new CertifierError('INTERNAL', 'handler returned no bytes');
        held = response.length;
        frame = encodeFrame(response, this.limits.frameLimit);
      } catch (e) {
        if (secret && response instanceof Uint8Array) response.fill(0);
        this.finish('handler-error', e);
        break;
      }
      this.outbox.shift();
      if (this.finished) {
        if (secret) wipe(response, frame);
        break;
      }
      this.answered++;
      this.requestBytes -= this.sizes.shift() ?? 0;
      this.updatePaused();
      if (this.queue.length > 0) void this.pump(); // room for a request that was waiting for it
      if (secret) {
        this.awaitAnswers();
        await this.writeSecret(frame, response, held);
        continue;
      }
      this.corkUntilNextTick();
      this.awaitAnswers(); // an answer came: those still to come get the time again
      // Its bytes stay counted until the socket has passed them to the system: for a client that
      // reads nothing, that is once the kernel's buffers are full never, and the frame (with its
      // ciphertext under TLS) stays in our memory, one per connection beyond the budget otherwise.
      if (!this.socket.write(frame, () => this.written(held))) await this.waitForDrain();
    }
    this.writing = false;
    this.settle();
  }

  /** An answer of `bytes` the socket has passed on (or failed to): room for others, here and across the server. */
  private written(bytes: number): void {
    if (this.finished) return; // finish() gave back every byte still counted
    this.answerBytes -= bytes;
    this.budget.release(this.address, bytes, 0);
    this.updatePaused();
    if (this.queue.length > 0) void this.pump();
  }

  /**
   * Answers that become ready together (a batch of reads, a group-committed audit write) leave
   * in one TLS record and one system call rather than one each.
   */
  private corkUntilNextTick(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  /** After starting or writing: end the connection if its work is done and it should end. */
  private settle(): void {
    if (this.finished) return;
    if (!this.idle()) {
      this.rearm();
      return;
    }
    if (this.endAfterAnswers) this.finish(this.endAfterAnswers.reason, this.endAfterAnswers.error);
    else if (this.answered >= this.limits.maxRequestsPerConnection) this.finish('max-requests');
    else if (this.draining) this.finish('server-closing');
    else if (this.peerEnded) this.finish('client-closed');
    else this.rearm();
  }

  /**
   * Writes an answer holding a secret alone, nothing corked with it (TLS copies buffers written
   * together into one that Node frees without overwriting it), and overwrites it and its frame
   * once written, or failed, when its `held` bytes leave the budget; the next answer waits for
   * that, or for the write timeout.
   */
  private writeSecret(frame: Uint8Array, response: Uint8Array, held: number): Promise<void> {
    while (this.socket.writableCorked > 0) this.socket.uncork();
    const written = new Promise<void>((resolve) => this.socket.write(frame, () => {
      wipe(frame, response);
      this.written(held);
      resolve();
    }));
    return this.waitForDrain(written);
  }

  /** An answer that will never be written: overwritten once ready, if it holds a secret. */
  private unsent(answer: Promise<Uint8Array>): void {
    if (this.secrets.has(answer)) answer.then((b) => b instanceof Uint8Array && b.fill(0), () => {});
  }

  /**
   * A client that sends but never reads must not pin our buffers: give it the idle time. Waits for
   * 'drain', or for `written` (a write's callback) when given.
   */
  private waitForDrain(written?: Promise<void>): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.finish('write-timeout');
        this.socket.destroy();
        resolve();
      }, this.limits.idleTimeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      if (written) void written.then(done);
      else this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  private setPaused(paused: boolean): void {
    if (paused === this.paused || this.finished) return;
    this.paused = paused;
    if (paused) this.socket.pause();
    else this.socket.resume();
    this.rearm();
  }

  /**
   * Timers follow the connection's state: a started frame must complete within readTimeoutMs
   * (unless we stopped reading), and a connection with nothing to do gets idleTimeoutMs.
   */
  private rearm(): void {
    if (this.finished) return;
    const partial = this.decoder.pending > 0 && !this.paused;
    if (!partial && this.readTimer) {
      clearTimeout(this.readTimer);
      this.readTimer = undefined;
    }
    if (partial && !this.readTimer) {
      this.readTimer = setTimeout(() => this.timedOut('read-timeout'), this.limits.readTimeoutMs);
    }
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
    }
    if (this.idle() && this.decoder.pending === 0) {
      this.idleTimer = setTimeout(() => this.timedOut('idle-timeout'), this.limits.idleTimeoutMs);
    }
  }

  private timedOut(reason: 'read-timeout' | 'idle-timeout'): void {
    if (reason === 'read-timeout' && !this.idle()) {
      // Requests read before the stalled frame are being carried out (an answer waiting for its
      // audit sync): they are answered, as before bytes that make no frame, and then it closes.
      // A peer that does not read them meets the write timeout; a handler that never answers
      // (storage that hangs) meets awaitAnswers' grace.
      this.stopReading(reason);
      return;
    }
    this.finish(reason);
    // A stalled frame is a broken or hostile peer: no need to be polite to it.
    if (reason === 'read-timeout') this.socket.destroy();
  }

  private clearTimers(): void {
    if (this.readTimer) clearTimeout(this.readTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.readTimer = this.idleTimer = this.graceTimer = undefined;
  }

  /** Ends the connection once, with one log record saying why. */
  private finish(reason: CloseReason, error?: unknown, farewell?: Uint8Array): void {
    if (this.finished) return;
    this.finished = true;
    this.clearTimers();
    // Ready answers that will never be written no longer count against the server's budget, nor
    // do those still being made, which could never be delivered (their handlers may go on).
    this.budget.forget(this.wake);
    for (const release of [...this.making]) release();
    this.budget.release(this.address, this.answerBytes, 0);
    this.answerBytes = 0;
    for (const answer of this.outbox) this.unsent(answer);
    const record: Record<string, unknown> = {
      event: 'closed', conn: this.info.id, remote: this.info.remote, transport: this.transport,
      // Read whole; answered; never started (past the request limit, or behind a request that failed or the close).
      reason, requests: this.received, answered: this.answered, dropped: this.received - this.handed, durationMs: Math.round(performance.now() - this.started),
    };
    // Started and never answered: a request that failed, or one still being carried out when the connection was cut.
    if (this.handed > this.answered) record.unanswered = this.handed - this.answered;
    if (reason === 'read-timeout' || reason === 'idle-timeout' || reason === 'write-timeout') record.code = 'TIMEOUT';
    if (error !== undefined) record.code = logCode(error);
    if (error instanceof CertifierError && reason === 'frame-error') record.message = error.message;
    this.log(record as { event: string });
    // Broken bytes with nothing answered: cut off. Answers written are let go first (a close with
    // the peer's bytes unread resets the connection, which may drop them before they are read).
    if (reason === 'connection-error' || (reason === 'frame-error' && !farewell && this.answered === 0)) {
      this.socket.destroy();
      return;
    }
    // Graceful: answers already written are flushed before our FIN (and close_notify).
    if (farewell) this.socket.end(farewell);
    else this.socket.end();
    this.lingerTimer = setTimeout(() => this.socket.destroy(), LINGER_MS);
    this.lingerTimer.unref();
  }
}

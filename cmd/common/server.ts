// Running a server from a command: print where it listens (stdout), log one line per event
// (stderr), shut down cleanly on SIGINT/SIGTERM, reload on SIGHUP, back up on SIGUSR1.

import { hostPort, type ChannelServer } from '../../lib/channel/index.ts';
import { CertifierError, errorFields, errorText } from '../../lib/errors/index.ts';
import { isoNow } from '../../lib/util/clock.ts';
import { within } from '../../lib/util/within.ts';
import { readsAsAnother, visibleJson } from '../../lib/wire/index.ts';
import { exitOnceDone, note, warn } from './cli.ts';

// Spaces, quotes and "=" would blur where a value ends; control and format characters (C0, C1,
// bidirectional overrides) in a name a client chose could rewrite how the line looks on a terminal.
// Printable ASCII but those three (most values: names, codes, hex, addresses) is known to be safe
// with one test, before the Unicode ones.
const PLAIN = /^[!#-<>-~]*$/;
const needsQuoting = (v: string) => !PLAIN.test(v) && (/[\s"=]/.test(v) || readsAsAnother(v));

/** A log record as the line logLine writes, newline included. */
export function renderLogLine(program: string, json: boolean): (r: object) => string {
  return (r: object): string => {
    const own = r as Record<string, unknown>;
    if (json) return `${visibleJson({ time: isoNow(), ...r })}\n`;
    // As { time: now, ...r }: a record's own time, if it has one, is the line's.
    let fields = '';
    for (const k of Object.keys(own)) {
      const v = own[k];
      if (k === 'time' || k === 'event' || v === undefined) continue;
      fields += `${fields ? ' ' : ''}${k}=${typeof v === 'string' ? (needsQuoting(v) ? visibleJson(v) : v) : typeof v === 'object' && v !== null ? visibleJson(v) : String(v)}`;
    }
    return `${program}: ${Object.hasOwn(own, 'time') ? String(own.time) : isoNow()} ${String(own.event)} ${fields}\n`;
  };
}

/** Writes a log record as one line on stderr: "prog: 2026-11-26T16:40:00Z event key=value ...". */
export function logLine(program: string, json: boolean) {
  const render = renderLogLine(program, json);
  return (r: object): void => void process.stderr.write(render(r));
}

/** What cmd/bin/launch.js keeps of a server's signals before it serves. */
interface EarlySignals {
  hangups: number;
  stop: NodeJS.Signals | undefined;
  onHangup: () => void;
  onStop: (signal: NodeJS.Signals) => void;
}

/** How long a stop waits for a reload or backup still running. */
export const TASK_GRACE_MS = 10_000;
/**
 * How long a stop then waits for a backup it abandoned: it stops and removes its partial copy, or
 * says within STUCK_MS (2 s) that it is stuck in a call and leaves it; this is the bound behind that.
 */
export const ABANDON_MS = 3_000;
/**
 * How long a stopping server waits for each thing it opened (a database, a store) to close once
 * its requests are done or abandoned: one held by a call that never returns (a hung disk, a frozen
 * PostgreSQL) is left to the process's exit.
 */
export const CLOSE_MS = 5_000;

/**
 * Closes what `close` closes, or, past CLOSE_MS, warns that `what` is left to the process's exit,
 * which then comes once the result is written (it would otherwise wait for that call for ever).
 * Whether it closed.
 */
export async function closeWithin(program: string, what: string, close: () => Promise<void>): Promise<boolean> {
  if (await within(close(), CLOSE_MS)) return true;
  warn(program, `${what} did not close within ${CLOSE_MS / 1000} s (a call to it that does not return): it is left to the process's exit`);
  exitOnceDone();
  return false;
}

/** How long a stop gives the connections to take their answers before it closes them. */
export const STOP_GRACE_MS = 10_000;

export interface RunOptions {
  log: (record: object) => void;
  /**
   * What SIGHUP reloads (a server's ACL, its policy): it reads and checks the files again and
   * swaps them in only if they are good, returning what it loaded for the log. Without it SIGHUP
   * is logged and ignored; it never stops a server, as its default action would.
   */
  reload?: () => Promise<Record<string, unknown>>;
  /** The file a reload reads, as `reload` names it in its reloaded line: its reload-failed line names it too. */
  reloads?: Record<string, string>;
  /** What a reload without `reload` is told. */
  nothingToReload?: string;
  /**
   * What SIGUSR1 does: a backup (key-server --backup-dir), returning what it wrote for the log.
   * `signal` is aborted when a stop abandons it: it stops promptly, removing what it wrote.
   */
  backup?: (signal: AbortSignal) => Promise<Record<string, unknown>>;
  /** Why SIGUSR1 does nothing, for the log line, when there is no backup. */
  nothingToBackUp?: string;
  graceMs?: number;
  /** Run once the server has closed, before it says it stopped (key-server closes its audit log and logs where the chain ends). */
  closed?: () => Promise<void>;
  /** A reason to stop without a signal (a replica whose id another took): the server stops as on SIGTERM, then fails with it. */
  fatal?: Promise<CertifierError>;
}

/** Announces the address on stdout, then waits for a signal and closes gracefully. */
export async function runUntilSignal(program: string, server: ChannelServer, json: boolean, o: RunOptions): Promise<Record<string, unknown>> {
  // Reloads one at a time, and backups one at a time, each from the files as they are when it
  // starts; but neither kind waits for the other: a backup of a large database takes minutes, and
  // an ACL reloaded to revoke a machine must be in force once it is read, not once the backup ends.
  // A signal that comes while one of its kind waits its turn joins that one, which reads the files
  // (copies the database) as they are when it starts: a storm of SIGUSR1 is one more backup, not
  // one each. One that has not begun when a stop comes is not made: the stop need not wait for it.
  const queues = new Map<string, Promise<void>>();
  const waiting = new Set<string>();
  let stopping = false;
  const abandon = new AbortController();
  const onSignal = (what: string, task: ((signal: AbortSignal) => Promise<Record<string, unknown>>) | undefined, done: string, nothing: string, reads?: Record<string, string>) => () => {
    if (waiting.has(what)) return;
    waiting.add(what);
    queues.set(what, (queues.get(what) ?? Promise.resolve()).then(async () => {
      waiting.delete(what);
      if (stopping && task) {
        o.log({ event: `${what}-ignored`, reason: 'the server is stopping' });
        return;
      }
      if (!task) {
        o.log({ event: `${what}-ignored`, reason: nothing });
        return;
      }
      try {
        o.log({ event: done, ...(await task(abandon.signal)) });
      } catch (e) {
        if (abandon.signal.aborted) {
          o.log({ event: `${what}-abandoned`, reason: 'the server is stopping', ...(e instanceof Error ? { detail: errorText(e) } : {}) });
          return;
        }
        // What was in force serves on, and the line says so (a reader could take a failed reload
        // for a server left without one); the reason names the file and what is wrong with it.
        o.log({ event: `${what}-failed`, ...errorFields(e), ...reads,
          ...(reads ? { kept: 'the one in force before serves on: fix the file, then send SIGHUP again' } : {}) });
      }
    }));
  };
  const onHangup = onSignal('reload', o.reload, 'reloaded', o.nothingToReload ?? 'nothing to reload', o.reloads);
  const onUser1 = onSignal('backup', o.backup, 'backup-written', o.nothingToBackUp ?? 'nothing to back up (key-server --backup-dir)');
  process.on('SIGHUP', onHangup);
  process.on('SIGUSR1', onUser1);
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  // Signals that came while the server started (kept by cmd/bin/launch.js): a stop stops it now,
  // unannounced; a SIGHUP is acted on once (its files may have changed after they were read).
  const early = (globalThis as Record<symbol, EarlySignals | undefined>)[Symbol.for('certifier.earlySignals')];
  if (early) {
    process.off('SIGHUP', early.onHangup);
    process.off('SIGINT', early.onStop);
    process.off('SIGTERM', early.onStop);
  }
  const stoppedEarly = early?.stop;
  if (!stoppedEarly && early && early.hangups > 0) onHangup();
  // Announced only once every signal has its handler: whoever starts the server on seeing this
  // line may signal it at once. The text as --server takes it (an IPv6 address in brackets), to
  // be pasted there; the document for programs keeps the host and the port apart.
  const { host, port } = server.address;
  if (!stoppedEarly) process.stdout.write(json ? JSON.stringify({ ok: true, listening: { host, port } }) + '\n' : `listening ${hostPort(host, port)}\n`);
  const stop: NodeJS.Signals | CertifierError = stoppedEarly ?? (await Promise.race([signalled, ...(o.fatal ? [o.fatal] : [])]));
  stopping = true;
  process.off('SIGHUP', onHangup);
  process.off('SIGUSR1', onUser1);
  // Stopping: too late to reload or back up, and no reason to die at once. Nor on a second SIGINT
  // or SIGTERM (Node's default once the once-listeners are gone): that would cut short a backup
  // being written and the stores still being audited; the stop goes on (SIGKILL ends it at once).
  process.on('SIGHUP', () => {});
  process.on('SIGUSR1', () => {});
  const again = (signal: NodeJS.Signals) => note(program, `${signal}: already stopping (SIGKILL stops at once)`);
  process.on('SIGINT', again);
  process.on('SIGTERM', again);
  // A reload or backup still running is waited for, but not for ever: one stuck reading a file
  // (a FIFO, a hung mount) must not keep a stop signal from stopping the server.
  const stuck = !(await within(Promise.all(queues.values()), TASK_GRACE_MS));
  if (stuck) {
    warn(program, `a reload or backup still running after ${TASK_GRACE_MS / 1000} s is abandoned: stopping`);
    // A backup stops at its next step and removes its partial copy, before the server says it
    // stopped; a reload stuck in a read cannot be stopped, and is not waited for again.
    abandon.abort();
    await within(queues.get('backup') ?? Promise.resolve(), ABANDON_MS);
  }
  note(program, `${typeof stop === 'string' ? stop : `[${stop.code}]`}: finishing requests in flight, then stopping`);
  await server.close(o.graceMs ?? STOP_GRACE_MS);
  await o.closed?.();
  note(program, 'stopped');
  // The abandoned task may hold a thread in a read that never returns, which would keep the
  // process alive: once the result is written, it exits.
  if (stuck) exitOnceDone();
  if (typeof stop !== 'string') throw stop;
  return { stopped: stop };
}

// SIGINT, SIGTERM and SIGHUP while files holding secrets are written: a temporary file not yet in
// place is removed on the way out, and while files go in place (commitAll) or a store changes
// (holdingSignals) a signal waits for the work, then acts as it would have.

import { unlinkSync } from 'node:fs';

// Temporary files not yet renamed into place may hold a secret (get-item --out). A program that
// is interrupted while one exists removes it on the way out, unless the program handles the
// signal itself (a server finishing its work), which then commits or discards its files.
// (While commitAll puts files in place, a signal waits for it: see deferredSignals.)
const live = new Set<string>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Signals the program had its own listeners for when we began listening: those are its to handle. */
const theirs = new Set<NodeJS.Signals>();

export function remember(tmp: string): void {
  live.add(tmp);
  listenWhileNeeded();
}

export function forget(tmp: string): void {
  if (live.delete(tmp)) listenWhileNeeded();
}

/** Whether onSignal is listening: while a temporary file lives, and while commitAll runs. */
let listening = false;

export function listenWhileNeeded(): void {
  const needed = live.size > 0 || deferredSignals.depth > 0;
  if (needed === listening) return;
  listening = needed;
  if (!needed) {
    for (const sig of SIGNALS) process.off(sig, onSignal);
    return;
  }
  theirs.clear();
  // Decided now, not when the signal comes: a listener added with process.once is already gone by then.
  for (const sig of SIGNALS) {
    if (process.listenerCount(sig) > 0) theirs.add(sig);
    process.on(sig, onSignal);
  }
}

/** While commitAll puts files in place: how many are doing so, and a signal that came meanwhile. */
export const deferredSignals: { depth: number; pending?: NodeJS.Signals } = { depth: 0 };

function onSignal(signal: NodeJS.Signals): void {
  if (theirs.has(signal)) return;
  if (deferredSignals.depth > 0) {
    deferredSignals.pending ??= signal;
    return;
  }
  removeLive();
  // As if there had been no listener: the default action, so the exit status says which signal.
  process.kill(process.pid, signal);
}

function removeLive(): void {
  for (const tmp of live) {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
  live.clear();
  listenWhileNeeded();
}

/**
 * On the way out after a fault nothing caught (cmd/common/uncaught.ts): the temporary files not
 * yet in place are removed, as a signal removes them; but not while files go in place
 * (commitAll), where what is left is the next run's to sweep, as after a crash.
 */
export function discardUnplaced(): void {
  if (deferredSignals.depth === 0) removeLive();
}

/**
 * Runs `work` with SIGINT, SIGTERM and SIGHUP held, as commitAll does while files go in place: a
 * change that cannot be cut short (a store's batch) is never cut off from its report. One that
 * came meanwhile waits for the work; then `completed` is told what it returned, or `failed` why it
 * failed (the signal ends the program before the caller could say it), and the signal ends the
 * program as it would have.
 */
export async function holdingSignals<T>(work: () => Promise<T>, completed?: (signal: NodeJS.Signals, result: T) => void, failed?: (signal: NodeJS.Signals, error: unknown) => void): Promise<T> {
  deferredSignals.depth++;
  listenWhileNeeded();
  let done: { result: T } | { error: unknown } | undefined;
  try {
    done = { result: await work() };
    return done.result;
  } catch (error) {
    done = { error };
    throw error;
  } finally {
    const outcome = done;
    await releaseSignals(outcome && 'result' in outcome ? completed && ((signal) => completed(signal, outcome.result)) : failed && ((signal) => failed(signal, outcome?.error)));
  }
}

/** The end of a stretch of held signals: the one that came meanwhile (if any) now acts, once `completed` is told. */
export async function releaseSignals(completed: ((signal: NodeJS.Signals) => void) | undefined): Promise<void> {
  // A signal that came during the work may not have reached its listener yet: libuv handles
  // signals last among what one turn of the event loop finds, so the work's end, found in the
  // same turn, would release them first, and that signal, no longer listened for, would be lost.
  // setImmediate runs after that turn.
  await new Promise((resolve) => setImmediate(resolve));
  deferredSignals.depth--;
  const signal = deferredSignals.pending;
  if (deferredSignals.depth === 0 && signal) {
    deferredSignals.pending = undefined;
    completed?.(signal);
    onSignal(signal);
  }
  listenWhileNeeded();
}

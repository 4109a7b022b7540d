// --timeout: how long a client program (key-client, init-trust, key-server join; key-server serve
// renewing its certificate through simpleserver) waits for its server at each step, so that a
// first boot never hangs (cli.ts's explainTimeout says what to do when one runs out); and
// key-client's --deadline, which bounds the whole run, however many waits it makes.

import { Option } from 'commander';
import { CertifierError } from '../../lib/errors/index.ts';
import type { Waits } from '../../lib/channel/index.ts';
import { intInRange } from './cli.ts';

export const DEFAULT_TIMEOUT_SECONDS = 10;

export interface TimeoutOption {
  timeout: number;
}

/** --timeout SECONDS: 1 to 3600, default 10; `help` for a program whose server is not the one it names. */
export function timeoutFlag(help = 'seconds to wait for the server at each step: connecting, the TLS handshake, each answer (TIMEOUT, exit 3, when one runs out)'): Option {
  return new Option('--timeout <seconds>', help).argParser(intInRange(1, 3600)).default(DEFAULT_TIMEOUT_SECONDS);
}

/** The waits --timeout gives a connection. */
export function waitsOf(o: TimeoutOption): Waits {
  const ms = o.timeout * 1000;
  return { connectTimeoutMs: ms, handshakeTimeoutMs: ms, readTimeoutMs: ms };
}

/** --deadline: the whole run's time, which --timeout's waits add up to however many there are. */
export interface DeadlineOption {
  deadline?: number;
}

/** --deadline SECONDS: 1 to 86400, none by default. */
export function deadlineFlag(): Option {
  return new Option('--deadline <seconds>', 'seconds the whole run may take, from its start: past them it stops waiting for the server (DEADLINE, exit 3; nothing is written of what had not all arrived); none by default').argParser(intInRange(1, 86_400));
}

/**
 * A signal that aborts once the run has lasted --deadline seconds (counted from the process's
 * start), its reason DEADLINE naming the flag and `server`; undefined without --deadline. Its timer
 * keeps no process alive.
 */
export function deadlineSignal(o: DeadlineOption, server: string): AbortSignal | undefined {
  if (o.deadline === undefined) return undefined;
  const seconds = o.deadline;
  const controller = new AbortController();
  const passed = () => controller.abort(new CertifierError('DEADLINE', `the run's --deadline ${seconds} passed before the key-server at ${server} was done: it answered too slowly (each wait inside --timeout, but all of them together longer), or kept sending more; a retry may succeed, or give the run longer with --deadline`));
  // performance.now() counts from the process's start: the run's time includes Node's own start.
  setTimeout(passed, Math.max(0, seconds * 1000 - performance.now())).unref();
  return controller.signal;
}

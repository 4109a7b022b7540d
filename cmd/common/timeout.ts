// --timeout: how long a client program (key-client, init-trust, key-server join) waits for its
// server at each step, and what it says when one runs out, so that a first boot never hangs.

import { Option } from 'commander';
import { CertifierError, isCertifierError } from '../../lib/errors/index.ts';
import type { Waits } from '../../lib/channel/index.ts';
import { intInRange } from './cli.ts';

export const DEFAULT_TIMEOUT_SECONDS = 10;

export interface TimeoutOption {
  timeout: number;
}

/** --timeout SECONDS: 1 to 3600, default 10. */
export function timeoutFlag(): Option {
  return new Option('--timeout <seconds>', 'seconds to wait for the server at each step: connecting, the TLS handshake, each answer (TIMEOUT, exit 3, when one runs out)')
    .argParser(intInRange(1, 3600)).default(DEFAULT_TIMEOUT_SECONDS);
}

/** The waits --timeout gives a connection. */
export function waitsOf(o: TimeoutOption): Waits {
  const ms = o.timeout * 1000;
  return { connectTimeoutMs: ms, handshakeTimeoutMs: ms, readTimeoutMs: ms };
}

/** A wait of this program's that ran out (the channel's timeoutError) is `e` or what it wraps. */
function ranOut(e: unknown): boolean {
  for (let c = e, depth = 0; c instanceof Error && depth < 4; c = c.cause, depth++) {
    if (isCertifierError(c, 'TIMEOUT') && c.details?.timeoutMs !== undefined) return true;
  }
  return false;
}

/**
 * `e`, when a wait of ours ran out (it, or the error it wraps: a retrieve's "nothing was written"),
 * saying what may be wrong and that --timeout sets it; any other error (a server's own TIMEOUT,
 * its storage's) as it is.
 */
export function explainTimeout(e: unknown, o: TimeoutOption): unknown {
  if (!isCertifierError(e, 'TIMEOUT') || !ranOut(e)) return e;
  return new CertifierError('TIMEOUT', `${e.message} (--timeout ${o.timeout}): the server is stopped, overloaded or cut off; a retry may succeed, or give it longer with --timeout`, { cause: e, details: e.details });
}

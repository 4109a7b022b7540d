// --timeout: how long a client program (key-client, init-trust, key-server join) waits for its
// server at each step, so that a first boot never hangs (cli.ts's explainTimeout says what to do
// when one runs out).

import { Option } from 'commander';
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

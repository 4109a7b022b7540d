// --timeout: how long a client program (key-client, init-trust, key-server join; key-server serve
// renewing its certificate through simpleserver) waits for its server at each step, so that a
// first boot never hangs (cli.ts's explainTimeout says what to do when one runs out).

import { Option } from 'commander';
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

// A mutual-TLS connection closed right after its handshake, without tickets and without a word,
// is how our servers refuse a certificate, and also how a server process killed mid-handshake
// looks: the client asks once more, after a pause, before it calls that a refusal.

import { CertifierError } from '../errors/index.ts';
import type { ClientConnection } from './types.ts';

/**
 * The pause before the second try. A killed process's listening socket is gone by the time its
 * close reaches us, so the second try hears at once that nobody is there (UNREACHABLE, retried by
 * first-boot), or reaches a process started meanwhile; the pause is what keeps a real refusal from
 * costing the server two handshakes back to back, and all it adds to one (half a second on top of
 * a handshake) is small beside the waits of --timeout and first-boot's retries.
 */
export const SECOND_TRY_PAUSE_MS = 500;

/** A connection as connect makes it, with why it ended (undefined while it lasts). */
export interface EndingConnection<P> extends ClientConnection<P> {
  readonly failed: CertifierError | undefined;
}

/** The errors that say only "closed after the handshake without accepting": not a certain refusal. */
const unsure = new WeakSet<CertifierError>();

export function markUnsure(e: CertifierError): CertifierError {
  unsure.add(e);
  return e;
}

function isUnsure(e: unknown): boolean {
  return e instanceof CertifierError && unsure.has(e);
}

/** Resolves after `ms`, or rejects with `abandoned()` once `signal` aborts. */
function pause(ms: number, signal: AbortSignal | undefined, abandoned: () => CertifierError): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(abandoned());
    const onAbort = () => {
      clearTimeout(timer);
      reject(abandoned());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * `open(1)`, and when it or the first requests on it end in an unsure refusal, `open(2)` after
 * SECOND_TRY_PAUSE_MS: whatever that says (a refusal again, the server gone, success) stands.
 */
export async function withSecondTry<P>(
  open: (attempt: 1 | 2) => Promise<EndingConnection<P>>,
  signal: AbortSignal | undefined,
  abandoned: () => CertifierError,
): Promise<EndingConnection<P>> {
  const again = async () => {
    await pause(SECOND_TRY_PAUSE_MS, signal, abandoned);
    return open(2);
  };
  try {
    return new SecondTry(await open(1), again);
  } catch (e) {
    if (!isUnsure(e)) throw e;
    return again();
  }
}

/**
 * A connection whose requests, when the server closes it as a refusal would before answering
 * any, are sent again on a second connection. Our servers send their tickets before they read a
 * request, and requests wait for them, so none of these was read; but one that went when the
 * wait for the tickets ran out may have been read by a server that never sends them, and is sent
 * again only where the caller says a repeat is harmless (not `once`): one that is not fails with
 * the second connection's refusal, if it refuses too, else as one that may have been carried out.
 * A request after an answer is never sent again, as an answer is an acceptance and a close after
 * it a hang-up.
 */
class SecondTry<P> implements EndingConnection<P> {
  private second: Promise<EndingConnection<P>> | undefined;

  constructor(private current: EndingConnection<P>, private readonly again: () => Promise<EndingConnection<P>>) {}

  get peer(): P | undefined {
    return this.current.peer;
  }

  get failed(): CertifierError | undefined {
    return this.current.failed;
  }

  get attempt(): 1 | 2 {
    return this.current.attempt;
  }

  get startedAt(): number {
    return this.current.startedAt;
  }

  request(body: Uint8Array, written?: () => void, once?: boolean): Promise<Uint8Array> {
    if (!written && !once) return this.onSecond((c) => c.request(body));
    // A request written on a connection that then closed as a refusal does was never read by our
    // servers (a refusing server reads none): its caller is told of the write only once the
    // connection has ended otherwise, or answered. But one that must not go twice (`once`) is not
    // sent again: a server that never sends tickets may have read it, so it counts as written,
    // unless the second connection, sending nothing, is refused as well: a refusal, then.
    const first = this.current;
    let wroteFirst = false;
    const told = () => void (wroteFirst && written?.());
    return this.onSecond((c) => {
      if (c !== first) return c.request(body, written, once);
      return c.request(body, () => void (wroteFirst = true), once).then((answer) => (told(), answer), (e: unknown) => {
        if (!isUnsure(e)) told();
        throw e;
      });
    }, (e) => {
      if (!once || !wroteFirst) return undefined;
      return this.refusedAgain().then((refused) => {
        if (refused) throw refused;
        told();
        const target = typeof e.details?.target === 'string' ? e.details.target : 'the server';
        throw new CertifierError('UNREACHABLE', `${target} closed the connection without accepting our certificate (no session tickets) and without answering, after the request was written: a refusal, or a server that read it and hung up; it was not sent again, as it may have been carried out`, { cause: e, details: { target } });
      });
    });
  }

  /** key-client check's wait for the verdict, asked again as a request would be. */
  accepted(): Promise<void> {
    return this.onSecond((c) => c.accepted());
  }

  /**
   * `use` of the current connection, or, when that ends in an unsure refusal, of the second one
   * (unless `notAgain` gives the request's failure instead). Every request pending on the first connection comes here, in the order it was made, and waits
   * for the same second connection, where each is sent again in that order.
   */
  private onSecond<T>(use: (c: EndingConnection<P>) => Promise<T>, notAgain?: (e: CertifierError) => Promise<never> | undefined): Promise<T> {
    return use(this.current).catch((e: unknown) => {
      if (!isUnsure(e)) throw e; // the second connection's refusal is no longer unsure
      // The failure of a request that may not be sent again (which asks the second connection only whether it refuses).
      const failure = notAgain?.(e as CertifierError);
      return failure ?? this.secondConnection().then(use);
    });
  }

  private secondConnection(): Promise<EndingConnection<P>> {
    return (this.second ??= this.again().then((c) => (this.current = c)));
  }

  /**
   * The second connection's refusal of our certificate, waited for as accepted() waits, sending
   * nothing; undefined when it is accepted, or fails otherwise (nobody there, a wait run out).
   */
  private async refusedAgain(): Promise<CertifierError | undefined> {
    try {
      await (await this.secondConnection()).accepted();
    } catch (e) {
      // Only a close as a refusal (connect's refusedError, certain on a second try), not our own
      // checks of the server.
      if (e instanceof CertifierError && e.code === 'UNTRUSTED_PEER' && e.details?.attempts === 2) return e;
    }
    return undefined;
  }

  exportKeyingMaterial(label: string, length: number): Uint8Array | undefined {
    return this.current.exportKeyingMaterial(label, length);
  }

  async close(): Promise<void> {
    await this.current.close();
    const second = await this.second?.catch(() => undefined);
    await second?.close();
  }
}

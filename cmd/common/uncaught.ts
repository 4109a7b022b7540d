// The programs' last line of defence: an exception nothing caught (thrown in a socket's, a
// timer's or a stream's callback, outside any command's await) or a promise rejected that nothing
// awaited. Either is a bug, and the process is in a state nobody planned: it says so as any
// INTERNAL error is said (one line, a JSON document or log line) and exits 1 at once, a server
// too, rather than serve on (systemd's Restart=on-failure starts it again).

import { CertifierError, errorKind, ExitStatus } from '../../lib/errors/index.ts';
import { discardUnplaced } from '../../lib/files/index.ts';

/**
 * What is said of `e`: as of any error not of ours caught anywhere, its kind and its code
 * (errorKind), never its message. The message and the stack are shown with CERTIFIER_DEBUG=1 only.
 */
export function uncaughtError(e: unknown, how: 'exception' | 'rejection'): CertifierError {
  const what = errorKind(e);
  const where = how === 'exception' ? 'thrown where nothing caught it' : 'a promise rejected where nothing awaited it';
  return new CertifierError('INTERNAL', `internal error: ${what}, ${where}: stopping (a bug: please report it; CERTIFIER_DEBUG=1 shows where)`, { cause: e });
}

let installed = false;

/** Makes `report` the last line of defence, once: it says what happened; temporary files go, and the process exits 1. */
export function onUncaught(report: (e: CertifierError) => void): void {
  if (installed) return;
  installed = true;
  let reporting = false;
  const fail = (how: 'exception' | 'rejection') => (e: unknown) => {
    // A second fault while the first is reported (stderr itself failing) only exits.
    if (!reporting) {
      reporting = true;
      try {
        report(uncaughtError(e, how));
      } catch {
        // nothing more can be said
      }
      // A file being written (a secret fetched) is not left beside its destination: the command
      // failed, and changes nothing it was asked to write. (Its removals never throw.)
      discardUnplaced();
    }
    process.exit(ExitStatus.failed);
  };
  process.on('uncaughtException', fail('exception'));
  process.on('unhandledRejection', fail('rejection'));
}

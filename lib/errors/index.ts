// Typed errors with stable codes, and the one mapping from a code to a process exit status.
// Messages may change; codes may not. The table is documented in the README ("Errors").

/** Exit statuses shared by every program of the suite. */
export const ExitStatus = {
  ok: 0,
  failed: 1,        // operation failed: not found, denied, invalid data, store or port in use
  usage: 2,         // bad flags or arguments
  unreachable: 3,   // server unreachable or timed out: safe to retry
  integrity: 4,     // tamper, wrong passphrase or key, bad signature, untrusted peer
} as const;
export type ExitStatus = (typeof ExitStatus)[keyof typeof ExitStatus];

/** Every stable error code, with the exit status it maps to. */
export const ErrorCodes = {
  // usage (2)
  USAGE: ExitStatus.usage,
  // operation failed (1)
  NOT_FOUND: ExitStatus.failed,
  ALREADY_EXISTS: ExitStatus.failed,
  INVALID_INPUT: ExitStatus.failed,
  INVALID_KEY: ExitStatus.failed,
  UNSUPPORTED: ExitStatus.failed,
  FILE_ERROR: ExitStatus.failed,
  NOT_RECORDED: ExitStatus.failed, // key-server carried out a store or delete its audit log could not record
  OUTCOME_UNKNOWN: ExitStatus.failed, // key-server's key database failed as it wrote a store or delete, which may or may not have been made
  STORE_NOT_FOUND: ExitStatus.failed,
  STORE_EXISTS: ExitStatus.failed,
  STORE_LOCKED: ExitStatus.failed,
  REPLICA_ID_IN_USE: ExitStatus.failed,     // a key-server replica's --replica-id is held by another live replica on its database
  ADDRESS_IN_USE: ExitStatus.failed,        // a server's port is taken by another process
  ADDRESS_NOT_PERMITTED: ExitStatus.failed, // a server may not listen there (a port below 1024 without the right)
  STORE_FORMAT: ExitStatus.failed,
  VERSION_CONFLICT: ExitStatus.failed,
  NOT_EXPORTABLE: ExitStatus.failed,
  DECODE_FAILED: ExitStatus.failed,
  MISSING_FIELD: ExitStatus.failed,
  BAD_FIELD: ExitStatus.failed,
  FRAME_TOO_LARGE: ExitStatus.failed,
  FRAME_TRUNCATED: ExitStatus.failed,
  INTERNAL: ExitStatus.failed,
  BAD_CERTIFICATE: ExitStatus.failed,
  // policy denials (1): the evidence is sound but the policy does not trust it
  PLATFORM_NOT_TRUSTED: ExitStatus.failed,
  MEASUREMENT_NOT_TRUSTED: ExitStatus.failed,
  PURPOSE_UNSUPPORTED: ExitStatus.failed,
  EVIDENCE_MALFORMED: ExitStatus.failed,
  DENIED: ExitStatus.failed,
  RESERVED_NAME: ExitStatus.failed,
  ACL_DENIED: ExitStatus.failed,
  PLATFORM_PROPERTY_DENIED: ExitStatus.failed, // e.g. an SEV-SNP debug guest, a TCB below the minimum
  SNP_REPORT_VERSION: ExitStatus.failed,       // an SEV-SNP report version this verifier cannot read
  SNP_CPU_UNKNOWN: ExitStatus.failed,          // an SEV-SNP report or VCEK/VLEK of a CPU family or product this verifier does not know
  // unreachable / timeout (3)
  UNREACHABLE: ExitStatus.unreachable,
  TIMEOUT: ExitStatus.unreachable,
  DEADLINE: ExitStatus.unreachable, // a run's whole time (key-client --deadline) ran out before the server was done
  // integrity / authentication (4)
  INTEGRITY: ExitStatus.integrity,
  WRONG_KEY: ExitStatus.integrity,
  UNTRUSTED_PEER: ExitStatus.integrity,
  CERT_EXPIRED: ExitStatus.integrity,
  CERT_REVOKED: ExitStatus.integrity, // a machine's admission certificate whose serial number the key-server's ACL revokes
  CREDENTIAL_REVOKED: ExitStatus.integrity, // a role credential whose serial number the key-server's ACL revokes (the connection stays open)
  POLICY_INVALID: ExitStatus.integrity,
  ENDORSEMENT_INVALID: ExitStatus.integrity,
  REPORT_INVALID: ExitStatus.integrity,
  CLAIM_EXPIRED: ExitStatus.integrity,
  SESSION_MISMATCH: ExitStatus.integrity,
  CREDENTIAL_INVALID: ExitStatus.integrity,
  NONCE_INVALID: ExitStatus.integrity,
  CHALLENGE_FAILED: ExitStatus.integrity,
  SNP_CHAIN_UNTRUSTED: ExitStatus.integrity,   // no valid VCEK/VLEK path to a trusted AMD root
  SNP_VCEK_MISMATCH: ExitStatus.integrity,     // the VCEK is for another chip, the chip id is masked, or it is not the key kind the report names
  SNP_TCB_MISMATCH: ExitStatus.integrity,      // the VCEK was issued for another TCB than the report's REPORTED_TCB
  SNP_REPORT_DATA_MISMATCH: ExitStatus.integrity, // REPORT_DATA is not the hash of the user data sent with it
  SNP_CRL_STALE: ExitStatus.integrity,         // AMD's CRL for the path's root is past its nextUpdate (or dated ahead of the clock)
} as const;
export type ErrorCode = keyof typeof ErrorCodes;

/** The base of every error this suite raises on purpose. */
export class CertifierError extends Error {
  readonly code: ErrorCode;
  /** Extra facts safe to show (never secrets). */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CertifierError';
    this.code = code;
    this.details = options?.details;
  }

  get exitStatus(): ExitStatus {
    return ErrorCodes[this.code];
  }
}

export function isCertifierError(e: unknown, code?: ErrorCode): e is CertifierError {
  return e instanceof CertifierError && (code === undefined || e.code === code);
}

/** The exit status for anything thrown: our codes map through the table, the rest is INTERNAL. */
export function exitStatusOf(e: unknown): ExitStatus {
  return e instanceof CertifierError ? e.exitStatus : ExitStatus.failed;
}

/** Shorthand constructors used across the library. */
export const fail = (code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) =>
  new CertifierError(code, message, options);

/** The code a server that sends only the codes `sent` refuses `e` with: its own if among them, INTERNAL otherwise. */
export function sentCode(e: unknown, sent: readonly ErrorCode[]): ErrorCode {
  return e instanceof CertifierError && sent.includes(e.code) ? e.code : 'INTERNAL';
}

/** A name or code safe to quote: an identifier, cut short. */
const SAFE = /^[A-Za-z_][A-Za-z0-9_.]{0,63}$/;

/**
 * What is said of an error that is not one of ours (INTERNAL): its class and its code, when
 * identifiers (`TypeError`, `Error (ERR_STREAM_DESTROYED)`), never its message, which may quote
 * what it was given (JSON.parse quotes the text it failed on, which may be a secret just
 * decrypted; a Buffer's or a TypeError's may quote its input).
 */
export function errorKind(e: unknown): string {
  const name = e instanceof Error ? (SAFE.test(e.name) ? e.name : 'Error') : `a value not an Error (${e === null ? 'null' : typeof e})`;
  const code = (e as { code?: unknown } | null | undefined)?.code;
  return `${name}${typeof code === 'string' && SAFE.test(code) ? ` (${code})` : ''}`;
}

/** Whether CERTIFIER_DEBUG=1 asks for what is otherwise kept back: the message and the stack of an error not of ours. */
export function debugging(): boolean {
  return process.env.CERTIFIER_DEBUG === '1';
}

/**
 * What a log line says of `e`: the message of one of ours; of any other, its kind (errorKind), and
 * its message only with CERTIFIER_DEBUG=1.
 */
export function errorText(e: unknown): string {
  if (e instanceof CertifierError) return e.message;
  return debugging() ? `${errorKind(e)}: ${e instanceof Error ? e.message : String(e)}` : errorKind(e);
}

/** A log line's `code` and `reason` for a failure: our code and message; INTERNAL and errorText for any other. */
export function errorFields(e: unknown): { code: ErrorCode; reason: string } {
  return { code: e instanceof CertifierError ? e.code : 'INTERNAL', reason: errorText(e) };
}

// The key service: one request in, one response out. Each request is authenticated (mutual
// TLS, and optionally an auth-challenge for a role credential), checked against reserved
// names and the ACL, executed, audited, and logged. Refusals carry only a stable code.

import { CertifierError, errorText, sentCode, type ErrorCode } from '../errors/index.ts';
import { signatureAlgFor, verify } from '../crypto/index.ts';
import { clipped, encode, shown, type CryptstoreEntry } from '../wire/index.ts';
import { clockBehind, type ValidatedPeer } from '../pki/index.ts';
import type { LaterAnswer } from '../channel/index.ts';
import { checkNotRevoked, decide, type Acl } from './acl.ts';
import type { AuditLog } from './audit.ts';
import type { AuditEntry } from './audit-line.ts';
import { isReserved, notFound, type KeyStore, type ReservedNames } from './keystore.ts';
import { ChallengeBook } from './challenges.ts';
import { verifyRoleCredential } from './roles.ts';
import type { ReplicaJoin } from './replica.ts';
import { within } from '../util/within.ts';
import { SET_CLOCK } from '../util/clock.ts';
import {
  CHALLENGE_EXPORTER_LABEL, challenge, challengeMessage, DELETE_LISTED, describeRequest, expired, failed, KEY_SERVER_CODES, LIST_PAGE, parseKeyRequest, succeeded, type KeyRequest,
} from './protocol.ts';

export interface KeyServiceConfig {
  keystore: KeyStore;
  policyCert: Uint8Array;
  acl?: Acl;
  audit?: AuditLog;
  /** Names no request may address (the server's own identity and storage keys). */
  reserved: ReservedNames;
  /** Set by --allow-replica-join: the one way the storage key leaves, to another instance of this key-server. */
  replicaJoin?: ReplicaJoin;
  log?: (record: Record<string, unknown>) => void;
  now?: () => Date;
  /**
   * The end of the certificate this key-server presents to a new connection (its identity's, or
   * the policy certificate's if sooner). A connection keeps the one it was opened with, taken as
   * the one in force at its first request: renewal comes days before an end, not between a
   * connection's handshake and its first request.
   */
  ownCertEnd?: () => Date;
}

export interface Connection {
  id: string;
  remote: string;
  peer: ValidatedPeer | undefined;
  exportKeyingMaterial(label: string, length: number): Uint8Array | undefined;
}

interface Executed {
  response: Uint8Array;
  /** The version acted on; for a delete, the one asked for (0 = all). */
  version?: number;
  /** delete: how many versions went. */
  deleted?: number;
  /** delete: the answer's key_service_list (the versions named and the count), sent with NOT_RECORDED too. */
  listing?: Uint8Array;
}

/** The version a request names, for its audit record: any for a delete (0 = all), a given one for a retrieve or store. */
function askedVersion(req: { action?: string; version?: number } | undefined): number | undefined {
  return req?.action === 'delete' || ((req?.action === 'retrieve' || req?.action === 'store') && req.version) ? req.version : undefined;
}

/**
 * The answer once its audit record is durable. If the record cannot be written the answer is
 * withheld and the refusal says why (the log is then broken and refuses every later decision);
 * for a change already carried out, `unrecorded` says what to answer instead.
 */
function afterAudit(audited: Promise<unknown> | undefined, answer: Uint8Array, name: string, unrecorded?: () => Uint8Array): Uint8Array | LaterAnswer {
  if (!audited) return answer;
  return { later: audited.then(() => answer, (e: unknown) => unrecorded?.() ?? failed(name, sentCode(e, KEY_SERVER_CODES))) };
}

/**
 * An answer holding a secret (the storage key, to a joining replica): the channel overwrites it, and
 * the frame made of it, once written (LaterAnswer.secret); when another answer goes instead (its
 * audit record not written), the secret one is overwritten here.
 */
function secretAnswer(answer: Uint8Array | LaterAnswer, secret: Uint8Array): LaterAnswer {
  const later = (answer instanceof Uint8Array ? Promise.resolve(answer) : answer.later).then((bytes) => {
    if (bytes !== secret) secret.fill(0);
    return bytes;
  }, (e: unknown) => {
    secret.fill(0);
    throw e;
  });
  return { later, secret: true };
}

export class KeyService {
  private readonly challenges = new ChallengeBook();
  private readonly reads = new WeakMap<Connection, Set<Promise<unknown>>>();
  private readonly running = new Set<Promise<void>>();
  /** The end of the server's own certificate each connection was opened with (ms). */
  private readonly ownEnds = new WeakMap<Connection, number>();
  /** Connections that outlived it, or their client's certificate: each refusal there is their last answer. */
  private readonly outlived = new WeakSet<Connection>();
  private readonly config: KeyServiceConfig;
  constructor(config: KeyServiceConfig) {
    this.config = { ...config };
  }

  /** Decisions from now on follow this ACL (requests already decided are not revisited). */
  setAcl(acl: Acl): void {
    this.config.acl = acl;
  }

  /** A connection has closed: the nonces issued on it can no longer be redeemed, so they go now. */
  connectionClosed(conn: Connection): void {
    this.challenges.dropConnection(conn.id);
  }

  /** One request, answered once its audit record is on disk. */
  async handle(bytes: Uint8Array, conn: Connection): Promise<Uint8Array> {
    const r = await this.handleStaged(bytes, conn);
    return r instanceof Uint8Array ? r : r.later;
  }

  /**
   * One request, for the channel: resolves once the request's effects are in place, with the
   * answer itself (bytes, or `later`) held until its audit record is on disk, so the next
   * request on the connection need not wait for that sync. No answer leaves before its record.
   *
   * Reads (retrieve, list) change nothing, so they resolve as soon as they are admitted and run
   * alongside the requests after them; a store or delete first waits until the backend has
   * answered the reads its connection sent before it, so no read sees a write sent after it.
   */
  async handleStaged(bytes: Uint8Array, conn: Connection): Promise<Uint8Array | LaterAnswer> {
    const started = performance.now(); // monotonic: the log's ms is a duration, not a time of day
    const peer = conn.peer;
    let req: KeyRequest | undefined;
    /** The role a proven credential grants this request. */
    let role: string | undefined;
    /**
     * A credential that verified, proven or not: the audit record names its role and serial number
     * from the challenge on, so a refused answer (NONCE_INVALID, CHALLENGE_FAILED) says which rights
     * it sought, and every record says whose credential it was (several may grant one role).
     */
    let sought: { role: string; serialHex: string } | undefined;
    // The client gets only the code; the server's log line says why (the ACL rule missing, the
    // field, the credential's fault). The audit record keeps the code alone.
    // What a refused request asked for, when its bytes did not make a valid request.
    let asked: { action?: string; name?: string; version?: number } | undefined;
    /**
     * For a request with a proven role, the ACL's reason for allowing it (which rule, naming the
     * role or the machine itself): the log line says whether the role's rights were what it took.
     */
    let grantedBy: string | undefined;
    const record = (decision: AuditEntry['decision'], o: { code?: string; version?: number; deleted?: number; why?: string } = {}) => {
      const entry = {
        conn: conn.id, peerSerial: peer?.serialHex, measurement: peer?.measurementHex, role: sought?.role, credentialSerial: sought?.serialHex,
        action: req?.action ?? asked?.action ?? 'unknown', resource: req?.name ?? asked?.name, version: o.version, deleted: o.deleted, decision, code: o.code,
      };
      if (this.config.log) {
        const line: Record<string, unknown> = { event: 'request', ...entry, remote: conn.remote, ms: Math.round(performance.now() - started) };
        const why = o.why ?? (decision === 'allow' ? grantedBy : undefined);
        if (why) line.detail = why; // refusals and roles only: no second spread on every served request
        this.config.log(line);
      }
      return this.config.audit?.append(entry);
    };
    const refuse = (e: unknown): Uint8Array | LaterAnswer => {
      // Only a code a key-server sends (KEY_SERVER_CODES): any other is a fault of the server's own.
      const code: ErrorCode = sentCode(e, KEY_SERVER_CODES);
      // A fault not of ours is named by its class (errorText): its message may quote a secret.
      if (code === 'INTERNAL') this.config.log?.({ event: 'internal-error', conn: conn.id, detail: errorText(e) });
      if (!req) asked = describeRequest(bytes);
      // A store or delete whose write failed in the key database may have been made all the same:
      // no refusal, and recorded as such, with the version a store may have made.
      const unknown = code === 'OUTCOME_UNKNOWN';
      const details = unknown ? (e as CertifierError).details : undefined;
      const made = details?.version;
      const version = typeof made === 'number' && made > 0 ? made : askedVersion(req ?? asked);
      // For a delete, how many versions it may have removed (deleteUnknown's count).
      const deleted = typeof details?.deleted === 'number' ? details.deleted : undefined;
      // A certificate outside its dates by this clock: the client is told what it read, to compare with its own.
      const refusal = code === 'CERT_EXPIRED' ? expired(req?.name ?? '', this.now()) : failed(req?.name ?? '', code, unknown ? version : undefined);
      const audited = record(unknown ? 'unknown' : 'deny', { code, version, deleted, ...(e instanceof CertifierError ? { why: clipped(e.message) } : {}) });
      // A refusal whose record could not be written says so (the log's failure), as an answer would;
      // an unknown outcome stays unknown (the log's FILE_ERROR would say nothing was changed).
      return afterAudit(audited, refusal, req?.name ?? '', unknown ? () => refusal : undefined);
    };
    const allow = ({ response, version, deleted }: Executed): Uint8Array | LaterAnswer => afterAudit(record('allow', { version, deleted }), response, req!.name);
    // A store or delete has taken effect by the time its record is written. If that write fails,
    // the client is told so (NOT_RECORDED, with the version), not that it was refused: a retry
    // would make another version. The server's log names each such change.
    const carriedOut = ({ response, version, deleted, listing }: Executed): Uint8Array | LaterAnswer =>
      afterAudit(record('allow', { version, deleted }), response, req!.name, () => {
        this.config.log?.({ event: 'not-recorded', conn: conn.id, action: req!.action, resource: req!.name, version, deleted });
        return failed(req!.name, 'NOT_RECORDED', version, listing);
      });
    try {
      if (!peer) throw new CertifierError('UNTRUSTED_PEER', 'no verified client certificate');
      // Before the request is read: a revoked machine's bytes, well formed or not, get CERT_REVOKED.
      this.checkRevoked(peer, conn);
      req = parseKeyRequest(bytes);
      this.checkValidity(peer, conn);
      this.checkOwnValidity(conn);
      if (req.credentials) {
        const cred = verifyRoleCredential(req.credentials, this.config.policyCert, this.now(), "the key-server's clock");
        const leaf = req.credentials[0]!;
        sought = { role: cred.role, serialHex: cred.peer.serialHex };
        // Before a challenge: a stolen credential gets no nonce to answer. The machine itself may still
        // be served without it, on this connection too: a code of its own, not the machine's CERT_REVOKED.
        checkNotRevoked(this.config.acl, cred.peer.serialHex, 'the role credential', 'CREDENTIAL_REVOKED');
        if (!req.challengeNonce) {
          const nonce = this.challenges.issue(conn.id, leaf);
          return afterAudit(record('challenge', { version: askedVersion(req) }), challenge(req.name, nonce), req.name);
        }
        if (!this.challenges.redeem(req.challengeNonce, conn.id, leaf)) {
          throw new CertifierError('NONCE_INVALID', 'the challenge nonce is unknown, used already, expired, or was issued for another connection or credential');
        }
        const exporter = conn.exportKeyingMaterial(CHALLENGE_EXPORTER_LABEL, 32);
        const signed = challengeMessage(req.challengeNonce, exporter ?? new Uint8Array());
        let ok = false;
        try {
          ok = verify(cred.peer.publicKey, signed, req.challengeSignature!, signatureAlgFor(cred.peer.publicKey));
        } catch {
          ok = false;
        }
        if (!ok) throw new CertifierError('CHALLENGE_FAILED', 'the challenge signature does not verify with the credential\'s key');
        role = cred.role;
      }
      // Nothing is released or carried out that the audit log could no longer record.
      this.config.audit?.checkUsable();
      const joined = this.config.replicaJoin?.answer(req, peer, role);
      if (joined) return secretAnswer(afterAudit(record('allow', { version: joined.version }), joined.response, req.name), joined.response);
      // A list prefix is not a name: its reserved names are left out of the answer instead.
      if (req.action !== 'list') this.checkReserved(req.name);
      const verdict = decide(this.config.acl, { action: req.action, resource: req.name }, { measurementHex: peer.measurementHex, serialHex: peer.serialHex, roles: role ? [role] : [] });
      if (!verdict.allow) throw new CertifierError(verdict.code ?? 'ACL_DENIED', verdict.reason);
      if (role) grantedBy = verdict.reason;
      if (req.action === 'retrieve' || req.action === 'list') {
        const read = this.execute(req);
        const reads = this.readsOf(conn);
        reads.add(read);
        // One step once the backend has answered: the read is no longer running, and its answer
        // (bytes, or a promise of them once audited) is made.
        const answered = (a: Uint8Array | LaterAnswer) => (a instanceof Uint8Array ? a : a.later);
        return {
          later: read.then(
            (executed) => (reads.delete(read), answered(allow(executed))),
            (e: unknown) => (reads.delete(read), answered(refuse(e))),
          ),
        };
      }
      const reads = this.reads.get(conn);
      if (reads?.size) await Promise.allSettled([...reads]);
      this.config.audit?.checkUsable(); // again: it may have broken while the reads ran
      return carriedOut(await this.execute(req));
    } catch (e) {
      const refusal = refuse(e);
      // Every later request there would be refused too: the connection closes once the requests
      // received are answered, so that a client that does not look at the code connects again.
      if (!this.outlived.has(conn)) return refusal;
      return { later: refusal instanceof Uint8Array ? Promise.resolve(refusal) : refusal.later, last: true };
    }
  }

  /** The reads of a connection still running (keyed by its object, so nothing outlives it). */
  private readsOf(conn: Connection): Set<Promise<unknown>> {
    let reads = this.reads.get(conn);
    if (!reads) this.reads.set(conn, (reads = new Set()));
    return reads;
  }

  /**
   * Waits (at most `ms`) for the requests still being executed, e.g. a store whose backend call
   * outlived the channel's grace period at shutdown: their audit records and effects land before
   * the audit log and the backend are closed and the storage key forgotten.
   */
  async drain(ms: number): Promise<void> {
    if (this.running.size === 0) return;
    await within(Promise.allSettled([...this.running]), ms);
  }

  private execute(req: KeyRequest): Promise<Executed> {
    const run = this.executeNow(req);
    // Writes are tracked until their audit record too is appended (record() runs right after);
    // reads change nothing, and after a stop they fail without a key (KeyStore.wipe).
    if (req.action === 'store' || req.action === 'delete') {
      const tracked = run.then(() => undefined, () => undefined).then(() => new Promise<void>((r) => setImmediate(r)));
      this.running.add(tracked);
      void tracked.finally(() => this.running.delete(tracked));
    }
    return run;
  }

  private async executeNow(req: KeyRequest): Promise<Executed> {
    const ks = this.config.keystore;
    switch (req.action) {
      case 'store': {
        // Names made before the rule on look-alike characters keep getting new versions; whether
        // the name has one is asked under the backend's lock, with the store.
        const problem = req.newNameProblem;
        const info = await ks.store(req.name, req.data!, {
          type: req.valueType, exportable: req.exportable,
          ...(req.expectedVersion !== undefined ? { expectedLatest: req.expectedVersion } : {}),
          ...(req.version ? { version: req.version } : {}),
          ...(problem ? { onlyIfExisting: () => new CertifierError('BAD_FIELD', `resource_name ${problem}`) } : {}),
        });
        return { response: succeeded(req.name, { version: info.version }), version: info.version };
      }
      case 'retrieve': {
        const { info, value } = await ks.release(req.name, req.version);
        const entry: CryptstoreEntry = {
          tag: info.name, type: info.type, version: info.version, timeEntered: Buffer.from(info.timeEntered, 'utf8'), blob: value, exportable: info.exportable,
        };
        return { response: succeeded(req.name, { data: encode('cryptstore_entry', entry), version: info.version }), version: info.version };
      }
      case 'delete': {
        const { count, versions } = await ks.delete(req.name, req.version, DELETE_LISTED);
        if (count === 0) throw notFound(req.name, req.version);
        // The versions named, by number only (the name is the answer's), at most DELETE_LISTED of
        // them, and how many there were: any answer fits in a frame, however many were deleted.
        const resources = versions.map((v) => ({ version: v }));
        const data = encode('key_service_list', { resources, deleted: count });
        return { response: succeeded(req.name, { version: count === 1 ? versions[0]! : 0, data }), version: req.version, deleted: count, listing: data };
      }
      case 'list': {
        // One more than a page tells whether another page follows, without a second query. A page
        // of nothing but the server's own names (left out) is passed over: no answer is empty with
        // more to come, which a client takes for a server that would keep it asking for ever.
        // next_after is the last name answered, never one of the server's own after it: those are
        // left out without a word (the next page reads them again, and leaves them out again).
        let after = req.listAfter;
        for (;;) {
          const infos = await ks.list(req.name, { limit: LIST_PAGE + 1, ...(after !== undefined ? { after } : {}) });
          const page = infos.slice(0, LIST_PAGE);
          const visible = page.filter((i) => !this.isReserved(i.name));
          const more = infos.length > LIST_PAGE;
          if (more && visible.length === 0) {
            after = page.at(-1)!.name;
            continue;
          }
          const list = {
            resources: visible.map((i) => ({ resourceName: i.name, version: i.version, valueType: i.type, timeEntered: i.timeEntered, exportable: i.exportable, size: i.size })),
            ...(more ? { nextAfter: visible.at(-1)!.name } : {}),
          };
          return { response: succeeded(req.name, { data: encode('key_service_list', list) }) };
        }
      }
    }
  }

  private isReserved(name: string): boolean {
    return isReserved(this.config.reserved, name);
  }

  private checkReserved(name: string): void {
    if (name !== '' && this.isReserved(name)) throw new CertifierError('RESERVED_NAME', `${shown(name, 256)} names one of the key-server's own keys, which are never served`);
  }

  /**
   * Checked for every request, against the ACL in force (a reload revokes a certificate for the
   * connections open with it too): a revoked machine is served no more on this connection, whose
   * refusal is its last answer there, as for one that outlived its certificate.
   */
  private checkRevoked(peer: ValidatedPeer, conn: Connection): void {
    try {
      checkNotRevoked(this.config.acl, peer.serialHex, "this machine's admission certificate");
    } catch (e) {
      this.outlived.add(conn);
      throw e;
    }
  }

  /**
   * A connection that outlived the server's own certificate it was opened with is served no more,
   * as one that outlived the client's certificate is not: a client connecting now would refuse it.
   */
  private checkOwnValidity(conn: Connection): void {
    if (!this.config.ownCertEnd) return;
    let end = this.ownEnds.get(conn);
    if (end === undefined) this.ownEnds.set(conn, (end = this.config.ownCertEnd().getTime()));
    const ms = this.config.now ? this.config.now().getTime() : Date.now();
    if (ms <= end) return;
    this.outlived.add(conn);
    throw new CertifierError('CERT_EXPIRED', `this key-server's own certificate ended at ${new Date(end).toISOString()}, after this connection was opened (checked at ${new Date(ms).toISOString()} by the key-server's clock): a new connection gets the one in force`);
  }

  /**
   * Checked at the handshake, and again for every request: a connection may outlive the
   * certificate it was opened with, or the clock may be set back before its start; what it asks
   * outside the window is refused, as a new connection would be. One that outlived it is served
   * no more: the refusal is its last answer (the channel closes it, its close logged once as
   * last-answer), as for the server's own certificate, rather than refuse each request it sends.
   */
  private checkValidity(peer: ValidatedPeer, conn: Connection): void {
    // Compared as numbers: this runs per request, and the Date for the messages is made only for a refusal.
    const ms = this.config.now ? this.config.now().getTime() : Date.now();
    const start = peer.validFrom; // the leaf's start, or the policy certificate's if later
    const end = peer.validUntil; // the leaf's end, or the policy certificate's if sooner
    // getTime, not Number(date) (a Symbol.toPrimitive call); a peer without dates gets the full check.
    if (start !== undefined && end !== undefined && ms >= start.getTime() && ms <= end.getTime()) return;
    const now = new Date(ms);
    const clock = () => `(checked at ${now.toISOString()} by the key-server's clock)`;
    // Valid when the connection was opened: this clock has gone back since.
    if (now < start) throw new CertifierError('CERT_EXPIRED', `the client's certificate (or the policy certificate above it) is not valid before ${start.toISOString()} ${clock()}: the key-server's clock is ${clockBehind(start, now)} behind that of the machine that issued it, gone back since this connection was opened: ${SET_CLOCK}`);
    if (now > end) {
      this.outlived.add(conn);
      throw new CertifierError('CERT_EXPIRED', `the client's certificate (or the policy certificate above it) ended at ${end.toISOString()}, after this connection was opened ${clock()}`);
    }
  }

  private now(): Date {
    return this.config.now?.() ?? new Date();
  }
}

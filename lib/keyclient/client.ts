// key-client's connection to a key-server: mutual TLS with this machine's admission
// certificate, the server checked against the pinned policy certificate (and, if given, the
// key-server measurements it must run), requests pipelined on one connection, and the
// auth-challenge answered when a role credential is in use.

import type { KeyObject } from 'node:crypto';
import { CertifierError, isCertifierError } from '../errors/index.ts';
import { sign } from '../crypto/index.ts';
import { checkCryptstoreEntry, decode, peerCode, shown, type CryptstoreEntry, type EntryType, type KeyServiceList, type ValidEntry } from '../wire/index.ts';
import { parseCertificate, toPem, validateAdmission, type ValidatedPeer } from '../pki/index.ts';
import { connect, connectWaits, DEFAULT_LIMITS, hostPort, prepareClientTls, type ClientConnection, type Limits, type PreparedClientTls, type Waits } from '../channel/index.ts';
import { requireMachine, type MachineIdentity } from '../certifier/index.ts';
import {
  CHALLENGE_EXPORTER_LABEL, CHALLENGES_PER_CONNECTION, challengeMessage, encodeKeyRequest, KEY_SERVER_CODES, LIST_PAGE, MAX_VALUE_BYTES, parseKeyResponse, type Action, type KeyRequest, type KeyResponse,
} from '../keyservice/protocol.ts';
import { reservedNames, STORAGE_KEY_TAG } from '../keyservice/server.ts';
import { isReserved } from '../keyservice/keystore.ts';
import { pageItems, tooManyNames, type ResourceInfo } from './list-page.ts';
import { deletedVersions, listAnswer, storedVersion } from './answers.ts';
import { clocksApart, type Dated } from './clocks.ts';

export type { ResourceInfo };

export interface Credential {
  chain: Uint8Array[];
  key: KeyObject;
}

export interface KeyClientOptions {
  host: string;
  port: number;
  identity: MachineIdentity;
  policyCert: Uint8Array;
  /** Measurements (hex) the key-server must run; empty trusts any admitted machine of the domain. */
  serverMeasurements?: string[];
  credential?: Credential;
  limits?: Limits;
  /** How long to wait for the key-server at each step, on every connection (10 s each unless given). */
  waits?: Waits;
  /**
   * How many requests the key-server answers on one connection before it closes it (its
   * maxRequestsPerConnection; default the servers' default). Past that, requests go on a new
   * connection to the same server, checked again, so any number can be made, at once or not.
   */
  requestsPerConnection?: number;
  /**
   * Ends the run's waits for the key-server when aborted (key-client's --deadline): every
   * connection, open or being opened, fails with the signal's reason (a CertifierError), and no
   * request is sent after it.
   */
  signal?: AbortSignal;
}

/** A store or delete the key-server says it carried out but could not record: what it says is checked as a success's would be. */
function notRecorded(r: KeyResponse, req: Partial<KeyRequest> & { action: Action; name: string }): CertifierError {
  const name = shown(req.name, 256);
  let what: string;
  let details: Record<string, unknown>;
  if (req.action === 'store') {
    const version = storedVersion(req.name, r.version, req.expectedVersion);
    [what, details] = [`stored ${name} as version ${version}`, { version }];
  } else {
    const { versions, count } = deletedVersions(req.name, r.data, req.version ?? 0);
    [what, details] = [`deleted ${count === 1 ? `version ${versions[0]} of ${name}` : `${count} versions of ${name}`}`, { version: req.version ?? 0, deleted: count }];
  }
  return new CertifierError('NOT_RECORDED', `the key-server ${what}, but its audit log could not record it: do not ${req.action} it again; the key-server refuses every request until its audit log can be written again (its log says audit-failed)`, { details });
}

/**
 * A store or delete whose write in the key-server's key database failed in a way that may have
 * taken effect (its sync, say): neither carried out nor refused, so it is looked at, not repeated.
 */
function outcomeUnknown(r: KeyResponse, req: Partial<KeyRequest> & { action: Action; name: string }): CertifierError {
  const name = shown(req.name, 256);
  let what: string;
  let details: Record<string, unknown> = {};
  if (req.action === 'store') {
    // The version it may have made, checked as a success's would be; a store without one is named alone.
    const version = r.version ? storedVersion(req.name, r.version, req.expectedVersion) : undefined;
    what = version === undefined ? `writing ${name}` : `writing ${name} version ${version}`;
    if (version !== undefined) details = { version };
  } else {
    what = `deleting ${req.version ? `version ${req.version} of ${name}` : `every version of ${name}`}`;
  }
  return new CertifierError('OUTCOME_UNKNOWN', `the key-server's key database failed while ${what}: the ${req.action} may or may not have been made; list ${name} to see, and do not ${req.action} it again blindly`, { details });
}

/**
 * A store or delete sent whose answer never came (the connection ended, or a wait or the run's
 * deadline ran out): the server may have read it and carried it out, so it is no "unreachable,
 * retry" but OUTCOME_UNKNOWN, as the server's own is, each saying what a run again does: a store
 * again is another version, a delete again deletes what is left (NOT_FOUND once nothing is). Any
 * other error, and any other action's (a read carries nothing out), stays as it is.
 */
function unanswered(req: Partial<KeyRequest> & { action: Action; name: string }, e: unknown): unknown {
  if ((req.action !== 'store' && req.action !== 'delete') || !isCertifierError(e) || !(e.code in ENDED)) return e;
  const name = shown(req.name, 256);
  let what = name;
  let again: string;
  if (req.action === 'delete') {
    what = req.version ? `version ${req.version} of ${name}` : `every version of ${name}`;
    again = `run it again as it is: it deletes ${req.version ? 'that version' : 'every version'} if this one did not, and is NOT_FOUND (exit 1) if this one did${req.version ? '' : ' (and, if one was stored since, deletes that too)'}`;
  } else {
    again = req.expectedVersion !== undefined
      ? `run it again as it is: with --expected-version ${req.expectedVersion} it is made only if this one was not (VERSION_CONFLICT if it was)`
      : `${listShows('its versions and when each was stored')}; run it again with --expected-version set to its latest version before this one, and it is made only if this one was not`;
  }
  return new CertifierError('OUTCOME_UNKNOWN', `the ${req.action} of ${what} was sent, but ${ENDED[e.code as keyof typeof ENDED]}: it may or may not have been made; ${again}`, { cause: e });
}

/** How a request's wait for its answer ended without one, by the code it failed with (the cause keeps the detail). */
const ENDED = {
  UNREACHABLE: 'the connection ended (closed or reset) before its answer came',
  TIMEOUT: 'its answer did not come in time (--timeout)',
  DEADLINE: 'the run\'s --deadline passed before its answer came',
} as const;

/**
 * Where to look at what the key-server holds, for a hint. Listing is an action of its own, which an
 * ACL may not give: deployment-setup.sh's lets a VM only retrieve, and another may give store alone.
 */
function listShows(what: string): string {
  return `key-client list shows ${what}, where the key-server's ACL lets this machine list; else ask whoever stores the keys`;
}

/**
 * `r`, unless it names another resource than `req`: INTEGRITY. Answers are matched to requests by
 * their place on the connection alone, so the name is all that ties one to its request (two
 * pipelined stores answered in each other's place would report each other's versions). A refusal
 * naming none is a server's of a request it could not read, and so did not carry out.
 */
function answerTo(req: { action: Action; name: string }, r: KeyResponse): KeyResponse {
  // Such a request was not carried out: its refusal cannot say it was, or may have been.
  const unread = r.status === 'failed' && r.errorCode !== 'NOT_RECORDED' && r.errorCode !== 'OUTCOME_UNKNOWN';
  if (r.name === req.name || (r.name === '' && unread)) return r;
  throw new CertifierError('INTEGRITY', `the key-server answered the ${req.action} of ${shown(req.name, 256)} with an answer for ${shown(r.name, 256)}: a fault of the key-server; nothing in it was taken`);
}

/**
 * `dated`: the certificates the request rested on, for a CERT_EXPIRED that says the key-server's
 * time (clocksApart); `serials`: the serial numbers of this machine's certificate and of the role
 * credential sent, for a CERT_REVOKED or CREDENTIAL_REVOKED.
 */
function refusal(r: KeyResponse, req: Partial<KeyRequest> & { action: Action; name: string }, dated: () => Dated[], serials: () => { machine: string; credential?: string }): CertifierError {
  const { action, name: resource } = req;
  const name = shown(resource, 256); // quoted, and escaped if it could pass for another name
  // Only a code a key-server sends: a server's USAGE would pass for this command's own misuse.
  // NOT_RECORDED and OUTCOME_UNKNOWN only for what can take effect: a store or a delete.
  const writes = action === 'store' || action === 'delete';
  const { code, said } = peerCode(r.errorCode, writes ? KEY_SERVER_CODES : KEY_SERVER_CODES.filter((c) => c !== 'NOT_RECORDED' && c !== 'OUTCOME_UNKNOWN'));
  // The server's own fault: its log says what; nothing on this side to debug (remote: no hint to).
  if (code === 'INTERNAL') return new CertifierError(code, `the key-server failed to ${action} ${name}: a fault of the key-server, not of this request; its log says what (internal-error)`, { details: { remote: true } });
  // Its storage not answering is no refusal: the request may be tried again (exit 3).
  if (code === 'UNREACHABLE' || code === 'TIMEOUT') return new CertifierError(code, `the key-server could not ${action} ${name} now: its storage did not answer; try again`);
  // The client's own checks passed before it connected: the server's clock differs, or a date passed since.
  // A key-server of this version says what its clock read, which tells how far apart the clocks are.
  if (code === 'CERT_EXPIRED') {
    const clocks = r.serverTime ? `; ${clocksApart(r.serverTime, new Date(), dated())}` : '';
    return new CertifierError(code, `the key-server refused to ${action} ${name}: by its clock, a certificate the request rests on (this machine's, the policy certificate, a role credential, or the key-server's own that this connection was opened with, which a new connection replaces) is outside its validity; its log says which and when${clocks}`);
  }
  // A store or delete carried out that its audit log could not record: not a refusal, since
  // another store would make another version. The server refuses everything after it.
  if (code === 'NOT_RECORDED') return notRecorded(r, req);
  // Its key database failed as it wrote the change: it may have been made all the same.
  if (code === 'OUTCOME_UNKNOWN') return outcomeUnknown(r, req);
  // Its key database or its audit log refused before the change was written: nothing was carried out.
  if (code === 'FILE_ERROR' && writes) {
    return new CertifierError(code, `the key-server could not ${action} ${name}: its key database or its audit log cannot be written; nothing was changed`);
  }
  // No refusal: the name (or that version) is not there, a mistyped name most often.
  if (code === 'NOT_FOUND' && said === code) {
    return new CertifierError(code, `the key-server holds no ${req.version ? `version ${req.version} of ${name}` : name} (${listShows('the names it holds')})`);
  }
  if (code === 'VERSION_CONFLICT' && said === code && req.expectedVersion !== undefined) {
    const why = req.expectedVersion === 0 ? `it holds the name already (--expected-version 0); ${listShows('the name\'s versions')}` : `its latest version is not ${req.expectedVersion} (--expected-version); ${listShows('the name\'s latest version')}`;
    return new CertifierError(code, `the key-server did not ${action} ${name}: ${why}`);
  }
  // Refusals an operator acts on: each says what to do (the server's log has the detail).
  if (code === 'ACL_DENIED' && said === code) {
    return new CertifierError(code, `the key-server's ACL does not allow this machine to ${action} ${name}: the key-server's log names the machine (and role) in the request's line; to allow it, its operator adds a rule to the ACL, checks it with key-server check-acl and sends key-server SIGHUP${action === 'delete' ? ' (a key-server started without --acl, which lets nobody delete, is restarted with one)' : ''}`);
  }
  if (code === 'CERT_REVOKED' && said === code) {
    const { machine, credential } = serials();
    // A key-server before 2026-12-07 said CERT_REVOKED for a revoked role credential too.
    const older = credential === undefined ? '' : ` (a key-server of a version before 2026-12-07 says so for a revoked role credential too, serial ${credential} here: its log says which)`;
    return new CertifierError(code, `the key-server refused to ${action} ${name}: this machine's admission certificate (serial ${machine}) is revoked by the key-server's ACL: its operator cut this machine off (the key-server's log says why); ask them before anything else: a machine they find sound is certified again (cert-utility init-trust, which gives it a certificate of a new serial number)${older}`);
  }
  if (code === 'CREDENTIAL_REVOKED' && said === code) {
    const credential = serials().credential ?? 'none sent';
    return new CertifierError(code, `the key-server refused to ${action} ${name}: the role credential sent with it (serial ${credential}) is revoked by the key-server's ACL (the key-server's log says why): the policy key's holder issues a new one (cert-utility issue-role-cert); this machine is served without it as the ACL's rules allow`);
  }
  if (code === 'RESERVED_NAME' && said === code) {
    return new CertifierError(code, `the key-server refused to ${action} ${name}: the name is one of the key-server's own (its identity, its storage key, or under key-server/), which no client may address; choose another name`);
  }
  if (code === 'NOT_EXPORTABLE' && said === code) {
    return new CertifierError(code, `the key-server never releases ${name}: it was stored not exportable (key-client store --not-exportable); to let machines fetch a value, store it without --not-exportable`);
  }
  // The code is the error's own (printed beside its message): named here only when the server said another.
  return new CertifierError(code, `the key-server refused to ${action} ${name}${said === code ? '' : ` (${said})`}`);
}

export class KeyClient {
  /** Requests sent on the current connection (a server answers requestsPerConnection on one). */
  private sent = 0;
  /** A new connection being opened because this one is used up; requests past the limit wait for it. */
  private replacing: Promise<void> | undefined;
  /** Requests under way on each connection: a used-up one is closed once it has none. */
  private readonly inUse = new Map<ClientConnection<ValidatedPeer>, number>();
  /** Used-up connections closing; close waits for them. */
  private readonly retiring = new Set<Promise<void>>();
  /** Requests made and not yet answered (or failed), and how close learns there are none left. */
  private underway = 0;
  private drained: (() => void) | undefined;
  private closing: Promise<void> | undefined;
  /**
   * Connections whose refusal was their last answer: a request there was refused for outliving the
   * server's certificate (outlivedServer), or this machine's certificate revoked (CERT_REVOKED).
   */
  private readonly outlived = new WeakSet<ClientConnection<ValidatedPeer>>();
  /** Challenged requests under way, and those waiting for one of them to finish. */
  private challenged = 0;
  private readonly waiting: (() => void)[] = [];
  private constructor(
    private conn: ClientConnection<ValidatedPeer>, private readonly credential: Credential | undefined, private readonly options: KeyClientOptions,
    /** This machine's key and certificate and the policy certificate, made into a TLS context once for every connection. */
    private readonly tls: PreparedClientTls,
  ) {}

  /** The key-server as verified: its serial, measurement and platform. */
  get server(): ValidatedPeer {
    return this.conn.peer!;
  }

  /** The current connection: which try it is (2 after an unsure refusal), and when it began connecting (performance.now()). */
  get opened(): { attempt: 1 | 2; at: number } {
    return { attempt: this.conn.attempt, at: this.conn.startedAt };
  }

  /** Resolves once the key-server has accepted this machine's certificate on the connection, sending nothing (ClientConnection.accepted). */
  accepted(): Promise<void> {
    return this.conn.accepted();
  }

  static async connect(o: KeyClientOptions): Promise<KeyClient> {
    // At least one request (a challenged one's two halves) per connection, or no request could go.
    const least = o.credential ? 2 : 1;
    if (o.requestsPerConnection !== undefined && !(Number.isSafeInteger(o.requestsPerConnection) && o.requestsPerConnection >= least)) {
      throw new CertifierError('INVALID_INPUT', `requestsPerConnection must be a whole number of at least ${least}`);
    }
    const tls = prepareClientTls({ key: o.identity.key, cert: toPem(o.identity.certificate), ca: toPem(o.policyCert) });
    return new KeyClient(await KeyClient.open(o, tls), o.credential, o, tls);
  }

  /** A connection to the key-server, which is checked on each: its chain, its measurement (a reused TLS context resumes no session). */
  private static async open(o: KeyClientOptions, tls: PreparedClientTls): Promise<ClientConnection<ValidatedPeer>> {
    const pins = (o.serverMeasurements ?? []).map((m) => m.toLowerCase());
    const conn = await connect<ValidatedPeer>({
      host: o.host, port: o.port, tls,
      verifyPeer: (chain) => {
        // simpleserver's certificate and role credentials validate too, but are never a key-server.
        const peer = requireMachine(validateAdmission({ chain, policyCert: o.policyCert, at: new Date(), usage: 'server' }), 'server');
        if (pins.length && !pins.includes(peer.measurementHex)) {
          throw new CertifierError('UNTRUSTED_PEER', `the key-server runs measurement ${peer.measurementHex}, not one of those pinned: check that --server names the key-server, and, for a new key-server program, pin its measurement too (--server-measurement, repeatable; README "Upgrading")`, { details: { reason: 'measurement-not-pinned', measurement: peer.measurementHex } });
        }
        return peer;
      },
      ...connectWaits(o.waits, o.limits),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    return conn;
  }

  async store(name: string, value: Uint8Array, o: { type?: EntryType; exportable?: boolean; expectedVersion?: number } = {}): Promise<number> {
    const r = await this.call({ action: 'store', name, data: value, ...(o.type ? { valueType: o.type } : {}), exportable: o.exportable ?? true, ...(o.expectedVersion !== undefined ? { expectedVersion: o.expectedVersion } : {}) });
    return storedVersion(name, r.version, o.expectedVersion);
  }

  async retrieve(name: string, version = 0): Promise<ValidEntry> {
    const r = await this.call({ action: 'retrieve', name, version });
    let entry: ValidEntry;
    try {
      entry = checkCryptstoreEntry(decode<CryptstoreEntry>('cryptstore_entry', r.data ?? new Uint8Array()));
    } catch (cause) {
      throw new CertifierError('DECODE_FAILED', `the key-server's answer for ${shown(name, 256)} is not a valid entry`, { cause });
    }
    if (entry.tag !== name || (version && entry.version !== version)) throw new CertifierError('INTEGRITY', `the key-server answered with another item than ${shown(name, 256)}`);
    // A cryptstore may hold an empty value; a key-server never does (a store of one is refused).
    if (entry.blob.length === 0) throw new CertifierError('BAD_FIELD', `the key-server's answer for ${shown(name, 256)} holds an empty value, which a key-server does not take (one stored before 2026-12-05, when key-server began refusing them, must be stored again)`);
    // A key-server releases nothing stored not exportable, but its storage key to one that joins it.
    if (!entry.exportable && name !== STORAGE_KEY_TAG) throw new CertifierError('NOT_EXPORTABLE', `the key-server released ${shown(name, 256)} version ${entry.version}, which it holds not exportable and so never releases: a fault of the key-server; it was not kept`);
    // Nor one larger than a store takes: what the server holds came through one.
    if (entry.blob.length > MAX_VALUE_BYTES) throw new CertifierError('BAD_FIELD', `the key-server's answer for ${shown(name, 256)} holds a value of ${entry.blob.length} bytes, more than the ${MAX_VALUE_BYTES} a key-server takes: a fault of the key-server`);
    return entry;
  }

  /**
   * Deletes one version (or all, 0): the versions deleted as the server names them (at most its
   * first 10,000) and how many there were.
   */
  async delete(name: string, version = 0): Promise<{ versions: number[]; count: number }> {
    const r = await this.call({ action: 'delete', name, version });
    return deletedVersions(name, r.data, version);
  }

  /**
   * Every name under `prefix`, asking page after page until the server is done: on this
   * connection, then on a new one (the same server, checked again) when a server would close
   * this one for its number of requests; at most LIST_GATHERED names (listEach takes any number).
   */
  async list(prefix = ''): Promise<ResourceInfo[]> {
    return collectPages(prefix, (after) => this.listPage(prefix, after));
  }

  /**
   * As list, each page given to `each` as it arrives and not kept (a listing of any length in
   * little memory), the next asked for once `each` has resolved, none once it resolves to false;
   * returns how many names were given.
   */
  async listEach(prefix: string, each: (items: ResourceInfo[]) => unknown): Promise<number> {
    return forEachPage(prefix, each, (after) => this.listPage(prefix, after));
  }

  /** One page of a listing: the names after `after`. */
  private async listPage(prefix: string, after: string | undefined): Promise<KeyServiceList> {
    const r = await this.call({ action: 'list', name: prefix, ...(after !== undefined ? { listAfter: after } : {}) });
    const page = listAnswer(r.data, LIST_PAGE, () => tooManyNames(prefix));
    // A key-server leaves its own names out (its next_after alone may name one, before 2026-12-06).
    const reserved = reservedNames(this.server.domain);
    const own = page.resources?.find((i) => i.resourceName !== undefined && isReserved(reserved, i.resourceName));
    if (own) throw new CertifierError('BAD_FIELD', `the key-server's listing of ${shown(prefix, 256)} named ${shown(own.resourceName!, 256)}, one of its own names, which a key-server never lists: a fault of the key-server`);
    return page;
  }

  /**
   * Waits for every request made before it to be answered (on a new connection too, where this one
   * is used up), then closes the connections; a request made after it is refused, never sent.
   */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    while (this.underway > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    await Promise.all([this.conn, ...this.inUse.keys()].map((c) => c.close()).concat([...this.retiring]));
  }

  /**
   * The connection for a request that counts `requests` against the server's limit (two for a
   * challenged one: both halves must go on one connection); given back with `release`. Once this
   * connection has been given all the server answers on one, the next request waits for a new
   * connection (one for all that wait), and the used-up one is closed once the requests on it are
   * done. A request sent past the limit would be dropped unanswered with the connection, be it a
   * retrieve or a store, and the client could not tell whether a store took effect.
   */
  private async connection(requests: number): Promise<ClientConnection<ValidatedPeer>> {
    while (!this.hasRoom(requests)) {
      this.replacing ??= this.replace().finally(() => (this.replacing = undefined));
      await this.replacing;
    }
    return this.take(requests);
  }

  /** Whether this connection may carry `requests` more. */
  private hasRoom(requests: number): boolean {
    return this.sent + requests <= (this.options.requestsPerConnection ?? DEFAULT_LIMITS.maxRequestsPerConnection);
  }

  /** This connection, for a request that counts `requests` (see connection). */
  private take(requests: number): ClientConnection<ValidatedPeer> {
    this.sent += requests;
    this.inUse.set(this.conn, (this.inUse.get(this.conn) ?? 0) + 1);
    return this.conn;
  }

  private release(conn: ClientConnection<ValidatedPeer>): void {
    const left = this.inUse.get(conn)! - 1;
    if (left > 0) this.inUse.set(conn, left);
    else {
      this.inUse.delete(conn);
      if (conn !== this.conn) this.retire(conn);
    }
  }

  private async replace(): Promise<void> {
    const next = await KeyClient.open(this.options, this.tls);
    const previous = this.conn;
    [this.conn, this.sent] = [next, 0];
    if (!this.inUse.has(previous)) this.retire(previous);
  }

  private retire(conn: ClientConnection<ValidatedPeer>): void {
    // A failure there is the failure of the requests that were on it, which they report themselves.
    const closing: Promise<void> = conn.close().catch(() => {}).then(() => void this.retiring.delete(closing));
    this.retiring.add(closing);
  }

  /** One request, counted until it is answered so that close waits for it; refused once close has begun. */
  private async call(req: Partial<KeyRequest> & { action: Action; name: string }): Promise<KeyResponse> {
    if (this.closing) throw new CertifierError('UNREACHABLE', `this connection to the key-server ${hostPort(this.options.host, this.options.port)} is closed; the request was not sent`);
    this.options.signal?.throwIfAborted();
    this.underway++;
    try {
      return await this.challengedCall(req);
    } finally {
      if (--this.underway === 0) this.drained?.();
    }
  }

  /**
   * One request; with a credential, first obtains a nonce and answers it (a nonce is good once).
   * Challenged requests go at most CHALLENGES_PER_CONNECTION at a time: the server keeps no more
   * nonces per connection, so the 17th of a batch sent at once would void the first's nonce.
   */
  private challengedCall(req: Partial<KeyRequest> & { action: Action; name: string }): Promise<KeyResponse> {
    // Without a credential, the exchange's own promise: no further step per request.
    return this.credential ? this.challengedExchange(req) : this.exchange(req);
  }

  private async challengedExchange(req: Partial<KeyRequest> & { action: Action; name: string }): Promise<KeyResponse> {
    while (this.challenged >= CHALLENGES_PER_CONNECTION) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.challenged++;
    try {
      return await this.exchange(req);
    } finally {
      this.challenged--;
      this.waiting.shift()?.();
    }
  }

  /**
   * Whether `r` refuses a request because `conn` outlived the key-server's certificate it was opened
   * with: CERT_EXPIRED, and that certificate's end past by this machine's clock too. The server
   * refuses such a request before carrying anything out, and a new connection gets the certificate
   * in force (one renewed through --certifier), or is refused at its handshake when none is.
   */
  private outlivedServer(conn: ClientConnection<ValidatedPeer>, r: KeyResponse): boolean {
    const end = conn.peer?.validUntil;
    return r.errorCode === 'CERT_EXPIRED' && end !== undefined && Date.now() > end.getTime();
  }

  /**
   * Whether `e` is `conn` closing after a refusal there that was its last answer (outlived): the
   * server reads nothing after it, ends the connection once the requests it read are answered, and
   * refuses each of them before carrying anything out, so a request cut off by that close was
   * never carried out.
   */
  private async closedOutlived(conn: ClientConnection<ValidatedPeer>, e: unknown): Promise<boolean> {
    if (!isCertifierError(e, 'UNREACHABLE')) return false;
    // The refusal came before the close, but the request it answers may not have looked at it yet.
    await new Promise<void>((resolve) => setImmediate(resolve));
    return this.outlived.has(conn);
  }

  /**
   * One request on a connection with room for it. One refused because the connection outlived the
   * server's certificate is sent again, once, on a new connection: that one is used up. So is one
   * the close after such a refusal cut off unanswered (closedOutlived), or after a CERT_REVOKED,
   * which a new connection gets too, and is then its answer.
   */
  private async exchange(req: Partial<KeyRequest> & { action: Action; name: string }, again = false): Promise<KeyResponse> {
    const counts = this.credential ? 2 : 1;
    // Taken at once where this connection has room (nearly always), rather than after a step.
    const conn = this.hasRoom(counts) ? this.take(counts) : await this.connection(counts);
    let r: KeyResponse;
    // Whether the request the server carries out (with a credential, the one answering its challenge) was written.
    let sent = false;
    const written = () => void (sent = true);
    // A store that would make another version, or a delete, read twice: once written, never sent
    // again on a second try (second-try.ts). A read, or a store with --expected-version (a repeat
    // is VERSION_CONFLICT), may be.
    const once = req.action === 'delete' || (req.action === 'store' && req.expectedVersion === undefined);
    try {
      r = answerTo(req, parseKeyResponse(await conn.request(encodeKeyRequest(this.credential ? { ...req, credentials: this.credential.chain } : req), this.credential ? undefined : written, !this.credential && once)));
      if (r.status === 'auth-challenge' && this.credential) {
        const exporter = conn.exportKeyingMaterial(CHALLENGE_EXPORTER_LABEL, 32);
        const signature = sign(this.credential.key, challengeMessage(r.data!, exporter ?? new Uint8Array()));
        r = answerTo(req, parseKeyResponse(await conn.request(encodeKeyRequest({ ...req, credentials: this.credential.chain, challengeNonce: r.data!, challengeSignature: signature }), written, once)));
      }
    } catch (e) {
      if (again || !(await this.closedOutlived(conn, e))) throw sent ? unanswered(req, e) : e;
      return this.exchange(req, true);
    } finally {
      this.release(conn);
    }
    if (r.status === 'auth-challenge') {
      // With a credential, this is a second challenge: the server asks once a request.
      const why = this.credential ? `asked again for an auth-challenge to the ${req.action} of ${shown(req.name, 256)}, which it had just been given the answer to: a fault of the key-server` : 'asked for an auth-challenge this client cannot answer';
      throw new CertifierError('CHALLENGE_FAILED', `the key-server ${why}`);
    }
    const outlived = r.status !== 'succeeded' && this.outlivedServer(conn, r);
    // CERT_REVOKED is this machine's certificate's, the connection's last answer; a revoked role
    // credential is CREDENTIAL_REVOKED, after which the server reads on, and this connection is kept.
    const revoked = r.status === 'failed' && r.errorCode === 'CERT_REVOKED';
    if (outlived || revoked) {
      this.outlived.add(conn);
      if (conn === this.conn) this.sent = Infinity; // no more requests on it: the next opens a new one
      if (outlived && !again) return this.exchange(req, true);
    }
    if (r.status !== 'succeeded') throw refusal(r, req, () => this.certificatesOf(conn), () => this.serials());
    return r;
  }

  /** The serial numbers of this machine's certificate and of the role credential every request carries, if any. */
  private serials(): { machine: string; credential?: string } {
    const machine = this.options.identity.peer.serialHex;
    return this.credential ? { machine, credential: parseCertificate(this.credential.chain[0]!).serialHex } : { machine };
  }

  /** The certificates a request on `conn` rests on, with their dates, in the order the key-server checks them. */
  private certificatesOf(conn: ClientConnection<ValidatedPeer>): Dated[] {
    const { identity, policyCert } = this.options;
    const policy = parseCertificate(policyCert);
    const dated: Dated[] = [
      { name: "this machine's certificate", from: identity.peer.notBefore, until: identity.peer.notAfter, fix: 'certify this machine again (cert-utility init-trust)' },
      { name: 'the policy certificate', from: policy.notBefore, until: policy.notAfter, fix: 'replace the policy key (README "Replacing the policy key")' },
    ];
    if (conn.peer) dated.push({ name: "the key-server's own certificate", from: conn.peer.notBefore, until: conn.peer.notAfter, fix: 'the key-server needs a new one (cert-utility init-trust, or --certifier)' });
    if (this.credential) {
      const role = parseCertificate(this.credential.chain[0]!);
      dated.push({ name: 'the role credential', from: role.notBefore, until: role.notAfter, fix: "have the policy key's holder issue a new one (cert-utility issue-role-cert)" });
    }
    return dated;
  }
}

/**
 * The most names a listing gathers into one array (KeyClient.list, collectPages): each page moves
 * on, but a key-server may send page after page of new names for as long as it likes.
 */
export const LIST_GATHERED = 100_000;

/**
 * A listing's pages put together: each answer that names a next_after is followed by a request
 * for the names after it. Each page is checked (pageItems): it must hold names after the page
 * before, or a faulty server could keep a client asking for ever. More than `most` names fail
 * INVALID_INPUT: forEachPage takes any number, a page at a time.
 */
export async function collectPages(prefix: string, page: (after: string | undefined) => Promise<KeyServiceList>, most = LIST_GATHERED): Promise<ResourceInfo[]> {
  const out: ResourceInfo[] = [];
  await forEachPage(prefix, (items) => {
    if (out.length + items.length > most) {
      throw new CertifierError('INVALID_INPUT', `the key-server's listing of ${shown(prefix, 256)} holds more than ${most.toLocaleString('en-US')} names, the most a listing gathers into memory: list them page by page (KeyClient.listEach, as key-client list does)`);
    }
    out.push(...items);
  }, page);
  return out;
}

/** As collectPages, each page's names given to `each` in turn (awaited; false stops the listing); returns how many were given. */
export async function forEachPage(prefix: string, each: (items: ResourceInfo[]) => unknown, page: (after: string | undefined) => Promise<KeyServiceList>): Promise<number> {
  let after: string | undefined;
  let count = 0;
  for (;;) {
    const p = await page(after);
    const items = pageItems(prefix, after, p);
    count += items.length;
    if (items.length && (await each(items)) === false) return count;
    if (p.nextAfter === undefined) return count;
    after = p.nextAfter;
  }
}

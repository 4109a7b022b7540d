// key-client: fetches named keys from a key-server into this machine's cryptstore (or files),
// and provisions keys into a key-server.

import type { Command } from 'commander';
import { Option } from 'commander';
import { createPublicKey } from 'node:crypto';
import { CertifierError, isCertifierError } from '../lib/errors/index.ts';
import { toHex } from '../lib/crypto/index.ts';
import { ENTRY_TYPES, printableName, shown, tagProblem, visibleJson, type EntryType } from '../lib/wire/index.ts';
import { checkWritable, DirChecks, readFileLimited, sweepLeftovers, type Leftover, type OwnFiles } from '../lib/files/index.ts';
import { JsonItemsText } from '../lib/util/json.ts';
import { itemValue, readCertificateChain, readCertificateSummary, type ValidatedPeer } from '../lib/pki/index.ts';
import { endsWithPolicyCert, isIdentityTag, loadIdentity, noRenewalPast, renewDue } from '../lib/certifier/index.ts';
import { KeyClient, checkServer, fetchAll, keepAll, provision, readProvisionConfig, refuseBeforeFetching, sweepDestinations, type KeyClientOptions, type ResourceInfo, type SecretSpec } from '../lib/keyclient/index.ts';
import { DEFAULT_LIMITS, SECOND_TRY_PAUSE_MS } from '../lib/channel/index.ts';
import { MAX_VALUE_BYTES } from '../lib/keyservice/protocol.ts';
import { STORAGE_KEY_TAG } from '../lib/keyservice/keystore.ts';
import { NOT_A_ROLE, verifyRoleCredential } from '../lib/keyservice/roles.ts';
import { sameKey } from '../lib/policy/index.ts';
import { Cryptstore } from '../cryptstore/index.ts';
import { addExamples, createProgram, domainName, run, versionOf, subcommand, note, printLines, printText, warn, type JsonOption, type Result } from './common/cli.ts';
import { openStore, storeOptions, type ProtectionOptions } from './common/protection.ts';
import { parseHostPort, parseMeasurementHex, readCertificateFile, readPrivateKeyFile, requirePolicyDomain } from './common/keys.ts';
import { outputResult, readInput, refuseOutput, storeFiles, writeOutput } from './common/io.ts';
import { deadlineFlag, deadlineSignal, timeoutFlag, waitsOf, type DeadlineOption, type TimeoutOption } from './common/timeout.ts';

const P = 'key-client';
process.umask(0o077);
const program = createProgram(P, 'fetch named keys from a key-server into the cryptstore, or provision them');

interface ClientOpts extends JsonOption, ProtectionOptions, TimeoutOption, DeadlineOption {
  server: string;
  domain: string;
  policyCert: string;
  serverMeasurement: string[];
  credentialCert?: string;
  credentialKey?: string;
}

/** The flags that say which key-server to reach, how to know it, and where this machine's identity is. */
function serverOptions(cmd: Command): Command {
  return storeOptions(cmd)
    .requiredOption('--server <host:port>', 'the key-server')
    .requiredOption('--domain <name>', 'the policy domain', domainName)
    .requiredOption('--policy-cert <file>', 'the pinned policy certificate')
    .option('--server-measurement <hex>', 'a measurement the key-server must run: 64 or 96 hex digits (repeatable)', (v: string, a: string[]) => [...a, v], [])
    .addOption(timeoutFlag())
    .addOption(deadlineFlag());
}

function clientOptions(cmd: Command): Command {
  return serverOptions(cmd)
    .option('--credential-cert <file>', 'a role certificate to present (answers the auth-challenge)')
    .option('--credential-key <file>', 'the private key of --credential-cert');
}

/** Why a key-server could not accept NAME as a resource name, as a message naming it, or undefined. */
function nameProblem(name: string): string | undefined {
  const problem = tagProblem(name);
  return problem ? `the name ${shown(name, 256)} ${problem}` : undefined;
}

/** A resource name the key-server could accept, or USAGE before anything is opened. */
function checkName(name: string): void {
  const problem = nameProblem(name);
  if (problem) throw new CertifierError('USAGE', problem);
}

/**
 * Everything a run fetches goes over one connection, and a key-server answers at most
 * DEFAULT_LIMITS.maxRequestsPerConnection requests on one (two per name with a credential: the
 * auth-challenge): more would end in a closed connection, which retrying never mends.
 */
function checkFetchCount(o: Pick<ClientOpts, 'credentialCert'>, count: number, code: 'USAGE' | 'INVALID_INPUT', what: string): void {
  const perName = o.credentialCert ? 2 : 1;
  const max = Math.floor(DEFAULT_LIMITS.maxRequestsPerConnection / perName);
  if (count > max) {
    throw new CertifierError(code, `${count} ${what} is too many for one run: a key-server answers at most ${DEFAULT_LIMITS.maxRequestsPerConnection} requests on a connection${perName === 2 ? ', two per name with a credential' : ''}; fetch at most ${max} at a time`);
  }
}

/**
 * NAMES (each once) as retrieve takes them, into the cryptstore or one to --out, or USAGE naming
 * every one it refuses and why, before anything is read: retrieve's own check, which --check-only asks alone.
 */
function checkFetchNames(o: Pick<ClientOpts, 'credentialCert'> & { out?: string; force?: boolean }, names: string[]): void {
  if (o.force && !o.out) throw new CertifierError('USAGE', '--force replaces the file --out names: without --out each value goes into the cryptstore as a new version, which replaces nothing');
  const problems = names.map((name) => nameProblem(name)
    // Released only to a standby or replica (--allow-replica-join), which keeps it sealed in its
    // cryptstore: never to a file, nor under its own tag in a client's store.
    ?? (name === STORAGE_KEY_TAG ? `"${STORAGE_KEY_TAG}" is a key-server's storage key: a standby or replica fetches it with key-server join` : undefined)
    ?? (!o.out && isIdentityTag(name) ? `${shown(name, 256)} is where init-trust keeps a machine's identity in the cryptstore; fetch it to a file with --out` : undefined));
  const refused = problems.filter((p) => p !== undefined);
  if (refused.length > 0) throw new CertifierError('USAGE', refused.join('; '));
  if (o.out && names.length !== 1) throw new CertifierError('USAGE', '--out takes exactly one NAME');
  checkFetchCount(o, names.length, 'USAGE', 'names');
}

/** A signal that came while the last secret went in waited for it: the run is complete, and says so as it stops. */
const completedBeforeSignal = (signal: NodeJS.Signals, failed?: string) =>
  note(P, `${signal} came as the secrets were being written: ${failed ? `every one that arrived was written, but not ${failed}` : 'every one was written'}; stopping`);

/**
 * Names what a killed run left beside `file` and the sweep left, being younger than a write still
 * going on could be, or because it could not be removed: the previous value kept aside (.old), or
 * a new value being written (.tmp); either may hold a secret.
 */
function noteLeftovers(file: string, left: Leftover[] = []): void {
  for (const l of left) {
    const what = l.path.endsWith('.old') ? 'the previous value, kept aside' : 'a value being written';
    const why = l.notRemoved
      ? `it could not be removed (${l.notRemoved}): remove it by hand`
      : `too new to remove now; a run after ${l.removableAfter.toISOString()} removes it`;
    note(P, `${l.path}, left beside ${file} by a killed run (or one still writing), may hold a secret (${what}): ${why}`);
  }
}

/**
 * For a run the deadline cut off: which names had arrived by then and which had not (none is
 * written, so the rerun fetches them all again).
 */
function cutOff(outcomes: { spec: SecretSpec; error?: CertifierError }[], e: CertifierError): string {
  if (e.code !== 'DEADLINE') return '';
  const late = outcomes.filter((x) => x.error).map((x) => shown(x.spec.name, 256));
  return ` (${outcomes.length - late.length} of ${outcomes.length} had arrived; not ${late.join(', ')})`;
}

/** What a key-client command works with: never a destination for what it fetches. */
function clientFiles(o: ClientOpts, ...more: string[]): OwnFiles {
  return storeFiles(o, o.policyCert, o.credentialCert, o.credentialKey, ...more);
}

interface ClientFlags { host: string; port: number; pins: string[] }

/** The common flags' values as a connection takes them, or USAGE, reading nothing. */
function clientFlags(o: ClientOpts): ClientFlags {
  const { host, port } = parseHostPort(o.server, '--server');
  const pins = o.serverMeasurement.map((m) => toHex(parseMeasurementHex(m, '--server-measurement')));
  if (!o.credentialCert !== !o.credentialKey) throw new CertifierError('USAGE', '--credential-cert and --credential-key go together');
  return { host, port, pins };
}

/**
 * Opens the store, loads this machine's identity, connects to what `flags` (clientFlags(o), which
 * a command parses before reading its input) say; always closes both.
 */
async function withClient<T>(o: ClientOpts, flags: ClientFlags, fn: (client: KeyClient, store: Cryptstore) => Promise<T>, beforeConnecting?: (store: Cryptstore) => Promise<void>): Promise<T> {
  return withConnectOptions(o, flags, async (options, store) => {
    await beforeConnecting?.(store);
    const client = await KeyClient.connect(options);
    try {
      return await fn(client, store);
    } finally {
      await client.close().catch(() => {});
    }
  });
}

/** verifyRoleCredential now, a machine's certificate given for a credential told what a credential is. */
function credentialOf(chain: Uint8Array[], policyCert: Uint8Array): ReturnType<typeof verifyRoleCredential> {
  try {
    return verifyRoleCredential(chain, policyCert, new Date());
  } catch (e) {
    if (!isCertifierError(e, 'CREDENTIAL_INVALID') || e.details?.reason !== NOT_A_ROLE) throw e;
    throw new CertifierError('CREDENTIAL_INVALID', `${e.message}: --credential-cert takes a role credential, which cert-utility issue-role-cert --role NAME makes for the holder's public key, not a machine's admission certificate`, { cause: e, details: e.details });
  }
}

/**
 * Reads and checks the policy certificate and any credential, opens the store and loads this
 * machine's identity: what a connection to what `flags` say is made with; always closes the store.
 */
async function withConnectOptions<T>(o: ClientOpts, flags: ClientFlags, fn: (options: KeyClientOptions, store: Cryptstore) => Promise<T>): Promise<T> {
  const { host, port, pins } = flags;
  const policyCert = await readCertificateFile(o.policyCert);
  requirePolicyDomain(policyCert, o.domain, o.policyCert);
  const credential = o.credentialCert
    ? { chain: readCertificateChain(await readFileLimited(o.credentialCert, 64 * 1024)), key: await readPrivateKeyFile(o.credentialKey!) }
    : undefined;
  // Checked here first, so an ended (or not yet valid) credential says so and when, rather than
  // the key-server's bare CERT_EXPIRED, without connecting.
  if (credential) {
    const { peer } = credentialOf(credential.chain, policyCert);
    // A key that is not the certificate's would sign a challenge the server can only refuse.
    if (!sameKey(peer.publicKey, createPublicKey(credential.key))) throw new CertifierError('INVALID_KEY', `${o.credentialKey} is not the key of ${o.credentialCert}`);
  }
  if (pins.length === 0) warn(P, 'trusting any admitted machine of the domain as the key-server; pin it with --server-measurement');
  const store = await openStore(P, o);
  try {
    const identity = await loadIdentity(store, o.domain, policyCert);
    const signal = deadlineSignal(o, o.server);
    return await fn({ host, port, identity, policyCert, serverMeasurements: pins, waits: waitsOf(o), ...(credential ? { credential } : {}), ...(signal ? { signal } : {}) }, store);
  } finally {
    await store.close();
  }
}

clientOptions(subcommand<ClientOpts & { in: string; notExportable?: boolean; type: EntryType; expectedVersion?: number }>(program, 'store',
  'store a value under NAME in the key-server (the next version)',
  async (o, args) => {
    checkName(args[0]!); // a name that would look like another: the server refuses it if it is new
    const flags = clientFlags(o); // a usage error before the input is read (standard input, say)
    const input = await readInput(o.in, MAX_VALUE_BYTES);
    if (input.length === 0) throw new CertifierError('INVALID_INPUT', `nothing to store: ${o.in === '-' ? 'standard input' : o.in} is empty`);
    const value = itemValue(o.type, input); // as put-item: a certificate item holds one DER certificate
    const version = await withClient(o, flags, (c) => c.store(args[0]!, value, { type: o.type, exportable: !o.notExportable, ...(o.expectedVersion !== undefined ? { expectedVersion: o.expectedVersion } : {}) }));
    return { json: { name: args[0], version }, text: [`stored ${printableName(args[0]!)} version ${version}`] };
  }))
  .argument('<name>', 'resource name, e.g. datica-test/storage-disk-key')
  .requiredOption('--in <file>', 'file to read, or - for standard input')
  .option('--not-exportable', 'the key-server keeps it but never releases it')
  .addOption(new Option('--type <type>', 'value type').choices([...ENTRY_TYPES]).default('binary-blob'))
  .option('--expected-version <n>', 'fail unless the latest version is this (0 = none yet)', versionOf('none yet'));

clientOptions(subcommand<ClientOpts & { version: number; out?: string; force?: boolean }, ClientFlags>(program, 'retrieve',
  'fetch NAME... over one connection into the cryptstore (tag = name), or one NAME to --out',
  async (o, args, flags) => {
    const names = [...new Set(args)]; // a name given twice is fetched and kept once
    const specs: SecretSpec[] = names.map((name) => ({ name, version: o.version, ...(o.out ? {} : { tag: name }) }));
    // Before connecting: a key-server releases (and records) nothing for a value with nowhere to go.
    if (o.out) await refuseOutput(o.out, clientFiles(o));
    if (o.out && o.out !== '-') {
      // Whether or not the file is written: a killed run's leftovers beside it may hold a secret.
      noteLeftovers(o.out, await sweepLeftovers(o.out));
      await checkWritable(o.out, { exclusive: !o.force });
    }
    return withClient(o, flags, async (client, store): Promise<Result> => {
      const outcomes = await fetchAll(client, specs);
      const failure = outcomes.find((x) => x.error);
      if (failure) throw new CertifierError(failure.error!.code, `${failure.error!.message}; nothing was written${cutOff(outcomes, failure.error!)}`, { cause: failure.error });
      if (o.out) {
        const e = outcomes[0]!.entry!;
        const raw = await writeOutput(o.out, e.blob, o.force === true, clientFiles(o));
        return outputResult(o.out, raw, { items: [{ name: e.tag, version: e.version, type: e.type, size: e.blob.length, out: o.out }] }, { tag: e.tag, version: e.version, size: e.blob.length });
      }
      await keepAll(store, outcomes, { completedBeforeSignal });
      const items = outcomes.map((x) => ({ name: x.spec.name, version: x.entry!.version, storeVersion: x.storeVersion, size: x.entry!.blob.length, written: x.written }));
      return { json: { items }, text: items.map((i) => `${printableName(i.name)} version ${i.version} from the server: ${i.written === 'new' ? 'stored' : 'already'} in the cryptstore as version ${i.storeVersion}`) };
    });
  },
  // Before anything is read, and all of a --check-only run (first-boot.sh asks before certifying).
  (o, args) => {
    checkFetchNames(o, [...new Set(args)]);
    return clientFlags(o);
  }))
  .argument('<name...>', 'resource names')
  .option('--version <n>', 'version to fetch (0 = latest)', versionOf('latest'), 0)
  .option('--out <file>', 'write the one value here (0600) or to stdout with -, instead of the cryptstore')
  .option('--force', 'replace --out if it exists');

clientOptions(subcommand<ClientOpts & { version: number }>(program, 'delete', 'delete one version of NAME, or all of them (needs an ACL rule)',
  async (o, args) => {
    checkName(args[0]!);
    const { versions, count } = await withClient(o, clientFlags(o), (c) => c.delete(args[0]!, o.version));
    const more = count > versions.length ? `, and ${count - versions.length} more (${count} in all)` : '';
    return { json: { name: args[0], deleted: versions, count }, text: [`deleted ${printableName(args[0]!)} version(s) ${versions.join(', ')}${more}`] };
  }))
  .argument('<name>', 'resource name')
  .option('--version <n>', 'version to delete (0 = all)', versionOf('all'), 0);

clientOptions(subcommand<ClientOpts>(program, 'list', 'list names and metadata under PREFIX (never values)',
  async (o, args) => {
    if (args[0]) checkName(args[0]);
    // Out page by page, the next asked for once stdout has room, none once it is closed
    // (| head): a listing of any length takes little memory. The JSON document too: opened with
    // the first page, closed after the last; a failure part way ends its unfinished line, and the
    // error's document follows on a line of its own.
    // Each page was checked (pageItems): a type is one of the entry types, a time is RFC 3339;
    // only a name can hold what a terminal would not show as itself.
    const line = (i: ResourceInfo) => `${printableName(i.name)}\tv${i.version}\t${i.type}\t${i.size} bytes\t${i.exportable ? 'exportable' : 'not-exportable'}\t${i.timeEntered}`;
    const doc = new JsonItemsText('items', visibleJson); // as error documents: a name's invisible characters as \uXXXX
    let open = true;
    const print = (items: ResourceInfo[]) => (o.json ? printText(doc.more(items)) : printLines(items.map(line)));
    try {
      await withClient(o, clientFlags(o), (c) => c.listEach(args[0] ?? '', async (items) => (open = await print(items))));
    } catch (e) {
      await printText(doc.cut()).catch(() => undefined);
      throw e;
    }
    if (o.json && open) await printText(doc.end());
    return { json: {}, written: true };
  }))
  .argument('[prefix]', 'name prefix');

clientOptions(subcommand<ClientOpts & { config: string; allowPartial?: boolean }>(program, 'provision',
  'fetch every secret a config file names into the cryptstore or files; all or nothing',
  async (o) => {
    const flags = clientFlags(o); // a usage error before the config is read (it came only after)
    const { specs, warning } = await readProvisionConfig(o.config);
    if (warning) warn(P, warning);
    checkFetchCount(o, specs.length, 'INVALID_INPUT', 'secrets');
    const own = clientFiles(o, o.config);
    // On every run, whatever comes of it: a killed run's leftovers beside a LocalPath may hold a secret.
    for (const { file, left } of await sweepDestinations(specs, own)) noteLeftovers(file, left);
    const dirs = new DirChecks(); // this run's look at the LocalPaths' directories
    const outcomes = await withClient(o, flags, (c, store) => provision(c, store, specs, { allowPartial: o.allowPartial === true, own, completedBeforeSignal, checked: true, swept: true, dirs }), (store) => refuseBeforeFetching(store, specs, own, dirs));
    for (const x of outcomes.filter((y) => y.error)) warn(P, `could not provision ${shown(x.spec.name, 256)}: ${x.error!.message} [${x.error!.code}]`);
    const items = outcomes.map((x) => ({ name: x.spec.name, ...(x.spec.tag ? { tag: x.spec.tag } : { file: x.spec.file }), ...(x.entry ? { version: x.entry.version, ...(x.storeVersion ? { storeVersion: x.storeVersion } : {}), written: x.written } : { error: x.error!.code }) }));
    // Each line names its destination: one ID may go to a tag and to a file.
    const where = (i: { tag?: string; file?: string }) => (i.tag !== undefined ? `tag ${printableName(i.tag)}` : printableName(String(i.file)));
    const outcome = (i: (typeof items)[number]) => 'error' in i ? `FAILED (${i.error})`
      : `version ${i.version} ${i.written === 'new' ? 'written to' : 'unchanged in'} ${where(i)}${'storeVersion' in i ? ` (the cryptstore's version ${i.storeVersion})` : ''}`;
    return { json: { items }, text: items.map((i) => `${printableName(i.name)}: ${outcome(i)}`) };
  }))
  .requiredOption('--config <file>', 'JSON: {"secrets": [{"ID": NAME, "Version"?: N, "Tag": TAG | "LocalPath": FILE, "Mode"?: "0600"}]}')
  .option('--allow-partial', 'keep what arrived even if some secrets could not be fetched');

/**
 * A warning for a certificate the check found as near its end as init-trust waits for before it
 * renews one (within 3 days, or past half its life for one of 6 days or less): renewed on time, it
 * would have been replaced by then, so one still in use wants an operator.
 */
function endWarning(which: string, cert: ValidatedPeer, policyCertEnds: Date, fix: string): void {
  if (!renewDue(cert, new Date())) return;
  const hours = Math.max(0, Math.floor((cert.validUntil.getTime() - Date.now()) / 3_600_000));
  const advice = endsWithPolicyCert(cert.validUntil, policyCertEnds) ? noRenewalPast(policyCertEnds) : fix;
  warn(P, `${which} (serial ${cert.serialHex}) ends at ${cert.validUntil.toISOString()}, in ${hours} hours: ${advice}`);
}

serverOptions(subcommand<ClientOpts, ClientFlags>(program, 'check',
  'connect to the key-server as a request would, send none, and say who it is and whether it accepts this machine',
  async (o, _args, flags) => {
    const [c, policyCertEnds] = await withConnectOptions(o, flags, async (options) => [await checkServer(options), readCertificateSummary(options.policyCert).notAfter] as const);
    endWarning("the key-server's certificate", c.server, policyCertEnds, 'with --certifier the key-server renews it itself (its log says identity-renewal-failed if it cannot); without, run cert-utility init-trust on its store and restart it');
    endWarning("this machine's admission certificate", c.own, policyCertEnds, 'run cert-utility init-trust on this machine\'s store, which renews it now');
    const handshakeMs = Math.round(c.handshakeMs * 10) / 10;
    const server = { address: o.server, measurement: c.server.measurementHex, platform: c.server.platform, serial: c.server.serialHex, notAfter: c.server.notAfter.toISOString() };
    const own = { measurement: c.own.measurementHex, serial: c.own.serialHex, notAfter: c.own.notAfter.toISOString() };
    // A second try's time is its own handshake's: said so, as the pause and the first try are not in it.
    const secondTry = c.attempts === 2 ? `, on a second try: the first connection closed right after its handshake, as a refusal does (and a server killed in it), and was tried again ${SECOND_TRY_PAUSE_MS} ms later` : '';
    return {
      json: { server, own, handshakeMs, attempts: c.attempts },
      text: [
        `key-server ${server.address} accepted this machine; handshake ${handshakeMs} ms${secondTry}`,
        `server: measurement ${server.measurement}, platform ${server.platform}, certificate serial ${server.serial}, notAfter ${server.notAfter}`,
        `this machine: measurement ${own.measurement}, certificate serial ${own.serial}, notAfter ${own.notAfter}`,
      ],
    };
  },
  // Before anything is read, and all of a --check-only run.
  (o) => clientFlags(o)))
  .addHelpText('after', `
Sends no request: no ACL rule is needed, no secret is touched, and key-server logs the
connection closed with requests=0 and writes no audit line. Exits 0 once the key-server has
accepted this machine's certificate; otherwise with the code and exit status a retrieve gives
for the same fault: UNREACHABLE, TIMEOUT or DEADLINE (3), UNTRUSTED_PEER or CERT_EXPIRED (4);
a certificate the key-server's ACL revokes is accepted here, and refused at a request (CERT_REVOKED; a revoked role credential, CREDENTIAL_REVOKED).
Warns on stderr when either certificate is within 3 days of its end (past half its life,
for one of 6 days or less), when init-trust would renew it.`);

// Examples for each command's --help (the common flags as a VM's first boot gives them).
const COMMON = '--server 10.0.0.5:8120 --domain datica --policy-cert policy-cert.pem --server-measurement <hex> --store st --key-file st.key';
const EXAMPLES: Record<string, string[]> = {
  store: [`key-client store vhd/disk-1 --in disk-1.key ${COMMON}`],
  retrieve: [`key-client retrieve vhd/disk-1 vhd/disk-2 ${COMMON}`, `key-client retrieve api/token --out - ${COMMON} | my-app --token-stdin`],
  delete: [`key-client delete vhd/disk-1 --version 2 ${COMMON} --credential-cert operator.pem --credential-key operator-key.pem`],
  list: [`key-client list vhd/ --json ${COMMON}`],
  provision: [`key-client provision --config secrets.json ${COMMON}`],
  check: [`key-client check --json ${COMMON}`],
};
addExamples(program, EXAMPLES);

await run(program);

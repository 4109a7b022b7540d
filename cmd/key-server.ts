// key-server: stores and releases named keys over mutual TLS to admitted machines of the policy
// domain, with an ACL and a hash-chained audit log.

import { hostname } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { inDir, realFilePath, realLocation, unmakeDirs } from '../lib/files/index.ts';
import { CertifierError } from '../lib/errors/index.ts';
import type { Acl } from '../lib/keyservice/acl.ts';
import { AuditLog, endPath, refuseMissingAuditDir, repairAuditTail } from '../lib/keyservice/audit.ts';
import { verifyChain, type ChainAnchor } from '../lib/keyservice/audit-chain.ts';
import { InvalidArgumentError } from 'commander';
import { LevelBackend } from '../lib/keyservice/level-backend.ts';
import { refuseOthersBackup, startKeyServer } from '../lib/keyservice/server.ts';
import { loadIdentity } from '../lib/certifier/index.ts';
import { joinReplica } from '../lib/keyclient/replica-join.ts';
import { openPostgres, pgUrlOf, PG_URL_ENV, replicaIdArg, type PostgresOptions } from './key-server/postgres.ts';
import { openCertified } from './key-server/renewal.ts';
import { aclCounts, readAclFile } from './key-server/acl-file.ts';
import { newEmptyDatabase } from './key-server/level.ts';
import { stat } from 'node:fs/promises';
import { backupName, prepareBackupDir, pruneBackups, pruneReport } from '../lib/keyservice/backups.ts';
import { loadPlatform } from './common/platform.ts';
import { addExamples, choice, collect, createProgram, decimal, dirArg, domainName, intInRange, note, run, subcommand, warn, type JsonOption } from './common/cli.ts';
import { openStore, storeOptions, withProtector, type ProtectionOptions } from './common/protection.ts';
import { parseHostPort, readCertificateFile, requirePolicyDomain } from './common/keys.ts';
import { timeoutFlag, waitsOf, type TimeoutOption } from './common/timeout.ts';
import { closeWithin, logLine, runUntilSignal } from './common/server.ts';
import { Cryptstore } from '../cryptstore/index.ts';

const P = 'key-server';
/**
 * Closed once the server has (its chain's end logged), bounded as the rest of what serve opened
 * is; the close in their loop after then returns at once, so one stuck is waited for and warned
 * of once.
 */
const AUDIT_LOG = 'the audit log';
process.umask(0o077);
const program = createProgram(P, 'store and release named keys to certified machines over mutual TLS');

storeOptions(subcommand<JsonOption & ProtectionOptions & PostgresOptions & TimeoutOption & { domain: string; policyCert: string; data: string; listen: string; acl?: string; audit?: string; logJson?: boolean; backend: string; allowReplicaJoin?: boolean; certifier?: string; auditRotateMb?: number; backupDir?: string; backupKeep?: number }>(program, 'serve',
  'serve the key service (the store must hold this server\'s identity from cert-utility init-trust)',
  async (o) => {
    if ((await realFilePath(o.data)) === (await realFilePath(o.store))) {
      throw new CertifierError('USAGE', '--data and --store must be different directories: the key database (or, with PostgreSQL, the audit log and lock) and this server\'s cryptstore are kept apart');
    }
    const { host, port } = parseHostPort(o.listen, '--listen', { listen: true });
    const certifier = o.certifier ? parseHostPort(o.certifier, '--certifier') : undefined;
    const given = (name: string) => program.commands.find((c) => c.name() === 'serve')!.getOptionValueSource(name) === 'cli';
    // Its only connection out is a renewal's: without --certifier it would bound nothing.
    if (!certifier && given('timeout')) throw new CertifierError('USAGE', '--timeout goes with --certifier: it bounds the waits of a renewal through simpleserver');
    if (o.backupDir && o.backend !== 'level') throw new CertifierError('USAGE', '--backup-dir backs up the LevelDB key database; back up PostgreSQL with its own tools');
    if (o.backupKeep && !o.backupDir) throw new CertifierError('USAGE', '--backup-keep goes with --backup-dir');
    if (o.backupDir) {
      // Told apart as the kernel finds them (links followed, names not there yet taken as they would be made).
      const [data, backups] = await Promise.all([realFilePath(o.data), realFilePath(o.backupDir)]);
      if (backups === data || backups.startsWith(`${data}${sep}`)) {
        throw new CertifierError('USAGE', `--backup-dir must be outside --data: ${o.backupDir} is ${backups === data ? '' : 'inside '}the key database's directory ${o.data}, so its backups would be lost or replaced with it (a disk lost, a restore into --data); give a directory elsewhere, on another disk ideally`);
      }
    }
    // Flags of the PostgreSQL backend are not silently ignored by the LevelDB one.
    if (o.backend !== 'postgres') {
      const pgOnly = ['pgUrl', 'pgPoolSize', 'replicaId'].filter(given);
      if (pgOnly.length) throw new CertifierError('USAGE', `${pgOnly.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')} ${pgOnly.length > 1 ? 'go' : 'goes'} with --backend postgres`);
      // A replica's unit that lost its --backend would otherwise serve a key database of its own,
      // apart from the others behind the same address.
      // (--backend level given on purpose is the operator's choice.)
      if (process.env[PG_URL_ENV] && !given('backend')) throw new CertifierError('USAGE', `${PG_URL_ENV} is set, but without --backend postgres this key-server would serve its own LevelDB key database in --data, apart from the database's: give --backend postgres (or --backend level to mean it), or unset ${PG_URL_ENV}`);
    }
    // A URL that cannot work is a usage error now, not a retry loop later (checked, and warned of, once).
    const pgUrl = o.backend === 'postgres' ? await pgUrlOf(P, o) : undefined;
    // A mistyped --audit is refused before anything (the key database, the backup directory) is made.
    // (--data itself is made by serve: a log in it is fine on a first start.) Told apart as the
    // kernel finds them: path.resolve reads --data here/link/../d as here/d, beside the link.
    if (o.audit && realLocation(dirname(o.audit)) !== realLocation(o.data)) await refuseMissingAuditDir(o.audit);
    // Whatever was opened is closed, in reverse order, however the start or the serving ends; a
    // start refused before it served also removes the audit log and key database it made, empty,
    // and the --backup-dir it made (and any folder above it), empty.
    // Each named for the warning of one that does not close (closeWithin).
    const opened: { what: string; r: { close(): Promise<void>; closeUnused?(): Promise<void> } }[] = [];
    const keep = <T extends { close(): Promise<void>; closeUnused?(): Promise<void> }>(what: string, r: T): T => (opened.unshift({ what, r }), r);
    let serving = false;
    try {
      if (o.backupDir) {
        const backupDir = o.backupDir;
        const st = await stat(backupDir).catch(() => undefined);
        if (st && !st.isDirectory()) throw new CertifierError('USAGE', `--backup-dir ${backupDir} is not a directory`);
        const made = await prepareBackupDir(backupDir);
        if (made.top !== undefined) keep('the backup directory made', { close: async () => {}, closeUnused: async () => unmakeDirs(made) });
      }
      const policyCert = await readCertificateFile(o.policyCert);
      const policyCertEnds = requirePolicyDomain(policyCert, o.domain, o.policyCert).notAfter;
      let acl: Acl | undefined;
      const log = logLine(P, o.logJson === true);
      if (o.acl) {
        const read = await readAclFile(o.acl);
        acl = read.acl;
        if (read.warning) warn(P, read.warning);
      } else warn(P, 'no --acl: every admitted machine of the domain may store, retrieve and list any key (delete needs an ACL)');
      const platform = certifier ? await loadPlatform(P, o) : undefined;
      // With --certifier it certifies itself as init-trust would, which makes the store if needed;
      // before anything else is made (--data): a start that cannot be certified leaves nothing.
      // The key file or passphrase is wiped once the store is open: the store holds its data key.
      const { store, renewal } = await withProtector(P, o, async (protector) => certifier
        ? openCertified(P, o.store, protector, { ...certifier, domain: o.domain, policyCert, policyCertEnds, platform: platform!, waits: waitsOf(o) }, log)
        : { store: await Cryptstore.open(o.store, protector), renewal: undefined }, platform);
      keep('the cryptstore', store);
      const pg = pgUrl ? keep('the PostgreSQL key database', await openPostgres(pgUrl, o, log)) : undefined;
      if (!pg) await refuseOthersBackup(store, o.data);
      const level = pg ? undefined : keep('the key database', await LevelBackend.open(o.data));
      const backend = pg?.backend ?? level!;
      // With PostgreSQL each replica keeps its own audit chain, in a file named after it. In the
      // --data the key database is in, also one named through "link/.." (inDir).
      const audit = keep(AUDIT_LOG, await AuditLog.open(o.audit ?? inDir(o.data, pg ? `audit-${pg.replicaId}.jsonl` : 'audit.jsonl'), {
        ...(o.auditRotateMb ? { rotateBytes: o.auditRotateMb * 2 ** 20 } : {}),
        onRotate: (s) => log({ event: 'audit-rotated', segment: s.path, firstSeq: s.firstSeq, lastSeq: s.lastSeq }),
        onRotateFailed: (e) => log({ event: 'audit-rotate-failed', code: e.code, detail: e.message }),
        onBroken: (e, resumes) => log({
          event: 'audit-failed', code: e.code, detail: e.message,
          warning: resumes
            ? 'every request is refused until the audit log can be written: free space on its disk, and key-server goes on by itself (audit-resumed)'
            : 'every request is refused until the audit log can be written: fix the file or its disk, then restart key-server (repair-audit if it says so)',
        }),
        onResumed: (end) => log({ event: 'audit-resumed', path: audit.path, lastSeq: end.seq, lastHash: end.hash }),
      }));
      // Asked once, for both warnings; not of PostgreSQL: a new replica's first chain over the keys
      // the others stored is the normal case.
      const holdsRecords = level !== undefined && (await level.holdsRecords());
      const newChain = holdsRecords && audit.lastSeq === 0;
      // A new, empty key database for a storage key made before: a mistyped restore path, most likely.
      const newDatabase = level !== undefined && (await newEmptyDatabase(level, store, holdsRecords));
      const started = startKeyServer({ store, domain: o.domain, policyCert, backend, ...(acl ? { acl } : {}), audit, host, port, log, allowReplicaJoin: o.allowReplicaJoin === true, ...(renewal ? { renewal } : {}) });
      const { server, identity, setAcl } = await started;
      serving = true;
      // Said once the server is up: a start refused (the wrong storage key, say) has worse news.
      if (newChain) warn(P, `the audit log ${audit.path} begins a new chain, but the key database already holds keys: if the log was moved or removed (not a restore from a backup), the record of what came before is elsewhere`);
      if (newDatabase) warn(P, `the key database in ${o.data} is new and empty, made after this key-server's storage key: if a restore or an existing database was meant, stop it and check --data`);
      note(P, `domain ${o.domain}, serving as serial ${identity.serialHex} (measurement ${identity.measurementHex}, certificate valid until ${identity.validUntil.toISOString()}), data in ${pg ? pg.describe : o.data}`);
      // Which ACL decides, as the reloaded line says after a SIGHUP: a unit or a script given the
      // wrong file, or none, is seen in the log (none was warned of above).
      if (acl) log({ event: 'acl-loaded', acl: o.acl, ...aclCounts(acl) });
      // The chain's end, at start and at stop, goes to the server's log: copies kept elsewhere
      // (a log shipper, journald) are anchors for verify-audit --expect.
      const logEnd = (event: string) => log({ event, path: audit.path, lastSeq: audit.writtenEnd.seq, lastHash: audit.writtenEnd.hash });
      logEnd('audit-continues');
      if (o.allowReplicaJoin) warn(P, `--allow-replica-join: machines certified with this server's measurement may fetch its storage key (key-server join)`);
      const aclFile = o.acl;
      // SIGHUP reads the ACL file again; its reload-failed line names the file, as reloaded does.
      const aclReload = aclFile
        ? {
          reload: async () => {
            // A bad file (or a FIFO in its place, or one every user may change) throws here, and the ACL in force stays.
            const next = await readAclFile(aclFile, true);
            setAcl(next.acl);
            return { acl: aclFile, ...aclCounts(next.acl), ...(next.warning ? { warning: next.warning } : {}) };
          },
          reloads: { acl: aclFile },
        }
        : { nothingToReload: 'started without --acl (restart with --acl to use one)' };
      // Where it really is: named through "link/..", the path joined as text (a backup's name, the
      // ones pruned) leads beside the link, to a directory prepareBackupDir never checked.
      const backupDir = o.backupDir === undefined ? undefined : realLocation(o.backupDir);
      const backup = level && backupDir
        ? async (signal: AbortSignal) => {
          await prepareBackupDir(backupDir); // again: it may have been removed, or opened to others, since
          const r = await level.backupTo(join(backupDir, backupName(new Date())), signal);
          // Only after the new one is whole: a failed backup never costs an older one. Without
          // --backup-keep every backup stays, but partial copies left by a killed server still go.
          // The storage key id is the one the copy holds, read from its snapshot.
          return { path: r.path, records: r.records, ...pruneReport(await pruneBackups(backupDir, o.backupKeep, { live: o.data, written: r.path, ...(r.keyId ? { keyId: r.keyId } : {}) })) };
        }
        : undefined;
      return {
        json: await runUntilSignal(P, server, o.json === true, {
          log, closed: async () => { if (await closeWithin(P, AUDIT_LOG, () => audit.close())) logEnd('audit-closed'); }, ...(pg ? { fatal: pg.idTaken } : {}), ...aclReload, ...(backup ? { backup } : { nothingToBackUp: pg ? 'a PostgreSQL replica backs nothing up itself: back the database up with its own tools' : 'started without --backup-dir (restart with --backup-dir to use one)' }),
        }),
      };
    } finally {
      for (const { what, r } of opened) await closeWithin(P, what, () => (serving || !r.closeUnused ? r.close() : r.closeUnused()));
    }
  }))
  .requiredOption('--domain <name>', 'the policy domain', domainName)
  .requiredOption('--policy-cert <file>', 'the pinned policy certificate')
  .requiredOption('--data <dir>', 'directory of the key database (created if missing); with --backend postgres, of this replica\'s own files (audit log)', dirArg)
  .option('--listen <host:port>', 'address to listen on (port 0 picks one)', '127.0.0.1:8120')
  .option('--acl <file>', 'JSON access control list (SIGHUP reads it again)')
  .option('--certifier <host:port>', 'simpleserver: renew this server\'s certificate through it, at start when due and days before it ends (needs the platform flags)')
  .option('--audit <file>', 'audit log, in a directory that exists (default DATA/audit.jsonl; with postgres DATA/audit-REPLICA.jsonl)')
  .option('--backup-dir <dir>', 'on SIGUSR1, write a consistent copy of the key database (ciphertext only) to DIR/keys-TIME while serving; DIR must be writable by this user alone', dirArg)
  .option('--backup-keep <n>', 'after each backup, remove all but the newest N in --backup-dir (default: keep every one)', intInRange(1, 100_000))
  .option('--audit-rotate-mb <n>', 'keep the audit log as segments of about N MiB (FILE.FIRST-LAST beside it), which may be archived', intInRange(1, 1_048_576))
  .option('--log-json', 'log JSON lines instead of text')
  .addOption(choice('--backend <kind>', 'where keys are stored: level (DATA) or postgres (shared by replicas)', ['level', 'postgres']).default('level'))
  .option('--pg-url <url>', `PostgreSQL URL (better: set ${PG_URL_ENV}, so no password shows in argv)`)
  .option('--pg-pool-size <n>', 'PostgreSQL connections this replica may hold (default 10)', intInRange(1, 1000))
  .option('--replica-id <id>', 'this replica\'s name in its audit file and logs, its own among the live replicas of the database: 1 to 64 letters, digits, ".", "_" or "-"', replicaIdArg, hostname().replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64) || 'replica')
  .option('--allow-replica-join', 'release the storage key to machines certified with this server\'s own measurement (key-server join)')
  .addOption(timeoutFlag('with --certifier: seconds each renewal waits for simpleserver at each step: connecting, the TLS handshake, its answer (TIMEOUT when one runs out: at start, exit 3 unless the stored certificate serves; while serving, logged and tried again later)'));

storeOptions(subcommand<JsonOption & ProtectionOptions & TimeoutOption & { domain: string; policyCert: string; from: string; force?: boolean }>(program, 'join',
  'fetch the storage key of a running key-server (started with --allow-replica-join) into this store: a new replica of a PostgreSQL database, or a standby for a LevelDB one',
  async (o) => {
    const { host, port } = parseHostPort(o.from, '--from'); // a usage mistake, before any file is read
    const policyCert = await readCertificateFile(o.policyCert);
    requirePolicyDomain(policyCert, o.domain, o.policyCert);
    const store = await openStore(P, o);
    try {
      const identity = await loadIdentity(store, o.domain, policyCert);
      const r = await joinReplica({ store, identity, policyCert, host, port, force: o.force === true, waits: waitsOf(o) });
      const what = r.outcome === 'joined' ? 'stored the deployment\'s storage key' : 'this store already holds the deployment\'s storage key';
      return { json: { ...r }, text: [`${what} (id ${r.keyId}, from serial ${r.from})`] };
    } finally {
      await store.close();
    }
  }))
  .requiredOption('--domain <name>', 'the policy domain', domainName)
  .requiredOption('--policy-cert <file>', 'the pinned policy certificate')
  .requiredOption('--from <host:port>', 'a running replica of the same key-server')
  .option('--force', 'replace a different storage key this store holds (only if it sealed nothing)')
  .addOption(timeoutFlag());

subcommand<JsonOption & { continuing?: boolean; expect: ChainAnchor[] }>(program, 'verify-audit', 'check the hash chain of an audit log, or of its rotated segments in order; exit 4 naming the first bad line',
  async (o, args) => {
    // One file is a chain of one: a log whose first segments were rotated away is then told to
    // name them (or --continuing), not that its first line has the wrong seq.
    const r = await verifyChain(args, { continuing: o.continuing === true, anchors: o.expect });
    if (!r.ok) throw new CertifierError('INTEGRITY', `${r.line === undefined ? '' : `line ${r.line} of `}${r.file}: ${r.problem}`, { details: { file: r.file, ...(r.line === undefined ? {} : { line: r.line }) } });
    // The chain's end, to keep elsewhere: the chain cannot show a rewrite or a cut tail by itself.
    const end = r.lastSeq > 0 ? [`end: seq ${r.lastSeq}, hash ${r.lastHash} (keep it elsewhere: verify-audit --expect ${r.lastSeq}:HASH checks the chain still holds it)`] : [];
    const tail = { lastSeq: r.lastSeq, lastHash: r.lastHash };
    if (args.length === 1 && !o.continuing) return { json: { lines: r.lines, ...tail }, text: [`ok: ${r.lines} line(s), chain intact`, ...end] };
    const from = r.fromGenesis ? '' : ` (from seq ${r.firstSeq}: it continues a segment not given)`;
    // No line, yet an end: an empty log whose segments were archived goes on from FILE.end.
    const summary = r.lines === 0 && r.lastSeq > 0
      ? `ok: 0 line(s) in ${r.files} file(s): the chain goes on from seq ${r.lastSeq}, where ${endPath(args.at(-1)!)} says it stood at its last rotation`
      : `ok: ${r.lines} line(s) in ${r.files} file(s), seq ${r.firstSeq}..${r.lastSeq}, chain intact${from}`;
    const missing = r.logMissing ? [`note: ${args.at(-1)} is not there: a rotation was cut short after renaming it into a segment, before making the new one (key-server makes it at its next start, and goes on from the newest segment)`] : [];
    return { json: { lines: r.lines, files: r.files, firstSeq: r.firstSeq, ...tail, fromGenesis: r.fromGenesis, ...(r.logMissing ? { logMissing: true } : {}) }, text: [summary, ...missing, ...end] };
  })
  .argument('<file...>', 'the audit log; for a rotated one, its segments then the log, in order (audit.jsonl.[0-9]* audit.jsonl)')
  .option('--continuing', 'the first file may continue a segment not given')
  .option('--expect <seq:hash>', 'the chain must hold the record of SEQ with HASH (an end printed earlier, kept elsewhere); repeatable', (v: string, acc: ChainAnchor[]) => collect(anchorArg(v), acc), []);

/** --expect SEQ:HASH, as verify-audit and key-server's log print a chain's end. */
function anchorArg(value: string): ChainAnchor {
  const m = /^([0-9]+):([0-9a-f]{64})$/.exec(value);
  const seq = m ? decimal(m[1]!) : undefined;
  if (!m || seq === undefined || seq < 1 || seq > 999_999_999_999_999) throw new InvalidArgumentError('expected SEQ:HASH, a seq from 1 and 64 lowercase hex digits (as verify-audit prints the chain\'s end)');
  return { seq, hash: m[2]!, source: `--expect ${m[1]}:${m[2]}` };
}

// The ACL as serve --acl and SIGHUP read it (its owner and mode, then its rules), without serving:
// an edit checked before the reload that would otherwise refuse it (reload-failed).
subcommand<JsonOption>(program, 'check-acl', 'read an ACL file as serve --acl and a reload (SIGHUP) do: exit 0 if it would be taken, 1 saying why not',
  async (_o, args) => {
    const { acl, warning } = await readAclFile(args[0]!, true);
    if (warning) warn(P, warning);
    const revoked = acl.revoked.length ? `, ${acl.revoked.length} revoked serial number(s)` : '';
    return { json: { ok: true, ...aclCounts(acl), ...(warning ? { warning } : {}) }, text: [`ok: ${acl.rules.length} rule(s)${revoked}`] };
  })
  .argument('<file>', 'the ACL file');

subcommand<JsonOption>(program, 'repair-audit', 'after a crash cut the last write short: move the incomplete last line aside so serve can extend the log',
  async (_o, args) => {
    const r = await repairAuditTail(args[0]!);
    const text = r.savedTo
      ? [`moved the incomplete last line (${r.removedBytes} bytes) to ${r.savedTo}: a crash mid-write leaves such a line, which was then never acknowledged`, `ok: ${r.lines} line(s), chain intact`]
      : [`nothing to repair: ${r.lines} line(s), chain intact`];
    return { json: { lines: r.lines, removedBytes: r.removedBytes, ...(r.savedTo ? { savedTo: r.savedTo } : {}) }, text };
  })
  .argument('<file>', 'the audit log (no key-server may be using it)');

// Examples for each command's --help.
const EXAMPLES: Record<string, string[]> = {
  serve: [
    'key-server serve --domain datica --policy-cert policy-cert.pem --store ks-store --key-file ks.key --data /var/lib/key-server --listen 0.0.0.0:8120 --acl acl.json',
    'key-server serve ... --certifier 10.0.0.5:8123 --platform sev-snp --backup-dir /var/backups/key-server --backup-keep 7',
  ],
  join: ['key-server join --from 10.0.0.5:8120 --domain datica --policy-cert policy-cert.pem --store ks2-store --key-file ks2.key'],
  'verify-audit': ['key-server verify-audit /var/lib/key-server/audit.jsonl', 'key-server verify-audit audit.jsonl.[0-9]* audit.jsonl', 'key-server verify-audit --expect 7200:e3a4d6e34da75efe978947d532d04be77b1648225f094c16529c4a59de1541e8 audit.jsonl.[0-9]* audit.jsonl'],
  'repair-audit': ['key-server repair-audit /var/lib/key-server/audit.jsonl'],
  'check-acl': ['key-server check-acl /etc/certifier-keys/acl.json && systemctl reload key-server'],
};
addExamples(program, EXAMPLES);

await run(program);

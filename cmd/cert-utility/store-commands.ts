// cert-utility's cryptstore commands: create, put, get, list, delete, export, import, rekey,
// verify, print, generate-key, new-key-file.

import { Option, type Command } from 'commander';
import { CertifierError } from '../../lib/errors/index.ts';
import { encode, ENTRY_TYPES, newNameProblem, printableName, shown, type EntryType } from '../../lib/wire/index.ts';
import {
  exportPublicKey, generateKeyPair, isKeyAlg, randomBytes, toKeyMessage, type KeyAlg,
} from '../../lib/crypto/index.ts';
import { checkWritable, commitAll, refuseOwnFiles, refuseReplaceable, refuseReplaceableDir, stageFiles, writeFileAtomic } from '../../lib/files/index.ts';
import { itemValue } from '../../lib/pki/index.ts';
import { isAdmissionCertTag, isIdentityTag } from '../../lib/certifier/index.ts';
import { STORAGE_KEY_TAG } from '../../lib/keyservice/keystore.ts';
import { Cryptstore, EXPORTABLE_IF, MAX_BLOB_BYTES, MAX_BUNDLE_BYTES, describeDeleted, exportStore, importStore, type EntryInfo } from '../../cryptstore/index.ts';
import { fileOut, note, subcommand, versionOf, type JsonOption } from '../common/cli.ts';
import { changeStore, scryptCost, scryptOption, storeOptions, withPassphraseFile, withProtector, withStore, type ProtectionOptions } from '../common/protection.ts';
import { outputResult, readInput, refuseOutput, storeFiles, writeOutput } from '../common/io.ts';

const P = 'cert-utility';

/**
 * A tag a command is asked to make: none of the characters that would display it as another
 * (INVALID_INPUT), unless the store already holds it (a tag made before the rule gets new versions).
 */
async function checkNewTag(tag: string, store?: Cryptstore): Promise<void> {
  const p = newNameProblem(tag);
  if (p && !(store && await store.has(tag))) throw new CertifierError('INVALID_INPUT', `the tag ${p}`);
}

/**
 * A machine's identity (or a key-server's storage key): imported from another store it would
 * become this store's latest, and the machine would present another's certificate. So import
 * refuses it and export leaves it out, unless asked for by name (--tag) or with --force.
 */
const GUARDED = { is: (t: string) => isIdentityTag(t) || t === STORAGE_KEY_TAG, what: 'where a machine keeps its identity (or key-server its storage key)' };
type StoreOpts = ProtectionOptions & JsonOption;


function entryLine(e: EntryInfo): string {
  return `${printableName(e.tag)}\tv${e.version}\t${e.type}\t${e.size} bytes\t${e.exportable ? 'exportable' : 'not-exportable'}\t${e.timeEntered}`;
}

const examples = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

export function addStoreCommands(program: Command): void {
  // ---- create-store ----
  scryptOption(storeOptions(subcommand<StoreOpts>(program, 'create-store', 'create a new, empty encrypted cryptstore',
    async (o) => {
      refuseUnusedCost(o.scryptLogN, o.keyFile ? '--key-file' : o.sealed ? '--sealed' : undefined);
      // Secrets will go in it: not under a directory where another user could replace it (before scrypt).
      await refuseReplaceableDir(o.store);
      const store = await withProtector(P, o, (protector) => Cryptstore.create(o.store, protector));
      const info = store.info;
      await store.close();
      return { json: { store: info }, text: [`created cryptstore ${printableName(o.store)} (protected by ${info.protection.kind})`] };
    })))
    .addHelpText('after', examples([
      'cert-utility create-store --store ./store --passphrase-file ./pass.txt',
      'cert-utility new-key-file --out ./store.key && cert-utility create-store --store ./store --key-file ./store.key',
    ]));

  // ---- put-item ----
  storeOptions(subcommand<StoreOpts & { tag: string; type: EntryType; exportable?: boolean; in: string }>(program, 'put-item',
    'store bytes as the next version of a tag',
    async (o) => {
      // Scenario 2 puts a machine's certificate in by hand: as a blob, PEM text would sit where
      // key-client and key-server expect DER, and fail only at their first connection.
      if (isAdmissionCertTag(o.tag) && o.type !== 'X509-der-cert') {
        throw new CertifierError('USAGE', `the tag ${printableName(o.tag)} is where a machine keeps its admission certificate: give --type X509-der-cert (it takes PEM or DER and stores DER)`);
      }
      const input = await readInput(o.in, MAX_BLOB_BYTES).catch((e: unknown) => {
        if (!(e instanceof CertifierError && e.details?.limit === MAX_BLOB_BYTES)) throw e;
        throw new CertifierError('INVALID_INPUT', `${e.message}, the most an item holds (${MAX_BLOB_BYTES / 1024 / 1024} MiB): keep a larger value elsewhere, under a key stored here`, { cause: e });
      });
      // An empty item is a mistake (stdin closed, or /dev/null), not a secret: as key-client store.
      if (input.length === 0) throw new CertifierError('INVALID_INPUT', `nothing to store: ${o.in === '-' ? 'standard input' : o.in} is empty`);
      // A certificate item holds DER; PEM input is converted (and anything else refused).
      const blob = itemValue(o.type, input);
      const info = await changeStore(P, o, async (s) => {
        await checkNewTag(o.tag, s);
        return s.put(o.tag, blob, { type: o.type, exportable: o.exportable === true });
      });
      return { json: { item: info }, text: [`stored ${printableName(info.tag)} version ${info.version}`] };
    }))
    .requiredOption('--tag <name>', 'the item tag')
    .addOption(new Option('--type <type>', 'entry type (X509-der-cert accepts PEM or DER and stores DER)').choices([...ENTRY_TYPES]).default('binary-blob'))
    .option('--exportable', 'allow export-store to carry this item', false)
    .requiredOption('--in <file>', 'file to read, or - for standard input')
    .addHelpText('after', examples(['cert-utility put-item --store ./store --key-file store.key --tag disk-key --in ./disk.key']));

  // ---- get-item ----
  storeOptions(subcommand<StoreOpts & { tag: string; version: number; out: string; force?: boolean }>(program, 'get-item',
    'write the raw bytes of an item where --out says',
    async (o) => {
      await refuseOutput(o.out, storeFiles(o)); // before the store's key is derived
      // And, as export-store, a destination that cannot take the value: a name taken (no --force), no directory.
      if (o.out !== '-') await checkWritable(o.out, { exclusive: !o.force });
      const entry = await withStore(P, o, (s) => s.get(o.tag, o.version));
      const { blob, ...info } = entry;
      const raw = await writeOutput(o.out, blob, o.force === true, storeFiles(o));
      return outputResult(o.out, raw, { item: info, out: o.out }, info);
    }))
    .requiredOption('--tag <name>', 'the item tag')
    .option('--version <n>', 'the version to read (0 = latest)', versionOf('latest'), 0)
    .requiredOption('--out <file>', 'file to write (0600), or - for standard output')
    .option('--force', 'replace --out if it exists')
    .addHelpText('after', examples([
      'cert-utility get-item --store ./store --key-file store.key --tag disk-key --out ./disk-copy.key',
      'cert-utility get-item --store ./store --key-file store.key --tag disk-key --version 1 --out - | xxd',
    ]));

  // ---- list-items ----
  storeOptions(subcommand<StoreOpts>(program, 'list-items', 'list every item and version (never values)',
    async (o) => {
      const items = await withStore(P, o, (s) => s.list());
      return { json: { items }, text: items.map(entryLine) };
    }));

  // ---- delete-item ----
  storeOptions(subcommand<StoreOpts & { tag: string; version: number }>(program, 'delete-item',
    'delete one version of an item, or all of its versions',
    async (o) => {
      const deleted = await changeStore(P, o, (s) => s.delete(o.tag, o.version));
      if (deleted.retired) note(P, `${printableName(o.tag)} is retired: its version record was damaged, so the version numbers it used cannot be known, and as none is given twice no version can be stored under it again (store the value under another tag)`);
      return {
        json: { tag: o.tag, deleted: deleted.versions, ...(deleted.damaged ? { damaged: deleted.damaged } : {}), ...(deleted.retired ? { retired: true } : {}) },
        text: [deleted.versions.length || deleted.damaged ? `deleted ${printableName(o.tag)} ${describeDeleted(deleted)}` : `deleted the damaged version record of ${printableName(o.tag)}`],
      };
    }))
    .requiredOption('--tag <name>', 'the item tag')
    .option('--version <n>', 'the version to delete (0 = every version, any record under the tag whose key names none, and a damaged version record, which retires the tag)', versionOf('every version'), 0);

  // ---- export-store ----
  scryptOption(storeOptions(subcommand<StoreOpts & { out: string; bundlePassphraseFile: string; force?: boolean; tag: string[] }>(program, 'export-store',
    'write the exportable items, with their versions, to an encrypted bundle',
    async (o) => {
      await refuseOutput(o.out, storeFiles(o, o.bundlePassphraseFile));
      // Before the key derivation and the store: a destination that cannot take the bundle.
      await checkWritable(o.out, { exclusive: !o.force });
      const { bundle, entries, leftOut, tagsHeld } = await withPassphraseFile(o.bundlePassphraseFile, (pass) => {
        const cost = scryptCost(P, o.scryptLogN);
        return withStore(P, { ...o, scryptLogN: undefined }, (s) => exportStore(s, pass, cost, o.tag, { leaveOut: GUARDED.is }));
      });
      await writeFileAtomic(o.out, bundle, { exclusive: !o.force });
      if (leftOut.length) note(P, `left out ${leftOut.map((t) => shown(t, 256)).join(', ')}, ${GUARDED.what}: name it with --tag to export it`);
      else if (!entries.length) note(P, `the bundle holds no item: ${tagsHeld ? `none of the store's items is exportable (${EXPORTABLE_IF})` : 'the store holds none'}`);
      return { json: { out: o.out, items: entries, ...(leftOut.length ? { leftOut } : {}) }, text: [`exported ${entries.length} item version(s) to ${o.out}`] };
    })))
    .requiredOption('--out <file>', 'bundle file to write (0600)', fileOut)
    .requiredOption('--bundle-passphrase-file <file>', 'file holding the passphrase that protects the bundle')
    .option('--tag <name>', 'export only this item (every version); repeat for several (default: every exportable item)', (v: string, acc: string[]) => [...acc, v], [])
    .option('--force', 'replace --out if it exists');

  // ---- import-store ----
  storeOptions(subcommand<StoreOpts & { in: string; bundlePassphraseFile: string; force?: boolean }>(program, 'import-store',
    'add the items of a bundle, keeping their versions',
    async (o) => {
      const items = await withPassphraseFile(o.bundlePassphraseFile, async (pass) => {
        const bundle = await readInput(o.in, MAX_BUNDLE_BYTES);
        return changeStore(P, o, (s) => importStore(s, bundle, pass, o.force === true, { guarded: GUARDED }));
      });
      return { json: { items }, text: [`imported ${items.length} item version(s)`] };
    }))
    .requiredOption('--in <file>', 'bundle file to read, or - for standard input')
    .requiredOption('--bundle-passphrase-file <file>', 'file holding the bundle passphrase')
    .option('--force', 'replace items that exist with the same tag and version, restore deleted versions, and import identity tags');

  // ---- rekey-store ----
  scryptOption(storeOptions(subcommand<StoreOpts & { newPassphraseFile?: string; newKeyFile?: string }>(program, 'rekey-store',
    'change the passphrase or key file (items are not re-encrypted)',
    async (o) => {
      if (!o.newPassphraseFile === !o.newKeyFile) throw new CertifierError('USAGE', 'give exactly one of --new-passphrase-file or --new-key-file');
      refuseUnusedCost(o.scryptLogN, o.newKeyFile ? '--new-key-file' : undefined);
      // The new secret must outlive the store's own files: LevelDB rewrites its LOG at every open.
      const fresh = (o.newKeyFile ?? o.newPassphraseFile)!;
      refuseOwnFiles(fresh, { dirs: storeFiles(o).dirs, files: [] }, `${o.newKeyFile ? '--new-key-file' : '--new-passphrase-file'} ${fresh}`);
      const secret = { store: o.store, passphraseFile: o.newPassphraseFile, keyFile: o.newKeyFile, scryptLogN: o.scryptLogN };
      const next = await withProtector(P, secret, async (p) => {
        await changeStore(P, { ...o, scryptLogN: undefined }, (s) => s.rekey(p));
        return { kind: p.kind, description: p.description };
      });
      return { json: { store: o.store, protection: next.kind }, text: [`rekeyed ${printableName(o.store)} (now protected by ${next.description})`] };
    })))
    .option('--new-passphrase-file <file>', 'file holding the new passphrase')
    .option('--new-key-file <file>', 'file holding the new key');

  // ---- verify-store ----
  storeOptions(subcommand<StoreOpts & { repair?: boolean; yes?: boolean }>(program, 'verify-store', 'decrypt and check every item; exit 4 if any is damaged',
    async (o) => {
      if (o.yes && !o.repair) throw new CertifierError('USAGE', '--yes confirms --repair: give both, or neither');
      if (o.repair && !o.yes) throw new CertifierError('USAGE', '--repair removes records from the store (those verify-store says it removes, under keys this store never writes) and replaces damaged version records: run verify-store without it to see which, then give --repair --yes');
      const { report, repaired } = o.repair
        ? await changeStore(P, o, async (s) => ({ repaired: await s.repair(), report: await s.verify() }))
        : { report: await withStore(P, o, (s) => s.verify()), repaired: undefined };
      for (const r of repaired ?? []) note(P, `${r.key}: ${r.done}`);
      if (report.problems.length) {
        // The first 20, and how many more: a store full of foreign records still gives one readable line.
        const named = report.problems.slice(0, 20).map((p) => `${p.key}: ${p.problem}`).join('; ');
        const more = report.problems.length > 20 ? `; and ${report.problems.length - 20} more` : '';
        throw new CertifierError('INTEGRITY', `${report.problems.length} damaged record(s): ${named}${more}`, { details: { ...report, ...(repaired ? { repaired } : {}) } });
      }
      return { json: { ...report, ...(repaired ? { repaired } : {}) }, text: [`ok: ${report.entries} item version(s) under ${report.tags} tag(s) verified`] };
    }))
    .option('--repair', 'remove the records verify-store names as under keys this store never writes, and replace damaged version records (high-water marks); needs --yes')
    .option('--yes', 'confirm --repair');

  // ---- print-store ----
  storeOptions(subcommand<StoreOpts>(program, 'print-store', 'describe the store and its items (never values)',
    async (o) => {
      const { info, items } = await withStore(P, o, async (s) => ({ info: s.info, items: await s.list() }));
      const { scrypt: cost, platform } = info.protection;
      const detail = cost ? ` (scrypt N=2^${cost.logN}, r=${cost.r}, p=${cost.p})` : platform ? ` (platform ${printableName(platform)})` : '';
      return {
        json: { store: info, items },
        text: [
          `store       ${info.path}`, `format      ${info.formatVersion}`, `id          ${info.storeId}`,
          `created     ${info.created}`, `protection  ${info.protection.kind}${detail}`, `items       ${items.length}`,
          ...items.map((e) => `  ${entryLine(e)}`),
        ],
      };
    }));

  // ---- generate-key ----
  storeOptions(subcommand<StoreOpts & { tag: string; alg: string; exportable?: boolean; publicKeyOut?: string; force?: boolean }>(program, 'generate-key',
    'generate a key and store it as a serialized key_message',
    async (o) => {
      if (o.publicKeyOut) refuseOwnFiles(o.publicKeyOut, storeFiles(o), `--public-key-out ${o.publicKeyOut}`);
      let publicPem: string | undefined;
      let keyType: string;
      let serialized: Uint8Array;
      if (o.alg === 'aes-256-gcm') {
        if (o.publicKeyOut) throw new CertifierError('USAGE', 'an aes-256-gcm key has no public key: drop --public-key-out');
        keyType = 'aes-256-gcm';
        serialized = encode('key_message', { keyName: o.tag, keyType, keyFormat: 'vse-key', secretKeyBits: randomBytes(32) });
      } else if (isKeyAlg(o.alg)) {
        const pair = await generateKeyPair(o.alg as KeyAlg);
        const km = toKeyMessage(pair.privateKey, o.tag);
        keyType = km.keyType!;
        serialized = encode('key_message', km);
        publicPem = Buffer.from(exportPublicKey(pair.publicKey)).toString('latin1');
      } else {
        throw new CertifierError('USAGE', `unknown --alg ${o.alg}`);
      }
      // The public key file is checked and written aside first: a name already taken or a missing
      // directory must fail before the store holds a key whose public half went nowhere.
      const staged = o.publicKeyOut && publicPem
        ? await stageFiles([{ path: o.publicKeyOut, data: new TextEncoder().encode(publicPem), exclusive: !o.force, mode: 0o644 }])
        : [];
      let info;
      let unsure: CertifierError | undefined;
      try {
        info = await withStore(P, o, async (s) => {
          await checkNewTag(o.tag, s);
          const put = () => s.put(o.tag, serialized, { type: 'key-message-serialized-protobuf', exportable: o.exportable === true });
          // As key-client provision keeps files and tags: the file goes in place, then the key is
          // stored as commitAll's last step, signals held meanwhile. A name taken since the check
          // (link refuses it) stores nothing; a put that fails, or a signal before it, takes the
          // file away again. Only SIGKILL or power lost between the two leaves the public key
          // file without its key in the store; nothing can undo that.
          // A put that fails on the disk (FILE_ERROR) may have been made all the same: the store,
          // opened again, says whether, and the file goes or stays with the key. Where that cannot
          // be learnt the file stays (a key without its public half could not be used), and the
          // error says what to check.
          const stored = await commitAll(staged, {
            finish: !o.publicKeyOut ? put : () => put().catch(async (e: unknown) => {
              if (!(e instanceof CertifierError && e.code === 'FILE_ERROR')) throw e;
              const found = await s.latestIf(o.tag, serialized).catch((why: unknown) => {
                unsure = new CertifierError('FILE_ERROR', `${e.message}; whether it was could not be learnt (${(why as Error).message}): list-items shows whether ${shown(o.tag, 256)} has a new version; ${o.publicKeyOut} is kept, the public key of that version: remove it if the store does not hold one`, { cause: e });
                return null;
              });
              if (found === undefined) throw new CertifierError('FILE_ERROR', `${e.message}; the store, opened again, does not hold it: nothing was stored, and ${o.publicKeyOut} was not kept`, { cause: e });
              if (found) note(P, `the store reported a failed write of the key, but, opened again, the store holds it all the same (LevelDB had written it before its sync failed): ${shown(o.tag, 256)} version ${found.version}, its public key in ${o.publicKeyOut}`);
              return found;
            }),
            completedBeforeSignal: (signal) => note(P, `${signal} came as the key was being stored: it was stored${o.publicKeyOut ? `, and its public key written to ${o.publicKeyOut}` : ''}; stopping`),
          });
          return stored;
        });
      } catch (e) {
        for (const f of staged) await f.file.discard();
        throw e;
      }
      if (unsure || !info) throw unsure ?? new CertifierError('INTERNAL', 'generate-key: the key was neither stored nor refused');
      return {
        json: { item: info, keyType, ...(publicPem ? { publicKeyPem: publicPem } : {}) },
        text: [`generated ${keyType} key ${printableName(info.tag)} version ${info.version}`, ...(publicPem ? [publicPem.trimEnd()] : [])],
      };
    }))
    .requiredOption('--tag <name>', 'the item tag')
    .addOption(new Option('--alg <alg>', 'key algorithm').choices(['aes-256-gcm', 'p256', 'p384', 'rsa2048']).makeOptionMandatory())
    .option('--exportable', 'allow export-store to carry this key', false)
    .option('--public-key-out <file>', 'also write the public key (PEM) here, e.g. for issue-cert', fileOut)
    .option('--force', 'replace --public-key-out if it exists');

  // ---- new-key-file ----
  subcommand<JsonOption & { out: string; force?: boolean }>(program, 'new-key-file', 'write 32 random bytes (0600) for use with --key-file',
    async (o) => {
      await refuseReplaceable(o.out);
      await writeFileAtomic(o.out, randomBytes(32), { exclusive: !o.force });
      return { json: { out: o.out }, text: [`wrote a new key file ${printableName(o.out)}`] };
    })
    .requiredOption('--out <file>', 'file to write', fileOut)
    .option('--force', 'replace --out if it exists');
}

/** --scrypt-log-n where no key is derived from a passphrase would be ignored: the operator meant something else. */
function refuseUnusedCost(logN: number | undefined, keyFlag: string | undefined): void {
  if (logN !== undefined && keyFlag) throw new CertifierError('USAGE', `--scrypt-log-n sets the cost of deriving a key from a passphrase; with ${keyFlag} none is derived`);
}

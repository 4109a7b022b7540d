// Starts one of the TypeScript programs. The first run after a source changed bundles the program
// with esbuild (a few hundred ms) into .cache/bin/PROGRAM.mjs, next to a list of the sources it
// holds with their sizes and times; later runs check that list (a stat per source) and import
// the bundle, which starts two to three times faster than loading every source through tsx.
// Where no bundle can be written (a read-only install, a folder of another user's) or esbuild
// fails, or with CERTIFIER_NO_BUNDLE=1, the program runs through tsx's loader as before.
// Nothing stale runs: any change of a source's size or time makes a new bundle. Nothing another
// local user could have written runs either: a bundle is imported only from folders no one else
// can write, and only when it and the files beside it are the current user's (or root's) and no
// one else can write them.

import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fchmodSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WORKING_DIRECTORY_GONE } from './working-directory.js';

// Without a listener, SIGUSR1 opens Node's inspector on 127.0.0.1:9229, where any local user could
// run code inside a program that holds keys. A listener keeps it shut; a server may give the
// signal a use of its own (key-server --backup-dir).
process.on('SIGUSR1', () => {});

/**
 * Stops the program, before it reads anything, if Node's inspector is open: a SIGUSR1 that came
 * while Node itself started, before the shim's listener (tens of milliseconds), opens it, and so
 * does NODE_OPTIONS=--inspect. Any local user could then run code in a process about to hold
 * keys. The inspector starts at the main thread's next chance after the signal, so it is looked
 * for one turn of the event loop after the listener is in place.
 */
async function refuseOpenInspector(program) {
  await new Promise((resolve) => setImmediate(resolve));
  const inspector = await import('node:inspector').catch(() => undefined); // a Node built without one
  if (!inspector?.url()) return;
  // Asked for in NODE_OPTIONS, it opens again on every run: that flag is what to remove.
  const asked = /(?:^|\s)(--inspect(?:-brk|-wait)?(?:=\S*)?)(?=\s|$)/.exec(process.env.NODE_OPTIONS ?? '')?.[1];
  const why = asked ? `, as NODE_OPTIONS asks (${asked}),` : ' (a SIGUSR1 came as it started, or a flag of Node asks for it),';
  stop(program, 'DENIED', `Node's inspector is open in this process${why} where any local user could run code: stopping before anything is read; ${asked ? 'take that flag out of NODE_OPTIONS' : 'run it again'}`);
}

/**
 * The flags of each server's serve (the one command with --log-json) that take a value: what
 * follows one is its value, whatever it looks like (`--data --log-json` names a directory), as
 * cmd/common/cli.ts reads the arguments. test/unit/launch.test.ts checks them against serve --help.
 */
export const SERVE_VALUE_FLAGS = {
  'key-server': ['--store', '--passphrase-file', '--key-file', '--platform', '--platform-dir', '--measurement-file', '--tsm-dir', '--vcek', '--domain', '--policy-cert', '--data', '--listen', '--acl', '--certifier', '--audit', '--backup-dir', '--backup-keep', '--audit-rotate-mb', '--backend', '--pg-url', '--pg-pool-size', '--replica-id', '--timeout'],
  simpleserver: ['--policy-key', '--policy-cert', '--policy', '--amd-crl', '--listen', '--cert-days'],
};

/** Whether a server's serve is given --log-json (or --log-json=V) as a flag, before any "--". */
function logsJson(program, args) {
  const values = SERVE_VALUE_FLAGS[program];
  if (!values || args[0] !== 'serve') return false;
  for (let i = 1; i < args.length && args[i] !== '--'; i++) {
    if (args[i] === '--log-json' || args[i].startsWith('--log-json=')) return true;
    if (values.includes(args[i])) i++; // its value
  }
  return false;
}

/**
 * Says why the program stops before it runs, and exits 1: as the program's own error (cmd/common/
 * cli.ts), a JSON line when a server's serve is given --log-json, else "PROGRAM: error: MESSAGE [CODE]".
 */
function stop(program, code, message) {
  process.stderr.write(logsJson(program, process.argv.slice(2))
    ? `${JSON.stringify({ time: new Date().toISOString(), event: 'error', code, message, exitStatus: 1 })}\n`
    : `${program}: error: ${message} [${code}]\n`);
  process.exit(1);
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// Two levels below ROOT, as cmd/ and lib/wire/ are: the one source that finds files relative to
// itself (lib/wire/proto.ts: ../../proto/) finds them from the bundle too.
const OUT = join('.cache', 'bin');
// Bumped when the build options below change, so older bundles are remade.
const FORMAT = 4;
// Modes set exactly, whatever the umask (which a program narrows only once it runs). The bundles
// hold no secret, only the code of sources that every user of the install can already read, and
// the services often run as another user than the one who installed (and so bundled) the
// programs: readable by all, writable by the owner alone.
const DIR_MODE = 0o755;
const FILE_MODE = 0o644;

/** Runs cmd/PROGRAM.ts, from its bundle when one is (or can be made) current. */
export async function launch(program) {
  // A server's signals do from here what they do once it serves (cmd/common/server.ts),
  // rather than Node's default (death) while it loads and starts: SIGHUP means "reload", never
  // "stop", so one arriving while it starts (systemd's ExecReload right after a start) is kept for
  // the server to act on once it serves; SIGINT or SIGTERM (a unit stopped as it starts) is kept
  // too, and the server stops cleanly as soon as it is up (exit 0). Only Node's own start, the
  // shim's first line and the loading of this file (built-in modules and working-directory.js only) come before.
  if ((program === 'key-server' || program === 'simpleserver') && process.argv.slice(2).find((a) => !a.startsWith('-')) === 'serve') {
    const early = { hangups: 0, stop: undefined, onHangup: () => void early.hangups++, onStop: (signal) => void (early.stop ??= signal) };
    globalThis[Symbol.for('certifier.earlySignals')] = early;
    // SIGHUP last: Node catches SIGINT and SIGTERM from its start (to restore the terminal, then
    // die), so /proc shows only whether SIGHUP is caught; once it is, the stops are ours too.
    process.on('SIGINT', early.onStop);
    process.on('SIGTERM', early.onStop);
    process.on('SIGHUP', early.onHangup);
  }
  await refuseOpenInspector(program);
  await launchSource(join('cmd', `${program}.ts`), OUT);
}

/**
 * Runs the TypeScript module at ENTRY (relative to the package root) from a bundle in OUTDIR
 * (relative too, and two levels deep like ENTRY's own folder), or through tsx.
 */
export async function launchSource(entry, outDir) {
  const bundle = process.env.CERTIFIER_NO_BUNDLE === '1' ? undefined : await currentBundle(entry, outDir).catch(() => undefined);
  if (bundle) {
    // Stack traces (CERTIFIER_DEBUG=1) then name the TypeScript sources, through the bundle's map.
    if (process.env.CERTIFIER_DEBUG === '1') process.setSourceMapsEnabled(true);
    await import(pathToFileURL(bundle).href);
    return;
  }
  // tsx, and esbuild (which it loads, as a new bundle does), read the working directory as they
  // load: a removed one crashed tsx's loader thread, and the program then waited for ever.
  refuseRemovedWorkingDirectory(entry);
  // Without a disk cache: tsx keeps compiled sources in $TMPDIR/tsx-UID, a folder it never checks
  // is its own, so another local user who made it first could have this program run their code.
  // Set before tsx loads (it reads the variable once, on load, here and in its loader's thread).
  process.env.TSX_DISABLE_CACHE = '1';
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(ROOT, entry)).href);
}

/** Stops the program, saying why, when its working directory was removed (process.cwd() fails). */
function refuseRemovedWorkingDirectory(entry) {
  try {
    process.cwd();
  } catch {
    stop(entry.startsWith('cmd') ? basename(entry, '.ts') : basename(dirname(entry)), 'FILE_ERROR', WORKING_DIRECTORY_GONE);
  }
}

async function currentBundle(entry, outDir) {
  const tightened = safeFolders(outDir);
  const out = join(ROOT, outDir, `${basename(entry, '.ts')}.mjs`);
  const stamp = `${out}.sources.json`;
  if (!tightened && [out, `${out}.map`, stamp].every(trustedFile) && matches(stamp)) return out;
  const esbuild = await import('esbuild');
  // esbuild builds in a child process of its own, which it keeps for later builds: stopped once
  // this one is done, or a server would keep it beside itself for its whole life.
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // The pure-JavaScript dependencies (protobufjs, commander, @noble) are bundled too: loaded
    // from node_modules, their dozens of CommonJS files (each found, read and compiled on its own)
    // were about a sixth of a program's start. Left out: level (a native addon found from its
    // own folder), pg (loaded only for --backend postgres) and the build tools. Their files are
    // in the list of sources like ours, so an update of node_modules makes a new bundle.
    external: ['level', 'pg', 'esbuild', 'tsx'],
    // CommonJS in the bundle asks for Node's modules with require(), which an ES module has not.
    banner: { js: "import { createRequire as bundleCreateRequire } from 'node:module';\nconst require = bundleCreateRequire(import.meta.url);" },
    // No keepNames (tsx's default): it wraps every function made at run time in a call that
    // renames it, about a tenth of a busy key-server's CPU. Errors name themselves (this.name).
    write: false,
    metafile: true,
    logLevel: 'silent',
    // A map beside the bundle (read only under CERTIFIER_DEBUG=1), pointing at the sources on disk.
    outfile: out,
    sourcemap: 'linked',
    sourcesContent: false,
  }).finally(() => esbuild.stop());
  const sources = {};
  for (const file of [...Object.keys(result.metafile.inputs), 'tsconfig.json']) sources[file] = signature(join(ROOT, file));
  // Each file is written whole, synced and renamed into place, the bundle first: a run that reads
  // the new list finds the bundle made from it (or one made later), never half of one, even after
  // a power failure (an unsynced bundle could come back empty under a list that matches, and a
  // program that runs nothing and exits 0 would pass for one that did its work).
  const file = (suffix) => result.outputFiles.find((f) => f.path.endsWith(suffix)).contents;
  writeWhole(`${out}.map`, file('.mjs.map'));
  writeWhole(out, file('.mjs'));
  writeWhole(stamp, JSON.stringify({ format: FORMAT, esbuild: esbuild.version, node: process.version, sources }));
  syncFolder(dirname(out));
  return out;
}

/**
 * Makes each missing folder of OUTDIR (relative to ROOT) and checks each is one that only this
 * user or root can write. One of this user's that others could write (made by an older launcher
 * under umask 000) is closed, and true is returned: whatever it holds is then remade, not run.
 * Throws (the program then runs through tsx) for a folder of another user's, or root's that
 * others can write.
 */
function safeFolders(outDir) {
  let tightened = false;
  let path = ROOT;
  for (const part of outDir.split(sep)) {
    path = join(path, part);
    if (!statSync(path, { throwIfNoEntry: false })) {
      mkdirSync(path, { mode: DIR_MODE });
      chmodSync(path, DIR_MODE);
    }
    const st = statSync(path);
    if (!st.isDirectory() || !trustedOwner(st)) throw new Error(`${path} is not this user's folder`);
    if (st.mode & 0o022) {
      chmodSync(path, st.mode & DIR_MODE);
      tightened = true;
    }
  }
  return tightened;
}

// Who may have written a bundle that runs: this user, root, or the owner of the install itself
// (who can change its sources anyway), so root running a service user's checkout uses its bundles.
let installOwner;
function trustedOwner(st) {
  installOwner ??= statSync(ROOT).uid;
  return st.uid === 0 || st.uid === process.geteuid() || st.uid === installOwner;
}

/** A regular file itself (a link is not followed: another user's link to a file of ours is not ours), trusted and closed. */
function trustedFile(path) {
  const st = lstatSync(path, { throwIfNoEntry: false });
  return st !== undefined && st.isFile() && trustedOwner(st) && (st.mode & 0o022) === 0;
}

/** Writes PATH whole (FILE_MODE) and synced, under a fresh name that no other file has, then renames it into place. */
function writeWhole(path, data) {
  const tmp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fd = openSync(tmp, 'wx', FILE_MODE);
    try {
      writeFileSync(fd, data);
      fchmodSync(fd, FILE_MODE);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Makes the renames in folder DIR durable. */
function syncFolder(dir) {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function signature(path) {
  const st = statSync(path);
  return `${st.size}:${st.mtimeMs}`;
}

function matches(stamp) {
  try {
    const s = JSON.parse(readFileSync(stamp, 'utf8'));
    if (s.format !== FORMAT || s.node !== process.version) return false;
    return Object.entries(s.sources).every(([file, sig]) => signature(join(ROOT, file)) === sig);
  } catch {
    return false;
  }
}

// Starts one of the TypeScript programs. The first run after a source changed bundles the program
// with esbuild (a few hundred ms) into .cache/bin/PROGRAM.mjs, next to a list of the sources it
// holds with their sizes and times; later runs check that list (a stat per source) and import
// the bundle, which starts two to three times faster than loading every source through tsx.
// Where no bundle can be written (a read-only install) or esbuild fails, or with
// CERTIFIER_NO_BUNDLE=1, the program runs through tsx's loader as before. Nothing stale runs:
// any change of a source's size or time makes a new bundle.

import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// Without a listener, SIGUSR1 opens Node's inspector on 127.0.0.1:9229, where any local user could
// run code inside a program that holds keys. A listener keeps it shut; a server may give the
// signal a use of its own (key-server --backup-dir).
process.on('SIGUSR1', () => {});

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// Two levels below ROOT, as cmd/ and lib/wire/ are: the one source that finds files relative to
// itself (lib/wire/proto.ts: ../../proto/) finds them from the bundle too.
const OUT = join('.cache', 'bin');
// Bumped when the build options below change, so older bundles are remade.
const FORMAT = 3;

/** Runs cmd/PROGRAM.ts, from its bundle when one is (or can be made) current. */
export async function launch(program) {
  // A server's SIGHUP means "reload", never "stop": one arriving while it starts (systemd's
  // ExecReload right after a start) is kept here for the server to act on once it serves
  // (cmd/common/server.ts), instead of killing it silently.
  if ((program === 'key-server' || program === 'simpleserver') && process.argv.slice(2).find((a) => !a.startsWith('-')) === 'serve') {
    const early = { count: 0, listener: () => void early.count++ };
    globalThis[Symbol.for('certifier.earlyHangups')] = early;
    process.on('SIGHUP', early.listener);
  }
  await launchSource(join('cmd', `${program}.ts`), OUT);
}

/**
 * Runs the TypeScript module at ENTRY (relative to the package root) from a bundle in OUTDIR
 * (relative too, and two levels deep like ENTRY's own folder), or through tsx.
 */
export async function launchSource(entry, outDir) {
  const bundle = process.env.CERTIFIER_NO_BUNDLE === '1' ? undefined : await currentBundle(entry, join(ROOT, outDir)).catch(() => undefined);
  if (bundle) {
    // Stack traces (CERTIFIER_DEBUG=1) then name the TypeScript sources, through the bundle's map.
    if (process.env.CERTIFIER_DEBUG === '1') process.setSourceMapsEnabled(true);
    await import(pathToFileURL(bundle).href);
    return;
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(ROOT, entry)).href);
}

async function currentBundle(entry, outDir) {
  const out = join(outDir, `${basename(entry, '.ts')}.mjs`);
  const stamp = `${out}.sources.json`;
  if (matches(stamp) && statSync(out, { throwIfNoEntry: false })) return out;
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external', // dependencies load from node_modules as usual
    // No keepNames (tsx's default): it wraps every function made at run time in a call that
    // renames it, about a tenth of a busy key-server's CPU. Errors name themselves (this.name).
    write: false,
    metafile: true,
    logLevel: 'silent',
    // A map beside the bundle (read only under CERTIFIER_DEBUG=1), pointing at the sources on disk.
    outfile: out,
    sourcemap: 'linked',
    sourcesContent: false,
  });
  const sources = {};
  for (const file of [...Object.keys(result.metafile.inputs), 'tsconfig.json']) sources[file] = signature(join(ROOT, file));
  mkdirSync(outDir, { recursive: true });
  // Each file is written whole and renamed into place, the bundle first: a run that reads the
  // new list finds the bundle made from it (or one made later), never half of one.
  const tmp = `.${process.pid}.tmp`;
  const file = (suffix) => result.outputFiles.find((f) => f.path.endsWith(suffix)).contents;
  writeFileSync(`${out}.map${tmp}`, file('.mjs.map'));
  renameSync(`${out}.map${tmp}`, `${out}.map`);
  writeFileSync(out + tmp, file('.mjs'));
  renameSync(out + tmp, out);
  writeFileSync(stamp + tmp, JSON.stringify({ format: FORMAT, esbuild: esbuild.version, node: process.version, sources }));
  renameSync(stamp + tmp, stamp);
  return out;
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

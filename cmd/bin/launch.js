// Starts one of the TypeScript programs. The first run after a source changed bundles the program
// with esbuild (a few hundred ms) into .cache/bin/PROGRAM.mjs, next to a list of the sources it
// holds with their sizes and times; later runs check that list (a stat per source) and import
// the bundle, which starts two to three times faster than loading every source through tsx.
// Where no bundle can be written (a read-only install) or esbuild fails, or with
// CERTIFIER_NO_BUNDLE=1, the program runs through tsx's loader as before. Nothing stale runs:
// any change of a source's size or time makes a new bundle.

import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// Two levels below ROOT, as cmd/ and lib/wire/ are: the one source that finds files relative to
// itself (lib/wire/proto.ts: ../../proto/) finds them from the bundle too.
const OUT = join(ROOT, '.cache', 'bin');
// Bumped when the build options below change, so older bundles are remade.
const FORMAT = 1;

/** Runs cmd/PROGRAM.ts, from its bundle when one is (or can be made) current. */
export async function launch(program) {
  const bundle = process.env.CERTIFIER_NO_BUNDLE === '1' ? undefined : await currentBundle(program).catch(() => undefined);
  if (bundle) {
    await import(pathToFileURL(bundle).href);
    return;
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(ROOT, 'cmd', `${program}.ts`)).href);
}

async function currentBundle(program) {
  const out = join(OUT, `${program}.mjs`);
  const stamp = `${out}.sources.json`;
  if (matches(stamp) && statSync(out, { throwIfNoEntry: false })) return out;
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [join('cmd', `${program}.ts`)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external', // dependencies load from node_modules as usual
    keepNames: true, // as tsx compiles: names in errors and logs stay the same
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const sources = {};
  for (const file of [...Object.keys(result.metafile.inputs), 'tsconfig.json']) sources[file] = signature(join(ROOT, file));
  mkdirSync(OUT, { recursive: true });
  // Each file is written whole and renamed into place, the bundle first: a run that reads the
  // new list finds the bundle made from it (or one made later), never half of one.
  const tmp = `.${process.pid}.tmp`;
  writeFileSync(out + tmp, result.outputFiles[0].contents);
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

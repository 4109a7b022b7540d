// Run under strace by test/unit/files-sync.test.ts: lib/files' atomic writes in DIR, each step
// followed by a mark (test/support/strace.ts) once it has returned.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commitAll, makeOwnDirs, makePrivateDir, stageFiles, writeFileAtomic } from '../../lib/files/index.ts';
import { mark } from './strace.ts';

const dir = process.argv[2]!;
const bytes = (s: string) => new TextEncoder().encode(s);

writeFileSync(join(dir, 'replaced'), 'old content');
await writeFileAtomic(join(dir, 'replaced'), bytes('new content'));
mark('replaced');
await writeFileAtomic(join(dir, 'exclusive'), bytes('made'), { exclusive: true });
mark('exclusive');
// Undone: a file that replaced one is put back, a file made is removed (finish fails).
writeFileSync(join(dir, 'kept'), 'previous');
const staged = await stageFiles([{ path: join(dir, 'kept'), data: bytes('replacement') }, { path: join(dir, 'made'), data: bytes('new') }]);
await commitAll(staged, { finish: () => Promise.reject(new Error('finish failed')) }).catch(() => {});
mark('undone');
await makePrivateDir(join(dir, 'out', 'deep'), 'the output directory');
mark('private dir');
// Directories made off the way to the one asked for: up/new and up/new/deeper, then up/sub.
mkdirSync(join(dir, 'up'));
await makeOwnDirs(`${dir}/up/new/deeper/../../sub`, 0o700); // not join(), which would take the ".." away
mark('off the way');

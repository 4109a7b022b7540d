// Run under strace by test/keyservice/level-sync.test.ts: key-server's LevelDB backend in DATA
// (made by open), each write followed by a mark (test/support/strace.ts) once acknowledged, then
// a backup to BACKUP (whose parent exists). First the directories serve makes: DATA/../locked/data
// (lockDataDir) and DATA/../backups/deep (prepareBackupDir), and one named through a link and
// "..".
import { randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { prepareBackupDir } from '../../lib/keyservice/backups.ts';
import { lockDataDir } from '../../lib/keyservice/replica.ts';
import { LevelBackend } from '../../lib/keyservice/level-backend.ts';
import type { StoredRecord } from '../../lib/keyservice/backend.ts';
import { mark } from './strace.ts';

const [data, backup] = process.argv.slice(2) as [string, string];
const record = (name: string, version: number): StoredRecord => ({
  name, version, type: 'binary-blob', exportable: false, timeEntered: new Date().toISOString(), size: 32, ciphertext: randomBytes(60),
});

const { release } = await lockDataDir(join(dirname(data), 'locked', 'data'));
await prepareBackupDir(join(dirname(data), 'backups', 'deep'));
// One named through "link/..": made where the link leads, DATA/../elsewhere/linked/deep.
mkdirSync(join(dirname(data), 'elsewhere', 'deep'), { recursive: true });
symlinkSync(join(dirname(data), 'elsewhere', 'deep'), join(dirname(data), 'link'));
await prepareBackupDir(`${dirname(data)}/link/../linked/deep`);
mark('dirs made');
await release();
const b = await LevelBackend.open(data);
mark('opened');
await b.bindStorageKey('storage-key-id');
mark('bound');
await b.append('k', (v) => record('k', v));
mark('appended');
await b.append('k', (v) => record('k', v));
mark('appended again');
await b.delete('k', 1);
mark('deleted');
await b.backupTo(backup);
mark('backed up');
await b.close();

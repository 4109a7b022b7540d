// Run under strace by test/keyservice/audit-sync.test.ts: an audit log made in DIR and rotated
// after every line, a log opened and closed unused (removed), and a torn last line repaired, each
// step followed by a mark (test/support/strace.ts) once done.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog, repairAuditTail } from '../../lib/keyservice/audit.ts';
import { mark } from './strace.ts';

const dir = process.argv[2]!;
const path = join(dir, 'audit.log');

const log = await AuditLog.open(path, { rotateBytes: 1 });
mark('opened');
await log.append({ action: 'retrieve', resource: 'k', decision: 'deny', code: 'NOT_FOUND' });
mark('rotated');
await log.append({ action: 'retrieve', resource: 'k', decision: 'deny', code: 'NOT_FOUND' });
mark('appended');
await log.close();
const unused = await AuditLog.open(join(dir, 'unused.log'));
await unused.closeUnused();
mark('unused removed');
appendFileSync(path, '{"seq":3,"torn');
await repairAuditTail(path);
mark('repaired');

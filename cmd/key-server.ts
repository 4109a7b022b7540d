// key-server: stores and releases named keys over mutual TLS to admitted machines of the policy
// domain, with an ACL and a hash-chained audit log.

import { join } from 'node:path';
import { readFileLimited } from '../lib/files/index.ts';
import { CertifierError } from '../lib/errors/index.ts';
import { validatePolicyCert } from '../lib/pki/index.ts';
import { parseAcl, type Acl } from '../lib/keyservice/acl.ts';
import { AuditLog, verifyAudit } from '../lib/keyservice/audit.ts';
import { LevelBackend } from '../lib/keyservice/level-backend.ts';
import { startKeyServer } from '../lib/keyservice/server.ts';
import { createProgram, run, subcommand, warn, type JsonOption } from './common/cli.ts';
import { protectorFrom, storeOptions, type ProtectionOptions } from './common/protection.ts';
import { parseHostPort, readCertificateFile } from './common/keys.ts';
import { logLine, runUntilSignal } from './common/server.ts';
import { Cryptstore } from '../cryptstore/index.ts';

const P = 'key-server';
process.umask(0o077);
const program = createProgram(P, 'store and release named keys to certified machines over mutual TLS');

storeOptions(subcommand<JsonOption & ProtectionOptions & { domain: string; policyCert: string; data: string; listen: string; acl?: string; audit?: string; logJson?: boolean }>(program, 'serve',
  'serve the key service (the store must hold this server\'s identity from cert-utility init-trust)',
  async (o) => {
    const policyCert = await readCertificateFile(o.policyCert);
    validatePolicyCert(policyCert, new Date());
    const { host, port } = parseHostPort(o.listen, '--listen');
    let acl: Acl | undefined;
    if (o.acl) acl = parseAcl(Buffer.from(await readFileLimited(o.acl, 1024 * 1024)).toString('utf8'));
    else warn(P, 'no --acl: every admitted machine of the domain may store, retrieve and list any key (delete needs an ACL)');
    const store = await Cryptstore.open(o.store, await protectorFrom(P, o));
    const backend = await LevelBackend.open(o.data).catch(async (e) => {
      await store.close();
      throw e;
    });
    const audit = await AuditLog.open(o.audit ?? join(o.data, 'audit.jsonl'));
    const log = logLine(P, o.logJson === true);
    try {
      const { server, identity } = await startKeyServer({ store, domain: o.domain, policyCert, backend, ...(acl ? { acl } : {}), audit, host, port, log });
      process.stderr.write(`${P}: domain ${o.domain}, serving as serial ${identity.serialHex} (measurement ${identity.measurementHex}), data in ${o.data}\n`);
      return { json: await runUntilSignal(P, server, o.json === true) };
    } finally {
      await audit.close();
      await backend.close();
      await store.close();
    }
  }))
  .requiredOption('--domain <name>', 'the policy domain')
  .requiredOption('--policy-cert <file>', 'the pinned policy certificate')
  .requiredOption('--data <dir>', 'directory of the key database (created if missing)')
  .option('--listen <host:port>', 'address to listen on (port 0 picks one)', '127.0.0.1:8120')
  .option('--acl <file>', 'JSON access control list')
  .option('--audit <file>', 'audit log (default DATA/audit.jsonl)')
  .option('--log-json', 'log JSON lines instead of text');

subcommand<JsonOption>(program, 'verify-audit', 'check the hash chain of an audit log; exit 4 naming the first bad line',
  async (_o, args) => {
    const r = await verifyAudit(args[0]!);
    if (!r.ok) throw new CertifierError('INTEGRITY', `line ${r.line} of ${args[0]}: ${r.problem}`, { details: { line: r.line } });
    return { json: { lines: r.lines }, text: [`ok: ${r.lines} line(s), chain intact`] };
  })
  .argument('<file>', 'the audit log');

await run(program);

// The JSON read at the trust boundary, for the structural fuzzer: the key-server's ACL (read, then
// asked for decisions, as each request is), key-client's provisioning config, and an audit log
// line as verify-audit checks it (chained again after the change, so the check reads past the hash).

import { decide, parseAcl, type AclAction } from '../../lib/keyservice/acl.ts';
import { parseProvisionConfig } from '../../lib/keyclient/provision.ts';
import { AUDIT_GENESIS, checkLine, startOf } from '../../lib/keyservice/audit-line.ts';
import { rechain } from '../support/audit-lines.ts';
import type { BoundaryTarget } from './boundary-targets.ts';
import { vectorFile } from './fixtures.ts';

const text = (s: string) => new TextEncoder().encode(s);
const utf8 = (b: Uint8Array) => new TextDecoder().decode(b);
const M = 'ab'.repeat(32);

export function jsonTargets(): BoundaryTarget[] {
  const acl = {
    version: 1, comment: 'c',
    rules: [
      { resources: ['vhd/*', 'vhd/**/disk-?'], actions: ['retrieve'], measurements: [M], comment: 'r' },
      { resources: ['**'], actions: ['store', 'retrieve', 'delete', 'list'], roles: ['operator'], subjects: ['0a1b'] },
    ],
  };
  const asked: [AclAction, string][] = [['retrieve', 'vhd/disk'], ['list', 'vhd/'], ['store', 'vhd/a/b/disk-1'], ['delete', '']];
  const lines = utf8(vectorFile('earlier-versions', 'e380c14', 'ks-data', 'audit.jsonl')).split('\n').filter(Boolean);
  return [
    {
      name: 'ACL JSON (parseAcl, decide)', weight: 2, kind: 'json',
      seeds: [text(JSON.stringify(acl))],
      run: (b) => {
        const a = parseAcl(utf8(b));
        for (const [action, resource] of asked) for (const roles of [[], ['operator']]) decide(a, { action, resource }, { measurementHex: M, serialHex: '0A1B', roles });
      },
    },
    {
      name: 'provisioning config JSON (parseProvisionConfig)', weight: 2, kind: 'json',
      seeds: [text(JSON.stringify({ secrets: [{ ID: 'vhd/disk-1', Tag: 'disk-1' }, { ID: 'vhd/disk-2', Version: 3, LocalPath: '/run/keys/disk-2', Mode: '0640' }] }))],
      run: (b) => parseProvisionConfig(utf8(b)),
    },
    {
      name: 'audit log line, chained again (checkLine, startOf)', weight: 2, kind: 'json',
      seeds: lines.slice(0, 4).map(text),
      run: (b) => {
        const line = utf8(b);
        startOf(line);
        checkLine(line, 1, AUDIT_GENESIS);
        let parsed: unknown;
        try { parsed = JSON.parse(line); } catch { return; } // not JSON: checkLine has said so above
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return;
        const again = rechain([line])[0]!;
        checkLine(again, (parsed as { seq?: number }).seq ?? 1, AUDIT_GENESIS);
      },
    },
  ];
}

// key-server's ACL file: refused where every user may change it, warned of where its group or
// another user may (cmd/key-server/acl-file.ts), as a table of modes and owners; and key-server
// check-acl, which reads it as serve and a reload do.

import { expect } from 'chai';
import { chmodSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { aclFileProblem } from '../../cmd/key-server/acl-file.ts';
import { run, tempDir } from '../support/helpers.ts';

const st = (mode: number, uid = 1000) => ({ mode: 0o100000 | mode, uid }) as Stats;
const dir = (mode: number) => ({ mode: 0o040000 | mode, uid: 0 }) as Stats;

describe('key-server: the ACL file\'s owner and mode', () => {
  const cases: [string, Stats, Stats | undefined, 'refuse' | 'warn' | undefined, RegExp?][] = [
    ['0600, ours', st(0o600), dir(0o755), undefined],
    ['0644, ours', st(0o644), dir(0o755), undefined],
    ['0644, root\'s', st(0o644, 0), dir(0o755), undefined],
    ['0666: every user may change it', st(0o666), dir(0o755), 'refuse', /every user of the machine \(mode 0666\).*chmod o-w \/etc\/ks\/acl\.json/],
    ['0602', st(0o602), dir(0o700), 'refuse'],
    ['in a 0777 directory', st(0o644), dir(0o777), 'refuse', /put another file in its place \(mode 0777\).*chmod o-w \/etc\/ks$/],
    ['in a sticky 1777 directory (/tmp)', st(0o644), dir(0o1777), undefined],
    ['0664: its group may change it', st(0o664), dir(0o755), 'warn', /its group \(mode 0664\)/],
    ['another user\'s', st(0o644, 1234), dir(0o755), 'warn', /another user \(uid 1234\)/],
    ['directory unknown', st(0o644), undefined, undefined],
  ];
  for (const [what, file, d, outcome, text] of cases) {
    it(`${what}: ${outcome ?? 'taken'}`, () => {
      const p = aclFileProblem('/etc/ks/acl.json', file, d, 1000);
      expect(Object.keys(p)).to.deep.equal(outcome ? [outcome] : []);
      if (text) expect(p[outcome!]).to.match(text);
    });
  }
});

describe('key-server check-acl', () => {
  it('takes an ACL serve would take (exit 0, its rules counted, a group-writable file warned of) and refuses one it would not (exit 1, why)', async () => {
    const tmp = tempDir('check-acl-');
    try {
      const file = join(tmp.dir, 'acl.json');
      writeFileSync(file, JSON.stringify({ version: 1, rules: [{ resources: ['**'], actions: ['retrieve'], measurements: ['ab'.repeat(32)] }] }));
      chmodSync(file, 0o664);
      const ok = await run('key-server', ['check-acl', file, '--json']);
      expect(ok.status, ok.stderr).to.equal(0);
      expect(ok.json()).to.deep.include({ ok: true, rules: 1 }).and.have.property('warning').that.contains('can be changed by its group');
      writeFileSync(file, JSON.stringify({ version: 1, rules: [{ resources: ['**'], actions: ['retrieve'] }] }));
      const bad = await run('key-server', ['check-acl', file]);
      expect([bad.status, bad.out]).to.deep.equal([1, '']);
      expect(bad.stderr).to.contain('names no measurements, subjects or roles').and.contain('[INVALID_INPUT]');
      // A pattern in Unicode form D ("café" as "e" and a combining accent), which no key name stored since can match.
      writeFileSync(file, JSON.stringify({ version: 1, rules: [{ resources: ['cafe\u0301/*'], actions: ['retrieve'], measurements: ['ab'.repeat(32)] }] }));
      const nfd = await run('key-server', ['check-acl', file]);
      expect([nfd.status, nfd.out]).to.deep.equal([1, '']);
      expect(nfd.stderr).to.contain('rules[0].resources[0] "cafe\\u0301/*" is not in Unicode normalization form C').and.contain('a pattern is held to the rule on new key names').and.contain('[INVALID_INPUT]');
      expect(nfd.stderr, 'the pattern escaped, not shown as "café/*"').not.to.contain('\u0301');
    } finally {
      tmp.cleanup();
    }
  });
});

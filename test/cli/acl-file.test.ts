// key-server's ACL file: refused where every user may change it, warned of where its group or
// another user may (cmd/key-server/acl-file.ts), as a table of modes and owners; and key-server
// check-acl, which reads it as serve and a reload do.

import { expect } from 'chai';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { aclFileProblem, type LookedIn } from '../../cmd/key-server/acl-file.ts';
import { run, tempDir } from '../support/helpers.ts';

const st = (mode: number, uid = 1000) => ({ mode: 0o100000 | mode, uid }) as Stats;
const dir = (mode: number) => [{ path: '/etc/ks', st: { mode: 0o040000 | mode, uid: 0 } as Stats }];

/** Runs `fn` with the path of an ACL file (not made yet) in a new temporary directory, removed after. */
async function withAclFile(prefix: string, fn: (file: string) => Promise<void>): Promise<void> {
  const tmp = tempDir(prefix);
  try {
    await fn(join(tmp.dir, 'acl.json'));
  } finally {
    tmp.cleanup();
  }
}

describe('key-server: the ACL file\'s owner and mode', () => {
  const cases: [string, Stats, LookedIn[], 'refuse' | 'warn' | undefined, RegExp?][] = [
    ['0600, ours', st(0o600), dir(0o755), undefined],
    ['0644, ours', st(0o644), dir(0o755), undefined],
    ['0644, root\'s', st(0o644, 0), dir(0o755), undefined],
    ['0666: every user may change it', st(0o666), dir(0o755), 'refuse', /every user of the machine \(mode 0666\).*chmod o-w \/etc\/ks\/acl\.json/],
    ['0602', st(0o602), dir(0o700), 'refuse'],
    ['in a 0777 directory', st(0o644), dir(0o777), 'refuse', /put another file in its place \(mode 0777\).*chmod o-w \/etc\/ks$/],
    ['in a sticky 1777 directory (/tmp)', st(0o644), dir(0o1777), undefined],
    ['0664: its group may change it', st(0o664), dir(0o755), 'warn', /its group \(mode 0664\)/],
    // Warned of with what to do, as a group-writable one is (it named only the owner).
    ['another user\'s', st(0o644, 1234), dir(0o755), 'warn', /another user \(uid 1234\), .*: chown root \/etc\/ks\/acl\.json unless that user is meant to change it$/],
    ['directory unknown', st(0o644), [], undefined],
    ['in a group-writable directory', st(0o644), dir(0o775), 'warn', /is in \/etc\/ks, where its group may put another file in its place \(mode 0775\)/],
    ['in a sticky group-writable directory', st(0o644), dir(0o1775), undefined],
    ['under another user\'s directory', st(0o644), [{ path: '/home/alice', st: { mode: 0o040755, uid: 1234 } as Stats }, ...dir(0o755)], 'warn', /reached through \/home\/alice, which belongs to another user \(uid 1234\), .*: move it to a directory of root's or your own unless that user is meant to change it$/],
    ['in our own directory', st(0o644), [{ path: '/srv/ks', st: { mode: 0o040700, uid: 1000 } as Stats }], undefined],
    ['under a 0777 directory', st(0o644), [{ path: '/etc', st: dir(0o777)[0]!.st }, ...dir(0o755)], 'refuse', /reached through \/etc, where every user of the machine may put another file in its place \(mode 0777\).*chmod o-w \/etc$/],
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

describe('key-server check-acl: an ACL edited by hand that is not JSON', () => {
  it('says on which line and column it stops being JSON, a comma after the last rule, a comment and a word without quotes included (Node names no position for those)', async () => {
    const tmp = tempDir('check-acl-json-');
    try {
      const file = join(tmp.dir, 'acl.json');
      const rule = `{ "resources": ["**"], "actions": ["retrieve"], "measurements": ["${'ab'.repeat(32)}"] }`;
      for (const [text, line, column] of [
        [`{ "version": 1, "rules": [\n  ${rule},\n]}\n`, 3, 1],
        [`// the VMs\n{ "version": 1, "rules": [${rule}] }\n`, 1, 1],
        [`{ "version": one,\n  "rules": [${rule}] }\n`, 1, 14],
      ] as const) {
        writeFileSync(file, text, { mode: 0o600 });
        const r = await run('key-server', ['check-acl', file]);
        expect([r.status, r.out], r.stderr).to.deep.equal([1, '']);
        expect(r.stderr).to.equal(`key-server: error: invalid ACL: the file is not JSON (near line ${line}, column ${column}) [INVALID_INPUT]\n`);
      }
    } finally {
      tmp.cleanup();
    }
  });
});

describe('key-server check-acl: a rule whose list allows nothing', () => {
  it('warns of a rule that allows list with no pattern ending in ** (listing needs one), and takes the ACL (exit 0)', async () => {
    await withAclFile('check-acl-list-', async (file) => {
      const m = 'ab'.repeat(32);
      writeFileSync(file, JSON.stringify({ version: 1, rules: [
        { resources: ['vhd/*'], actions: ['list', 'retrieve'], measurements: [m] },
        { resources: ['vhd/**'], actions: ['list'], measurements: [m] },
        { resources: ['disk', 'vm/*'], actions: ['list'], measurements: [m] },
      ] }), { mode: 0o600 });
      const r = await run('key-server', ['check-acl', file, '--json']);
      expect(r.status, r.stderr).to.equal(0);
      const out = r.json();
      expect(out).to.deep.include({ ok: true, rules: 3 });
      expect(out.warning).to.equal('rules[0] allows list, but none of its resources ends in **, so it allows no listing (listing a prefix needs a pattern ending in ** that matches it, as "vhd/**" does for "vhd/"); '
        + 'rules[2] allows list, but none of its resources ends in **, so it allows no listing (listing a prefix needs a pattern ending in ** that matches it, as "vhd/**" does for "vhd/")');
      expect(r.stderr).to.contain('warning: rules[0] allows list');
    });
  });
});

describe('key-server check-acl: a serial number or measurement copied with colons', () => {
  it('says to give the hex digits without the colons (as openssl x509 -text prints them), exit 1', async () => {
    await withAclFile('check-acl-colons-', async (file) => {
      writeFileSync(file, JSON.stringify({ version: 1, rules: [{ resources: ['**'], actions: ['retrieve'], subjects: ['7f:e7:01'], measurements: [Array(32).fill('ab').join(':')] }] }), { mode: 0o600 });
      const r = await run('key-server', ['check-acl', file]);
      expect([r.status, r.out], r.stderr).to.deep.equal([1, '']);
      expect(r.stderr).to.contain('rules[0].subjects[0] "7f:e7:01" is not a certificate serial number in hex: write it without the colons (7fe701)')
        .and.contain(`rules[0].measurements[0] "${Array(32).fill('ab').join(':')}" is not 64 or 96 hex digits: write it without the colons`);
    });
  });
});

describe('key-server check-acl: an ACL file left empty', () => {
  it('says the file is empty (an editor\'s save cut short, a redirection that truncated it), not that it stops being JSON at its first character', async () => {
    await withAclFile('check-acl-empty-', async (file) => {
      for (const text of ['', '\n', '  \n\t\n']) {
        writeFileSync(file, text, { mode: 0o600 });
        const r = await run('key-server', ['check-acl', file]);
        expect([r.status, r.out], r.stderr).to.deep.equal([1, '']);
        expect(r.stderr).to.equal('key-server: error: invalid ACL: the file is empty [INVALID_INPUT]\n');
      }
    });
  });
});

describe('key-server check-acl: the directories above the ACL file, as named and where its links lead', () => {
  it('refuses a file under a directory every user may write (0777, not sticky), or one reached through a link into such a directory; takes one under a sticky one', async () => {
    const tmp = tempDir('check-acl-dirs-');
    try {
      const text = JSON.stringify({ version: 1, rules: [{ resources: ['**'], actions: ['retrieve'], measurements: ['ab'.repeat(32)] }] });
      const open = join(tmp.dir, 'open');
      const sticky = join(tmp.dir, 'sticky');
      const safe = join(tmp.dir, 'safe');
      for (const d of [join(open, 'ks'), sticky, safe]) mkdirSync(d, { recursive: true, mode: 0o755 });
      chmodSync(open, 0o777); // anyone may rename ks/ away and make their own ks/acl.json
      chmodSync(sticky, 0o1777);
      const deep = join(open, 'ks', 'acl.json');
      const target = join(open, 'acl.json');
      const kept = join(sticky, 'acl.json');
      for (const f of [deep, target, kept]) writeFileSync(f, text, { mode: 0o644 });
      symlinkSync(target, join(safe, 'acl.json'));
      symlinkSync(kept, join(safe, 'sticky-acl.json'));
      symlinkSync(join(open, 'ks'), join(safe, 'ks'));
      symlinkSync(kept, join(open, 'hop'));
      symlinkSync(join(open, 'hop'), join(safe, 'via-hop.json'));
      const refused = [
        [deep, 'a directory above it'],
        [join(safe, 'acl.json'), 'a link into such a directory'],
        [join(safe, 'ks', 'acl.json'), 'a linked directory inside such a directory'],
        [join(safe, 'via-hop.json'), 'a link through a link in such a directory, to a file in a sticky one'],
      ];
      for (const [file, what] of refused) {
        const r = await run('key-server', ['check-acl', file!]);
        expect([r.status, r.out], `${what}: ${r.stderr}`).to.deep.equal([1, '']);
        expect(r.stderr, what).to.contain(`${open}, where every user of the machine may put another file in its place (mode 0777)`).and.contain('[INVALID_INPUT]');
      }
      const ok = await run('key-server', ['check-acl', join(safe, 'sticky-acl.json')]);
      expect(ok.status, ok.stderr).to.equal(0);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('key-server check-acl: a rule that can allow nothing', () => {
  it('refuses a pattern only the key-server\'s own keys match (exit 1, saying why)', async () => {
    await withAclFile('check-acl-dead-', async (file) => {
      const m = 'ab'.repeat(32);
      for (const [rule, problem] of [
        [{ resources: ['key-server/*'], actions: ['retrieve'], measurements: [m] }, 'rules[0].resources[0] "key-server/*" matches only names under key-server/'],
        [{ resources: ['key-server-storage-key'], actions: ['retrieve'], measurements: [m] }, 'rules[0].resources[0] "key-server-storage-key" matches only the key-server\'s storage key'],
      ] as const) {
        writeFileSync(file, JSON.stringify({ version: 1, rules: [rule] }), { mode: 0o600 });
        const r = await run('key-server', ['check-acl', file]);
        expect([r.status, r.out], r.stderr).to.deep.equal([1, '']);
        expect(r.stderr).to.contain(problem).and.contain('[INVALID_INPUT]');
      }
      // A pattern that matches the key-server's names among others still allows the others.
      writeFileSync(file, JSON.stringify({ version: 1, rules: [{ resources: ['key-server*', 'key-server-storage-key*', '**'], actions: ['retrieve'], measurements: [m] }] }), { mode: 0o600 });
      const ok = await run('key-server', ['check-acl', file]);
      expect(ok.status, ok.stderr).to.equal(0);
    });
  });
});

describe('key-server check-acl: revoked serial numbers', () => {
  it('counts them under --json (revoked), and says nothing of them for an ACL without any', async () => {
    await withAclFile('check-acl-revoked-', async (file) => {
      const rules = [{ resources: ['**'], actions: ['retrieve'], measurements: ['ab'.repeat(32)] }];
      writeFileSync(file, JSON.stringify({ version: 1, rules, revoked: [{ serial: '7FE701', comment: 'stolen' }, { serial: '01' }] }), { mode: 0o600 });
      const r = await run('key-server', ['check-acl', file, '--json']);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.json()).to.deep.equal({ ok: true, rules: 1, revoked: 2 });
      writeFileSync(file, JSON.stringify({ version: 1, rules, revoked: [] }), { mode: 0o600 });
      const none = await run('key-server', ['check-acl', file, '--json']);
      expect(none.json()).to.deep.equal({ ok: true, rules: 1 });
    });
  });
});

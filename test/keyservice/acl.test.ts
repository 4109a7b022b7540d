// The ACL: pattern matching, decisions as a table of cases, and the catalogue of malformed files
// with the exact problems each must report.

import { expect } from 'chai';
import { CertifierError } from '../../lib/errors/index.ts';
import { ACL_ACTIONS, checkNotRevoked, decide, parseAcl, type Acl, type AclAction, type AclRule } from '../../lib/keyservice/acl.ts';
import { basicConstraints, encodeName, signCertificate, spkiOf } from '../../lib/pki/build.ts';
import { parseCertificate } from '../../lib/pki/index.ts';
import { generateKeyPair } from '../../lib/crypto/index.ts';
import { parseProvisionConfig } from '../../lib/keyclient/index.ts';
import { ANY_RUN, compilePattern, mayMatch, ONE, patternMatches, RUN, type Pattern } from '../../lib/keyservice/acl-pattern.ts';
import { prng } from '../support/prng.ts';

const M1 = 'a1'.repeat(32);
const M2 = 'b2'.repeat(32);
const M384 = 'c3'.repeat(48);
const SERIAL = '4f3a9c01';

const ACL = parseAcl(JSON.stringify({
  version: 1,
  comment: 'test domain',
  rules: [
    { resources: ['vhd/*', 'datica-test/storage-disk-key'], actions: ['retrieve'], measurements: [M1.toUpperCase()] },
    { resources: ['*'], actions: ['store', 'retrieve', 'delete', 'list'], roles: ['operator'] },
    { resources: ['ops/**'], actions: ['store', 'list'], subjects: [`00${SERIAL.toUpperCase()}`] },
    { resources: ['**'], actions: ['list'], roles: ['auditor'] },
    { resources: ['app?/c*nf.d/**'], actions: ['retrieve', 'list'], measurements: [M384] },
  ],
}));

const machine = (m = M1, serial = 'ffee', roles: string[] = []) => ({ measurementHex: m, serialHex: serial, roles });

const matchPattern = (pattern: string, name: string) => patternMatches(compilePattern(pattern), name);

/** Whether a rule of this one pattern lets a machine it names list `prefix`. */
const listAllowedBy = (pattern: string, prefix: string) =>
  decide(parseAcl(JSON.stringify({ version: 1, rules: [{ resources: [pattern], actions: ['list'], measurements: [M1] }] })), { action: 'list', resource: prefix }, machine()).allow;

/** A compiled pattern's tokens after its prefix, read back from its codes: '*', '**', '?' or one literal character. */
const tokensOf = (p: Pattern) => Array.from(p.codes, (c) => (c === RUN ? '*' : c === ANY_RUN ? '**' : c === ONE ? '?' : String.fromCodePoint(c)));

/** A stand-in that fails the test if decide() looks at it. */
const untouchable = (what: string) => new Proxy([], { get: () => expect.fail(`${what} were looked at`) });

/** Replaces the patterns of these rules by a stand-in that fails the test if decide() looks at it. */
function forbidPatterns(acl: Acl, rules: number[]): void {
  for (const i of rules) Object.assign(acl.compiled[i]!, { patterns: untouchable(`the patterns of rule ${i}`) });
}

/** Replaces every part of these rules (actions, patterns, names) by such stand-ins. */
function forbidRules(acl: Acl, rules: number[]): void {
  for (const i of rules) for (const k of Object.keys(acl.compiled[i]!)) Object.assign(acl.compiled[i]!, { [k]: untouchable(`the ${k} of rule ${i}`) });
}

/** Whether a rule names the client (its measurement and serial number as parseAcl keeps them: lowercase, no leading zeros). */
const namesClient = (r: AclRule, who: ReturnType<typeof machine>) =>
  r.measurements.includes(who.measurementHex) || r.subjects.includes(who.serialHex) || who.roles.some((x) => r.roles.includes(x));

/** The rule decide() allowed by before it had an index: the first, of all rules in order, with the action, the client and a pattern that covers. */
function formerRule(acl: Acl, action: AclAction, resource: string, who: ReturnType<typeof machine>): number | undefined {
  const i = acl.rules.findIndex((r) => r.actions.includes(action) && namesClient(r, who)
    && r.resources.some((p) => (action !== 'list' || p.endsWith('**')) && formerRegExp(p).test(resource)));
  return i < 0 ? undefined : i;
}

/** The former matcher, a backtracking regular expression: the reference for what a pattern means. */
function formerRegExp(pattern: string): RegExp {
  let src = '';
  const chars = Array.from(pattern);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '*' && chars[i + 1] === '*') {
      src += '[^]*';
      i++;
    } else if (c === '*') src += '[^/]*';
    else if (c === '?') src += '[^/]';
    else src += c.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${src}$`, 'u');
}

describe('ACL', () => {
  describe('patterns', () => {
    const cases: [string, string, boolean][] = [
      ['vhd/*', 'vhd/disk1', true],
      ['vhd/*', 'vhd/', true],
      ['vhd/*', 'vhd/a/b', false],
      ['vhd/*', 'vhd', false],
      ['vhd/**', 'vhd/a/b/c', true],
      ['vhd/**', 'vhd/', true],
      ['vhd/**', 'vhdx/a', false],
      ['**', '', true],
      ['**', 'any/thing/at/all', true],
      ['*', 'top', true],
      ['*', 'a/b', false],
      ['key-?', 'key-1', true],
      ['key-?', 'key-é', true],
      ['key-?', 'key-12', false],
      ['key-?', 'key-/', false],
      ['a.b', 'a.b', true],
      ['a.b', 'axb', false],
      ['a+(b)[c]{d}|^$\\', 'a+(b)[c]{d}|^$\\', true],
      ['a/**/z', 'a/z', false],
      ['a/**/z', 'a/b/c/z', true],
      ['a/**z', 'a/z', true],
      ['datica-test/storage-disk-key', 'datica-test/storage-disk-key', true],
      ['datica-test/storage-disk-key', 'datica-test/storage-disk-key2', false],
    ];
    for (const [p, name, expected] of cases) {
      it(`${JSON.stringify(p)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(name)}`, () => {
        expect(matchPattern(p, name)).to.equal(expected);
      });
    }

    it('match as the former regular expressions did, on every short pattern and name over a small alphabet', () => {
      const strings = (alphabet: string[], max: number): string[] => {
        const out = [''];
        for (let at = 0; out[at] !== undefined && Array.from(out[at]!).length < max; at++) for (const c of alphabet) out.push(out[at] + c);
        return out;
      };
      const names = strings(['a', 'b', '/', '*'], 5);
      for (const p of strings(['a', '/', '*', '?'], 4)) {
        const [compiled, former] = [compilePattern(p), formerRegExp(p)];
        const wrong = names.filter((name) => patternMatches(compiled, name) !== former.test(name));
        expect(wrong, JSON.stringify(p)).to.deep.equal([]);
      }
    });

    it('match as the former regular expressions did, on random patterns and names (seed 0xac1, 5000 patterns, 4 names each)', () => {
      const random = prng(0xac1);
      const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
      const make = (alphabet: string[], max: number) => Array.from({ length: Math.floor(random() * (max + 1)) }, () => pick(alphabet)).join('');
      for (let k = 0; k < 5000; k++) {
        const p = make(['a', 'b', '-', '/', '.', 'é', '😀', '*', '**', '?', '(', '['], 8);
        const [compiled, former] = [compilePattern(p), formerRegExp(p)];
        // Two names filled in from the pattern (a wildcard's part may hold a '/'), two made up.
        const filled = () => compiled.prefix + tokensOf(compiled).map((t) => (t === '?' ? pick(['a', '/', 'é']) : t.startsWith('*') ? make(['a', '-', '/', '😀'], 3) : t)).join('');
        for (let j = 0; j < 4; j++) {
          const name = j < 2 ? filled() : make(['a', 'b', '-', '/', '.', 'é', '😀', '*', '?', '('], 12);
          expect(patternMatches(compiled, name), `${JSON.stringify(p)} on ${JSON.stringify(name)}`).to.equal(former.test(name));
          if (former.test(name)) expect(mayMatch(compiled, name), `${JSON.stringify(p)} may match ${JSON.stringify(name)}`).to.equal(true);
        }
      }
    });

    it('decide patterns and names chosen to make a backtracking matcher run for minutes, quickly', () => {
      const cases: [string, string, boolean][] = [
        ['vm/*-*-*-*-*', `vm/${'-'.repeat(252)}/`, false],
        ['vm/*-*-*-*-*', `vm/${'-'.repeat(253)}`, true],
        ['*a*a*a*a*a*b', 'a'.repeat(256), false],
        ['*a*a*a*a*a*b', `${'a'.repeat(255)}b`, true],
        ['**/**/**/**.pem', `${'a/'.repeat(127)}b`, false],
        ['**-**-**.key', `${'-'.repeat(255)}x`, false],
        [`${'*?'.repeat(60)}x`, 'y'.repeat(256), false],
      ];
      for (const [p, name, expected] of cases) expect(matchPattern(p, name), `${JSON.stringify(p)} on ${name.length} characters`).to.equal(expected);
    });

    it('are compiled into their literal prefix, the tokens after it, their literal suffix and the fewest characters of a match', () => {
      const parts = (p: string) => {
        const compiled = compilePattern(p);
        const { prefix, suffix, minLength } = compiled;
        return { prefix, tokens: tokensOf(compiled), suffix, minLength };
      };
      expect(parts('vhd/a*b?**c')).to.deep.equal({ prefix: 'vhd/a', tokens: ['*', 'b', '?', '**', 'c'], suffix: 'c', minLength: 8 });
      expect(parts('key-😀')).to.deep.equal({ prefix: 'key-😀', tokens: [], suffix: '', minLength: 5 });
      expect(parts('**')).to.deep.equal({ prefix: '', tokens: ['**'], suffix: '', minLength: 0 });
      expect(parts('**/m-😀/disk-key')).to.deep.include({ prefix: '', suffix: '/m-😀/disk-key', minLength: 13 });
      expect(parts('a?')).to.deep.include({ prefix: 'a', suffix: '', minLength: 2 });
      expect(parts('*?x')).to.deep.include({ prefix: '', suffix: 'x', minLength: 2 });
      expect(parts('a\ud800b')).to.deep.include({ prefix: 'a', tokens: ['\ud800', 'b'], suffix: '\ud800b', minLength: 3 });
    });

    it('refuse, without walking the name, one lacking the literal suffix or too short to match', () => {
      const walkless = (p: string) => ({ ...compilePattern(p), codes: new Proxy(new Int32Array(), { get: () => expect.fail(`the tokens of ${p} were walked`) }) });
      expect(patternMatches(walkless('**/machine-1/disk-key'), `${'x/'.repeat(100)}${'a'.repeat(56)}`)).to.equal(false);
      expect(patternMatches(walkless('*??'), 'é')).to.equal(false);
      expect(patternMatches(walkless(`${'*a'.repeat(120)}*b7`), 'a'.repeat(256))).to.equal(false);
      expect(patternMatches(walkless('a*??b'), 'axb')).to.equal(false);
      expect(mayMatch(compilePattern('a*??b'), 'a😀b')).to.equal(true); // two UTF-16 units but one character: the walk decides
      expect(matchPattern('a*??b', 'a😀b')).to.equal(false);
      expect(mayMatch(compilePattern('**/disk-key'), 'x/disk-key')).to.equal(true);
      expect(mayMatch(compilePattern('**/disk-key'), 'x/disk-key2')).to.equal(false);
    });

    it('allows list of a prefix only under a pattern ending in ** that the prefix matches', () => {
      expect(listAllowedBy('vhd/**', 'vhd/')).to.equal(true);
      expect(listAllowedBy('vhd/**', 'vhd/sub/')).to.equal(true);
      expect(listAllowedBy('vhd/**', 'vhd')).to.equal(false);
      expect(listAllowedBy('vhd/**', '')).to.equal(false);
      expect(listAllowedBy('**', '')).to.equal(true);
      expect(listAllowedBy('vhd/*', 'vhd/')).to.equal(false);
      expect(listAllowedBy('disk-key', 'disk-key')).to.equal(false);
      expect(listAllowedBy('*/keys/**', 'tenant/keys/')).to.equal(true);
      expect(listAllowedBy('*/keys/**', 'tenant/')).to.equal(false);
    });
  });

  describe('decisions', () => {
    type Case = [string, AclAction, string, ReturnType<typeof machine>, boolean, number?];
    const cases: Case[] = [
      ['a trusted measurement retrieves a vhd key', 'retrieve', 'vhd/disk1', machine(), true, 0],
      ['a trusted measurement retrieves the literal name', 'retrieve', 'datica-test/storage-disk-key', machine(), true, 0],
      ['a trusted measurement may not retrieve a deeper vhd name', 'retrieve', 'vhd/a/b', machine(), false],
      ['a trusted measurement may not store', 'store', 'vhd/disk1', machine(), false],
      ['a trusted measurement may not delete', 'delete', 'vhd/disk1', machine(), false],
      ['another measurement may not retrieve', 'retrieve', 'vhd/disk1', machine(M2), false],
      ['an operator stores a top-level name', 'store', 'top', machine(M2, '01', ['operator']), true, 1],
      ['an operator deletes a top-level name', 'delete', 'top', machine(M2, '01', ['operator']), true, 1],
      ['an operator may not touch a name with a slash ("*" stops at "/")', 'store', 'vhd/disk1', machine(M2, '01', ['operator']), false],
      ['an operator retrieves the vhd key through no rule', 'retrieve', 'vhd/disk1', machine(M2, '01', ['operator']), false],
      ['an unknown role gets nothing', 'store', 'top', machine(M2, '01', ['guest']), false],
      ['the subject stores under ops/', 'store', 'ops/a/b', machine(M2, SERIAL), true, 2],
      ['the subject matches with leading zeros and case ignored', 'store', 'ops/x', machine(M2, `0${SERIAL.toUpperCase()}`), true, 2],
      ['the subject may not retrieve under ops/', 'retrieve', 'ops/x', machine(M2, SERIAL), false],
      ['another subject may not store under ops/', 'store', 'ops/x', machine(M2, '4f3a9c02'), false],
      ['the subject lists ops/', 'list', 'ops/', machine(M2, SERIAL), true, 2],
      ['the subject lists a deeper prefix of ops/', 'list', 'ops/team/', machine(M2, SERIAL), true, 2],
      ['the subject may not list "op" (it would show "opx")', 'list', 'op', machine(M2, SERIAL), false],
      ['the subject may not list everything', 'list', '', machine(M2, SERIAL), false],
      ['an auditor lists everything', 'list', '', machine(M2, '01', ['auditor']), true, 3],
      ['an auditor may not retrieve', 'retrieve', 'top', machine(M2, '01', ['auditor']), false],
      ['an operator may not list everything under "*"', 'list', '', machine(M2, '01', ['operator']), false],
      ['a SHA-384 measurement retrieves with ? and * in the pattern', 'retrieve', 'app1/conf.d/x/y', machine(M384.toUpperCase()), true, 4],
      ['a SHA-384 measurement lists app1/conf.d/', 'list', 'app1/conf.d/', machine(M384), true, 4],
      ['a SHA-384 measurement may not list app1/ (it would show app1/other)', 'list', 'app1/', machine(M384), false],
      ['the first matching rule is reported', 'retrieve', 'vhd/k', machine(M1, '01', ['operator']), true, 0],
    ];
    for (const [what, action, resource, who, allow, rule] of cases) {
      it(`${allow ? 'allows' : 'denies'}: ${what}`, () => {
        const d = decide(ACL, { action, resource }, who);
        expect(d.allow, d.reason).to.equal(allow);
        if (allow) {
          expect(d.rule).to.equal(rule);
          expect(d.code).to.equal(undefined);
          expect(d.reason).to.match(new RegExp(`^rule ${rule} allows`));
        } else {
          expect(d.code).to.equal('ACL_DENIED');
          expect(d.rule).to.equal(undefined);
          expect(d.reason).to.include('denied');
        }
      });
    }

    it('matches no pattern of a rule that does not name the client or the action', () => {
      const acl = parseAcl(JSON.stringify({
        version: 1,
        rules: [
          { resources: ['vm/*-*-*-*-*'], actions: ['retrieve'], measurements: [M2], roles: ['operator'] },
          { resources: ['vm/**'], actions: ['store'], measurements: [M1] },
          { resources: ['vm/**'], actions: ['retrieve'], measurements: [M1] },
        ],
      }));
      forbidPatterns(acl, [0, 1]);
      const d = decide(acl, { action: 'retrieve', resource: `vm/${'-'.repeat(252)}/` }, machine(M1, '01', ['auditor']));
      expect(d).to.deep.equal({ allow: true, reason: `rule 2 allows retrieve of "vm/${'-'.repeat(252)}/" to measurement ${M1}`, rule: 2 });
    });

    it('applies a rule naming a measurement, a subject and a role to a client that has any one of them', () => {
      const acl = parseAcl(JSON.stringify({
        version: 1,
        rules: [{ resources: ['shared/*'], actions: ['retrieve'], measurements: [M1], subjects: [SERIAL], roles: ['operator'] }],
      }));
      for (const [by, who] of [['measurement', machine(M1)], ['subject', machine(M2, SERIAL)], ['role', machine(M2, '01', ['auditor', 'operator'])]] as const) {
        const d = decide(acl, { action: 'retrieve', resource: 'shared/k' }, who);
        expect(d, by).to.include({ allow: true, rule: 0 });
        expect(d.reason, by).to.match(new RegExp(`to ${by} `));
      }
      expect(decide(acl, { action: 'retrieve', resource: 'shared/k' }, machine(M2, '01', ['auditor'])).allow).to.equal(false);
    });

    it('without an ACL, allows store, retrieve and list to everyone and denies delete', () => {
      for (const action of ['store', 'retrieve', 'list'] as const) expect(decide(undefined, { action, resource: 'x' }, machine()).allow).to.equal(true);
      const d = decide(undefined, { action: 'delete', resource: 'x' }, machine(M1, '01', ['operator']));
      expect(d).to.include({ allow: false, code: 'ACL_DENIED' });
      expect(d.reason).to.equal('delete of "x" refused: no ACL is configured, and delete needs an ACL rule that allows it (key-server serve --acl)');
    });

    it('says why a request was denied, in the same words whether or not a rule for another machine covers the name', () => {
      const why = (m: string) => `no ACL rule for measurement ${m} or serial number ffee allows retrieve with a pattern that matches the name; to allow it, add one to the ACL and reload it (SIGHUP)`;
      expect(decide(ACL, { action: 'retrieve', resource: 'vhd/x' }, machine(M2)).reason).to.equal(`retrieve of "vhd/x" denied: ${why(M2)}`);
      expect(decide(ACL, { action: 'retrieve', resource: 'nowhere/x' }, machine()).reason).to.equal(`retrieve of "nowhere/x" denied: ${why(M1)}`);
      expect(decide(ACL, { action: 'store', resource: 'a/b' }, machine(M2, '01', ['operator', 'auditor'])).reason)
        .to.equal(`store of "a/b" denied: no ACL rule for measurement ${M2}, serial number 1, role operator or role auditor allows store with a pattern that matches the name; to allow it, add one to the ACL and reload it (SIGHUP)`);
      const small = parseAcl(JSON.stringify({ version: 1, rules: [{ resources: ['vhd/*'], actions: ['list'], measurements: [M1] }] }));
      expect(decide(small, { action: 'list', resource: 'vhd/' }, machine()).reason).to.match(/: no ACL rule for measurement \w+ or serial number ffee allows list with a pattern that ends in \*\* and matches the prefix; /);
    });

    it('matches no pattern of a rule for another machine when denying a request', () => {
      const acl = parseAcl(JSON.stringify({
        version: 1,
        rules: [
          { resources: ['**/machine-1/disk-key'], actions: ['retrieve'], measurements: [M2] },
          { resources: ['**'], actions: ['retrieve'], roles: ['operator'] },
          { resources: ['own/**'], actions: ['retrieve'], measurements: [M1] },
        ],
      }));
      forbidPatterns(acl, [0, 1]);
      const d = decide(acl, { action: 'retrieve', resource: 'x/machine-1/disk-key' }, machine(M1, '01', ['auditor']));
      expect(d).to.include({ allow: false, code: 'ACL_DENIED' });
    });
  });

  describe('an ACL of 3000 rules, nearly all for other machines', () => {
    const random = prng(0xac2);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const some = <T>(xs: readonly T[]): T[] => [...new Set([pick(xs), pick(xs)])];
    const clients = [machine(M1, '1'), machine(M2, SERIAL, ['operator']), machine(M384, 'ffee', ['auditor', 'operator'])];
    const others = { measurements: Array.from({ length: 300 }, (_, i) => i.toString(16).padStart(64, 'e')), subjects: ['dd01', 'dd02', 'dd03'], roles: ['guest', 'backup'] };
    const ours = { measurements: [M1, M2, M384], subjects: ['1', SERIAL, 'ffee'], roles: ['operator', 'auditor'] };
    const text = JSON.stringify({
      version: 1,
      rules: Array.from({ length: 3000 }, () => {
        const names = random() < 0.01 ? ours : others;
        const kind = pick(['measurements', 'subjects', 'roles'] as const);
        return { resources: [pick(['vhd/*', 'vhd/**', '**', '*', 'app?/**', 'ops/**', 'ops/x', 'a/b'])], actions: some(ACL_ACTIONS), [kind]: some(names[kind]) };
      }),
    });
    const resources = ['vhd/x', 'vhd/a/b', 'vhd/', 'ops/x', 'ops/', 'app1/c', 'a/b', 'top', ''];

    it('decides as the scan of every rule did, looking only at the rules that name the client (seed 0xac2)', () => {
      const all = parseAcl(text);
      for (const who of clients) {
        const acl = parseAcl(text);
        forbidRules(acl, acl.rules.flatMap((r, i) => (namesClient(r, who) ? [] : [i])));
        for (const action of ACL_ACTIONS) {
          for (const resource of resources) {
            const [d, rule] = [decide(acl, { action, resource }, who), formerRule(all, action, resource, who)];
            expect({ allow: d.allow, rule: d.rule }, `${action} of ${JSON.stringify(resource)} by ${who.measurementHex.slice(0, 4)}`).to.deep.equal({ allow: rule !== undefined, rule });
          }
        }
      }
    });
  });

  describe('revoked serial numbers', () => {
    const withRevoked = (revoked: unknown) => parseAcl(JSON.stringify({ version: 1, rules: [{ resources: ['*'], actions: ['retrieve'], measurements: [M1] }], revoked }));

    it('keys each serial number as a parsed certificate gives it, however it is written', () => {
      const acl = withRevoked([{ serial: '00ABC' }, { serial: '0' }, { serial: 'FF', comment: 'lost' }, { serial: '0100' }]);
      expect(acl.revoked).to.deep.equal([{ serial: 'abc' }, { serial: '0' }, { serial: 'ff', comment: 'lost' }, { serial: '100' }]);
      expect([...acl.revokedIndex]).to.deep.equal([['0abc', 0], ['00', 1], ['ff', 2], ['0100', 3]]);
      expect(withRevoked([]).revokedIndex.size).to.equal(0);
      expect(parseAcl(JSON.stringify({ version: 1, rules: [{ resources: ['*'], actions: ['retrieve'], measurements: [M1] }] })).revoked).to.deep.equal([]);
    });

    it("revokes a certificate whose serial's first octet is below 0x10, as its parsed serial reads", async () => {
      const { privateKey, publicKey } = await generateKeyPair('p256');
      const name = encodeName([['2.5.4.3', 'revoked']]);
      const der = signCertificate({ serial: Uint8Array.of(0x0a, 0xbc), issuer: name, subject: name, notBefore: new Date(0), notAfter: new Date(86_400_000), spki: spkiOf(publicKey), extensions: [basicConstraints(false)] }, privateKey);
      const { serialHex } = parseCertificate(der);
      expect(serialHex).to.equal('0abc');
      const e = (() => { try { checkNotRevoked(withRevoked([{ serial: 'ABC', comment: 'copied off host 12' }]), serialHex, "this machine's admission certificate"); } catch (x) { return x; } })();
      expect(e).to.be.instanceOf(CertifierError);
      expect((e as CertifierError).code).to.equal('CERT_REVOKED');
      expect((e as CertifierError).message).to.equal('this machine\'s admission certificate, serial 0abc, is revoked by the ACL (revoked[0]: "copied off host 12")');
    });

    it('lets through a serial the list does not name, and every serial without an ACL', () => {
      const acl = withRevoked([{ serial: 'abc' }]);
      expect(() => checkNotRevoked(acl, 'abcd', 'x')).not.to.throw();
      expect(() => checkNotRevoked(acl, 'bc', 'x')).not.to.throw();
      expect(() => checkNotRevoked(undefined, '0abc', 'x')).not.to.throw();
      expect(() => checkNotRevoked(acl, '0abc', 'the role credential')).to.throw(CertifierError, 'the role credential, serial 0abc, is revoked by the ACL (revoked[0])');
      expect(() => checkNotRevoked(acl, '0abc', 'the role credential', 'CREDENTIAL_REVOKED')).to.throw(CertifierError).with.property('code', 'CREDENTIAL_REVOKED');
    });
  });

  describe('malformed files', () => {
    const rule = { resources: ['a/*'], actions: ['retrieve'], roles: ['operator'] };
    const cases: [string, unknown, string[]][] = [
      ['not JSON', '{"version": 1,', ['not JSON']],
      ['not an object', [rule], ['the ACL must be a JSON object']],
      ['no version, no rules', {}, ['version is missing', 'rules is missing']],
      ['another version', { version: 2, rules: [rule] }, ['version is not 1']],
      ['an unknown top-level field', { version: 1, rules: [rule], default: 'allow' }, ['unknown field "default"']],
      ['rules not a list', { version: 1, rules: rule }, ['rules is not a list']],
      ['no rules', { version: 1, rules: [] }, ['rules is empty (an ACL without rules would deny everything)']],
      ['a rule that is not an object', { version: 1, rules: [rule, 'allow all'] }, ['rules[1] is not an object']],
      ['an unknown rule field', { version: 1, rules: [{ ...rule, effect: 'deny' }] }, ['rules[0]: unknown field "effect"']],
      ['missing resources and actions', { version: 1, rules: [{ roles: ['operator'] }] }, ['rules[0].resources is missing', 'rules[0].actions is missing']],
      ['empty lists', { version: 1, rules: [{ resources: [], actions: [], measurements: [] }] },
        ['rules[0].resources is empty', 'rules[0].actions is empty', 'rules[0].measurements is empty']],
      ['an unknown action', { version: 1, rules: [rule, { ...rule, actions: ['retrieve', 'read'] }] },
        ['rules[1].actions[1] "read" is not one of store, retrieve, delete, list']],
      ['bad measurements', { version: 1, rules: [{ ...rule, measurements: ['ab'.repeat(32), 'xyz', 'ab'.repeat(40), 7] }] },
        ['rules[0].measurements[1] "xyz" is not 64 or 96 hex digits', `rules[0].measurements[2] "${'ab'.repeat(40)}" is not 64 or 96 hex digits`, 'rules[0].measurements[3] is not a string']],
      ['bad subjects', { version: 1, rules: [{ ...rule, subjects: ['0x12', 'ab:cd', ''] }] },
        ['rules[0].subjects[0] "0x12" is not a certificate serial number in hex', 'rules[0].subjects[1] "ab:cd" is not a certificate serial number in hex: write it without the colons (abcd)', 'rules[0].subjects[2] "" is not a certificate serial number in hex']],
      ['bad roles, and one a character too long', { version: 1, rules: [{ ...rule, roles: ['Operator', `r${'-'.repeat(62)}`, `r${'-'.repeat(63)}`] }] },
        ['Operator', `r${'-'.repeat(63)}`].map((r, i) => `rules[0].roles[${i * 2}] "${r}" is not a role name (1 to 63 lowercase letters, digits, "-" or "_", starting with a letter)`)],
      ['bad patterns', { version: 1, rules: [{ ...rule, resources: ['', 'a/***', 'tab\there', 'x'.repeat(257)] }] },
        ['rules[0].resources[0] "" is empty', 'rules[0].resources[1] "a/***" has "***" (use * or **)', 'rules[0].resources[2] "tab\\there" contains a control character', `rules[0].resources[3] "${'x'.repeat(257)}" is longer than 256 characters`]],
      // Held to the rule on new key names: key-server stores no new name that breaks it, so such a
      // pattern would match no key stored since (the composed "café/*" is taken).
      ['patterns no key name stored since can match', { version: 1, rules: [{ ...rule, resources: ['cafe\u0301/*', 'caf\u00e9/*', 'vhd/\u200b*', 'a/\u202e*'] }] },
        [['0', '"cafe\\u0301/*" is not in Unicode normalization form C'], ['2', '"vhd/\\u200b*" contains a C1 control or an invisible character'], ['3', '"a/\\u202e*" contains a C1 control or an invisible character']]
          .map(([i, what]) => `rules[0].resources[${i}] ${what}${what!.includes('form C') ? ' (a letter written as a base and a combining mark displays as another name that is one code point): write it composed' : ', such as a zero-width or bidirectional mark (it would display as another name)'}; a pattern is held to the rule on new key names, since one breaking it matches no key stored since`)],
      ['a rule naming nobody', { version: 1, rules: [{ resources: ['*'], actions: ['list'] }] },
        ['rules[0] names no measurements, subjects or roles, so it would match nobody']],
      ['lists that are not lists', { version: 1, rules: [{ resources: 'a/*', actions: ['list'], roles: 'operator' }] },
        ['rules[0].resources is not a list', 'rules[0].roles is not a list']],
      ['revoked not a list', { version: 1, rules: [rule], revoked: { serial: 'ab' } }, ['revoked is not a list']],
      ['malformed revoked entries', { version: 1, rules: [rule], revoked: ['ab', { comment: 'x' }, { serial: 'ab:cd' }, { serial: 171 }, { serial: 'ab', reason: 'lost', comment: 1 }, { serial: '00AB' }] },
        ['revoked[0] is not an object', 'revoked[1].serial is missing', 'revoked[2].serial "ab:cd" is not a certificate serial number in hex: write it without the colons (abcd)', 'revoked[3].serial is not a string',
          'revoked[4]: unknown field "reason"', 'revoked[4].comment is not a string', 'revoked[5].serial names the same serial number as revoked[4]']],
      ['revoked entries without rules', { version: 1, revoked: [{ serial: 'ab' }] }, ['rules is missing']],
      ['problems in several rules, all reported', { version: 1, rules: [{ ...rule, actions: ['fetch'] }, rule, { ...rule, measurements: ['00'] }] },
        ['rules[0].actions[0] "fetch" is not one of store, retrieve, delete, list', 'rules[2].measurements[0] "00" is not 64 or 96 hex digits']],
    ];
    for (const [what, doc, problems] of cases) {
      it(`refuses ${what}`, () => {
        const text = typeof doc === 'string' ? doc : JSON.stringify(doc);
        try {
          parseAcl(text);
          expect.fail('parseAcl accepted it');
        } catch (e) {
          expect(e).to.be.instanceOf(CertifierError);
          expect((e as CertifierError).code).to.equal('INVALID_INPUT');
          expect((e as CertifierError).details?.problems).to.deep.equal(problems);
          expect((e as CertifierError).message).to.match(/^invalid ACL: /);
        }
      });
    }

    it('accepts the example of the documentation, normalizing hex', () => {
      const acl = parseAcl(JSON.stringify({
        version: 1,
        rules: [
          { resources: ['vhd/*'], actions: ['retrieve'], measurements: [M1.toUpperCase()] },
          { resources: ['ops/**'], actions: ['store'], subjects: ['00AB'] },
        ],
      }));
      expect(acl.rules[0]!.measurements).to.deep.equal([M1]);
      expect(acl.rules[1]!.subjects).to.deep.equal(['ab']);
    });
  });
});

describe('ACL and provisioning config: a wrong file given by mistake', () => {
  it('is refused without quoting any of it (it may be a secret)', () => {
    for (const parse of [parseAcl, parseProvisionConfig]) {
      let message = '';
      try {
        parse('correct horse battery staple\n');
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).to.contain('is not JSON');
      expect(message).not.to.contain('correct');
    }
    let version = '';
    try {
      parseAcl('{"version": "s3cr3t-value", "rules": []}');
    } catch (e) {
      version = (e as Error).message;
    }
    expect(version).to.contain('version is not 1').and.not.to.contain('s3cr3t');
  });
});

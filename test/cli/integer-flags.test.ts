// One rule for every integer on the command lines, in a flag of its own or a part of one: ASCII
// decimal digits, no sign, leading zeros taken and never octal (`--days 010` is 10, `08` is 8).
// Each flag's own parser, as the four programs build them (test/support/option-parsers.ts, one
// child for all); a flag that takes <n> and is missing from the table fails the test.

import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseHostPort } from '../../cmd/common/keys.ts';
import { supportScript } from '../support/helpers.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
type Query = [program: string, command: string, flag: string, value: string];
type Parsed = { value?: unknown; error?: string };

function parse(queries: Query[]): { numeric: string[][]; parsed: Parsed[] } {
  return JSON.parse(execFileSync(process.execPath, supportScript('option-parsers.ts', [JSON.stringify(queries)]), { cwd: ROOT, encoding: 'utf8' }));
}

/** Every flag that takes a number: program, command, flag, and the values it takes. */
const FLAGS: [string, string, string, number, number][] = [
  ['cert-utility', 'generate-policy-key', '--days', 1, 36600],
  ['cert-utility', 'make-policy', '--days', 1, 36600],
  ['cert-utility', 'make-policy', '--snp-vmpl', 0, 3],
  ['cert-utility', 'issue-cert', '--days', 1, 3660],
  ['cert-utility', 'issue-role-cert', '--days', 1, 3660],
  ['cert-utility', 'create-store', '--scrypt-log-n', 10, 22],
  ['cert-utility', 'export-store', '--scrypt-log-n', 10, 22],
  ['cert-utility', 'rekey-store', '--scrypt-log-n', 10, 22],
  ['cert-utility', 'get-item', '--version', 0, 0x7fffffff],
  ['cert-utility', 'delete-item', '--version', 0, 0x7fffffff],
  ['simpleserver', 'serve', '--cert-days', 1, 3660],
  ['key-server', 'serve', '--backup-keep', 1, 100_000],
  ['key-server', 'serve', '--audit-rotate-mb', 1, 1_048_576],
  ['key-server', 'serve', '--pg-pool-size', 1, 1000],
  ['key-client', 'store', '--expected-version', 0, 0x7fffffff],
  ['key-client', 'retrieve', '--version', 0, 0x7fffffff],
  ['key-client', 'delete', '--version', 0, 0x7fffffff],
];

/** Values that are no decimal integer, whatever the flag. */
const NOT_DECIMAL = (n: number) => [`0x${n.toString(16)}`, `0o${n.toString(8)}`, `+${n}`, `-${n}`, `${n}.0`, `${n}e0`, ` ${n}`, `${n} `, '\uff11', ''];

const HASH = 'ab'.repeat(32);
/** Numbers inside a flag's value: [program, command, flag, value, what it makes (undefined: refused)]. */
const PARTS: [...Query, unknown][] = [
  ['cert-utility', 'make-policy', '--snp-min-tcb', '03:00:08:0115', [{ layout: 'family-19h', levels: [3, 0, 8, 115] }]],
  ['cert-utility', 'make-policy', '--snp-min-tcb', 'turin=00:01:00:02:00071', [{ layout: 'turin', levels: [0, 1, 0, 2, 71] }]],
  ['cert-utility', 'make-policy', '--snp-min-tcb', '3:0:8:0256', undefined],
  ['cert-utility', 'make-policy', '--snp-min-tcb', '3:0:0x8:115', undefined],
  ['cert-utility', 'make-policy', '--snp-property', 'guest-svn>=010', [{ name: 'guest-svn', comparator: '>=', value: 10 }]],
  ['cert-utility', 'make-policy', '--snp-property', 'vmpl=0003', [{ name: 'vmpl', comparator: '=', value: 3 }]],
  ['cert-utility', 'make-policy', '--snp-property', 'firmware-version>=01.0051', [{ name: 'firmware-version', comparator: '>=', value: 256 + 51 }]],
  ['cert-utility', 'make-policy', '--snp-property', 'guest-svn>=1e1', undefined],
  ['cert-utility', 'make-policy', '--snp-property', 'abi-version>=1.51.0', undefined],
  ['key-server', 'verify-audit', '--expect', `007:${HASH}`, [{ seq: 7, hash: HASH, source: `--expect 007:${HASH}` }]],
  ['key-server', 'verify-audit', '--expect', `000:${HASH}`, undefined],
  ['key-server', 'verify-audit', '--expect', `0x7:${HASH}`, undefined],
];

describe('integers on the command line', () => {
  it('every flag that takes a number reads it as decimal, leading zeros and all, and nothing else as one', function () {
    this.slow(4_000);
    const queries: Query[] = [];
    const expected: (number | undefined)[] = [];
    const ask = (q: Query, value: number | undefined) => (queries.push(q), expected.push(value));
    for (const [program, command, flag, min, max] of FLAGS) {
      // 10, as 010 would be octal 8; 9, as 09 is no octal; the ends of the range, padded.
      const n = Math.min(Math.max(10, min), max);
      const cases: [string, number | undefined][] = [[`${n}`, n], [`0${n}`, n], [`${'0'.repeat(20)}${n}`, n], [`00${min}`, min], [`0${max}`, max], [`0${max + 1}`, undefined]];
      if (min <= 9 && max >= 9) cases.push(['09', 9]);
      if (min > 0) cases.push([`0${min - 1}`, undefined]);
      for (const [text, value] of cases) ask([program, command, flag, text], value);
      for (const text of NOT_DECIMAL(n)) ask([program, command, flag, text], undefined);
    }
    const { numeric, parsed } = parse([...queries, ...PARTS.map(([p, c, f, v]) => [p, c, f, v] as Query)]);
    expect(numeric.map((f) => f.join(' ')).sort(), 'every flag that takes <n> is in the table').to.deep.equal(FLAGS.map((f) => f.slice(0, 3).join(' ')).sort());
    queries.forEach((q, i) => {
      const got = parsed[i]!;
      if (expected[i] === undefined) expect(got.error, `${q.join(' ')} refused`).to.be.a('string');
      else expect(got, q.join(' ')).to.deep.equal({ value: expected[i] });
    });
    PARTS.forEach(([program, command, flag, value, made], i) => {
      const got = parsed[queries.length + i]!;
      if (made === undefined) expect(got.error, `${program} ${command} ${flag} ${value} refused`).to.be.a('string');
      else expect(got, `${program} ${command} ${flag} ${value}`).to.deep.equal({ value: made });
    });
  });

  it('reads a port the same way', () => {
    expect(parseHostPort('kms.internal:0008120', '--server').port).to.equal(8120);
    expect(parseHostPort('[::1]:00000000000000000000065535', '--server').port).to.equal(65535);
    expect(parseHostPort('127.0.0.1:000', '--listen', { listen: true }).port).to.equal(0);
    for (const value of ['127.0.0.1:000', '127.0.0.1:065536', '127.0.0.1:0x1f90', '127.0.0.1:+8120', `127.0.0.1:${'9'.repeat(20)}`]) {
      expect(() => parseHostPort(value, '--server'), value).to.throw(/--server must be HOST:PORT with a port from 1 to 65535/);
    }
  });
});

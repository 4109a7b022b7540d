// Malformed input for every parser of lib/wire, as data (test/vectors/wire-malformed.json): each
// case must fail with a CertifierError carrying exactly the catalogued code, never a plain
// exception. Then truncations and random corruptions of real messages, which must fail the
// same way or parse.

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertifierError, ExitStatus, type ErrorCode } from '../../lib/errors/index.ts';
import { parseKeyRequest } from '../../lib/keyservice/protocol.ts';
import {
  decode,
  fieldCount,
  encode,
  newNameProblem,
  printableName,
  tagProblem,
  visibleJson,
  parseClaim,
  parseCryptstoreBundle,
  parseCryptstoreEntry,
  parseCryptstoreMetadata,
  parseSignedClaim,
  parseSignedClaimSequence,
  parseTrustRequest,
  parseTrustResponse,
  type MessageName,
} from '../../lib/wire/index.ts';
import { VECTORS } from '../support/helpers.ts';
import { prng } from '../support/prng.ts';

type ParseName =
  | 'decode'
  | 'parseCryptstoreEntry'
  | 'parseCryptstoreMetadata'
  | 'parseCryptstoreBundle'
  | 'parseSignedClaim'
  | 'parseSignedClaimSequence'
  | 'parseClaim'
  | 'parseTrustRequest'
  | 'parseTrustResponse';

interface Case { name: string; message: MessageName; parse: ParseName; hex: string }
interface MalformedCase extends Case { code: ErrorCode }
interface Catalogue { description: string; valid: Case[]; malformed: MalformedCase[] }

const catalogue = JSON.parse(readFileSync(join(VECTORS, 'wire-malformed.json'), 'utf8')) as Catalogue;

/** Each parse function with the message it reads; `decode` reads whichever message the case names. */
const PARSERS: Record<Exclude<ParseName, 'decode'>, { message: MessageName; parse: (b: Uint8Array) => unknown }> = {
  parseCryptstoreEntry: { message: 'cryptstore_entry', parse: parseCryptstoreEntry },
  parseCryptstoreMetadata: { message: 'cryptstore_metadata', parse: parseCryptstoreMetadata },
  parseCryptstoreBundle: { message: 'cryptstore_bundle', parse: parseCryptstoreBundle },
  parseSignedClaim: { message: 'signed_claim_message', parse: parseSignedClaim },
  parseSignedClaimSequence: { message: 'signed_claim_sequence', parse: parseSignedClaimSequence },
  parseClaim: { message: 'claim_message', parse: parseClaim },
  parseTrustRequest: { message: 'trust_request_message', parse: parseTrustRequest },
  parseTrustResponse: { message: 'trust_response_message', parse: parseTrustResponse },
};

const WIRE_CODES: readonly ErrorCode[] = ['DECODE_FAILED', 'MISSING_FIELD', 'BAD_FIELD'];

function runCase(c: Case): unknown {
  const bytes = Buffer.from(c.hex, 'hex');
  return c.parse === 'decode' ? decode(c.message, bytes) : PARSERS[c.parse].parse(bytes);
}

/** Runs `fn`; returns undefined if it returned, the CertifierError if it threw one, and fails the test on anything else. */
function outcome(fn: () => unknown, label: string): CertifierError | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!(e instanceof CertifierError)) {
      throw new Error(`${label}: threw a plain ${(e as Error)?.constructor?.name ?? typeof e}, not a CertifierError: ${String(e)}`, { cause: e });
    }
    expect(WIRE_CODES, `${label}: ${e.message}`).to.include(e.code);
    return e;
  }
}

const original = (name: string): Buffer => readFileSync(join(VECTORS, 'certifier-original', name));

/** Real, valid inputs for each parser: the reference vectors and the catalogue's valid cases. */
const SEEDS: { label: string; parse: (b: Uint8Array) => unknown; bytes: Uint8Array }[] = [
  { label: 'treq.bin', parse: parseTrustRequest, bytes: original('treq.bin') },
  { label: 'tresp.bin', parse: parseTrustResponse, bytes: original('tresp.bin') },
  { label: 'policy.bin', parse: parseSignedClaimSequence, bytes: original('policy.bin') },
  { label: 'platform_attest_endorsement.bin', parse: parseSignedClaim, bytes: original('platform_attest_endorsement.bin') },
  { label: 'claim of signed_claim_2.bin', parse: parseClaim, bytes: parseSignedClaim(original('signed_claim_2.bin')).serializedClaimMessage },
  ...catalogue.valid
    .filter((c) => c.parse !== 'decode')
    .map((c) => ({ label: c.name, parse: PARSERS[c.parse as Exclude<ParseName, 'decode'>].parse, bytes: Buffer.from(c.hex, 'hex') })),
];

describe('wire: malformed input', () => {
  describe('the catalogue (test/vectors/wire-malformed.json)', () => {
    it('holds at least 15 malformed cases with unique names, covering all three wire error codes', () => {
      expect(catalogue.malformed.length).to.be.at.least(15);
      const names = [...catalogue.valid, ...catalogue.malformed].map((c) => c.name);
      expect(new Set(names).size, 'names are unique').to.equal(names.length);
      expect(new Set(catalogue.malformed.map((c) => c.code))).to.deep.equal(new Set(WIRE_CODES));
    });

    it('labels every case with a known parse function, the message that function reads and well-formed hex', () => {
      for (const c of [...catalogue.valid, ...catalogue.malformed]) {
        expect(c.hex, c.name).to.match(/^(?:[0-9a-f]{2})*$/);
        if (c.parse === 'decode') continue;
        expect(PARSERS, c.name).to.have.property(c.parse);
        expect(c.message, c.name).to.equal(PARSERS[c.parse].message);
      }
      for (const c of catalogue.malformed) expect(WIRE_CODES, c.name).to.include(c.code);
    });

    it('accepts every valid neighbour, so each malformed case fails for its one defect', () => {
      for (const c of catalogue.valid) expect(outcome(() => runCase(c), c.name), c.name).to.equal(undefined);
    });
  });

  describe('each malformed case', () => {
    for (const c of catalogue.malformed) {
      it(`rejects ${c.name} (${c.message}, ${c.parse}) with ${c.code}`, () => {
        const e = outcome(() => runCase(c), c.name);
        if (e === undefined) throw new Error(`${c.name}: parsed without error, expected ${c.code}`);
        expect(e.code, e.message).to.equal(c.code);
        expect(e.exitStatus).to.equal(ExitStatus.failed);
        if (c.code === 'DECODE_FAILED') {
          expect(e.message).to.contain(c.message);
          expect(e.cause, 'keeps the protobuf error as the cause').to.be.instanceOf(Error);
        } else {
          // Validation errors list what was wrong, and the bytes themselves were valid protobuf.
          expect(e.details?.problems).to.be.an('array').that.is.not.empty;
          expect(() => decode(c.message, Buffer.from(c.hex, 'hex'))).not.to.throw();
        }
      });
    }
  });

  describe('damaged real messages', () => {
    for (const name of ['treq.bin', 'tresp.bin']) {
      it(`rejects every proper prefix of ${name} with a wire error`, () => {
        const seed = SEEDS.find((s) => s.label === name)!;
        for (let n = 0; n < seed.bytes.length; n++) {
          const e = outcome(() => seed.parse(seed.bytes.subarray(0, n)), `${name} cut to ${n} bytes`);
          expect(e, `${name} cut to ${n} bytes`).to.be.instanceOf(CertifierError);
        }
      });
    }

    it('parses or rejects with a wire error every prefix of every seed message, never throwing anything else', () => {
      for (const seed of SEEDS) {
        for (let n = 0; n <= seed.bytes.length; n++) outcome(() => seed.parse(seed.bytes.subarray(0, n)), `${seed.label} cut to ${n} bytes`);
      }
    });

    it('parses or rejects with a wire error 3000 random corruptions of the seed messages (seed 0xc0ffee)', () => {
      const random = prng(0xc0ffee);
      const int = (n: number) => Math.floor(random() * n);
      for (let run = 0; run < 3000; run++) {
        const seed = SEEDS[run % SEEDS.length]!;
        let bytes = Buffer.from(seed.bytes);
        const edits = 1 + int(3);
        const log: string[] = [];
        for (let k = 0; k < edits && bytes.length > 0; k++) {
          const at = int(bytes.length);
          const kind = int(4);
          if (kind === 0) {
            bytes[at] = bytes[at]! ^ (1 << int(8));
            log.push(`flip bit at ${at}`);
          } else if (kind === 1) {
            bytes[at] = int(256);
            log.push(`set byte ${at}`);
          } else if (kind === 2) {
            bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
            log.push(`delete byte ${at}`);
          } else {
            bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([int(256)]), bytes.subarray(at)]);
            log.push(`insert byte at ${at}`);
          }
        }
        outcome(() => seed.parse(bytes), `run ${run}, ${seed.label}: ${log.join(', ')}`);
      }
    });

    it('parses or rejects with a wire error 500 random byte strings given to every parser (seed 0xbad)', () => {
      const random = prng(0xbad);
      for (let run = 0; run < 500; run++) {
        const bytes = Uint8Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256));
        for (const [name, p] of Object.entries(PARSERS)) outcome(() => p.parse(bytes), `run ${run}, ${name}: ${Buffer.from(bytes).toString('hex')}`);
      }
    });
  });
});

describe('wire: tag and resource names', () => {
  it('takes 256 UTF-16 units and refuses 257, saying how characters beyond U+FFFF count', () => {
    expect(tagProblem('x'.repeat(256))).to.equal(undefined);
    expect(tagProblem('x'.repeat(257))).to.equal('is longer than 256 characters');
    expect(tagProblem('\u{1D11E}'.repeat(200))).to.contain('counts as two');
    expect(tagProblem('\u{1D11E}'.repeat(128))).to.equal(undefined);
  });

  it('refuses a lone surrogate, which no UTF-8 can carry, and takes a pair', () => {
    expect(tagProblem('disk-\ud800')).to.contain('lone UTF-16 surrogate');
    expect(tagProblem('\udc00disk')).to.contain('lone UTF-16 surrogate');
    expect(tagProblem('disk-\ud834\udd1e')).to.equal(undefined);
  });

  it('refuses a new name holding a C1 control or a bidirectional mark, and still reads an old one', () => {
    for (const odd of ['a/\u0085fake', 'a/\u009b31mred', 'a/\u202eexe.jpg', 'a/\u2066x', 'a/\u200fx', 'a/\u061cx', 'db-key\u200b', 'a\u200db', 'a\u2060b', '\ufeffa', 'soft\u00adhyphen', 'a\u034fb', 'a\u180eb', 'a\ufe0fb']) {
      expect(newNameProblem(odd), JSON.stringify(odd)).to.contain('invisible character');
      expect(tagProblem(odd)).to.equal(undefined);
    }
    expect(newNameProblem('vhd/disk-1 café ✓')).to.equal(undefined);
  });

  it('refuses a new name not in Unicode form C (e + a combining accent shows as the one-letter é), and still reads an old one', () => {
    for (const decomposed of ['vhd/cafe\u0301', 'A\u030a-key', '\u1100\u1161']) {
      expect(newNameProblem(decomposed), JSON.stringify(decomposed)).to.contain('normalization form C');
      expect(tagProblem(decomposed)).to.equal(undefined);
      expect(newNameProblem(decomposed.normalize('NFC'))).to.equal(undefined);
    }
  });

  it('marks such a name in a store request (the server refuses it unless the name has versions already), and takes it in a retrieve', () => {
    const request = (action: 'store' | 'retrieve') => encode('key_service_message_request', { requestType: action, resourceName: 'db-key\u200b', ...(action === 'store' ? { data: new Uint8Array([1]) } : {}) });
    expect(parseKeyRequest(request('store')).newNameProblem).to.contain('invisible character');
    const retrieve = parseKeyRequest(request('retrieve'));
    expect([retrieve.name, retrieve.newNameProblem]).to.deep.equal(['db-key\u200b', undefined]);
  });
});

describe('wire: text that would read as other text, in logs and listings', () => {
  it('escapes every non-ASCII character of a string not in Unicode form C, and only of that string', () => {
    expect(visibleJson('n/cafe\u0301')).to.equal('"n/cafe\\u0301"');
    expect(visibleJson('n/\u1100\u1161')).to.equal('"n/\\u1100\\u1161"'); // conjoining jamo: shows as 가
    expect(visibleJson('n/\u2126')).to.equal('"n/\\u2126"'); // OHM SIGN: shows as Ω
    // Text in form C keeps its letters and marks, beside an escaped one in the same record.
    const line = visibleJson({ resource: 'n/cafe\u0301', other: 'डिस्क', plain: 'café' });
    expect(line).to.equal('{"resource":"n/cafe\\u0301","other":"डिस्क","plain":"café"}');
    expect(JSON.parse(line)).to.deep.equal({ resource: 'n/cafe\u0301', other: 'डिस्क', plain: 'café' });
    expect(printableName('n/\u2126')).to.equal('"n/\\u2126"');
    expect(printableName('डिस्क/key')).to.equal('डिस्क/key');
  });
});

describe('wire: values a peer chose, in errors and logs', () => {
  it('cuts a refused constant to 64 characters and says how long it was', () => {
    let message = '';
    try {
      parseKeyRequest(encode('key_service_message_request', { resourceName: 'a', requestType: 'x'.repeat(1_000_000) }));
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message.length).to.be.below(400);
    expect(message).to.contain('(1000000 characters)');
  });
});

describe('wire: scrypt parameters read from disk', () => {
  const bundle = (r: number, p: number, logN = 10) =>
    encode('cryptstore_bundle', { formatVersion: 1, scrypt: { logN, r, p, salt: new Uint8Array(16) }, ciphertext: new Uint8Array(28) });
  const metadata = (logN: number) => encode('cryptstore_metadata', {
    formatVersion: 1, storeId: new Uint8Array(16), created: '2026-01-01T00:00:00Z',
    protection: { kind: 'passphrase', scrypt: { logN, r: 8, p: 1, salt: new Uint8Array(16) }, wrappedDataKey: new Uint8Array(60) },
  });
  const problem = (bytes: Uint8Array, parse: (b: Uint8Array) => unknown = parseCryptstoreBundle) => {
    try {
      parse(bytes);
      return 'accepted';
    } catch (e) {
      if (!(e instanceof CertifierError)) throw e;
      return `${e.code}: ${e.message}`;
    }
  };

  it('holds r and p each to what this suite writes: r 32 or p 16 alone is BAD_FIELD', () => {
    expect(problem(bundle(8, 1))).to.equal('accepted');
    expect(problem(bundle(32, 1))).to.match(/^BAD_FIELD: .*scrypt\.r is 32/);
    expect(problem(bundle(8, 16))).to.match(/^BAD_FIELD: .*scrypt\.p is 16/);
  });

  it('holds N to 2^10 to 2^22, in a store\'s metadata and in a bundle: 2^9 and 2^23 are BAD_FIELD (README, "Threat model")', () => {
    for (const [what, make, parse] of [['bundle', (n: number) => bundle(8, 1, n), parseCryptstoreBundle], ['metadata', metadata, parseCryptstoreMetadata]] as const) {
      expect([10, 22].map((n) => problem(make(n), parse)), what).to.deep.equal(['accepted', 'accepted']);
      for (const n of [9, 23]) expect(problem(make(n), parse), `${what}, 2^${n}`).to.match(new RegExp(`^BAD_FIELD: .*scrypt\\.log_n is ${n}`));
    }
  });
});

describe('wire: fieldCount, a repeated field counted without decoding it', () => {
  const entries = (n: number) => new Uint8Array(n * 2).map((_, i) => (i % 2 === 0 ? 0x0a : 0)); // field 1, empty
  it('counts a field\'s occurrences at the top of a message, and gives undefined for bytes that are no message', () => {
    expect(fieldCount(entries(7), 1)).to.equal(7);
    expect(fieldCount(entries(7), 2)).to.equal(0);
    expect(fieldCount(new Uint8Array([0x0a, 0x05, 0x00]), 1), 'a length past the end').to.equal(undefined);
  });
  it('given the most a caller takes, stops at the first occurrence past it (most + 1), the rest unread', () => {
    expect(fieldCount(entries(500_000), 1, 4)).to.equal(5);
    // Past the most, even bytes that are no message further on are not read.
    expect(fieldCount(new Uint8Array([...entries(5), 0x0a, 0x05]), 1, 4)).to.equal(5);
    expect(fieldCount(new Uint8Array([...entries(4), 0x12, 0x05]), 1, 4), 'not past it: read to the end').to.equal(undefined);
    expect(fieldCount(entries(4), 1, 4)).to.equal(4);
  });
});

describe('wire: a varint past 64 bits, in a 64-bit field', () => {
  // Ten bytes, the last 0x02: 2^64 + 5, which protobufjs reads as 5 (it drops what is past bit 64).
  const past64 = [0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02];
  const within = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]; // 2^64 - 1: the most it holds
  it('refuses a uint64 of 2^64 + 5 where a message is read strictly (DECODE_FAILED), not as 5: a policy property\'s int_value, a key\'s snp_tcb_version', () => {
    const property = (v: number[]) => Uint8Array.from([0x0a, 1, 0x78, 5 << 3, ...v]); // property_name "x", int_value
    const key = (v: number[]) => Uint8Array.from([0x0a, 1, 0x6b, 11 << 3, ...v]); // key_name "k", snp_tcb_version
    for (const [name, make] of [['property', property], ['key_message', key]] as const) {
      expect(outcome(() => decode(name, make(within), { strict: true }), `${name}, 2^64 - 1`), name).to.equal(undefined);
      const e = outcome(() => decode(name, make(past64), { strict: true }), `${name}, 2^64 + 5`);
      expect(e?.code, name).to.equal('DECODE_FAILED');
      expect(e?.message, name).to.contain('more than a varint\'s 64 bits');
    }
  });
});

describe('wire: a strict read at every depth protobufjs reads', () => {
  // vse_clause holds a vse_clause: a clause `depth` deep ("says" at each level), the innermost
  // holding field 9, which vse_clause does not define. Found by test/fuzz/boundary.test.ts.
  const nested = (depth: number, inner = [0x48, 0x01]) => {
    let b = Uint8Array.from(inner);
    for (let i = 0; i < depth; i++) b = Uint8Array.from([0x12, 4, ...Buffer.from('says'), 0x22, ...varint(b.length), ...b]);
    return b;
  };
  const varint = (n: number) => { const out: number[] = []; for (; n >= 0x80; n >>>= 7) out.push((n & 0x7f) | 0x80); return [...out, n]; };

  it('refuses an unknown field in a clause nested 33, 40 and 100 deep as it does one 32 deep (DECODE_FAILED), not only down to 32 levels', () => {
    for (const depth of [0, 32, 33, 40, 100]) {
      const e = outcome(() => decode('vse_clause', nested(depth), { strict: true }), `${depth} deep`);
      expect(e?.code, `${depth} deep`).to.equal('DECODE_FAILED');
      expect(e?.message, `${depth} deep`).to.contain('field 9 is not part of vse_clause');
    }
  });

  it('reads a clause 100 deep without an unknown field, and refuses one 101 deep as protobufjs does', () => {
    expect(outcome(() => decode('vse_clause', nested(100, []), { strict: true }), '100 deep')).to.equal(undefined);
    expect(outcome(() => decode('vse_clause', nested(101, []), { strict: true }), '101 deep')?.code).to.equal('DECODE_FAILED');
  });
});

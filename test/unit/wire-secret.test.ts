// encodeSecret: the same bytes as encode, written into one buffer of its own that the message
// never outgrows, so no copy of the secret is left behind in a buffer the writer dropped.

import { expect } from 'chai';
import protobuf from 'protobufjs';
import { decode, encode, encodeSecret, type MessageName } from '../../lib/wire/index.ts';

const entry = (tag: string, blob: Uint8Array) => ({ tag, type: 'binary-blob', version: 7, timeEntered: Buffer.from('2026-12-06T00:00:00.000Z'), blob, exportable: true });

const cases: [string, MessageName, object][] = [
  ['a 32-byte key', 'cryptstore_entry', entry('disk-key', new Uint8Array(32).fill(1))],
  ['a 1 MiB value', 'cryptstore_entry', entry('big', new Uint8Array(1024 * 1024).fill(2))],
  ['a tag of 3-byte characters, long enough for its length to take two bytes', 'cryptstore_entry', entry('\u20ac'.repeat(200), new Uint8Array(3))],
  ['an empty tag and value', 'cryptstore_entry', entry('', new Uint8Array(0))],
  ['a cryptstore of 300 entries', 'cryptstore', { entries: Array.from({ length: 300 }, (_, i) => entry(`k${i}`, new Uint8Array(100 + i).fill(i))) }],
];

describe('wire: encodeSecret', () => {
  for (const [what, name, value] of cases) {
    it(`writes ${what} as encode does, into the only buffer the writer uses`, () => {
      const alloc = (protobuf as unknown as { BufferWriter: { alloc: (n: number) => Uint8Array } }).BufferWriter;
      const original = alloc.alloc;
      const sizes: number[] = [];
      alloc.alloc = (n: number) => (sizes.push(n), original(n));
      let secret: Uint8Array;
      try {
        secret = encodeSecret(name, value);
      } finally {
        alloc.alloc = original;
      }
      // The writer's first buffer, replaced before anything is written; none after it.
      expect(sizes, 'buffers the writer made').to.have.length(1);
      expect(Buffer.from(secret).equals(Buffer.from(encode(name, value)))).to.equal(true);
      expect(decode(name, secret)).to.deep.equal(decode(name, encode(name, value)));
    });
  }
});

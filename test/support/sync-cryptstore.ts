// Run under strace by test/cryptstore/sync.test.ts: a cryptstore created at STORE (its parent
// missing too), each write followed by a mark (test/support/strace.ts) once acknowledged.
import { randomBytes } from 'node:crypto';
import { Cryptstore } from '../../cryptstore/store.ts';
import { KeyFileProtector } from '../../cryptstore/protection.ts';
import { mark } from './strace.ts';

const store = process.argv[2]!;
const bytes = (s: string) => new TextEncoder().encode(s);

const s = await Cryptstore.create(store, new KeyFileProtector(randomBytes(32)));
mark('created');
await s.put('a', bytes('one'));
mark('put');
await s.putAll([{ tag: 'b', blob: bytes('two') }, { tag: 'c', blob: bytes('three') }]);
mark('putAll');
await s.delete('a');
mark('deleted');
await s.importEntries([{ tag: 'd', type: 'binary-blob', version: 3, timeEntered: new Date().toISOString(), blob: bytes('four'), exportable: true }]);
mark('imported');
await s.rekey(new KeyFileProtector(randomBytes(32)));
mark('rekeyed');
await s.close();

// boundMessages without a database: a stand-in that speaks just enough of PostgreSQL's protocol
// (startup, trust, one answer per query) to the pg driver, over plain TCP and over TLS (the
// connection the driver upgrades after its SSLRequest, where the bound must read the protocol
// under TLS, not the raw socket's records), its answers written a few bytes at a time.

import { expect } from 'chai';
import net from 'node:net';
import tls from 'node:tls';
import type { Client } from 'pg';
import { CertifierError } from '../../lib/errors/index.ts';
import { boundedClient } from '../../lib/keyservice/pg-backend.ts';
import { expectRows } from '../../lib/keyservice/pg-sockets.ts';
import { makeCa } from '../channel/certs.ts';
import { pgMessage as message } from '../postgres/pg-proxy.ts';

const READY = message('Z', Buffer.from('I'));
/** One text column named x. */
const FIELDS = (() => {
  const b = Buffer.alloc(2 + 2 + 18);
  b.writeInt16BE(1, 0);
  b.write('x\0', 2, 'latin1');
  b.writeInt32BE(0, 4); // table
  b.writeInt16BE(0, 8); // column
  b.writeInt32BE(25, 10); // text
  b.writeInt16BE(-1, 14);
  b.writeInt32BE(-1, 16);
  b.writeInt16BE(0, 20);
  return message('T', b);
})();
const row = (value: string) => {
  const b = Buffer.alloc(2 + 4 + value.length);
  b.writeInt16BE(1, 0);
  b.writeInt32BE(value.length, 2);
  b.write(value, 6, 'latin1');
  return message('D', b);
};

/** Writes `bytes` a few at a time, each piece in a later turn, so that headers are split across reads. */
async function dribble(socket: net.Socket, bytes: Buffer): Promise<void> {
  for (let i = 0; i < bytes.length; i += 3) {
    if (socket.destroyed) return;
    socket.write(bytes.subarray(i, i + 3));
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** An answer of `rows` rows, then `results` CommandCompletes (one for an answer of one statement). */
const answerOf = (rows: number, results = 1): Buffer => Buffer.concat([
  FIELDS, ...Array.from({ length: rows }, (_, i) => row(`r${i}`)), ...Array<Buffer>(results).fill(message('C', Buffer.from(`SELECT ${rows}\0`))), READY,
]);

/** An answer of one row with `extra` (messages of the database's) before its end. */
const answerWith = (extra: Buffer[]): Buffer => Buffer.concat([FIELDS, row('r0'), ...extra, message('C', Buffer.from('SELECT 1\0')), READY]);

/**
 * A stand-in database on 127.0.0.1 answering each query with `answer`: 'S' to an SSLRequest
 * when `tlsOptions` are given (the rest then under TLS), trust for any user.
 */
async function fakeDb(answer: Buffer, tlsOptions?: { key: string; cert: string }): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const speak = (socket: net.Socket, first: Buffer) => {
    let buffered = first;
    let started = false;
    const take = () => {
      for (;;) {
        const typed = started ? 1 : 0;
        if (buffered.length < typed + 4) return;
        const end = typed + buffered.readUInt32BE(typed);
        if (buffered.length < end) return;
        const type = typed ? String.fromCharCode(buffered[0]!) : '';
        buffered = buffered.subarray(end);
        if (!started) {
          started = true;
          socket.write(Buffer.concat([message('R', Buffer.alloc(4)), READY]));
        } else if (type === 'Q') {
          void dribble(socket, answer);
        } else if (type === 'X') socket.end();
      }
    };
    take();
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      take();
    });
  };
  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.on('error', () => {});
    raw.once('close', () => sockets.delete(raw));
    raw.once('data', (first: Buffer) => {
      // SSLRequest: length 8, code 80877103.
      if (first.length >= 8 && first.readUInt32BE(4) === 80877103) {
        if (!tlsOptions) return void raw.write('N');
        raw.write('S');
        const secure = new tls.TLSSocket(raw, { isServer: true, ...tlsOptions });
        secure.on('error', () => {});
        speak(secure, Buffer.alloc(0));
        return;
      }
      speak(raw, first);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('boundMessages: the most rows of an answer (a stand-in database)', function () {
  this.timeout(20_000);
  let leaf: { key: string; cert: string };
  before(async () => {
    leaf = await (await makeCa('pg-sockets-test')).issue('localhost');
  });

  for (const secure of [false, true]) {
    describe(secure ? 'under TLS' : 'over plain TCP', () => {
      const ask = async (sent: number | Buffer, asked: number, results = 1): Promise<string[] | CertifierError> => {
        const db = await fakeDb(typeof sent === 'number' ? answerOf(sent, results) : sent, secure ? leaf : undefined);
        const client: Client = new (await boundedClient())({
          host: '127.0.0.1', port: db.port, user: 'u', database: 'd', ...(secure ? { ssl: { rejectUnauthorized: false } } : {}),
        });
        client.on('error', () => {});
        try {
          await client.connect();
          expectRows(client, asked);
          // An answer of several results is an array of them.
          const taken = (r: unknown) => (Array.isArray(r) ? [`${r.length} results`] : (r as { rows: { x: string }[] }).rows.map((x) => x.x));
          const answer = await client.query('SELECT x').then(taken, (e: unknown) => e as CertifierError);
          // The next query is back to one row.
          if (!(answer instanceof Error) && typeof sent === 'number' && sent > 1) {
            const next = await client.query('SELECT x').then(() => 'answered', (e: CertifierError) => e.code);
            expect(next, 'a query after it, asked with no bound').to.equal('INTEGRITY');
          }
          return answer;
        } finally {
          await client.end().catch(() => {});
          await db.close();
        }
      };

      it('takes an answer of as many rows as the query asks for, its headers read across reads', async () => {
        expect(await ask(3, 3)).to.deep.equal(['r0', 'r1', 'r2']);
        expect(await ask(1, 1)).to.deep.equal(['r0']);
      });

      it('cuts the connection at the row past the most, INTEGRITY, before the driver takes the answer', async () => {
        const e = await ask(3, 2);
        expect(e).to.be.instanceOf(CertifierError);
        expect((e as CertifierError).code).to.equal('INTEGRITY');
        expect((e as CertifierError).message).to.contain('more rows than the 2 key-server asks for');
      });

      it('cuts the connection at a result past the statements the query sends (the driver keeps an object for each), INTEGRITY', async () => {
        // Each CommandComplete after the first makes the driver start, and keep, another result:
        // as many as a database sends, however few rows they hold.
        const e = await ask(1, 1, 50);
        expect(e).to.be.instanceOf(CertifierError);
        expect((e as CertifierError).code).to.equal('INTEGRITY');
        expect((e as CertifierError).message).to.contain('more results than the 1 statement key-server sends');
      });

      it('cuts the connection at a message the driver cannot read (a DataRow announcing more fields than it holds), INTEGRITY, where the driver\'s parser threw in the socket\'s data handler and ended the process', async () => {
        const fields = Buffer.alloc(2);
        fields.writeInt16BE(0x7fff);
        const e = await ask(Buffer.concat([FIELDS, message('D', fields)]), 1);
        expect(e).to.be.instanceOf(CertifierError);
        expect((e as CertifierError).code).to.equal('INTEGRITY');
        expect((e as CertifierError).message).to.contain('a message the driver cannot read');
      });

      it('cuts the connection at a message no query of key-server\'s is answered with, each of which the driver answers (PortalSuspended: another Execute; CopyInResponse: a CopyFail), INTEGRITY', async () => {
        // A database sending them without reading its side would have the driver's writes pile up in the replica.
        for (const [type, body] of [['s', Buffer.alloc(0)], ['G', Buffer.from([0, 0, 0])]] as const) {
          expect(await ask(answerWith([]), 1), 'the same answer without it').to.deep.equal(['r0']);
          const e = await ask(answerWith([message(type, body)]), 1);
          expect(e, type).to.be.instanceOf(CertifierError);
          expect((e as CertifierError).code).to.equal('INTEGRITY');
          expect((e as CertifierError).message).to.contain(`a message of type '${type}'`);
        }
      });
    });
  }
});

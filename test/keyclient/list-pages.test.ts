// key-client list: a listing longer than one answer comes in pages, put together in order; a
// server whose pages do not move on is an error, not a client asking forever.

import { expect } from 'chai';
import { collectPages, forEachPage } from '../../lib/keyclient/index.ts';
import { LIST_PAGE } from '../../lib/keyservice/protocol.ts';
import type { KeyServiceList } from '../../lib/wire/index.ts';
import { rejects } from '../support/rejects.ts';

const info = (name: string) => ({ resourceName: name, version: 1, valueType: 'binary-blob', timeEntered: '2026-12-05T00:00:00Z', exportable: true, size: 32 });

describe('keyclient: list pages', () => {
  it('asks for the names after each next_after until an answer has none', async () => {
    const pages = new Map<string | undefined, KeyServiceList>([
      [undefined, { resources: [info('a'), info('b')], nextAfter: 'b' }],
      ['b', { resources: [info('b2')], nextAfter: 'c' }], // c: a name of the server's own, left out
      ['c', { resources: [info('\u{1d4b3}')] }],
    ]);
    const asked: (string | undefined)[] = [];
    const all = await collectPages('', async (after) => (asked.push(after), pages.get(after)!));
    expect(asked).to.deep.equal([undefined, 'b', 'c']);
    expect(all.map((i) => i.name)).to.deep.equal(['a', 'b', 'b2', '\u{1d4b3}']);
    expect(all[0]).to.deep.equal({ name: 'a', version: 1, type: 'binary-blob', timeEntered: '2026-12-05T00:00:00Z', exportable: true, size: 32 });
  });

  it('fails with DECODE_FAILED when a page does not start after the one before', async () => {
    let calls = 0;
    const e = await rejects(collectPages('p/', async () => (calls++, { resources: [info('p/a')], nextAfter: 'p/a' })), 'DECODE_FAILED');
    expect(calls).to.equal(2);
    expect(e.message).to.contain('"p/a"');
    // Code point order, not UTF-16's: U+FF5A comes before U+1D4B3, so this one goes back.
    const back = [{ resources: [info('\u{1d4b3}')], nextAfter: '\u{1d4b3}' }, { resources: [info('\uff5a')] }];
    await rejects(collectPages('', async () => back.shift()!), 'DECODE_FAILED');
  });

  it('forEachPage gives each page\'s names as it arrives, before asking for the next, and none of a page that goes back', async () => {
    const seen: string[][] = [];
    const pages: KeyServiceList[] = [{ resources: [info('a'), info('b')], nextAfter: 'b' }, { resources: [info('c')], nextAfter: 'c' }, { resources: [info('x')], nextAfter: 'a' }];
    const asked: number[] = [];
    const e = await rejects(forEachPage('', (items) => void seen.push(items.map((i) => i.name)), async () => (asked.push(seen.length), pages.shift()!)), 'DECODE_FAILED');
    expect(e.message).to.contain('went back to "a" after "c"');
    expect(asked, 'how many pages were given when each was asked for').to.deep.equal([0, 1, 2]);
    expect(seen).to.deep.equal([['a', 'b'], ['c']]);
    const counted = await forEachPage('', () => {}, async (after) => (after ? { resources: [info('z')] } : { resources: [info('y')], nextAfter: 'y' }));
    expect(counted).to.equal(2);
  });

  it('forEachPage asks for the next page only once each has resolved, and for none once it resolves to false (stdout closed)', async () => {
    const events: string[] = [];
    const pages = (after: string | undefined): KeyServiceList => ({ resources: [info(`${after ?? ''}n`)], nextAfter: `${after ?? ''}n` });
    const given = await forEachPage('', async (items) => {
      events.push(`given ${items[0]!.name}`);
      await new Promise((r) => setTimeout(r, 5));
      events.push('written');
      return items[0]!.name !== 'nn';
    }, async (after) => (events.push(`asked after ${after}`), pages(after)));
    expect(given).to.equal(2);
    expect(events).to.deep.equal(['asked after undefined', 'given n', 'written', 'asked after n', 'given nn', 'written']);
  });

  it('refuses a page that would keep it asking: empty with more to come, or of more names than a server sends (DECODE_FAILED)', async () => {
    let calls = 0;
    const empty = await rejects(collectPages('', async () => (calls++, { resources: [], nextAfter: `p${calls}` })), 'DECODE_FAILED');
    expect(calls).to.equal(1);
    expect(empty.message).to.contain('without names that says more are to come');
    const many = Array.from({ length: LIST_PAGE + 1 }, (_, i) => info(`k${String(i).padStart(5, '0')}`));
    expect((await rejects(collectPages('', async () => ({ resources: many })), 'DECODE_FAILED')).message).to.contain(`sent more than ${LIST_PAGE} names in one answer, the most a key-server sends`);
    expect(await collectPages('', async () => ({ resources: many.slice(1) }))).to.have.length(LIST_PAGE);
    // Names out of order, and a next_after before the page's last name or outside the prefix.
    for (const page of [{ resources: [info('p/b'), info('p/a')] }, { resources: [info('p/a'), info('p/a')] }, { resources: [info('p/b')], nextAfter: 'p/a' }, { resources: [info('p/b')], nextAfter: 'q' }]) {
      await rejects(collectPages('p', async () => page), 'DECODE_FAILED');
    }
  });

  it('refuses a name outside the prefix asked for (INTEGRITY)', async () => {
    const e = await rejects(collectPages('p/', async () => ({ resources: [info('p/a'), info('zz-outside')] })), 'INTEGRITY');
    expect(e.message).to.contain('the key-server\'s listing of "p/" named "zz-outside", which is not under it');
  });

  it('refuses a name or metadata no key-server holds (BAD_FIELD, MISSING_FIELD), escaping what it quotes', async () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ version: -3 }, 'version is -3, expected 1 to 2147483647'],
      [{ version: 0 }, 'version is 0'],
      [{ size: -1 }, 'size is -1'],
      [{ size: 2 ** 20 }, 'size is 1048576'],
      [{ valueType: 'bin\u001b[2J' }, 'value_type "bin\\u001b[2J" is not one of'],
      [{ timeEntered: 'T\u001b[31mRED\r\nfake line' }, 'time_entered "T\\u001b[31mRED\\r\\nfake line" is not an RFC 3339 time'],
      [{ timeEntered: '2026-02-30T00:00:00Z' }, 'is not an RFC 3339 time'],
      [{ resourceName: 'a\u001b[31m' }, 'resource_name contains a control character'],
    ];
    for (const [fields, says] of bad) {
      const e = await rejects(collectPages('', async () => ({ resources: [{ ...info('a'), ...fields }] })), 'BAD_FIELD');
      expect(e.message, JSON.stringify(fields)).to.contain(says).and.not.match(/[\u0000-\u001f]/);
    }
    await rejects(collectPages('', async () => ({ resources: [{ ...info('a'), timeEntered: undefined }] })), 'MISSING_FIELD');
    const fine = await collectPages('', async () => ({ resources: [{ ...info('a'), timeEntered: '2026-12-05T09:10:19.5+01:00', size: 0 }] }));
    expect(fine[0]).to.include({ timeEntered: '2026-12-05T09:10:19.5+01:00', size: 0 });
  });
});

// key-client list: a listing longer than one answer comes in pages, put together in order; a
// server whose pages do not move on is an error, not a client asking forever.

import { expect } from 'chai';
import { collectPages, forEachPage } from '../../lib/keyclient/index.ts';
import type { KeyServiceList } from '../../lib/wire/index.ts';
import { rejects } from '../support/rejects.ts';

const info = (name: string) => ({ resourceName: name, version: 1, valueType: 'binary-blob', timeEntered: '2026-12-05T00:00:00Z', exportable: true, size: 32 });

describe('keyclient: list pages', () => {
  it('asks for the names after each next_after until an answer has none', async () => {
    const pages = new Map<string | undefined, KeyServiceList>([
      [undefined, { resources: [info('a'), info('b')], nextAfter: 'b' }],
      ['b', { resources: [], nextAfter: 'c' }], // a page of the server's own names, filtered out
      ['c', { resources: [info('\u{1d4b3}')] }],
    ]);
    const asked: (string | undefined)[] = [];
    const all = await collectPages('', async (after) => (asked.push(after), pages.get(after)!));
    expect(asked).to.deep.equal([undefined, 'b', 'c']);
    expect(all.map((i) => i.name)).to.deep.equal(['a', 'b', '\u{1d4b3}']);
    expect(all[0]).to.deep.equal({ name: 'a', version: 1, type: 'binary-blob', timeEntered: '2026-12-05T00:00:00Z', exportable: true, size: 32 });
  });

  it('fails with DECODE_FAILED when a page does not start after the one before', async () => {
    let calls = 0;
    const e = await rejects(collectPages('p/', async () => (calls++, { resources: [info('p/a')], nextAfter: 'p/a' })), 'DECODE_FAILED');
    expect(calls).to.equal(2);
    expect(e.message).to.contain('"p/a"');
    // Code point order, not UTF-16's: U+FF5A comes before U+1D4B3, so this one goes back.
    const back = [{ nextAfter: '\u{1d4b3}' }, { nextAfter: '\uff5a' }];
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
});

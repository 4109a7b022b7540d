// A server's text log line: a value is quoted when it could blur the line or, holding control or
// bidirectional-format characters a client chose, rewrite how it looks on a terminal.

import { expect } from 'chai';
import { logLine, renderLogLine } from '../../cmd/common/server.ts';

function rendered(record: object, json = false): string {
  const write = process.stderr.write;
  let out = '';
  process.stderr.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stderr.write;
  try {
    logLine('key-server', json)(record);
  } finally {
    process.stderr.write = write;
  }
  return out;
}

describe('server log lines (text)', () => {
  it('leaves plain values bare and quotes spaces, quotes and "="', () => {
    const line = rendered({ event: 'request', resource: 'vhd/disk-1', detail: 'no key named "x"', n: 3 });
    expect(line).to.match(/^key-server: \S+ request resource=vhd\/disk-1 detail="no key named \\"x\\"" n=3\n$/);
  });

  it('writes C0, C1 and bidirectional-format characters as escapes, never raw', () => {
    const line = rendered({ event: 'request', resource: 'a/\u0085fake', b: 'a/\u202eevil', c: 'a/\u009b31mred', d: 'a/\u001b[31m' });
    expect(line).to.contain('resource="a/\\u0085fake"').and.contain('b="a/\\u202eevil"').and.contain('c="a/\\u009b31mred"').and.contain('d="a/\\u001b[31m"');
    expect(line).not.to.match(/[\u0080-\u009f\u202a-\u202e\u001b]/);
  });

  it('escapes line and paragraph separators too, and the same characters in JSON lines', () => {
    expect(rendered({ event: 'request', resource: 'x\u2028FAKE' })).to.contain('resource="x\\u2028FAKE"');
    // What displays as nothing, in any category: a Hangul filler, a variation selector, a grapheme joiner.
    expect(rendered({ event: 'request', resource: 'vhd/disk-1\u3164', b: 'a\ufe0f', c: 'a\u034f' })).to.contain('resource="vhd/disk-1\\u3164" b="a\\ufe0f" c="a\\u034f"');
    expect(rendered({ event: 'request', resource: 'vhd/disk-1\u3164' }, true)).to.contain('vhd/disk-1\\u3164');
    // Spaces other than the ASCII one show as it: "vhd/disk 1" with a no-break, em or ideographic space is another name.
    expect(rendered({ event: 'request', resource: 'vhd/disk\u00a01', b: 'a\u2003b', c: 'a\u3000b', d: 'a b' })).to.contain('resource="vhd/disk\\u00a01" b="a\\u2003b" c="a\\u3000b" d="a b"');
    expect(rendered({ event: 'request', resource: 'vhd/disk\u00a01' }, true)).to.contain('"resource":"vhd/disk\\u00a01"');
    const json = rendered({ event: 'request', resource: 'a/\u202eevil\u2029\u0085' }, true);
    expect(json).not.to.match(/[\u0080-\u009f\u2028\u2029\u202a-\u202e]/);
    expect(JSON.parse(json).resource).to.equal('a/\u202eevil\u2029\u0085');
  });

  // Each record and its line (after "key-server: TIME "), or the whole line where the record names its time.
  const LINES: [object, string][] = [
    [{ event: 'closed' }, 'closed \n'],
    [{ event: 'request', conn: 'c1', version: 0, role: undefined, ok: true, ms: 12 }, 'request conn=c1 version=0 ok=true ms=12\n'],
    [{ event: 'request', resource: '', code: 'NOT_FOUND', remote: '127.0.0.1:4711', peerSerial: '0a1b' }, 'request resource= code=NOT_FOUND remote=127.0.0.1:4711 peerSerial=0a1b\n'],
    [{ event: 'request', a: 'has space', b: 'x=y', c: 'q"', d: 'tab\tin', e: { k: 1 }, f: null }, 'request a="has space" b="x=y" c="q\\"" d="tab\\tin" e={"k":1} f=null\n'],
    [{ event: 'request', composed: 'caf\u00e9', decomposed: 'cafe\u0301', symbol: '\u2126' }, 'request composed=caf\u00e9 decomposed="cafe\\u0301" symbol="\\u2126"\n'],
    [{ event: 'started', time: 'T0', port: 1 }, 'key-server: T0 started port=1\n'],
  ];

  it('renders each catalogued record as its line, the time first', () => {
    const render = renderLogLine('key-server', false);
    for (const [record, expected] of LINES) {
      const line = render(record);
      if (expected.startsWith('key-server: ')) expect(line).to.equal(expected);
      else expect(line.replace(/^key-server: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /, '')).to.equal(expected);
    }
  });

  it('stamps lines with the time they are made, to the millisecond', async () => {
    const render = renderLogLine('key-server', false);
    const before = Date.now();
    const first = Date.parse(render({ event: 'a' }).split(' ')[1]!);
    await new Promise((r) => setTimeout(r, 5));
    const second = Date.parse(render({ event: 'b' }).split(' ')[1]!);
    expect(first).to.be.at.least(before).and.at.most(Date.now());
    expect(second - first).to.be.at.least(4);
  });
});

// The auth-challenge nonces: good once, on their connection, for their credential, in time; and
// holding nothing of the request they came in (a credential is a view into a frame of up to 1 MiB).

import { expect } from 'chai';
import { ChallengeBook } from '../../lib/keyservice/challenges.ts';
import { CHALLENGES_PER_CONNECTION } from '../../lib/keyservice/protocol.ts';

describe('key service: challenge nonces', () => {
  const cred = () => new Uint8Array(Buffer.from('a role certificate'));

  it('redeems a nonce once, only on its connection, for its credential, within a minute', () => {
    const book = new ChallengeBook();
    const now = 1_000_000;
    const n = book.issue('c1', cred(), now);
    expect(book.redeem(n, 'c2', cred(), now)).to.equal(false);
    expect(book.redeem(n, 'c1', cred(), now), 'spent by the try on another connection').to.equal(false);
    const m = book.issue('c1', cred(), now);
    expect(book.redeem(m, 'c1', new Uint8Array(Buffer.from('another credential')), now)).to.equal(false);
    expect(book.redeem(m, 'c1', cred(), now), 'spent by the try with another credential').to.equal(false);
    const o = book.issue('c1', cred(), now);
    expect(book.redeem(o, 'c1', cred(), now + 60_001)).to.equal(false);
    const p = book.issue('c1', cred(), now);
    expect(book.redeem(p, 'c1', cred(), now + 60_000), 'at the end of its minute').to.equal(true);
    expect(book.redeem(p, 'c1', cred(), now + 1_000)).to.equal(false);
  });

  it('keeps at most 16 nonces for one connection, dropping its oldest for a 17th', () => {
    const book = new ChallengeBook();
    const nonces = Array.from({ length: CHALLENGES_PER_CONNECTION + 1 }, () => book.issue('c1', cred()));
    const other = book.issue('c2', cred());
    expect(nonces.map((n) => book.redeem(n, 'c1', cred()))).to.deep.equal([false, ...Array(CHALLENGES_PER_CONNECTION).fill(true)]);
    expect(book.redeem(other, 'c2', cred()), 'another connection\'s nonce was dropped').to.equal(true);
  });

  it('keeps at most its limit of nonces on all connections together, dropping the oldest', () => {
    const book = new ChallengeBook({ maxOutstanding: 3 });
    const issued = ['c1', 'c2', 'c3', 'c4'].map((c) => [c, book.issue(c, cred())] as const);
    expect(issued.map(([c, n]) => book.redeem(n, c, cred()))).to.deep.equal([false, true, true, true]);
  });

  it('keeps a connection at 16 nonces when its cap and the limit on all are reached at once', () => {
    const book = new ChallengeBook({ maxOutstanding: CHALLENGES_PER_CONNECTION + 1 });
    const older = book.issue('c0', cred());
    const mine = Array.from({ length: CHALLENGES_PER_CONNECTION + 1 }, () => book.issue('c1', cred()));
    expect(mine.map((n) => book.redeem(n, 'c1', cred()))).to.deep.equal([false, ...Array(CHALLENGES_PER_CONNECTION).fill(true)]);
    expect(book.redeem(older, 'c0', cred()), 'dropping the connection\'s oldest made room: another\'s stays').to.equal(true);
  });

  it('issues and redeems a nonce with 10,000 outstanding without walking them (each challenge cost a full book\'s walk, twice)', () => {
    // Connections come and go (their nonces stay their minute), so a member holding a credential
    // fills the book by cycling connections; every issue then walked all 10,000 nonces twice
    // (half a millisecond of the server's only thread per challenge, on a real key-server).
    const book = new ChallengeBook();
    const now = 1_000_000;
    for (let i = 0; i < 10_000; i++) book.issue(`c${i >> 4}`, cred(), now + i / 100);
    const iterator = Object.getPrototypeOf(new Map().entries()) as { next: (...a: unknown[]) => unknown };
    const next = iterator.next;
    let steps = 0;
    iterator.next = function (this: unknown, ...a: unknown[]) {
      steps++;
      return next.apply(this, a);
    };
    let n: Uint8Array;
    try {
      n = book.issue('late', cred(), now + 100);
      expect(book.redeem(n, 'late', cred(), now + 100)).to.equal(true);
      n = book.issue(`c${10_000 >> 4}`, cred(), now + 101);
    } finally {
      iterator.next = next;
    }
    expect(steps, 'map entries looked at').to.be.below(20);
    expect(book.redeem(n, `c${10_000 >> 4}`, cred(), now + 101)).to.equal(true);
  });

  it('drops nonces past their minute as it issues new ones, oldest first', () => {
    const book = new ChallengeBook({ maxOutstanding: 4 });
    const now = 1_000_000;
    const old = book.issue('c1', cred(), now);
    const young = [1, 2, 3].map((i) => book.issue(`c${i + 1}`, cred(), now + 30_000 + i));
    // The first is past its minute: it goes, and no young one is dropped to make room.
    const late = book.issue('c9', cred(), now + 60_001);
    expect(book.redeem(old, 'c1', cred(), now + 60_001)).to.equal(false);
    expect(young.map((n, i) => book.redeem(n, `c${i + 2}`, cred(), now + 60_001))).to.deep.equal([true, true, true]);
    expect(book.redeem(late, 'c9', cred(), now + 60_001)).to.equal(true);
  });

  it('drops a closed connection\'s nonces, so connections cycled by one client push out no other client\'s', () => {
    const book = new ChallengeBook({ maxOutstanding: CHALLENGES_PER_CONNECTION + 1 });
    const waiting = book.issue('slow', cred());
    for (let c = 0; c < 5; c++) {
      for (let i = 0; i < CHALLENGES_PER_CONNECTION; i++) book.issue(`cycled${c}`, cred());
      book.dropConnection(`cycled${c}`);
    }
    expect(book.outstanding).to.equal(1);
    const gone = book.issue('c1', cred());
    book.dropConnection('c1');
    book.dropConnection('never-seen');
    expect(book.redeem(gone, 'c1', cred())).to.equal(false);
    expect(book.redeem(waiting, 'slow', cred()), 'the slow client\'s nonce was pushed out').to.equal(true);
    expect(book.outstanding).to.equal(0);
  });

  it('keeps no reference to the bytes the credential came in', () => {
    const book = new ChallengeBook();
    const frame = new Uint8Array(64 * 1024);
    const credential = frame.subarray(100, 100 + 18);
    credential.set(Buffer.from('a role certificate'));
    const n = book.issue('c1', credential);
    frame.fill(0); // the frame's buffer reused for the next request
    expect(book.redeem(n, 'c1', cred())).to.equal(true);
  });

  it('measures a nonce\'s minute by the monotonic clock: the wall clock stepped does not end it early or make it last', () => {
    const book = new ChallengeBook();
    const realNow = Date.now;
    const n = book.issue('c1', cred());
    try {
      Date.now = () => realNow() + 2 * 60_000; // the wall clock stepped two minutes forward
      expect(book.redeem(n, 'c1', cred())).to.equal(true);
    } finally {
      Date.now = realNow;
    }
  });
});

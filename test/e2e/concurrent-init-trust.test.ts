// Several cert-utility init-trust runs at once on one new store path, some of a measurement the
// policy trusts and some refused (each refused run removes the store it made): every run either
// loses to another (STORE_LOCKED) or ends as it would alone, and the store that stays holds the
// certificate the last run reporting "certified" printed, or there is none when no run did.

import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { dirState } from '../../cryptstore/db.ts';
import { run, type RunResult } from '../support/helpers.ts';
import { Domain } from './domain.ts';

const RUNS = 6;
const ROUNDS = 8;

describe('e2e: concurrent init-trust runs on one new store', function () {
  this.timeout(180_000);
  let d: Domain;
  let untrusted: string;

  before(async () => {
    d = await Domain.create({ programs: ['app'] });
    untrusted = join(d.dir, 'untrusted.measurement');
    writeFileSync(untrusted, randomBytes(32));
  });
  after(async () => d?.close());

  const initTrust = (store: string, measurementFile: string) =>
    run('cert-utility', ['init-trust', '--domain', d.name, '--policy-cert', d.policyCertFile, '--server', `127.0.0.1:${d.certifierPort}`,
      '--store', store, '--key-file', d.keyFile, '--platform', 'simulated', '--platform-dir', d.platformDir, '--measurement-file', measurementFile], { cwd: d.dir });

  it('the losers get STORE_LOCKED, the others end as if alone, and the store kept holds the certificate reported', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const store = d.path('store');
      const results: RunResult[] = await Promise.all(Array.from({ length: RUNS }, (_, i) => initTrust(store, i % 2 ? untrusted : d.measurementFile('app'))));
      const certified: string[] = [];
      results.forEach((r, i) => {
        const why = `run ${i} of round ${round}:\n${r.stderr}${r.out}`;
        expect(r.stderr, why).not.to.match(/\n\s+at /);
        if (r.status === 0) {
          const serial = /^certified: serial ([0-9a-f]+),/.exec(r.out)?.[1];
          if (serial) certified.push(serial);
          else expect(r.out, why).to.match(/^already certified /);
          return;
        }
        expect(r.status, why).to.equal(1);
        expect(r.stderr, why).to.match(i % 2 ? /\[(STORE_LOCKED|MEASUREMENT_NOT_TRUSTED)\]\n/ : /\[STORE_LOCKED\]\n/);
      });
      // One run of the trusted measurement at most certifies a new store: the others find it certified.
      expect(certified.length, `round ${round}`).to.be.at.most(1);
      if (certified.length === 0) {
        // No store; at most an empty directory, or LevelDB's lock and log as from a creation cut
        // short (a run that looked as the store went), where the next run makes its own.
        expect(await dirState(store), `round ${round}: a store no run certified was left`).to.be.oneOf(['missing', 'empty', 'unmade']);
        continue;
      }
      const identity = await d.identity({ name: 'm', program: 'app', store, storeArgs: [] });
      expect(identity.peer.serialHex, `round ${round}`).to.equal(certified[0]);
    }
  });
});

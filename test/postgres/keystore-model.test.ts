// The model-based random test of KeyStore (test/keyservice/keystore-model.ts) over PgBackend on a
// throwaway PostgreSQL server, as two replicas whose KeyStore caches are small, with restarts: one
// database per seed.

import { randomBytes } from '../../lib/crypto/index.ts';
import { KeyStore } from '../../lib/keyservice/keystore.ts';
import { PgBackend } from '../../lib/keyservice/pg-backend.ts';
import { describeKeyStoreModel, reopenable } from '../keyservice/keystore-model.ts';
import { findPgBin, PG_MISSING, PgServer } from './pg-server.ts';

const bin = findPgBin();
describe('KeyStore over PgBackend against a model', function () {
  if (!bin) {
    it(PG_MISSING, function () {
      this.skip();
    });
    return;
  }
  let server: PgServer;
  let n = 0;
  before(async () => {
    server = await PgServer.start(bin);
  });
  after(async () => server?.stop());

  describeKeyStoreModel('PgBackend', async (tuning) => {
    const url = await server.createDatabase(`model_${++n}`);
    const key = randomBytes(32);
    const open = async () => new KeyStore(await PgBackend.open({ url, poolSize: 8 }), key, tuning);
    // Two replicas on the one database, each with its own pool and KeyStore cache.
    const fx = await reopenable(open, true);
    return Object.assign(fx, { cleanup: () => fx.close() });
  });
});

// The PostgreSQL URL as key-server logs it: what it names, never a secret it carries; and one
// whose query parameters would send it elsewhere than it says, refused before connecting.

import { expect } from 'chai';
import { pgUrlOf, redactUrl } from '../../cmd/key-server/postgres.ts';
import { run } from '../support/helpers.ts';

describe('key-server: the PostgreSQL URL in its log lines', () => {
  it('masks the password, and every parameter whose name says pass, and keeps the rest', () => {
    const shown = redactUrl('postgres://keys:s3cret-pw@db.internal:5433/keys?sslmode=verify-full&sslpassword=k3y-pw&PassFile=%2Fetc%2Fpgpass');
    expect(shown).to.not.contain('s3cret-pw').and.not.contain('k3y-pw').and.not.contain('pgpass');
    expect(shown).to.equal('postgres://keys:***@db.internal:5433/keys?sslmode=verify-full&sslpassword=***&PassFile=***');
  });

  it('leaves a URL without a password as it is, and names one it cannot parse without quoting it', () => {
    expect(redactUrl('postgres://keys@127.0.0.1/keys')).to.equal('postgres://keys@127.0.0.1/keys');
    expect(redactUrl('postgres://keys:pw@[bad')).to.equal('(unparsable URL)');
  });
});

describe('key-server: a PostgreSQL URL whose query parameters override its user:password@host:port', function () {
  this.timeout(30_000);
  const urlOf = (pgUrl: string) => pgUrlOf('key-server', { data: 'data', pgUrl, replicaId: 'r1' });

  it('is refused (USAGE) naming the parameter, before connecting, and never quoting the password', async () => {
    for (const query of ['host=203.0.113.9', 'port=6543', 'user=postgres', 'password=pw-0ther', 'sslmode=verify-full&host=%2Ftmp']) {
      const e = await urlOf(`postgres://keys@127.0.0.1:1/keys?${query}`).then(() => undefined, (x: unknown) => x as { code: string; message: string });
      const name = /(host|port|user|password)=/.exec(query)![1]!;
      expect(e?.code, query).to.equal('USAGE');
      expect(e!.message).to.contain(`has the query parameter ${name}, which the driver takes over the URL's own user:password@host:port`).and.not.contain('pw-0ther');
    }
    // The other parameters stay, and a Unix socket is still reached through the URL's own host.
    expect(await urlOf('postgres://keys@127.0.0.1:1/keys?application_name=ks&sslmode=disable')).to.contain('application_name=ks');
    expect(await urlOf('postgres://keys@%2Fvar%2Frun%2Fpostgresql/keys')).to.equal('postgres://keys@%2Fvar%2Frun%2Fpostgresql/keys');
    const r = await run('key-server', ['serve', '--domain', 'd', '--policy-cert', 'none.pem', '--store', 's', '--key-file', 'k', '--data', 'data', '--backend', 'postgres'],
      { env: { KEY_SERVER_PG_URL: 'postgres://keys:pw-s3cret@127.0.0.1:1/keys?host=203.0.113.9&password=pw-0ther' } });
    expect(r.status, r.stderr).to.equal(2);
    expect(r.stderr).to.match(/^key-server: error: the PostgreSQL URL \(KEY_SERVER_PG_URL\) has the query parameter host, .*\[USAGE\]\n/);
    expect(r.stderr).not.to.contain('pw-s3cret').and.not.contain('pw-0ther');
  });
});

describe('key-server: a PostgreSQL URL whose query parameters override its own time limits', function () {
  this.timeout(30_000);
  const urlOf = (pgUrl: string) => pgUrlOf('key-server', { data: 'data', pgUrl, replicaId: 'r1' });

  it('is refused (USAGE) naming the parameter, before connecting: the driver takes each over the limits key-server sets', async () => {
    // statement_timeout=0 in the URL left a request waiting on a stalled replica's lock for ever;
    // query_timeout=0 timed out every query at once.
    for (const name of ['statement_timeout', 'query_timeout', 'idle_in_transaction_session_timeout']) {
      const e = await urlOf(`postgres://keys@127.0.0.1:1/keys?sslmode=disable&${name}=0`).then(() => undefined, (x: unknown) => x as { code: string; message: string });
      expect(e?.code, name).to.equal('USAGE');
      expect(e!.message).to.contain(`has the query parameter ${name}, which the driver takes over key-server's own limit`);
    }
    // One given in options (-c) is not: key-server's own setting is applied after it.
    expect(await urlOf('postgres://keys@127.0.0.1:1/keys?options=-c%20statement_timeout%3D0')).to.contain('options=');
  });
});

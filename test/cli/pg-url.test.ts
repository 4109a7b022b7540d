// The PostgreSQL URL as key-server logs it: what it names, never a secret it carries.

import { expect } from 'chai';
import { redactUrl } from '../../cmd/key-server/postgres.ts';

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

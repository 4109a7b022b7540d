// How a PostgreSQL failure is reported: retryable (UNREACHABLE, TIMEOUT, exit 3) only when a
// retry can help; a set-up mistake named as one (DENIED, NOT_FOUND, INVALID_INPUT), never as
// INTERNAL ("a bug"). Errors shaped as node-postgres gives them: SQLSTATE or errno in `code`.

import { expect } from 'chai';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { isCertifierError } from '../../lib/errors/index.ts';
import { storageError } from '../../lib/keyservice/pg-schema.ts';
import { ReplicaIdLock } from '../../lib/keyservice/pg-replica-lock.ts';

const cases: [string, { code?: string; message: string }, string][] = [
  ['a wrong password', { code: '28P01', message: 'password authentication failed for user "ks"' }, 'DENIED'],
  ['an unknown role', { code: '28000', message: 'role "nouser" does not exist' }, 'DENIED'],
  // The driver's own words, with no SQLSTATE, when the database asks for a password (SCRAM) and it has none to give.
  ['no password given (none in the URL, PGPASSWORD or .pgpass)', { message: 'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string' }, 'DENIED'],
  ['an empty password given (postgres://user:@host/db)', { message: 'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a non-empty string' }, 'DENIED'],
  ['no right to create the tables', { code: '42501', message: 'permission denied for schema public' }, 'DENIED'],
  ['a database that does not exist', { code: '3D000', message: 'database "nodb" does not exist' }, 'NOT_FOUND'],
  ['a database closed to connections (maintenance)', { code: '55000', message: 'database "keys" is not currently accepting connections' }, 'UNREACHABLE'],
  ['a bad setting that mentions a timeout', { code: '22023', message: 'invalid value for parameter "statement_timeout": "abc"' }, 'INVALID_INPUT'],
  ['a setting the server does not know (the URL\'s options)', { code: '42704', message: 'unrecognized configuration parameter "statement_timout"' }, 'INVALID_INPUT'],
  ['TLS asked of a server without it', { message: 'The server does not support SSL connections' }, 'INVALID_INPUT'],
  ['statement_timeout reached', { code: '57014', message: 'canceling statement due to statement timeout' }, 'TIMEOUT'],
  ['a lock not granted in time', { code: '55P03', message: 'canceling statement due to lock timeout' }, 'TIMEOUT'],
  ['a serialization failure', { code: '40001', message: 'could not serialize access due to concurrent update' }, 'TIMEOUT'],
  ['a deadlock', { code: '40P01', message: 'deadlock detected' }, 'TIMEOUT'],
  ['idle_in_transaction_session_timeout reached', { code: '25P03', message: 'terminating connection due to idle-in-transaction timeout' }, 'TIMEOUT'],
  ['too many connections (many replicas, each with its pool)', { code: '53300', message: 'sorry, too many clients already' }, 'UNREACHABLE'],
  ['the server out of memory', { code: '53200', message: 'out of memory' }, 'UNREACHABLE'],
  ['a connection the server cut', { message: 'Connection terminated unexpectedly' }, 'UNREACHABLE'],
  ['a connection lost on a read', { code: '08006', message: 'connection failure' }, 'UNREACHABLE'],
  ['a client used after its connection ended', { message: 'Client was closed and is not queryable' }, 'UNREACHABLE'],
  ["the client's connect timeout", { message: 'timeout expired' }, 'TIMEOUT'],
  ['a refused connection', { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:5432' }, 'UNREACHABLE'],
  ["a database host name that does not resolve (DNS down or the name unknown)", { code: 'ENOTFOUND', message: 'getaddrinfo ENOTFOUND db.example' }, 'UNREACHABLE'],
  ['a database host name whose lookup failed for now', { code: 'EAI_AGAIN', message: 'getaddrinfo EAI_AGAIN db.example' }, 'UNREACHABLE'],
  ['the server shutting down', { code: '57P01', message: 'terminating connection due to administrator command' }, 'UNREACHABLE'],
  ['a read-only database (a standby, a failover)', { code: '25006', message: 'cannot execute INSERT in a read-only transaction' }, 'UNREACHABLE'],
  ['a search_path naming no schema', { code: '3F000', message: 'no schema has been selected to create in' }, 'INVALID_INPUT'],
  ['a self-signed database certificate', { code: 'DEPTH_ZERO_SELF_SIGNED_CERT', message: 'self-signed certificate' }, 'UNTRUSTED_PEER'],
  ['a database certificate for another host', { code: 'ERR_TLS_CERT_ALTNAME_INVALID', message: "Hostname/IP does not match certificate's altnames" }, 'UNTRUSTED_PEER'],
  ['a Unix socket with no server (the host %2Fdir)', { code: 'ENOENT', message: 'connect ENOENT /nonexistent/.s.PGSQL.1' }, 'UNREACHABLE'],
  ['an sslrootcert that is not there', { code: 'ENOENT', message: "ENOENT: no such file or directory, open '/nonexist'" }, 'INVALID_INPUT'],
  ['a table key-server made gone (renamed, or restored over while it ran)', { code: '42P01', message: 'relation "key_server_records" does not exist' }, 'STORE_FORMAT'],
  ['a column key-server made gone (a table changed by hand)', { code: '42703', message: 'column "high" does not exist' }, 'STORE_FORMAT'],
  ['a constraint key-server made gone (a restore under way)', { code: '42P10', message: 'there is no unique or exclusion constraint matching the ON CONFLICT specification' }, 'STORE_FORMAT'],
  ['a column key-server made changed to another type (a function of its type missing)', { code: '42883', message: 'function left(timestamp with time zone, integer) does not exist' }, 'STORE_FORMAT'],
  ['the same, named as key-server calls it (pg_catalog.left)', { code: '42883', message: 'function pg_catalog.left(timestamp with time zone, integer) does not exist' }, 'STORE_FORMAT'],
  ['a column key-server made changed to another type (types that no longer match)', { code: '42804', message: 'COALESCE types text and integer cannot be matched' }, 'STORE_FORMAT'],
  ['an internal server error', { code: 'XX000', message: 'something broke' }, 'INTERNAL'],
  ['a syntax error (a bug of key-server\'s own SQL, not a restore to make)', { code: '42601', message: 'syntax error at or near "SELEC"' }, 'INTERNAL'],
  ['a function this PostgreSQL lacks', { code: '42883', message: 'function gen_random_uuid() does not exist' }, 'INTERNAL'],
];

// After start, the same refusals are the database failing under a running replica (renamed,
// closed to connections, rights revoked): a storage failure worth a retry, not the client's fault.
const atRequest: [string, { code: string; message: string }][] = [
  ['a database renamed or dropped', { code: '3D000', message: 'database "keys" does not exist' }],
  ['a database closed to connections', { code: '55000', message: 'database "keys" is not currently accepting connections' }],
  ['a login revoked', { code: '28000', message: 'role "ks" is not permitted to log in' }],
  ['a right revoked', { code: '42501', message: 'permission denied for table key_server_records' }],
];

const pgError = (error: { code?: string; message: string }) => Object.assign(new Error(error.message), error.code ? { code: error.code } : {});

describe('keyservice: PostgreSQL errors', () => {
  for (const [what, error, code] of cases) {
    it(`reports ${what} as ${code}`, () => {
      const e = storageError(pgError(error));
      expect(e.code).to.equal(code);
      expect(e.message).to.contain(error.message);
    });
  }
  for (const [what, error] of atRequest) {
    it(`reports ${what} while serving as UNREACHABLE, saying what the database said`, () => {
      const e = storageError(pgError(error), 'request');
      expect(e.code).to.equal('UNREACHABLE');
      expect(e.message).to.contain(error.message);
    });
  }
  it('says where a password the database asks for goes when none was given', () => {
    const e = storageError(pgError({ message: 'SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string' }));
    expect(e.message).to.contain('asks for a password').and.contain('PGPASSWORD').and.contain('.pgpass');
  });
  it('reports what is not the database\'s failure the same way at start and while serving', () => {
    for (const [, error, code] of cases) expect(storageError(pgError(error), 'request').code, error.message).to.equal(code === 'NOT_FOUND' || code === 'DENIED' ? 'UNREACHABLE' : code);
  });
  it('refuses a replica lock whose database URL names a file that cannot be read as that set-up mistake (INVALID_INPUT), not as a bare error', async () => {
    // The driver reads sslrootcert as its client is made, before any connection: that failure is
    // one of the lock's tries, as a failure to connect is (and so, while serving, retried).
    const missing = join(tmpdir(), `no-such-root-${process.pid}.pem`);
    const e = await ReplicaIdLock.take({ url: `postgres://ks@127.0.0.1:1/keys?sslmode=verify-full&sslrootcert=${missing}`, replicaId: 'r1' }).then(() => undefined, (x: unknown) => x);
    expect(isCertifierError(e, 'INVALID_INPUT'), String(e)).to.equal(true);
  });
});

// The audit log: the chain verifies, every kind of tamper names the right (1-based) line, reopening
// continues the chain, and concurrent appends keep their order.

import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CertifierError } from '../../lib/errors/index.ts';
import { AUDIT_GENESIS, AuditLog, auditHash, repairAuditTail, verifyAudit, type AuditEntry } from '../../lib/keyservice/audit.ts';
import { verifyChain } from '../../lib/keyservice/audit-chain.ts';
import { canonicalFields, canonicalJson } from '../../lib/keyservice/audit-line.ts';
import { visibleJson } from '../../lib/wire/index.ts';
import { rechain } from '../support/audit-lines.ts';
import { rejects } from '../support/rejects.ts';
import { tempDir } from '../support/helpers.ts';

const M = 'ab'.repeat(32);
const entry = (i: number): AuditEntry => ({
  time: `2025-01-01T00:00:${String(i % 60).padStart(2, '0')}.000Z`, conn: `c${i}`, peerSerial: '4f3a', measurement: M, role: 'operator', credentialSerial: '7e01',
  action: 'retrieve', resource: `vhd/disk${i}`, version: i, decision: i % 3 ? 'allow' : 'deny', code: 'ACL_DENIED',
});

describe('audit log', () => {
  let tmp: ReturnType<typeof tempDir>;
  let path: string;
  beforeEach(() => {
    tmp = tempDir('keyserver-audit-');
    path = join(tmp.dir, 'audit.jsonl');
  });
  afterEach(() => tmp.cleanup());

  async function writeLog(n: number): Promise<string[]> {
    const log = await AuditLog.open(path);
    for (let i = 1; i <= n; i++) await log.append(entry(i));
    await log.close();
    return lines();
  }
  const lines = () => readFileSync(path, 'utf8').split('\n').slice(0, -1);
  const save = (ls: string[], tail = '\n') => writeFileSync(path, ls.join('\n') + tail);
  const bad = async (line: number, problem?: RegExp) => {
    const r = await verifyAudit(path);
    expect(r.ok, JSON.stringify(r)).to.equal(false);
    if (!r.ok) {
      expect(r.line, r.problem).to.equal(line);
      if (problem) expect(r.problem).to.match(problem);
    }
  };

  it('writes a chain of many entries that verifies, in the documented format', async () => {
    const ls = await writeLog(200);
    expect(ls).to.have.length(200);
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 200 });
    const first = JSON.parse(ls[0]!);
    expect(Object.keys(first)).to.deep.equal(['seq', 'time', 'conn', 'peerSerial', 'measurement', 'role', 'credentialSerial', 'action', 'resource', 'version', 'decision', 'code', 'prev', 'hash']);
    expect(first).to.include({ seq: 1, prev: AUDIT_GENESIS, resource: 'vhd/disk1', decision: 'allow' });
    // Recomputed independently: SHA-256 over prev then the line without prev and hash.
    const canon = ls[0]!.replace(/,"prev":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"\}$/, '}');
    expect(first.hash).to.equal(createHash('sha256').update(AUDIT_GENESIS + canon).digest('hex'));
    expect(JSON.parse(ls[1]!).prev).to.equal(first.hash);
    expect(statSync(path).mode & 0o777).to.equal(0o600);
  });

  it('writes a name\'s invisible characters as \\uXXXX, hashed as written, and still verifies lines written raw before', async () => {
    // A line as earlier versions wrote it: the name raw, hashed raw.
    const name = 'a/\u202eevil\u200b\u{e0041}';
    const fields = { seq: 1, time: '2025-01-01T00:00:00.000Z', action: 'retrieve', resource: name, decision: 'deny', code: 'NOT_FOUND' };
    const raw = JSON.stringify(fields);
    const rawHash = auditHash(AUDIT_GENESIS, raw);
    save([`${raw.slice(0, -1)},"prev":"${AUDIT_GENESIS}","hash":"${rawHash}"}`]);
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 1 });
    const log = await AuditLog.open(path);
    const rec = await log.append({ action: 'retrieve', resource: name, decision: 'deny', code: 'NOT_FOUND' });
    await log.close();
    const [, second] = lines();
    expect(second).to.contain('"resource":"a/\\u202eevil\\u200b\\udb40\\udc41"');
    expect(second).not.to.match(/[\u202e\u200b]|[\ud800-\udfff]/);
    expect(JSON.parse(second!)).to.include({ resource: name, prev: rawHash });
    // Anyone can still check it: SHA-256 over prev then the line as written without prev and hash.
    const written = second!.replace(/,"prev":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"\}$/, '}');
    expect(rec.hash).to.equal(createHash('sha256').update(rawHash + written).digest('hex'));
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 2 });
    // Either form turned into the other, the hash no longer matches.
    save([lines()[0]!.replace('\u202e', '\\u202e'), second!]);
    await bad(1, /hash does not match/);
    save([`${raw.slice(0, -1)},"prev":"${AUDIT_GENESIS}","hash":"${rawHash}"}`, second!.replace('\\u202e', '\u202e')]);
    await bad(2, /hash does not match/);
  });

  it('writes each line as visibleJson writes its fields, whether made field by field or not, and the log verifies', async () => {
    const texts = ['bench/disk-key', 'a "quoted" name', 'back\\slash', 'tab\there', 'caf\u00e9', 'e\u0301', 'a/\u202eevil', '~!#$%&()*+,-./:;<=>?@[]^_`{|}', '', 'x'.repeat(300)];
    const log = await AuditLog.open(path);
    for (const [i, resource] of texts.entries()) {
      const kept = canonicalFields({ conn: `c${i}`, action: 'retrieve', resource, version: i * 1000, decision: 'allow', code: i % 2 ? 'NOT_FOUND' : undefined }, i + 1, '2026-12-06T00:00:00.000Z');
      expect(canonicalJson(kept), JSON.stringify(resource)).to.equal(visibleJson(kept));
      await log.append({ conn: `c${i}`, action: 'retrieve', resource, version: i * 1000, decision: 'allow' });
    }
    await log.close();
    expect(lines().map((l) => (JSON.parse(l) as { resource: string }).resource)).to.deep.equal(texts);
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: texts.length });
  });

  it('omits absent fields and writes nothing but the entry fields', async () => {
    const log = await AuditLog.open(path);
    const rec = await log.append({ action: 'unknown', decision: 'deny', code: 'DECODE_FAILED', role: undefined, value: 'SECRET' } as AuditEntry);
    await log.append({ action: 'store', resource: 'a"b\nc', decision: 'allow' });
    await log.close();
    const ls = lines();
    expect(ls).to.have.length(2);
    expect(ls[0]).to.not.include('SECRET');
    expect(Object.keys(JSON.parse(ls[0]!))).to.deep.equal(['seq', 'time', 'action', 'decision', 'code', 'prev', 'hash']);
    expect(rec).to.include({ seq: 1, action: 'unknown', prev: AUDIT_GENESIS });
    expect(JSON.parse(ls[1]!).resource).to.equal('a"b\nc');
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 2 });
  });

  const FIELDS = ['seq', 'time', 'conn', 'peerSerial', 'measurement', 'role', 'credentialSerial', 'action', 'resource', 'version', 'decision', 'code', 'prev', 'hash'];
  for (const field of FIELDS) {
    it(`names the line whose ${field} was edited`, async () => {
      const ls = await writeLog(8);
      const o = JSON.parse(ls[4]!);
      o[field] = typeof o[field] === 'number' ? o[field] + 1 : field === 'decision' ? (o[field] === 'allow' ? 'deny' : 'allow')
        : field === 'prev' || field === 'hash' ? o[field].replace(/^./, (c: string) => (c === '0' ? '1' : '0')) : `${o[field]}x`;
      ls[4] = JSON.stringify(o);
      save(ls);
      await bad(5);
    });
  }

  it('names the line after a removed one, including the first', async () => {
    const ls = await writeLog(8);
    save([...ls.slice(0, 3), ...ls.slice(4)]);
    await bad(4, /seq is 5, expected 4/);
    save(ls.slice(1));
    await bad(1, /seq is 2, expected 1/);
  });

  it('names the first of two swapped lines', async () => {
    const ls = await writeLog(8);
    [ls[2], ls[3]] = [ls[3]!, ls[2]!];
    save(ls);
    await bad(3);
  });

  it('names appended garbage, a blank line, bad JSON and a truncated last line', async () => {
    const ls = await writeLog(5);
    save([...ls, 'garbage']);
    await bad(6, /not JSON/);
    save([...ls, '']);
    await bad(6, /not JSON/);
    save([...ls.slice(0, 2), '{"seq":3', ...ls.slice(3)]);
    await bad(3, /not JSON/);
    save(ls, '');
    await bad(5, /incomplete/);
    writeFileSync(path, ls.join('\n').slice(0, -10));
    await bad(5, /incomplete/);
    save([...ls.slice(0, 4), ls[4]!.replace('"seq":5', '"seq":5,"extra":1')]);
    await bad(5, /unknown field "extra"/);
    save([...ls.slice(0, 4), ls[4]!.replace('{"seq":5,', '{ "seq":5,')]);
    await bad(5, /canonical/);
  });

  it('verifies an empty log and refuses a missing one with FILE_ERROR', async () => {
    writeFileSync(path, '');
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 0 });
    try {
      await verifyAudit(join(tmp.dir, 'none.jsonl'));
      expect.fail('resolved');
    } catch (e) {
      expect((e as CertifierError).code).to.equal('FILE_ERROR');
    }
  });

  it('refuses a last line longer than 65536 bytes, with no newline, as too long rather than as a torn last line', async () => {
    await writeLog(2);
    writeFileSync(path, readFileSync(path, 'utf8') + 'x'.repeat(65_537));
    expect(await verifyAudit(path)).to.deep.equal({ ok: false, line: 3, problem: 'longer than 65536 bytes' });
  });

  it('tightens an existing log open to others to 0600 when it opens it', async () => {
    await writeLog(1);
    chmodSync(path, 0o644);
    await (await AuditLog.open(path)).close();
    expect(statSync(path).mode & 0o777).to.equal(0o600);
  });

  it('removes, closing unused, the empty log it made, but not another file put in its place', async () => {
    await (await AuditLog.open(path)).closeUnused();
    expect(readdirSync(tmp.dir)).to.deep.equal([]);
    const log = await AuditLog.open(path);
    writeFileSync(join(tmp.dir, 'other'), 'a line someone put there\n');
    renameSync(join(tmp.dir, 'other'), path);
    await log.closeUnused();
    expect(readFileSync(path, 'utf8')).to.equal('a line someone put there\n');
  });

  it('refuses a file that is not an audit log (INTEGRITY), leaving no lock of its own beside it; one that was there stays', async () => {
    const notes = join(tmp.dir, 'notes.txt');
    writeFileSync(notes, 'notes\n');
    await rejects(AuditLog.open(notes), 'INTEGRITY');
    expect(readdirSync(tmp.dir)).to.deep.equal(['notes.txt']);
    mkdirSync(`${notes}.lock`, { mode: 0o700 });
    await rejects(AuditLog.open(notes), 'INTEGRITY');
    expect(readdirSync(tmp.dir).sort()).to.deep.equal(['notes.txt', 'notes.txt.lock']);
  });

  it("refuses a directory, such as the lock beside a served log that a glob caught, with FILE_ERROR naming it", async () => {
    const log = await AuditLog.open(path);
    try {
      const e = await verifyAudit(`${path}.lock`).then(() => expect.fail('resolved'), (e: CertifierError) => e);
      expect(e.code).to.equal('FILE_ERROR');
      expect(e.message).to.contain('the lock a key-server keeps beside its log');
    } finally {
      await log.close();
    }
  });

  it('refuses a FIFO given as a log, or as FILE.end, with FILE_ERROR rather than waiting on it', async () => {
    const fifo = join(tmp.dir, 'fifo.jsonl');
    execFileSync('mkfifo', [fifo]);
    expect((await rejects(verifyAudit(fifo), 'FILE_ERROR')).message).to.equal(`the audit log ${fifo} is not a regular file`);
    await writeLog(2);
    execFileSync('mkfifo', [`${path}.end`]);
    await rejects(verifyChain([path]), 'FILE_ERROR');
    await rejects(AuditLog.open(path), 'FILE_ERROR');
  });

  it('refuses a FILE.end that is a directory with FILE_ERROR naming it, to serve and to verify-audit', async () => {
    await writeLog(2);
    mkdirSync(`${path}.end`);
    for (const e of [await rejects(AuditLog.open(path), 'FILE_ERROR'), await rejects(verifyChain([path]), 'FILE_ERROR')]) {
      expect(e.message).to.equal(`cannot read ${path}.end: is a directory`);
    }
  });

  it('says what is wrong with a first line of seq 1 that chains to a line before it, and refuses to extend such a log', async () => {
    const ls = await writeLog(3);
    const problem = 'seq 1 begins a chain, so its prev must be 64 zeros, but it names a line before it (prev edited)';
    for (const n of [1, 3]) {
      save(rechain(ls.slice(0, n), 'f'.repeat(64)));
      for (const continuing of [false, true]) expect(await verifyChain([path], { continuing })).to.deep.include({ ok: false, line: 1, problem });
      expect((await rejects(AuditLog.open(path), 'INTEGRITY')).message).to.equal(`the audit log ${path} does not verify at line 1: ${problem}; refusing to extend it`);
    }
  });

  it('refuses, as a whole log, one whose first line is seq 2 chained from the genesis hash (its first line removed and the chain recomputed)', async () => {
    const ls = await writeLog(3);
    save(rechain(ls.slice(1)));
    expect(await verifyChain([path])).to.deep.include({ ok: false, line: 1, problem: 'it starts at seq 2, not 1: give the segments before it first (or --continuing to check from there)' });
    expect(await verifyAudit(path)).to.deep.include({ ok: false, line: 1 });
  });

  it('continues the chain when reopened', async () => {
    const before = await writeLog(3);
    const log = await AuditLog.open(path);
    const rec = await log.append(entry(4));
    await log.append(entry(5));
    await log.close();
    expect(rec.seq).to.equal(4);
    expect(rec.prev).to.equal(JSON.parse(before[2]!).hash);
    expect(lines().slice(0, 3)).to.deep.equal(before);
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 5 });
  });

  it('refuses to open a log that does not verify with INTEGRITY, naming the line', async () => {
    const ls = await writeLog(4);
    save([...ls.slice(0, 2), ls[3]!]);
    try {
      await AuditLog.open(path);
      expect.fail('opened');
    } catch (e) {
      expect(e).to.be.instanceOf(CertifierError);
      expect((e as CertifierError).code).to.equal('INTEGRITY');
      expect((e as CertifierError).details?.line).to.equal(3);
      expect((e as Error).message).to.match(/line 3/);
    }
    expect(lines()).to.have.length(3);
  });

  it('finds a byte-order mark put before a line: the bytes are not the canonical line', async () => {
    const ls = await writeLog(3);
    save([ls[0]!, `\ufeff${ls[1]!}`, ls[2]!]);
    await bad(2);
    save([ls[0]!, ls[1]!, `\ufeff${ls[2]!}`]);
    await bad(3);
    await rejects(AuditLog.open(path), 'INTEGRITY');
  });

  it('opens from the chain\'s end alone: an edit further back is verify-audit\'s to find', async () => {
    const ls = await writeLog(5);
    save([ls[0]!, ls[1]!.replace('"allow"', '"deny"'), ...ls.slice(2)]);
    const log = await AuditLog.open(path); // the last two lines are whole and chained
    expect((await log.append(entry(6))).seq).to.equal(6);
    await log.close();
    expect(await verifyAudit(path)).to.deep.include({ ok: false, line: 2 });

    // A one-line log, and a last line claiming seq 1 that is not the file's first.
    rmSync(path);
    const one = await writeLog(1);
    const reopened = await AuditLog.open(path);
    expect((await reopened.append(entry(2))).prev).to.equal(JSON.parse(one[0]!).hash);
    await reopened.close();
    const two = lines();
    save([two[0]!, two[0]!]);
    const e = await rejects(AuditLog.open(path), 'INTEGRITY');
    expect(e.details?.line).to.equal(2);
  });

  describe('rotated into segments', () => {
    const segments = () => readdirSync(tmp.dir).filter((n) => /^audit\.jsonl\.\d{12}-\d{12}$/.test(n)).sort().map((n) => join(tmp.dir, n));
    const fill = async (log: AuditLog, from: number, n: number) => {
      for (let i = from; i < from + n; i++) await log.append(entry(i));
    };
    /** 30 lines rotated into segments, then `more` in the log. */
    const rotatedThen = async (more: number) => {
      const log = await AuditLog.open(path, { rotateBytes: 1500 });
      await fill(log, 1, 30);
      await log.close();
      const unrotated = await AuditLog.open(path);
      await fill(unrotated, 31, more);
      await unrotated.close();
    };

    it('writes the log, and each new file after a rotation, synchronously (O_DSYNC)', async function () {
      if (!existsSync('/proc/self/fdinfo')) this.skip();
      const dsync = (log: AuditLog) => {
        const fd = (log as unknown as { fh: { fd: number } }).fh.fd;
        const flags = parseInt(/^flags:\s+(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!, 8);
        return (flags & 0o10000) !== 0; // O_DSYNC on Linux
      };
      let rotated!: () => void;
      const rotation = new Promise<void>((resolve) => (rotated = resolve));
      const log = await AuditLog.open(path, { rotateBytes: 1, onRotate: () => rotated() });
      try {
        expect(dsync(log)).to.equal(true);
        await log.append(entry(1));
        await rotation;
        expect(segments()).to.have.length(1);
        expect(dsync(log)).to.equal(true);
      } finally {
        await log.close();
      }
    });

    it('goes on in its file when FILE.end cannot be written (a full disk), telling it once, and rotates at a later write', async () => {
      const failed: string[][] = [];
      const log = await AuditLog.open(path, { rotateBytes: 1, onRotateFailed: (e) => failed.push([e.code, e.message]) });
      mkdirSync(`${path}.end`); // FILE.end cannot be put in place, as on a disk with no inode left
      await log.append(entry(1));
      await log.append(entry(2));
      // An append resolves once its line is on disk, before the rotation its write began is tried:
      // waited for, or that try could meet FILE.end's place free below and rotate at line 2.
      await (log as unknown as { flushing?: Promise<void> }).flushing;
      log.checkUsable();
      // Said as a failed write of the log is, in lib/files' words (describeErrno).
      expect([failed, segments()]).to.deep.equal([[['FILE_ERROR', `the audit log ${path} cannot be rotated: ${path}.end cannot be written (is a directory); it goes on in its file, and each write tries again`]], []]);
      rmSync(`${path}.end`, { recursive: true });
      await log.append(entry(3));
      await log.close();
      expect(segments()).to.have.length(1);
      expect(await verifyChain([...segments(), path])).to.include({ ok: true, lastSeq: 3 });
    });

    it('rotates once the file reaches the size limit exactly', async () => {
      const size = Buffer.byteLength((await writeLog(1))[0]! + '\n');
      rmSync(path);
      rmSync(`${path}.lock`, { recursive: true, force: true });
      const log = await AuditLog.open(path, { rotateBytes: size });
      await log.append(entry(1));
      await log.close(); // after the rotation that write began
      expect(segments()).to.have.length(1);
    });

    it('keeps every line once, in segments that verify as one chain, and reopens where it left off', async () => {
      const rotated: { path: string; firstSeq: number; lastSeq: number }[] = [];
      let log = await AuditLog.open(path, { rotateBytes: 1500, onRotate: (s) => void rotated.push(s) });
      await fill(log, 1, 30);
      await log.close();
      expect(rotated.length).to.be.at.least(3);
      expect(rotated.map((s) => s.path)).to.deep.equal(segments());
      rotated.forEach((s, i) => expect(s.firstSeq).to.equal(i === 0 ? 1 : rotated[i - 1]!.lastSeq + 1));
      expect(await verifyChain([...segments(), path])).to.deep.include({ ok: true, lines: 30, firstSeq: 1, lastSeq: 30, fromGenesis: true });
      // The current file alone starts mid-chain: refused as a whole log, fine as a continuation.
      expect(await verifyAudit(path)).to.deep.include({ ok: false, line: 1 });
      expect(await verifyChain([path], { continuing: true })).to.deep.include({ ok: true, fromGenesis: false, lastSeq: 30 });
      const missing = await verifyChain([segments()[0]!, ...segments().slice(2), path]);
      const [one, three] = [rotated[0]!, rotated[2]!];
      expect(missing).to.deep.include({ ok: false, file: three.path, line: 1, problem: `it does not continue ${one.path} (which ends at seq ${one.lastSeq}): it starts at seq ${three.firstSeq}` });
      const kept = readFileSync(three.path, 'utf8');
      writeFileSync(three.path, rechain(kept.split('\n').slice(0, -1), 'f'.repeat(64)).join('\n') + '\n');
      expect(await verifyChain([...segments(), path])).to.deep.include({ ok: false, file: three.path, line: 1, problem: `it does not continue ${rotated[1]!.path} (which ends at seq ${rotated[1]!.lastSeq}): it starts at seq ${three.firstSeq} after another hash` });
      writeFileSync(three.path, kept);

      log = await AuditLog.open(path, { rotateBytes: 1500 });
      expect((await log.append(entry(31))).seq).to.equal(31);
      await log.close();
      expect(await verifyChain([...segments(), path])).to.deep.include({ ok: true, lines: 31 });
    });

    it('finds a segment emptied or cut short against its name, and a newest segment removed against FILE.end', async () => {
      const log = await AuditLog.open(path, { rotateBytes: 1500 });
      await fill(log, 1, 30);
      await log.close();
      const [, second] = segments();
      const kept = readFileSync(second!);
      writeFileSync(second!, '');
      const [from, to] = [Number(second!.slice(-25, -13)), Number(second!.slice(-12))];
      expect(await verifyChain([...segments(), path])).to.deep.include({ ok: false, file: second, problem: `it is empty, but its name says it holds seq ${from} to ${to}: those lines are missing` });
      writeFileSync(second!, kept.subarray(0, kept.lastIndexOf('\n', kept.length - 2) + 1));
      expect(await verifyChain([...segments(), path])).to.deep.include({ ok: false, file: second, problem: `it ends at seq ${to - 1}, not the ${to} its name says: seq ${to} is missing` });
      writeFileSync(second!, kept);

      // Right after a rotation (the log empty), the newest segment removed: FILE.end says where the chain reached.
      const empty = await AuditLog.open(path, { rotateBytes: 1 });
      const last = await empty.append(entry(31));
      await empty.close();
      expect(readFileSync(path, 'utf8')).to.equal('');
      const gone = Number(segments().at(-1)!.slice(-25, -13));
      rmSync(segments().at(-1)!);
      const r = await verifyChain([...segments(), path]);
      expect(r).to.deep.include({ ok: false, file: path });
      expect(r.ok || r.problem).to.equal(`the chain ends at seq ${gone - 1}, but ${path}.end (where the chain stood at its last rotation) says it reached seq 31: seq ${gone} to 31 are missing (a segment removed or emptied, or the log cut short)`);
      // Its segments archived, the empty log alone cannot be checked against it; given, the record must match.
      expect(await verifyChain([path], { continuing: true })).to.deep.include({ ok: true, lines: 0 });
      writeFileSync(`${path}.end`, `${JSON.stringify({ seq: gone - 1, hash: last.hash })}\n`);
      const holder = segments().at(-1)!;
      const rewritten = await verifyChain([...segments(), path]);
      expect(rewritten).to.deep.include({ ok: false, file: holder, line: gone - Number(holder.slice(-25, -13)) });
      expect(rewritten.ok || rewritten.problem).to.match(/^the record of seq \d+ has hash [0-9a-f]{64}, but .*audit\.jsonl\.end \(where the chain stood at its last rotation\) says [0-9a-f]{64} \(the chain was rewritten from there or before\)$/);
    });

    it('checks FILE.end beside the file a symbolic link given as the log names, as key-server keeps it there: the newest segment removed is found', async () => {
      const log = await AuditLog.open(path, { rotateBytes: 1 });
      await fill(log, 1, 3);
      await log.close();
      const link = join(tmp.dir, 'served.jsonl'); // what --audit was given
      symlinkSync(path, link);
      rmSync(segments().at(-1)!);
      const r = await verifyChain([...segments(), link]);
      expect(r.ok || r.problem).to.equal(`the chain ends at seq 2, but ${path}.end (where the chain stood at its last rotation) says it reached seq 3: seq 3 is missing (a segment removed or emptied, or the log cut short)`);
    });

    it('refuses to extend another log put in place of one that continues its latest segment or FILE.end, changing nothing', async () => {
      const log = await AuditLog.open(path, { rotateBytes: 1500 });
      await fill(log, 1, 30);
      await log.close();
      const other = join(tmp.dir, 'other', 'audit.jsonl');
      mkdirSync(join(tmp.dir, 'other'));
      const foreign = await AuditLog.open(other);
      await fill(foreign, 1, 3);
      await foreign.close();
      const own = readFileSync(path);
      writeFileSync(path, readFileSync(other));
      const latest = segments().at(-1)!;
      const e = await rejects(AuditLog.open(path), 'INTEGRITY');
      expect(e.message).to.equal(`the audit log ${path} does not continue its latest segment ${latest} (which ends at seq ${Number(latest.slice(-12))}): it starts at seq 1; refusing to extend it (another log in its place?)`);
      expect(readFileSync(path).equals(readFileSync(other))).to.equal(true);
      // Its segments archived: FILE.end says where the chain stood.
      const archive = join(tmp.dir, 'archive');
      mkdirSync(archive);
      for (const seg of segments()) renameSync(seg, join(archive, basename(seg)));
      expect((await rejects(AuditLog.open(path), 'INTEGRITY')).message).to.match(/audit\.jsonl\.end says the audit chain reached seq \d+ at its last rotation, but the log .* ends at seq 3; refusing to extend it$/);
      writeFileSync(path, own);
      const recorded = JSON.parse(readFileSync(`${path}.end`, 'utf8')) as { seq: number; hash: string };
      writeFileSync(`${path}.end`, JSON.stringify({ ...recorded, hash: 'f'.repeat(64) }));
      expect((await rejects(AuditLog.open(path), 'INTEGRITY')).message).to.contain(`does not continue ${path}.end (which ends at seq ${recorded.seq}): it starts at seq ${recorded.seq + 1} after another hash`);
      writeFileSync(`${path}.end`, JSON.stringify(recorded));
      const again = await AuditLog.open(path);
      expect((await again.append(entry(31))).seq).to.equal(31);
      await again.close();
    });

    it('refuses to continue a newest segment whose name\'s first seq is not its first line\'s (INTEGRITY naming it, as verify-audit refuses it), and continues it under its own name', async () => {
      await rotatedThen(2);
      const newest = segments().at(-1)!;
      const [first, last] = [Number(newest.slice(-25, -13)), Number(newest.slice(-12))];
      const misnamed = `${path}.${String(first - 1).padStart(12, '0')}-${String(last).padStart(12, '0')}`;
      renameSync(newest, misnamed);
      const problem = `it starts at seq ${first}, not the ${first - 1} its name says`;
      expect(await verifyChain([...segments(), path])).to.deep.include({ ok: false, file: misnamed, line: 1, problem });
      const e = await rejects(AuditLog.open(path), 'INTEGRITY');
      expect(e.message).to.equal(`the audit log ${misnamed} does not verify at line 1: ${problem}; refusing to continue it in ${path}`);
      renameSync(misnamed, newest);
      await (await AuditLog.open(path)).close();
    });

    it('refuses a FIFO in the newest segment\'s place with FILE_ERROR naming it, rather than waiting on it to start', async () => {
      await rotatedThen(2);
      const newest = segments().at(-1)!;
      rmSync(newest);
      execFileSync('mkfifo', [newest]);
      const e = await rejects(AuditLog.open(path), 'FILE_ERROR');
      expect(e.message).to.equal(`the audit log ${newest} is not a regular file`);
    });

    it('refuses to open a rotated segment as a log (USAGE), by its name or through a link, writing and making nothing: lines there would break the chain it belongs to', async () => {
      const log = await AuditLog.open(path, { rotateBytes: 1500 });
      await fill(log, 1, 12);
      await log.close();
      const newest = segments().at(-1)!;
      const before = readFileSync(newest, 'utf8');
      const link = join(tmp.dir, 'other.jsonl');
      symlinkSync(newest, link);
      for (const given of [newest, link]) {
        const e = await rejects(AuditLog.open(given), 'USAGE');
        expect(e.message).to.contain(`is a rotated segment of an audit log (F.FIRST-LAST)`).and.contain('never written after rotation');
      }
      expect(readFileSync(newest, 'utf8')).to.equal(before);
      expect(readdirSync(tmp.dir).filter((n) => n.endsWith('.lock'))).to.deep.equal(['audit.jsonl.lock']);
      expect(await verifyChain([...segments(), path])).to.include({ ok: true, lastSeq: 12 });
    });

    it('refuses to open FILE.end of a log beside it as a log (USAGE), making nothing: the log\'s next rotation would put its record in that file\'s place', async () => {
      const log = await AuditLog.open(path, { rotateBytes: 1500 });
      await fill(log, 1, 3); // not yet rotated: no FILE.end
      const e = await rejects(AuditLog.open(`${path}.end`), 'USAGE');
      expect(e.message).to.equal(`${path}.end is where the audit log ${path} beside it keeps the end of its chain at each rotation, which puts a new file in its place: give this log a name of its own`);
      expect(existsSync(`${path}.end`)).to.equal(false);
      expect(existsSync(`${path}.end.lock`)).to.equal(false);
      await fill(log, 4, 9);
      await log.close();
      expect(await verifyChain([...segments(), path])).to.include({ ok: true, lastSeq: 12 });
    });

    it('goes on from the last rotation when every segment was moved away while the log was empty', async () => {
      const log = await AuditLog.open(path, { rotateBytes: 1 }); // a rotation after every write: the log is left empty
      const recs = [];
      for (let i = 1; i <= 3; i++) recs.push(await log.append(entry(i)));
      await log.close();
      expect(readFileSync(path, 'utf8')).to.equal('');
      const archive = join(tmp.dir, 'archive');
      mkdirSync(archive);
      for (const seg of segments()) renameSync(seg, join(archive, basename(seg)));
      const again = await AuditLog.open(path);
      const next = await again.append(entry(4));
      await again.close();
      expect([next.seq, next.prev]).to.deep.equal([4, recs[2]!.hash]);
      const archived = readdirSync(archive).sort().map((n) => join(archive, n));
      expect(await verifyChain([...archived, path])).to.deep.include({ ok: true, lines: 4, fromGenesis: true });
      // Only the newest segments moved away: the chain still goes on from the last rotation, not from the older segment left.
      const more = await AuditLog.open(path, { rotateBytes: 1 });
      for (let i = 5; i <= 7; i++) await more.append(entry(i));
      await more.close();
      const newest = segments().at(-1)!;
      renameSync(newest, join(archive, basename(newest)));
      const third = await AuditLog.open(path);
      expect((await third.append(entry(8))).seq).to.equal(8);
      await third.close();
      // Only an empty log reads the record; a damaged one is refused rather than the chain restarted.
      const other = join(tmp.dir, 'other.jsonl');
      writeFileSync(`${other}.end`, 'garbage');
      await rejects(AuditLog.open(other), 'INTEGRITY');
    });

    it('goes on from FILE.end when the newest segment was moved away from a log in use, an older one still beside it or copied back', async () => {
      await rotatedThen(2);
      const ls = lines();
      const archive = join(tmp.dir, 'archive');
      mkdirSync(archive);
      const newest = segments().at(-1)!;
      renameSync(newest, join(archive, basename(newest)));
      expect(await verifyChain([path], { continuing: true })).to.deep.include({ ok: true, lastSeq: 32 });
      const again = await AuditLog.open(path);
      expect((await again.append(entry(33))).prev).to.equal(JSON.parse(ls.at(-1)!).hash);
      await again.close();
      // Every segment archived, then the oldest copied back beside the log.
      for (const seg of segments()) renameSync(seg, join(archive, basename(seg)));
      const oldest = readdirSync(archive).sort()[0]!;
      writeFileSync(join(tmp.dir, oldest), readFileSync(join(archive, oldest)));
      const third = await AuditLog.open(path);
      expect((await third.append(entry(34))).seq).to.equal(34);
      await third.close();
      const archived = readdirSync(archive).sort().map((n) => join(archive, n));
      expect(await verifyChain([...archived, path])).to.deep.include({ ok: true, lines: 34, fromGenesis: true });
    });

    it('refuses another log put in place that runs past FILE.end, and extends a log that holds its record', async () => {
      const log = await AuditLog.open(path, { rotateBytes: 1500 });
      await fill(log, 1, 30);
      await log.close();
      const archive = join(tmp.dir, 'archive');
      mkdirSync(archive);
      for (const seg of segments()) renameSync(seg, join(archive, basename(seg)));
      const recorded = JSON.parse(readFileSync(`${path}.end`, 'utf8')) as { seq: number; hash: string };
      const other = join(tmp.dir, 'other.jsonl');
      const foreign = await AuditLog.open(other);
      for (let i = 1; i <= 40; i++) await foreign.append({ ...entry(i), conn: 'other' });
      await foreign.close();
      writeFileSync(path, readFileSync(other));
      const e = await rejects(AuditLog.open(path), 'INTEGRITY');
      expect(e.message).to.match(new RegExp(`^the record of seq ${recorded.seq} in the audit log \\S+ has hash [0-9a-f]{64}, but \\S+\\.end says ${recorded.hash} \\(the line edited, or another log in its place\\); refusing to extend it$`));
      expect(await verifyChain([path], { continuing: true })).to.deep.include({ ok: false, line: recorded.seq });
      expect(readFileSync(path).equals(readFileSync(other))).to.equal(true);

      // A rotation cut short (FILE.end written, the log not renamed), then served on: the log holds the record, wherever it lies.
      const ls = lines();
      for (const seq of [1, 2, 17, 39, 40]) {
        writeFileSync(`${path}.end`, JSON.stringify({ seq, hash: JSON.parse(ls[seq - 1]!).hash }));
        expect(await verifyChain([path], { continuing: true })).to.deep.include({ ok: true, lastSeq: 40 });
        await (await AuditLog.open(path)).close();
      }
    });

    it('refuses to continue a newest segment that is not where FILE.end says the last rotation left the chain (one copied in from another server)', async () => {
      const log = await AuditLog.open(path, { rotateBytes: 1 });
      await fill(log, 1, 4);
      await log.close();
      const other = join(tmp.dir, 'other', 'audit.jsonl');
      mkdirSync(dirname(other));
      const foreign = await AuditLog.open(other, { rotateBytes: 1 });
      for (let i = 1; i <= 4; i++) await foreign.append({ ...entry(i), conn: 'other' });
      await foreign.close();
      const newest = segments().at(-1)!;
      const kept = readFileSync(newest);
      copyFileSync(join(dirname(other), basename(newest)), newest); // the same name, another chain
      expect(readFileSync(path, 'utf8')).to.equal('');
      const e = await rejects(AuditLog.open(path), 'INTEGRITY');
      expect(e.message).to.contain(`the audit segment ${newest} ends at seq 4 with hash`).and.contain('the segment is not this chain\'s');
      writeFileSync(newest, kept);
      await (await AuditLog.open(path)).close();
    });

    it('says a damaged line near the record FILE.end names is damaged, not that another log is in place', async () => {
      await rotatedThen(0);
      const recorded = JSON.parse(readFileSync(`${path}.end`, 'utf8')) as { seq: number; hash: string };
      // A rotation cut short (FILE.end written, the log not renamed), then served on.
      for (const seg of segments().filter((f) => Number(f.slice(-12)) === recorded.seq)) {
        const held = readFileSync(seg, 'utf8');
        rmSync(seg);
        writeFileSync(path, held + readFileSync(path, 'utf8'));
      }
      const ls = lines();
      const at = ls.findIndex((l) => JSON.parse(l).seq === recorded.seq);
      ls[at] = `#${ls[at]!.slice(1)}`;
      save(ls);
      const e = await rejects(AuditLog.open(path), 'INTEGRITY');
      expect(e.message).to.contain(`no whole, well-formed record of seq ${recorded.seq}`).and.contain('verify-audit names it').and.not.contain('another log');
    });

    it('refuses a log whose first lines after FILE.end were cut away, to serve and to verify-audit --continuing', async () => {
      await rotatedThen(6);
      for (const seg of segments()) rmSync(seg);
      const recorded = JSON.parse(readFileSync(`${path}.end`, 'utf8')) as { seq: number };
      const ls = lines();
      save(ls.slice(3));
      const problem = `it starts at seq ${recorded.seq + 4}, but ${path}.end (where the chain stood at its last rotation) says the chain reached seq ${recorded.seq}: seq ${recorded.seq + 1} to ${recorded.seq + 3} are missing (its first lines cut away?)`;
      expect((await rejects(AuditLog.open(path), 'INTEGRITY')).message).to.equal(`the audit log ${path}: ${problem}; refusing to extend it`);
      expect(await verifyChain([path], { continuing: true })).to.deep.include({ ok: false, file: path, line: 1, problem });
      save(ls);
      expect(await verifyChain([path], { continuing: true })).to.deep.include({ ok: true, lastSeq: 36 });
      await (await AuditLog.open(path)).close();
    });

    it('refuses FILE.end and FILE.torn-TIME caught by a wider glob than F.[0-9]* with FILE_ERROR naming them, as the lock directory', async () => {
      await rotatedThen(2);
      const torn = `${path}.torn-2025-01-01T00-00-00-000Z`;
      writeFileSync(torn, '{"seq":33,"ti');
      const wide = () => readdirSync(tmp.dir).filter((n) => n.startsWith('audit.jsonl.')).sort().map((n) => join(tmp.dir, n));
      const e = await rejects(verifyChain([...wide(), path]), 'FILE_ERROR');
      expect(e.message).to.equal(`${path}.end is not an audit log but where its chain stood at the last rotation (F.end, kept beside the log): give the segments as F.[0-9]*`);
      expect((await rejects(verifyChain([...segments(), torn, path]), 'FILE_ERROR')).message).to.equal(`${torn} is not an audit log but an incomplete last line repair-audit moved aside (F.torn-TIME): give the segments as F.[0-9]*`);
      // Archived with their segments, away from the log; a log of its own named so is still a log.
      const archive = join(tmp.dir, 'archive');
      mkdirSync(archive);
      for (const f of [...segments(), `${path}.end`]) renameSync(f, join(archive, basename(f)));
      const archived = readdirSync(archive).sort().map((n) => join(archive, n));
      await rejects(verifyChain(archived, { continuing: true }), 'FILE_ERROR');
      writeFileSync(join(archive, 'mine.end'), readFileSync(path));
      expect(await verifyChain([join(archive, 'mine.end')], { continuing: true })).to.deep.include({ ok: true });
    });

    it('reads the segments of a log named through "link/.." where the kernel finds them, never beside the link', async () => {
      mkdirSync(join(tmp.dir, 'logs', 'deep'), { recursive: true });
      mkdirSync(join(tmp.dir, 'here'));
      symlinkSync(join(tmp.dir, 'logs', 'deep'), join(tmp.dir, 'here', 'link'));
      const named = `${tmp.dir}/here/link/../audit.jsonl`; // not join(), which takes the .. as text
      let log = await AuditLog.open(named, { rotateBytes: 1 });
      await fill(log, 1, 2);
      await log.close();
      log = await AuditLog.open(named); // goes on from its newest segment
      expect((await log.append(entry(3))).seq).to.equal(3);
      await log.close();
      // Archived beside the segments, F.end is still told from a log (read as one, it does not verify).
      const logs = join(tmp.dir, 'logs');
      rmSync(join(logs, 'audit.jsonl'));
      const archived = readdirSync(logs).filter((n) => /\.\d{12}-\d{12}$/.test(n)).sort().map((n) => `${tmp.dir}/here/link/../${n}`);
      expect((await rejects(verifyChain([...archived, join(logs, 'audit.jsonl.end')], { continuing: true }), 'FILE_ERROR')).message).to.match(/is not an audit log but where its chain stood/);
    });

    it('continues the latest segment when a crash came between the rename and the new file', async () => {
      const log = await AuditLog.open(path, { rotateBytes: 1500 });
      await fill(log, 1, 12);
      await log.close();
      const kept = segments();
      rmSync(path); // as if the process died right after renaming it
      const again = await AuditLog.open(path);
      const rec = await again.append(entry(13));
      await again.close();
      expect(rec.seq).to.equal(Number(kept.at(-1)!.slice(-12)) + 1);
      expect(await verifyChain([...kept, path])).to.deep.include({ ok: true, lastSeq: rec.seq });
      // A one-line continuation reopens from its end alone.
      const third = await AuditLog.open(path);
      expect((await third.append(entry(14))).prev).to.equal(rec.hash);
      await third.close();
    });
  });

  it('keeps call order and the chain under concurrent appends', async () => {
    const log = await AuditLog.open(path);
    const recs = await Promise.all(Array.from({ length: 300 }, (_, i) => log.append({ action: 'store', resource: `r${i}`, decision: 'allow' })));
    await log.close();
    expect(recs.map((r) => r.seq)).to.deep.equal(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(lines().map((l) => JSON.parse(l).resource)).to.deep.equal(Array.from({ length: 300 }, (_, i) => `r${i}`));
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 300 });
  });

  it('never leaves behind an append made just as a write completes, however many steps later', async () => {
    const log = await AuditLog.open(path);
    const hop = async (n: number) => {
      for (let i = 0; i < n; i++) await Promise.resolve();
    };
    // Each append is made from the continuation of the one before, after 0 to 5 extra microtask
    // steps: the moments when the writer may be deciding it has nothing left to do.
    for (let i = 1; i <= 60; i++) {
      await log.append(entry(i));
      await hop(i % 6);
    }
    await Promise.all([1, 2, 3].map(async (k) => {
      for (let i = 0; i < 20; i++) await log.append({ action: 'list', resource: `k${k}-${i}`, decision: 'allow' }).then(() => hop(i % 4));
    }));
    await log.close();
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 120 });
  });

  it('has each line in the file once append resolves, and refuses appends after close', async () => {
    const log = await AuditLog.open(path);
    await log.append(entry(1));
    expect(lines()).to.have.length(1);
    await log.close();
    try {
      await log.append(entry(2));
      expect.fail('appended');
    } catch (e) {
      expect((e as CertifierError).code).to.equal('INTERNAL');
    }
  });

  it('breaks, saying so once, when its file was removed while in use: nothing more would ever be read', async () => {
    const told: string[] = [];
    const log = await AuditLog.open(join(tmp.dir, 'removed.jsonl'), { onBroken: (e) => told.push(e.code) });
    await log.append({ action: 'store', decision: 'allow' });
    log.checkUsable();
    rmSync(join(tmp.dir, 'removed.jsonl'));
    await log.append({ action: 'store', decision: 'allow' }).then(() => expect.fail('appended'), (e: CertifierError) => expect(e.code).to.equal('FILE_ERROR'));
    await log.append({ action: 'store', decision: 'allow' }).catch(() => {});
    expect(() => log.checkUsable()).to.throw(/cannot be written/);
    expect(told).to.deep.equal(['FILE_ERROR']);
    await log.close();
  });

  it('breaks, saying so once, when its file is cut short while in use, rather than writing where it now ends', async () => {
    const told: string[] = [];
    const log = await AuditLog.open(path, { onBroken: (e) => told.push(e.message) });
    await log.append(entry(1));
    await log.append(entry(2));
    truncateSync(path, 0);
    const e = await rejects(log.append(entry(3)), 'FILE_ERROR');
    expect(e.message).to.match(/the file was cut short while in use \(it holds \d+ bytes, not the \d+ written\)/);
    await rejects(log.append(entry(4)), 'FILE_ERROR');
    expect(told).to.deep.equal([e.message]);
    await log.close();
  });

  it('refuses a line queued behind a write that failed (a full disk), rather than writing it after the gap', async () => {
    const log = await AuditLog.open(path);
    await log.append(entry(1));
    // The next write waits until a second line is queued behind it, then fails as a full disk does.
    const fh = (log as unknown as { fh: { write: (...a: unknown[]) => Promise<unknown> } }).fh;
    const write = fh.write.bind(fh);
    let started!: () => void;
    const writing = new Promise<void>((resolve) => (started = resolve));
    let fail!: () => void;
    const failing = new Promise<void>((resolve) => (fail = resolve));
    fh.write = async (...a: unknown[]) => {
      fh.write = write;
      started();
      await failing;
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    };
    const lost = log.append(entry(2)).then(() => 'written', (e: CertifierError) => e.code);
    await writing;
    const queued = log.append(entry(3)).then(() => 'written', (e: CertifierError) => e.code);
    fail();
    expect([await lost, await queued]).to.deep.equal(['FILE_ERROR', 'FILE_ERROR']);
    await log.close();
    expect(lines()).to.have.length(1);
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 1 });
  });

  /** Makes the log's next write put down the first half of its bytes, then fail with `code`, as a disk filling up does. */
  function failHalfway(log: AuditLog, code: string): void {
    const fh = (log as unknown as { fh: { write: (b: Buffer, off: number, len: number, pos: null) => Promise<{ bytesWritten: number }> } }).fh;
    const write = fh.write.bind(fh);
    fh.write = async (b, off, len, pos) => {
      fh.write = write;
      await write(b, off, Math.floor(len / 2), pos);
      throw Object.assign(new Error(`${code}: the disk is full, write`), { code });
    };
  }

  it('cuts off the part of a line a full disk let it write, so the next start extends the log without repair-audit', async () => {
    const log = await AuditLog.open(path);
    await log.append(entry(1));
    failHalfway(log, 'EFBIG');
    await rejects(log.append(entry(2)), 'FILE_ERROR');
    await rejects(log.append(entry(3)), 'FILE_ERROR'); // a file-size limit does not pass by itself: still broken
    await log.close();
    expect(readFileSync(path, 'utf8').endsWith('\n')).to.equal(true);
    const again = await AuditLog.open(path);
    await again.append(entry(2));
    await again.close();
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 2 });
  });

  it('goes on after a full disk once there is room again, chained to the last line on disk', async () => {
    const broken: boolean[] = [];
    const resumed: number[] = [];
    const log = await AuditLog.open(path, { onBroken: (_e, resumes) => broken.push(resumes), onResumed: (end) => resumed.push(end.seq) });
    await log.append(entry(1));
    failHalfway(log, 'ENOSPC');
    await rejects(log.append(entry(2)), 'FILE_ERROR');
    // This file system has room: the next request finds the log usable, and its line is seq 2.
    log.checkUsable();
    expect((await log.append(entry(3))).seq).to.equal(2);
    await log.close();
    expect([broken, resumed]).to.deep.equal([[true], [1]]);
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 2 });
  });

  it('stays broken after a quota is used up (EDQUOT), which the free space of the file system does not show', async () => {
    // statfs counts the file system's free blocks, not a user's quota: resumed by it, the log would
    // let every store be carried out and then fail to record it (NOT_RECORDED) while the quota is full.
    const broken: boolean[] = [];
    const log = await AuditLog.open(path, { onBroken: (_e, resumes) => broken.push(resumes) });
    await log.append(entry(1));
    failHalfway(log, 'EDQUOT');
    expect((await rejects(log.append(entry(2)), 'FILE_ERROR')).message).to.equal(`the audit log ${path} cannot be written (the disk quota is used up); no further decisions can be recorded`);
    expect(() => log.checkUsable()).to.throw(CertifierError).with.property('code', 'FILE_ERROR');
    await rejects(log.append(entry(3)), 'FILE_ERROR');
    await log.close();
    expect(broken).to.deep.equal([false]);
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 1 });
  });

  it('after a rotation watches the new file: it goes on writing there, and breaks when that one is renamed or replaced', async () => {
    for (const change of ['rename', 'replace'] as const) {
      const named = join(tmp.dir, `rotating-${change}.jsonl`);
      let rotatedUpTo = 0;
      let wake = () => {};
      const log = await AuditLog.open(named, { rotateBytes: 1, onRotate: (s) => ((rotatedUpTo = s.lastSeq), wake()) });
      await log.append(entry(1)); // rotated after each line: the name then leads to a new, empty file
      await log.append(entry(2)); // written to the first new file
      while (rotatedUpTo < 2) await new Promise<void>((resolve) => (wake = resolve));
      if (change === 'rename') renameSync(named, `${named}.moved`);
      else {
        rmSync(named);
        writeFileSync(named, ''); // another file at the name, as empty as the one it replaces
      }
      await log.append(entry(3)).then(() => expect.fail('appended'), (e: CertifierError) => expect(e.message, change).to.contain('removed or renamed'));
      await log.close();
    }
  });

  it('breaks when another file takes its name before any rotation, and when the file a rotation began is cut short', async () => {
    // Replaced: another file, as large as the log, at its name (the log's own inode, held open, is never reused).
    const log = await AuditLog.open(path);
    await log.append(entry(1));
    const held = readFileSync(path);
    rmSync(path);
    writeFileSync(path, held);
    await log.append(entry(2)).then(() => expect.fail('appended'), (e: CertifierError) => expect(e.message).to.contain('removed or renamed'));
    await log.close();
    // Cut short after a rotation: the size it checks is the new file's, from 0.
    const named = join(tmp.dir, 'rotating-cut.jsonl');
    let rotated = false;
    const rotating = await AuditLog.open(named, { rotateBytes: 3 * held.length - 10, onRotate: () => (rotated = true) });
    for (let i = 1; i <= 4; i++) await rotating.append(entry(i)); // rotated after the third
    expect(rotated).to.equal(true);
    expect(readFileSync(named, 'utf8').split('\n')).to.have.length(2); // the fourth line alone
    truncateSync(named, 10);
    await rotating.append(entry(5)).then(() => expect.fail('appended'), (e: CertifierError) => expect(e.message).to.match(/cut short while in use \(it holds \d+ bytes, not the \d+ written\)/));
    await rotating.close();
  });

  it('breaks when its file is renamed while in use (logrotate), and refuses a hard-linked log', async () => {
    const named = join(tmp.dir, 'rotated-away.jsonl');
    const log = await AuditLog.open(named);
    await log.append(entry(1));
    renameSync(named, `${named}.1`);
    await log.append(entry(2)).then(() => expect.fail('appended'), (e: CertifierError) => expect(e.message).to.contain('removed or renamed'));
    await log.close();
    const linked = join(tmp.dir, 'linked.jsonl');
    writeFileSync(linked, '');
    linkSync(linked, join(tmp.dir, 'second-name.jsonl'));
    expect((await rejects(AuditLog.open(join(tmp.dir, 'second-name.jsonl')), 'FILE_ERROR')).message).to.contain('2 hard links');
  });

  it('takes its lock in a directory of its own made 0700, and refuses a link planted where the lock goes, writing nothing through it', async () => {
    const log = await AuditLog.open(path);
    await log.close();
    expect(statSync(`${path}.lock`).mode & 0o777).to.equal(0o700);
    const victim = join(tmp.dir, 'victim');
    mkdirSync(victim, { mode: 0o755 });
    writeFileSync(join(victim, 'LOG'), 'theirs');
    const other = join(tmp.dir, 'other.jsonl');
    symlinkSync(victim, `${other}.lock`);
    const e = await rejects(AuditLog.open(other), 'FILE_ERROR');
    expect(e.message).to.contain(`${other}.lock`).and.contain('symbolic link');
    expect(readdirSync(victim)).to.deep.equal(['LOG']);
    expect(statSync(victim).mode & 0o777).to.equal(0o755);
    expect(existsSync(other)).to.equal(false);
    rmSync(`${other}.lock`);
    writeFileSync(`${other}.lock`, '');
    expect((await rejects(AuditLog.open(other), 'FILE_ERROR')).message).to.contain('not a directory');
    // A lock directory of ours that others may write in: they could plant links where LevelDB writes.
    chmodSync(`${path}.lock`, 0o777);
    expect((await rejects(AuditLog.open(path), 'FILE_ERROR')).message).to.contain('others may write in it (mode 0777)');
  });

  it('refuses a lock directory of another user\'s, naming its owner: they could swap what LevelDB writes there', async function () {
    if (process.getuid?.() !== 0) this.skip(); // only root can give a directory to another user
    await (await AuditLog.open(path)).close();
    chownSync(`${path}.lock`, 4242, 4242);
    expect((await rejects(AuditLog.open(path), 'FILE_ERROR')).message).to.contain(`${path}.lock: it belongs to user 4242, not to this user (0)`);
  });

  it('refuses a directory given as the log to open or repair as a directory, not as a file with hard links', async () => {
    const dir = join(tmp.dir, 'a-directory');
    mkdirSync(dir);
    for (const e of [await rejects(AuditLog.open(dir), 'FILE_ERROR'), await rejects(repairAuditTail(dir), 'FILE_ERROR')]) {
      expect(e.message).to.equal(`${dir} is a directory, not an audit log: give the log file itself`);
    }
    expect(readdirSync(tmp.dir)).to.deep.equal(['a-directory']); // no lock made beside it
  });

  it('makes no directory for a log given in one that is missing: FILE_ERROR naming it, and nothing made', async () => {
    const missing = join(tmp.dir, 'typo', 'logs');
    const e = await rejects(AuditLog.open(join(missing, 'audit.jsonl')), 'FILE_ERROR');
    expect(e.message).to.equal(`cannot open the audit log ${join(missing, 'audit.jsonl')}: no directory ${missing} (make it first, or correct the path)`);
    expect(readdirSync(tmp.dir)).to.deep.equal([]);
  });

  it('follows a relative link inside a linked directory as the kernel does, to the same file and lock', async () => {
    mkdirSync(join(tmp.dir, 'real', 'logs'), { recursive: true });
    mkdirSync(join(tmp.dir, 'real', 'a'));
    symlinkSync('../logs/audit.jsonl', join(tmp.dir, 'real', 'a', 'audit.jsonl'));
    symlinkSync(join(tmp.dir, 'real', 'a'), join(tmp.dir, 'alias'));
    const one = await AuditLog.open(join(tmp.dir, 'real', 'logs', 'audit.jsonl'));
    await one.append(entry(1));
    await rejects(AuditLog.open(join(tmp.dir, 'alias', 'audit.jsonl')), 'STORE_LOCKED');
    await one.close();
    const two = await AuditLog.open(join(tmp.dir, 'alias', 'audit.jsonl'));
    expect((await two.append(entry(2))).seq).to.equal(2); // the same chain, not a new one elsewhere
    await two.close();
    expect(existsSync(join(tmp.dir, 'logs')), 'no log made where the text of the path points').to.equal(false);
  });

  it('locks the file a symbolic link names even before it exists', async () => {
    mkdirSync(join(tmp.dir, 'logs'));
    symlinkSync(join(tmp.dir, 'logs', 'future.jsonl'), join(tmp.dir, 'via-link.jsonl'));
    const first = await AuditLog.open(join(tmp.dir, 'via-link.jsonl'));
    await rejects(AuditLog.open(join(tmp.dir, 'logs', 'future.jsonl')), 'STORE_LOCKED');
    await first.close();
  });

  it('is held by one process at a time: a second open fails at once with STORE_LOCKED', async () => {
    const log = await AuditLog.open(path);
    symlinkSync(path, join(tmp.dir, 'alias.jsonl'));
    await rejects(AuditLog.open(join(tmp.dir, 'alias.jsonl')), 'STORE_LOCKED'); // another path to the same file
    const e = await rejects(AuditLog.open(path), 'STORE_LOCKED');
    expect(e.message).to.contain('give each key-server its own --audit');
    await rejects(repairAuditTail(path), 'STORE_LOCKED');
    await log.append(entry(1));
    await log.close();
    await (await AuditLog.open(path)).close();
  });

  it('rotates the file a symbolic link names, never the link: a second writer by either path is still locked out', async () => {
    const real = join(tmp.dir, 'real.jsonl');
    const link = join(tmp.dir, 'link.jsonl');
    writeFileSync(real, '');
    symlinkSync(real, link);
    const log = await AuditLog.open(link, { rotateBytes: 1 });
    for (let i = 1; i <= 3; i++) await log.append(entry(i));
    expect(lstatSync(link).isSymbolicLink()).to.equal(true);
    await rejects(AuditLog.open(link), 'STORE_LOCKED');
    await rejects(AuditLog.open(real), 'STORE_LOCKED');
    await log.close();
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('real.jsonl.0'))).to.have.length(3);
  });

  describe('repair-audit: a last write cut short', () => {
    it('moves an incomplete last line aside, keeping it, and the chain goes on from the line before', async () => {
      const ls = await writeLog(5);
      const torn = ls[4]!.slice(0, 37);
      save([...ls.slice(0, 4), torn], '');
      const refused = await rejects(AuditLog.open(path), 'INTEGRITY');
      expect(refused.message).to.contain('line 5').and.to.contain('key-server repair-audit');

      const r = await repairAuditTail(path);
      expect(r).to.include({ lines: 4, removedBytes: 37 });
      expect(readFileSync(r.savedTo!, 'utf8')).to.equal(torn);
      expect(statSync(r.savedTo!).mode & 0o777).to.equal(0o600);
      expect(lines()).to.deep.equal(ls.slice(0, 4));

      const log = await AuditLog.open(path);
      expect((await log.append(entry(5))).prev).to.equal(JSON.parse(ls[3]!).hash);
      await log.close();
      expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 5 });
    });

    it('repairs a copy where no key-server ran leaving beside it only the torn line\'s file, no lock of its own (root\'s would stop the service\'s key-server); a lock that was there stays', async () => {
      const ls = await writeLog(3);
      rmSync(`${path}.lock`, { recursive: true });
      save([...ls.slice(0, 2), ls[2]!.slice(0, 20)], '');
      const r = await repairAuditTail(path);
      expect(r).to.include({ lines: 2, removedBytes: 20 });
      expect(readdirSync(tmp.dir).sort()).to.deep.equal(['audit.jsonl', basename(r.savedTo!)].sort());
      // The live log's own lock, made by the key-server that wrote it, is left as it was.
      mkdirSync(`${path}.lock`, { mode: 0o700 });
      save([...ls.slice(0, 2), ls[2]!.slice(0, 10)], '');
      const again = await repairAuditTail(path);
      expect(readdirSync(tmp.dir).sort()).to.deep.equal(['audit.jsonl', 'audit.jsonl.lock', basename(r.savedTo!), basename(again.savedTo!)].sort());
    });

    it('refuses a log that is not there (FILE_ERROR), leaving nothing beside it', async () => {
      await rejects(repairAuditTail(join(tmp.dir, 'none.jsonl')), 'FILE_ERROR');
      expect(readdirSync(tmp.dir)).to.deep.equal([]);
    });

    it('refuses a rotated segment (USAGE), torn or not, making no lock or torn file beside it', async () => {
      const log = await AuditLog.open(path, { rotateBytes: 1500 });
      for (let i = 1; i <= 12; i++) await log.append(entry(i));
      await log.close();
      const segment = readdirSync(tmp.dir).find((n) => /^audit\.jsonl\.\d{12}-\d{12}$/.test(n))!;
      const whole = readFileSync(join(tmp.dir, segment));
      writeFileSync(join(tmp.dir, segment), whole.subarray(0, whole.length - 10));
      const before = readdirSync(tmp.dir).sort();
      const e = await rejects(repairAuditTail(join(tmp.dir, segment)), 'USAGE');
      expect(e.message).to.contain('is a rotated segment of an audit log (F.FIRST-LAST): segments are never written after rotation');
      expect(readdirSync(tmp.dir).sort()).to.deep.equal(before);
      expect(readFileSync(join(tmp.dir, segment)).length).to.equal(whole.length - 10);
    });

    it('refuses a file that is not an audit log (INTEGRITY), leaving no lock beside it; one that was there stays', async () => {
      writeFileSync(path, 'notes\n');
      await rejects(repairAuditTail(path), 'INTEGRITY');
      expect(readdirSync(tmp.dir)).to.deep.equal(['audit.jsonl']);
      mkdirSync(`${path}.lock`, { mode: 0o700 });
      await rejects(repairAuditTail(path), 'INTEGRITY');
      expect(readdirSync(tmp.dir).sort()).to.deep.equal(['audit.jsonl', 'audit.jsonl.lock']);
    });

    it('changes nothing in a log that verifies, nor beside it: no lock of its own is left (a copy checked elsewhere)', async () => {
      const ls = await writeLog(3);
      rmSync(`${path}.lock`, { recursive: true });
      expect(await repairAuditTail(path)).to.deep.equal({ lines: 3, removedBytes: 0 });
      expect(lines()).to.deep.equal(ls);
      expect(readdirSync(tmp.dir)).to.deep.equal(['audit.jsonl']);
    });

    it('refuses, changing nothing, when any other line is wrong: INTEGRITY naming it', async () => {
      const ls = await writeLog(4);
      const edited = [...ls.slice(0, 1), ls[1]!.replace('vhd/disk2', 'vhd/disk9'), ...ls.slice(2)];
      save(edited.slice(0, 3).concat(ls[3]!.slice(0, 20)), '');
      const before = readFileSync(path);
      const e = await rejects(repairAuditTail(path), 'INTEGRITY');
      expect(e.details?.line).to.equal(2);
      expect(readFileSync(path).equals(before)).to.equal(true);
      expect(readdirSync(tmp.dir).filter((f) => f.includes('torn'))).to.deep.equal([]);
    });
  });

  it('refuses malformed entries with INVALID_INPUT, writing nothing', async () => {
    const log = await AuditLog.open(path);
    for (const e of [{ action: '', decision: 'allow' }, { action: 'x', decision: 'maybe' }, { action: 'x', decision: 'allow', version: -1 }, { action: 'x', decision: 'deny', code: 7 }]) {
      try {
        await log.append(e as AuditEntry);
        expect.fail(`accepted ${JSON.stringify(e)}`);
      } catch (err) {
        expect((err as CertifierError).code).to.equal('INVALID_INPUT');
      }
    }
    await log.append(entry(1));
    await log.close();
    expect(await verifyAudit(path)).to.deep.equal({ ok: true, lines: 1 });
  });
});

// Audit logs written by earlier versions, read and extended by this one: c1b090e's log rotated at
// 1 MiB (its format of before `deleted` and escaped names, and no audit.jsonl.end), and a last line
// an earlier key-server's crash left incomplete. test/vectors/earlier-versions/*/NOTES.md say how
// each was made.

import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AuditLog, repairAuditTail } from '../../lib/keyservice/audit.ts';
import { verifyChain } from '../../lib/keyservice/audit-chain.ts';
import { startServer } from '../e2e/domain.ts';
import { c1b090eLog, copyOf, EARLIER } from '../support/earlier-versions.ts';
import { run, tempDir } from '../support/helpers.ts';
import { rejects } from '../support/rejects.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** What c1b090e wrote (NOTES.md), and where its chain ends. */
const C1B090E = {
  segment: { name: 'audit.jsonl.000000000001-000000002564', sha256: '7934158a8b7c032e8f2e1d53db22d0a1f9156b8f8bf409c172a589c00ad38a7d' },
  log: { sha256: 'f782830f4e5745e0447bc9e2d8da9288326af5c76a9eac620467def137c1d269' },
  segmentEnd: { seq: 2564, hash: 'ab11a200acc3c60ac974678077b883d9f18631ff7bc19db0031bb5fb2654e5bc' },
  end: { seq: 2576, hash: '71707ddd2c7ad594325ee83d4c5adf0725050776b042bcba35f85d179a04297c' },
};

/** The hash of line `n` (1-based) of a log's text. */
const hashOfLine = (text: string, n: number) => (JSON.parse(text.split('\n')[n - 1]!) as { hash: string }).hash;

describe('audit logs written by earlier versions', function () {
  this.timeout(60_000);
  const old = c1b090eLog();
  let tmp: ReturnType<typeof tempDir>;
  let dir: string;
  let segment: string;
  let log: string;
  beforeEach(() => {
    tmp = tempDir('earlier-audit-');
    dir = tmp.dir;
    segment = join(dir, old.segmentName);
    log = join(dir, 'audit.jsonl');
    writeFileSync(segment, old.segment, { mode: 0o600 });
    writeFileSync(log, old.log, { mode: 0o600 });
  });
  afterEach(() => tmp.cleanup());

  /** A copy of e380c14's certified key-server and key-client (NOTES.md there), to serve and ask. */
  const e380c14 = () => {
    const d = copyOf(dir);
    const sealed = (m: 'ks' | 'kc') => ['--store', join(d, `${m}-store`), '--sealed', '--platform-dir', join(d, 'platform'), '--measurement-file', join(d, `${m}.measurement`)];
    const common = ['--domain', 'datica', '--policy-cert', join(d, 'policy-cert.pem')];
    return {
      dir: d,
      serve: (audit: string) => ['serve', ...common, '--data', join(d, 'ks-data'), '--audit', audit, '--listen', '127.0.0.1:0', ...sealed('ks')],
      list: (port: number) => ['list', ...common, '--server', `127.0.0.1:${port}`, ...sealed('kc')],
    };
  };

  describe('c1b090e\'s log rotated at 1 MiB', () => {
    it('is written again from its seed byte for byte: the seed\'s lines first, then the segment and log c1b090e wrote', () => {
      expect(old.segmentName).to.equal(C1B090E.segment.name);
      expect(old.segment.length).to.be.at.least(2 ** 20);
      expect(old.segment.subarray(0, Buffer.byteLength(old.seed.join('\n')) + 1).toString('utf8')).to.equal(`${old.seed.join('\n')}\n`);
      expect(sha256(old.segment)).to.equal(C1B090E.segment.sha256);
      expect(sha256(old.log)).to.equal(C1B090E.log.sha256);
    });

    it('verify-audit accepts the segment and the log as one chain, and each alone', async () => {
      const [both, alone, continuing] = await Promise.all([
        run('key-server', ['verify-audit', segment, log, '--json']),
        run('key-server', ['verify-audit', segment, '--json']),
        run('key-server', ['verify-audit', log, '--continuing', '--json']),
      ]);
      expect(both.status, both.stderr).to.equal(0);
      expect(both.json()).to.include({ files: 2, lines: C1B090E.end.seq, lastSeq: C1B090E.end.seq, lastHash: C1B090E.end.hash });
      expect(alone.status, alone.stderr).to.equal(0);
      expect(alone.json()).to.include({ lines: C1B090E.segmentEnd.seq, lastHash: C1B090E.segmentEnd.hash });
      expect(continuing.status, continuing.stderr).to.equal(0);
      expect(continuing.json()).to.include({ lastSeq: C1B090E.end.seq, lastHash: C1B090E.end.hash });
    });

    it('key-server started on its directory (no audit.jsonl.end) continues the chain, which verify-audit then checks whole', async () => {
      const fx = e380c14();
      const { child, port } = await startServer('key-server', fx.serve(log));
      try {
        await child.waitForLog(new RegExp(`audit-continues path=\\S+ lastSeq=${C1B090E.end.seq} lastHash=${C1B090E.end.hash}$`));
        const listed = await run('key-client', fx.list(port));
        expect(listed.status, listed.stderr).to.equal(0);
      } finally {
        await child.stop();
      }
      const r = await run('key-server', ['verify-audit', segment, log, '--expect', `${C1B090E.end.seq}:${C1B090E.end.hash}`, '--json']);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.json()).to.include({ lines: C1B090E.end.seq + 1 });
      const added = JSON.parse(readFileSync(log, 'utf8').split('\n').at(-2)!) as Record<string, unknown>;
      expect(added).to.include({ seq: C1B090E.end.seq + 1, prev: C1B090E.end.hash, action: 'list', decision: 'allow' });
      expect(existsSync(`${log}.end`)).to.equal(false);
    });

    it('a key-server continues the segment alone, where c1b090e stopped between its rename and the new log', async () => {
      rmSync(log); // c1b090e made no log after the rename
      const opened = await AuditLog.open(log);
      expect(opened.writtenEnd).to.deep.equal(C1B090E.segmentEnd);
      await opened.append({ action: 'list', resource: '', decision: 'allow' });
      await opened.close();
      expect(await verifyChain([segment, log])).to.include({ ok: true, lastSeq: C1B090E.segmentEnd.seq + 1 });
    });
  });

  describe('a last line an earlier key-server\'s crash left incomplete', () => {
    it('key-server refuses e380c14\'s log cut inside its last line (exit 4, naming repair-audit), and after repair-audit continues from the line before', async () => {
      const fx = e380c14();
      const audit = join(fx.dir, 'ks-data', 'audit.jsonl');
      const text = readFileSync(audit, 'utf8');
      const lastStart = text.lastIndexOf('\n', text.length - 2) + 1;
      const cut = lastStart + 100;
      truncateSync(audit, cut);

      const verified = await run('key-server', ['verify-audit', audit, '--json']);
      expect(verified.status).to.equal(4);
      expect(verified.json().error).to.include({ code: 'INTEGRITY', line: 11 });
      const refused = await run('key-server', fx.serve(audit));
      expect(refused.status, refused.stderr).to.equal(4);
      expect(refused.stderr).to.contain(`the audit log ${audit} does not verify at line 11: the last line is incomplete (no newline)`)
        .and.contain(`refusing to extend it (key-server repair-audit ${audit} moves that line aside) [INTEGRITY]`);
      expect(readFileSync(audit, 'utf8')).to.equal(text.slice(0, cut));

      const repaired = await run('key-server', ['repair-audit', audit]);
      expect(repaired.status, repaired.stderr).to.equal(0);
      expect(repaired.out).to.contain('moved the incomplete last line (100 bytes)').and.contain('ok: 10 line(s), chain intact');
      const torn = readdirSync(join(fx.dir, 'ks-data')).filter((n) => n.startsWith('audit.jsonl.torn-'));
      expect(torn).to.have.length(1);
      expect(readFileSync(join(fx.dir, 'ks-data', torn[0]!), 'utf8')).to.equal(text.slice(lastStart, cut));

      const { child } = await startServer('key-server', fx.serve(audit));
      try {
        await child.waitForLog(new RegExp(`audit-continues path=\\S+ lastSeq=10 lastHash=${hashOfLine(text, 10)}$`));
      } finally {
        await child.stop();
      }
    });

    /** The tails a crash or a power loss leaves, each with the seq and hash open goes on from once repair-audit has moved it. */
    const tails = (): { what: string; path: string; keep: Buffer; tail: Buffer; from: { seq: number; hash: string } }[] => {
      const e380 = readFileSync(join(EARLIER, 'e380c14', 'ks-data', 'audit.jsonl'));
      const e380Text = e380.toString('utf8');
      const alone = join(dir, 'e380c14.jsonl'); // no segment beside it
      const tenEnd = e380.lastIndexOf(0x0a, e380.length - 2) + 1;
      const logEnd = old.log.lastIndexOf(0x0a, old.log.length - 2) + 1;
      const key = old.log.indexOf(Buffer.from('\u{1f511}'), logEnd);
      const firstLine = old.log.indexOf(0x0a) + 1;
      return [
        { what: 'e380c14\'s last line whole but for its newline', path: alone, keep: e380.subarray(0, tenEnd), tail: e380.subarray(tenEnd, e380.length - 1), from: { seq: 10, hash: hashOfLine(e380Text, 10) } },
        { what: 'zeros where e380c14\'s last line was to be (a power loss after the file grew)', path: alone, keep: e380.subarray(0, tenEnd), tail: Buffer.alloc(e380.length - tenEnd), from: { seq: 10, hash: hashOfLine(e380Text, 10) } },
        { what: 'c1b090e\'s last line cut inside a name it wrote raw (inside a UTF-8 sequence)', path: log, keep: old.log.subarray(0, logEnd), tail: old.log.subarray(logEnd, key + 2), from: { seq: C1B090E.end.seq - 1, hash: hashOfLine(old.log.toString('utf8'), 11) } },
        { what: 'c1b090e\'s first line after a rotation cut short (the log empty once repaired: the segment is continued)', path: log, keep: Buffer.alloc(0), tail: old.log.subarray(0, firstLine - 40), from: C1B090E.segmentEnd },
      ];
    };

    it('repair-audit moves exactly the incomplete tail of the earlier versions\' lines, and the log goes on from the line before it', async () => {
      for (const t of tails()) {
        writeFileSync(t.path, Buffer.concat([t.keep, t.tail]));
        const e = await rejects(AuditLog.open(t.path), 'INTEGRITY');
        expect(e.message, t.what).to.contain('the last line is incomplete (no newline)');
        const r = await repairAuditTail(t.path);
        expect(r.removedBytes, t.what).to.equal(t.tail.length);
        expect(readFileSync(r.savedTo!).equals(t.tail), t.what).to.equal(true);
        expect(readFileSync(t.path).equals(t.keep), t.what).to.equal(true);
        const opened = await AuditLog.open(t.path);
        expect(opened.writtenEnd, t.what).to.deep.equal(t.from);
        await opened.close();
      }
    });
  });

  describe('back to a key-server that rotates without audit.jsonl.end (from c1b090e until 9cdf44d), then forward again', () => {
    // What such a key-server leaves: segments rotated after the one FILE.end names, FILE.end as
    // this version last wrote it. Its lines are this version's when nothing new is in them (ASCII
    // names, no delete), so this version's writer makes them, and FILE.end is put back after.
    const path = () => join(dir, 'back.jsonl');
    const serve = async (lines: number, rotateBytes: number): Promise<void> => {
      const l = await AuditLog.open(path(), { rotateBytes });
      for (let i = 0; i < lines; i++) await l.append({ action: 'retrieve', resource: `vhd/disk${i}`, decision: 'allow' });
      await l.close();
    };
    const segmentsOf = () => readdirSync(dir).filter((n) => /^back\.jsonl\.\d{12}-\d{12}$/.test(n)).sort().map((n) => join(dir, n));
    const backAndForth = async (): Promise<void> => {
      await serve(2, 1); // this version: segments 1-1 and 2-2, FILE.end at seq 2
      const end = readFileSync(`${path()}.end`);
      await serve(2, 1); // the earlier one: segments 3-3 and 4-4, FILE.end left at seq 2
      await serve(1, 2 ** 20); // and seq 5 in the log
      writeFileSync(`${path()}.end`, end);
    };

    it('a key-server of this version continues the newest segment, which the chain links to FILE.end\'s record', async () => {
      await backAndForth();
      expect(await verifyChain([...segmentsOf(), path()])).to.include({ ok: true, lastSeq: 5 });
      const opened = await AuditLog.open(path());
      expect(opened.writtenEnd.seq).to.equal(5);
      await opened.append({ action: 'list', resource: '', decision: 'allow' });
      await opened.close();
      expect(await verifyChain([...segmentsOf(), path()])).to.include({ ok: true, lastSeq: 6 });
    });

    it('refuses a newest segment after FILE.end\'s record that does not link to it: another chain\'s, or one whose segments between were moved away', async () => {
      await backAndForth();
      const [, , third, fourth] = segmentsOf();
      const other = join(dir, 'other', 'back.jsonl');
      mkdirSync(dirname(other));
      const foreign = await AuditLog.open(other, { rotateBytes: 1 });
      for (let i = 1; i <= 4; i++) await foreign.append({ action: 'retrieve', resource: `other${i}`, decision: 'allow' });
      await foreign.close();
      const kept = readFileSync(fourth!);
      copyFileSync(join(dirname(other), basename(fourth!)), fourth!); // the same name, another chain
      const e = await rejects(AuditLog.open(path()), 'INTEGRITY');
      expect(e.message).to.contain(`the audit segment ${fourth} ends at seq 4`).and.contain('refusing to continue it');
      writeFileSync(fourth!, kept);

      rmSync(third!); // archived: nothing links the newest segment to FILE.end's record now
      const gap = await rejects(AuditLog.open(path()), 'INTEGRITY');
      expect(gap.message).to.contain(`the audit segment ${fourth} ends at seq 4`).and.contain('seq 3 is missing').and.contain('refusing to continue it');
    });

    it('refuses a segment after FILE.end\'s record whose name\'s first seq is not its first line\'s (INTEGRITY naming it, as verify-audit refuses it)', async () => {
      await backAndForth();
      const [, , third] = segmentsOf();
      const misnamed = third!.replace(/\.000000000003-/, '.000000000002-');
      renameSync(third!, misnamed);
      const problem = 'it starts at seq 3, not the 2 its name says';
      expect(await verifyChain([...segmentsOf(), path()])).to.deep.include({ ok: false, file: misnamed, line: 1, problem });
      const e = await rejects(AuditLog.open(path()), 'INTEGRITY');
      expect(e.message).to.contain(`the segments after that record do not lead to it: ${misnamed}: ${problem}`);
      renameSync(misnamed, third!);
      await (await AuditLog.open(path())).close();
    });

    it('a key-server of this version continues the newest segment when the first after FILE.end\'s record holds that record: a rotation cut short (FILE.end written, the log not renamed), then served on by the earlier one', async () => {
      await serve(3, 2 ** 20); // seq 1 to 3 in the log
      const hash3 = (JSON.parse(readFileSync(path(), 'utf8').split('\n')[2]!) as { hash: string }).hash;
      const cutShort = `${JSON.stringify({ seq: 3, hash: hash3 })}\n`; // what the rotation wrote before it was cut short
      await serve(2, 1); // the earlier one: the log (seq 1 to 4) rotated at seq 4, then seq 5 in a segment of its own
      writeFileSync(`${path()}.end`, cutShort);
      expect(await verifyChain([...segmentsOf(), path()])).to.include({ ok: true, lastSeq: 5 });
      const opened = await AuditLog.open(path());
      expect(opened.writtenEnd.seq).to.equal(5);
      await opened.close();
      // Not a record of the chain's: refused as before.
      writeFileSync(`${path()}.end`, `${JSON.stringify({ seq: 3, hash: 'f'.repeat(64) })}\n`);
      expect((await rejects(AuditLog.open(path()), 'INTEGRITY')).message).to.contain(`${segmentsOf()[0]} does not continue ${path()}.end`);
    });

    it('refuses with FILE_ERROR naming it a segment between FILE.end\'s record and the newest that is a directory, a dangling link or a FIFO (not a bare EISDIR or ENOENT, nor a wait)', async () => {
      await backAndForth();
      const [, , third] = segmentsOf();
      rmSync(third!);
      mkdirSync(third!);
      const asDir = await rejects(AuditLog.open(path()), 'FILE_ERROR');
      expect(asDir.message).to.contain(third!);
      rmSync(third!, { recursive: true });
      symlinkSync('archived-away', third!);
      const dangling = await rejects(AuditLog.open(path()), 'FILE_ERROR');
      expect(dangling.message).to.contain(third!);
      rmSync(third!);
      execFileSync('mkfifo', [third!]); // opened plainly, it would hang the start
      const fifo = await rejects(AuditLog.open(path()), 'FILE_ERROR');
      expect(fifo.message).to.contain(third!);
    });
  });
});

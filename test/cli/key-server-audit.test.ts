// key-server verify-audit and repair-audit as programs: the chain's end verify-audit prints is an
// anchor, and --expect finds a chain rewritten (every hash recomputed) or cut short after it was
// printed; repair-audit says what it knows of the line it moves aside.

import { expect } from 'chai';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog } from '../../lib/keyservice/audit.ts';
import { rechain } from '../support/audit-lines.ts';
import { run, tempDir } from '../support/helpers.ts';

describe('key-server verify-audit and repair-audit', () => {
  let tmp: ReturnType<typeof tempDir>;
  let path: string;
  beforeEach(async () => {
    tmp = tempDir('verify-audit-');
    path = join(tmp.dir, 'audit.jsonl');
    const log = await AuditLog.open(path);
    for (let i = 1; i <= 5; i++) await log.append({ action: 'retrieve', resource: `vhd/disk${i}`, decision: 'allow' });
    await log.close();
  });
  afterEach(() => tmp.cleanup());

  const lines = () => readFileSync(path, 'utf8').split('\n').slice(0, -1);

  it('prints the chain\'s end, which --expect later finds rewritten or cut short (exit 4)', async () => {
    const end = JSON.parse(lines()[4]!) as { hash: string };
    const ok = await run('key-server', ['verify-audit', path]);
    expect(ok.status, ok.stderr).to.equal(0);
    expect(ok.out).to.equal(`ok: 5 line(s), chain intact\nend: seq 5, hash ${end.hash} (keep it elsewhere: verify-audit --expect 5:HASH checks the chain still holds it)\n`);
    const json = (await run('key-server', ['verify-audit', path, '--json'])).json();
    expect(json).to.include({ ok: true, lines: 5, lastSeq: 5, lastHash: end.hash });
    const second = JSON.parse(lines()[1]!) as { hash: string };
    expect((await run('key-server', ['verify-audit', path, '--expect', `5:${end.hash}`, '--expect', `2:${second.hash}`])).status).to.equal(0);

    // Rewritten: line 3 edited and the chain recomputed from there. It verifies; the anchors do not.
    const original = lines();
    writeFileSync(path, rechain(original.map((l, i) => (i === 2 ? l.replace('vhd/disk3', 'vhd/disk9') : l))).join('\n') + '\n');
    expect((await run('key-server', ['verify-audit', path])).status).to.equal(0);
    const rewritten = await run('key-server', ['verify-audit', path, '--expect', `2:${second.hash}`, '--expect', `5:${end.hash}`, '--json']);
    expect(rewritten.status).to.equal(4);
    expect(rewritten.json().error.message).to.match(new RegExp(`^line 5 of .*audit\\.jsonl: the record of seq 5 has hash [0-9a-f]{64}, but --expect 5:${end.hash} says ${end.hash} \\(the chain was rewritten from there or before\\)$`));

    // Cut short: the last two lines removed, which leaves a chain that verifies.
    writeFileSync(path, original.slice(0, 3).join('\n') + '\n');
    expect((await run('key-server', ['verify-audit', path])).status).to.equal(0);
    const cut = await run('key-server', ['verify-audit', path, '--expect', `5:${end.hash}`]);
    expect(cut.status).to.equal(4);
    expect(cut.stderr).to.contain(`the chain ends at seq 3, but --expect 5:${end.hash} says it reached seq 5: seq 4 to 5 are missing`).and.contain('[INTEGRITY]');

    const malformed = await run('key-server', ['verify-audit', path, '--expect', '5:nothex']);
    expect(malformed.status).to.equal(2);
    expect(malformed.stderr).to.contain('expected SEQ:HASH');
  });

  it('takes --expect from seq 1 (the first record) and refuses seq 0, a 16-digit seq and a hash not of 64 lowercase hex digits (USAGE, exit 2)', async () => {
    const first = JSON.parse(lines()[0]!) as { hash: string };
    const h = first.hash;
    const refused = [`0:${h}`, `1234567890123456:${h}`, `1:${h.toUpperCase()}`, `1:${h.slice(1)}`, `1:${h}0`];
    const [taken, far, ...runs] = await Promise.all([
      run('key-server', ['verify-audit', path, '--expect', `1:${h}`]),
      // The longest seq it takes is read as a number: a chain that never reached it (exit 4).
      run('key-server', ['verify-audit', path, '--expect', `999999999999999:${h}`]),
      ...refused.map((v) => run('key-server', ['verify-audit', path, '--expect', v, '--json'])),
    ]);
    expect(taken.status, taken.stderr).to.equal(0);
    expect(far.status, far.stderr).to.equal(4);
    expect(far.stderr).to.contain('--expect 999999999999999:').and.contain('[INTEGRITY]');
    runs.forEach((r, i) => {
      expect(r.status, `${refused[i]}: ${r.out}`).to.equal(2);
      expect(r.json().error, refused[i]).to.include({ code: 'USAGE', exitStatus: 2 });
      expect(r.json().error.message).to.contain("expected SEQ:HASH, a seq from 1 and 64 lowercase hex digits");
    });
  });

  /** A log of 3 lines, each rotated into a segment of its own: the log is left empty. */
  const rotatedLog = async () => {
    const rotated = join(tmp.dir, 'rotated.jsonl');
    const log = await AuditLog.open(rotated, { rotateBytes: 1 });
    const records = [];
    for (let i = 1; i <= 3; i++) records.push(await log.append({ action: 'retrieve', resource: `vhd/disk${i}`, decision: 'allow' }));
    await log.close();
    const segments = readdirSync(tmp.dir).filter((n) => /^rotated\.jsonl\.\d+-\d+$/.test(n)).sort().map((n) => join(tmp.dir, n));
    return { rotated, records, segments };
  };

  it('gives the chain\'s end as FILE.end\'s for an empty log whose segments were archived, as key-server does, and --expect takes it', async () => {
    const { rotated, records, segments } = await rotatedLog();
    const { seq, hash } = records[2]!;
    for (const seg of segments) rmSync(seg);
    const r = await run('key-server', ['verify-audit', '--continuing', rotated]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.out).to.equal(`ok: 0 line(s) in 1 file(s): the chain goes on from seq 3, where ${rotated}.end says it stood at its last rotation\nend: seq 3, hash ${hash} (keep it elsewhere: verify-audit --expect 3:HASH checks the chain still holds it)\n`);
    expect((await run('key-server', ['verify-audit', '--continuing', rotated, '--json'])).json()).to.include({ lines: 0, lastSeq: seq, lastHash: hash, fromGenesis: false });
    expect((await run('key-server', ['verify-audit', '--continuing', rotated, '--expect', `3:${hash}`])).status).to.equal(0);
    expect((await run('key-server', ['verify-audit', '--continuing', rotated, '--expect', `3:${'f'.repeat(64)}`])).status).to.equal(4);
    // The README's glob for the segments, now matching none (the shell passes it on as it is):
    // the message says the log was rotated, and what to give instead.
    const none = await run('key-server', ['verify-audit', `${rotated}.[0-9]*`, rotated]);
    expect(none.status).to.equal(1);
    expect(none.stderr).to.contain(`no file matches ${rotated}.[0-9]* (the log was rotated (${rotated}.end is there) and its segments moved away: give the log alone with --continuing`);
  });

  it('verifies the segments of a log a crash left between a rotation\'s rename and its new file (FILE.end beside them, no log), as key-server continues them, saying the log is not there', async () => {
    const { rotated, records, segments } = await rotatedLog();
    rmSync(rotated); // the new, empty file not yet made
    const r = await run('key-server', ['verify-audit', ...segments, rotated]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.out).to.equal(`ok: 3 line(s) in 3 file(s), seq 1..3, chain intact\n`
      + `note: ${rotated} is not there: a rotation was cut short after renaming it into a segment, before making the new one (key-server makes it at its next start, and goes on from the newest segment)\n`
      + `end: seq 3, hash ${records[2]!.hash} (keep it elsewhere: verify-audit --expect 3:HASH checks the chain still holds it)\n`);
    expect((await run('key-server', ['verify-audit', ...segments, rotated, '--json'])).json()).to.include({ lines: 3, files: 3, lastSeq: 3, logMissing: true });
    // FILE.end is still checked: the newest segment removed too is a chain one record short.
    rmSync(segments[2]!);
    const short = await run('key-server', ['verify-audit', segments[0]!, segments[1]!, rotated]);
    expect(short.status, short.stderr).to.equal(4);
    expect(short.stderr).to.contain(`says it reached seq 3: seq 3 is missing`);
    // A log that was never rotated (no FILE.end) and is not there is a mistyped name, as before.
    const typo = await run('key-server', ['verify-audit', ...segments.slice(0, 2), `${rotated}x`]);
    expect(typo.status).to.equal(1);
    expect(typo.stderr).to.contain(`cannot read the audit log ${rotated}x: no such file`);
  });

  it('names the segments beside the log that were not given (a rotation after the glob was expanded) as a usage mistake (exit 2), not as lines missing (exit 4)', async () => {
    const { rotated, segments } = await rotatedLog();
    const newest = segments.pop()!; // seq 3, rotated after the shell listed the others
    const usage = `the segment ${newest} beside ${rotated}, which holds seq 3, was not given (a rotation since the files were listed?): give the segments, then the log (${rotated}.[0-9]* ${rotated})`;
    const empty = await run('key-server', ['verify-audit', ...segments, rotated]);
    expect(empty.status, empty.stderr).to.equal(2);
    expect(empty.stderr).to.contain(usage);
    // The log went on after that rotation: its first line, seq 4, follows the segment not given.
    const log = await AuditLog.open(rotated);
    await log.append({ action: 'retrieve', resource: 'vhd/disk4', decision: 'allow' });
    await log.close();
    const after = await run('key-server', ['verify-audit', ...segments, rotated]);
    expect(after.status, after.stderr).to.equal(2);
    expect(after.stderr).to.contain(usage);
    expect((await run('key-server', ['verify-audit', ...segments, newest, rotated])).status).to.equal(0);
    // The log alone, as a job written before the log was rotated gives it.
    const alone = await run('key-server', ['verify-audit', rotated]);
    expect(alone.status, alone.stderr).to.equal(2);
    expect(alone.stderr).to.contain(`the segments ${[...segments, newest].join(', ')} beside ${rotated}, which hold seq 1 to 3, were not given`);
    // More than a few are named by the first and the last.
    const more = await AuditLog.open(rotated, { rotateBytes: 1 });
    await more.append({ action: 'retrieve', resource: 'vhd/disk5', decision: 'allow' });
    await more.close();
    const last = `${rotated}.000000000004-000000000005`;
    expect((await run('key-server', ['verify-audit', rotated])).stderr).to.contain(`the segments ${segments[0]} to ${last} (4) beside ${rotated}, which hold seq 1 to 5, were not given`);
  });

  it('finds a chain one record short of FILE.end or of --expect (exit 4), not a usage mistake', async () => {
    const { rotated, segments } = await rotatedLog();
    rmSync(segments[2]!); // the newest segment, seq 3 alone
    const r = await run('key-server', ['verify-audit', segments[0]!, segments[1]!, rotated]);
    expect(r.status, r.stderr).to.equal(4);
    expect(r.stderr).to.contain(`the chain ends at seq 2, but ${rotated}.end (where the chain stood at its last rotation) says it reached seq 3: seq 3 is missing`);
    const end = JSON.parse(lines()[4]!) as { hash: string };
    writeFileSync(path, lines().slice(0, 4).join('\n') + '\n');
    const cut = await run('key-server', ['verify-audit', path, '--expect', `5:${end.hash}`]);
    expect(cut.status, cut.stderr).to.equal(4);
    expect(cut.stderr).to.contain('the chain ends at seq 4, but --expect 5:').and.contain('seq 5 is missing');
  });

  it('takes an --expect before the files given as a usage mistake (exit 2), naming what to give', async () => {
    const { rotated, records, segments } = await rotatedLog();
    for (const files of [[rotated], [segments[2]!, rotated]]) {
      const r = await run('key-server', ['verify-audit', '--continuing', ...files, '--expect', `1:${records[0]!.hash}`]);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.contain(`the files given start after seq 1, which --expect 1:${records[0]!.hash} names: give the segments that hold it, before them`).and.contain('[USAGE]');
    }
    expect((await run('key-server', ['verify-audit', ...segments, rotated, '--expect', `1:${records[0]!.hash}`])).status).to.equal(0);
  });

  it('gives the file and line of a bad line in the JSON error, as well as in its message', async () => {
    writeFileSync(path, lines().map((l, i) => (i === 1 ? l.replace('vhd/disk2', 'vhd/disk7') : l)).join('\n') + '\n');
    const r = await run('key-server', ['verify-audit', path, '--json']);
    expect(r.status).to.equal(4);
    expect(r.json().error).to.include({ code: 'INTEGRITY', file: path, line: 2 });
  });

  it('verify-audit of a log whose last line is incomplete names repair-audit, as serve\'s refusal does (exit 4)', async () => {
    writeFileSync(path, `${readFileSync(path, 'utf8')}{"seq":6,"ti`);
    const r = await run('key-server', ['verify-audit', path]);
    expect([r.status, r.out]).to.deep.equal([4, '']);
    expect(r.stderr).to.contain(`line 6 of ${path}: the last line is incomplete (no newline)`)
      .and.contain(`(if a crash cut it short: stop the key-server, then key-server repair-audit ${path} moves it aside) [INTEGRITY]`);
  });

  it('repair-audit says the line it moved is incomplete, and what a crash mid-write leaves, not that it knows this one came from one', async () => {
    const whole = readFileSync(path, 'utf8');
    writeFileSync(path, `${whole}{"seq":6,"ti`);
    const r = await run('key-server', ['repair-audit', path]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.out).to.match(/^moved the incomplete last line \(12 bytes\) to \S+audit\.jsonl\.torn-\S+: a crash mid-write leaves such a line, which was then never acknowledged\nok: 5 line\(s\), chain intact\n$/);
  });
});

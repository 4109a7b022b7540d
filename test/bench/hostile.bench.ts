// Hostile input: what refusing a crafted input costs beside reading a well-formed one of the same
// size. A parser whose cost grows faster than its input lets anyone who can send it bytes stall
// the program (1 MiB of PEM BEGIN lines without their END once took simpleserver 20 s to read at
// start; half a million empty credential entries in one request were decoded, 60 MB, before
// being counted). Each row times the refusal (subject) against a linear reference (baseline).

import { randomBytes } from 'node:crypto';
import { sha256 } from '../../lib/crypto/index.ts';
import { pemBlocks } from '../../lib/pki/index.ts';
import { parseKeyRequest } from '../../lib/keyservice/protocol.ts';
import { DEFAULT_FRAME_LIMIT, encode } from '../../lib/wire/index.ts';
import { compare, section, type Row } from './harness.ts';

/** Runs `f`, taking a thrown error as the refusal it is meant to be. */
const refusing = (f: () => unknown) => async () => {
  try {
    f();
  } catch {
    // refused, as expected
  }
};

section(
  'hostile input: a refusal vs a linear reference of the same size',
  { columns: { case: 'input', baseline: 'reference ops/s', subject: 'refused ops/s' } },
  async (ctx) => {
    const quick = ctx.options.quick;
    const rows: Row[] = [];
    const target = { minRatio: 0.1 };

    // 512 KiB of PEM: one block of base64, against BEGIN lines none of which has its END.
    const size = 512 * 1024;
    const body = randomBytes((size * 3) / 4 - 64).toString('base64').replace(/.{64}/g, '$&\n');
    const valid = `-----BEGIN X509 CRL-----\n${body}\n-----END X509 CRL-----\n`;
    const line = '-----BEGIN X509 CRL-----\n';
    const hostile = line.repeat(Math.floor(valid.length / line.length));
    ctx.log('PEM');
    const pem = await compare({
      repeats: quick ? 2 : 5, iterations: quick ? 5 : 20,
      baseline: refusing(() => pemBlocks(valid, 'X509 CRL')), subject: refusing(() => pemBlocks(hostile, 'X509 CRL')),
    });
    rows.push({ case: '512 KiB PEM', op: 'BEGIN lines without END vs one block', baseline: pem.baseline, subject: pem.subject, paired: pem.paired, target });

    // A key-server request filling a frame, credentials of empty entries (more than the 4
    // certificates a credential may hold), against hashing its bytes once: a valid request's big
    // field is a view, free to read, so the reference is work every byte of a frame gets anyway
    // (the TLS record layer decrypts and authenticates each one).
    const chain = new Uint8Array(DEFAULT_FRAME_LIMIT - 80);
    for (let i = 0; i < chain.length; i += 2) chain[i] = 0x0a; // cert_certs, 0 bytes long
    const credentials = encode('key_service_message_request', { requestType: 'list', resourceName: '', serializedCredentials: chain });
    ctx.log('key-server request');
    const req = await compare({
      repeats: quick ? 2 : 5, iterations: quick ? 5 : 20,
      baseline: refusing(() => sha256(credentials)), subject: refusing(() => parseKeyRequest(credentials)),
    });
    rows.push({ case: '1 MiB request', op: 'credentials of empty entries vs SHA-256 of it', baseline: req.baseline, subject: req.subject, paired: req.paired, target });
    ctx.note('in-process, one at a time; target: refusing a crafted input costs at most ten times reading a valid one of its size (PEM) or hashing it once (a request frame)');
    return rows;
  },
);

// Where a key-server retrieve's time goes: each stage alone, sequentially, on this thread, with
// the same objects the in-process key-server uses (its backend, its audit log, its storage key).
// Set beside the per-operation times of the key-server section, they show what the service adds
// to the transport: per connection the two verifyPeer calls (the peer chain taken from the TLS
// socket, then validateAdmission), per request the handler, of which the synced audit append is
// the part that waits on the disk.

import tls from 'node:tls';
import { validateAdmission, type ValidatedPeer } from '../../lib/pki/index.ts';
import { checkCryptstoreEntry, decode, type CryptstoreEntry } from '../../lib/wire/index.ts';
import { baseTlsOptions, peerChain } from '../../lib/channel/tlsutil.ts';
import type { AuditLog } from '../../lib/keyservice/audit.ts';
import type { KeyBackend } from '../../lib/keyservice/backend.ts';
import { KeyService } from '../../lib/keyservice/handlers.ts';
import { KeyStore } from '../../lib/keyservice/keystore.ts';
import { encodeKeyRequest, parseKeyResponse } from '../../lib/keyservice/protocol.ts';
import { storageKeyFrom } from '../../lib/keyservice/server.ts';
import type { Cryptstore } from '../../cryptstore/index.ts';
import type { Leaf } from './domain.ts';
import { rate } from './harness.ts';

export interface StageInputs {
  backend: KeyBackend;
  audit: AuditLog;
  /** The server's cryptstore, holding the storage key the records are sealed under. */
  store: Cryptstore;
  policyCert: Uint8Array;
  policyPem: string;
  /** The client, as the server's verifyPeer saw it. */
  peer: ValidatedPeer;
  serverCert: Uint8Array;
  /** Client certificates never validated in this process (each used once; 50 or more). */
  unseen: Uint8Array[];
  /** A mutual-TLS server on loopback, and a client identity it accepts. */
  tlsPort: number;
  client: Leaf;
  name: string;
  /** How long each timed run lasts (three runs per stage). */
  runMs: number;
  /** Fresh connections whose first peerChain() is timed. */
  connections: number;
}

export interface StageCost {
  stage: string;
  ms: number;
}

/** Milliseconds per call of each stage: the median of three runs of about runMs each (peerChain: of `connections` calls). */
export async function retrieveStages(o: StageInputs): Promise<StageCost[]> {
  const keystore = new KeyStore(o.backend, await storageKeyFrom(o.store));
  const reserved = { names: [], prefixes: [] };
  const audited = new KeyService({ keystore, policyCert: o.policyCert, audit: o.audit, reserved });
  const unaudited = new KeyService({ keystore, policyCert: o.policyCert, reserved });
  const conn = { id: 'stages', remote: '127.0.0.1:0', peer: o.peer, exportKeyingMaterial: () => undefined };
  const request = encodeKeyRequest({ action: 'retrieve', name: o.name, version: 0 });
  const answer = await audited.handle(request, conn);
  if (parseKeyResponse(answer).status !== 'succeeded') throw new Error('the stage-timing retrieve was refused');
  const entry = { conn: 'stages', peerSerial: o.peer.serialHex, measurement: o.peer.measurementHex, action: 'retrieve', resource: o.name, version: 1, decision: 'allow' as const };
  let unseen = 0;

  const stages: [string, () => unknown][] = [
    ['validateAdmission, first-seen client certificate', () => validateAdmission({ chain: [o.unseen[unseen++]!], policyCert: o.policyCert, at: new Date(), usage: 'client' })],
    ['validateAdmission, the same server certificate again', () => validateAdmission({ chain: [o.serverCert], policyCert: o.policyCert, at: new Date(), usage: 'server' })],
    ['server: KeyService.handle with its synced audit', () => audited.handle(request, conn)],
    ['server: KeyService.handle without an audit log', () => unaudited.handle(request, conn)],
    ['of which keystore.fetch (LevelDB get, AES-GCM open)', () => keystore.fetch(o.name)],
    ['audit append alone (write + fdatasync)', () => o.audit.append(entry)],
    ['client: encode request, parse and check the answer', () => {
      encodeKeyRequest({ action: 'retrieve', name: o.name, version: 0 });
      return checkCryptstoreEntry(decode<CryptstoreEntry>('cryptstore_entry', parseKeyResponse(answer).data!));
    }],
  ];
  // Only a socket's first peerChain() does the work (on Node 20 later calls find no chain at all):
  // a fresh connection per call, timing the call alone.
  const chainUs: number[] = [];
  for (let i = 0; i < o.connections; i++) {
    const socket = await tlsClient(o);
    try {
      const t0 = process.hrtime.bigint();
      const chain = peerChain(socket);
      chainUs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (chain.length !== 1) throw new Error(`peerChain gave ${chain.length} certificates, not the leaf`);
    } finally {
      socket.destroy();
    }
  }
  const out: StageCost[] = [{ stage: 'verifyPeer: the peer certificate from a new TLS socket (lib/channel peerChain)', ms: chainUs.sort((a, b) => a - b)[chainUs.length >> 1]! }];
  for (const [stage, fn] of stages) {
    const op = async () => fn();
    // Calibrate: the number of calls that takes about runMs (first-seen certificates run out otherwise).
    const fresh = stage.includes('first-seen');
    let calls = Math.max(5, Math.round((o.runMs / 1000) * (await rate(fresh ? 5 : 20, op))));
    if (fresh) calls = Math.min(calls, Math.floor((o.unseen.length - 5) / 3));
    const runs: number[] = [];
    for (let r = 0; r < 3; r++) runs.push(1000 / (await rate(calls, op)));
    out.push({ stage, ms: runs.sort((a, b) => a - b)[1]! });
  }
  return out;
}

/** A client TLS socket to the mutual-TLS server, once its handshake is done. */
function tlsClient(o: StageInputs): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: o.tlsPort, ...baseTlsOptions(o.policyPem, o.client.key, o.client.pem), checkServerIdentity: () => undefined });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

export function formatStages(costs: StageCost[]): string {
  return costs.map((c) => `${c.stage} ${c.ms.toFixed(3)}`).join('; ');
}

// Shared by the flood tests: simpleserver on loopback keeping every line it logs with its second,
// and the most lines of one kind it logged in one second.

import { generateKeyPair, publicKeyOf, sha256, utf8 } from '../../lib/crypto/index.ts';
import { createPolicyCert } from '../../lib/pki/index.ts';
import { loadPolicy, makePolicy, type MakePolicyOptions } from '../../lib/policy/index.ts';
import { generateSimulatedPlatform } from '../../lib/attest/index.ts';
import { startCertifier } from '../../lib/certifier/index.ts';
import type { Limits } from '../../lib/channel/index.ts';
import { waitFor } from '../channel/harness.ts';

export const domain = 'flood';
export const m = sha256(utf8('program'));
export type Line = { second: number; record: Record<string, unknown> };

/**
 * simpleserver (TLS, or the plain protocol) trusting one simulated platform (returned) and `m`, or
 * what `trusts` says instead, for a day, with `limits` over its own; each line it logs kept with its second.
 */
export async function startLogged(trusts: Partial<Pick<MakePolicyOptions, 'platforms' | 'platformRoots' | 'platformProperties' | 'measurements'>> = {}, o: { plain?: boolean; limits?: Limits; policyCertMadeAt?: Date } = {}) {
  const policyKey = (await generateKeyPair('p256')).privateKey;
  const policyCert = await createPolicyCert({ privateKey: policyKey, domain, ...(o.policyCertMadeAt ? { now: o.policyCertMadeAt } : {}) });
  const platformKeys = await generateSimulatedPlatform({ alg: 'p256' });
  const policy = loadPolicy(makePolicy({
    policyKey, policyCert, platforms: [{ key: platformKeys.platformKey }], measurements: [m], ...trusts, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000),
  }), publicKeyOf(policyKey));
  const lines: Line[] = [];
  const server = await startCertifier({
    policyKey, policyCert, policy, domain, host: '127.0.0.1', port: 0, certValiditySeconds: 86_400, plain: o.plain === true, ...(o.limits ? { limits: o.limits } : {}),
    log: (record) => lines.push({ second: Math.floor(Date.now() / 1000), record: record as Record<string, unknown> }),
  });
  return { policyCert, platformKeys, lines, server };
}

/** Waits until `expected` events are each logged or counted (`suppressed`) among `lines()`; returns the most lines logged in one second. */
export async function mostInOneSecond(lines: () => Line[], expected: number, what: string): Promise<number> {
  await waitFor(() => lines().reduce((n, l) => n + Number(l.record.suppressed ?? 0) + (l.record.summary ? 0 : 1), 0) === expected, 20_000, `every ${what} logged or counted`);
  const perSecond = new Map<number, number>();
  for (const l of lines()) if (!l.record.summary) perSecond.set(l.second, (perSecond.get(l.second) ?? 0) + 1);
  return Math.max(...perSecond.values());
}

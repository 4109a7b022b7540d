// AMD SEV-SNP: the report parser, AMD's pinned roots and our own path validation over them, the
// verifier producing EvidenceFacts, and the guest's side through configfs-tsm.
export * from './report.ts';
export { AMD_CERTS, AMD_PRODUCTS, type AmdProduct } from './amd-roots.ts';
export { AMD_EXT, certHwId, certProductName, certTcb, isPssSignedBy, layoutOfRoot, pinnedAmdCerts, pinnedArk, pinnedProductOf, pssProblem, readAmdCert, rootLayout } from './amd-certs.ts';
export * from './chain.ts';
export * from './crl.ts';
export * from './verify.ts';
export * from './certtable.ts';
export * from './tsm.ts';
export * from './guest.ts';
export * from './describe.ts';

// The certificate authority (simpleserver's logic) and the machine's side of certification.
export * from './service.ts';
export * from './identity.ts';
export * from './client.ts';
export * from './server.ts';
export * from './in-force.ts';
export * from './init-trust.ts';
export * from './expiry.ts';

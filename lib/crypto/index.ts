// Pure cryptographic helpers: no IO (beyond the CSPRNG), no logging, no global state.
export * from './random.ts';
export * from './hash.ts';
export * from './aead.ts';
export * from './kdf.ts';
export * from './keys.ts';
export * from './keymessage.ts';
export * from './private-key.ts';
export * from './sign.ts';

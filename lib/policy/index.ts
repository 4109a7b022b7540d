// Signed claims in the Certifier vocabulary, the policy file, and the pure policy engine.
export * from './time.ts';
export * from './entities.ts';
export * from './claims.ts';
export * from './policy.ts';
export * from './properties.ts';
export * from './evaluate.ts';

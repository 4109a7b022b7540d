// key-client: the key service seen from a machine.
export * from './client.ts';
export * from './provision.ts';
export * from './check.ts';

// The encrypted LevelDB cryptstore (see store.ts for the design in brief, layout.ts for the format).
export * from './store.ts';
export * from './protection.ts';
export * from './bundle.ts';

#!/usr/bin/env node
// Runs cmd/key-client.ts: from a bundle kept current by launch.js, or through tsx.
// Its first statement, before any module loads: SIGUSR1 must never open Node's inspector (see
// launch.js), and a static import would load launch.js and its imports first.
process.on('SIGUSR1', () => {});
const { launch } = await import('./launch.js');
await launch('key-client');

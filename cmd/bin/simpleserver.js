#!/usr/bin/env node
// Runs the TypeScript program through tsx's loader (no build step, no stale output).
import { register } from 'tsx/esm/api';
register();
await import('../simpleserver.ts');

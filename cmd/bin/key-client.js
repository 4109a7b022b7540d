#!/usr/bin/env node
// Runs cmd/key-client.ts: from a bundle kept current by launch.js, or through tsx.
import { launch } from './launch.js';
await launch('key-client');

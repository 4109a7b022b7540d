#!/usr/bin/env node
// Runs cmd/key-server.ts: from a bundle kept current by launch.js, or through tsx.
import { launch } from './launch.js';
await launch('key-server');

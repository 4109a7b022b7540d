#!/usr/bin/env node
// Runs cmd/cert-utility.ts: from a bundle kept current by launch.js, or through tsx.
import { launch } from './launch.js';
await launch('cert-utility');

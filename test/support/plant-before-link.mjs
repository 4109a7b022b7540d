// Preloaded into a program under test (NODE_OPTIONS=--import): just before the program links a
// file into place at a path ending in PLANT_BEFORE_LINK, another process, say, puts a file of its
// own there, as a race would, but every time.
import { promises as fsp, writeFileSync } from 'node:fs';

const suffix = process.env.PLANT_BEFORE_LINK;
const link = fsp.link;
fsp.link = async (from, to) => {
  if (suffix && String(to).endsWith(suffix)) writeFileSync(to, 'planted');
  return link(from, to);
};

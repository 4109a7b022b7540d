// `npm run bench [-- --quick] [--only <section>]`: every benchmark section in one run, one table
// per section, after the machine facts. Ratios and targets are reported, not asserted: the exit
// status is 0 unless a section crashed. New sections: a module calling `section(...)` from
// ./harness.ts, imported below in the order it should run. The soak runs only when asked
// (`--only soak [--minutes N]`).

import { parseArgs, runSections } from './harness.ts';
import './cryptstore.bench.ts';
import './certify.bench.ts';
import './keyserver.bench.ts';
import './pg.bench.ts';
import './hostile.bench.ts';
import './keyserver-soak.bench.ts';

const summary = await runSections(parseArgs(process.argv.slice(2)));
process.exitCode = summary.failed.length ? 1 : 0;

// `npm run bench`: runs run.ts from a bundle made exactly as the programs' are (cmd/bin/launch.js),
// so the benchmark measures the library as key-server and the others run it, not as tsx's
// loader compiles it for the tests. CERTIFIER_NO_BUNDLE=1 runs it through tsx instead.
import { launchSource } from '../../cmd/bin/launch.js';
await launchSource('test/bench/run.ts', '.cache/bench');

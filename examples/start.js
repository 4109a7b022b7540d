// `npm run demo` and `npm run demo:scenario2`: a scenario's run.ts from a bundle made and checked
// as the programs' are (cmd/bin/launch.js), not through tsx's loader, whose disk cache in $TMPDIR
// another local user could have filled first.
import { launchSource } from '../cmd/bin/launch.js';

const scenario = process.argv[2];
if (scenario !== 'scenario1' && scenario !== 'scenario2') {
  process.stderr.write('usage: node examples/start.js scenario1|scenario2\n');
  process.exit(2);
}
await launchSource(`examples/${scenario}/run.ts`, `.cache/${scenario}`);

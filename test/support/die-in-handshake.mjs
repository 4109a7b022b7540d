// Preloaded into a server (NODE_OPTIONS=--import): the process kills itself (SIGKILL, as the OOM
// killer or systemd's last resort would) part way through the first TLS handshake after
// DIE_ARMED_FILE appears, at the moment DIE_IN_HANDSHAKE names:
//   finished  once it has read the client's whole side of the handshake, before its session
//             tickets (its acceptance) leave: every byte the client sent was read, so its kernel
//             closes the connection cleanly, as our refusals do;
//   stop      once its own flight (ServerHello .. Finished) has been written, it stops itself
//             (SIGSTOP): the test kills it once the client's answer waits unread in its socket.
import { existsSync } from 'node:fs';
import tls from 'node:tls';

const when = process.env.DIE_IN_HANDSHAKE;
const armed = () => existsSync(process.env.DIE_ARMED_FILE ?? '/nonexistent');
const die = () => process.kill(process.pid, 'SIGKILL');
const createServer = tls.createServer;
tls.createServer = function (...args) {
  const server = createServer.apply(this, args);
  if (when === 'finished') server.prependListener('secureConnection', () => armed() && die());
  // Node derives the application secrets once its Finished is written into its output.
  if (when === 'stop') server.on('keylog', (line) => armed() && String(line).startsWith('SERVER_TRAFFIC_SECRET_0') && setImmediate(() => process.kill(process.pid, 'SIGSTOP')));
  return server;
};

// The suite's transport: length-prefixed request/response over TLS 1.3 (mutual or server-only)
// or, for the original Certifier's plain protocol only, plain TCP.
export { closingAlso, serve } from './server.ts';
export { connect, prepareClientTls } from './client.ts';
export { SECOND_TRY_PAUSE_MS } from './second-try.ts';
export { limitRefusals, REFUSALS_PER_SECOND, type RefusalKind } from './refusals.ts';
export { connectWaits, DEFAULT_LIMITS, resolveLimits } from './types.ts';
export { hostPort } from './tlsutil.ts';
export type {
  ChannelLog, ChannelServer, ClientConnection, ConnectOptions, ConnectionInfo, Handler, LaterAnswer, Limits, LogRecord,
  PreparedClientTls, ResolvedLimits, ServeOptions, TlsIdentity, TlsTrust, VerifyPeer, Waits,
} from './types.ts';

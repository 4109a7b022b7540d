// Running a server from a command: print where it listens (stdout), log one line per event
// (stderr), and shut down cleanly on SIGINT/SIGTERM.

import type { ChannelServer } from '../../lib/channel/index.ts';

/** Renders a log record as one line: "prog: 2026-11-26T16:40:00Z event key=value ...". */
export function logLine(program: string, json: boolean) {
  return (r: object): void => {
    const record = { time: new Date().toISOString(), ...r };
    if (json) {
      process.stderr.write(JSON.stringify(record) + '\n');
      return;
    }
    const { time, event, ...rest } = record as Record<string, unknown>;
    const fields = Object.entries(rest)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' && /[\s"=]/.test(v) ? JSON.stringify(v) : String(v)}`);
    process.stderr.write(`${program}: ${time} ${String(event)} ${fields.join(' ')}\n`);
  };
}

/** Announces the address on stdout, then waits for a signal and closes gracefully. */
export async function runUntilSignal(program: string, server: ChannelServer, json: boolean, graceMs = 10_000): Promise<Record<string, unknown>> {
  const { host, port } = server.address;
  process.stdout.write(json ? JSON.stringify({ ok: true, listening: { host, port } }) + '\n' : `listening ${host}:${port}\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  process.stderr.write(`${program}: ${signal}: finishing requests in flight, then stopping\n`);
  await server.close(graceMs);
  process.stderr.write(`${program}: stopped\n`);
  return { stopped: signal };
}

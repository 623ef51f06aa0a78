/**
 * Binding the service's port so that a port already in use is a start-up failure, never a silent success.
 *
 * Two ways a busy port looked free:
 * - Express 5's `app.listen(port, host, callback)` also calls `callback` with the listen error (its callback is
 *   attached to the server's `error` event), so a "listening" handler ran on EADDRINUSE. Here the server's own
 *   `listening` and `error` events decide.
 * - `127.0.0.1:<port>` and `[::1]:<port>` are different sockets: another process on `[::1]:<port>` does not stop the
 *   bind on `127.0.0.1`, yet the URLs the service prints say `localhost`, which clients resolve to `::1` first, so
 *   the other process kept answering them. On a loopback `HOST` the other loopback address of the same port is
 *   therefore checked too (a short bind attempt, released at once; skipped where the host has no IPv6).
 * @see https://nodejs.org/docs/latest-v20.x/api/net.html#serverlistenoptions-callback
 */
import { createServer, type Server as NetServer } from 'node:net';
import type { Server } from 'node:http';

/** The port is taken; `address` is the interface on which it is (`::1` when that is the other loopback address). */
export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
  readonly code = 'EADDRINUSE';
  constructor(
    readonly port: number,
    readonly address: string,
    /** True when the conflict is on the other loopback address (what `localhost` may resolve to). */
    readonly otherLoopback: boolean,
  ) {
    super(otherLoopback ? `port ${port} is already in use on ${address} (where localhost may lead)` : `port ${port} is already in use on ${address}`);
  }
}

function bind(server: Server | NetServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port, host });
  });
}

/** The other loopback address of the one `server` is bound to, if it is bound to a loopback address. */
function otherLoopback(address: string): string | undefined {
  if (address === '127.0.0.1') return '::1';
  if (address === '::1') return '127.0.0.1';
  return undefined;
}

/** True when some other process listens on `host:port` (EADDRINUSE); false when it is free or unavailable here. */
async function takenElsewhere(port: number, host: string): Promise<boolean> {
  const probe = createServer();
  try {
    await bind(probe, port, host);
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
  }
}

/**
 * Listens on `host:port`; rejects with the system error (EADDRINUSE, EACCES, …) or a {@link PortInUseError} when the
 * other loopback address of the same port is taken (the server is closed again then).
 */
export async function listen(server: Server, port: number, host: string): Promise<void> {
  try {
    await bind(server, port, host);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new PortInUseError(port, (err as { address?: string }).address ?? host, false);
    throw err;
  }
  const bound = server.address();
  const other = bound && typeof bound === 'object' ? otherLoopback(bound.address) : undefined;
  if (other && (await takenElsewhere(bound && typeof bound === 'object' ? bound.port : port, other))) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw new PortInUseError(port, other, true);
  }
}

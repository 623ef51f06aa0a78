/**
 * Graceful stop of an HTTP server (`SIGTERM` / `SIGINT` in `server/index.ts`): stop accepting connections, let the
 * requests in flight finish, close keep-alive connections as soon as they are idle, and force-close whatever is left
 * after a grace period.
 *
 * Node's `server.close()` stops accepting and closes the connections idle at that moment, but a keep-alive
 * connection whose request finishes later stays open until the client or `keepAliveTimeout` ends it, and a client
 * may send it a new request meanwhile. So responses written while draining carry `Connection: close` (Node then
 * ends the socket after the response), and each finished response closes the connections that became idle.
 * Libraries that do this (http-terminator, stoppable) would add a dependency for about forty lines.
 * @see https://www.rfc-editor.org/rfc/rfc9112#section-9.6
 * @see https://nodejs.org/docs/latest-v20.x/api/http.html#servercloseidleconnections
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

export interface DrainResult {
  /** Requests still running when the grace period ended (their connections were closed). 0 = clean drain. */
  readonly forced: number;
}

export interface Drainable {
  /** Requests being answered now. */
  readonly inFlight: number;
  /** Stops accepting and drains; resolves when every connection is closed. Idempotent. */
  drain(graceMs: number, onForce?: (inFlight: number) => void): Promise<DrainResult>;
}

/** Tracks the requests of `server` from now on (call it before the server takes traffic). */
export function drainable(server: Server): Drainable {
  const active = new Set<ServerResponse>();
  let draining = false;
  let result: Promise<DrainResult> | undefined;

  const closeIdle = (): void => {
    // Deferred: the socket of the response that just finished is marked idle after its 'finish' listeners ran.
    setImmediate(() => server.closeIdleConnections());
  };
  // Prepended so it runs before the application's handler has a chance to write the response head.
  server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
    active.add(res);
    if (draining) res.setHeader('Connection', 'close');
    res.once('close', () => {
      active.delete(res);
      if (draining) closeIdle();
    });
  });

  return {
    get inFlight() {
      return active.size;
    },
    drain(graceMs, onForce) {
      result ??= new Promise<DrainResult>((resolve) => {
        draining = true;
        let forced = 0;
        // A response whose head is not written yet closes its connection after it; the rest closes when idle.
        for (const res of active) if (!res.headersSent) res.setHeader('Connection', 'close');
        const timer = setTimeout(() => {
          forced = active.size;
          onForce?.(forced);
          server.closeAllConnections();
        }, graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve({ forced });
        });
        server.closeIdleConnections();
      });
      return result;
    },
  };
}

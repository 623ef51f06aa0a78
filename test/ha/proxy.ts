/**
 * A small round-robin HTTP load balancer for the high-availability test: each request goes to the next live
 * upstream; when an upstream fails the request before any response byte came back (connection refused, or reset
 * while the request was in flight because the replica died), the proxy marks it down and sends the same request —
 * method, path, headers and the buffered body — to the next upstream. A response that has started is never retried
 * (its bytes may already be on the way to the client).
 *
 * It counts what a load balancer's operator would look at: requests, requests retried (split by whether the failed
 * attempt had reached the upstream), requests that failed at the proxy (502: no upstream could take them), and what
 * each upstream answered.
 */
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** What the proxy did so far. */
export interface ProxyStats {
  /** Requests received from clients. */
  requests: number;
  /** Requests sent again to another upstream after an attempt failed in flight (the upstream had the request). */
  retriedInFlight: number;
  /** Requests sent to another upstream after a connection to a down upstream was refused (never reached it). */
  retriedRefused: number;
  /** Requests answered 502 by the proxy: every upstream failed them. */
  failed: number;
  /** `METHOD path` (no query) of each request retried after an attempt failed in flight, and what the retry got. */
  retriedInFlightRequests: { request: string; status: number }[];
  /** Per upstream URL: responses relayed, attempts that failed, requests in flight now. */
  upstreams: Record<string, { answered: number; errors: number; inFlight: number }>;
}

export interface RoundRobinProxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  stats(): ProxyStats;
  /** Requests currently in flight at `upstream`. */
  inFlight(upstream: string): number;
  /**
   * Calls `listener` each time a request has been handed to an upstream in full (its last byte written), with the
   * upstream, method, path and request headers — e.g. to kill that upstream at a moment it certainly holds a request.
   */
  onForwarded(listener: ((upstream: string, method: string, path: string, headers: IncomingHttpHeaders) => void) | undefined): void;
  close(): Promise<void>;
}

export interface ProxyOptions {
  /** Base URLs (`http://host:port`) of the upstreams, in round-robin order. */
  upstreams: readonly string[];
  /** Port to listen on (loopback); 0 = any free port. */
  port?: number;
  /** How long an upstream that refused a connection is skipped before it is tried again, in ms. */
  downForMs?: number;
  /** Largest request body buffered (and so retryable), in bytes. */
  maxBodyBytes?: number;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

function forwardHeaders(h: IncomingHttpHeaders, bodyLength: number): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k) && k !== 'content-length') out[k] = v;
  if (bodyLength > 0 || h['content-length'] !== undefined) out['content-length'] = String(bodyLength);
  return out;
}

/** One attempt failed without a response: did the upstream have the request? */
class AttemptError extends Error {
  override readonly name = 'AttemptError';
  constructor(readonly refused: boolean, message: string) {
    super(message);
  }
}

/** Starts the proxy on loopback. */
export async function startRoundRobinProxy(opts: ProxyOptions): Promise<RoundRobinProxy> {
  if (opts.upstreams.length === 0) throw new Error('the proxy needs at least one upstream');
  const downForMs = opts.downForMs ?? 2000;
  const maxBody = opts.maxBodyBytes ?? 16 * 1024 * 1024;
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const downUntil = new Map<string, number>();
  const stats: ProxyStats = { requests: 0, retriedInFlight: 0, retriedRefused: 0, failed: 0, retriedInFlightRequests: [], upstreams: {} };
  for (const u of opts.upstreams) stats.upstreams[u] = { answered: 0, errors: 0, inFlight: 0 };
  let next = 0;
  let forwarded: ((upstream: string, method: string, path: string, headers: IncomingHttpHeaders) => void) | undefined;

  /** The upstreams in the order this request tries them: live ones from the round-robin position, then down ones. */
  const order = (): string[] => {
    const start = next++ % opts.upstreams.length;
    const ring = opts.upstreams.map((_, i) => opts.upstreams[(start + i) % opts.upstreams.length]!);
    const now = Date.now();
    return [...ring.filter((u) => (downUntil.get(u) ?? 0) <= now), ...ring.filter((u) => (downUntil.get(u) ?? 0) > now)];
  };

  const attempt = (upstream: string, req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const target = new URL(req.url ?? '/', upstream);
      const u = stats.upstreams[upstream]!;
      u.inFlight++;
      let settled = false;
      const done = (err?: AttemptError): void => {
        if (settled) return;
        settled = true;
        u.inFlight--;
        if (err) {
          u.errors++;
          reject(err);
        } else resolve();
      };
      const up = httpRequest(target, { method: req.method, headers: forwardHeaders(req.headers, body.length), agent }, (upRes) => {
        // From here on the response belongs to the client: relay it, never retry.
        u.answered++;
        const headers: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
        res.writeHead(upRes.statusCode ?? 502, headers);
        upRes.pipe(res);
        upRes.on('end', () => done());
        upRes.on('error', () => {
          res.destroy();
          done();
        });
        upRes.on('aborted', () => {
          res.destroy();
          done();
        });
      });
      up.on('error', (err: NodeJS.ErrnoException) => {
        if (settled) return;
        // ECONNREFUSED: nothing listens (the replica is gone). Anything else before a response (ECONNRESET, socket
        // hang up): the upstream may have started on the request and died.
        done(new AttemptError(err.code === 'ECONNREFUSED', `${err.code ?? 'error'}: ${err.message}`));
      });
      up.on('finish', () => forwarded?.(upstream, req.method ?? 'GET', target.pathname, req.headers));
      up.end(body);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    stats.requests++;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > maxBody) {
        res.writeHead(413).end();
        return;
      }
      chunks.push(c as Buffer);
    }
    const body = Buffer.concat(chunks);
    const tries = order();
    let retriedInFlight = false;
    for (const [i, upstream] of tries.entries()) {
      try {
        await attempt(upstream, req, body, res);
        if (retriedInFlight) stats.retriedInFlightRequests.push({ request: `${req.method ?? '?'} ${(req.url ?? '/').split('?')[0]}`, status: res.statusCode });
        return;
      } catch (err) {
        const e = err as AttemptError;
        if (e.refused) downUntil.set(upstream, Date.now() + downForMs);
        if (i === tries.length - 1) break;
        if (e.refused) stats.retriedRefused++;
        else {
          stats.retriedInFlight++;
          retriedInFlight = true;
        }
      }
    }
    stats.failed++;
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'no upstream answered' }));
  };

  const server: Server = createServer((req, res) => void handle(req, res));
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    stats: () => structuredClone(stats),
    inFlight: (upstream) => stats.upstreams[upstream]?.inFlight ?? 0,
    onForwarded: (listener) => void (forwarded = listener),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

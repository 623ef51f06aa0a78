/**
 * Prometheus metrics (prom-client) and the per-request observer that feeds them and writes the access log.
 *
 * Route labels must have low cardinality and carry no PHI, so raw paths (which hold patient and study ids) are
 * never used as labels or logged: {@link routeLabel} turns them into templates such as `/sandbox/fhir/Patient/:id`.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { Logger } from '../logging.ts';

export interface Metrics {
  readonly registry: Registry;
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  readonly httpRequests: Counter<'method' | 'route' | 'status_code'>;
}

/** A fresh registry per app instance, so tests can build several apps in one process. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'frcds_' });
  const httpDuration = new Histogram({
    name: 'frcds_http_request_duration_seconds',
    help: 'Duration of HTTP requests, by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const httpRequests = new Counter({
    name: 'frcds_http_requests_total',
    help: 'HTTP requests, by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [registry],
  });
  return { registry, httpDuration, httpRequests };
}

/** A path segment kept verbatim in a route label: a word, a FHIR operation (`$everything`) or `_history`. */
const WORD = /^[A-Za-z_$][A-Za-z_$-]{0,39}$/;

/** Prefixes whose sub-paths are normalised here because their routers match paths themselves. */
const FHIR_PREFIX = '/sandbox/fhir';
const KNOWN_PREFIXES = [FHIR_PREFIX, '/sandbox/dicom-web'];

/**
 * The route template of a request: the Express route when one matched, otherwise the path with id-like segments
 * replaced by `:id` (for the sandboxes, which route internally), otherwise `unmatched`.
 */
export function routeLabel(req: Request): string {
  const routePath = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof routePath === 'string') return `${req.baseUrl}${routePath}` || '/';
  const path = (req.originalUrl.split('?')[0] ?? '/').replace(/\/+$/, '') || '/';
  const prefix = KNOWN_PREFIXES.find((p) => path === p || path.startsWith(p + '/'));
  if (!prefix) return 'unmatched';
  const rest = path.slice(prefix.length).split('/').filter(Boolean);
  const parts = rest.map((seg, i) => {
    // In FHIR paths the second segment is always a resource id and the fourth a version id.
    if (prefix === FHIR_PREFIX && (i === 1 || i === 3) && !seg.startsWith('$') && seg !== '_history' && seg !== '_search') return i === 1 ? ':id' : ':vid';
    return WORD.test(seg) ? seg : ':id';
  });
  return [prefix, ...parts].join('/');
}

/** Express middleware: times each request, records it in the metrics and writes one access-log line (no PHI). */
export function observeRequests(metrics: Metrics, logger: Logger): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const labels = { method: req.method, route: routeLabel(req), status_code: String(res.statusCode) };
      metrics.httpDuration.observe(labels, seconds);
      metrics.httpRequests.inc(labels);
      // 503 is what /readyz and starting sandboxes answer by design: worth a warning, not an error.
      const level = res.statusCode === 503 ? 'warn' : res.statusCode >= 500 ? 'error' : 'info';
      logger[level]({ method: req.method, route: labels.route, status: res.statusCode, durationMs: Math.round(seconds * 1e4) / 10 }, 'http request');
    });
    next();
  };
}

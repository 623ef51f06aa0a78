/**
 * The Express 5 application factory: health endpoints, metrics and access log, and the mount points of the
 * embedded sandboxes. It does no I/O itself, so tests build it with supertest and whatever components they need;
 * `server/index.ts` composes the real one.
 *
 * The sandbox routers are read through {@link SandboxMounts} at request time: the HTTP server starts listening
 * (so `/healthz` and `/readyz` answer) while the sandboxes are still being built and seeded; until then their
 * paths answer 503.
 *
 * What every answer gets here, whatever router serves it:
 * - security headers ({@link securityHeaders}): `nosniff`, no referrer, and a CSP that loads nothing and forbids
 *   framing unless the route sets its own (the SMART app's `/app/`, the demo EHR's pages);
 * - `Cache-Control: no-store` under `/api` and `/cds-services` (answers about patients; a route may set its own);
 * - the operator credential in front of the operations endpoints (server/auth/operator.ts);
 * - for an unexpected error, a generic 500 naming a correlation id that the log line of the real error carries.
 */
import { randomUUID } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { AppConfig } from './config.ts';
import { observeRequests, type Metrics } from './health/metrics.ts';
import type { Readiness } from './health/readiness.ts';
import { createHealthRouter } from './health/router.ts';
import type { Logger } from './logging.ts';
import { operatorGuard } from './auth/operator.ts';
import { createModelCardRouter } from './cds/model-card.ts'; // CDS Hooks (issue 6)
import { indexPage } from './sandbox/ehr/index-page.ts'; // demo EHR (issue 7)
// SMART app (issue 7)
import { join } from 'node:path';
import { createAppStaticRouter } from './app-static.ts';
import { REPO_ROOT } from './config.ts';

/** Routers of the embedded sandboxes, filled in when they are ready. */
export interface SandboxMounts {
  fhir?: RequestHandler;
  dicomWeb?: RequestHandler;
  /** Demo EHR (issue 7, `server/sandbox/ehr/`): on only with the sandbox FHIR server. */
  ehr?: RequestHandler;
  /** Sandbox SMART authorization server (issue 7, `server/sandbox/smart/`): on only with the sandbox FHIR server. */
  auth?: RequestHandler;
}

/** Service routers that become available after start-up work (model loading), filled in when ready. */
export interface ServiceMounts {
  /** The risk engine's `/api/assessments` router (server/risk/routes.ts). */
  assessments?: RequestHandler;
  /** The app's patient history and care status `/api/patients` (server/risk/routes.ts). */
  patients?: RequestHandler;
  /** FLS worklist API `/api/fls` (issue 8, server/fls/routes.ts). */
  fls?: RequestHandler;
  /** CDS Hooks service `/cds-services` (issue 6, server/cds/router.ts). */
  cds?: RequestHandler;
  /** CDS card feedback summary `/api/feedback` (issue 6, server/cds/router.ts). */
  feedback?: RequestHandler;
  /** Subscription notification receiver `/api/events` (issue 8, server/events/receiver.ts). */
  events?: RequestHandler;
  /** Job statistics and dead letters `/api/jobs` (issue 8, server/jobs/routes.ts). */
  jobs?: RequestHandler;
  /** T-score agreement with DXA per site `/api/monitoring` (server/monitoring/routes.ts). */
  monitoring?: RequestHandler;
}

export interface AppDeps {
  readonly config: AppConfig;
  readonly logger: Logger;
  readonly readiness: Readiness;
  readonly metrics: Metrics;
  readonly sandboxes: SandboxMounts;
  readonly services?: ServiceMounts;
  /** Guard of the operations endpoints; default: `OPS_TOKEN` and the sandbox's system tokens (server/auth/operator.ts). */
  readonly operatorGuard?: RequestHandler;
}

/**
 * The Content-Security-Policy of answers whose route sets none: JSON, FHIR, DICOM, plain text and the few
 * server-rendered pages (the index, the sandbox sign-in and consent pages, model cards), which use inline styles,
 * same-origin images and plain forms only. No script, connection, frame or plugin may load, and no other site may
 * frame the answer (clickjacking; CSP Level 3 `frame-ancestors`, which supersedes `X-Frame-Options`).
 * @see https://www.w3.org/TR/CSP3/#directive-frame-ancestors
 */
export const DEFAULT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";

/**
 * Headers for every answer, set before any router runs so a router can replace them (`/app/` sets its own CSP with
 * `APP_FRAME_ANCESTORS`; the demo EHR its own, still with `frame-ancestors 'none'`).
 * @see https://fetch.spec.whatwg.org/#x-content-type-options-header
 * @see https://www.w3.org/TR/referrer-policy/#referrer-policy-no-referrer
 */
export function securityHeaders(): RequestHandler {
  return (_req, res, next) => {
    res.set({
      'X-Content-Type-Options': 'nosniff',
      // URLs here hold patient and study ids, and the SMART redirect an authorization code: never sent onwards.
      'Referrer-Policy': 'no-referrer',
      'Content-Security-Policy': DEFAULT_CSP,
    });
    next();
  };
}

/** `Cache-Control: no-store` (RFC 9111 §5.2.2.5) before the router runs: answers about patients are never stored. */
const noStore: RequestHandler = (_req, res, next) => {
  res.set('Cache-Control', 'no-store');
  next();
};

/** The URLs a user should open, for the start-up log and `GET /`. */
export function usefulUrls(config: AppConfig): Record<string, string> {
  const b = config.publicBaseUrl;
  const urls: Record<string, string> = {};
  if (config.fhir.sandbox) urls['demoEhr'] = `${b}/sandbox/ehr/`; // demo EHR (issue 7): where a user starts
  if (config.fhir.sandbox) {
    urls['fhirMetadata'] = `${config.fhir.publicBaseUrl}/metadata`;
    urls['fhirPatients'] = `${config.fhir.publicBaseUrl}/Patient?_count=5`;
  } else {
    urls['fhirServer'] = config.fhir.publicBaseUrl;
  }
  urls[config.dicomweb.sandbox ? 'dicomWebStudies' : 'dicomWebServer'] = config.dicomweb.sandbox
    ? `${config.dicomweb.publicBaseUrl}/studies`
    : config.dicomweb.publicBaseUrl;
  urls['assessments'] = `${b}/api/assessments`;
  urls['cdsDiscovery'] = `${b}/cds-services`; // CDS Hooks (issue 6)
  urls['app'] = `${b}/app/launch.html`; // SMART app, standalone launch (issue 7)
  urls['readiness'] = `${b}/readyz`;
  urls['health'] = `${b}/healthz`;
  urls['metrics'] = `${b}/metrics`;
  return urls;
}

function problem(res: Response, status: number, error: string): void {
  res.status(status).json({ error, status });
}

/** Mounts a sandbox router that may not exist yet (503 while starting) or at all (404 when an external server is configured). */
function lateMount(enabled: boolean, get: () => RequestHandler | undefined, what: string): RequestHandler {
  return (req, res, next) => {
    const handler = get();
    if (handler) {
      handler(req, res, next);
      return;
    }
    if (!enabled) {
      problem(res, 404, `The embedded ${what} is off because an external server is configured`);
      return;
    }
    res.set('Retry-After', '2');
    problem(res, 503, `The embedded ${what} is starting; see /readyz`);
  };
}

export function createApp(deps: AppDeps): Express {
  const { config, logger, readiness, metrics, sandboxes } = deps;
  const services = deps.services ?? {};
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  // ETags of whole bodies are computed by Express by default; the FHIR sandbox sets version ETags itself.
  app.set('etag', false);

  app.use(securityHeaders());
  app.use(observeRequests(metrics, logger));
  app.use(createHealthRouter(readiness, metrics));

  app.get('/', (req, res) => {
    // Browsers get a page pointing to the demo EHR (issue 7); API clients keep the JSON index.
    if (req.accepts(['json', 'html']) === 'html') {
      res.type('html').send(indexPage(usefulUrls(config), 'Research use — trained on synthetic data. Not for clinical decisions.'));
      return;
    }
    res.json({
      name: 'Fracture Risk CDS',
      notice: 'Research use — trained on synthetic data. Not for clinical decisions.',
      links: usefulUrls(config),
    });
  });

  app.use('/sandbox/fhir', lateMount(config.fhir.sandbox, () => sandboxes.fhir, 'FHIR server'));
  app.use('/sandbox/dicom-web', lateMount(config.dicomweb.sandbox, () => sandboxes.dicomWeb, 'DICOMweb server'));
  // Sandbox SMART authorization server (issue 7): only with the sandbox FHIR server, whose tokens it issues.
  app.use('/sandbox/auth', lateMount(config.fhir.sandbox, () => sandboxes.auth, 'SMART authorization server'));
  // Demo EHR (issue 7): only with the sandbox FHIR server (it plays that server's EHR).
  app.use('/sandbox/ehr', lateMount(config.fhir.sandbox, () => sandboxes.ehr, 'demo EHR'));

  app.use(['/api', '/cds-services'], noStore);
  // Operations endpoints: queue state, dead letters, subscription heartbeats, card acceptance rates.
  const operator = deps.operatorGuard ?? operatorGuard(config, logger);
  app.use('/api/assessments', lateMount(true, () => services.assessments, 'risk engine (models loading)'));
  app.use('/api/patients', lateMount(true, () => services.patients, 'risk engine (models loading)'));
  // --- FLS worklist (issue 8, server/fls/) ---
  app.use('/api/fls', lateMount(true, () => services.fls, 'FLS worklist'));
  app.use('/api/monitoring', lateMount(true, () => services.monitoring, 'model monitoring'));
  // --- Report events and durable jobs (issue 8, server/events/, server/jobs/) ---
  app.use('/api/events/subscriptions', operator);
  app.use('/api/events', lateMount(true, () => services.events, 'report-event receiver'));
  app.use('/api/jobs', operator, lateMount(true, () => services.jobs, 'job queue'));
  // --- CDS Hooks (issue 6): hooks + feedback, feedback summary, model cards the cards link to ---
  app.use('/cds-services', lateMount(true, () => services.cds, 'CDS Hooks service (models loading)'));
  app.use('/api/feedback', operator, lateMount(true, () => services.feedback, 'CDS feedback store'));
  app.use('/models', createModelCardRouter(config.inference.modelsDir));

  // --- SMART app bundle (issue 7): /app/launch.html, /app/index.html, built by client/build.ts ---
  app.use('/app', createAppStaticRouter({ distDir: join(REPO_ROOT, 'client/dist'), config }));

  app.use((_req, res) => problem(res, 404, 'Not found'));
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: number; type?: string };
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500 && !res.headersSent) {
      problem(res, e.status, e.type === 'entity.parse.failed' ? 'The body is not valid JSON' : 'Bad request');
      return;
    }
    // The exception's text can name files, URLs, ids or library internals: it goes to the log only, and the
    // answer carries an id that finds that log line.
    const errorId = randomUUID();
    logger.error({ err, errorId, method: req.method }, 'unhandled error');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.set('Cache-Control', 'no-store').status(500).json({ error: `Internal error (id ${errorId}: the operator can find it in the service log)`, status: 500, errorId });
  });
  return app;
}

/**
 * The Express 5 application factory: health endpoints, metrics and access log, and the mount points of the
 * embedded sandboxes. It does no I/O itself, so tests build it with supertest and whatever components they need;
 * `server/index.ts` composes the real one.
 *
 * The sandbox routers are read through {@link SandboxMounts} at request time: the HTTP server starts listening
 * (so `/healthz` and `/readyz` answer) while the sandboxes are still being built and seeded; until then their
 * paths answer 503.
 */
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { AppConfig } from './config.ts';
import { observeRequests, type Metrics } from './health/metrics.ts';
import type { Readiness } from './health/readiness.ts';
import { createHealthRouter } from './health/router.ts';
import type { Logger } from './logging.ts';
import { createModelCardRouter } from './cds/model-card.ts'; // CDS Hooks (issue 6)

/** Routers of the embedded sandboxes, filled in when they are ready. */
export interface SandboxMounts {
  fhir?: RequestHandler;
  dicomWeb?: RequestHandler;
  /** Sandbox SMART authorization server (issue 7, `server/sandbox/smart/`): on only with the sandbox FHIR server. */
  auth?: RequestHandler;
}

/** Service routers that become available after start-up work (model loading), filled in when ready. */
export interface ServiceMounts {
  /** The risk engine's `/api/assessments` router (server/risk/routes.ts). */
  assessments?: RequestHandler;
  /** CDS Hooks service `/cds-services` (issue 6, server/cds/router.ts). */
  cds?: RequestHandler;
  /** CDS card feedback summary `/api/feedback` (issue 6, server/cds/router.ts). */
  feedback?: RequestHandler;
}

export interface AppDeps {
  readonly config: AppConfig;
  readonly logger: Logger;
  readonly readiness: Readiness;
  readonly metrics: Metrics;
  readonly sandboxes: SandboxMounts;
  readonly services?: ServiceMounts;
}

/** The URLs a user should open, for the start-up log and `GET /`. */
export function usefulUrls(config: AppConfig): Record<string, string> {
  const b = config.publicBaseUrl;
  const urls: Record<string, string> = {};
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

  app.use(observeRequests(metrics, logger));
  app.use(createHealthRouter(readiness, metrics));

  app.get('/', (_req, res) => {
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

  app.use('/api/assessments', lateMount(true, () => services.assessments, 'risk engine (models loading)'));
  // --- CDS Hooks (issue 6): hooks + feedback, feedback summary, model cards the cards link to ---
  app.use('/cds-services', lateMount(true, () => services.cds, 'CDS Hooks service (models loading)'));
  app.use('/api/feedback', lateMount(true, () => services.feedback, 'CDS feedback store'));
  app.use('/models', createModelCardRouter(config.inference.modelsDir));

  app.use((_req, res) => problem(res, 404, 'Not found'));
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: number; type?: string };
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      problem(res, e.status, e.type === 'entity.parse.failed' ? 'The body is not valid JSON' : 'Bad request');
      return;
    }
    logger.error({ err }, 'unhandled error');
    problem(res, 500, 'Internal error');
  });
  return app;
}

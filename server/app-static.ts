/**
 * Serves the SMART app bundle (`client/dist`, built by `client/build.ts`) at `/app/` (issue 7, item 1), with:
 * - a Content-Security-Policy that keeps the app to the service, the configured FHIR server, the foreign FHIR
 *   servers of `smart-config/token-verification.json` (`servers`: each `fhirBaseUrl` and `connectSrc` origin) and
 *   `APP_CONNECT_SRC` (`connect-src`), no inline script, and a configurable `frame-ancestors` so an EHR may embed it in an iframe
 *   (CSP Level 3 §frame-ancestors, https://www.w3.org/TR/CSP3/#directive-frame-ancestors);
 * - `Referrer-Policy: no-referrer`, because the SMART redirect puts the authorization `code` in the page URL;
 * - `GET /app/config.json`: the FHIR server a bare `launch.html` starts a standalone launch against, and
 *   `connectSrc` (the CSP's connect-src list) so the launch page can refuse an `iss` the CSP would block;
 * - `GET /app/models/{id}.json` and `/app/models/{id}/card`: the model facts the app shows and the model card
 *   (models/<id>/MODEL_CARD.md rendered to HTML) it links to — public documentation, no patient data.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import express, { Router, type Response } from 'express';
import { marked } from 'marked';
import type { AppConfig } from './config.ts';

const MODEL_ID = /^[a-z0-9][a-z0-9\-.]{0,63}$/;
const CARD_IMAGE = /^[a-z0-9_-]{1,64}\.png$/;

export interface AppStaticOptions {
  /** Folder with the built bundle (client/dist). */
  distDir: string;
  config: Pick<AppConfig, 'fhir' | 'inference' | 'app'> & { readonly auth: Pick<AppConfig['auth'], 'tokenServers'> };
}

/** Origin (scheme://host:port) of a URL. */
const originOf = (url: string): string => new URL(url).origin;

/**
 * The CSP `connect-src` sources of the app, also served as `connectSrc` in `/app/config.json`: `'self'`, the service's
 * FHIR server's origin, each `servers[]` entry's `fhirBaseUrl` origin and `connectSrc` origins, then `APP_CONNECT_SRC`.
 */
export function appConnectSources(config: AppStaticOptions['config']): string[] {
  const servers = config.auth.tokenServers.flatMap((s) => [originOf(s.fhirBaseUrl), ...s.connectSrc.map(originOf)]);
  return [...new Set(["'self'", originOf(config.fhir.publicBaseUrl), ...servers, ...config.app.extraConnectSrc])];
}

/** The CSP of every `/app/` response. */
export function appContentSecurityPolicy(config: AppStaticOptions['config']): string {
  const connect = appConnectSources(config);
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    `connect-src ${connect.join(' ')}`,
    `frame-ancestors ${config.app.frameAncestors.join(' ')}`,
    "base-uri 'self'",
    "form-action 'self'",
    "object-src 'none'",
  ].join('; ');
}

/** Summary of a model manifest for the app's "model facts" panel. */
export interface ModelFacts {
  id: string;
  version: string;
  name: string;
  date: string;
  useStatement: string;
  syntheticTrainingData: boolean;
  intendedUse: { purpose: string; population: string; users: string; outOfScope: string[] };
  /** Test-set metrics of the fused model per outcome: Harrell's C at 10 years, calibration slope, 95 % coverage. */
  metrics: Record<string, { cIndex: number | null; cIndexCi: [number, number] | null; calibrationSlope: number | null; coverage95: number | null }>;
  limitations: string[];
  cardUrl: string;
}

interface Metric {
  value?: number;
  ci95?: [number, number];
}

/** Reads `models/<id>/manifest.json` into {@link ModelFacts}; null when there is no such model. */
export function readModelFacts(modelsDir: string, id: string): ModelFacts | null {
  if (!MODEL_ID.test(id)) return null;
  const path = join(modelsDir, id, 'manifest.json');
  if (!existsSync(path)) return null;
  const m = JSON.parse(readFileSync(path, 'utf8')) as {
    id: string; version: string; name?: string; date?: string; use_statement: string; synthetic_training_data?: boolean;
    intended_use?: { purpose?: string; population?: { description?: string }; users?: string; out_of_scope?: string[] };
    metrics?: Record<string, { fused?: Record<string, Metric> } & Record<string, unknown>>;
    limitations?: string[];
  };
  const metrics: ModelFacts['metrics'] = {};
  const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  for (const [key, byModel] of Object.entries(m.metrics ?? {})) {
    if (!byModel || typeof byModel !== 'object') continue;
    if (byModel.fused) {
      // Schema 1.x: outcomes are the entries with a fused-model block (others are OOD and heatmap figures).
      const f = byModel.fused;
      metrics[key] = {
        cIndex: f['harrell_c10']?.value ?? null,
        cIndexCi: f['harrell_c10']?.ci95 ?? null,
        calibrationSlope: f['calibration_slope']?.value ?? null,
        coverage95: f['coverage_95']?.value ?? null,
      };
    } else if (key.endsWith('_served') && num(byModel['harrell_c10']) !== null) {
      // Schema 2.x: `<outcome>_served` holds the figures as served (measured DXA replacing the estimate): the
      // calibration slope is the KM-decile one, the coverage that of the true simulated 10-year risk.
      metrics[key.slice(0, -'_served'.length)] = {
        cIndex: num(byModel['harrell_c10']),
        cIndexCi: null,
        calibrationSlope: num(byModel['km_decile_slope']),
        coverage95: num(byModel['coverage_true_risk10']),
      };
    }
  }
  return {
    id: m.id,
    version: m.version,
    name: m.name ?? m.id,
    date: m.date ?? '',
    useStatement: m.use_statement,
    syntheticTrainingData: m.synthetic_training_data !== false,
    intendedUse: {
      purpose: m.intended_use?.purpose ?? '',
      population: m.intended_use?.population?.description ?? '',
      users: m.intended_use?.users ?? '',
      outOfScope: m.intended_use?.out_of_scope ?? [],
    },
    metrics,
    limitations: m.limitations ?? [],
    cardUrl: `models/${m.id}/card`,
  };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function notFound(res: Response, what: string): void {
  res.status(404).json({ error: `${what} not found`, status: 404 });
}

/** The `/app` router. */
export function createAppStaticRouter(opts: AppStaticOptions): Router {
  const r = Router();
  const csp = appContentSecurityPolicy(opts.config);
  const connectSrc = appConnectSources(opts.config);
  r.use((_req, res, next) => {
    res.set({
      'Content-Security-Policy': csp,
      'Referrer-Policy': 'no-referrer',
      'X-Content-Type-Options': 'nosniff',
      'Cross-Origin-Opener-Policy': 'same-origin',
    });
    next();
  });

  r.get('/config.json', (_req, res) => {
    res.set('Cache-Control', 'no-cache').json({ fhirBaseUrl: opts.config.fhir.publicBaseUrl, clientId: 'fracture-risk-app', connectSrc });
  });

  r.get('/models/:file', (req, res) => {
    const m = /^(.+)\.json$/.exec(String(req.params['file']));
    const facts = m ? readModelFacts(opts.config.inference.modelsDir, m[1]!) : null;
    if (!facts) return notFound(res, 'Model');
    res.set('Cache-Control', 'no-cache').json(facts);
  });

  r.get('/models/:id/card', (req, res) => {
    const id = String(req.params['id']);
    const path = join(opts.config.inference.modelsDir, id, 'MODEL_CARD.md');
    if (!MODEL_ID.test(id) || !existsSync(path)) return notFound(res, 'Model card');
    // The card is a file of this repository (trusted), and the CSP forbids any script it might contain anyway.
    const body = marked.parse(readFileSync(path, 'utf8'), { async: false });
    res.type('html').set('Cache-Control', 'no-cache').send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
        `<title>Model card — ${escapeHtml(id)}</title><link rel="stylesheet" href="../../app.css"></head>` +
        `<body class="model-card"><p class="research-notice" role="note"><strong>Research use — trained on synthetic data</strong></p><main>${body}</main></body></html>`,
    );
  });

  r.get('/models/:id/:image', (req, res) => {
    const id = String(req.params['id']);
    const image = String(req.params['image']);
    const path = join(opts.config.inference.modelsDir, id, image);
    if (!MODEL_ID.test(id) || !CARD_IMAGE.test(image) || !existsSync(path) || !statSync(path).isFile()) return notFound(res, 'Image');
    res.type('image/png').set('Cache-Control', 'public, max-age=3600').send(readFileSync(path));
  });

  r.use((req, res, next) => {
    if (!existsSync(join(opts.distDir, 'index.html'))) {
      res.set('Retry-After', '2').status(503).json({ error: 'The app bundle is being built (client/build.ts); see /readyz', status: 503 });
      return;
    }
    next();
  });
  r.get('/', (req, res) => res.redirect(302, `${req.baseUrl}/launch.html`));
  r.use(express.static(opts.distDir, { index: false, dotfiles: 'ignore', setHeaders: (res) => res.set('Cache-Control', 'no-cache') }));
  return r;
}

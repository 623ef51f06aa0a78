/**
 * Health endpoints (issue 4, item 3): `/healthz` (the process is alive and serving), `/readyz` (every component it
 * needs is ready: 200, otherwise 503, listing both), `/metrics` (Prometheus text format).
 */
import { Router } from 'express';
import type { Metrics } from './metrics.ts';
import type { Readiness } from './readiness.ts';

export function createHealthRouter(readiness: Readiness, metrics: Metrics): Router {
  const router = Router();
  const started = Date.now();

  router.get('/healthz', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({ status: 'ok', uptimeSeconds: Math.round((Date.now() - started) / 1000) });
  });

  router.get('/readyz', async (_req, res) => {
    const report = await readiness.report();
    const names = Object.keys(report.components);
    res
      .status(report.ready ? 200 : 503)
      .set('Cache-Control', 'no-store')
      .json({
        status: report.ready ? 'ready' : 'not-ready',
        ready: names.filter((n) => report.components[n]!.ready),
        notReady: names.filter((n) => !report.components[n]!.ready),
        components: report.components,
        ...(report.warnings ? { warnings: report.warnings } : {}),
      });
  });

  router.get('/metrics', async (_req, res) => {
    res.set('Content-Type', metrics.registry.contentType).set('Cache-Control', 'no-store').send(await metrics.registry.metrics());
  });

  return router;
}

/**
 * `GET /api/monitoring/tscore`: the per-site agreement of the radiograph T-score estimate with measured DXA and the
 * drift alarms (server/monitoring/types.ts), for the "Model monitoring" view of the service's clinical lead.
 *
 * Who may read it, as for the FLS coordinator's worklist (server/fls/routes.ts): a verified SMART access token at
 * USER level, whatever `API_AUTH_REQUIRED` says — here holding `user/RiskAssessment.rs`, since the figures are made
 * from every patient's RiskAssessments (a patient-level token covers one patient and is refused with 403). The
 * answer carries aggregates only (no patient or resource ids) and `Cache-Control: no-store`.
 */
import { Router, type RequestHandler } from 'express';
import { requireSmartAccess } from '../auth/require.ts';
import type { AccessTokenVerifier } from '../auth/types.ts';
import type { Logger } from '../logging.ts';
import type { TscoreMonitoring } from './service.ts';

/** A user-level token that may read RiskAssessments of every patient. */
export const MONITORING_READ_SCOPES: readonly string[] = ['user/RiskAssessment.rs'];

export function createMonitoringRouter(o: { monitoring: TscoreMonitoring; guard: RequestHandler; logger: Logger }): Router {
  const router = Router();
  router.get('/tscore', o.guard, async (_req, res) => {
    res.set('Cache-Control', 'no-store');
    try {
      res.json(await o.monitoring.response());
    } catch (err) {
      o.logger.warn({ err: (err as Error).message.slice(0, 200) }, 'T-score monitoring figures unavailable');
      res.status(503).set('Retry-After', '5').json({ error: 'The monitoring figures are unavailable (state store)', code: 'MONITORING_UNAVAILABLE', status: 503 });
    }
  });
  return router;
}

/** The guard from the service's token verifier. */
export const monitoringGuard = (verifier: AccessTokenVerifier): RequestHandler => requireSmartAccess(verifier, { anyScope: MONITORING_READ_SCOPES });

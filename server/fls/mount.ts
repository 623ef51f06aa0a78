/**
 * Composition of the FLS worklist for `server/index.ts`: the FHIR client (with the service's
 * bearer-token provider, server/auth), the audit log (FHIR AuditEvent, local SQLite fallback at `FLS_AUDIT_DB`), the
 * worklist (pathway due dates `FLS_DUE_*`, flag-reason thresholds `RISK_TIER_*`) and its router behind SMART
 * user-level scopes.
 *
 * The FLS API always requires an access token, whatever `API_AUTH_REQUIRED` says: every worklist action must be
 * attributable to a user in the audit trail.
 */
import type { RequestHandler } from 'express';
import { createApiTokenVerifier } from '../auth/setup.ts';
import type { AppConfig } from '../config.ts';
import { configuredFhirClient } from '../risk/wiring.ts';
import type { Logger } from '../logging.ts';
import { AuditLog } from './audit.ts';
import { createFlsRouter, smartGuards } from './routes.ts';
import { Worklist } from './worklist.ts';

export interface FlsMount {
  handler: RequestHandler;
  close(): void;
}

export function createFlsMount(config: AppConfig, logger: Logger): FlsMount {
  const fhir = configuredFhirClient(config);
  const audit = new AuditLog({ fhir, dbPath: config.fls.auditDb, logger });
  const worklist = new Worklist({ fhir, imminentDays: config.fls.imminentDays, due: config.fls.due, thresholds: config.risk.tiers });
  const handler = createFlsRouter({ worklist, audit, guards: smartGuards(createApiTokenVerifier(config)), logger });
  return { handler, close: () => audit.close() };
}

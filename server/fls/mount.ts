/**
 * Composition of the FLS worklist for `server/index.ts`: the FHIR client (with the service's
 * bearer-token provider, server/auth), the audit log (FHIR AuditEvent; events the FHIR server refuses are kept in the
 * SQLite file `FLS_AUDIT_DB`, or in PostgreSQL shared by the replicas when the composition root hands in the pool of
 * `DATABASE_URL`, and forwarded later), the
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
import { PostgresAuditFallback } from '../state/audit-postgres.ts';
import type { PgPool } from '../state/postgres.ts';
import { AuditLog } from './audit.ts';
import { createFlsRouter, smartGuards } from './routes.ts';
import { Worklist } from './worklist.ts';

/**
 * How often kept audit events are forwarded besides after each successful write, in ms: a replica that serves no FLS
 * request still forwards what a stopped one kept.
 */
export const AUDIT_FORWARD_INTERVAL_MS = 60_000;

export interface FlsMount {
  handler: RequestHandler;
  close(): Promise<void>;
}

/** `shared.pool`: the migrated PostgreSQL pool of `DATABASE_URL` (audit fallback shared by the replicas). */
export function createFlsMount(config: AppConfig, logger: Logger, shared: { pool?: PgPool | undefined } = {}): FlsMount {
  const fhir = configuredFhirClient(config);
  // With DATABASE_URL refused events must go to the shared store, where any replica forwards them.
  if (config.state.databaseUrl && !shared.pool) throw new Error('DATABASE_URL is set but the FLS mount got no PostgreSQL pool (composition root)');
  const audit = new AuditLog({
    fhir,
    ...(shared.pool ? { store: new PostgresAuditFallback(shared.pool) } : { dbPath: config.fls.auditDb }),
    logger,
    forwardIntervalMs: AUDIT_FORWARD_INTERVAL_MS,
  });
  // Events kept before this start (by this or another replica) go as soon as the FHIR server answers.
  void audit.forwardPending().catch((err: unknown) => logger.warn({ component: 'fls-audit', err: (err as Error).message }, 'kept audit events not forwarded at start'));
  const worklist = new Worklist({ fhir, imminentDays: config.fls.imminentDays, due: config.fls.due, thresholds: config.risk.tiers });
  const handler = createFlsRouter({ worklist, audit, guards: smartGuards(createApiTokenVerifier(config)), logger });
  return { handler, close: () => audit.close() };
}

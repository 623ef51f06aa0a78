/**
 * Wires the CDS Hooks service into the running process (called by `server/index.ts` once the risk engine exists):
 * trusted clients from `smart-config/cds-clients.json`, the JWT verifier, the card log (the embedded SQLite file
 * `CDS_FEEDBACK_DB`, or PostgreSQL when the composition root hands in the shared pool of `DATABASE_URL`), and the two
 * routers.
 */
import type { RequestHandler } from 'express';
import type { AppConfig } from '../config.ts';
import { loadOrderCodeMaps } from '../fhir/conceptmaps.ts';
import type { Logger } from '../logging.ts';
import type { RiskService } from '../risk/service.ts';
import { loadCdsClients } from './clients.ts';
import { CdsJwtVerifier } from './jwt.ts';
import { createCdsRouter, createFeedbackSummaryRouter } from './router.ts';
import { CdsStore, type CardLogRetention } from './store.ts';
import { PostgresCardLog } from '../state/cardlog-postgres.ts';
import type { PgPool } from '../state/postgres.ts';
import type { CardLogStore, ReplayCache } from '../state/types.ts';

export interface CdsMounts {
  cds: RequestHandler;
  feedback: RequestHandler;
  /** The card log: close it at shutdown (it leaves a shared pool open). */
  store: CardLogStore;
}

/** `shared.pool`: the migrated PostgreSQL pool of `DATABASE_URL` — every replica then writes one card log. */
export function createCds(config: AppConfig, logger: Logger, risk: RiskService, shared: { pool?: PgPool | undefined; replay?: ReplayCache } = {}): CdsMounts {
  const clients = loadCdsClients(config.smartConfigDir, config.publicBaseUrl);
  // `shared.replay`: the replicas' jti cache (server/state/), so a client JWT replayed to another replica is refused.
  const verifier = new CdsJwtVerifier({ clients, jtiTtlS: config.cds.jtiTtlS, clockSkewS: config.cds.clockSkewS, ...(shared.replay ? { replay: shared.replay } : {}) });
  // With DATABASE_URL the card log must be the shared one: a per-process file would split it between replicas.
  if (config.state.databaseUrl && !shared.pool) throw new Error('DATABASE_URL is set but the CDS mount got no PostgreSQL pool (composition root)');
  const log = logger.child({ component: 'cds' });
  const retention: CardLogRetention = {
    days: config.cds.cardLogRetentionDays,
    onSwept: (deleted) => log.info({ deleted, retentionDays: config.cds.cardLogRetentionDays }, 'cds: card log retention sweep'),
    onError: (err) => log.warn({ err: err.message }, 'cds: card log retention sweep failed; tried again at the next one'),
  };
  const store: CardLogStore = shared.pool ? new PostgresCardLog(shared.pool, { retention }) : new CdsStore(config.cds.feedbackDb, { retention });
  // Order-code ConceptMaps: shipped + the site's ORDER_CODE_MAPS_DIR (already validated by loadConfig).
  const orderCodes = loadOrderCodeMaps(config.cds.orderCodeMapsDir === undefined ? {} : { extraDir: config.cds.orderCodeMapsDir });
  const orderCodeMaps = orderCodes.maps.map((m) => ({ id: m.id, codes: m.codes }));
  logger.info({ clients: clients.map((c) => c.id), cardLog: store.backend, deadlineMs: config.cds.deadlineMs, orderCodeMaps }, 'CDS Hooks service ready');
  return {
    cds: createCdsRouter({
      risk,
      verifier,
      store,
      logger,
      orderCodes,
      settings: {
        publicBaseUrl: config.publicBaseUrl,
        deadlineMs: config.cds.deadlineMs,
        orderMinTier: config.cds.orderMinTier,
        patientViewMinTier: config.cds.patientViewMinTier,
        fhirTimeoutMs: config.fhir.timeoutMs,
      },
    }),
    feedback: createFeedbackSummaryRouter(store),
    store,
  };
}

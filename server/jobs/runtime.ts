/**
 * Builds the job machinery from the configuration, shared by the service (`server/events/start.ts`), the worker
 * process (`npm run worker`) and the benchmarks: the queue (SQLite, or BullMQ when `REDIS_URL` is set) and the job
 * runner bound to a risk service and the FHIR triage.
 */
import type { AppConfig } from '../config.ts';
import type { FhirDataSource, HttpFhirClient } from '../fhir/client.ts';
import { ModelRegistry } from '../inference/registry.ts';
import type { Logger } from '../logging.ts';
import type { AssessRequest } from '../risk/assess.ts';
import type { RiskService, ServiceResult } from '../risk/service.ts';
import { configuredFhirClient, createRiskService } from '../risk/wiring.ts';
import type { JobMetrics } from './metrics.ts';
import { processReportEvent } from './process.ts';
import { RedisJobQueue } from './redis-queue.ts';
import { SqliteJobQueue, type JobRunner } from './sqlite-queue.ts';
import { loadTriage, type TriageFn } from './triage-link.ts';
import type { JobCoordination, JobQueue } from './types.ts';

export type RunnableQueue = JobQueue & { readonly coordination: JobCoordination; start(run: JobRunner, concurrency: number): void };

export function createQueue(config: AppConfig, logger: Logger, metrics?: JobMetrics): RunnableQueue {
  const common = { maxAttempts: config.jobs.maxAttempts, backoffMs: config.jobs.backoffMs, leaseMs: config.jobs.leaseMs, logger, ...(metrics ? { metrics } : {}) };
  if (config.jobs.redisUrl) return new RedisJobQueue({ url: config.jobs.redisUrl, ...common });
  return new SqliteJobQueue({ path: config.jobs.dbPath, ...common });
}

/** Anything that assesses like the RiskService (its `assess` with per-call options). */
export interface Assessor {
  readonly fhir: FhirDataSource;
  assess(req: AssessRequest): Promise<ServiceResult>;
}

/** The FLS triage bound to the configured tiers (null when the FLS module is not part of the build). */
export async function configuredTriage(config: AppConfig, logger: Logger): Promise<TriageFn | null> {
  const fn = await loadTriage();
  if (!fn) {
    logger.warn({ component: 'jobs' }, 'server/fls/triage.ts is not available: jobs will not create FLS triage Tasks');
    return null;
  }
  return (fhir, input) => fn(fhir, input, { tiers: config.fls.triageTiers, contactDays: config.fls.due.contact, logger });
}

export function createRunner(opts: { risk: Assessor; triage: TriageFn | null; coordination: JobCoordination; logger: Logger }): JobRunner {
  const deps = { fhir: opts.risk.fhir, assess: (req: AssessRequest) => opts.risk.assess(req), triage: opts.triage, coordination: opts.coordination, logger: opts.logger };
  return (event) => processReportEvent(deps, event);
}

/**
 * A risk service built from the configuration, for processes that are not the HTTP service (`npm run worker`,
 * `npm run backfill`, benchmarks): the same clients `server/index.ts` builds (FHIR with the configured credentials,
 * DICOMweb, the model registry), without write-back (jobs write their own resources); `bulkFhir` is the same
 * server with a cap for bulk listing.
 */
export async function createStandaloneRisk(config: AppConfig, logger: Logger): Promise<{ risk: RiskService; registry: ModelRegistry; bulkFhir: HttpFhirClient }> {
  const registry = await ModelRegistry.load(config.inference, logger.child({ component: 'inference' }));
  const st = registry.status();
  if (st.models.length === 0) throw new Error(`no model could be loaded from MODELS_DIR: ${st.detail}`);
  const risk = createRiskService(config, registry, logger, { writeBack: false });
  // Bulk listing (backfill) needs more than the 2,000-resource cap that protects interactive searches.
  const bulkFhir = configuredFhirClient(config, { timeoutMs: Math.max(config.fhir.timeoutMs, 60_000), maxResources: 10_000_000 });
  return { risk, registry, bulkFhir };
}

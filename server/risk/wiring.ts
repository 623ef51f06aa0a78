/**
 * The risk service and the clients it needs, built from the configuration — one place for every process that
 * assesses: the HTTP service (`server/index.ts`), the job worker and backfill (`server/jobs/runtime.ts`).
 */
import { createFhirTokenProvider } from '../auth/setup.ts';
import type { AppConfig } from '../config.ts';
import { HttpFhirClient } from '../fhir/client.ts';
import { DicomWebClient } from '../imaging/dicomweb-client.ts';
import { resolutionNeedOf, strictestNeed } from '../imaging/decode/index.ts';
import { inlineImaging, withResolution, type ImagingExecutor } from '../imaging/worker-pool.ts';
import type { ModelRegistry } from '../inference/registry.ts';
import type { Logger } from '../logging.ts';
import type { ResultStore, SingleFlight } from '../state/types.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { renderCtOverlays } from '../pathways/ct-spine/overlay.ts';
import type { CtAssessConfig } from './ct-assess.ts';
import { loadCtModel } from './ct-model.ts';
import { auditSecurityEvents } from './security-audit.ts';
import { RiskService } from './service.ts';

/** The configured FHIR server with the service's own credentials (sandbox client, or `FHIR_AUTH`). */
export function configuredFhirClient(config: AppConfig, overrides: { timeoutMs?: number; maxResources?: number } = {}): HttpFhirClient {
  const tokenProvider = createFhirTokenProvider(config);
  return new HttpFhirClient({ baseUrl: config.fhir.baseUrl, timeoutMs: config.fhir.timeoutMs, ...overrides, ...(tokenProvider ? { tokenProvider } : {}) });
}

/** The configured DICOMweb server (PACS or sandbox) with its credentials, time-outs and limits. */
export function configuredDicomWebClient(config: AppConfig): DicomWebClient {
  const auth = config.dicomweb.auth;
  return new DicomWebClient({
    baseUrl: config.dicomweb.baseUrl,
    timeoutMs: config.dicomweb.timeoutMs,
    retries: config.dicomweb.retries,
    maxResponseBytes: config.dicomweb.maxResponseBytes,
    ...(auth.type === 'none' ? {} : { auth }),
  });
}

export interface RiskServiceOptions {
  /** Write each new assessment's resources to the FHIR server (the HTTP service: `RISK_WRITE_BACK`; jobs write their own). */
  writeBack: boolean;
  /** Where radiographs are decoded and preprocessed (worker threads); inline on the calling thread when absent. */
  imaging?: ImagingExecutor;
  /** Shared results and single-flight (server/state/ `openStateStores`); without them, results live in this process only. */
  state?: { results: ResultStore; flight: SingleFlight };
}

/**
 * The CT pathway's configuration (`MODEL_CT_DIR`): the model, the overlay renderer and the fetch parallelism. The
 * default folder without a manifest leaves CT studies unassessed (logged); a folder named explicitly must load.
 */
export function ctAssessConfig(config: AppConfig, logger: Logger): CtAssessConfig | undefined {
  const dir = config.inference.ctModelDir;
  if (!config.inference.ctModelDirSet && !existsSync(join(dir, 'manifest.json'))) {
    logger.warn({ setting: 'MODEL_CT_DIR' }, 'no CT spine model in the default folder: CT studies are not assessed');
    return undefined;
  }
  const model = loadCtModel(dir);
  logger.info({ model: model.id, version: model.version }, 'CT spine model loaded');
  return { model, renderOverlays: renderCtOverlays, concurrency: config.imaging.ctFetchConcurrency };
}

export function createRiskService(config: AppConfig, registry: ModelRegistry, logger: Logger, opts: RiskServiceOptions): RiskService {
  const fhir = configuredFhirClient(config);
  const ct = ctAssessConfig(config, logger);
  return new RiskService({
    deps: {
      fhir,
      dicomweb: configuredDicomWebClient(config),
      registry,
      settings: config.risk,
      logger: logger.child({ component: 'risk' }),
      // Radiographs are decoded only at the resolution the loaded models read (JPEG 2000 resolution levels).
      imaging: withResolution(opts.imaging ?? inlineImaging, strictestNeed(registry.list().map((m) => resolutionNeedOf(m.manifest.preprocessing.constants)))),
      onSecurityEvent: auditSecurityEvents(fhir, logger),
      ...(ct ? { ct } : {}),
    },
    cacheSize: config.risk.cacheSize,
    writeBack: opts.writeBack,
    logger,
    ...(opts.state ? { results: opts.state.results, flight: opts.state.flight, resultTtlMs: config.state.resultTtlMs } : {}),
  });
}

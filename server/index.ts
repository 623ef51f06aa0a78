/**
 * Composition root: `npm start` (= `node --import tsx server/index.ts`) and `npm run start:prod` (= `node
 * dist/server/index.js`, built by `npm run build`).
 *
 * Order matters for operators: configuration is checked first (a wrong value stops the process with one message),
 * then the HTTP server listens at once so `/healthz` and `/readyz` answer while the embedded sandboxes are built and
 * seeded (readiness lists them as `starting`), then the URLs a user should open are logged.
 */
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { createApp, usefulUrls, type SandboxMounts, type ServiceMounts } from './app.ts';
import { ConfigError, loadConfig, REPO_ROOT, type AppConfig } from './config.ts';
import { createMetrics } from './health/metrics.ts';
import { httpProbe, Readiness } from './health/readiness.ts';
import { createLogger, type Logger } from './logging.ts';
import { createDicomWebRouter } from './sandbox/dicomweb/router.ts';
import { createFhirSandbox } from './sandbox/fhir/router.ts';
import { openReadsSecurity } from './sandbox/fhir/capability.ts';
import { seedFhirSandbox } from './sandbox/seed.ts';
import { ModelRegistry } from './inference/registry.ts';
import { ASSESSMENT_SCOPES, createPatientRouter, createRiskRouter } from './risk/routes.ts';
import type { RiskService } from './risk/service.ts';
import { createRiskService } from './risk/wiring.ts';
import { createImagingExecutor, type ImagingExecutor } from './imaging/worker-pool.ts'; // imaging worker threads
import { createCds } from './cds/mount.ts'; // CDS Hooks
// SMART authorization: sandbox authorization server, token-guarded sandbox FHIR, service tokens.
import { createSmartSandbox, type SmartSandbox } from './sandbox/smart/server.ts';
import { seedDemoUsers } from './sandbox/smart/users.ts';
import { createApiTokenVerifier, tokenVerificationWarnings } from './auth/setup.ts';
import { requireSmartAccess } from './auth/require.ts';
import { startDemoEhr, type SandboxTokenIssuer } from './sandbox/ehr/mount.ts'; // demo EHR
// SMART app: the bundle is built at start-up when client/dist is missing or older than client/src.
import { ensureClientBundle, missingBundleFiles } from '../client/build.ts';
// Process lifecycle: a busy port fails the start; SIGTERM/SIGINT drain the HTTP server.
import { listen, PortInUseError } from './listen.ts';
// SERVICE_PROCESSES > 1: a supervising primary and that many workers on one port.
import cluster from 'node:cluster';
import { handlePrimarySignals, listenWhenReady, startPrimary, workerSlot } from './cluster.ts';
import { drainable } from './drain.ts';
// FLS worklist: /api/fls, audit log.
import { createFlsMount, type FlsMount } from './fls/mount.ts';
// Production monitoring of the T-score estimate against DXA: /api/monitoring, /metrics gauges, /readyz detail.
import { createMonitoringMount, type MonitoringMount } from './monitoring/mount.ts';
// Report events and durable jobs: /api/events, /api/jobs, sandbox Subscription notifications.
import { startReportEvents } from './events/start.ts';
import { deferredReplayCache, openStateInBackground, type StateStores } from './state/stores.ts';
import type { SandboxRepository } from './sandbox/fhir/repo.ts';

export interface RunningService {
  readonly server: Server;
  readonly readiness: Readiness;
  /** Resolves when the sandboxes are built and seeded (or failed: see readiness). */
  readonly started: Promise<void>;
  /** Closes at once: open connections are cut (tests). */
  close(): Promise<void>;
  /**
   * Graceful stop (SIGTERM/SIGINT): stops accepting, lets requests in flight finish for up to `graceMs` (then
   * closes their connections and calls `onForce`), then closes the models, imaging workers, FLS and job queue.
   */
  shutdown(graceMs: number, onForce?: (inFlight: number) => void): Promise<{ forced: number }>;
}

/** Running compiled JavaScript (`dist/`, `npm run start:prod`) rather than the TypeScript sources. */
const COMPILED = !import.meta.url.endsWith('.ts');

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function dicomWebAuthHeaders(config: AppConfig): Record<string, string> {
  const auth = config.dicomweb.auth;
  if (auth.type === 'basic') return { Authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` };
  if (auth.type === 'bearer') return { Authorization: `Bearer ${auth.token}` };
  return {};
}

async function startFhirSandbox(config: AppConfig, logger: Logger, readiness: Readiness, mounts: SandboxMounts, smart?: SmartSandbox, onSeeded?: (repo: SandboxRepository) => Promise<void>): Promise<void> {
  const component = 'fhir-sandbox';
  let sandbox: ReturnType<typeof createFhirSandbox>;
  try {
    sandbox = createFhirSandbox({
      baseUrl: config.fhir.publicBaseUrl,
      page: config.files.sandbox.fhir,
      maxRequestBytes: config.files.sandbox.fhir.maxRequestBytes,
      logger,
      version: packageVersion(),
      // SMART authorization; with SANDBOX_FHIR_OPEN the statement no longer says reads need a token.
      ...(smart ? { security: config.fhir.sandboxOpen ? openReadsSecurity(smart.capabilitySecurity) : smart.capabilitySecurity } : {}),
    });
  } catch (err) {
    logger.error({ err }, 'sandbox FHIR server failed to start');
    readiness.set(component, 'failed', (err as Error).message);
    mounts.fhir = (_req, res) => void res.status(503).json({ error: 'The embedded FHIR server failed to start; see /readyz', status: 503 });
    return;
  }
  const fhirDir = join(config.sandboxDataDir, 'fhir');
  try {
    // The demo also puts a few patients along the FLS pathway (server/sandbox/fls-demo.ts) for the worklist and KPIs.
    const seeded = await seedFhirSandbox(sandbox.repo, { fhirDir, dicomWebBaseUrl: config.dicomweb.publicBaseUrl, logger, flsDemo: {} });
    if (seeded.bundles === 0) {
      readiness.set(component, 'failed', seeded.failedBundles > 0 ? `all ${seeded.failedBundles} seed bundles were rejected (see log)` : 'no seed bundles found');
    } else if (seeded.failedBundles > 0) {
      readiness.set(component, 'failed', `${seeded.failedBundles} of ${seeded.bundles + seeded.failedBundles} seed bundles were rejected (see log)`);
    } else {
      readiness.set(component, 'ready', `${seeded.bundles} patients, ${seeded.resources} resources`);
    }
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    const detail = missing ? 'no demo cohort: SANDBOX_DATA_DIR has no fhir/ folder' : (err as Error).message;
    if (missing) logger.error({ fhirDir }, `sandbox FHIR server not seeded: ${detail}`);
    else logger.error({ err }, 'sandbox FHIR seeding failed');
    readiness.set(component, 'failed', detail);
  }
  // SMART: the demo users behind fhirUser, and bearer-token/scope enforcement in front of the router.
  if (smart) {
    await seedDemoUsers(sandbox).catch((err: unknown) => logger.error({ err }, 'seeding the demo users failed'));
    smart.attachFhir(sandbox);
  }
  // Report events: demo reports set preliminary, the Subscription notifier, the service's own Subscription.
  if (onSeeded) await onSeeded(sandbox.repo).catch((err: unknown) => logger.error({ err }, 'sandbox Subscription set-up failed'));
  // Served even when seeding failed (empty or partial), so the problem can be looked at; /readyz says it is not ready.
  mounts.fhir = smart ? smart.guard(sandbox, config.files.sandbox.fhir.maxRequestBytes, { openReads: config.fhir.sandboxOpen }) : sandbox.router;
}

async function startDicomWebSandbox(config: AppConfig, logger: Logger, readiness: Readiness, mounts: SandboxMounts): Promise<void> {
  const component = 'dicomweb-sandbox';
  try {
    const { router, instanceCount } = await createDicomWebRouter({ dicomDir: join(config.sandboxDataDir, 'dicom'), logger: logger.child({ component }) });
    mounts.dicomWeb = router;
    if (instanceCount === 0) readiness.set(component, 'failed', 'no DICOM files under SANDBOX_DATA_DIR/dicom');
    else readiness.set(component, 'ready', `${instanceCount} instances`);
  } catch (err) {
    logger.error({ err }, 'sandbox DICOMweb server failed to start');
    readiness.set(component, 'failed', (err as Error).message);
  }
}

/** Loads the models (readiness component `models`, detail names the execution provider) and mounts the risk API. */
async function startRiskEngine(config: AppConfig, logger: Logger, readiness: Readiness, mounts: ServiceMounts, state: Promise<StateStores>, onRisk?: (service: RiskService) => void, imaging?: ImagingExecutor): Promise<ModelRegistry | undefined> {
  // Foreign authorization servers (token-verification.json "servers"): an HS256 entry in force is a /readyz warning,
  // listed from the start (before the models load) since the FLS API verifies the same tokens whatever happens here.
  for (const w of tokenVerificationWarnings(config)) readiness.warn(w.key, w.message);
  try {
    const registry = await ModelRegistry.load(config.inference, logger.child({ component: 'inference' }));
    const st = registry.status();
    readiness.set('models', st.ready ? 'ready' : 'failed', st.detail);
    if (st.models.length === 0) return registry;
    // SMART: the FHIR client carries the sandbox's frcds-service token, or FHIR_AUTH for an external server.
    // Shared state (server/state/): results, single-flight and the jti cache; waits while a backend is down.
    const stores = await state;
    const service = createRiskService(config, registry, logger, { writeBack: config.risk.writeBack, ...(imaging ? { imaging } : {}), state: stores });
    // Operators see whether CT studies are assessed, and by which model, beside the radiograph models.
    readiness.set('models', st.ready ? 'ready' : 'failed', `${st.detail}; CT: ${service.ctModel ?? 'not assessed (no CT model)'}`);
    const riskRouter = createRiskRouter(service, logger);
    // The app's patient history and care status (/api/patients/{id}/…): read with the risk service's FHIR client.
    const patientRouter = createPatientRouter({ fhir: service.fhir, logger });
    // SMART authorization: a verified access token holding a RiskAssessment read scope is required unless
    // API_AUTH_REQUIRED=false; routes.ts checks its patient.
    if (config.auth.apiRequireToken) {
      const guard = requireSmartAccess(createApiTokenVerifier(config), { realm: 'fracture-risk-cds', anyScope: ASSESSMENT_SCOPES });
      mounts.assessments = (req, res, next) => void guard(req, res, (err?: unknown) => (err ? next(err) : riskRouter(req, res, next)));
      mounts.patients = (req, res, next) => void guard(req, res, (err?: unknown) => (err ? next(err) : patientRouter(req, res, next)));
    } else {
      mounts.assessments = riskRouter;
      mounts.patients = patientRouter;
    }
    // CDS Hooks: /cds-services and /api/feedback, on the same risk service (shared cache).
    try {
      const cds = createCds(config, logger, service, { pool: stores.pool, replay: stores.replay });
      mounts.cds = cds.cds;
      mounts.feedback = cds.feedback;
    } catch (err) {
      logger.error({ err }, 'CDS Hooks service failed to start');
      readiness.set('cds', 'failed', (err as Error).message);
    }
    onRisk?.(service); // report-event jobs run on the same risk service
    return registry;
  } catch (err) {
    logger.error({ err }, 'risk engine failed to start');
    readiness.set('models', 'failed', (err as Error).message);
    return undefined;
  }
}

/**
 * SMART app: builds `client/dist` with esbuild when it is missing or stale, so `npm start` serves a bundle
 * made from the checked-out sources (readiness component `app`). A failure leaves `/app/` answering 503.
 */
async function buildAppBundle(logger: Logger, readiness: Readiness): Promise<void> {
  readiness.set('app', 'starting');
  // Production: `npm run build` made the bundle; nothing is built (and esbuild not loaded) at run time.
  if (COMPILED) {
    const missing = missingBundleFiles();
    if (missing.length === 0) readiness.set('app', 'ready', 'bundle built by npm run build');
    else readiness.set('app', 'failed', `client/dist lacks ${missing.join(', ')}: run npm run build`);
    return;
  }
  try {
    const report = await ensureClientBundle();
    const detail = report ? `built in ${Math.round(report.ms)} ms, ${(report.totalGzipBytes / 1024).toFixed(1)} KB gzipped` : 'bundle up to date';
    if (report) logger.info({ ms: Math.round(report.ms), bytes: report.totalBytes, gzipBytes: report.totalGzipBytes }, 'SMART app bundle built');
    readiness.set('app', 'ready', detail);
  } catch (err) {
    logger.error({ err }, 'SMART app bundle build failed');
    readiness.set('app', 'failed', (err as Error).message);
  }
}

/**
 * SMART: the sandbox authorization server at `/sandbox/auth` (keys generated now, in memory). On failure
 * the sandbox FHIR server still starts, unguarded, and the error is logged.
 */
async function startSmartSandbox(config: AppConfig, logger: Logger, mounts: SandboxMounts): Promise<SmartSandbox | undefined> {
  const clients = config.files.smartClients;
  if (!clients) {
    logger.error('smart-config/smart-clients.json is missing: the sandbox FHIR server runs without SMART authorization');
    return undefined;
  }
  try {
    const smart = await createSmartSandbox({
      publicBaseUrl: config.publicBaseUrl,
      fhirBaseUrl: config.fhir.publicBaseUrl,
      otherAudiences: [config.fhir.baseUrl],
      clients,
      logger,
    });
    mounts.auth = smart.router;
    return smart;
  } catch (err) {
    logger.error({ err }, 'sandbox SMART authorization server failed to start');
    return undefined;
  }
}

/** Starts the whole service on `config.port`. */
export async function startService(config: AppConfig, logger: Logger): Promise<RunningService> {
  const readiness = new Readiness();
  const metrics = createMetrics();
  const mounts: SandboxMounts = {};
  const services: ServiceMounts = {};
  readiness.set('models', 'starting');

  if (config.fhir.sandbox) readiness.set('fhir-sandbox', 'starting');
  else readiness.addProbe('fhir-server', httpProbe(`${config.fhir.baseUrl}/metadata`, { Accept: 'application/fhir+json' }), config.fhir.timeoutMs);
  if (config.dicomweb.sandbox) readiness.set('dicomweb-sandbox', 'starting');
  else {
    readiness.addProbe('dicomweb-server', httpProbe(`${config.dicomweb.baseUrl}/studies?limit=1`, { Accept: 'application/dicom+json', ...dicomWebAuthHeaders(config) }), config.dicomweb.timeoutMs);
  }

  const app = createApp({ config, logger, readiness, metrics, sandboxes: mounts, services });
  // Not app.listen: see listen.ts for how that hid a busy port. A cluster worker names itself in each response (its
  // slot, not its pid), so an operator can tell which process answered.
  const slot = workerSlot();
  const server = createServer(slot === undefined ? app : (req, res) => {
    res.setHeader('X-Service-Worker', String(slot));
    app(req, res);
  });
  const http = drainable(server);
  // A cluster worker replacing one that died takes connections only once started (server/cluster.ts).
  const lateListen = listenWhenReady();
  const listenNow = async (): Promise<void> => {
    await listen(server, config.port, config.host);
    logger.info({ host: config.host, port: config.port }, 'listening');
  };
  if (!lateListen) await listenNow();
  if (config.fhir.sandboxOpen) {
    const warning = 'SANDBOX_FHIR_OPEN=true: the sandbox FHIR server answers reads and searches WITHOUT an access token (interop demo mode; loopback only, writes still need a token)';
    readiness.warn('SANDBOX_FHIR_OPEN', warning);
    logger.warn({ setting: 'SANDBOX_FHIR_OPEN', fhirBaseUrl: config.fhir.publicBaseUrl }, `WARNING ${warning}`);
  }

  let registry: ModelRegistry | undefined;
  let risk: RiskService | undefined;
  let fls: FlsMount | undefined; // FLS worklist
  let monitoring: MonitoringMount | undefined; // T-score monitoring
  // Shared state (server/state/, REDIS_URL / DATABASE_URL, else the embedded STATE_DB file): opened in the background
  // and retried while a backend is down; `/readyz` component `state` is false until then and whenever one stops
  // answering. What needs it waits for it rather than run on per-process state.
  const sharedState = openStateInBackground({ databaseUrl: config.state.databaseUrl, redisUrl: config.state.redisUrl, dbPath: config.state.dbPath }, { logger });
  readiness.addProbe('state', () => sharedState.probe(), 3000);
  // Report events and durable jobs: receiver and queue at once; the worker when the models are loaded.
  const reportEvents = startReportEvents({ config, logger, registry: metrics.registry, replay: deferredReplayCache(sharedState.stores) });
  services.events = reportEvents.events;
  services.jobs = reportEvents.jobs;
  // Imaging worker threads (IMAGING_WORKERS, server/imaging/worker-pool.ts): frame decoding and preprocessing off
  // the main event loop so hooks are not queued behind another patient's radiograph; closed with the server.
  const imaging = createImagingExecutor(config.imaging.workers, { logger: logger.child({ component: 'imaging' }) });
  const starting = (async () => {
    // DICOM indexing is mostly file I/O: start it first so it overlaps the (CPU-bound) FHIR definition loading.
    const dicom = config.dicomweb.sandbox ? startDicomWebSandbox(config, logger, readiness, mounts) : Promise.resolve();
    const models = startRiskEngine(config, logger, readiness, services, sharedState.stores, (service) => {
      risk = service;
      void reportEvents.useRiskService(service);
    }, imaging);
    // FLS worklist: needs no model; FHIR calls fail with 502 until the FHIR server answers. Its audit
    // fallback is shared (PostgreSQL) with DATABASE_URL, so it waits for the state.
    const flsMounted = sharedState.stores.then((stores) => {
      try {
        fls = createFlsMount(config, logger, { pool: stores.pool });
        services.fls = fls.handler;
      } catch (err) {
        logger.error({ err }, 'FLS worklist failed to start');
      }
      // T-score monitoring keeps its pairs and alarms in the shared state; it polls the FHIR server for DXA results.
      try {
        const m = createMonitoringMount(config, logger, { stores, registry: metrics.registry, readiness });
        monitoring = m;
        services.monitoring = m.handler;
        m.monitoring.start();
      } catch (err) {
        logger.error({ err }, 'T-score monitoring failed to start');
      }
    });
    const appBundle = buildAppBundle(logger, readiness);
    // SMART: the sandbox authorization server comes first: the guarded FHIR sandbox and the EHR need it.
    const smart = config.fhir.sandbox ? await startSmartSandbox(config, logger, mounts) : undefined;
    // The sandbox authorization server's key also signs the sandbox's notifications (EVENTS_AUTH=jwt).
    if (config.fhir.sandbox) await startFhirSandbox(config, logger, readiness, mounts, smart, (repo) => reportEvents.attachSandbox(repo, smart));
    // Demo EHR: with the sandbox FHIR server only. `ehrTokenIssuer` is the sandbox authorization server
    // (it mints the patient-scoped fhirAuthorization tokens the EHR hands the CDS service); undefined until it exists.
    if (config.fhir.sandbox) {
      const ehrTokenIssuer: SandboxTokenIssuer | undefined = smart;
      await startDemoEhr(config, logger, ehrTokenIssuer)
        .then((ehr) => void (mounts.ehr = ehr.handler))
        .catch((err: unknown) => logger.error({ err }, 'demo EHR failed to start'));
    }
    await dicom;
    registry = await models;
    await flsMounted;
    await appBundle;
    const report = await readiness.report();
    const urls = usefulUrls(config);
    const notReady = Object.keys(report.components).filter((c) => !report.components[c]!.ready);
    const state = report.ready
      ? 'and ready'
      : `but NOT ready (${notReady.map((c) => `${c}: ${report.components[c]!.detail ?? report.components[c]!.state}`).join('; ')})`;
    logger[report.ready ? 'info' : 'warn'](
      { urls, ready: report.ready, notReady },
      `Fracture Risk CDS is up ${state} (research use — trained on synthetic data). Open: ${Object.values(urls).join('  ')}`,
    );
  })();
  // A failed late listen ends the worker (the primary replaces it).
  const started = lateListen ? starting.then(listenNow).catch((err: unknown) => {
    logger.fatal({ err }, 'cannot listen');
    process.exit(1);
  }) : starting;

  const closeRest = async (): Promise<void> => {
    await registry?.close();
    await imaging.close();
    await fls?.close();
    await monitoring?.close();
    await reportEvents.close();
    // The PNGs of the last results go to the store before its connections close.
    await risk?.flush();
    await sharedState.close();
  };
  return {
    server,
    readiness,
    started,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      }).then(closeRest),
    shutdown: async (graceMs, onForce) => {
      const drained = await http.drain(graceMs, onForce);
      await closeRest();
      return drained;
    },
  };
}

async function main(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const root = createLogger({ level: config.log.level, hashSalt: config.log.hashSalt });
  // A cluster worker's lines name its slot: the workers write to one stream.
  const slot = workerSlot();
  const logger = slot === undefined ? root : root.child({ worker: slot });
  if (config.processes > 1 && cluster.isPrimary) {
    const primary = startPrimary({ processes: config.processes, logger, onStartFailure: () => process.exit(1) });
    handlePrimarySignals(primary, logger);
    return;
  }
  let service: RunningService;
  try {
    service = await startService(config, logger);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      err instanceof PortInUseError ? `${err.message}: another process is listening there (stop it, or set PORT)`
      : code === 'EACCES' ? `no permission to listen on ${config.host}:${config.port}`
      : code === 'EADDRNOTAVAIL' ? `HOST=${config.host} is not an address of this machine`
      : (err as Error).message;
    logger.fatal({ code, host: config.host, port: config.port }, `cannot start: ${message}`);
    process.exit(1);
  }
  handleStopSignals(service, logger);
}

/** How long requests in flight may run after SIGTERM/SIGINT before their connections are closed. */
const DRAIN_GRACE_MS = 10_000;
/** How much longer than the drain closing the models, workers and queues may take before the process gives up. */
const CLOSE_GRACE_MS = 5_000;
/**
 * A repeat of the signal within this time is the same request: Ctrl-C in a terminal reaches `npm start` and the
 * server alike, and npm forwards its copy to the server too.
 */
const SAME_SIGNAL_MS = 1_000;

/**
 * SIGTERM/SIGINT: drain, close the rest, exit 0 (one log line each step). A second signal exits at once (status
 * 128 + signal number, as a shell reports a signal death).
 */
function handleStopSignals(service: RunningService, logger: Logger): void {
  let first: { signal: NodeJS.Signals; at: number } | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (first) {
      if (signal === first.signal && Date.now() - first.at < SAME_SIGNAL_MS) return;
      logger.warn({ signal }, `${signal} again: exiting at once without waiting for requests in flight`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    first = { signal, at: Date.now() };
    logger.info({ signal, graceMs: DRAIN_GRACE_MS }, `${signal}: shutting down — no new connections, waiting for requests in flight (send it again to exit at once)`);
    const t0 = Date.now();
    setTimeout(() => {
      logger.error(`shutdown did not finish within ${(DRAIN_GRACE_MS + CLOSE_GRACE_MS) / 1000} s (closing models, workers or queues hangs): exiting`);
      process.exit(1);
    }, DRAIN_GRACE_MS + CLOSE_GRACE_MS).unref();
    void service
      .shutdown(DRAIN_GRACE_MS, (inFlight) => {
        logger.warn({ inFlight }, `drain time (${DRAIN_GRACE_MS / 1000} s) is up: closing the connections of ${inFlight} unfinished request(s)`);
      })
      .then(
        ({ forced }) => {
          logger.info({ ms: Date.now() - t0, forced }, 'stopped');
          process.exit(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  void main();
}

/**
 * The demo stack for tests that need real HTTP: the embedded FHIR sandbox seeded with the committed demo cohort
 * and the sandbox DICOMweb server over its DICOM files, both on one loopback port (as `npm start` mounts them).
 *
 * SMART (issue 7): as in `npm start`, the sandbox authorization server runs at `/sandbox/auth` and the FHIR sandbox
 * demands bearer tokens and enforces scopes. Use `stack.fhirClient()` (a system-scoped HttpFhirClient),
 * `stack.token({...})` (an access token for any grant) or `stack.authHeaders()`; `startDemoStack(dir, { smart: false })`
 * gives the unguarded server.
 */
import type { Server } from 'node:http';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import express from 'express';
import { loadConfig, REPO_ROOT } from '../../server/config.ts';
import { createLogger, type Logger } from '../../server/logging.ts';
import { createDicomWebRouter } from '../../server/sandbox/dicomweb/router.ts';
import { createFhirSandbox, type FhirSandbox } from '../../server/sandbox/fhir/router.ts';
import { seedFhirSandbox } from '../../server/sandbox/seed.ts';
// SMART (issue 7)
import { HttpFhirClient } from '../../server/fhir/client.ts';
import { DicomWebClient } from '../../server/imaging/dicomweb-client.ts';
import type { ModelRegistry } from '../../server/inference/registry.ts';
import type { AssessDeps } from '../../server/risk/assess.ts';
import type { BearerTokenProvider } from '../../server/auth/token-provider.ts';
import { createSmartSandbox, type SmartSandbox } from '../../server/sandbox/smart/server.ts';
import type { GrantContext } from '../../server/sandbox/smart/tokens.ts';
import { seedDemoUsers } from '../../server/sandbox/smart/users.ts';

/** Scopes of the default test token: the system-level access the service's own backend client has, and more. */
export const TEST_SYSTEM_SCOPES = ['system/*.cruds'] as const;

export const DEMO_DIR = join(REPO_ROOT, 'server/sandbox/demo-cohort');

export interface DemoStack {
  base: string;
  fhirBaseUrl: string;
  dicomWebBaseUrl: string;
  fhir: FhirSandbox;
  server: Server;
  logger: Logger;
  // --- SMART (issue 7) ---
  /** The sandbox authorization server (undefined with `{ smart: false }`). */
  smart: SmartSandbox | undefined;
  /** `${base}/sandbox/auth`. */
  authBaseUrl: string;
  /** Signs an access token (default: client `demo-backend`, scopes `system/*.cruds`). */
  token(grant?: Partial<GrantContext>, options?: { lifetimeSeconds?: number; expiresAt?: number }): Promise<string>;
  /** `{ Authorization: 'Bearer …' }` with a system-level token (empty with `{ smart: false }`). */
  authHeaders(grant?: Partial<GrantContext>): Promise<Record<string, string>>;
  /** A token provider for HttpFhirClient (system-level unless `grant` says otherwise). */
  tokenProvider(grant?: Partial<GrantContext>): BearerTokenProvider;
  /** An HttpFhirClient on the sandbox FHIR base with a system-level token provider. */
  fhirClient(options?: { timeoutMs?: number; grant?: Partial<GrantContext> }): HttpFhirClient;
  /** What an assessment needs against this stack: its FHIR (system token) and DICOMweb clients, `registry`, `settings`. */
  assessDeps(registry: ModelRegistry, settings: AssessDeps['settings'], timeoutMs?: number): AssessDeps;
  close(): Promise<void>;
}

export const silentLogger = (): Logger => createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

export interface DemoStackOptions {
  /** Run the sandbox authorization server and guard the FHIR sandbox with it (default true, as `npm start` does). */
  readonly smart?: boolean;
}

export async function startDemoStack(dataDir: string = DEMO_DIR, options: DemoStackOptions = {}): Promise<DemoStack> {
  const logger = silentLogger();
  const config = loadConfig({});
  const app = express();
  const mounts: { fhir?: express.RequestHandler; dicom?: express.RequestHandler; auth?: express.RequestHandler } = {};
  app.use('/sandbox/fhir', (req, res, next) => (mounts.fhir ? mounts.fhir(req, res, next) : res.status(503).end()));
  app.use('/sandbox/auth', (req, res, next) => (mounts.auth ? mounts.auth(req, res, next) : res.status(options.smart === false ? 404 : 503).end()));
  app.use('/sandbox/dicom-web', (req, res, next) => (mounts.dicom ? mounts.dicom(req, res, next) : res.status(503).end()));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const port = (server.address() as { port: number }).port;
  const base = `http://127.0.0.1:${port}`;
  const fhirBaseUrl = `${base}/sandbox/fhir`;
  const dicomWebBaseUrl = `${base}/sandbox/dicom-web`;
  const authBaseUrl = `${base}/sandbox/auth`;
  const smart = options.smart === false ? undefined : await createSmartSandbox({ publicBaseUrl: base, fhirBaseUrl, clients: config.files.smartClients!, logger });
  const fhir = createFhirSandbox({
    baseUrl: fhirBaseUrl,
    page: config.files.sandbox.fhir,
    maxRequestBytes: config.files.sandbox.fhir.maxRequestBytes,
    logger,
    ...(smart ? { security: smart.capabilitySecurity } : {}),
  });
  const seeded = await seedFhirSandbox(fhir.repo, { fhirDir: join(dataDir, 'fhir'), dicomWebBaseUrl, logger });
  if (seeded.failedBundles > 0) throw new Error(`demo cohort seeding rejected ${seeded.failedBundles} bundles`);
  const dicom = await createDicomWebRouter({ dicomDir: join(dataDir, 'dicom'), logger });
  if (smart) {
    await seedDemoUsers(fhir);
    mounts.auth = smart.router;
    mounts.fhir = smart.guard(fhir, config.files.sandbox.fhir.maxRequestBytes);
  } else {
    mounts.fhir = fhir.router;
  }
  mounts.dicom = dicom.router;
  const token = async (grant: Partial<GrantContext> = {}, o: { lifetimeSeconds?: number; expiresAt?: number } = {}): Promise<string> => {
    if (!smart) return '';
    return (await smart.issueAccessToken({ clientId: 'demo-backend', scopes: [...TEST_SYSTEM_SCOPES], ...grant }, o)).token;
  };
  const tokenProvider = (grant: Partial<GrantContext> = {}): BearerTokenProvider => {
    let current: { token: string; until: number } | undefined;
    return {
      async token() {
        if (!current || current.until < Date.now()) current = { token: await token(grant), until: Date.now() + 30 * 60_000 };
        return current.token;
      },
      invalidate() {
        current = undefined;
      },
    };
  };
  const fhirClient = (o: { timeoutMs?: number; grant?: Partial<GrantContext> } = {}): HttpFhirClient =>
    new HttpFhirClient({ baseUrl: fhirBaseUrl, timeoutMs: o.timeoutMs ?? 10_000, ...(smart ? { tokenProvider: tokenProvider(o.grant) } : {}) });
  return {
    base,
    fhirBaseUrl,
    dicomWebBaseUrl,
    fhir,
    server,
    logger,
    smart,
    authBaseUrl,
    token,
    authHeaders: async (grant): Promise<Record<string, string>> => (smart ? { Authorization: `Bearer ${await token(grant)}` } : {}),
    tokenProvider,
    fhirClient,
    assessDeps: (registry, settings, timeoutMs = 10_000) =>
      ({ fhir: fhirClient({ timeoutMs }), dicomweb: new DicomWebClient({ baseUrl: dicomWebBaseUrl, timeoutMs }), registry, settings, logger }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface DemoTruthPatient {
  patient_id: string;
  site: 'A' | 'B';
  sex: 'female' | 'male';
  index_datetime: string;
  image: { artefact: string | null; should_exclude: boolean };
  ehr: { qf_lp_hip: number; qf_lp_mof: number; qf_risk10_hip: number; qf_risk10_mof: number; bmi: number | null; nhs_ethnic: string; smoke_cat: number | null; alcohol_cat6: number | null };
}

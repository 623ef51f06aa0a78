/**
 * The one place the service reads its configuration: environment variables (table `SETTINGS` below) and the JSON
 * files in `smart-config/` (each validated against `smart-config/schema/<name>.schema.json`).
 *
 * Validation uses ajv (one schema per setting, so an error can name the setting). Any wrong value makes
 * {@link loadConfig} throw a {@link ConfigError} whose message names every offending setting; `server/index.ts`
 * prints that one message and exits non-zero. The README configuration table is generated from `SETTINGS`
 * (`npx tsx server/config.ts --markdown`) so the two cannot drift apart.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { createRequire } from 'node:module';
import type { SmartClientsFile } from './sandbox/smart/clients.ts'; // SMART sandbox (issue 7)
import { loadOrderCodeMaps, OrderCodeMapError } from './fhir/conceptmaps.ts'; // CDS order-code ConceptMaps
import { bareIp, classifyAddress } from './fhir/outbound.ts';
import { resolveTokenServers, type TokenServer } from './auth/servers.ts'; // foreign authorization servers
import { DECISION_DEFAULTS } from './risk/decision.ts'; // decision thresholds' guideline default

/**
 * Repository root: the nearest folder above this file holding `package.json`. Searched for rather than taken as
 * `..` because the production build runs this module from `dist/server/config.js`, one level deeper.
 */
export const REPO_ROOT = findRepoRoot(fileURLToPath(new URL('.', import.meta.url)));

function findRepoRoot(from: string): string {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir.endsWith(sep) ? dir : dir + sep;
    if (dirname(dir) === dir) return fileURLToPath(new URL('..', import.meta.url));
  }
}

/** A configuration value is missing or wrong. The message names the setting(s) and is meant for the operator. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    /** The names of the offending settings (environment variables or `smart-config/<file>.json#/<pointer>`). */
    readonly settings: readonly string[],
  ) {
    super(message);
  }
}

/** How the service authenticates to the DICOMweb server (PACS); the imaging client's `DicomWebAuth` shape plus `none`. */
export type DicomWebAuth =
  | { readonly type: 'none' }
  | { readonly type: 'basic'; readonly username: string; readonly password: string }
  | { readonly type: 'bearer'; readonly token: string };

/** Settings from `smart-config/sandbox.json` (schema: `smart-config/schema/sandbox.schema.json`). */
export interface SandboxFileConfig {
  readonly fhir: {
    /** Page size of a search without `_count`. */
    readonly defaultPageSize: number;
    /** Largest `_count` honoured; larger requests are capped (and the `self` link says so). */
    readonly maxPageSize: number;
    /** Largest accepted request body in bytes. */
    readonly maxRequestBytes: number;
  };
}

/** The JSON settings files in `smart-config/`, validated. Later features add files (and schemas) here. */
export interface SmartFileConfig {
  readonly sandbox: SandboxFileConfig;
  // --- SMART authorization (issue 7, server/auth/ and server/sandbox/smart/) ---
  /** `smart-clients.json`: clients of the sandbox authorization server (absent: the sandbox has no clients). */
  readonly smartClients?: SmartClientsFile;
  /** `token-verification.json`: how API access tokens are verified (absent: `{ "mode": "auto" }`). */
  readonly tokenVerification: TokenVerificationFileConfig;
}

/**
 * Settings from `smart-config/token-verification.json` (schema `smart-config/schema/token-verification.schema.json`):
 * how the service verifies the SMART access tokens sent to its APIs (issue 7).
 */
export interface TokenVerificationFileConfig {
  /** `auto`: the sandbox's JWKS, or the jwks_uri discovered from `{FHIR_BASE_URL}/.well-known/smart-configuration`. */
  readonly mode: 'auto' | 'jwks' | 'introspection';
  /** Expected `iss` (jwks mode; checked when reported in introspection mode). */
  readonly issuer?: string;
  /** JWK Set URL (jwks mode). */
  readonly jwksUri?: string;
  /** Accepted `aud` values (default: the FHIR base URL). */
  readonly audience?: readonly string[];
  /** RFC 7662 endpoint (introspection mode). */
  readonly introspectionUrl?: string;
  /** This service's client id at the introspection endpoint (secret: `TOKEN_INTROSPECTION_CLIENT_SECRET`). */
  readonly clientId?: string;
  /** Trusted foreign authorization servers, picked by the app's `X-FHIR-Server` header (server/auth/README.md). */
  readonly servers?: readonly TokenServerFileEntry[];
}

/**
 * One `servers` entry of `token-verification.json` as written (server/auth/servers.ts checks and resolves it).
 * Secrets are named by environment variable (`secretEnv`, `privateKeyEnv`), never written in the file.
 */
export interface TokenServerFileEntry {
  readonly id: string;
  /** The SMART launch `iss`; `{PUBLIC_BASE_URL}` is expanded. */
  readonly fhirBaseUrl: string;
  readonly mode: 'jwks' | 'introspection' | 'fhir-delegated' | 'hs256';
  /** Origins the browser also reaches for this server (authorize/token endpoints). */
  readonly connectSrc?: readonly string[];
  readonly jwksUri?: string;
  /** Pinned public keys (jwks mode), used before `jwksUri`. */
  readonly jwks?: { readonly keys: readonly Record<string, unknown>[] };
  readonly issuer?: string;
  readonly audience?: readonly string[];
  readonly introspectionUrl?: string;
  readonly clientAuth?: 'basic' | 'client_secret_post' | 'bearer' | 'bearer-token' | 'private_key_jwt';
  readonly clientId?: string;
  readonly secretEnv?: string;
  readonly privateKeyEnv?: string;
  /** fhir-delegated: seconds a success is reused (at most 60). */
  readonly cacheSeconds?: number;
}

/** How the service authenticates its own calls to an external FHIR server (`FHIR_AUTH`, issue 7). */
export type FhirClientAuth =
  | { readonly type: 'none' }
  | { readonly type: 'bearer'; readonly token: string }
  | { readonly type: 'client-credentials'; readonly tokenUrl: string; readonly clientId: string; readonly clientSecret: string; readonly scope?: string };

/** The validated configuration of the whole service. Built once by {@link loadConfig}; never mutated. */
export interface AppConfig {
  /** TCP port the HTTP server listens on (`PORT`). */
  readonly port: number;
  /** Interface the HTTP server binds to (`HOST`). */
  readonly host: string;
  /** Base URL users and other systems reach this service at, without a trailing slash (`PUBLIC_BASE_URL`). */
  readonly publicBaseUrl: string;
  /**
   * Service processes sharing the port (`SERVICE_PROCESSES`, `auto` = the cores available): 1 runs the service in
   * this process; more forks that many workers under a supervising primary (server/cluster.ts).
   */
  readonly processes: number;
  readonly fhir: {
    /** True when no external FHIR server is configured: the embedded sandbox serves `/sandbox/fhir`. */
    readonly sandbox: boolean;
    /** FHIR base URL the service itself calls (external server, or the sandbox over loopback). */
    readonly baseUrl: string;
    /** FHIR base URL as published to clients (external server, or the sandbox under `PUBLIC_BASE_URL`). */
    readonly publicBaseUrl: string;
    /** Time-out for calls to the FHIR server, in ms (`FHIR_TIMEOUT_MS`). */
    readonly timeoutMs: number;
    /**
     * Interop demo mode (`SANDBOX_FHIR_OPEN`): the sandbox FHIR server answers reads and searches without a token.
     * Only allowed with a loopback `HOST`; writes still need a token.
     */
    readonly sandboxOpen: boolean;
  };
  readonly dicomweb: {
    /** True when no external DICOMweb server is configured: the embedded sandbox serves `/sandbox/dicom-web`. */
    readonly sandbox: boolean;
    /** DICOMweb root the service itself calls (PACS, or the sandbox over loopback). */
    readonly baseUrl: string;
    /** DICOMweb root as published to clients, and written into sandbox `Endpoint.address`. */
    readonly publicBaseUrl: string;
    readonly auth: DicomWebAuth;
    /** Time-out per DICOMweb request, in ms (`DICOMWEB_TIMEOUT_MS`). */
    readonly timeoutMs: number;
    /** Retries after a failed idempotent DICOMweb request (`DICOMWEB_RETRIES`). */
    readonly retries: number;
    /** Largest accepted DICOMweb response body in bytes (`DICOMWEB_MAX_RESPONSE_BYTES`). */
    readonly maxResponseBytes: number;
  };
  readonly log: {
    /** pino level (`LOG_LEVEL`). */
    readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
    /** Secret mixed into patient-id hashes in logs (`LOG_HASH_SALT`); random per process when unset. */
    readonly hashSalt: string | undefined;
  };
  /** Folder holding the demo cohort (`fhir/*.json`, `dicom/**.dcm`) the sandboxes serve (`SANDBOX_DATA_DIR`). */
  readonly sandboxDataDir: string;
  /** Folder holding the JSON settings files and their schemas (`SMART_CONFIG_DIR`). */
  readonly smartConfigDir: string;
  /** The validated JSON settings files. */
  readonly files: SmartFileConfig;
  readonly inference: {
    /** Folder whose sub-folders with a `manifest.json` are the models to load (`MODELS_DIR`). */
    readonly modelsDir: string;
    /** Execution provider: `auto` tries CUDA then CPU, `cuda` requires it, `cpu` never tries it (`INFERENCE_DEVICE`). */
    readonly device: 'auto' | 'cuda' | 'cpu';
    /** onnxruntime intra-op threads (`INFERENCE_THREADS`). */
    readonly threads: number;
    /** Largest micro-batch (`INFERENCE_BATCH_MAX`). */
    readonly maxBatch: number;
    /** Longest wait for a micro-batch to fill, in ms (`INFERENCE_BATCH_WAIT_MS`). */
    readonly maxWaitMs: number;
    /** A site's local T-score recalibration file, absolute (`MODEL_TSCORE_CALIBRATION`; server/inference/calibration.ts). */
    readonly tscoreCalibration: string | undefined;
    /** The model a request without a model id gets (`MODEL_DEFAULT`); unset: the first id in sort order. */
    readonly defaultModel: string | undefined;
    /** The CT spine model folder, absolute (`MODEL_CT_DIR`; server/risk/ct-model.ts); `ctModelDirSet`: named explicitly. */
    readonly ctModelDir: string;
    readonly ctModelDirSet: boolean;
  };
  // --- imaging worker threads (server/imaging/worker-pool.ts) ---
  readonly imaging: {
    /** Worker threads that decode and preprocess radiographs; 0 = inline on the main thread (`IMAGING_WORKERS`). */
    readonly workers: number;
    /** CT frames fetched at once per study (`CT_FETCH_CONCURRENCY`; server/pathways/ct-spine/pathway.ts). */
    readonly ctFetchConcurrency: number;
  };
  readonly risk: {
    /** Only radiographs taken at most this many days before the assessment date are used (`RISK_LOOKBACK_DAYS`). */
    readonly lookbackDays: number;
    /** Tier thresholds on 10-year risks in percent (`RISK_TIER_*`). */
    readonly tiers: { readonly mofModerate: number; readonly mofHigh: number; readonly hipHigh: number };
    /** Oldest measured DXA T-score, in years, that replaces a T-score-mediated model's estimate (`RISK_DXA_MAX_AGE_YEARS`); unset: the manifest's. */
    readonly dxaMaxAgeYears: number | undefined;
    /** When an image-derived risk is "low confidence" (`RISK_MAX_LOG_HAZARD_SD`, `RISK_NEAR_OOD_FRACTION`; server/risk/assess.ts). */
    readonly lowConfidence: { readonly maxLogHazardSd: number; readonly nearOodFraction: number };
    /** Probability of being above a treatment threshold needed for tier high (`RISK_DECISION_PROBABILITY`). */
    readonly decisionProbability: number;
    /** The guideline the thresholds come from (`RISK_GUIDELINE_NAME`, `RISK_GUIDELINE_URL`). */
    readonly guideline: { readonly name: string; readonly url: string };
    /** Write the RiskAssessment and its resources back to the FHIR server (`RISK_WRITE_BACK`). */
    readonly writeBack: boolean;
    /** Assessments kept in the in-memory cache (`RISK_CACHE_SIZE`). */
    readonly cacheSize: number;
    /** Patient.identifier systems that carry the PACS Patient ID (`IMAGE_PATIENT_ID_SYSTEMS`); empty: see server/imaging/identity.ts. */
    readonly imagePatientIdSystems: readonly string[];
  };
  // --- SMART authorization (issue 7, server/auth/ and server/sandbox/smart/) ---
  readonly auth: {
    /** `/api/assessments` demands a SMART access token (`API_AUTH_REQUIRED`). */
    readonly apiRequireToken: boolean;
    /**
     * The service's credentials for an external FHIR server (`FHIR_AUTH` …). With the sandbox the service always
     * uses the sandbox's `frcds-service` client (smart-config/smart-clients.json) and this is `none`.
     */
    readonly fhirClient: FhirClientAuth;
    /** Client secret for token introspection (`TOKEN_INTROSPECTION_CLIENT_SECRET`). */
    readonly introspectionClientSecret: string | undefined;
    /** Operator credential of the operations endpoints (`OPS_TOKEN`, server/auth/operator.ts). */
    readonly opsToken: string | undefined;
    /** `token-verification.json` `servers`, resolved (URLs expanded, secrets read from the environment). */
    readonly tokenServers: readonly TokenServer[];
    /** `API_TOKEN_ALLOW_HS256=true`: `hs256` server entries are accepted (development launchers only). */
    readonly allowHs256: boolean;
  };
  // --- SMART app (issue 7, client/ and server/app-static.ts) ---
  readonly app: {
    /** CSP `frame-ancestors` sources allowed to embed the app in an iframe (`APP_FRAME_ANCESTORS`). */
    readonly frameAncestors: readonly string[];
    /** Origins the app may call besides the service and the FHIR server, e.g. a separate authorization server (`APP_CONNECT_SRC`). */
    readonly extraConnectSrc: readonly string[];
  };
  // --- CDS Hooks service (issue 6, server/cds/) ---
  readonly cds: {
    /** Time budget of one hook call, in ms (`CDS_DEADLINE_MS`). */
    readonly deadlineMs: number;
    /** SQLite file of the card log and feedback (`CDS_FEEDBACK_DB`), absolute. */
    readonly feedbackDb: string;
    /** Days the card log keeps cards, feedback and patient-view memory (`CDS_CARD_LOG_RETENTION_DAYS`). */
    readonly cardLogRetentionDays: number;
    /** Lowest tier at which order-select / order-sign show a card (`CDS_ORDER_MIN_TIER`). */
    readonly orderMinTier: 'low' | 'moderate' | 'high';
    /** Lowest tier at which patient-view shows a card without news (`CDS_PATIENT_VIEW_MIN_TIER`). */
    readonly patientViewMinTier: 'low' | 'moderate' | 'high';
    /** How long a client JWT's `jti` is remembered, and the oldest `iat` accepted, in s (`CDS_JTI_TTL_S`). */
    readonly jtiTtlS: number;
    /** Clock skew tolerated on `exp` / `iat`, in s (`CDS_CLOCK_SKEW_S`). */
    readonly clockSkewS: number;
    /** A site's folder of extra order-code ConceptMaps, absolute; validated at start-up (`ORDER_CODE_MAPS_DIR`). */
    readonly orderCodeMapsDir: string | undefined;
  };
  // --- FLS worklist and triage (issue 8, server/fls/) ---
  readonly fls: {
    /** Tiers that create an FLS triage Task (`FLS_TRIAGE_TIERS`). */
    readonly triageTiers: readonly ('low' | 'moderate' | 'high')[];
    /** SQLite file of the local audit log (AuditEvents the FHIR server did not take), absolute (`FLS_AUDIT_DB`). */
    readonly auditDb: string;
    /** Days before an assessment in which a fragility fracture flags imminent risk (`FLS_IMMINENT_DAYS`). */
    readonly imminentDays: number;
    /** FLS pathway due dates in days (`FLS_DUE_*`): contact and DXA after identification, treatment decision after the DXA, follow-ups after the decision. */
    readonly due: { readonly contact: number; readonly dxa: number; readonly treatmentDecision: number; readonly followUp16Weeks: number; readonly followUp12Months: number };
  };
  // --- Report events and durable jobs (issue 8, server/events/ and server/jobs/) ---
  readonly events: {
    /** How notifications authenticate (`EVENTS_AUTH`): a shared-secret header or a signed JWT. */
    readonly auth: 'secret' | 'jwt';
    /** Shared secret (`EVENTS_SECRET`); with the sandbox and no value, a random one per process. */
    readonly secret: string | undefined;
    /** Header carrying the shared secret (`EVENTS_SECRET_HEADER`). */
    readonly secretHeader: string;
    /** JWKS of the notification signer (`EVENTS_JWKS_URL`, jwt mode); unset with the sandbox: the sandbox's keys. */
    readonly jwksUrl: string | undefined;
    /** Expected `iss` of notification JWTs (`EVENTS_JWT_ISSUER`, jwt mode); with the sandbox, by default its auth issuer. */
    readonly jwtIssuer: string | undefined;
  };
  readonly jobs: {
    /** Redis URL: BullMQ queue instead of the in-process SQLite queue (`REDIS_URL`). */
    readonly redisUrl: string | undefined;
    /** SQLite file of the in-process queue, absolute (`JOBS_DB_PATH`). */
    readonly dbPath: string;
    /** Jobs run at once by one worker (`JOBS_CONCURRENCY`). */
    readonly concurrency: number;
    /** Attempts before a failing job is dead-lettered (`JOBS_MAX_ATTEMPTS`). */
    readonly maxAttempts: number;
    /** First retry delay, ms; doubles each attempt (`JOBS_BACKOFF_MS`). */
    readonly backoffMs: number;
    /** How long a running job is reserved for its worker, ms (`JOBS_LEASE_MS`). */
    readonly leaseMs: number;
    /** Run a worker inside the service process (`JOBS_IN_PROCESS_WORKER`). */
    readonly inProcessWorker: boolean;
  };
  // --- Shared state across replicas (server/state/) ---
  readonly state: {
    /** PostgreSQL URL (`DATABASE_URL`): assessment results, the CDS card log and the FLS audit fallback, shared by replicas. */
    readonly databaseUrl: string | undefined;
    /** Redis URL (`REDIS_URL`, the same as the job queue's): `jti` replay cache and single-flight shared by replicas. */
    readonly redisUrl: string | undefined;
    /** SQLite file of the embedded state (no shared backend for a store), absolute (`STATE_DB`). */
    readonly dbPath: string;
    /** How long an assessment result is kept, ms (`RESULTS_TTL_HOURS`). */
    readonly resultTtlMs: number;
  };
  // --- Production monitoring of the T-score estimate against DXA (server/monitoring/) ---
  readonly monitoring: {
    /** Seconds between polls for new DXA results; 0 = off (`MONITORING_POLL_S`). */
    readonly pollSeconds: number;
    /** Largest radiograph–DXA gap of a monitored pair, days (`MONITORING_PAIR_WINDOW_DAYS`). */
    readonly pairWindowDays: number;
    /** Pairs in the rolling window of a series (`MONITORING_WINDOW_PAIRS`). */
    readonly windowPairs: number;
    /** Fewest pairs before a drift alarm can be raised (`MONITORING_ALARM_MIN_PAIRS`). */
    readonly minPairs: number;
    /** Coverage of the 95 % interval below this raises the alarm (`MONITORING_ALARM_COVERAGE`). */
    readonly minCoverage: number;
    /** |bias| in T units above this raises the alarm (`MONITORING_ALARM_BIAS`). */
    readonly maxAbsBias: number;
  };
}

/** One environment variable: its schema (after string→type coercion), default and documentation. */
interface Setting {
  readonly env: string;
  readonly description: string;
  /** Human-readable default for the README table. */
  readonly defaultText: string;
  readonly schema: Record<string, unknown>;
  readonly secret?: boolean;
  /** What a valid value looks like, for the error message (derived from the schema when absent). */
  readonly hint?: string;
}

const URL_SCHEMA = { type: 'string', format: 'uri', pattern: '^https?://[^\\s]+$' } as const;

/** Every environment variable the service reads. Order = order in the README table. */
export const SETTINGS: readonly Setting[] = [
  { env: 'PORT', description: 'TCP port of the HTTP server.', defaultText: '`8080`', schema: { type: 'integer', minimum: 1, maximum: 65535 } },
  {
    env: 'HOST',
    description: 'Interface to bind. Loopback by default; use `0.0.0.0` to accept connections from other machines (e.g. in a container).',
    defaultText: '`127.0.0.1`',
    schema: { type: 'string', minLength: 1, pattern: '^[0-9A-Za-z.:\\-\\[\\]]+$' },
    hint: 'must be a host name or IP address',
  },
  {
    env: 'SERVICE_PROCESSES',
    description: 'Service processes sharing the port, so JWT verification, JSON and card building use more than one core: `1` runs everything in one process; `2`… or `auto` (the cores available) start a supervising process that forks that many workers, restarts a worker that dies, runs report-event jobs in one of them only, gives each its share of the cores for onnxruntime unless `INFERENCE_THREADS` is set, and on SIGTERM/SIGINT lets each drain. More than one needs external FHIR and DICOMweb servers (`FHIR_BASE_URL`, `DICOMWEB_BASE_URL`): the embedded sandboxes keep their data and signing keys inside one process.',
    defaultText: '`1`',
    schema: { type: 'string', pattern: '^(auto|[1-9][0-9]?)$' },
    hint: 'must be a number of processes from 1 to 99, or auto',
  },
  {
    env: 'PUBLIC_BASE_URL',
    description: 'URL users and other systems reach this service at (behind a proxy: the proxy\'s URL). Used in FHIR `fullUrl`s, paging links, `Location` headers and the seeded `Endpoint.address`.',
    defaultText: '`http://localhost:<PORT>`',
    schema: URL_SCHEMA,
  },
  {
    env: 'FHIR_BASE_URL',
    description: 'Base URL of an external FHIR R4 server. Unset: the embedded sandbox FHIR server runs at `/sandbox/fhir`, seeded with the demo cohort. Set: the sandbox FHIR server is off.',
    defaultText: 'unset (sandbox)',
    schema: URL_SCHEMA,
  },
  { env: 'FHIR_TIMEOUT_MS', description: 'Time-out for calls to the FHIR server (including the readiness probe of an external server), in ms.', defaultText: '`5000`', schema: { type: 'integer', minimum: 100, maximum: 120000 } },
  {
    env: 'DICOMWEB_BASE_URL',
    description: 'DICOMweb root of the PACS (e.g. `https://pacs.example.org/dicom-web`). Unset: the embedded sandbox DICOMweb server runs at `/sandbox/dicom-web` serving the demo DICOM files. Set: the sandbox DICOMweb server is off.',
    defaultText: 'unset (sandbox)',
    schema: URL_SCHEMA,
  },
  { env: 'DICOMWEB_AUTH', description: 'How to authenticate to the PACS: `none`, `basic` (needs `DICOMWEB_USERNAME` and `DICOMWEB_PASSWORD`) or `bearer` (needs `DICOMWEB_TOKEN`).', defaultText: '`none`', schema: { type: 'string', enum: ['none', 'basic', 'bearer'] } },
  { env: 'DICOMWEB_USERNAME', description: 'User name for `DICOMWEB_AUTH=basic`.', defaultText: 'unset', schema: { type: 'string', minLength: 1, pattern: '^[^:]+$' }, hint: 'must be non-empty and contain no colon' },
  { env: 'DICOMWEB_PASSWORD', description: 'Password for `DICOMWEB_AUTH=basic`. Never logged.', defaultText: 'unset', schema: { type: 'string', minLength: 1 }, secret: true },
  { env: 'DICOMWEB_TOKEN', description: 'Bearer token for `DICOMWEB_AUTH=bearer`. Never logged.', defaultText: 'unset', schema: { type: 'string', minLength: 1, pattern: '^[\\x21-\\x7e]+$' }, secret: true, hint: 'must be printable ASCII without spaces' },
  { env: 'DICOMWEB_TIMEOUT_MS', description: 'Time-out per DICOMweb request (QIDO-RS, WADO-RS metadata or frames), in ms.', defaultText: '`10000`', schema: { type: 'integer', minimum: 100, maximum: 300000 } },
  { env: 'DICOMWEB_RETRIES', description: 'Retries (with exponential back-off) after a failed or timed-out DICOMweb GET.', defaultText: '`2`', schema: { type: 'integer', minimum: 0, maximum: 10 } },
  { env: 'DICOMWEB_MAX_RESPONSE_BYTES', description: 'Largest DICOMweb response body accepted, in bytes; larger responses are aborted with a typed error.', defaultText: '`268435456` (256 MiB)', schema: { type: 'integer', minimum: 1024, maximum: 4294967296 } },
  { env: 'LOG_LEVEL', description: 'pino log level: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.', defaultText: '`info`', schema: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] } },
  {
    env: 'LOG_HASH_SALT',
    description: 'Secret mixed into the HMAC that replaces patient ids in logs. Set it (≥ 16 characters) to correlate log lines across restarts; unset, a random salt is drawn at each start. Never logged.',
    defaultText: 'random per process',
    schema: { type: 'string', minLength: 16 },
    secret: true,
    hint: 'must be at least 16 characters',
  },
  {
    env: 'SANDBOX_DATA_DIR',
    description: 'Folder with the demo cohort the sandboxes serve (`fhir/*.json` transaction bundles, `dicom/<study>/<series>/<sop>.dcm`). Relative paths are resolved against the repository root.',
    defaultText: '`server/sandbox/demo-cohort`',
    schema: { type: 'string', minLength: 1 },
  },
  {
    env: 'SMART_CONFIG_DIR',
    description: 'Folder with the JSON settings files (`<name>.json`) and their JSON Schemas (`schema/<name>.schema.json`). Relative paths are resolved against the repository root.',
    defaultText: '`smart-config`',
    schema: { type: 'string', minLength: 1 },
  },
  {
    env: 'MODELS_DIR',
    description: 'Folder whose sub-folders holding a `manifest.json` are the models loaded at start-up (each validated against `models/manifest.schema.json`, ONNX sha256 checked). Relative paths are resolved against the repository root.',
    defaultText: '`models`',
    schema: { type: 'string', minLength: 1 },
  },
  { env: 'INFERENCE_DEVICE', description: 'onnxruntime execution provider: `auto` tries CUDA and falls back to CPU with a logged reason, `cuda` fails the model if CUDA cannot start, `cpu` never tries CUDA. The provider in use shows in `/readyz` and in each assessment\'s provenance.', defaultText: '`auto`', schema: { type: 'string', enum: ['auto', 'cuda', 'cpu'] } },
  { env: 'INFERENCE_THREADS', description: 'onnxruntime intra-op threads per session (CPU).', defaultText: '`2`', schema: { type: 'integer', minimum: 1, maximum: 64 } },
  { env: 'INFERENCE_BATCH_MAX', description: 'Micro-batching: concurrent inference requests are run together, up to this many images per session run.', defaultText: '`8`', schema: { type: 'integer', minimum: 1, maximum: 256 } },
  { env: 'INFERENCE_BATCH_WAIT_MS', description: 'Micro-batching: longest wait, in ms, for a batch to fill after its first request (0 = run at once).', defaultText: '`2`', schema: { type: 'integer', minimum: 0, maximum: 1000 } },
  { env: 'MODEL_TSCORE_CALIBRATION', description: 'A site\'s local recalibration of the T-score head of a `tscore-mediated` model (hip-xray-v2): the JSON file `npm run site-check` writes from the site\'s own radiograph–DXA pairs. Its intercept, slope and sd scale replace the manifest\'s `tscore_head.calibration`; a file fitted for another model id or version stops start-up. Each assessment records the calibration version used. Relative paths are resolved against the repository root.', defaultText: 'unset (the manifest\'s calibration)', schema: { type: 'string', minLength: 1 } },
  { env: 'MODEL_DEFAULT', description: 'The model (its manifest `id`, e.g. `hip-xray-v2`) that assesses a request naming no model: the API, CDS hooks, jobs and the app. Unset: the first loaded id in sort order (`hip-xray-v1` before `hip-xray-v2`). A default that is not loaded makes every such request fail with a message naming it (see `/readyz`).', defaultText: 'unset (first id in sort order)', schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$' }, hint: 'must be a model id (lower-case letters, digits, hyphens)' },
  { env: 'MODEL_CT_DIR', description: 'The CT spine model folder (`manifest.json` in the `ct-spine` format: T-score from L1 attenuation, prevalent-fracture terms, T-score-mediated risk). With it, the newest eligible imaging study of a patient may be a chest/abdomen CT, read by the CT spine pathway. A default folder without a manifest leaves CT studies unassessed (logged at start-up); a folder named here that cannot be loaded stops start-up. Relative paths are resolved against the repository root.', defaultText: '`models/ct-spine-v1`', schema: { type: 'string', minLength: 1 } },
  { env: 'CT_FETCH_CONCURRENCY', description: 'CT frames fetched from the PACS at once for one study (each through the DICOMweb client with its time-outs and size caps). Higher is faster against a PACS that serves requests in parallel, and loads it more.', defaultText: '`6`', schema: { type: 'integer', minimum: 1, maximum: 32 } },
  { env: 'IMAGING_WORKERS', description: 'Worker threads that decode radiograph frames and run the preprocessing recipe, so CDS hooks and API calls are not queued behind image decoding on the main event loop. `0` does the work inline on the main thread.', defaultText: '`1`', schema: { type: 'integer', minimum: 0, maximum: 32 } },
  { env: 'RISK_LOOKBACK_DAYS', description: 'An assessment uses the latest eligible hip radiograph taken at most this many days before the assessment date; older studies give a clinical-only result.', defaultText: '`730`', schema: { type: 'integer', minimum: 1, maximum: 36500 } },
  { env: 'RISK_TIER_MOF_MODERATE', description: 'Risk tier: 10-year major osteoporotic fracture risk (%) from which the tier is "moderate" (Osteoporosis Canada 2010 10-year MOF bands: < 10 % low, 10–20 % moderate).', defaultText: '`10`', schema: { type: 'number', exclusiveMinimum: 0, maximum: 100 } },
  { env: 'RISK_TIER_MOF_HIGH', description: 'Treatment threshold on the 10-year MOF risk (%): at or above it the tier is "high" when the probability of being above it reaches `RISK_DECISION_PROBABILITY`, else "moderate" (≥ 20 %: Osteoporosis Canada 2010; Bone Health & Osteoporosis Foundation Clinician\'s Guide treatment threshold).', defaultText: '`20`', schema: { type: 'number', exclusiveMinimum: 0, maximum: 100 } },
  { env: 'RISK_TIER_HIP_HIGH', description: 'Treatment threshold on the 10-year hip fracture risk (%): at or above it the tier is "high" whatever the MOF risk when the probability of being above it reaches `RISK_DECISION_PROBABILITY`, else "moderate" (≥ 3 %: Bone Health & Osteoporosis Foundation Clinician\'s Guide treatment threshold).', defaultText: '`3`', schema: { type: 'number', exclusiveMinimum: 0, maximum: 100 } },
  { env: 'RISK_DECISION_PROBABILITY', description: 'Tier "high" needs a shown 10-year risk at or above a treatment threshold AND a probability of at least this much that the risk is above it (from the model\'s predictive distribution; a clinical-only risk has no interval and needs only the shown value). At or above a threshold with less certainty, or with a probability of at least 1 − this value, the tier is "moderate" (borderline).', defaultText: '`0.8`', schema: { type: 'number', exclusiveMinimum: 0.5, maximum: 1 }, hint: 'must be a number above 0.5 and at most 1' },
  { env: 'RISK_GUIDELINE_NAME', description: 'The guideline the treatment thresholds (`RISK_TIER_HIP_HIGH`, `RISK_TIER_MOF_HIGH`) come from, named in each decision. Change it together with the thresholds (e.g. for NOGG\'s age-dependent UK thresholds).', defaultText: '`Bone Health & Osteoporosis Foundation Clinician\'s Guide (2022)`', schema: { type: 'string', minLength: 1, maxLength: 200 } },
  { env: 'RISK_GUIDELINE_URL', description: 'Link to that guideline, shown with each decision.', defaultText: '`https://doi.org/10.1007/s00198-021-05900-y` (LeBoff et al., Osteoporos Int 2022;33:2049–2102)', schema: URL_SCHEMA },
  { env: 'RISK_DXA_MAX_AGE_YEARS', description: 'A T-score-mediated model (`hip-xray-v2`) replaces its radiograph T-score estimate by the patient\'s most recent final femoral-neck DXA T-score (LOINC DXA Femur T-score, ValueSet `dxa-result`) taken at most this many years before the assessment date; an older one is shown but not used. Unset: the model manifest\'s `tscore_head.dxa_max_age_years`.', defaultText: 'unset (the manifest\'s, 2 for hip-xray-v2)', schema: { type: 'number', exclusiveMinimum: 0, maximum: 20 } },
  { env: 'RISK_MAX_LOG_HAZARD_SD', description: 'An image-derived risk is "low confidence" when the ensemble members disagree more than usual: the sd of their log-hazards for an outcome above this value (replaces `RISK_MAX_INTERVAL_WIDTH`, which flagged nearly every high risk because the same spread gives a wider interval in percentage points the higher the risk). 0.9 lies above the spread of 32 of the 36 in-distribution demo radiographs (medians: hip 0.55, MOF 0.36; the model card gives no validation distribution of the spread). Log-hazard ensembles (hip-xray-v1) only: a T-score-mediated model (hip-xray-v2) follows its manifest\'s `uncertainty.low_confidence` rule.', defaultText: '`0.9`', schema: { type: 'number', exclusiveMinimum: 0, maximum: 10 } },
  { env: 'RISK_NEAR_OOD_FRACTION', description: 'An image-derived risk is also "low confidence" when the radiograph\'s OOD distance is above this fraction of the model\'s OOD threshold (close to the edge of the training distribution; above the threshold the risk is withheld).', defaultText: '`0.95`', schema: { type: 'number', exclusiveMinimum: 0, maximum: 1 } },
  { env: 'RISK_WRITE_BACK', description: 'When `true`, each new assessment\'s RiskAssessment, Device, Provenance, Binary and DocumentReference are written to the FHIR server.', defaultText: '`false`', schema: { type: 'string', enum: ['true', 'false'] } },
  { env: 'RISK_CACHE_SIZE', description: 'Assessments kept in memory by each process, keyed by study, model version and factor hash (least recently used evicted), in front of the result store (`STATE_DB`, or `DATABASE_URL`), which keeps them for `RESULTS_TTL_HOURS`.', defaultText: '`500`', schema: { type: 'integer', minimum: 1, maximum: 100000 } },
  { env: 'IMAGE_PATIENT_ID_SYSTEMS', description: 'Before any pixel is used, the image\'s DICOM Patient ID (0010,0020) must be an identifier of the FHIR Patient being assessed, or the image is refused ("belongs to another patient"), an AuditEvent is written and the risk is clinical-only. Unset: the identifier whose system equals the DICOM Issuer of Patient ID (0010,0021), or any identifier when the header names no issuer. Set (space-separated systems, e.g. `urn:oid:1.2.3.4.5`) when the PACS Patient ID is not the EHR\'s MRN: the Patient then needs an identifier of one of these systems carrying the PACS id.', defaultText: 'unset', schema: { type: 'string', minLength: 1, pattern: '^\\S+( \\S+)*$' }, hint: 'must be space-separated identifier systems' },
  // --- SMART authorization (issue 7, server/auth/, server/sandbox/smart/) ---
  { env: 'API_AUTH_REQUIRED', description: '`/api/assessments` demands a SMART access token (verified as `smart-config/token-verification.json` says) holding a scope that reads RiskAssessment (`patient/`, `user/` or `system/RiskAssessment.r`, or a wider one); a token with a `patient` claim may only assess that patient. `false` turns the check off for local command-line and benchmark use; never in production.', defaultText: '`true`', schema: { type: 'string', enum: ['true', 'false'] } },
  { env: 'OPS_TOKEN', description: 'Operator credential of the operations endpoints (`/api/jobs/*`, `/api/events/subscriptions`, `/api/feedback/summary`): they answer only requests with `Authorization: Bearer <OPS_TOKEN>` (compared in constant time). With the sandbox FHIR server they also take a system-level access token of the sandbox authorization server (client_credentials of e.g. `demo-backend`). Unset with an external FHIR server: these endpoints refuse every request (401). `/healthz`, `/readyz` and `/metrics` stay open: keep `/metrics` off the public network at the proxy. Never logged.', defaultText: 'unset', schema: { type: 'string', minLength: 32, pattern: '^[\\x21-\\x7e]+$' }, secret: true, hint: 'must be at least 32 printable ASCII characters without spaces (e.g. `openssl rand -hex 32`)' },
  { env: 'FHIR_AUTH', description: 'How the service authenticates to an external FHIR server (`FHIR_BASE_URL`): `none`, `bearer` (a fixed token, `FHIR_TOKEN`) or `client-credentials` (OAuth 2.0 client_credentials with a client secret: `FHIR_TOKEN_URL`, `FHIR_CLIENT_ID`, `FHIR_CLIENT_SECRET`, optional `FHIR_SCOPE`; the token is renewed before it expires). With the sandbox FHIR server the service always uses the sandbox\'s `frcds-service` client.', defaultText: '`none`', schema: { type: 'string', enum: ['none', 'bearer', 'client-credentials'] } },
  { env: 'FHIR_TOKEN', description: 'Bearer token for `FHIR_AUTH=bearer`. Never logged.', defaultText: 'unset', schema: { type: 'string', minLength: 1, pattern: '^[\\x21-\\x7e]+$' }, secret: true, hint: 'must be printable ASCII without spaces' },
  { env: 'FHIR_TOKEN_URL', description: 'Token endpoint of the FHIR server\'s authorization server, for `FHIR_AUTH=client-credentials`.', defaultText: 'unset', schema: URL_SCHEMA },
  { env: 'FHIR_CLIENT_ID', description: 'The service\'s client id at `FHIR_TOKEN_URL` (`FHIR_AUTH=client-credentials`).', defaultText: 'unset', schema: { type: 'string', minLength: 1, pattern: '^[\\x21-\\x7e]+$' }, hint: 'must be printable ASCII without spaces' },
  { env: 'FHIR_CLIENT_SECRET', description: 'The service\'s client secret (`FHIR_AUTH=client-credentials`; sent with HTTP Basic). Never logged.', defaultText: 'unset', schema: { type: 'string', minLength: 1 }, secret: true },
  { env: 'FHIR_SCOPE', description: 'Scopes asked for with `FHIR_AUTH=client-credentials`, space-separated (e.g. `system/*.rs system/RiskAssessment.cu`); unset: the authorization server\'s default for the client.', defaultText: 'unset', schema: { type: 'string', minLength: 1, pattern: '^[\\x21-\\x7e]+( [\\x21-\\x7e]+)*$' }, hint: 'must be space-separated scopes' },
  { env: 'TOKEN_INTROSPECTION_CLIENT_SECRET', description: 'Client secret the service presents to the RFC 7662 introspection endpoint when `smart-config/token-verification.json` has `"mode": "introspection"`. Never logged.', defaultText: 'unset', schema: { type: 'string', minLength: 1 }, secret: true },
  { env: 'API_TOKEN_ALLOW_HS256', description: 'Accept `"mode": "hs256"` entries in `smart-config/token-verification.json` `servers`: access tokens signed with a shared secret, as development launchers issue. Whoever holds the secret can mint a token for any patient, so this is for development only; start-up refuses such an entry without it, and `/readyz` lists a warning while one is in force. See server/auth/README.md.', defaultText: '`false`', schema: { type: 'string', enum: ['true', 'false'] } },
  {
    env: 'SANDBOX_FHIR_OPEN',
    description: 'Interoperability demo mode: `true` lets anyone who can reach the service read and search the sandbox FHIR server (`/sandbox/fhir`, GET/HEAD and `POST _search`) without an access token, e.g. for a SMART launcher or a FHIR client that cannot get one; a request that carries a token is still checked against its scopes, and writes always need one. Refused unless `HOST` is a loopback address (`127.0.0.0/8`, `::1`, `localhost`); logged as a warning at start-up and listed under `warnings` by `/readyz`. Synthetic demo data only; never in production.',
    defaultText: '`false`',
    schema: { type: 'string', enum: ['true', 'false'] },
  },
  // --- SMART app (issue 7) ---
  {
    env: 'APP_FRAME_ANCESTORS',
    description: 'Who may show the SMART app (`/app/`) in an iframe: space-separated CSP `frame-ancestors` sources, e.g. `\'self\' https://ehr.example.org`. `\'none\'` forbids framing.',
    defaultText: "`'self'`",
    schema: { type: 'string', minLength: 1, pattern: "^(?:'self'|'none'|https?://[^\\s';,]+)(?: +(?:'self'|'none'|https?://[^\\s';,]+))*$" },
    hint: "must be space-separated CSP sources ('self', 'none' or http(s) origins)",
  },
  {
    env: 'APP_CONNECT_SRC',
    description: 'Extra origins the SMART app may call (CSP `connect-src`), space-separated, e.g. an authorization server that is not on the FHIR server\'s origin. The service itself and the FHIR server are always allowed.',
    defaultText: 'none',
    schema: { type: 'string', minLength: 1, pattern: '^https?://[^\\s;,]+(?: +https?://[^\\s;,]+)*$' },
    hint: 'must be space-separated http(s) origins',
  },
  // --- CDS Hooks service (issue 6, server/cds/) ---
  { env: 'CDS_DEADLINE_MS', description: 'Time budget of one CDS Hooks call, in ms: a cached assessment is served at once; otherwise, if the image cannot be assessed in time, the clinical-only estimate is answered ("image analysis in progress") and the assessment finishes in the background for the next call.', defaultText: '`400`', schema: { type: 'integer', minimum: 50, maximum: 10000 } },
  { env: 'CDS_FEEDBACK_DB', description: 'SQLite file holding the CDS card log and card feedback (ids only, no other PHI), unless `DATABASE_URL` is set (then PostgreSQL holds them for every replica). Relative paths are resolved against the repository root.', defaultText: '`data/cds-feedback.sqlite`', schema: { type: 'string', minLength: 1 } },
  { env: 'CDS_CARD_LOG_RETENTION_DAYS', description: 'Days the CDS card log (SQLite or PostgreSQL) keeps cards shown, card feedback, what patient-view last said and order-select cards; older rows are deleted by a sweep every 6 hours on each replica, and the feedback summary covers this period.', defaultText: '`400`', schema: { type: 'integer', minimum: 1, maximum: 36500 } },
  { env: 'CDS_ORDER_MIN_TIER', description: 'order-select / order-sign show a card for an imaging order only when the risk tier is at least this: `low`, `moderate` or `high`.', defaultText: '`moderate`', schema: { type: 'string', enum: ['low', 'moderate', 'high'] } },
  { env: 'CDS_PATIENT_VIEW_MIN_TIER', description: 'patient-view shows a card when the risk tier is at least this (`low`, `moderate` or `high`), or when the assessment has news since the service last spoke for that patient (tier changed, image result arrived).', defaultText: '`high`', schema: { type: 'string', enum: ['low', 'moderate', 'high'] } },
  { env: 'CDS_JTI_TTL_S', description: 'CDS client JWTs: seconds a `jti` is remembered against replay; tokens issued (`iat`) longer ago than this are refused.', defaultText: '`3600`', schema: { type: 'integer', minimum: 60, maximum: 86400 } },
  { env: 'CDS_CLOCK_SKEW_S', description: 'CDS client JWTs: clock skew tolerated on `exp` and `iat`, in seconds.', defaultText: '`60`', schema: { type: 'integer', minimum: 0, maximum: 600 } },
  {
    env: 'ORDER_CODE_MAPS_DIR',
    description: 'Folder of extra FHIR R4 ConceptMaps mapping the site\'s own order codes (e.g. local procedure codes) to the order categories of `fhir-profiles/codesystems/frcds-imaging-order-category.json`, loaded next to the shipped CPT, LOINC and SNOMED CT maps (`fhir-profiles/conceptmaps/`). Every `*.json` in it must be such a ConceptMap; a bad file, or a code mapped to a different category than another map does, stops start-up with a message naming the file. See `fhir-profiles/README.md`. Relative paths are resolved against the repository root.',
    defaultText: 'unset (shipped maps only)',
    schema: { type: 'string', minLength: 1 },
  },
  // --- FLS worklist and triage (issue 8, server/fls/) ---
  { env: 'FLS_TRIAGE_TIERS', description: 'Risk tiers for which a background assessment creates an FLS triage Task (comma-separated `low`, `moderate`, `high`), when the patient has no open FLS referral, no open triage Task and no current osteoporosis treatment.', defaultText: '`high`', schema: { type: 'string', pattern: '^(low|moderate|high)(,(low|moderate|high))*$' }, hint: 'must be a comma-separated list of low, moderate, high' },
  { env: 'FLS_AUDIT_DB', description: 'SQLite file of the local FLS audit log: an AuditEvent the FHIR server does not accept is kept here (and forwarded later) so no worklist action goes unaudited; with `DATABASE_URL` PostgreSQL keeps them instead, for every replica to forward. Holds patient references; protect it like the audit trail. Relative paths are resolved against the repository root.', defaultText: '`data/fls-audit.sqlite`', schema: { type: 'string', minLength: 1 } },
  { env: 'FLS_IMMINENT_DAYS', description: 'FLS worklist "imminent risk" flag: a fragility (major osteoporotic site) fracture recorded at most this many days before the assessment.', defaultText: '`730`', schema: { type: 'integer', minimum: 1, maximum: 3650 } },
  { env: 'FLS_DUE_CONTACT_DAYS', description: 'FLS pathway: days after identification (triage Task created) by which the patient should be contacted; later is shown overdue (IOF Capture the Fracture / UK FLS-DB: contact within 2 weeks).', defaultText: '`14`', schema: { type: 'integer', minimum: 1, maximum: 365 } },
  { env: 'FLS_DUE_DXA_DAYS', description: 'FLS pathway: days after identification by which a DXA result should exist (UK FLS-DB KPI: DXA within 12 weeks); also the "assessed within 12 weeks" KPI.', defaultText: '`84`', schema: { type: 'integer', minimum: 1, maximum: 730 } },
  { env: 'FLS_DUE_TREATMENT_DAYS', description: 'FLS pathway: days after the DXA result by which the treatment decision is due.', defaultText: '`14`', schema: { type: 'integer', minimum: 1, maximum: 365 } },
  { env: 'FLS_DUE_FOLLOWUP_16W_DAYS', description: 'FLS pathway: days after the treatment decision at which the first adherence follow-up is due (UK FLS-DB: 16 weeks).', defaultText: '`112`', schema: { type: 'integer', minimum: 1, maximum: 730 } },
  { env: 'FLS_DUE_FOLLOWUP_12M_DAYS', description: 'FLS pathway: days after the treatment decision at which the 12-month adherence follow-up is due (UK FLS-DB: 12 months).', defaultText: '`365`', schema: { type: 'integer', minimum: 1, maximum: 1095 } },
  // --- Report events and durable jobs (issue 8, server/events/, server/jobs/) ---
  { env: 'EVENTS_AUTH', description: 'How FHIR subscription notifications to `/api/events/notifications` authenticate: `secret` (a shared secret in the `EVENTS_SECRET_HEADER` header, which the Subscription\'s `channel.header` makes the FHIR server send, so the secret is stored in the Subscription) or `jwt` (every notification carries `Authorization: Bearer` with a JWT the FHIR server signs with an asymmetric key from `EVENTS_JWKS_URL`: `iss` = `EVENTS_JWT_ISSUER`, `aud` = `{PUBLIC_BASE_URL}/api/events/notifications`, valid at most 5 min, `jti` used once; no secret in any Subscription). With the sandbox FHIR server, jwt mode uses the sandbox authorization server\'s keys and issuer. See server/events/README.md.', defaultText: '`secret`', schema: { type: 'string', enum: ['secret', 'jwt'] } },
  { env: 'EVENTS_SECRET', description: 'Shared secret of subscription notifications (`EVENTS_AUTH=secret`). Unset with the sandbox FHIR server: a random secret per process (the sandbox\'s own Subscription carries it). Unset with an external FHIR server: every notification is refused (401). Never logged.', defaultText: 'random per process (sandbox)', schema: { type: 'string', minLength: 16, pattern: '^[\\x21-\\x7e]+$' }, secret: true, hint: 'must be at least 16 printable ASCII characters without spaces' },
  { env: 'EVENTS_SECRET_HEADER', description: 'HTTP header carrying the shared secret of subscription notifications.', defaultText: '`X-Subscription-Secret`', schema: { type: 'string', pattern: '^[A-Za-z0-9-]{1,64}$' }, hint: 'must be an HTTP header name' },
  { env: 'EVENTS_JWKS_URL', description: 'JWK Set (URL) of the FHIR server\'s notification signing keys (`EVENTS_AUTH=jwt`); required with an external FHIR server. Cached; re-fetched when a token names an unknown `kid`.', defaultText: 'the sandbox authorization server\'s keys (sandbox)', schema: URL_SCHEMA },
  { env: 'EVENTS_JWT_ISSUER', description: 'Expected `iss` of notification JWTs (`EVENTS_AUTH=jwt`): the FHIR server\'s issuer; required with an external FHIR server.', defaultText: '`{PUBLIC_BASE_URL}/sandbox/auth` (sandbox)', schema: { type: 'string', minLength: 1 } },
  { env: 'REDIS_URL', description: 'Redis for the job queue (`redis://host:port[/db]`): report-event jobs then go through BullMQ, and any number of `npm run worker` processes on any machine run them. Unset: an in-process queue persisted in SQLite (`JOBS_DB_PATH`). Also holds the state replicas share (the CDS and notification `jti` replay caches, single-flight; assessment results too without `DATABASE_URL`, see server/state/README.md).', defaultText: 'unset (SQLite)', schema: { type: 'string', pattern: '^rediss?://[^\\s]+$' }, hint: 'must be a redis:// or rediss:// URL' },
  { env: 'JOBS_DB_PATH', description: 'SQLite file of the in-process job queue (jobs, completed keys, dead letters, backfill checkpoints); survives restarts. One service process per file. Relative paths are resolved against the repository root.', defaultText: '`data/jobs.sqlite`', schema: { type: 'string', minLength: 1 } },
  { env: 'JOBS_CONCURRENCY', description: 'Report-event jobs one worker (the service, or each `npm run worker`) runs at once.', defaultText: '`2`', schema: { type: 'integer', minimum: 1, maximum: 64 } },
  { env: 'JOBS_MAX_ATTEMPTS', description: 'Attempts of a failing job (FHIR or PACS unavailable, …) before it is dead-lettered with the last error.', defaultText: '`6`', schema: { type: 'integer', minimum: 1, maximum: 50 } },
  { env: 'JOBS_BACKOFF_MS', description: 'First retry delay of a failed job, in ms; doubles with each attempt (with ±20 % jitter in the SQLite queue), capped at 10 minutes.', defaultText: '`1000`', schema: { type: 'integer', minimum: 10, maximum: 600000 } },
  { env: 'JOBS_LEASE_MS', description: 'How long a running job is reserved for its worker, in ms; a job whose worker died is run again after this (BullMQ lock duration).', defaultText: '`30000`', schema: { type: 'integer', minimum: 1000, maximum: 3600000 } },
  { env: 'JOBS_IN_PROCESS_WORKER', description: 'Run report-event jobs inside the service process. `false` with `REDIS_URL`: the service only receives and queues; `npm run worker` processes run the jobs.', defaultText: '`true`', schema: { type: 'string', enum: ['true', 'false'] } },
  // --- Shared state across replicas (server/state/) ---
  { env: 'DATABASE_URL', description: 'PostgreSQL (`postgres://user:password@host:port/db`) for state that replicas share: assessment results (an assessment id stays valid after a restart and on every replica), the CDS card log and feedback, FLS audit events the FHIR server refused, and without `REDIS_URL` also the CDS `jti` replay cache and single-flight. Schema migrations run at start. While it is unreachable, `/readyz` is false and calls that need it fail; nothing falls back to per-process state. See server/state/README.md. Never logged.', defaultText: 'unset (embedded SQLite, `STATE_DB`)', schema: { type: 'string', pattern: '^postgres(ql)?://[^\\s]+$' }, secret: true, hint: 'must be a postgres:// or postgresql:// URL' },
  { env: 'STATE_DB', description: 'SQLite file of the embedded shared state (replay cache, assessment results, single-flight) used for every store that neither `REDIS_URL` nor `DATABASE_URL` holds; processes of one host may share it. Relative paths are resolved against the repository root.', defaultText: '`data/state.sqlite`', schema: { type: 'string', minLength: 1 } },
  { env: 'RESULTS_TTL_HOURS', description: 'How long a computed assessment stays retrievable by id and reusable by cache key in the shared result store, in hours.', defaultText: '`720` (30 days)', schema: { type: 'integer', minimum: 1, maximum: 87600 } },
  // --- Production monitoring of the T-score estimate (server/monitoring/) ---
  { env: 'MONITORING_POLL_S', description: 'Production monitoring of a T-score-mediated model: every this many seconds the service searches the FHIR server for new DXA femoral-neck T-score Observations (the sandbox sends Subscription notifications for imaging reports only, so this is a periodic search), pairs each with the patient\'s latest image-based RiskAssessment (its `tscore-estimate` extension) and updates the per-site agreement figures (`/metrics`, `/api/monitoring/tscore`, the app\'s "Model monitoring" view). `0` turns it off. See server/monitoring/.', defaultText: '`300`', schema: { type: 'integer', minimum: 0, maximum: 86400 } },
  { env: 'MONITORING_PAIR_WINDOW_DAYS', description: 'Monitoring: a DXA result is paired with an image-based estimate only when the radiograph was taken at most this many days before or after the scan (bone density changes slowly, but not over many years). The first poll also looks back this far.', defaultText: '`730`', schema: { type: 'integer', minimum: 1, maximum: 3650 } },
  { env: 'MONITORING_WINDOW_PAIRS', description: 'Monitoring: the figures of a series (site × model version × calibration version) are computed over its latest this many pairs by DXA date.', defaultText: '`200`', schema: { type: 'integer', minimum: 10, maximum: 100000 } },
  { env: 'MONITORING_ALARM_MIN_PAIRS', description: 'Monitoring: a drift alarm is raised only from this many pairs in the window on.', defaultText: '`30`', schema: { type: 'integer', minimum: 1, maximum: 100000 } },
  { env: 'MONITORING_ALARM_COVERAGE', description: 'Monitoring: drift alarm when the share of measured DXA T-scores inside the estimate\'s 95 % interval falls below this (a calibrated interval covers about 0.95). The alarm is logged once, shown in the "Model monitoring" view, on `/metrics` (`frcds_tscore_monitor_alarm`) and in `/readyz` (component `tscore-monitoring`, detail starting with WARNING).', defaultText: '`0.9`', schema: { type: 'number', exclusiveMinimum: 0, maximum: 1 } },
  { env: 'MONITORING_ALARM_BIAS', description: 'Monitoring: drift alarm when the mean difference between estimate and measured DXA T-score exceeds this in either direction (T units).', defaultText: '`0.5`', schema: { type: 'number', exclusiveMinimum: 0, maximum: 5 } },
];

const SECRET_ENVS = new Set(SETTINGS.filter((s) => s.secret).map((s) => s.env));

// ajv-formats is CommonJS with `exports.default`; NodeNext typing of its default import is the module object, so
// load it through require to get the plugin function with its real type.
const addFormats = (createRequire(import.meta.url)('ajv-formats') as { default: (ajv: Ajv) => Ajv }).default;

function newAjv(coerce: boolean): Ajv {
  const ajv = new Ajv({ allErrors: true, coerceTypes: coerce, strict: true, useDefaults: false });
  addFormats(ajv);
  return ajv;
}

function describeErrors(errors: readonly ErrorObject[] | null | undefined): string {
  if (!errors || errors.length === 0) return 'is invalid';
  const e = errors[0]!;
  if (e.keyword === 'enum') return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  if (e.keyword === 'pattern' || e.keyword === 'format') return e.params && 'format' in e.params ? `must be a valid ${String(e.params.format)}` : 'has an invalid format';
  return e.message ?? 'is invalid';
}

function hintFor(s: Setting): string | undefined {
  if (s.hint) return s.hint;
  if (s.schema === URL_SCHEMA) return 'must be an absolute http:// or https:// URL';
  if (s.schema['type'] === 'number') return `must be a number above ${String(s.schema['exclusiveMinimum'])} and at most ${String(s.schema['maximum'])}`;
  if (s.schema['type'] === 'integer') return `must be an integer from ${String(s.schema['minimum'])} to ${String(s.schema['maximum'])}`;
  return undefined;
}

function stripTrailingSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

/** Reads and validates the environment variables; returns the coerced values by name. */
function readEnv(env: NodeJS.ProcessEnv, problems: string[], bad: string[]): Map<string, string | number> {
  const ajv = newAjv(true);
  const values = new Map<string, string | number>();
  for (const s of SETTINGS) {
    const raw = env[s.env];
    if (raw === undefined || raw === '') continue;
    const holder: { v: unknown } = { v: raw.trim() };
    const validate = ajv.compile({ type: 'object', properties: { v: s.schema }, required: ['v'] });
    if (!validate(holder)) {
      const shown = SECRET_ENVS.has(s.env) ? '' : `=${JSON.stringify(raw.length > 60 ? raw.slice(0, 57) + '...' : raw)}`;
      problems.push(`${s.env}${shown} ${hintFor(s) ?? describeErrors(validate.errors)}`);
      bad.push(s.env);
      continue;
    }
    values.set(s.env, holder.v as string | number);
  }
  return values;
}

/**
 * Loads every `smart-config/<name>.json`, validating each against `schema/<name>.schema.json`.
 * A JSON file without a schema is an error too: an unvalidated file would be a setting nobody checks.
 */
export function loadSmartConfigFiles(dir: string): SmartFileConfig {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ConfigError(`Configuration error: SMART_CONFIG_DIR=${JSON.stringify(dir)} is not a folder`, ['SMART_CONFIG_DIR']);
  }
  const ajv = newAjv(false);
  const problems: string[] = [];
  const bad: string[] = [];
  const loaded: Record<string, unknown> = {};
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  for (const file of files) {
    const name = file.slice(0, -'.json'.length);
    const setting = `smart-config/${file}`;
    const schemaPath = join(dir, 'schema', `${name}.schema.json`);
    let data: unknown;
    let schema: Record<string, unknown>;
    try {
      data = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    } catch (err) {
      problems.push(`${setting} is not valid JSON (${(err as Error).message})`);
      bad.push(setting);
      continue;
    }
    if (!existsSync(schemaPath)) {
      problems.push(`${setting} has no schema (expected smart-config/schema/${name}.schema.json)`);
      bad.push(setting);
      continue;
    }
    try {
      schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      problems.push(`smart-config/schema/${name}.schema.json is not valid JSON (${(err as Error).message})`);
      bad.push(setting);
      continue;
    }
    const validate: ValidateFunction = ajv.compile(schema);
    if (!validate(data)) {
      // An if/then failure is reported twice by ajv: the inner error names the field, the `if` one adds nothing.
      for (const e of (validate.errors ?? []).filter((x) => x.keyword !== 'if')) {
        const pointer = e.keyword === 'required' ? `${e.instancePath}/${String((e.params as { missingProperty: string }).missingProperty)}` : e.instancePath;
        const where = `${setting}#${pointer || '/'}`;
        const what = e.keyword === 'required' ? 'is required' : e.keyword === 'additionalProperties' ? `has unknown property ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}` : describeErrors([e]);
        problems.push(`${where} ${what}`);
        bad.push(where);
      }
      continue;
    }
    loaded[name] = data;
  }
  for (const required of ['sandbox']) {
    if (!(required in loaded) && !bad.some((b) => b.startsWith(`smart-config/${required}.json`))) {
      problems.push(`smart-config/${required}.json is missing`);
      bad.push(`smart-config/${required}.json`);
    }
  }
  if (problems.length > 0) {
    throw new ConfigError(`Configuration error: ${problems.join('; ')}`, bad);
  }
  const sandbox = loaded['sandbox'] as SandboxFileConfig;
  if (sandbox.fhir.defaultPageSize > sandbox.fhir.maxPageSize) {
    throw new ConfigError(
      'Configuration error: smart-config/sandbox.json#/fhir/defaultPageSize must not exceed #/fhir/maxPageSize',
      ['smart-config/sandbox.json#/fhir/defaultPageSize'],
    );
  }
  return {
    sandbox,
    // SMART authorization (issue 7)
    ...(loaded['smart-clients'] ? { smartClients: loaded['smart-clients'] as SmartClientsFile } : {}),
    tokenVerification: (loaded['token-verification'] as TokenVerificationFileConfig | undefined) ?? { mode: 'auto' },
  };
}

/**
 * Builds the {@link AppConfig} from the environment and `smart-config/`.
 * @throws ConfigError naming every wrong setting, in one message.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const problems: string[] = [];
  const bad: string[] = [];
  const v = readEnv(env, problems, bad);
  const str = (name: string): string | undefined => v.get(name) as string | undefined;
  const num = (name: string, dflt: number): number => (v.get(name) as number | undefined) ?? dflt;

  const auth = str('DICOMWEB_AUTH') ?? 'none';
  let dicomAuth: DicomWebAuth = { type: 'none' };
  if (auth === 'basic') {
    const username = str('DICOMWEB_USERNAME');
    const password = str('DICOMWEB_PASSWORD');
    if (!username && !bad.includes('DICOMWEB_USERNAME')) {
      problems.push('DICOMWEB_USERNAME is required when DICOMWEB_AUTH=basic');
      bad.push('DICOMWEB_USERNAME');
    }
    if (!password && !bad.includes('DICOMWEB_PASSWORD')) {
      problems.push('DICOMWEB_PASSWORD is required when DICOMWEB_AUTH=basic');
      bad.push('DICOMWEB_PASSWORD');
    }
    if (username && password) dicomAuth = { type: 'basic', username, password };
  } else if (auth === 'bearer') {
    const token = str('DICOMWEB_TOKEN');
    if (!token && !bad.includes('DICOMWEB_TOKEN')) {
      problems.push('DICOMWEB_TOKEN is required when DICOMWEB_AUTH=bearer');
      bad.push('DICOMWEB_TOKEN');
    }
    if (token) dicomAuth = { type: 'bearer', token };
  }
  if (auth !== 'none' && !str('DICOMWEB_BASE_URL') && !bad.includes('DICOMWEB_BASE_URL')) {
    problems.push(`DICOMWEB_AUTH=${auth} needs DICOMWEB_BASE_URL (the embedded sandbox takes no credentials)`);
    bad.push('DICOMWEB_AUTH');
  }

  const resolveDir = (name: string, dflt: string): string => {
    const p = str(name) ?? dflt;
    return isAbsolute(p) ? p : resolve(REPO_ROOT, p);
  };
  const sandboxDataDir = resolveDir('SANDBOX_DATA_DIR', 'server/sandbox/demo-cohort');
  const smartConfigDir = resolveDir('SMART_CONFIG_DIR', 'smart-config');

  let files: SmartFileConfig | undefined;
  try {
    files = loadSmartConfigFiles(smartConfigDir);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(err.message.replace(/^Configuration error: /, ''));
    bad.push(...err.settings);
  }

  // --- SMART authorization (issue 7): the service's FHIR credentials and token verification ---
  const fhirAuthType = str('FHIR_AUTH') ?? 'none';
  let fhirClientAuth: FhirClientAuth = { type: 'none' };
  const need = (name: string, why: string): string | undefined => {
    const value = str(name);
    if (!value && !bad.includes(name)) {
      problems.push(`${name} is required when ${why}`);
      bad.push(name);
    }
    return value;
  };
  if (fhirAuthType === 'bearer') {
    const token = need('FHIR_TOKEN', 'FHIR_AUTH=bearer');
    if (token) fhirClientAuth = { type: 'bearer', token };
  } else if (fhirAuthType === 'client-credentials') {
    const tokenUrl = need('FHIR_TOKEN_URL', 'FHIR_AUTH=client-credentials');
    const clientId = need('FHIR_CLIENT_ID', 'FHIR_AUTH=client-credentials');
    const clientSecret = need('FHIR_CLIENT_SECRET', 'FHIR_AUTH=client-credentials');
    const scope = str('FHIR_SCOPE');
    if (tokenUrl && clientId && clientSecret) fhirClientAuth = { type: 'client-credentials', tokenUrl, clientId, clientSecret, ...(scope ? { scope } : {}) };
  }
  if (fhirAuthType !== 'none' && !str('FHIR_BASE_URL') && !bad.includes('FHIR_BASE_URL')) {
    problems.push(`FHIR_AUTH=${fhirAuthType} needs FHIR_BASE_URL (with the embedded sandbox the service uses its sandbox client)`);
    bad.push('FHIR_AUTH');
  }
  if (files?.tokenVerification.mode === 'introspection') need('TOKEN_INTROSPECTION_CLIENT_SECRET', 'smart-config/token-verification.json has "mode": "introspection"');
  // Foreign authorization servers (server/auth/servers.ts): secrets named by the file must be set, hs256 needs its flag.
  const tokenServers = resolveTokenServers({
    entries: files?.tokenVerification.servers ?? [],
    env,
    publicBaseUrl: stripTrailingSlash(str('PUBLIC_BASE_URL') ?? `http://localhost:${num('PORT', 8080)}`),
    allowHs256: str('API_TOKEN_ALLOW_HS256') === 'true',
  });
  problems.push(...tokenServers.problems);
  bad.push(...tokenServers.bad);

  if (env['RISK_MAX_INTERVAL_WIDTH'] !== undefined && env['RISK_MAX_INTERVAL_WIDTH'] !== '') {
    problems.push('RISK_MAX_INTERVAL_WIDTH is no longer used: "low confidence" now follows the ensemble spread (RISK_MAX_LOG_HAZARD_SD) and the distance to the OOD threshold (RISK_NEAR_OOD_FRACTION); remove it');
    bad.push('RISK_MAX_INTERVAL_WIDTH');
  }
  if ((num('RISK_TIER_MOF_MODERATE', 10)) >= num('RISK_TIER_MOF_HIGH', 20) && !bad.includes('RISK_TIER_MOF_MODERATE')) {
    problems.push('RISK_TIER_MOF_MODERATE must be below RISK_TIER_MOF_HIGH');
    bad.push('RISK_TIER_MOF_MODERATE');
  }

  // Report events: jwt mode with an external FHIR server needs its key set and issuer (the sandbox has its own).
  if (str('EVENTS_AUTH') === 'jwt' && str('FHIR_BASE_URL') !== undefined) {
    for (const need of ['EVENTS_JWKS_URL', 'EVENTS_JWT_ISSUER']) {
      if (!str(need) && !bad.includes(need)) {
        problems.push(`${need} is required when EVENTS_AUTH=jwt with an external FHIR server (FHIR_BASE_URL)`);
        bad.push(need);
      }
    }
  }

  // Interop mode opens patient data (synthetic, but still) to anyone who can connect: loopback only.
  if (str('SANDBOX_FHIR_OPEN') === 'true' && !bad.includes('HOST') && !isLoopbackHost(str('HOST') ?? '127.0.0.1')) {
    problems.push(`SANDBOX_FHIR_OPEN=true needs a loopback HOST (127.0.0.1, ::1 or localhost), not HOST=${JSON.stringify(str('HOST'))}: an open FHIR server must not be reachable from other machines`);
    bad.push('SANDBOX_FHIR_OPEN');
  }

  // Several processes each with their own embedded sandbox would hand out tokens and write data the others do not see.
  const processesSetting = bad.includes('SERVICE_PROCESSES') ? undefined : str('SERVICE_PROCESSES');
  const processes = processesSetting === 'auto' ? availableParallelism() : Number(processesSetting ?? 1);
  if (processes > 1 && (str('FHIR_BASE_URL') === undefined || str('DICOMWEB_BASE_URL') === undefined)) {
    problems.push(`SERVICE_PROCESSES=${str('SERVICE_PROCESSES') ?? ''} (${processes} processes) needs FHIR_BASE_URL and DICOMWEB_BASE_URL: the embedded sandboxes keep their data and signing keys inside one process`);
    bad.push('SERVICE_PROCESSES');
  }

  // CDS order-code ConceptMaps (server/fhir/conceptmaps.ts): shipped and site maps are checked now, so a bad file
  // stops start-up here with one message instead of leaving the hooks without codes.
  const orderCodeMapsDir = str('ORDER_CODE_MAPS_DIR') === undefined ? undefined : resolveDir('ORDER_CODE_MAPS_DIR', '');
  try {
    loadOrderCodeMaps(orderCodeMapsDir === undefined ? {} : { extraDir: orderCodeMapsDir });
  } catch (err) {
    if (!(err instanceof OrderCodeMapError)) throw err;
    problems.push(`${err.site ? 'ORDER_CODE_MAPS_DIR' : 'shipped order-code ConceptMap'} ${err.message}`);
    bad.push(err.site ? 'ORDER_CODE_MAPS_DIR' : err.file);
  }

  if (problems.length > 0 || !files) {
    throw new ConfigError(`Configuration error: ${problems.join('; ')}`, bad);
  }

  const port = num('PORT', 8080);
  const host = str('HOST') ?? '127.0.0.1';
  const publicBaseUrl = stripTrailingSlash(str('PUBLIC_BASE_URL') ?? `http://localhost:${port}`);
  // The service calls its own sandboxes over loopback: PUBLIC_BASE_URL may be a proxy the process cannot reach.
  const loopHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const selfUrl = `http://${loopHost}:${port}`;
  const fhirExternal = str('FHIR_BASE_URL');
  const dicomExternal = str('DICOMWEB_BASE_URL');

  return {
    port,
    processes,
    host,
    publicBaseUrl,
    fhir: {
      sandbox: fhirExternal === undefined,
      baseUrl: fhirExternal ? stripTrailingSlash(fhirExternal) : `${selfUrl}/sandbox/fhir`,
      publicBaseUrl: fhirExternal ? stripTrailingSlash(fhirExternal) : `${publicBaseUrl}/sandbox/fhir`,
      timeoutMs: num('FHIR_TIMEOUT_MS', 5000),
      sandboxOpen: fhirExternal === undefined && str('SANDBOX_FHIR_OPEN') === 'true',
    },
    dicomweb: {
      sandbox: dicomExternal === undefined,
      baseUrl: dicomExternal ? stripTrailingSlash(dicomExternal) : `${selfUrl}/sandbox/dicom-web`,
      publicBaseUrl: dicomExternal ? stripTrailingSlash(dicomExternal) : `${publicBaseUrl}/sandbox/dicom-web`,
      auth: dicomAuth,
      timeoutMs: num('DICOMWEB_TIMEOUT_MS', 10000),
      retries: num('DICOMWEB_RETRIES', 2),
      maxResponseBytes: num('DICOMWEB_MAX_RESPONSE_BYTES', 268435456),
    },
    log: {
      level: (str('LOG_LEVEL') ?? 'info') as AppConfig['log']['level'],
      hashSalt: str('LOG_HASH_SALT'),
    },
    sandboxDataDir,
    smartConfigDir,
    files,
    inference: {
      modelsDir: resolveDir('MODELS_DIR', 'models'),
      device: (str('INFERENCE_DEVICE') ?? 'auto') as AppConfig['inference']['device'],
      threads: num('INFERENCE_THREADS', 2),
      maxBatch: num('INFERENCE_BATCH_MAX', 8),
      maxWaitMs: num('INFERENCE_BATCH_WAIT_MS', 2),
      tscoreCalibration: str('MODEL_TSCORE_CALIBRATION') === undefined ? undefined : resolveDir('MODEL_TSCORE_CALIBRATION', ''),
      defaultModel: str('MODEL_DEFAULT'),
      ctModelDir: resolveDir('MODEL_CT_DIR', 'models/ct-spine-v1'),
      ctModelDirSet: str('MODEL_CT_DIR') !== undefined,
    },
    imaging: { workers: num('IMAGING_WORKERS', 1), ctFetchConcurrency: num('CT_FETCH_CONCURRENCY', 6) }, // server/imaging/worker-pool.ts
    risk: {
      lookbackDays: num('RISK_LOOKBACK_DAYS', 730),
      tiers: { mofModerate: num('RISK_TIER_MOF_MODERATE', 10), mofHigh: num('RISK_TIER_MOF_HIGH', 20), hipHigh: num('RISK_TIER_HIP_HIGH', 3) },
      dxaMaxAgeYears: str('RISK_DXA_MAX_AGE_YEARS') === undefined ? undefined : num('RISK_DXA_MAX_AGE_YEARS', 2),
      lowConfidence: { maxLogHazardSd: num('RISK_MAX_LOG_HAZARD_SD', 0.9), nearOodFraction: num('RISK_NEAR_OOD_FRACTION', 0.95) },
      decisionProbability: num('RISK_DECISION_PROBABILITY', 0.8),
      guideline: { name: str('RISK_GUIDELINE_NAME') ?? DECISION_DEFAULTS.guideline.name, url: str('RISK_GUIDELINE_URL') ?? DECISION_DEFAULTS.guideline.url },
      writeBack: str('RISK_WRITE_BACK') === 'true',
      cacheSize: num('RISK_CACHE_SIZE', 500),
      imagePatientIdSystems: str('IMAGE_PATIENT_ID_SYSTEMS')?.split(/ +/) ?? [],
    },
    // SMART authorization (issue 7)
    auth: {
      apiRequireToken: str('API_AUTH_REQUIRED') !== 'false',
      fhirClient: fhirClientAuth,
      introspectionClientSecret: str('TOKEN_INTROSPECTION_CLIENT_SECRET'),
      opsToken: str('OPS_TOKEN'),
      tokenServers: tokenServers.servers,
      allowHs256: str('API_TOKEN_ALLOW_HS256') === 'true',
    },
    // SMART app (issue 7)
    app: {
      frameAncestors: (str('APP_FRAME_ANCESTORS') ?? "'self'").split(/ +/),
      extraConnectSrc: str('APP_CONNECT_SRC')?.split(/ +/) ?? [],
    },
    // --- CDS Hooks service (issue 6) ---
    cds: {
      deadlineMs: num('CDS_DEADLINE_MS', 400),
      feedbackDb: (() => { const p = str('CDS_FEEDBACK_DB') ?? 'data/cds-feedback.sqlite'; return isAbsolute(p) ? p : resolve(REPO_ROOT, p); })(),
      cardLogRetentionDays: num('CDS_CARD_LOG_RETENTION_DAYS', 400),
      orderMinTier: (str('CDS_ORDER_MIN_TIER') ?? 'moderate') as AppConfig['cds']['orderMinTier'],
      patientViewMinTier: (str('CDS_PATIENT_VIEW_MIN_TIER') ?? 'high') as AppConfig['cds']['patientViewMinTier'],
      jtiTtlS: num('CDS_JTI_TTL_S', 3600),
      clockSkewS: num('CDS_CLOCK_SKEW_S', 60),
      orderCodeMapsDir,
    },
    // --- FLS worklist and triage (issue 8) ---
    fls: {
      triageTiers: [...new Set((str('FLS_TRIAGE_TIERS') ?? 'high').split(','))] as AppConfig['fls']['triageTiers'],
      auditDb: (() => { const p = str('FLS_AUDIT_DB') ?? 'data/fls-audit.sqlite'; return isAbsolute(p) ? p : resolve(REPO_ROOT, p); })(),
      imminentDays: num('FLS_IMMINENT_DAYS', 730),
      due: { contact: num('FLS_DUE_CONTACT_DAYS', 14), dxa: num('FLS_DUE_DXA_DAYS', 84), treatmentDecision: num('FLS_DUE_TREATMENT_DAYS', 14), followUp16Weeks: num('FLS_DUE_FOLLOWUP_16W_DAYS', 112), followUp12Months: num('FLS_DUE_FOLLOWUP_12M_DAYS', 365) },
    },
    // --- Report events and durable jobs (issue 8) ---
    events: {
      auth: (str('EVENTS_AUTH') ?? 'secret') as AppConfig['events']['auth'],
      secret: str('EVENTS_SECRET'),
      secretHeader: str('EVENTS_SECRET_HEADER') ?? 'X-Subscription-Secret',
      jwksUrl: str('EVENTS_JWKS_URL'),
      jwtIssuer: str('EVENTS_JWT_ISSUER') ?? (fhirExternal === undefined ? `${publicBaseUrl}/sandbox/auth` : undefined),
    },
    jobs: {
      redisUrl: str('REDIS_URL'),
      dbPath: (() => { const p = str('JOBS_DB_PATH') ?? 'data/jobs.sqlite'; return isAbsolute(p) ? p : resolve(REPO_ROOT, p); })(),
      concurrency: num('JOBS_CONCURRENCY', 2),
      maxAttempts: num('JOBS_MAX_ATTEMPTS', 6),
      backoffMs: num('JOBS_BACKOFF_MS', 1000),
      leaseMs: num('JOBS_LEASE_MS', 30000),
      inProcessWorker: str('JOBS_IN_PROCESS_WORKER') !== 'false',
    },
    state: {
      databaseUrl: str('DATABASE_URL'),
      redisUrl: str('REDIS_URL'),
      dbPath: (() => { const p = str('STATE_DB') ?? 'data/state.sqlite'; return isAbsolute(p) ? p : resolve(REPO_ROOT, p); })(),
      resultTtlMs: num('RESULTS_TTL_HOURS', 720) * 3_600_000,
    },
    monitoring: {
      pollSeconds: num('MONITORING_POLL_S', 300),
      pairWindowDays: num('MONITORING_PAIR_WINDOW_DAYS', 730),
      windowPairs: num('MONITORING_WINDOW_PAIRS', 200),
      minPairs: num('MONITORING_ALARM_MIN_PAIRS', 30),
      minCoverage: num('MONITORING_ALARM_COVERAGE', 0.9),
      maxAbsBias: num('MONITORING_ALARM_BIAS', 0.5),
    },
  };
}

/**
 * True when `host` only accepts connections from this machine: `localhost`, an IPv4 address in `127.0.0.0/8`, or
 * `::1` (bracketed or not, or as the IPv4-mapped `::ffff:127.x.y.z`).
 */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  // One address classifier for the whole service (the same one the outbound-request checks use).
  const ip = bareIp(host);
  return ip !== undefined && classifyAddress(ip) === 'loopback';
}

/** The configuration table of the README, generated from {@link SETTINGS}. */
export function settingsMarkdown(): string {
  const rows = SETTINGS.map((s) => `| \`${s.env}\` | ${s.defaultText} | ${s.description.replace(/\|/g, '\\|')} |`);
  return ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/**
 * For command-line tools: the configuration, or `null` after writing the operator's message to stderr (the caller
 * exits with status 2). Errors other than a wrong setting are thrown.
 */
export function loadConfigForCli(env: NodeJS.ProcessEnv = process.env): AppConfig | null {
  try {
    return loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return null;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv.includes('--markdown')) {
  process.stdout.write(settingsMarkdown() + '\n');
}

/**
 * The high-availability stack of `replicas.test.ts`, every part a real process on loopback:
 * - Debian's PostgreSQL and redis-server in temporary folders (test/support/postgres.ts, test/support/redis.ts);
 * - one "hospital" process: the service with its embedded FHIR, DICOMweb and SMART sandboxes and the small fixture
 *   cohort — the FHIR server and PACS both replicas read, as an external EHR and PACS would be;
 * - two service replicas started as `npm start` starts the service (`server/index.ts` in a child process), each on
 *   its own port with the same `DATABASE_URL`, `REDIS_URL`, secrets and configuration, pointed at the hospital's
 *   FHIR server and PACS, their own SQLite files in separate folders (so a store that is still per-process cannot
 *   look shared);
 * - the round-robin proxy in front of them, whose URL is the replicas' `PUBLIC_BASE_URL` (what EHRs call).
 * An EHR signing key is trusted by the replicas through a pinned JWKS in a copy of smart-config/.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { REPO_ROOT } from '../../server/config.ts';
import { freePort } from '../support/net.ts';
import { DEMO_BACKEND, getNoFollow, pkce, postForm, SERVICE_CLIENT } from '../support/oauth.ts';
import { startPostgres, type PostgresHandle } from '../support/postgres.ts';
import { startRedis, type RedisHandle } from '../support/redis.ts';
import { spawnTs, waitFor, type ChildHandle } from '../support/service-process.ts';
import { startRoundRobinProxy, type RoundRobinProxy } from './proxy.ts';

/** Issuer of the EHR-like load generator's CDS Hooks JWTs. */
export const EHR_ISS = 'https://ha-ehr.example.test';

export interface Replica {
  readonly name: string;
  /** `http://127.0.0.1:<port>` (direct, bypassing the proxy). */
  readonly url: string;
  readonly handle: ChildHandle;
  readonly logFile: string;
}

export interface HaStack {
  readonly proxy: RoundRobinProxy;
  readonly replicas: readonly Replica[];
  /** The hospital process: `url`, its FHIR base and DICOMweb base. */
  readonly hospital: { url: string; fhirBase: string; dicomWebBase: string; handle: ChildHandle; logFile: string };
  readonly postgres: PostgresHandle;
  /** The database the replicas share. */
  readonly databaseUrl: string;
  readonly redis: RedisHandle;
  /** Shared secret of report-event notifications (`EVENTS_SECRET`). */
  readonly eventsSecret: string;
  /** Operator credential of both replicas (`OPS_TOKEN`). */
  readonly opsToken: string;
  /** A CDS Hooks JWT of the trusted EHR for `aud` (a fresh `jti` each time). */
  ehrJwt(aud: string): Promise<string>;
  /** A system-level token (`demo-backend`, client_credentials) of the hospital's authorization server. */
  systemToken(scope?: string): Promise<string>;
  /** A user-level token of the FLS coordinator (standalone launch, PKCE) for the FLS worklist. */
  coordinatorToken(): Promise<string>;
  /** The last lines of a process log (failure messages). */
  tail(logFile: string, lines?: number): string;
  close(): Promise<void>;
}

async function waitReady(url: string, handle: ChildHandle, logFile: string, timeoutMs: number): Promise<void> {
  await waitFor(`${url}/readyz`, async () => {
    if (handle.child.exitCode !== null || handle.child.signalCode !== null) {
      throw new Error(`the process exited (${handle.child.exitCode ?? handle.child.signalCode}); log:\n${readTail(logFile, 30)}`);
    }
    const res = await fetch(`${url}/readyz`);
    const body = (await res.json()) as { ready: boolean | string[] };
    return res.status === 200 ? body : undefined;
  }, timeoutMs, 500).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\nlog:\n${readTail(logFile, 30)}`);
  });
}

function readTail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Which data the hospital serves and which model the replicas load. */
export interface HaStackOptions {
  /**
   * `fixtures` (default): the small test cohort (7 patients, small DICOM files) and the smoke-test model — quick, for
   * the test. `demo`: the 50-patient demo cohort with full-size radiographs and the real model — for measuring costs.
   */
  cohort?: 'fixtures' | 'demo';
  /** Settings added to both replicas. */
  replicaEnv?: Record<string, string>;
}

/** Starts everything. */
export async function startHaStack(options: HaStackOptions = {}): Promise<HaStack> {
  const replicaEnv = options.replicaEnv ?? {};
  const demo = options.cohort === 'demo';
  const MODELS_DIR = demo ? join(REPO_ROOT, 'models') : join(REPO_ROOT, 'test/fixtures/models');
  const dir = mkdtempSync(join(tmpdir(), 'frcds-ha-'));
  const started: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const c of started.reverse()) await c().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const postgres = await startPostgres();
    started.push(() => postgres.stop());
    const databaseUrl = await postgres.createDatabase('frcds_ha');
    const redis = await startRedis();
    started.push(() => redis.stop());

    // The hospital: FHIR server, PACS and authorization server of the fixture cohort, in one process of its own.
    const data = join(dir, 'hospital');
    mkdirSync(data);
    if (!demo) {
      cpSync(join(REPO_ROOT, 'test/fixtures/fhir-cohort/fhir'), join(data, 'fhir'), { recursive: true });
      cpSync(join(REPO_ROOT, 'test/fixtures/dicom'), join(data, 'dicom'), { recursive: true, filter: (src) => !src.endsWith('.json') });
    }
    const hospitalPort = await freePort();
    const hospitalUrl = `http://127.0.0.1:${hospitalPort}`;
    const hospitalLog = join(dir, 'hospital.log');
    const hospital = spawnTs('server/index.ts', {
      PORT: String(hospitalPort), HOST: '127.0.0.1', PUBLIC_BASE_URL: hospitalUrl, LOG_LEVEL: 'warn', SANDBOX_DATA_DIR: demo ? join(REPO_ROOT, 'server/sandbox/demo-cohort') : data, MODELS_DIR,
      INFERENCE_DEVICE: 'cpu', CDS_FEEDBACK_DB: join(data, 'cds.sqlite'), FLS_AUDIT_DB: join(data, 'fls-audit.sqlite'), JOBS_DB_PATH: join(data, 'jobs.sqlite'),
      STATE_DB: join(data, 'state.sqlite'),
    }, hospitalLog);
    started.push(() => hospital.kill('SIGKILL'));
    await waitReady(hospitalUrl, hospital, hospitalLog, 240_000);

    // The EHR's signing key, pinned in the replicas' copy of smart-config/ (no JWKS fetch in the test).
    const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
    const kid = 'ha-ehr-key';
    const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES384', use: 'sig' };
    const smartDir = join(dir, 'smart-config');
    cpSync(join(REPO_ROOT, 'smart-config'), smartDir, { recursive: true });
    writeFileSync(join(smartDir, 'cds-clients.json'), JSON.stringify({
      $schema: './schema/cds-clients.schema.json',
      clients: [{ id: 'ha-ehr', label: 'HA test EHR', enabled: true, iss: EHR_ISS, jwks: { keys: [jwk] }, algorithms: ['ES384'] }],
    }, null, 2));

    const ports = [await freePort(), await freePort()];
    const upstreams = ports.map((p) => `http://127.0.0.1:${p}`);
    const proxy = await startRoundRobinProxy({ upstreams });
    started.push(() => proxy.close());

    const eventsSecret = randomBytes(24).toString('hex');
    const opsToken = randomBytes(32).toString('hex');
    const salt = randomBytes(16).toString('hex');
    const fhirBase = `${hospitalUrl}/sandbox/fhir`;
    const dicomWebBase = `${hospitalUrl}/sandbox/dicom-web`;
    const replicas: Replica[] = [];
    // One after the other: the first builds the SMART app bundle if it is stale, the second finds it up to date.
    // Every embedded (SQLite) store gets a file of the replica's own: two processes of one host sharing a file would
    // share state without PostgreSQL or Redis, and the test would prove nothing about replicas on two machines.
    for (const [i, port] of ports.entries()) {
      const name = `replica-${String.fromCharCode(97 + i)}`;
      const own = join(dir, name);
      mkdirSync(own);
      const logFile = join(dir, `${name}.log`);
      const handle = spawnTs('server/index.ts', {
        PORT: String(port), HOST: '127.0.0.1', PUBLIC_BASE_URL: proxy.url, LOG_LEVEL: 'info', LOG_HASH_SALT: salt,
        MODELS_DIR, INFERENCE_DEVICE: 'cpu', INFERENCE_THREADS: '1', IMAGING_WORKERS: '1', SMART_CONFIG_DIR: smartDir,
        FHIR_BASE_URL: fhirBase, DICOMWEB_BASE_URL: dicomWebBase, DICOMWEB_AUTH: 'bearer', DICOMWEB_TOKEN: 'not-checked-by-the-sandbox',
        // The service's FHIR client may read but not write AuditEvents: every FLS audit event is refused by the FHIR
        // server and must be kept in the shared audit fallback store, where the test counts them.
        FHIR_AUTH: 'client-credentials', FHIR_TOKEN_URL: `${hospitalUrl}/sandbox/auth/token`, FHIR_CLIENT_ID: SERVICE_CLIENT.id,
        FHIR_CLIENT_SECRET: SERVICE_CLIENT.secret, FHIR_SCOPE: 'system/*.rs',
        DATABASE_URL: databaseUrl, REDIS_URL: redis.url, EVENTS_SECRET: eventsSecret, OPS_TOKEN: opsToken,
        JOBS_LEASE_MS: '4000', JOBS_BACKOFF_MS: '200',
        CDS_PATIENT_VIEW_MIN_TIER: 'low', CDS_ORDER_MIN_TIER: 'low',
        CDS_FEEDBACK_DB: join(own, 'cds.sqlite'), FLS_AUDIT_DB: join(own, 'fls-audit.sqlite'), JOBS_DB_PATH: join(own, 'jobs.sqlite'),
        STATE_DB: join(own, 'state.sqlite'),
        ...replicaEnv,
      }, logFile);
      started.push(() => handle.kill('SIGKILL'));
      await waitReady(upstreams[i]!, handle, logFile, 240_000);
      replicas.push({ name, url: upstreams[i]!, handle, logFile });
    }

    const key: CryptoKey = privateKey;
    const systemTokens = new Map<string, Promise<string>>();
    let coordinator: Promise<string> | undefined;
    return {
      proxy,
      replicas,
      hospital: { url: hospitalUrl, fhirBase, dicomWebBase, handle: hospital, logFile: hospitalLog },
      postgres,
      databaseUrl,
      redis,
      eventsSecret,
      opsToken,
      ehrJwt: (aud) =>
        new SignJWT({}).setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid }).setIssuer(EHR_ISS).setAudience(aud).setIssuedAt()
          .setExpirationTime('5m').setJti(crypto.randomUUID()).sign(key),
      systemToken: (scope = 'system/*.rs') => {
        let t = systemTokens.get(scope);
        if (!t) {
          t = postForm(`${hospitalUrl}/sandbox/auth/token`, { grant_type: 'client_credentials', scope }, DEMO_BACKEND).then((r) => {
            if (r.status !== 200) throw new Error(`client_credentials: ${r.status} ${JSON.stringify(r.body)}`);
            return String(r.body['access_token']);
          });
          systemTokens.set(scope, t);
        }
        return t;
      },
      coordinatorToken: () => {
        coordinator ??= (async () => {
          const redirectUri = `${hospitalUrl}/app/index.html`;
          const p = pkce();
          const q = new URLSearchParams({
            response_type: 'code', client_id: 'fracture-risk-app', redirect_uri: redirectUri, scope: 'openid fhirUser user/Task.rs user/Patient.rs',
            aud: fhirBase, state: 'ha', login_hint: 'demo-fls-coordinator', code_challenge: p.challenge, code_challenge_method: 'S256',
          });
          const auth = await getNoFollow(`${hospitalUrl}/sandbox/auth/authorize?${q}`);
          const code = auth.location?.searchParams.get('code');
          if (!code) throw new Error(`standalone launch gave no code: ${auth.status} ${auth.location?.toString() ?? auth.text.slice(0, 300)}`);
          const tok = await postForm(`${hospitalUrl}/sandbox/auth/token`, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: 'fracture-risk-app', code_verifier: p.verifier });
          if (tok.status !== 200) throw new Error(`authorization_code: ${tok.status} ${JSON.stringify(tok.body)}`);
          return String(tok.body['access_token']);
        })();
        return coordinator;
      },
      tail: readTail,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}


/**
 * The whole service in this process as `npm start` runs it (sandboxes, SMART, CDS Hooks, report events, jobs, FLS)
 * on a free loopback port, with its SQLite files in a throw-away folder — for end-to-end tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientCredentialsTokenProvider } from '../../server/auth/token-provider.ts';
import { loadConfig, type AppConfig } from '../../server/config.ts';
import { startService, type RunningService } from '../../server/index.ts';
import { silentLogger } from './demo-stack.ts';
import { freePort } from './net.ts';

export interface WholeService {
  readonly service: RunningService;
  readonly config: AppConfig;
  /** `http://127.0.0.1:<port>`, also the configured PUBLIC_BASE_URL. */
  readonly base: string;
  /** A developer token (client_credentials of the sandbox's `demo-backend` client) for `scope`. */
  token(scope?: string): Promise<string>;
  close(): Promise<void>;
}

/** Starts the service and waits until its start-up work is done; `env` adds or overrides settings. */
export async function startWholeService(env: Record<string, string> = {}): Promise<WholeService> {
  const dataDir = mkdtempSync(join(tmpdir(), 'frcds-service-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_BASE_URL: base,
    LOG_LEVEL: 'silent',
    INFERENCE_DEVICE: 'cpu',
    CDS_FEEDBACK_DB: join(dataDir, 'cds.sqlite'),
    FLS_AUDIT_DB: join(dataDir, 'fls-audit.sqlite'),
    JOBS_DB_PATH: join(dataDir, 'jobs.sqlite'),
    STATE_DB: join(dataDir, 'state.sqlite'),
    ...env,
  });
  const service = await startService(config, silentLogger());
  await service.started;
  const demoBackend = config.files.smartClients?.clients.find((c) => c.clientId === 'demo-backend');
  if (!demoBackend?.clientSecret) throw new Error('smart-config/smart-clients.json has no demo-backend client with a secret');
  const providers = new Map<string, ClientCredentialsTokenProvider>();
  return {
    service,
    config,
    base,
    token: (scope = 'system/*.rs') => {
      let p = providers.get(scope);
      if (!p) {
        p = new ClientCredentialsTokenProvider({ tokenUrl: `${base}/sandbox/auth/token`, clientId: 'demo-backend', clientSecret: demoBackend.clientSecret!, scope });
        providers.set(scope, p);
      }
      return p.token();
    },
    close: async () => {
      await service.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

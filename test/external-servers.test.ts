/**
 * Pointing the service at "real" external servers: a second service instance is configured with FHIR_BASE_URL and
 * DICOMWEB_BASE_URL aimed at the embedded servers of a first instance (real HTTP, real servers, nothing mocked).
 * Its own sandboxes must be off, and /readyz must probe the external ones and follow them going away.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { loadConfig, REPO_ROOT } from '../server/config.ts';
import { startService, type RunningService } from '../server/index.ts';
import { createLogger } from '../server/logging.ts';
import { freePort } from './support/net.ts';
import { DEMO_BACKEND, postForm, SERVICE_CLIENT } from './support/oauth.ts';


const sink = new Writable({ write: (_c, _e, cb) => cb() });
const logger = createLogger({ level: 'silent', destination: sink });
let upstream: RunningService | undefined;
let service: RunningService;
let dataDir = '';
let upstreamPort = 0;
let port = 0;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'frcds-ext-'));
  cpSync(join(REPO_ROOT, 'test/fixtures/fhir-cohort/fhir'), join(dataDir, 'fhir'), { recursive: true });
  cpSync(join(REPO_ROOT, 'test/fixtures/dicom'), join(dataDir, 'dicom'), { recursive: true, filter: (src) => !src.endsWith('.json') });
  upstreamPort = await freePort();
  // The risk engine's models: the small smoke-config fixture model (models/ may hold none on a fresh checkout).
  const MODELS_DIR = join(REPO_ROOT, 'test/fixtures/models');
  // PUBLIC_BASE_URL = the URL the second service uses, so the upstream's token `aud` is that FHIR base (SMART, issue 7).
  upstream = await startService(loadConfig({ PORT: String(upstreamPort), PUBLIC_BASE_URL: `http://127.0.0.1:${upstreamPort}`, SANDBOX_DATA_DIR: dataDir, MODELS_DIR, STATE_DB: join(dataDir, 'upstream-state.sqlite') }), logger);
  await upstream.started;
  port = await freePort();
  const config = loadConfig({
    PORT: String(port),
    FHIR_BASE_URL: `http://127.0.0.1:${upstreamPort}/sandbox/fhir`,
    DICOMWEB_BASE_URL: `http://127.0.0.1:${upstreamPort}/sandbox/dicom-web`,
    DICOMWEB_AUTH: 'bearer',
    DICOMWEB_TOKEN: 'not-checked-by-the-sandbox',
    FHIR_TIMEOUT_MS: '2000',
    // SMART (issue 7): the upstream sandbox FHIR server demands tokens; the service gets them with client_credentials.
    FHIR_AUTH: 'client-credentials',
    FHIR_TOKEN_URL: `http://127.0.0.1:${upstreamPort}/sandbox/auth/token`,
    FHIR_CLIENT_ID: SERVICE_CLIENT.id,
    FHIR_CLIENT_SECRET: SERVICE_CLIENT.secret,
    FHIR_SCOPE: 'system/*.rs',
    DICOMWEB_TIMEOUT_MS: '2000',
    MODELS_DIR,
    // Its own results store: a result cached by an earlier run must not answer this one's first assessment.
    STATE_DB: join(dataDir, 'state.sqlite'),
  });
  service = await startService(config, logger);
  await service.started;
});

after(async () => {
  await service?.close();
  await upstream?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('service configured with an external FHIR server and PACS', () => {
  test('/readyz probes both and is 200 while they answer', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    const body = (await res.json()) as { ready: string[]; components: Record<string, { detail?: string }> };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual(body.ready, ['app', 'dicomweb-server', 'fhir-server', 'models', 'state']);
    assert.equal(body.components['fhir-server']?.detail, `http://127.0.0.1:${upstreamPort}/sandbox/fhir/metadata answered 200`);
  });

  test('its own sandbox paths are off (404)', async () => {
    assert.equal((await fetch(`http://127.0.0.1:${port}/sandbox/fhir/metadata`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${port}/sandbox/dicom-web/studies`)).status, 404);
  });

  test('SMART: API tokens are verified with the keys discovered from the FHIR server; FHIR calls use client_credentials', async () => {
    const url = `http://127.0.0.1:${port}/api/assessments`;
    const post = (token?: string): Promise<Response> =>
      fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify({ patient: 'fx-0001' }) });
    assert.equal((await post()).status, 401);
    const t = await postForm(`http://127.0.0.1:${upstreamPort}/sandbox/auth/token`, { grant_type: 'client_credentials', scope: 'system/*.rs' }, DEMO_BACKEND);
    assert.equal(t.status, 200);
    const res = await post(String(t.body['access_token']));
    assert.equal(res.status, 201, await res.clone().text());
    assert.equal(((await res.json()) as { assessment: { patientId: string } }).assessment.patientId, 'fx-0001');
  });

  test('/readyz turns 503 naming both servers when they go away', async () => {
    await upstream!.close();
    upstream = undefined;
    await new Promise((r) => setTimeout(r, 2100)); // probe results are cached for 2 s
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    const body = (await res.json()) as { notReady: string[]; components: Record<string, { detail?: string }> };
    assert.equal(res.status, 503);
    assert.deepEqual(body.notReady, ['dicomweb-server', 'fhir-server']);
    assert.match(body.components['fhir-server']?.detail ?? '', /unreachable \(ECONNREFUSED\)/);
  });
});

/**
 * The SMART app's CSP connect-src and `/app/config.json` `connectSrc`: the service, its FHIR server, every
 * `servers[]` fhirBaseUrl origin and connectSrc origin of smart-config/token-verification.json, APP_CONNECT_SRC —
 * the same list in both places.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import express from 'express';
import request from 'supertest';
import { appConnectSources, appContentSecurityPolicy, createAppStaticRouter } from './app-static.ts';
import { loadConfig, REPO_ROOT } from './config.ts';

describe('/app CSP connect-src and config.json connectSrc', () => {
  const dir = mkdtempSync(join(tmpdir(), 'frcds-app-static-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('default: the service and its FHIR server only', async () => {
    const config = loadConfig({ PUBLIC_BASE_URL: 'http://127.0.0.1:9000' });
    assert.deepEqual(appConnectSources(config), ["'self'", 'http://127.0.0.1:9000']);
    const app = express().use('/app', createAppStaticRouter({ distDir: join(dir, 'no-dist'), config }));
    const res = await request(app).get('/app/config.json').expect(200);
    assert.deepEqual(res.body, { fhirBaseUrl: 'http://127.0.0.1:9000/sandbox/fhir', clientId: 'fracture-risk-app', connectSrc: ["'self'", 'http://127.0.0.1:9000'] });
    assert.match(res.headers['content-security-policy'] ?? '', /connect-src 'self' http:\/\/127\.0\.0\.1:9000;/);
  });

  test('with servers: each fhirBaseUrl origin and connectSrc origin, then APP_CONNECT_SRC, in CSP and config.json alike', async () => {
    const smart = join(dir, 'smart-config');
    cpSync(join(REPO_ROOT, 'smart-config'), smart, { recursive: true });
    writeFileSync(join(smart, 'token-verification.json'), JSON.stringify({
      mode: 'auto',
      servers: [
        { id: 'epic', fhirBaseUrl: 'https://fhir.epic.example/api/FHIR/R4/', mode: 'fhir-delegated', connectSrc: ['https://auth.epic.example/oauth2/token'] },
        { id: 'local-launcher', fhirBaseUrl: '{PUBLIC_BASE_URL}/launcher/fhir', mode: 'fhir-delegated' },
      ],
    }));
    const config = loadConfig({ SMART_CONFIG_DIR: smart, FHIR_BASE_URL: 'https://fhir.example.org/r4', PUBLIC_BASE_URL: 'https://cds.example.org', APP_CONNECT_SRC: 'https://idp.example.org' });
    const expected = ["'self'", 'https://fhir.example.org', 'https://fhir.epic.example', 'https://auth.epic.example', 'https://cds.example.org', 'https://idp.example.org'];
    assert.deepEqual(appConnectSources(config), expected);
    assert.match(appContentSecurityPolicy(config), new RegExp(`connect-src ${expected.join(' ').replace(/[.]/g, '\\.')};`));
    const app = express().use('/app', createAppStaticRouter({ distDir: join(dir, 'no-dist'), config }));
    const res = await request(app).get('/app/config.json').expect(200);
    assert.deepEqual(res.body.connectSrc, expected);
    assert.ok((res.headers['content-security-policy'] ?? '').includes(`connect-src ${expected.join(' ')};`));
  });
});

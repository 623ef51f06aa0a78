/**
 * The SMART app's CSP connect-src and `/app/config.json` `connectSrc`: the service, its FHIR server, every
 * `servers[]` fhirBaseUrl origin and connectSrc origin of smart-config/token-verification.json, APP_CONNECT_SRC —
 * the same list in both places.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import express from 'express';
import request from 'supertest';
import { appConnectSources, appContentSecurityPolicy, createAppStaticRouter, readModelFacts } from './app-static.ts';
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

describe('model facts for "About this result", read from the shipped manifests (1.x and 2.x layouts)', () => {
  const MODELS = join(REPO_ROOT, 'models');
  const manifest = (id: string): { metrics: Record<string, Record<string, unknown>> } => JSON.parse(readFileSync(join(MODELS, id, 'manifest.json'), 'utf8')) as never;

  test('hip-xray-v1 (schema 1.x): hip and MOF C-index with CI, slope and coverage from the fused blocks', () => {
    const facts = readModelFacts(MODELS, 'hip-xray-v1')!;
    assert.deepEqual(Object.keys(facts.metrics).sort(), ['hip', 'mof']);
    const fused = manifest('hip-xray-v1').metrics['hip']!['fused'] as Record<string, { value: number; ci95: [number, number] }>;
    assert.equal(facts.metrics['hip']!.cIndex, fused['harrell_c10']!.value);
    assert.deepEqual(facts.metrics['hip']!.cIndexCi, fused['harrell_c10']!.ci95);
    assert.equal(facts.metrics['hip']!.calibrationSlope, fused['calibration_slope']!.value);
  });

  test('hip-xray-v2 (schema 2.x): the served figures per outcome, KM-decile slope and coverage of the true risk', () => {
    const facts = readModelFacts(MODELS, 'hip-xray-v2')!;
    assert.deepEqual(Object.keys(facts.metrics).sort(), ['hip', 'mof']);
    const served = manifest('hip-xray-v2').metrics['hip_served']!;
    assert.equal(facts.metrics['hip']!.cIndex, served['harrell_c10']);
    assert.equal(facts.metrics['hip']!.cIndexCi, null);
    assert.equal(facts.metrics['hip']!.calibrationSlope, served['km_decile_slope']);
    assert.equal(facts.metrics['hip']!.coverage95, served['coverage_true_risk10']);
  });

  test('an unknown or malformed model id gives null', () => {
    assert.equal(readModelFacts(MODELS, 'no-such-model'), null);
    assert.equal(readModelFacts(MODELS, '../etc'), null);
  });
});

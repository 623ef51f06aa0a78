/**
 * What the app adds to every answer whatever router serves it: the operator credential in front of the operations
 * endpoints, security headers, `Cache-Control: no-store` on answers about patients, generic 500s with a
 * correlation id, and dead letters without raw ids.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Router } from 'express';
import request from 'supertest';
import { createApp, type SandboxMounts, type ServiceMounts } from './app.ts';
import { createFeedbackSummaryRouter } from './cds/router.ts';
import { CdsStore } from './cds/store.ts';
import { loadConfig } from './config.ts';
import { createAuthenticator } from './events/auth.ts';
import { createEventsRouter } from './events/receiver.ts';
import { createMetrics } from './health/metrics.ts';
import { Readiness } from './health/readiness.ts';
import { createJobsRouter } from './jobs/routes.ts';
import { SqliteJobQueue } from './jobs/sqlite-queue.ts';
import { idempotencyKey } from './jobs/types.ts';
import { createLogger, hashPatientId } from './logging.ts';

const OPS_TOKEN = 'app-security-ops-token-0123456789abcdef';
const RAW_REPORT = 'rep-raw-4711';
const RAW_PATIENT = 'pat-raw-0815';

function build(env: NodeJS.ProcessEnv = {}) {
  const logs: string[] = [];
  const logger = createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => void (logs.push(c.toString()), cb()) }) });
  const queue = new SqliteJobQueue({ path: ':memory:', maxAttempts: 3, backoffMs: 10, leaseMs: 5000, logger });
  const store = new CdsStore(':memory:');
  const boom = Router();
  boom.get('/boom', () => {
    throw new Error(`SQLITE_CORRUPT at /var/lib/frcds/x.sqlite while reading Patient/${RAW_PATIENT}`);
  });
  const services: ServiceMounts = {
    jobs: createJobsRouter(() => queue),
    events: createEventsRouter({ queue: () => queue, auth: createAuthenticator({ type: 'secret', header: 'X-Subscription-Secret', secret: 'events-secret-0123456789' }), logger }),
    feedback: createFeedbackSummaryRouter(store),
    cds: (_req, res) => void res.json({ services: [] }),
    assessments: boom,
  };
  const sandboxes: SandboxMounts = { fhir: (_req, res) => void res.type('application/fhir+json').send('{"resourceType":"CapabilityStatement"}') };
  const config = loadConfig({ OPS_TOKEN, ...env });
  const app = createApp({ config, logger, readiness: new Readiness(), metrics: createMetrics(), sandboxes, services });
  return { app, queue, logs, close: async () => void (await queue.close(), store.close()) };
}

describe('operations endpoints need the operator credential', () => {
  let h: ReturnType<typeof build>;
  before(() => {
    h = build();
  });
  after(() => h.close());

  const OPS_PATHS = ['/api/jobs/stats', '/api/jobs/dead-letters', '/api/events/subscriptions', '/api/feedback/summary'];

  test('without a credential, or with a wrong one: 401 with a Bearer challenge and no data', async () => {
    for (const path of [...OPS_PATHS, '/API/Jobs/Stats', '/api/events/subscriptions/', '/API/EVENTS/SUBSCRIPTIONS']) {
      const r = await request(h.app).get(path);
      assert.equal(r.status, 401, path);
      assert.match(String(r.headers['www-authenticate']), /^Bearer /, path);
      assert.equal(r.body.code, 'OPERATOR_CREDENTIAL_REQUIRED', path);
      const wrong = await request(h.app).get(path).set('Authorization', 'Bearer not-the-ops-token-0123456789abcdef');
      assert.equal(wrong.status, 401, path);
    }
  });

  test('with Authorization: Bearer <OPS_TOKEN>: 200', async () => {
    for (const path of OPS_PATHS) {
      const r = await request(h.app).get(path).set('Authorization', `Bearer ${OPS_TOKEN}`);
      assert.equal(r.status, 200, path);
    }
  });

  test('the other event endpoints keep their own authentication (the topic is public, notifications need the channel secret)', async () => {
    await request(h.app).get('/api/events/topic').expect(200);
    await request(h.app).post('/api/events/notifications').set('Content-Type', 'application/fhir+json').send('{}').expect(401);
  });

  test('without OPS_TOKEN and with an external FHIR server nothing gets in', async () => {
    const ext = build({ OPS_TOKEN: undefined, FHIR_BASE_URL: 'https://ehr.example.org/fhir' });
    try {
      for (const path of OPS_PATHS) assert.equal((await request(ext.app).get(path).set('Authorization', `Bearer ${OPS_TOKEN}`)).status, 401, path);
    } finally {
      await ext.close();
    }
  });
});

describe('security headers and caching', () => {
  let h: ReturnType<typeof build>;
  before(() => {
    h = build({ APP_FRAME_ANCESTORS: "'self' https://ehr.example.org" });
  });
  after(() => h.close());

  test('every route sends nosniff, no-referrer and a CSP that forbids framing', async () => {
    const auth = { Authorization: `Bearer ${OPS_TOKEN}` };
    const cases: [string, Record<string, string>][] = [
      ['/', { Accept: 'text/html' }], ['/', {}], ['/healthz', {}], ['/readyz', {}], ['/metrics', {}], ['/no-such-path', {}],
      ['/api/jobs/stats', {}], ['/api/jobs/stats', auth], ['/api/events/topic', {}], ['/cds-services', {}], ['/sandbox/fhir/metadata', {}],
      ['/sandbox/ehr/', {}], ['/sandbox/auth/pick-patient', {}], ['/models/none/card', {}],
    ];
    for (const [path, headers] of cases) {
      const r = await request(h.app).get(path).set(headers);
      const what = `${path} ${JSON.stringify(headers)} → ${r.status}`;
      assert.equal(r.headers['x-content-type-options'], 'nosniff', what);
      assert.equal(r.headers['referrer-policy'], 'no-referrer', what);
      const csp = String(r.headers['content-security-policy']);
      assert.match(csp, /frame-ancestors 'none'/, what);
      assert.match(csp, /default-src 'none'/, what);
      assert.doesNotMatch(csp, /script-src|connect-src/, what);
    }
  });

  test('the SMART app keeps its own policy, framable by APP_FRAME_ANCESTORS only', async () => {
    const r = await request(h.app).get('/app/launch.html');
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.match(String(r.headers['content-security-policy']), /frame-ancestors 'self' https:\/\/ehr\.example\.org/);
  });

  test('answers under /api and /cds-services are Cache-Control: no-store', async () => {
    for (const path of ['/api/jobs/stats', '/api/jobs/dead-letters', '/api/events/subscriptions', '/api/feedback/summary', '/api/fls/worklist', '/api/events/topic', '/cds-services']) {
      const r = await request(h.app).get(path).set('Authorization', `Bearer ${OPS_TOKEN}`);
      assert.equal(r.headers['cache-control'], 'no-store', `${path} → ${r.status}`);
    }
  });
});

describe('internal errors and dead letters say nothing internal', () => {
  let h: ReturnType<typeof build>;
  before(() => {
    h = build();
  });
  after(() => h.close());

  test('an unexpected exception answers a generic 500 with a correlation id; the log line has the id and the error, its ids hashed', async () => {
    const r = await request(h.app).get('/api/assessments/boom').expect(500);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.match(r.body.errorId, /^[0-9a-f-]{36}$/);
    for (const leak of ['SQLITE', '/var/lib', RAW_PATIENT, 'Patient/']) assert.ok(!r.text.includes(leak), `${leak} leaked: ${r.text}`);
    assert.match(r.body.error, /^Internal error/);
    const line = h.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['errorId'] === r.body.errorId);
    assert.ok(line, 'the error is logged with the id the answer names');
    assert.match(String((line['err'] as { message: string }).message), /SQLITE_CORRUPT/);
    assert.ok(!h.logs.join('').includes(RAW_PATIENT), 'the raw patient id is not in the log');
    assert.ok(h.logs.join('').includes(`Patient/#${hashPatientId(RAW_PATIENT)}`));
  });

  test('dead letters show a hashed report id, key and reason: no raw id', async () => {
    await h.queue.deadLetter({ key: idempotencyKey(RAW_REPORT, '3'), reportId: RAW_REPORT, reason: `reading the notified DiagnosticReport: GET http://fhir.example/fhir/DiagnosticReport/${RAW_REPORT}: HTTP 403`, attempts: 1, source: 'backport-id-only' });
    await h.queue.deadLetter({ key: 'notification:Subscription/frcds-report-events:7', reportId: null, reason: 'the event\'s focus is a Patient, not a DiagnosticReport', attempts: 0, source: 'receiver' });
    const r = await request(h.app).get('/api/jobs/dead-letters').set('Authorization', `Bearer ${OPS_TOKEN}`).expect(200);
    assert.ok(!r.text.includes(RAW_REPORT), `raw report id in ${r.text}`);
    const [notification, job] = r.body.deadLetters as { key: string; reportHash: string | null; reason: string }[];
    assert.equal(job!.reportHash, hashPatientId(RAW_REPORT));
    assert.equal(job!.key, `DiagnosticReport/#${hashPatientId(RAW_REPORT)}/_history/3`);
    assert.match(job!.reason, /^reading the notified DiagnosticReport: GET http:\/\/fhir\.example\/fhir\/DiagnosticReport\/#[0-9a-f]{16}: HTTP 403$/);
    assert.equal(notification!.reportHash, null);
    assert.equal(notification!.key, 'notification:Subscription/frcds-report-events:7', 'subscription ids are not patient data: kept');
    assert.ok(!('reportId' in job!));
  });
});

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import request from 'supertest';
import { createApp, type SandboxMounts } from './app.ts';
import { loadConfig } from './config.ts';
import { createMetrics } from './health/metrics.ts';
import { Readiness } from './health/readiness.ts';
import { createLogger } from './logging.ts';

function build(env: NodeJS.ProcessEnv = {}) {
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _e, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const readiness = new Readiness();
  const sandboxes: SandboxMounts = {};
  const config = loadConfig(env);
  const app = createApp({ config, logger: createLogger({ level: 'info', destination }), readiness, metrics: createMetrics(), sandboxes });
  return { app, readiness, sandboxes, logs };
}

describe('createApp', () => {
  test('/healthz answers while /readyz is 503 listing what is not ready', async () => {
    const { app, readiness } = build();
    readiness.set('fhir-sandbox', 'starting');
    readiness.set('dicomweb-sandbox', 'ready');
    const h = await request(app).get('/healthz').expect(200);
    assert.equal(h.body.status, 'ok');
    const r = await request(app).get('/readyz').expect(503);
    assert.deepEqual(r.body.ready, ['dicomweb-sandbox']);
    assert.deepEqual(r.body.notReady, ['fhir-sandbox']);
    assert.equal(r.body.status, 'not-ready');
    readiness.set('fhir-sandbox', 'ready');
    const ok = await request(app).get('/readyz').expect(200);
    assert.equal(ok.body.status, 'ready');
  });

  test('sandbox paths answer 503 while starting, then go to the mounted router', async () => {
    const { app, sandboxes } = build();
    const starting = await request(app).get('/sandbox/fhir/Patient').expect(503);
    assert.equal(starting.headers['retry-after'], '2');
    sandboxes.fhir = (_req, res) => void res.status(299).send('mounted');
    const mounted = await request(app).get('/sandbox/fhir/Patient').expect(299);
    assert.equal(mounted.text, 'mounted');
  });

  test('with external servers configured the sandbox paths are 404 and say why', async () => {
    const { app } = build({ FHIR_BASE_URL: 'https://ehr.example.org/fhir', DICOMWEB_BASE_URL: 'https://pacs.example.org/dicom-web' });
    const r = await request(app).get('/sandbox/fhir/metadata').expect(404);
    assert.match(r.body.error, /external server is configured/);
    await request(app).get('/sandbox/dicom-web/studies').expect(404);
  });

  test('GET / lists the URLs to open with the research-use notice; unknown paths are JSON 404s', async () => {
    const { app } = build({ PORT: '9999' });
    const r = await request(app).get('/').expect(200);
    assert.match(r.body.notice, /Research use — trained on synthetic data/);
    assert.equal(r.body.links.fhirPatients, 'http://localhost:9999/sandbox/fhir/Patient?_count=5');
    assert.equal(r.body.links.readiness, 'http://localhost:9999/readyz');
    const nf = await request(app).get('/nope').expect(404);
    assert.equal(nf.body.error, 'Not found');
  });

  test('/metrics exposes the request-duration histogram by route template; the access log has no ids', async () => {
    const { app, sandboxes, logs } = build();
    sandboxes.fhir = (_req, res) => void res.status(200).json({});
    await request(app).get('/sandbox/fhir/Patient/secret-id-77?identifier=MRN55').expect(200);
    await request(app).get('/healthz').expect(200);
    const m = await request(app).get('/metrics').expect(200);
    assert.match(m.headers['content-type'] ?? '', /text\/plain/);
    assert.match(m.text, /frcds_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/sandbox\/fhir\/Patient\/:id",status_code="200"\}/);
    assert.match(m.text, /frcds_http_requests_total\{method="GET",route="\/healthz",status_code="200"\} 1/);
    assert.match(m.text, /frcds_process_resident_memory_bytes/);
    assert.doesNotMatch(m.text, /secret-id-77|MRN55/);
    const log = logs.join('');
    assert.match(log, /"route":"\/sandbox\/fhir\/Patient\/:id"/);
    assert.doesNotMatch(log, /secret-id-77|MRN55/);
  });
});

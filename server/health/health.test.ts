import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Request } from 'express';
import { routeLabel } from './metrics.ts';
import { httpProbe, Readiness } from './readiness.ts';

describe('Readiness', () => {
  test('not ready without components; ready only when every component is', async () => {
    const r = new Readiness();
    assert.equal((await r.report()).ready, false);
    r.set('fhir-sandbox', 'starting');
    r.set('dicomweb-sandbox', 'ready', '3 instances');
    let rep = await r.report();
    assert.equal(rep.ready, false);
    assert.deepEqual(rep.components['fhir-sandbox'], { ready: false, state: 'starting' });
    assert.deepEqual(rep.components['dicomweb-sandbox'], { ready: true, state: 'ready', detail: '3 instances' });
    r.set('fhir-sandbox', 'ready');
    rep = await r.report();
    assert.equal(rep.ready, true);
    r.set('fhir-sandbox', 'failed', 'seed rejected');
    assert.equal((await r.report()).ready, false);
  });

  test('a probe that never answers is reported failed after its time-out, not hung', async () => {
    const r = new Readiness();
    r.addProbe('pacs', () => new Promise(() => undefined), 150);
    const t0 = Date.now();
    const rep = await r.report();
    assert.ok(Date.now() - t0 < 1000);
    assert.deepEqual(rep.components['pacs'], { ready: false, state: 'failed', detail: 'no answer within 150 ms' });
  });

  test('a throwing probe is failed with its message; results are cached briefly', async () => {
    const r = new Readiness();
    let calls = 0;
    r.addProbe('fhir-server', async () => {
      calls++;
      throw new Error('boom');
    }, 1000);
    let now = 1_000_000;
    const rep = await r.report(() => now);
    assert.equal(rep.components['fhir-server']?.detail, 'boom');
    await r.report(() => now + 500);
    assert.equal(calls, 1);
    now += 5000;
    await r.report(() => now);
    assert.equal(calls, 2);
  });
});

describe('httpProbe', () => {
  let server: Server;
  let base = '';
  let status = 200;
  let seenAuth: string | undefined;
  before(async () => {
    server = createServer((req, res) => {
      seenAuth = req.headers.authorization;
      res.statusCode = status;
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test('2xx is ready and sends the configured headers; the query string is not shown', async () => {
    status = 200;
    const res = await httpProbe(`${base}/dicom-web/studies?limit=1`, { Authorization: 'Bearer t0k' })(new AbortController().signal);
    assert.deepEqual(res, { ok: true, detail: `${base}/dicom-web/studies answered 200` });
    assert.equal(seenAuth, 'Bearer t0k');
  });

  test('an error status or an unreachable server is not ready, with a reason', async () => {
    status = 401;
    assert.deepEqual(await httpProbe(`${base}/metadata`)(new AbortController().signal), { ok: false, detail: `${base}/metadata answered 401` });
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const res = await httpProbe(`http://127.0.0.1:${port}/metadata`)(new AbortController().signal);
    assert.equal(res.ok, false);
    assert.match(res.detail ?? '', /unreachable \(ECONNREFUSED\)/);
  });
});

describe('routeLabel', () => {
  const req = (originalUrl: string, route?: string, baseUrl = ''): Request => ({ originalUrl, baseUrl, route: route ? { path: route } : undefined }) as unknown as Request;
  test('uses the Express route when one matched', () => {
    assert.equal(routeLabel(req('/readyz', '/readyz')), '/readyz');
    assert.equal(routeLabel(req('/api/x/123', '/x/:id', '/api')), '/api/x/:id');
  });
  test('turns sandbox paths into templates without ids or query strings', () => {
    assert.equal(routeLabel(req('/sandbox/fhir/Patient?identifier=urn:frcds:synthetic-mrn|MRN1')), '/sandbox/fhir/Patient');
    assert.equal(routeLabel(req('/sandbox/fhir/Patient/abc')), '/sandbox/fhir/Patient/:id');
    assert.equal(routeLabel(req('/sandbox/fhir/Patient/abc/_history/v1')), '/sandbox/fhir/Patient/:id/_history/:vid');
    assert.equal(routeLabel(req('/sandbox/fhir/Patient/_search')), '/sandbox/fhir/Patient/_search');
    assert.equal(routeLabel(req('/sandbox/dicom-web/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5/frames/1')), '/sandbox/dicom-web/studies/:id/series/:id/instances/:id/frames/:id');
  });
  test('unknown paths collapse to one label (no cardinality explosion from scanners)', () => {
    assert.equal(routeLabel(req('/wp-admin/x.php')), 'unmatched');
  });
});

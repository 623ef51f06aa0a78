/**
 * Interop demo mode (`SANDBOX_FHIR_OPEN=true`): the sandbox FHIR guard lets token-less reads and searches through,
 * still refuses token-less writes, and still applies the scopes of a request that carries a token. The closed
 * default is checked on the same server built without the option. The last suite runs the whole service with the
 * setting on: `/readyz` lists the warning and the CapabilityStatement no longer says reads need a token.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import type { Bundle, CapabilityStatement, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { loadConfig, REPO_ROOT } from '../../config.ts';
import { createFhirSandbox, type FhirSandbox } from '../fhir/router.ts';
import { silentLogger } from '../../../test/support/demo-stack.ts';
import { startWholeService, type WholeService } from '../../../test/support/whole-service.ts';
import { createSmartSandbox, type SmartSandbox } from './server.ts';

const FHIR_JSON = 'application/fhir+json';

interface Guarded {
  readonly open: string;
  readonly closed: string;
  readonly smart: SmartSandbox;
  readonly fhir: FhirSandbox;
  close(): Promise<void>;
}

/** One sandbox FHIR server with two patients, mounted twice: open reads at /open, the default at /closed. */
async function startGuarded(): Promise<Guarded> {
  const config = loadConfig({});
  const logger = silentLogger();
  const app = express();
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const fhirBaseUrl = `${base}/open`;
  const smart = await createSmartSandbox({ publicBaseUrl: base, fhirBaseUrl, otherAudiences: [`${base}/closed`], clients: config.files.smartClients!, logger });
  const fhir = createFhirSandbox({ baseUrl: fhirBaseUrl, page: config.files.sandbox.fhir, maxRequestBytes: config.files.sandbox.fhir.maxRequestBytes, logger });
  for (const id of ['pa', 'pb']) {
    const r = await fhir.handle('PUT', `Patient/${id}`, { resourceType: 'Patient', id, gender: 'female', birthDate: '1950-01-01' } satisfies Patient);
    assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.body));
  }
  app.use('/open', smart.guard(fhir, config.files.sandbox.fhir.maxRequestBytes, { openReads: true }));
  app.use('/closed', smart.guard(fhir, config.files.sandbox.fhir.maxRequestBytes));
  return {
    open: fhirBaseUrl,
    closed: `${base}/closed`,
    smart,
    fhir,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function call(url: string, init: RequestInit = {}): Promise<{ status: number; body: unknown; text: string }> {
  const res = await fetch(url, { ...init, headers: { Accept: FHIR_JSON, ...(init.body ? { 'Content-Type': FHIR_JSON } : {}), ...(init.headers ?? {}) } });
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text };
}

const ids = (b: unknown): string[] => ((b as Bundle).entry ?? []).map((e) => e.resource?.id ?? '').sort();
const issueText = (b: unknown): string => (b as OperationOutcome).issue?.[0]?.details?.text ?? '';

describe('sandbox FHIR guard: open reads (SANDBOX_FHIR_OPEN)', () => {
  let g: Guarded;
  before(async () => {
    g = await startGuarded();
  });
  after(async () => g?.close());

  test('closed (the default): a token-less read and search are 401 with the how-to', async () => {
    for (const path of ['Patient/pa', 'Patient']) {
      const r = await call(`${g.closed}/${path}`);
      assert.equal(r.status, 401, path);
      assert.match(issueText(r.body), /needs a SMART access token/);
    }
  });

  test('open: token-less read, search, HEAD and POST _search answer 200', async () => {
    const read = await call(`${g.open}/Patient/pa`);
    assert.equal(read.status, 200, read.text);
    assert.equal((read.body as Patient).id, 'pa');
    const search = await call(`${g.open}/Patient?gender=female`);
    assert.equal(search.status, 200, search.text);
    assert.deepEqual(ids(search.body), ['pa', 'pb']);
    const head = await fetch(`${g.open}/Patient/pb`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    const posted = await fetch(`${g.open}/Patient/_search`, { method: 'POST', headers: { Accept: FHIR_JSON, 'Content-Type': 'application/x-www-form-urlencoded' }, body: '_id=pb' });
    assert.equal(posted.status, 200, await posted.clone().text());
    assert.deepEqual(ids(await posted.json()), ['pb']);
  });

  test('open: token-less writes are still 401 and change nothing', async () => {
    const patient: Patient = { resourceType: 'Patient', id: 'pa', gender: 'male' };
    const attempts: [string, string, unknown][] = [
      ['POST', 'Patient', { resourceType: 'Patient', gender: 'male' }],
      ['PUT', 'Patient/pa', patient],
      ['PATCH', 'Patient/pa', [{ op: 'replace', path: '/gender', value: 'male' }]],
      ['DELETE', 'Patient/pa', undefined],
      ['POST', '', { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'DELETE', url: 'Patient/pb' } }] }],
    ];
    for (const [method, path, body] of attempts) {
      const r = await call(`${g.open}/${path}`, { method, ...(body ? { body: JSON.stringify(body) } : {}) });
      assert.equal(r.status, 401, `${method} /${path}: ${r.text}`);
      assert.match(issueText(r.body), /Reads and searches are open \(SANDBOX_FHIR_OPEN=true\), but this request needs a SMART access token/);
    }
    const after = await g.fhir.handle('GET', 'Patient/pa');
    assert.equal((after.body as Patient).gender, 'female');
    assert.equal((await g.fhir.handle('GET', 'Patient/pb')).status, 200);
  });

  test('open: a request with a token is checked as before (invalid → 401, patient scope → own patient only)', async () => {
    const bad = await call(`${g.open}/Patient/pa`, { headers: { Authorization: 'Bearer not-a-token' } });
    assert.equal(bad.status, 401);
    assert.match(issueText(bad.body), /The access token was refused/);
    const malformed = await call(`${g.open}/Patient/pa`, { headers: { Authorization: 'Basic Zm9vOmJhcg==' } });
    assert.equal(malformed.status, 401, 'an Authorization header that is not a bearer token is not treated as "no token"');

    const { token } = await g.smart.issueAccessToken({ clientId: 'fracture-risk-app', scopes: ['patient/Patient.rs'], patient: 'pa' });
    const auth = { Authorization: `Bearer ${token}` };
    const own = await call(`${g.open}/Patient`, { headers: auth });
    assert.equal(own.status, 200, own.text);
    assert.deepEqual(ids(own.body), ['pa'], 'the search is confined to the token\'s patient');
    assert.equal((await call(`${g.open}/Patient/pb`, { headers: auth })).status, 403);

    const write = await call(`${g.open}/Patient/pa`, { method: 'PUT', headers: auth, body: JSON.stringify({ resourceType: 'Patient', id: 'pa', gender: 'male' }) });
    assert.equal(write.status, 403, 'a read-only token cannot write');
    const { token: writer } = await g.smart.issueAccessToken({ clientId: 'demo-backend', scopes: ['system/Patient.cu'] });
    const ok = await call(`${g.open}/Patient`, { method: 'POST', headers: { Authorization: `Bearer ${writer}` }, body: JSON.stringify({ resourceType: 'Patient', gender: 'other' }) });
    assert.equal(ok.status, 201, ok.text);
  });

  test('/metadata and the SMART configuration stay public in both modes', async () => {
    for (const base of [g.open, g.closed]) {
      assert.equal((await call(`${base}/metadata`)).status, 200);
      assert.equal((await call(`${base}/.well-known/smart-configuration`)).status, 200);
    }
  });
});

describe('npm start with SANDBOX_FHIR_OPEN=true (whole service, in process)', () => {
  let svc: WholeService;
  before(async () => {
    svc = await startWholeService({
      SANDBOX_FHIR_OPEN: 'true',
      SANDBOX_DATA_DIR: join(REPO_ROOT, 'test/fixtures/fhir-cohort'),
      MODELS_DIR: join(REPO_ROOT, 'test/fixtures/models'),
      IMAGING_WORKERS: '0',
    });
  });
  after(async () => svc?.close());

  test('/readyz lists the SANDBOX_FHIR_OPEN warning', async () => {
    const res = await fetch(`${svc.base}/readyz`);
    const body = (await res.json()) as { warnings?: { key: string; message: string }[] };
    const w = body.warnings?.find((x) => x.key === 'SANDBOX_FHIR_OPEN');
    assert.ok(w, JSON.stringify(body));
    assert.match(w.message, /WITHOUT an access token/);
  });

  test('a token-less search answers; a token-less create is refused', async () => {
    const search = await call(`${svc.base}/sandbox/fhir/Patient?_count=1`);
    assert.equal(search.status, 200, search.text);
    assert.equal((search.body as Bundle).type, 'searchset');
    const create = await call(`${svc.base}/sandbox/fhir/Patient`, { method: 'POST', body: JSON.stringify({ resourceType: 'Patient' }) });
    assert.equal(create.status, 401);
  });

  test('the CapabilityStatement keeps the SMART section but does not say reads need a token', async () => {
    const cs = (await call(`${svc.base}/sandbox/fhir/metadata`)).body as CapabilityStatement;
    const security = cs.rest?.[0]?.security;
    assert.ok(security?.extension?.some((e) => e.url.endsWith('/oauth-uris')), 'the oauth-uris still tell apps where to get a token');
    assert.match(security?.description ?? '', /^Reads and searches need no token/);
  });
});

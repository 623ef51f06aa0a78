import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { before, describe, test } from 'node:test';
import type { Express } from 'express';
import request from 'supertest';
import type { Bundle, BundleLink, CapabilityStatement, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { createApp } from '../../app.ts';
import { loadConfig, REPO_ROOT } from '../../config.ts';
import { createMetrics } from '../../health/metrics.ts';
import { Readiness } from '../../health/readiness.ts';
import { createLogger } from '../../logging.ts';
import { seedFhirSandbox } from '../seed.ts';
import { createFhirSandbox, jsonDeeperThan, MAX_JSON_DEPTH, type FhirSandbox } from './router.ts';

const BASE = 'http://localhost:8080/sandbox/fhir';
const FIXTURES = join(REPO_ROOT, 'test/fixtures/fhir-cohort/fhir');
let app: Express;
let sandbox: FhirSandbox;
const logs: string[] = [];

before(async () => {
  const config = loadConfig({});
  const logger = createLogger({
    level: 'info',
    destination: new Writable({
      write(c: Buffer, _e, cb) {
        logs.push(c.toString());
        cb();
      },
    }),
  });
  sandbox = createFhirSandbox({ baseUrl: config.fhir.publicBaseUrl, page: { defaultPageSize: 4, maxPageSize: 6 }, maxRequestBytes: 65536, logger });
  await seedFhirSandbox(sandbox.repo, { fhirDir: FIXTURES, dicomWebBaseUrl: config.dicomweb.publicBaseUrl, logger });
  app = createApp({ config, logger, readiness: new Readiness(), metrics: createMetrics(), sandboxes: { fhir: sandbox.router } });
});

const fhirJson = 'application/fhir+json';
const link = (b: Bundle, rel: string): string | undefined => b.link?.find((l: BundleLink) => l.relation === rel)?.url;
const rel = (url: string): string => url.slice('http://localhost:8080'.length);
const issueText = (o: OperationOutcome): string => (o.issue ?? []).map((i) => i.details?.text).join(' | ');

describe('sandbox FHIR: /metadata', () => {
  test('serves a valid R4 CapabilityStatement listing the resource types and their search parameters', async () => {
    const r = await request(app).get('/sandbox/fhir/metadata').expect(200).expect('Content-Type', /application\/fhir\+json/);
    const cs = JSON.parse(r.text) as CapabilityStatement;
    assert.equal(cs.resourceType, 'CapabilityStatement');
    assert.equal(cs.fhirVersion, '4.0.1');
    assert.equal(cs.implementation?.url, BASE);
    const imaging = cs.rest?.[0]?.resource?.find((x) => x.type === 'ImagingStudy');
    assert.ok(imaging?.searchParam?.some((p) => p.name === 'patient' && p.type === 'reference'));
    assert.ok(imaging?.interaction?.some((i) => i.code === 'search-type'));
    assert.doesNotThrow(() => sandbox.repo.validator.validate(cs));
  });
});

describe('sandbox FHIR: search', () => {
  test('a searchset has total, fullUrls with the public base, search.mode and self/first/next/last links', async () => {
    const r = await request(app).get('/sandbox/fhir/Patient?_count=3').expect(200);
    const b = JSON.parse(r.text) as Bundle<Patient>;
    assert.equal(b.type, 'searchset');
    assert.equal(b.total, 7);
    assert.equal(b.entry?.length, 3);
    for (const e of b.entry ?? []) {
      assert.equal(e.fullUrl, `${BASE}/Patient/${e.resource?.id}`);
      assert.equal(e.search?.mode, 'match');
    }
    assert.equal(link(b, 'self'), `${BASE}/Patient?_count=3&_offset=0`);
    assert.equal(link(b, 'next'), `${BASE}/Patient?_count=3&_offset=3`);
    assert.equal(link(b, 'last'), `${BASE}/Patient?_count=3&_offset=6`);
    assert.equal(link(b, 'previous'), undefined);
  });

  test('following next links visits every patient exactly once; the last page has previous but no next', async () => {
    const seen: string[] = [];
    let url: string | undefined = '/sandbox/fhir/Patient?_count=3&_sort=_id';
    let pages = 0;
    let last: Bundle | undefined;
    while (url) {
      const b = JSON.parse((await request(app).get(url).expect(200)).text) as Bundle<Patient>;
      seen.push(...(b.entry ?? []).map((e) => e.resource!.id!));
      last = b;
      const next = link(b, 'next');
      url = next ? rel(next) : undefined;
      assert.ok(++pages < 10);
    }
    assert.equal(pages, 3);
    assert.deepEqual(seen, ['fx-0001', 'fx-0002', 'fx-0003', 'fx-0004', 'fx-0005', 'fx-0006', 'fx-0007']);
    assert.equal(link(last!, 'previous'), `${BASE}/Patient?_sort=_id&_count=3&_offset=3`);
  });

  test('_count defaults and is capped (smart-config/sandbox.json); _summary=count gives the total only', async () => {
    let b = JSON.parse((await request(app).get('/sandbox/fhir/Patient').expect(200)).text) as Bundle;
    assert.equal(b.entry?.length, 4);
    b = JSON.parse((await request(app).get('/sandbox/fhir/Patient?_count=1000').expect(200)).text) as Bundle;
    assert.equal(b.entry?.length, 6);
    assert.equal(link(b, 'self'), `${BASE}/Patient?_count=6&_offset=0`);
    b = JSON.parse((await request(app).get('/sandbox/fhir/Patient?_summary=count').expect(200)).text) as Bundle;
    assert.equal(b.total, 7);
    assert.equal(b.entry, undefined);
    assert.equal(link(b, 'next'), undefined);
  });

  test('ImagingStudy?patient=<bare id> finds the study (Medplum quirk normalised), as does Patient/<id>', async () => {
    for (const q of ['patient=fx-0003', 'patient=Patient/fx-0003', 'subject=fx-0003', 'subject:Patient=fx-0003']) {
      const b = JSON.parse((await request(app).get(`/sandbox/fhir/ImagingStudy?${q}`).expect(200)).text) as Bundle;
      assert.equal(b.total, 1, q);
      assert.equal(b.entry?.[0]?.resource?.id, 'fx-0003-xr', q);
    }
  });

  test('token search on the MRN identifier and _include of the endpoint work', async () => {
    const mrn = encodeURIComponent('urn:frcds:synthetic-mrn|FX9000005');
    const p = JSON.parse((await request(app).get(`/sandbox/fhir/Patient?identifier=${mrn}`).expect(200)).text) as Bundle<Patient>;
    assert.deepEqual(p.entry?.map((e) => e.resource?.id), ['fx-0005']);
    const inc = JSON.parse((await request(app).get('/sandbox/fhir/ImagingStudy?patient=fx-0005&_include=ImagingStudy:endpoint').expect(200)).text) as Bundle;
    const ep = inc.entry?.find((e) => e.resource?.resourceType === 'Endpoint');
    assert.equal(ep?.search?.mode, 'include');
    assert.equal(ep?.fullUrl, `${BASE}/Endpoint/frcds-pacs`);
    assert.equal(inc.total, 1, 'total counts matches only');
    const rev = JSON.parse((await request(app).get('/sandbox/fhir/Patient?_id=fx-0005&_revinclude=DiagnosticReport:subject').expect(200)).text) as Bundle;
    assert.deepEqual(rev.entry?.map((e) => [e.resource?.resourceType, e.search?.mode]), [['Patient', 'match'], ['DiagnosticReport', 'include']]);
  });

  test('unknown parameters, bad _count, chaining and unknown types are rejected with OperationOutcomes', async () => {
    const cases: [string, number, RegExp][] = [
      ['/sandbox/fhir/Patient?colour=red', 400, /Unknown search parameter "colour" for Patient/],
      ['/sandbox/fhir/Patient?_count=-1', 400, /_count must be a non-negative integer/],
      ['/sandbox/fhir/Patient?_sort=shoe', 400, /Unknown sort parameter "shoe"/],
      ['/sandbox/fhir/Observation?subject.name=x', 400, /chained search/],
      ['/sandbox/fhir/Observation?subject:Medication=x', 400, /not a target type/],
      ['/sandbox/fhir/ImagingStudy?_include=Patient:link', 400, /does not start with the searched type/],
      ['/sandbox/fhir/ImagingStudy?_include=ImagingStudy:status', 400, /no reference search parameter "status"/],
      ['/sandbox/fhir/ImagingStudy?_include:iterate=ImagingStudy:endpoint', 400, /not supported/],
      ['/sandbox/fhir/Patient?_format=xml', 406, /JSON only/],
      ['/sandbox/fhir/Spaceship?x=1', 404, /Unknown resource type "Spaceship"/],
      ['/sandbox/fhir/Patient/does-not-exist', 404, /not found/],
      ['/sandbox/fhir', 400, /System-level/],
      ['/sandbox/fhir/Patient/fx-0001/$everything', 400, /Operations \(\$everything\) are not supported/],
    ];
    for (const [url, status, text] of cases) {
      const r = await request(app).get(url).expect(status).expect('Content-Type', /application\/fhir\+json/);
      const o = JSON.parse(r.text) as OperationOutcome;
      assert.equal(o.resourceType, 'OperationOutcome', url);
      assert.match(issueText(o), text, url);
    }
  });

  test('POST _search with a form body works like GET', async () => {
    const r = await request(app).post('/sandbox/fhir/ImagingStudy/_search').type('form').send({ patient: 'fx-0002' }).expect(200);
    assert.equal((JSON.parse(r.text) as Bundle).total, 1);
  });
});

describe('sandbox FHIR: create, read, update, delete', () => {
  test('create assigns an id and answers 201 with Location, ETag and the resource', async () => {
    const body = { resourceType: 'Patient', id: 'client-chosen', meta: { versionId: 'forged', lastUpdated: '2001-01-01T00:00:00Z' }, gender: 'male', birthDate: '1950-01-01' };
    const r = await request(app).post('/sandbox/fhir/Patient').set('Content-Type', fhirJson).send(JSON.stringify(body)).expect(201);
    const p = JSON.parse(r.text) as Patient;
    assert.notEqual(p.id, 'client-chosen');
    assert.notEqual(p.meta?.versionId, 'forged', 'versionId and lastUpdated are server-managed');
    assert.notEqual(p.meta?.lastUpdated, '2001-01-01T00:00:00Z');
    assert.equal(r.headers['location'], `${BASE}/Patient/${p.id}/_history/${p.meta?.versionId}`);
    assert.equal(r.headers['etag'], `W/"${p.meta?.versionId}"`);
    const read = await request(app).get(`/sandbox/fhir/Patient/${p.id}`).expect(200);
    assert.equal((JSON.parse(read.text) as Patient).birthDate, '1950-01-01');
    await request(app).delete(`/sandbox/fhir/Patient/${p.id}`).expect(200);
    await request(app).get(`/sandbox/fhir/Patient/${p.id}`).expect(404);
  });

  test('PUT creates (201 + Location) then updates (200) with a new version', async () => {
    const body = { resourceType: 'Patient', id: 'put-1', gender: 'female' };
    const c = await request(app).put('/sandbox/fhir/Patient/put-1').set('Content-Type', fhirJson).send(JSON.stringify(body)).expect(201);
    assert.match(c.headers['location'] ?? '', /\/sandbox\/fhir\/Patient\/put-1\/_history\//);
    const u = await request(app).put('/sandbox/fhir/Patient/put-1').set('Content-Type', fhirJson).send(JSON.stringify({ ...body, gender: 'other' })).expect(200);
    assert.notEqual(u.headers['etag'], c.headers['etag']);
    const mismatch = await request(app).put('/sandbox/fhir/Patient/put-2').set('Content-Type', fhirJson).send(JSON.stringify(body)).expect(400);
    assert.match(issueText(JSON.parse(mismatch.text) as OperationOutcome), /Incorrect resource ID/);
  });

  test('invalid resources are rejected with 400 and an OperationOutcome naming the element', async () => {
    const cases: [unknown, RegExp][] = [
      [{ resourceType: 'Patient', gender: 'bogus' }, /Patient\.gender must be one of "male", "female", "other", "unknown"/],
      [{ resourceType: 'Observation', status: 'final' }, /Observation\.code is required/],
      [{ resourceType: 'Patient', shoeSize: 44 }, /Patient\.shoeSize is not a property/],
      [{ resourceType: 'Patient', birthDate: '1950-13-45' }, /Patient\.birthDate/],
      [{ resourceType: 'Observation', status: 'bogus', code: { text: 'x' } }, /Observation\.status must be one of/],
    ];
    for (const [body, text] of cases) {
      const type = (body as { resourceType: string }).resourceType;
      const r = await request(app).post(`/sandbox/fhir/${type}`).set('Content-Type', fhirJson).send(JSON.stringify(body)).expect(400);
      const o = JSON.parse(r.text) as OperationOutcome;
      assert.equal(o.resourceType, 'OperationOutcome');
      assert.match(issueText(o), text);
      assert.ok(o.issue?.every((i) => i.severity === 'error'));
    }
    const total = (JSON.parse((await request(app).get('/sandbox/fhir/Patient?gender=other,unknown&_summary=count')).text) as Bundle).total;
    assert.equal(total, 1, 'only put-1 (gender other); no invalid patient was stored');
  });

  test('bad bodies: not JSON 400, wrong content type 415, too large 413, wrong type in body 400', async () => {
    let r = await request(app).post('/sandbox/fhir/Patient').set('Content-Type', fhirJson).send('{"resourceType":').expect(400);
    assert.match(issueText(JSON.parse(r.text) as OperationOutcome), /not valid JSON/);
    r = await request(app).post('/sandbox/fhir/Patient').set('Content-Type', 'text/plain').send('hello').expect(415);
    r = await request(app).post('/sandbox/fhir/Patient').set('Content-Type', fhirJson).send(JSON.stringify({ resourceType: 'Patient', text: { status: 'generated', div: 'x'.repeat(70000) } })).expect(413);
    r = await request(app).post('/sandbox/fhir/Patient').set('Content-Type', fhirJson).send(JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'x' } })).expect(400);
    assert.match(issueText(JSON.parse(r.text) as OperationOutcome), /Incorrect resource type/);
  });

  test('content negotiation and CORS', async () => {
    await request(app).get('/sandbox/fhir/metadata').set('Accept', 'application/fhir+xml').expect(406);
    await request(app).get('/sandbox/fhir/metadata').set('Accept', 'application/json').expect(200);
    const pre = await request(app).options('/sandbox/fhir/Patient').expect(204);
    assert.equal(pre.headers['access-control-allow-origin'], '*');
    assert.match(pre.headers['access-control-allow-headers'] ?? '', /Authorization/);
    await request(app).get('/sandbox/fhir/Patient/bad%20id!').expect(400);
  });
});

describe('sandbox FHIR: media types (R4 http.html#mime-type)', () => {
  const get = (path: string, accept?: string) => {
    const r = request(app).get(`/sandbox/fhir/${path}`);
    return accept === undefined ? r.unset('Accept') : r.set('Accept', accept);
  };
  const accepted: [string | undefined, RegExp][] = [
    ['application/fhir+json', /^application\/fhir\+json; charset=utf-8$/],
    ['application/fhir+json; fhirVersion=4.0', /^application\/fhir\+json; charset=utf-8$/],
    ['application/json', /^application\/fhir\+json; charset=utf-8$/],
    ['*/*', /^application\/fhir\+json; charset=utf-8$/],
    ['application/*', /^application\/fhir\+json; charset=utf-8$/],
    [undefined, /^application\/fhir\+json; charset=utf-8$/],
    ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', /^application\/fhir\+json; charset=utf-8$/],
    // The DSTU2 type is echoed only when it is the one FHIR type the client takes.
    ['application/json+fhir', /^application\/json\+fhir; charset=utf-8$/],
    ['application/json+fhir, application/fhir+json;q=0.5', /^application\/fhir\+json; charset=utf-8$/],
  ];
  for (const [accept, type] of accepted) {
    test(`Accept: ${accept ?? '(none)'} → 200, ${type.source}`, async () => {
      for (const path of ['metadata', 'Patient?_count=1', 'Patient/fx-0001']) {
        const r = await get(path, accept).expect(200);
        assert.match(r.headers['content-type'] ?? '', type, path);
        assert.match(r.headers['vary'] ?? '', /Accept/);
        assert.ok((JSON.parse(r.text) as { resourceType?: string }).resourceType, path);
      }
    });
  }

  const refused: [string, RegExp][] = [
    ['application/fhir+xml', /JSON only/],
    ['application/xml', /JSON only/],
    ['application/fhir+json; fhirVersion=3.0', /FHIR version 3\.0/],
    ['text/html', /JSON only/],
  ];
  for (const [accept, message] of refused) {
    test(`Accept: ${accept} → 406 OperationOutcome`, async () => {
      const r = await get('Patient?_count=1', accept).expect(406).expect('Content-Type', /application\/fhir\+json/);
      const o = JSON.parse(r.text) as OperationOutcome;
      assert.equal(o.resourceType, 'OperationOutcome');
      assert.equal(o.issue?.[0]?.code, 'not-supported');
      assert.match(issueText(o), message);
    });
  }

  test('_format (json spellings, unencoded + included) overrides Accept and is not a search parameter', async () => {
    const all = (JSON.parse((await get('Patient?_count=2&_sort=_id').expect(200)).text) as Bundle).entry?.map((e) => e.resource?.id);
    for (const [format, type] of [
      ['json', /^application\/fhir\+json/],
      ['application/json', /^application\/fhir\+json/],
      ['application%2Ffhir%2Bjson', /^application\/fhir\+json/],
      ['application/fhir+json', /^application\/fhir\+json/], // "+" unencoded arrives as a space
      ['application%2Fjson%2Bfhir', /^application\/json\+fhir/],
    ] as const) {
      const r = await get(`Patient?_count=2&_sort=_id&_format=${format}`, 'application/fhir+xml').expect(200);
      assert.match(r.headers['content-type'] ?? '', type, format);
      const b = JSON.parse(r.text) as Bundle;
      assert.deepEqual(b.entry?.map((e) => e.resource?.id), all, `${format}: same result as without _format`);
      assert.ok(!(link(b, 'next') ?? '').includes('_format'), 'paging links do not carry _format');
    }
    const read = await get('Patient/fx-0001?_format=json', 'application/xml').expect(200);
    assert.equal((JSON.parse(read.text) as Patient).id, 'fx-0001');
    await get('metadata?_format=application/fhir%2Bjson').expect(200);
  });

  test('_format for XML, Turtle or an unknown format → 406 OperationOutcome, even when Accept would allow JSON', async () => {
    for (const format of ['xml', 'application/fhir%2Bxml', 'text/xml', 'ttl', 'html', 'yaml']) {
      const r = await get(`Patient?_format=${format}`, 'application/fhir+json').expect(406);
      const o = JSON.parse(r.text) as OperationOutcome;
      assert.equal(o.resourceType, 'OperationOutcome');
      assert.match(issueText(o), /_format=/);
    }
  });

  test('POST _search: _format in the form body is honoured and not searched on', async () => {
    const r = await request(app).post('/sandbox/fhir/Patient/_search').type('form').send({ _id: 'fx-0001', _format: 'application/json+fhir' }).expect(200);
    assert.match(r.headers['content-type'] ?? '', /^application\/json\+fhir/);
    assert.deepEqual((JSON.parse(r.text) as Bundle).entry?.map((e) => e.resource?.id), ['fx-0001']);
    await request(app).post('/sandbox/fhir/Patient/_search').type('form').send({ _id: 'fx-0001', _format: 'xml' }).expect(406);
  });

  test('request bodies typed application/json+fhir or with fhirVersion=4.0 are read; another fhirVersion is a 415', async () => {
    const body = JSON.stringify({ resourceType: 'Patient', gender: 'female', birthDate: '1950-01-01' });
    for (const ct of ['application/json+fhir', 'application/fhir+json; fhirVersion=4.0', 'application/json; charset=utf-8']) {
      const r = await request(app).post('/sandbox/fhir/Patient').set('Content-Type', ct).send(body).expect(201);
      assert.equal((JSON.parse(r.text) as Patient).gender, 'female', ct);
    }
    const r = await request(app).post('/sandbox/fhir/Patient').set('Content-Type', 'application/fhir+json; fhirVersion=3.0').send(body).expect(415);
    assert.match(issueText(JSON.parse(r.text) as OperationOutcome), /FHIR version 3\.0/);
    await request(app).post('/sandbox/fhir/Patient').set('Content-Type', 'application/fhir+xml').send('<Patient xmlns="http://hl7.org/fhir"/>').expect(415);
  });
});

describe('sandbox FHIR: conditional interactions', () => {
  test('conditional update and delete use checked criteria; no criteria or a typo is a 400, several matches a 412', async () => {
    const put = (q: string, body: object) => request(app).put(`/sandbox/fhir/Patient${q}`).set('Content-Type', fhirJson).send(JSON.stringify(body));
    const created = await put('?identifier=urn:frcds:test|COND-1', { resourceType: 'Patient', identifier: [{ system: 'urn:frcds:test', value: 'COND-1' }], gender: 'male' }).expect(201);
    const id = (JSON.parse(created.text) as Patient).id;
    const updated = await put('?identifier=urn:frcds:test|COND-1', { resourceType: 'Patient', identifier: [{ system: 'urn:frcds:test', value: 'COND-1' }], gender: 'other' }).expect(200);
    assert.equal((JSON.parse(updated.text) as Patient).id, id);
    let r = await put('?identifer=urn:frcds:test|COND-1', { resourceType: 'Patient' }).expect(400);
    assert.match(issueText(JSON.parse(r.text) as OperationOutcome), /Unknown search parameter "identifer"/);
    r = await request(app).delete('/sandbox/fhir/Patient').expect(400);
    assert.match(issueText(JSON.parse(r.text) as OperationOutcome), /needs search criteria/);
    await request(app).delete('/sandbox/fhir/Patient?gender=female').expect(412);
    await request(app).delete(`/sandbox/fhir/Patient?identifier=${encodeURIComponent('urn:frcds:test|COND-1')}`).expect(200);
    await request(app).get(`/sandbox/fhir/Patient/${id}`).expect(404);
  });
});

describe('sandbox FHIR: transactions', () => {
  test('a transaction is atomic: one invalid entry rejects it and nothing is written', async () => {
    const tx = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: { resourceType: 'Patient', id: 'tx-1', gender: 'male' }, request: { method: 'PUT', url: 'Patient/tx-1' } },
        { resource: { resourceType: 'Patient', id: 'fx-0001', gender: 'male' }, request: { method: 'PUT', url: 'Patient/fx-0001' } },
        { resource: { resourceType: 'Observation', id: 'tx-obs', status: 'bogus', code: { text: 'x' } }, request: { method: 'PUT', url: 'Observation/tx-obs' } },
      ],
    };
    const r = await request(app).post('/sandbox/fhir').set('Content-Type', fhirJson).send(JSON.stringify(tx)).expect(400);
    assert.match(issueText(JSON.parse(r.text) as OperationOutcome), /Observation\.status/);
    await request(app).get('/sandbox/fhir/Patient/tx-1').expect(404);
    const fx1 = JSON.parse((await request(app).get('/sandbox/fhir/Patient/fx-0001').expect(200)).text) as Patient;
    assert.equal(fx1.gender, 'female', 'the update of an existing patient was rolled back');
    assert.equal(fx1.name?.[0]?.family, 'Synthetic-Abbott');
  });

  test('a valid transaction with urn:uuid references commits every entry; response locations are absolute', async () => {
    const tx = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:5f0c7d4e-1111-4a4a-9b9b-000000000001', resource: { resourceType: 'Patient', gender: 'female' }, request: { method: 'POST', url: 'Patient' } },
        {
          resource: { resourceType: 'Observation', status: 'final', code: { text: 'BMI' }, subject: { reference: 'urn:uuid:5f0c7d4e-1111-4a4a-9b9b-000000000001' } },
          request: { method: 'POST', url: 'Observation' },
        },
      ],
    };
    const r = await request(app).post('/sandbox/fhir').set('Content-Type', fhirJson).send(JSON.stringify(tx)).expect(200);
    const b = JSON.parse(r.text) as Bundle;
    assert.equal(b.type, 'transaction-response');
    const obs = b.entry?.[1]?.resource as { subject?: { reference?: string } } | undefined;
    const patientId = b.entry?.[0]?.resource?.id;
    assert.equal(obs?.subject?.reference, `Patient/${patientId}`);
    for (const e of b.entry ?? []) assert.match(e.response?.location ?? e.fullUrl ?? '', /^http:\/\/localhost:8080\/sandbox\/fhir\//);
  });

  test('POST to the base with something other than a Bundle is a 400', async () => {
    const r = await request(app).post('/sandbox/fhir').set('Content-Type', fhirJson).send(JSON.stringify({ resourceType: 'Patient' })).expect(400);
    assert.match(issueText(JSON.parse(r.text) as OperationOutcome), /batch or transaction Bundle/);
  });
});

describe('sandbox FHIR: over-deep bodies', () => {
  /**
   * A Patient whose extensions nest `levels` deep (each level is an object in an array), as a string (it is too deep
   * for JSON.stringify). Without `url`s (invalid, but compact enough for the test server's 64 KB body limit).
   */
  const deepPatient = (levels: number, url = ''): string => `{"resourceType":"Patient","extension":[${`{${url}"extension":[`.repeat(levels)}{"url":"urn:x","valueString":"end"}${']}'.repeat(levels)}]}`;

  test('a 3,000-deep resource is refused with 400 before the FHIR engine sees it; the answer names no internals', async () => {
    const transaction = `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Patient"},"resource":${deepPatient(3000)}}]}`;
    for (const [method, path, body] of [['post', '/sandbox/fhir/Patient', deepPatient(3000)], ['put', '/sandbox/fhir/Patient/deep-1', deepPatient(3000).replace('{"resourceType":"Patient",', '{"resourceType":"Patient","id":"deep-1",')], ['post', '/sandbox/fhir', transaction]] as const) {
      const r = await request(app)[method](path).set('Content-Type', fhirJson).send(body);
      assert.equal(r.status, 400, `${method} ${path}`);
      const o = JSON.parse(r.text) as OperationOutcome;
      assert.equal(o.resourceType, 'OperationOutcome');
      assert.match(issueText(o), /more than 100 levels deep/);
      assert.ok(!/call stack|RangeError|at [A-Za-z]+ \(/.test(r.text), `internal text in ${r.text}`);
    }
    await request(app).get('/sandbox/fhir/Patient/deep-1').expect(404);
  });

  test('ordinary nesting (40 levels of extensions) is still accepted', async () => {
    const r = await request(app).post('/sandbox/fhir/Patient').set('Content-Type', fhirJson).send(deepPatient(40, '"url":"urn:x",')).expect(201);
    await request(app).delete(`/sandbox/fhir/Patient/${(JSON.parse(r.text) as Patient).id}`).expect(200);
  });

  test('jsonDeeperThan counts objects and arrays without recursing', () => {
    assert.equal(jsonDeeperThan({ a: [1, { b: 2 }] }, 3), false);
    assert.equal(jsonDeeperThan({ a: [1, { b: [] }] }, 3), true);
    assert.equal(jsonDeeperThan('text', 0), false);
    let v: unknown = [];
    for (let i = 0; i < 200_000; i++) v = [v];
    assert.equal(jsonDeeperThan(v, MAX_JSON_DEPTH), true);
  });
});

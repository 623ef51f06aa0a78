/**
 * Demo EHR without a browser: the CDS client identity (JWT + JWKS over HTTP, verified with jose as a CDS service
 * would), prefetch template filling, card rendering and sanitising, and the server-rendered pages over the real
 * sandbox FHIR server seeded with the demo cohort. The full browser path (cards from the real CDS service, SMART
 * launch) is test/e2e/demo-ehr.test.ts.
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { startDemoStack, type DemoStack } from '../../../test/support/demo-stack.ts';
import { CardStore, renderCard, renderMarkdown, topicKey } from './cards.ts';
import { fillPrefetchTemplate } from './cds-client.ts';
import type { CdsCard } from './cds-types.ts';
import { createdWords, createDemoEhr, orderableStudies, type DemoEhr } from './router.ts';
import { freePort } from '../../../test/support/net.ts';
import { loadConfig } from '../../config.ts';
import { ehrAuthorization } from './mount.ts';

let stack: DemoStack;
let ehr: DemoEhr;
let server: Server;
let base = '';
let deadPort = 0;

before(async () => {
  stack = await startDemoStack();
  deadPort = await freePort(); // nothing listens here: the CDS service is "down"
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  ehr = await createDemoEhr({
    mountPath: '/sandbox/ehr',
    publicBaseUrl: base,
    fhirBaseUrl: stack.fhirBaseUrl,
    fhirPublicBaseUrl: stack.fhirBaseUrl,
    appLaunchUrl: `${base}/app/launch.html`,
    cdsServicesUrl: `http://127.0.0.1:${deadPort}/cds-services`,
    // The EHR's real identity: client_credentials of `demo-ehr` against the sandbox authorization server.
    auth: ehrAuthorization({ authBaseUrl: stack.authBaseUrl, clients: loadConfig({}).files.smartClients, timeoutMs: 5000 }, stack.smart),
    logger: stack.logger,
    hookTimeoutMs: 2000,
  });
  const app = express();
  app.use('/sandbox/ehr', ehr.router);
  server = await new Promise<Server>((r) => {
    const s = app.listen(port, '127.0.0.1', () => r(s));
  });
});

after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await stack.close();
});

describe('CDS client identity (CDS Hooks 2.0 §Trusting CDS Clients)', () => {
  test('the JWT verifies against the JWKS served at /sandbox/ehr/.well-known/jwks.json, with the required claims', async () => {
    const aud = `${base}/cds-services/fracture-risk-order-select`;
    const jwt = await ehr.signer.sign(aud);
    const header = decodeProtectedHeader(jwt);
    assert.equal(header.alg, 'ES384');
    assert.equal(header.typ, 'JWT');
    assert.equal(header.kid, ehr.signer.kid);
    const jwks = createRemoteJWKSet(new URL(`${base}/sandbox/ehr/.well-known/jwks.json`));
    const { payload } = await jwtVerify(jwt, jwks, { issuer: `${base}/sandbox/ehr`, audience: aud, algorithms: ['ES384'] });
    assert.equal(payload.exp! - payload.iat!, 300);
    assert.ok(payload.jti);
    assert.notEqual((await jwtVerify(await ehr.signer.sign(aud), jwks)).payload.jti, payload.jti, 'each JWT has its own jti');
    await assert.rejects(jwtVerify(jwt, jwks, { audience: `${base}/cds-services/other` }), 'aud is the exact URL called');
  });

  test('the JWKS has the public key only', async () => {
    const res = await fetch(`${base}/sandbox/ehr/.well-known/jwks.json`);
    assert.equal(res.status, 200);
    const jwks = (await res.json()) as { keys: Record<string, unknown>[] };
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0]!['crv'], 'P-384');
    assert.equal(jwks.keys[0]!['d'], undefined);
  });
});

describe('prefetch templates (2.0 tokens)', () => {
  const user = { userId: 'Practitioner/demo-clinician' };
  test('context tokens and user tokens are filled and encoded', () => {
    assert.equal(fillPrefetchTemplate('Patient/{{context.patientId}}', { patientId: 'demo-a-022' }, user), 'Patient/demo-a-022');
    assert.equal(fillPrefetchTemplate('ImagingStudy?patient={{context.patientId}}&started=ge2020-01-01', { patientId: 'a&b' }, user), 'ImagingStudy?patient=a%26b&started=ge2020-01-01');
    assert.equal(fillPrefetchTemplate('Practitioner/{{userPractitionerId}}', {}, user), 'Practitioner/demo-clinician');
  });
  test('a template the EHR cannot fill is left out (undefined): unknown token, nested path, non-primitive', () => {
    assert.equal(fillPrefetchTemplate('Encounter/{{context.encounterId}}', { patientId: 'x' }, user), undefined);
    assert.equal(fillPrefetchTemplate('X?y={{context.draftOrders.id}}', { draftOrders: { id: '1' } }, user), undefined);
    assert.equal(fillPrefetchTemplate('X?y={{context.draftOrders}}', { draftOrders: { id: '1' } }, user), undefined);
    assert.equal(fillPrefetchTemplate('Patient/{{userPatientId}}', {}, user), undefined);
  });
});

describe('card rendering', () => {
  const card: CdsCard = {
    uuid: 'c1',
    summary: 'High fracture risk — 10-year hip 14% (95% interval 10–19%) <b>bold?</b>',
    indicator: 'warning',
    detail: '**MOF** 28%\n\n<script>alert(1)</script>\n\nSee [click](javascript:alert(1)) and [model card](https://example.org/card) ![x](https://example.org/x.png)\n\n<img src=x onerror=alert(1)>',
    source: { label: 'Fracture Risk CDS', url: 'javascript:alert(2)' },
    selectionBehavior: 'any',
    suggestions: [{ label: 'Refer to fracture liaison service', uuid: 's1', isRecommended: true, actions: [] }, { label: 'Order DXA', uuid: 's2' }],
    overrideReasons: [{ system: 'http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes', code: 'patient-declined', display: 'Patient declined' }],
    links: [
      { label: 'Open the Fracture Risk app', url: 'https://x/app/launch.html', type: 'smart', appContext: '{"assessment":"a1"}' },
      { label: 'Model card', url: 'https://example.org/card', type: 'absolute' },
      { label: 'Bad', url: 'javascript:alert(3)', type: 'absolute' },
    ],
  };
  const out = renderCard(new CardStore().add('svc', 'p1', card)).value;

  test('raw HTML in summary and detail is escaped, unsafe URLs are dropped', () => {
    assert.doesNotMatch(out, /<script|<img src=x|<b>bold|href="javascript:/i);
    assert.match(out, /See click and /, 'a javascript: link keeps its text, loses its link');
    assert.match(out, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.match(out, /&lt;b&gt;bold\?&lt;\/b&gt;/);
    assert.match(renderMarkdown('**MOF** 28%').value, /<strong>MOF<\/strong> 28%/);
    assert.match(out, /<a href="https:\/\/example.org\/card" target="_blank" rel="noopener noreferrer">model card<\/a>/);
    assert.doesNotMatch(out, /<img[^>]+example\.org\/x\.png/, 'card images are not fetched when rendered');
  });

  test('indicator, recommended suggestion, SMART link button, absolute link, override reasons', () => {
    assert.match(out, /class="cds-card cds-card--warning"/);
    assert.match(out, />Warning</);
    assert.match(out, /class="btn btn--primary" data-action="accept" data-suggestion="0">Refer to fracture liaison service<span class="visually-hidden"> \(recommended\)/);
    assert.match(out, /data-action="accept" data-suggestion="1">Order DXA</);
    assert.match(out, /data-action="launch" data-link="0">Open the Fracture Risk app</);
    assert.match(out, /<li><a href="https:\/\/example.org\/card"[^>]*>Model card<\/a><\/li>/);
    assert.match(out, /<option value="0">Patient declined<\/option>/);
    assert.match(out, /Source: Fracture Risk CDS/);
  });

  test('a card carries its topic (source.topic, else the source label) so the page shows one card per topic', () => {
    const topic = { system: 'https://fracture-risk-cds.invalid/fhir/CodeSystem/frcds-card-topics', code: 'fracture-risk-10y' };
    assert.equal(topicKey({ ...card, source: { label: 'A', topic } }), `${topic.system}|fracture-risk-10y`);
    assert.equal(topicKey(card), 'source:Fracture Risk CDS');
    assert.match(renderCard(new CardStore().add('svc', 'p1', { ...card, source: { label: 'A', topic } })).value, /data-topic="https:\/\/fracture-risk-cds.invalid\/fhir\/CodeSystem\/frcds-card-topics\|fracture-risk-10y"/);
  });

  test('what an accepted suggestion created is said in words, not as a FHIR reference', () => {
    const said = createdWords({ resourceType: 'ServiceRequest', id: 'sr-1', status: 'draft', intent: 'order', subject: { reference: 'Patient/demo-a-022' }, code: { text: 'Referral to fracture liaison service' } });
    assert.equal(said, 'Referral to fracture liaison service created (draft, to sign)');
    assert.doesNotMatch(said, /ServiceRequest\/|Patient\//);
  });
});

describe('pages over the sandbox FHIR server', () => {
  test('the patient list shows demo patients and searches by name and by MRN', async () => {
    const all = await (await fetch(`${base}/sandbox/ehr/`)).text();
    assert.match(all, /55 patients/); // 50 hip-radiograph and 5 CT demo patients
    assert.match(all, /href="\/sandbox\/ehr\/patients\/demo-a-001"/);
    assert.match(all, /rel="next"/);
    const byMrn = await (await fetch(`${base}/sandbox/ehr/?q=DEMOA0022`)).text();
    assert.match(byMrn, /1 patient\b/);
    assert.match(byMrn, /Synthetic-Khan/);
    const byName = await (await fetch(`${base}/sandbox/ehr/?q=Synthetic-Khan`)).text();
    assert.match(byName, /demo-a-022/);
  });

  test('the chart of demo-a-022 shows demographics, problems, the hip radiograph and the order form from the ValueSet', async () => {
    const res = await fetch(`${base}/sandbox/ehr/patients/demo-a-022`);
    assert.equal(res.status, 200);
    const page = await res.text();
    assert.match(page, /<h1 class="banner__name">Wei Synthetic-Khan<\/h1>/);
    assert.match(page, /DEMOA0022/);
    assert.match(page, /XR hip left AP/);
    assert.match(page, /id="problems"[\s\S]*?<span class="count">3<\/span>/);
    for (const s of orderableStudies()) assert.ok(page.includes(s.display), s.display);
    assert.match(page, /Research use — trained on synthetic data/);
    const data = /<script type="application\/json" id="page-data">([^<]*)<\/script>/.exec(page)?.[1];
    assert.deepEqual(JSON.parse(data ?? 'null'), { patientId: 'demo-a-022', base: '/sandbox/ehr' }, 'the browser script’s page data is valid JSON');
  });

  test('an unknown patient is a 404 page', async () => {
    assert.equal((await fetch(`${base}/sandbox/ehr/patients/nobody-here`)).status, 404);
  });

  test('with the CDS service down, the hook answers with a notice and no cards (the chart still works)', async () => {
    const res = await fetch(`${base}/sandbox/ehr/api/patients/demo-a-022/patient-view`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { cards: number; html: string };
    assert.equal(body.cards, 0);
    assert.match(body.html, /Decision support is unavailable \(discovery failed/);
  });

  test('the API refuses non-JSON posts (no cross-site form posts)', async () => {
    const res = await fetch(`${base}/sandbox/ehr/api/patients/demo-a-022/patient-view`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'a=1' });
    assert.equal(res.status, 415);
  });

  test('the browser script and stylesheet are served', async () => {
    const js = await fetch(`${base}/sandbox/ehr/assets/ehr.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    assert.ok((await js.text()).length > 1000);
    assert.equal((await fetch(`${base}/sandbox/ehr/assets/ehr.css`)).status, 200);
  });
});

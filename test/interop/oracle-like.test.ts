/**
 * Interoperability with an Oracle Health-like EHR ("jku-jsonfhir", test/support/foreign-ehr/oracle-like.ts): CDS
 * JWTs naming an unreachable `jku` (the service has the key pinned), orders coded in the tenant's order catalogue
 * (code set 200, mapped by a site ConceptMap in `ORDER_CODE_MAPS_DIR`), FHIR answers in `application/json+fhir`,
 * partial prefetch, an authorization server on another origin (`connectSrc`), ES384 JWT access tokens.
 * Four tenants, four ways the service checks the app's tokens: `jwks` with the key pinned and no `aud` check
 * (browser), RFC 7662 introspection with a `private_key_jwt` client assertion (browser), introspection with
 * `client_secret_post` (HTTP), and `fhir-delegated` against the `application/json+fhir` server (HTTP). Screenshots: test/artifacts/interop-jku-jsonfhir-*.png.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { Card } from '../../server/cds/types.ts';
import { ORACLE_HIP_XRAY_CODE, ORACLE_LIKE, ORACLE_ORDER_SYSTEM } from '../support/foreign-ehr/oracle-like.ts';
import { siteOrderCodeMap } from '../support/foreign-ehr/service-config.ts';
import { apiAssessment, assertAssessed, cardFace, demoEhrOrderSelectCard, foreignHeaders, launchFromCard, LOINC_HIP_XRAY, onlyCard, OTHER_PATIENT, PATIENT, startInterop, tokenOverHttp, type InteropRun, type LaunchedApp } from './steps.ts';

let run: InteropRun;
let card: Card;

before(async () => {
  run = await startInterop(ORACLE_LIKE, {
    siteMaps: [siteOrderCodeMap('oracle-like-order-catalogue', ORACLE_ORDER_SYSTEM, { [ORACLE_HIP_XRAY_CODE]: { display: 'XR Hip Left 1 View', category: 'hip-xray' } })],
  });
});

after(async () => {
  await run?.close();
});

describe('Oracle Health-like EHR: CDS Hooks', () => {
  test('discovery: the JWT names a jku nobody answers at, and the service uses the pinned key', async () => {
    const token = await run.ehr.cdsJwt(`${run.base}/cds-services`);
    const jku = decodeProtectedHeader(token).jku;
    assert.ok(jku && jku === run.ehr.cdsJku);
    await assert.rejects(fetch(jku, { signal: AbortSignal.timeout(2000) }), 'the jku URL is unreachable');
    const { status, services } = await run.ehr.discover();
    assert.equal(status, 200);
    assert.equal(services.length, 3);
  });

  test('order-select with a code-set-200 order gets the card the demo EHR gets for LOINC 26401-0', async () => {
    const demo = await demoEhrOrderSelectCard(run.base, PATIENT);
    const r = await run.ehr.callHook('order-select', PATIENT);
    const order = ((r.request!['context'] as { draftOrders: { entry: { resource: { code: { coding: { system: string; code: string }[] } } }[] } }).draftOrders.entry[0]!.resource.code.coding);
    assert.deepEqual(order.map((c) => `${c.system}|${c.code}`), [`${ORACLE_ORDER_SYSTEM}|${ORACLE_HIP_XRAY_CODE}`], 'the order carries the local code only');
    card = onlyCard(r, run.base);
    assert.equal(card.summary, demo.summary);
    assert.equal(card.indicator, demo.indicator);
    const loinc = onlyCard(await run.ehr.callHook('order-select', PATIENT, { order: LOINC_HIP_XRAY }), run.base);
    assert.deepEqual(cardFace(card), cardFace(loinc));
  });

  test('partial prefetch: the service read the rest from the EHR\'s application/json+fhir server', () => {
    const byService = run.ehr.fhirLog.filter((r) => r.caller === ORACLE_LIKE.cds.clientId && r.status === 200);
    // The EHR's own prefetch reads (Patient, Condition) carry its Accept: application/json+fhir.
    assert.ok(byService.some((r) => r.url.startsWith('/Condition') && r.accept === 'application/json+fhir'), 'the EHR prefetched with Accept: application/json+fhir');
    const fetchedByService = byService.filter((r) => /^\/(ImagingStudy|Observation|MedicationRequest)\?/.test(r.url));
    assert.ok(fetchedByService.length >= 3, `the service fetched what was not prefetched (${byService.map((r) => r.url).join(', ')})`);
    assert.ok(fetchedByService.every((r) => (r.contentType ?? '').startsWith('application/json+fhir')), 'and got application/json+fhir answers');
  });

  test('order-sign right after order-select: no second copy of the card', async () => {
    const sign = await run.ehr.callHook('order-sign', PATIENT);
    assert.equal(sign.status, 200);
    assert.deepEqual((sign.body as { cards: unknown[] }).cards, [], 'the same risk is not shown twice on one order screen');
  });

  test('a CDS JWT signed with another key (same kid, same jku) is refused', async () => {
    const { generateKeyPair, SignJWT } = await import('jose');
    const { privateKey } = await generateKeyPair('ES384');
    const genuine = await run.ehr.cdsJwt(`${run.base}/cds-services`);
    const header = decodeProtectedHeader(genuine);
    const claims = decodeJwt(genuine);
    const forged = await new SignJWT({ ...claims, jti: `${claims.jti}-forged` }).setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: header.kid!, jku: header.jku! }).sign(privateKey);
    const res = await fetch(`${run.base}/cds-services`, { headers: { Authorization: `Bearer ${forged}` } });
    assert.equal(res.status, 401);
  });
});

describe('Oracle Health-like EHR: SMART app, tenant with jwks (pinned key, no aud check)', () => {
  let app: LaunchedApp;
  before(async () => {
    app = await launchFromCard(run, card, { tenant: 'jwks', screenshotName: 'interop-jku-jsonfhir-jwks' });
  });
  after(async () => {
    await app?.context.close();
  });

  test('the app authorised on the EHR\'s separate authorization origin and shows the risk, curve and heatmap', async () => {
    assert.notEqual(run.ehr.authOrigin, run.ehr.fhirOrigin);
    const csp = (await fetch(`${run.base}/app/index.html`)).headers.get('content-security-policy') ?? '';
    const connect = /connect-src ([^;]*)/.exec(csp)?.[1]?.split(' ') ?? [];
    assert.ok(connect.includes(run.ehr.authOrigin) && connect.includes(run.ehr.fhirOrigin), `connect-src names the EHR's origins: ${csp}`);
    assert.deepEqual(app.problems.filter((p) => !/favicon/.test(p)), []);
  });

  test('the token is an ES384 JWT checked with the pinned key: the JWKS URL was never fetched', async () => {
    assert.equal(decodeProtectedHeader(app.token).alg, 'ES384');
    assert.equal(decodeJwt(app.token).patient, PATIENT);
    assertAssessed(await apiAssessment(run.base, app.token, PATIENT, foreignHeaders(run.ehr.fhirBase('jwks'), PATIENT)));
    assert.equal(run.ehr.jwksFetches('jwks'), 0, 'pinned keys are used before jwksUri');
  });

  test('a token for another patient is refused by /api/assessments', async () => {
    const r = await apiAssessment(run.base, app.token, OTHER_PATIENT, foreignHeaders(run.ehr.fhirBase('jwks'), PATIENT));
    assert.equal(r.status, 403, JSON.stringify(r.body));
    // X-SMART-Patient does not widen a JWT limited by its claims.
    const claimed = await apiAssessment(run.base, app.token, OTHER_PATIENT, foreignHeaders(run.ehr.fhirBase('jwks'), OTHER_PATIENT));
    assert.equal(claimed.status, 403, JSON.stringify(claimed.body));
  });

  test('the same token presented for another tenant\'s FHIR base is refused', async () => {
    const r = await apiAssessment(run.base, app.token, PATIENT, foreignHeaders(run.ehr.fhirBase('introspect-key'), PATIENT));
    assert.equal(r.status, 401, JSON.stringify(r.body));
  });
});

describe('Oracle Health-like EHR: SMART app, tenant with introspection (private_key_jwt)', () => {
  let app: LaunchedApp;
  let seenBefore = 0;
  before(async () => {
    seenBefore = run.ehr.introspections.length;
    const c = onlyCard(await run.ehr.callHook('order-select', PATIENT, { tenant: 'introspect-key' }), run.base);
    app = await launchFromCard(run, c, { tenant: 'introspect-key', screenshotName: 'interop-jku-jsonfhir-introspection' });
  });
  after(async () => {
    await app?.context.close();
  });

  test('the service introspected the app\'s token with an RFC 7523 client assertion', () => {
    const calls = run.ehr.introspections.slice(seenBefore).filter((r) => r.tenant === 'introspect-key');
    assert.ok(calls.length > 0, 'the introspection endpoint was called');
    assert.deepEqual([...new Set(calls.map((c) => `${c.clientAuth}:${c.accepted}:${c.active}`))], ['private_key_jwt:true:true']);
    assert.deepEqual(app.problems.filter((p) => !/favicon/.test(p)), []);
  });

  test('a token for another patient is refused by /api/assessments', async () => {
    const r = await apiAssessment(run.base, app.token, OTHER_PATIENT, foreignHeaders(run.ehr.fhirBase('introspect-key'), PATIENT));
    assert.equal(r.status, 403, JSON.stringify(r.body));
  });
});

describe('Oracle Health-like EHR: tenant with introspection (client_secret_post), over HTTP', () => {
  test('a token from the EHR\'s authorization server is accepted for its patient and refused for another', async () => {
    const tr = await tokenOverHttp(run, PATIENT, 'introspect-secret');
    const token = String(tr['access_token']);
    const base = run.ehr.fhirBase('introspect-secret');
    assertAssessed(await apiAssessment(run.base, token, PATIENT, foreignHeaders(base, PATIENT)));
    assert.equal((await apiAssessment(run.base, token, OTHER_PATIENT, foreignHeaders(base, PATIENT))).status, 403);
    const calls = run.ehr.introspections.filter((r) => r.tenant === 'introspect-secret');
    assert.ok(calls.length > 0 && calls.every((c) => c.clientAuth === 'client_secret_post' && c.accepted), JSON.stringify(calls));
  });

  test('a token the EHR does not know is refused (introspection says inactive)', async () => {
    const r = await apiAssessment(run.base, 'not-a-token-of-this-ehr', PATIENT, foreignHeaders(run.ehr.fhirBase('introspect-secret'), PATIENT));
    assert.equal(r.status, 401, JSON.stringify(r.body));
  });
});

describe('Oracle Health-like EHR: tenant with fhir-delegated checks against application/json+fhir, over HTTP', () => {
  test('the token is checked by reading Patient/{id} (answered as application/json+fhir) and limited to that patient', async () => {
    const tr = await tokenOverHttp(run, PATIENT, 'delegated');
    const token = String(tr['access_token']);
    const base = run.ehr.fhirBase('delegated');
    assertAssessed(await apiAssessment(run.base, token, PATIENT, foreignHeaders(base, PATIENT)));
    const read = run.ehr.fhirLog.filter((r) => r.tenant === 'delegated' && r.url === `/Patient/${PATIENT}` && r.status === 200);
    assert.ok(read.length > 0 && read.every((r) => (r.contentType ?? '').startsWith('application/json+fhir')), JSON.stringify(read));
    assert.equal((await apiAssessment(run.base, token, OTHER_PATIENT, foreignHeaders(base, PATIENT))).status, 403);
    assert.equal((await apiAssessment(run.base, token, OTHER_PATIENT, foreignHeaders(base, OTHER_PATIENT))).status, 401);
  });
});

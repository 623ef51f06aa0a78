/**
 * Interoperability with a smart-launcher-v2-like development launcher and a CDS Hooks sandbox-like client
 * ("hs256-launcher", test/support/foreign-ehr/launcher-like.ts): ES384 CDS JWTs without `jku` (key by the
 * registered `jwksUrl`), SNOMED CT orders, every prefetch key filled, base64url launch ids, HS256 access tokens
 * without `iss`/`aud`. Two launcher URLs, two ways the service checks the app's tokens: `hs256` with the shared
 * secret (`API_TOKEN_ALLOW_HS256=true`; tokens carrying their context) and RFC 7662 introspection authorised by the
 * token itself (`clientAuth: bearer-token`; tokens shaped as smart-launcher-v2 signs them: the patient nested in
 * `context`, no `sub`).
 * Screenshots: test/artifacts/interop-hs256-launcher-*.png.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { PREFETCH } from '../../server/cds/services.ts';
import type { Card } from '../../server/cds/types.ts';
import { LAUNCHER_LIKE } from '../support/foreign-ehr/launcher-like.ts';
import { apiAssessment, assertAssessed, cardFace, demoEhrOrderSelectCard, foreignHeaders, launchFromCard, LOINC_HIP_XRAY, onlyCard, OTHER_PATIENT, PATIENT, startInterop, type InteropRun, type LaunchedApp } from './steps.ts';

let run: InteropRun;
let card: Card;

before(async () => {
  run = await startInterop(LAUNCHER_LIKE);
});

after(async () => {
  await run?.close();
});

describe('launcher-like EHR: CDS Hooks', () => {
  test('discovery: ES384 JWT without jku, key found at the registered jwksUrl', async () => {
    const token = await run.ehr.cdsJwt(`${run.base}/cds-services`);
    assert.equal(decodeProtectedHeader(token).alg, 'ES384');
    assert.equal(decodeProtectedHeader(token).jku, undefined);
    assert.equal(run.ehr.cdsClientEntry()['jwksUrl'], run.ehr.cdsJwksUrl);
    const { status, services } = await run.ehr.discover();
    assert.equal(status, 200);
    assert.equal(services.length, 3);
  });

  test('order-select with a SNOMED CT order and full prefetch gets the card the demo EHR gets for LOINC 26401-0', async () => {
    const demo = await demoEhrOrderSelectCard(run.base, PATIENT);
    const before = run.ehr.fhirLog.length;
    const r = await run.ehr.callHook('order-select', PATIENT);
    card = onlyCard(r, run.base);
    assert.equal(card.summary, demo.summary);
    assert.equal(card.indicator, demo.indicator);
    // Every template was filled by the EHR: the FHIR reads during the call are its own prefetch queries, one each.
    const prefetch = r.request!['prefetch'] as Record<string, unknown>;
    const templates = Object.keys(PREFETCH).length;
    assert.equal(Object.keys(prefetch).length, templates);
    assert.equal(run.ehr.fhirLog.length - before, templates, 'no FHIR read beyond the prefetch');
    const loinc = onlyCard(await run.ehr.callHook('order-select', PATIENT, { order: LOINC_HIP_XRAY }), run.base);
    assert.deepEqual(cardFace(card), cardFace(loinc));
  });

  test('order-sign right after order-select: no second copy of the card', async () => {
    const sign = await run.ehr.callHook('order-sign', PATIENT);
    assert.equal(sign.status, 200);
    assert.deepEqual((sign.body as { cards: unknown[] }).cards, [], 'the same risk is not shown twice on one order screen');
  });

  test('the launcher\'s FHIR answers point at itself, never at the sandbox', async () => {
    const token = await run.ehr.issueToken(PATIENT, { tenant: 'plain' });
    const res = await fetch(`${run.ehr.fhirBase('plain')}/ImagingStudy?patient=${PATIENT}`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(!text.includes(`${run.base}/sandbox/fhir`), 'no sandbox FHIR URL in the answer');
    assert.ok(text.includes(run.ehr.fhirBase('plain')), 'full URLs name the launcher');
  });
});

describe('launcher-like EHR: SMART app with hs256 tokens (sim-claims)', () => {
  let app: LaunchedApp;
  before(async () => {
    const c = onlyCard(await run.ehr.callHook('order-select', PATIENT, { tenant: 'sim-claims' }), run.base);
    app = await launchFromCard(run, c, { tenant: 'sim-claims', screenshotName: 'interop-hs256-launcher-hs256' });
  });
  after(async () => {
    await app?.context.close();
  });

  test('the app holds an HS256 token without iss or aud and shows the risk, curve and heatmap', () => {
    assert.equal(decodeProtectedHeader(app.token).alg, 'HS256');
    const claims = decodeJwt(app.token);
    assert.equal(claims.iss, undefined);
    assert.equal(claims.aud, undefined);
    assert.equal(claims['patient'], PATIENT);
    assert.deepEqual(app.problems.filter((p) => !/favicon/.test(p)), []);
  });

  test('a token for another patient is refused by /api/assessments', async () => {
    const base = run.ehr.fhirBase('sim-claims');
    assertAssessed(await apiAssessment(run.base, app.token, PATIENT, foreignHeaders(base, PATIENT)));
    const r = await apiAssessment(run.base, app.token, OTHER_PATIENT, foreignHeaders(base, PATIENT));
    assert.equal(r.status, 403, JSON.stringify(r.body));
    const claimed = await apiAssessment(run.base, app.token, OTHER_PATIENT, foreignHeaders(base, OTHER_PATIENT));
    assert.equal(claimed.status, 403, 'X-SMART-Patient does not widen a token limited by its claims');
  });

  test('a token shaped as smart-launcher-v2 signs it (patient only inside `context`, no sub) is not accepted for another patient', async () => {
    const shaped = await run.ehr.issueToken(PATIENT, { tenant: 'sim-claims', context: 'launcher-v2' });
    const claims = decodeJwt(shaped);
    assert.deepEqual(Object.keys(claims).sort(), ['client_id', 'context', 'exp', 'fhirUser', 'iat', 'scope']);
    assert.deepEqual(claims['context'], { patient: PATIENT, need_patient_banner: false });
    const r = await apiAssessment(run.base, shaped, OTHER_PATIENT, foreignHeaders(run.ehr.fhirBase('sim-claims'), PATIENT));
    assert.ok(r.status === 401 || r.status === 403, `a token for ${PATIENT} asking about ${OTHER_PATIENT}: expected 401/403, got ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
  });

  test('an HS256 token signed with another secret is refused', async () => {
    const { SignJWT } = await import('jose');
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({ sub: 'x', patient: PATIENT, scope: 'patient/*.rs' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(now).setExpirationTime(now + 300).sign(new TextEncoder().encode('not-the-launcher-secret-0123456789'));
    assert.equal((await apiAssessment(run.base, forged, PATIENT, foreignHeaders(run.ehr.fhirBase('sim-claims'), PATIENT))).status, 401);
  });

  test('/readyz warns that an hs256 server is trusted', async () => {
    const body = JSON.stringify(await (await fetch(`${run.base}/readyz`)).json());
    assert.match(body, /hs256/i);
  });
});

describe('launcher-like EHR: SMART app with introspection authorised by the token (plain)', () => {
  let app: LaunchedApp;
  let seenBefore = 0;
  before(async () => {
    seenBefore = run.ehr.introspections.length;
    const c = onlyCard(await run.ehr.callHook('order-select', PATIENT, { tenant: 'plain' }), run.base);
    app = await launchFromCard(run, c, { tenant: 'plain', screenshotName: 'interop-hs256-launcher-introspection' });
  });
  after(async () => {
    await app?.context.close();
  });

  test('the app\'s token has its patient only inside `context`; the introspection answer has it, and the app shows the risk', () => {
    const claims = decodeJwt(app.token);
    assert.equal(claims['patient'], undefined);
    assert.equal(claims.sub, undefined);
    assert.deepEqual(claims['context'], { patient: PATIENT, need_patient_banner: false });
    const calls = run.ehr.introspections.slice(seenBefore).filter((r) => r.tenant === 'plain');
    assert.ok(calls.length > 0 && calls.every((c) => c.clientAuth === 'bearer-token' && c.accepted && c.active), JSON.stringify(calls));
    assert.deepEqual(app.problems.filter((p) => !/favicon/.test(p)), []);
  });

  test('a token for another patient is refused by /api/assessments', async () => {
    const base = run.ehr.fhirBase('plain');
    const r = await apiAssessment(run.base, app.token, OTHER_PATIENT, foreignHeaders(base, PATIENT));
    assert.equal(r.status, 403, JSON.stringify(r.body));
    const claimed = await apiAssessment(run.base, app.token, OTHER_PATIENT, foreignHeaders(base, OTHER_PATIENT));
    assert.equal(claimed.status, 403, 'the introspected patient, not the header, limits the token');
  });
});

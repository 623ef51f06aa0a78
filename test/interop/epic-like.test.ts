/**
 * Interoperability with an Epic-like EHR ("cpt-opaque", test/support/foreign-ehr/epic-like.ts): RS384 CDS JWTs with
 * `jku`, `sub` and `nbf`; orders coded in CPT only; no prefetch (the service reads the chart with the EHR's opaque
 * `fhirAuthorization` token); the SMART app launched from the card through the EHR's own authorization server, its
 * opaque token checked by the service against the EHR's FHIR server (`fhir-delegated`).
 * The whole service runs in-process (startWholeService) with `SANDBOX_FHIR_OPEN=true`, configured the way a site
 * would for this EHR (test/support/foreign-ehr/service-config.ts). Screenshot: test/artifacts/interop-cpt-opaque.png.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { Card } from '../../server/cds/types.ts';
import { EPIC_LIKE } from '../support/foreign-ehr/epic-like.ts';
import { apiAssessment, assertAssessed, cardFace, demoEhrOrderSelectCard, foreignHeaders, launchFromCard, LOINC_HIP_XRAY, onlyCard, OTHER_PATIENT, PATIENT, smartLink, startInterop, type InteropRun, type LaunchedApp } from './steps.ts';

let run: InteropRun;

before(async () => {
  run = await startInterop(EPIC_LIKE);
});

after(async () => {
  await run?.close();
});

describe('Epic-like EHR: CDS Hooks', () => {
  let cptCard: Card;

  test('discovery answers the EHR\'s RS384 JWT (jku, sub, nbf) with the three services', async () => {
    const { status, services } = await run.ehr.discover();
    assert.equal(status, 200);
    assert.deepEqual(services.map((s) => s.hook).sort(), ['order-select', 'order-sign', 'patient-view']);
    // The JWT is shaped as the convention says, so the service accepted that shape and not a friendlier one.
    const token = await run.ehr.cdsJwt(`${run.base}/cds-services`);
    const header = decodeProtectedHeader(token);
    const claims = decodeJwt(token);
    assert.equal(header.alg, 'RS384');
    assert.equal(header.jku, run.ehr.cdsJwksUrl);
    assert.equal(claims.iss, run.ehr.fhirBase());
    assert.equal(claims.sub, EPIC_LIKE.cds.clientId);
    assert.equal(claims.nbf, claims.iat! - 300);
    const entry = run.ehr.cdsClientEntry();
    assert.deepEqual(entry['jkuAllowlist'], [run.ehr.cdsJwksUrl]);
  });

  test('order-select with a CPT-only order (73502) gets the card the demo EHR gets for LOINC 26401-0', async () => {
    const demo = await demoEhrOrderSelectCard(run.base, PATIENT);
    cptCard = onlyCard(await run.ehr.callHook('order-select', PATIENT), run.base);
    assert.equal(cptCard.summary, demo.summary, 'same summary as the demo EHR path');
    assert.equal(cptCard.indicator, demo.indicator);
    const loincCard = onlyCard(await run.ehr.callHook('order-select', PATIENT, { order: LOINC_HIP_XRAY }), run.base);
    assert.deepEqual(cardFace(cptCard), cardFace(loincCard), 'the CPT order and the LOINC order get the same card');
    smartLink(cptCard, run.base);
  });

  test('without prefetch, the service read the chart from the EHR\'s FHIR server with the EHR\'s patient-limited token', () => {
    const calls = run.ehr.fhirLog.filter((r) => r.caller === EPIC_LIKE.cds.clientId);
    const types = new Set(calls.map((r) => /^\/([A-Za-z]+)/.exec(r.url)?.[1]));
    for (const t of ['Patient', 'ImagingStudy', 'Observation', 'Condition', 'MedicationRequest']) assert.ok(types.has(t), `the service read ${t} from the EHR (saw ${[...types].join(', ')})`);
    assert.deepEqual(calls.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.url}`), [], 'every read was allowed by the EHR');
    assert.ok(calls.every((r) => r.url.includes(PATIENT)), 'every read named the hook\'s patient');
  });

  test('order-sign with the CPT order right after order-select: no second copy of the card', async () => {
    const sign = await run.ehr.callHook('order-sign', PATIENT);
    assert.equal(sign.status, 200);
    assert.deepEqual((sign.body as { cards: unknown[] }).cards, [], 'the same risk is not shown twice on one order screen');
  });
});

describe('Epic-like EHR: SMART app launched from the card (fhir-delegated token check)', () => {
  let app: LaunchedApp;

  before(async () => {
    const card = onlyCard(await run.ehr.callHook('order-select', PATIENT), run.base);
    app = await launchFromCard(run, card, { screenshotName: 'interop-cpt-opaque' });
  });

  after(async () => {
    await app?.context.close();
  });

  test('the app got an opaque token from the EHR and shows the risk, the curve and the heatmap', () => {
    assert.doesNotMatch(app.token, /^ey[A-Za-z0-9_-]+\./, 'the EHR issues opaque tokens, not JWTs');
    assert.deepEqual(app.problems.filter((p) => !/favicon/.test(p)), [], 'no CSP violation, page error or failed request');
  });

  test('the service checked the app\'s token by reading Patient/{id} at the EHR with it', () => {
    const reads = run.ehr.fhirLog.filter((r) => r.url === `/Patient/${PATIENT}` && r.caller !== EPIC_LIKE.cds.clientId && r.status === 200);
    assert.ok(reads.some((r) => (r.accept ?? '').includes('application/fhir+json')), `the delegated check read Patient/${PATIENT} (${JSON.stringify(reads)})`);
  });

  test('the app\'s token, for this patient, works with X-FHIR-Server and X-SMART-Patient', async () => {
    assertAssessed(await apiAssessment(run.base, app.token, PATIENT, foreignHeaders(run.ehr.fhirBase(), PATIENT)));
  });

  test('a token for another patient is refused by /api/assessments', async () => {
    // The token is for PATIENT: asking about OTHER_PATIENT is refused…
    const other = await apiAssessment(run.base, app.token, OTHER_PATIENT, foreignHeaders(run.ehr.fhirBase(), PATIENT));
    assert.ok([403, 404].includes(other.status), `another patient in the body: ${other.status} ${JSON.stringify(other.body)}`);
    // …and claiming the other patient in X-SMART-Patient does not help: the EHR refuses that read with this token.
    const claimed = await apiAssessment(run.base, app.token, OTHER_PATIENT, foreignHeaders(run.ehr.fhirBase(), OTHER_PATIENT));
    assert.equal(claimed.status, 401, `another patient in X-SMART-Patient: ${JSON.stringify(claimed.body)}`);
    // A token the EHR issued for OTHER_PATIENT cannot ask about PATIENT either.
    const otherToken = await run.ehr.issueToken(OTHER_PATIENT);
    const crossed = await apiAssessment(run.base, otherToken, PATIENT, foreignHeaders(run.ehr.fhirBase(), OTHER_PATIENT));
    assert.ok([403, 404].includes(crossed.status), `token for ${OTHER_PATIENT} asking about ${PATIENT}: ${crossed.status}`);
  });

  test('without X-SMART-Patient an opaque token is refused; an unknown FHIR server is refused and named', async () => {
    const noPatient = await apiAssessment(run.base, app.token, PATIENT, foreignHeaders(run.ehr.fhirBase()));
    assert.equal(noPatient.status, 401);
    const unknown = await apiAssessment(run.base, app.token, PATIENT, foreignHeaders('https://unknown-ehr.example/fhir', PATIENT));
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body['code'], 'TOKEN_INVALID');
    assert.match(String(unknown.body['error']), /unknown-ehr\.example/);
  });
});

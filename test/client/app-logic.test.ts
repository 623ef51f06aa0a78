/**
 * The SMART app's pure logic (client/src): launch plans and scopes, appContext parsing, number formatting, survival
 * curve shaping, factor rows, window/level and the orders the actions create — on a real assessment computed by
 * the risk engine over the embedded demo stack (demo-a-022: image + clinical; demo-b-001: OOD → clinical-only).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { curveData, curveTable, MARKER_YEARS, nearestIndex } from '../../client/src/curve-data.ts';
import { factorRows, missingRows } from '../../client/src/factor-rows.ts';
import { ageAt, formatDate, formatInterval, formatPercent, formatRisk, formatRiskWithInterval, percentDigits } from '../../client/src/format.ts';
import * as numbers from '../../server/risk/numbers.ts';
import { careLines, duplicateQuestion, existingOrder, heatmapExplanation, iconCounts, orderFor, patientExplanation, patientNextSteps, recommendation } from '../../client/src/decision-text.ts';
import { historyChange, trendPath, trendPoints } from '../../client/src/history.ts';
import { iconKind } from '../../client/src/views/icon-array.tsx';
import type { AssessmentHistoryItem, CareStatus } from '../../client/src/types.ts';
import { assessmentIdFromAppContext, LaunchError, PATIENT_SCOPES, planLaunch, WORKLIST_SCOPES } from '../../client/src/launch-options.ts';
import { apiBaseFor, isWorklistSession } from '../../client/src/session.ts';
import { applyWindow, clampView, DEFAULT_WINDOW, windowLut } from '../../client/src/window-level.ts';
import { buildOrder } from '../../client/src/views/actions.tsx';
import { worklistQueryString } from '../../client/src/api.ts';
import { warningLevel } from '../../client/src/views/warnings.tsx';
import type { AssessmentResponse } from '../../client/src/types.ts';
import { loadConfig } from '../../server/config.ts';
import { DicomWebClient } from '../../server/imaging/dicomweb-client.ts';
import { ModelRegistry } from '../../server/inference/registry.ts';
import { RiskService } from '../../server/risk/service.ts';
import { DXA_ORDER_PROFILE, FLS_REFERRAL_PROFILE } from '../../server/orders/service-requests.ts';
import { startDemoStack, silentLogger, type DemoStack } from '../support/demo-stack.ts';

let stack: DemoStack;
let registry: ModelRegistry;
let imageCase: AssessmentResponse;
let oodCase: AssessmentResponse;

async function assessed(service: RiskService, patientId: string): Promise<AssessmentResponse> {
  const out = await service.assess({ patientId });
  // Round-trip through JSON, as the app receives it.
  return JSON.parse(JSON.stringify({ assessment: out.stored.assessment, links: null, fhir: { riskAssessment: out.stored.fhir.riskAssessment }, writeBack: out.stored.writeBack })) as AssessmentResponse;
}

before(async () => {
  stack = await startDemoStack();
  const config = loadConfig({});
  const logger = silentLogger();
  registry = await ModelRegistry.load({ ...config.inference, device: 'cpu' }, logger);
  const service = new RiskService({
    deps: { fhir: stack.fhirClient({ timeoutMs: 10_000 }), dicomweb: new DicomWebClient({ baseUrl: stack.dicomWebBaseUrl, timeoutMs: 10_000, retries: 0, maxResponseBytes: 1 << 28 }), registry, settings: config.risk, logger },
    cacheSize: 10,
    writeBack: false,
    logger,
  });
  imageCase = await assessed(service, 'demo-a-022');
  oodCase = await assessed(service, 'demo-b-001');
});

after(async () => {
  await registry?.close();
  await stack?.close();
});

describe('launch plans (SMART App Launch 2.x)', () => {
  test('EHR launch: patient-level v2 scopes, PKCE required, launch passed through', () => {
    const p = planLaunch(new URLSearchParams('iss=https://ehr.example.org/fhir&launch=abc'), null);
    assert.equal(p.mode, 'ehr');
    assert.equal(p.options.pkceMode, 'required');
    assert.equal(p.options.clientId, 'fracture-risk-app');
    assert.equal(p.options.launch, 'abc');
    assert.deepEqual(p.options.scope.split(' '), [...PATIENT_SCOPES]);
    assert.ok(p.options.scope.includes('patient/ServiceRequest.c'));
  });
  test('standalone launch asks for launch/patient; the configured FHIR server is the default iss', () => {
    const p = planLaunch(new URLSearchParams(''), 'http://localhost:8080/sandbox/fhir');
    assert.equal(p.mode, 'standalone');
    assert.equal(p.iss, 'http://localhost:8080/sandbox/fhir');
    const scopes = p.options.scope.split(' ');
    assert.ok(scopes.includes('launch/patient'));
    assert.ok(!scopes.includes('launch'), 'no bare launch scope without an EHR launch');
  });
  test('worklist launch: user-level scopes only, refused inside an EHR launch', () => {
    const p = planLaunch(new URLSearchParams('mode=worklist&iss=http://x/fhir'), null);
    assert.equal(p.mode, 'worklist');
    assert.deepEqual(p.options.scope.split(' '), [...WORKLIST_SCOPES]);
    assert.ok(!p.options.scope.includes('patient/'));
    assert.throws(() => planLaunch(new URLSearchParams('mode=worklist&iss=http://x/fhir&launch=1'), null), LaunchError);
  });
  test('no FHIR server, or not an http(s) one: a LaunchError saying what to do', () => {
    assert.throws(() => planLaunch(new URLSearchParams(''), null), /open the app from the EHR/);
    assert.throws(() => planLaunch(new URLSearchParams('iss=javascript:alert(1)'), null), LaunchError);
  });
  test('appContext: bare id or {"assessmentId"}; anything else is ignored', () => {
    assert.equal(assessmentIdFromAppContext('3f1c-22'), '3f1c-22');
    assert.equal(assessmentIdFromAppContext('{"assessmentId":"abc-1"}'), 'abc-1');
    assert.equal(assessmentIdFromAppContext('{"assessmentId":"../etc"}'), null);
    assert.equal(assessmentIdFromAppContext('{broken'), null);
    assert.equal(assessmentIdFromAppContext(undefined), null);
    assert.equal(assessmentIdFromAppContext('a/b'), null);
  });
  test('session helpers: API base next to /app/, worklist sessions are user-level without patient', () => {
    assert.equal(apiBaseFor('http://h:1/app/index.html?code=x'), 'http://h:1/api');
    assert.equal(apiBaseFor('https://p.example/cds/app/index.html'), 'https://p.example/cds/api');
    assert.equal(isWorklistSession({ patientId: null, scopes: ['openid', 'user/Task.rus'] }), true);
    assert.equal(isWorklistSession({ patientId: 'p1', scopes: ['user/Task.rus'] }), false);
    assert.equal(isWorklistSession({ patientId: null, scopes: ['patient/Patient.rs'] }), false);
  });
});

describe('formatting', () => {
  test('the app formats every number with server/risk/numbers.ts: "14%", "2.3%", "95% interval 10–19%"', () => {
    assert.equal(percentDigits(9.94), 1);
    assert.equal(formatPercent(2.345), '2.3%');
    assert.equal(formatPercent(14.4), '14%');
    assert.equal(formatRisk(0.1416), '14%');
    assert.equal(formatRisk(0.0004), '<0.1%');
    assert.equal(formatInterval(2.04, 99.99), '2.0–100%');
    assert.equal(formatRiskWithInterval(0.14, 0.1, 0.19), '14% (95% interval 10–19%)');
    assert.equal(formatRiskWithInterval(0.05, null, null), '5.0%');
    assert.equal(formatPercent(null), '–');
    // The same functions, not copies that could drift.
    assert.equal(formatRisk, numbers.formatRisk);
    assert.equal(formatInterval, numbers.formatInterval);
  });
  test('dates in UTC, ages on birthdays', () => {
    assert.equal(formatDate('2026-10-28T23:53:00Z'), '28 Oct 2026');
    assert.equal(formatDate('1943-02-01'), '1 Feb 1943');
    assert.equal(ageAt('1943-02-01', new Date('2026-01-31T12:00:00Z')), 82);
    assert.equal(ageAt('1943-02-01', new Date('2026-02-01T12:00:00Z')), 83);
    assert.equal(ageAt(null), null);
  });
  test('worklist query string drops empty filters', () => {
    assert.equal(worklistQueryString({ tier: 'high', site: '', status: undefined }), '?tier=high');
    assert.equal(worklistQueryString({}), '');
  });
});

describe('survival curve data (image + clinical: demo-a-022)', () => {
  test('fused curve on the monthly grid, band around it, clinical curve yearly, all in percent', () => {
    const o = imageCase.assessment.outcomes.hip;
    assert.equal(o.shown, 'fused');
    const d = curveData(o);
    assert.equal(d.shown, 'fused');
    assert.equal(d.fused!.length, o.fused!.curve.length);
    assert.equal(d.clinical.length, 11);
    assert.deepEqual(d.fused![0], { x: 0, y: 100 });
    for (let i = 0; i < d.fused!.length; i++) {
      assert.ok(d.bandLower![i]!.y <= d.fused![i]!.y + 1e-9 && d.fused![i]!.y <= d.bandUpper![i]!.y + 1e-9, `band contains the curve at ${d.fused![i]!.x} y`);
      if (i > 0) assert.ok(d.fused![i]!.y <= d.fused![i - 1]!.y + 1e-9, 'survival never rises');
    }
    assert.ok(d.yMin >= 0 && d.yMin % 5 === 0 && d.yMin <= Math.min(...d.bandLower!.map((p) => p.y)));
  });
  test('markers at 2, 5, 10 years equal 1 − the shown risks, with the interval flipped', () => {
    const o = imageCase.assessment.outcomes.mof;
    const d = curveData(o);
    assert.deepEqual(d.markers.map((m) => m.years), [...MARKER_YEARS]);
    for (const m of d.markers) {
      const r = o.risks.find((x) => x.years === m.years)!;
      assert.ok(Math.abs(m.survival - (1 - r.risk) * 100) < 1e-3);
      assert.ok(Math.abs(m.lower! - (1 - r.upper!) * 100) < 1e-3);
      assert.ok(Math.abs(m.upper! - (1 - r.lower!) * 100) < 1e-3);
    }
  });
  test('text alternative: 1, 2, 5, 10 years with the clinical-only comparison', () => {
    const rows = curveTable(imageCase.assessment.outcomes.hip);
    assert.deepEqual(rows.map((r) => r.years), [1, 2, 5, 10]);
    const c10 = imageCase.assessment.outcomes.hip.clinicalOnly.risks.find((r) => r.years === 10)!.risk;
    assert.ok(Math.abs(rows[3]!.clinical - (1 - c10) * 100) < 1e-3);
  });
  test('nearestIndex finds the grid point of a tooltip', () => {
    const pts = [0, 0.5, 1, 1.5].map((x) => ({ x, y: 0 }));
    assert.equal(nearestIndex(pts, 1.2), 2);
    assert.equal(nearestIndex(pts, 99), 3);
  });
});

describe('OOD case (demo-b-001): clinical-only everywhere', () => {
  test('no fused curve, no band, no intervals; the main curve is QFracture-2012', () => {
    const a = oodCase.assessment;
    assert.equal(a.mode, 'clinical-only');
    const d = curveData(a.outcomes.hip);
    assert.equal(d.shown, 'clinical-only');
    assert.equal(d.fused, null);
    assert.equal(d.bandLower, null);
    assert.ok(d.markers.every((m) => m.lower === null && m.upper === null));
    assert.ok(a.warnings.some((w) => warningLevel(w) === 'critical'), 'the OOD warning is critical');
  });
});

describe('factors in plain words', () => {
  test('rows carry the source resources and the model-scale term for ordering, largest first', () => {
    const rows = factorRows(imageCase.assessment, 'hip');
    assert.ok(rows.length > 0);
    const age = rows.find((r) => r.factor === 'age')!;
    assert.deepEqual(age.sources, ['Patient/demo-a-022']);
    const contrib = imageCase.assessment.outcomes.hip.contributions.find((c) => c.factor === 'age')!;
    assert.equal(age.logHazard, contrib.fused, 'fused term when the image is used');
    for (let i = 1; i < rows.length; i++) assert.ok(Math.abs(rows[i - 1]!.logHazard) >= Math.abs(rows[i]!.logHazard) - 1e-12);
    const oodRows = factorRows(oodCase.assessment, 'hip');
    const oodAge = oodCase.assessment.outcomes.hip.contributions.find((c) => c.factor === 'age')!;
    assert.equal(oodRows.find((r) => r.factor === 'age')!.logHazard, oodAge.qfracture, 'QFracture term when clinical-only');
  });
  test('"Age 83 — raises the risk the most": words only, no log hazards or hazard ratios', () => {
    const rows = factorRows(imageCase.assessment, 'hip');
    const top = rows.find((r) => r.effect === 'raises')!;
    assert.equal(top.strength, 'most');
    assert.equal(top.effectText, 'raises the risk the most');
    assert.equal(rows.filter((r) => r.strength === 'most').length, 1);
    const age = rows.find((r) => r.factor === 'age')!;
    assert.match(age.name, /^Age \d+$/);
    for (const r of rows) {
      assert.match(r.effectText, /^(raises|lowers) the risk (the most|a lot|somewhat|a little)$/);
      assert.doesNotMatch(`${r.name} ${r.value} ${r.effectText}`, /log|hazard|×|group \d|QFracture/i);
    }
  });
  test('ethnicity in words; not stated reads without QFracture jargon', () => {
    const a = structuredClone(imageCase.assessment);
    const eth = a.factors.records.find((r) => r.factor === 'ethrisk')!;
    eth.status = 'default';
    eth.value = 1;
    eth.note = 'not stated: QFracture group 1 (white or not stated)';
    const m = missingRows(a).find((r) => r.label === 'Ethnicity')!;
    assert.equal(m.value, 'Not recorded (counted as white or not stated)');
    assert.equal(m.note, undefined);
    eth.status = 'recorded';
    eth.value = 7;
    a.outcomes.hip.contributions.push({ factor: 'ethrisk', label: 'Ethnicity', value: 7, qfracture: -0.5, fused: -0.5 });
    assert.equal(factorRows(a, 'hip').find((r) => r.factor === 'ethrisk')!.name, 'Ethnicity: Black African');
  });
  test('missing factors are listed with the default used', () => {
    const a = structuredClone(imageCase.assessment);
    const bmi = a.factors.records.find((r) => r.factor === 'bmi')!;
    bmi.status = 'default';
    bmi.value = 27;
    delete bmi.raw;
    delete bmi.note;
    assert.deepEqual(missingRows(a), [{ label: 'Body mass index', value: '27 kg/m²' }]);
  });
});

describe('decision words: recommendation, care in place, duplicate question, heatmap, patient summary', () => {
  test('the tier’s action picks the one prominent order: FLS for high, DXA for moderate, none for low', () => {
    assert.equal(orderFor('refer-fls'), 'fls');
    assert.equal(orderFor('order-dxa'), 'dxa');
    assert.equal(orderFor('none'), null);
    assert.match(recommendation('refer-fls').title, /fracture liaison service/);
    assert.match(recommendation('order-dxa').title, /DXA/);
    assert.match(recommendation('none').title, /No scan or treatment/);
    assert.match(patientNextSteps('none').join(' '), /No scan or treatment is needed now/);
  });
  test('the assessment carries the decision the summary shows', () => {
    const d = imageCase.assessment.decision;
    assert.ok(['refer-fls', 'order-dxa', 'none'].includes(d.action));
    assert.ok(d.meaning.length > 0 && d.guideline.url.startsWith('http'));
  });
  test('care in place and the duplicate question name the patient and the date, never a FHIR id', () => {
    const care: CareStatus = { flsReferral: { id: 'sr-9', status: 'active', since: '2026-11-12T09:00:00Z' }, dxaOrder: { id: 'sr-8', status: 'draft', since: null }, dxaResult: { id: 'o1', date: '2026-11-20', tScore: -2.7 }, treatment: { id: 'm1', name: 'alendronic acid', since: '2026-11-25' } };
    assert.deepEqual(careLines(care), ['FLS referral active since 12 Nov 2026', 'DXA order drafted', 'DXA result of 20 Nov 2026: T-score −2.7', 'On alendronic acid since 25 Nov 2026']);
    assert.equal(existingOrder('fls', care)?.id, 'sr-9');
    assert.equal(existingOrder('dxa', { ...care, dxaOrder: null }), null);
    const q = duplicateQuestion('fls', care.flsReferral!, 'Wei Synthetic-Khan');
    assert.equal(q, 'An FLS referral for Wei Synthetic-Khan is already active since 12 Nov 2026. Create another?');
    assert.doesNotMatch(q, /Patient\//);
  });
  test('heatmap: what it shows and not; a low-risk heatmap explained; no heatmap said plainly', () => {
    const a = imageCase.assessment;
    assert.match(heatmapExplanation(a, true)[0]!, /moved the estimate.*not a diagnosis/);
    const low = { ...a, tier: { ...a.tier, tier: 'low' as const } };
    assert.equal(heatmapExplanation(low, true).length, 2);
    assert.match(heatmapExplanation(low, true)[1]!, /do not point to a problem/);
    assert.match(heatmapExplanation(oodCase.assessment, false)[0]!, /^No heatmap: .*outside the model’s training distribution/);
  });
  test('icon array: 100 people, hips inside the major osteoporotic count, text alternative; natural frequencies', () => {
    const a = structuredClone(imageCase.assessment);
    a.outcomes.mof.risks.find((r) => r.years === 10)!.risk = 0.37;
    a.outcomes.hip.risks.find((r) => r.years === 10)!.risk = 0.052;
    const c = iconCounts(a);
    assert.deepEqual([c.mof, c.hip, c.none], [37, 5, 63]);
    assert.equal(Array.from({ length: 100 }, (_, i) => iconKind(i, c)).filter((k) => k !== 'none').length, 37);
    assert.match(c.label, /about 37 of them .* about 5 of them a hip; 63 do not/);
    assert.match(patientExplanation(a), /^About 37 in 100 people like you .* about 5 in 100 will break a hip\.$/);
    a.outcomes.mof.risks.find((r) => r.years === 10)!.risk = 0.006;
    a.outcomes.hip.risks.find((r) => r.years === 10)!.risk = 0.001;
    assert.equal(iconCounts(a).mof, 1);
    assert.match(patientExplanation(a), /^About 1 in 100 .* fewer than 1 in 100 will break a hip/);
  });
});

describe('history', () => {
  const item = (id: string, date: string, hip: number, mof: number, tier: AssessmentHistoryItem['tier'] = 'moderate'): AssessmentHistoryItem => ({ assessmentId: id, date, mode: 'image-and-clinical', tier, hip10: { estimate: hip, lower: null, upper: null }, mof10: { estimate: mof, lower: null, upper: null } });
  test('what changed since the previous assessment, in the shared number format', () => {
    const a = structuredClone(imageCase.assessment);
    a.createdAt = '2026-12-03T10:00:00Z';
    a.outcomes.hip.risks.find((r) => r.years === 10)!.risk = 0.052;
    a.outcomes.mof.risks.find((r) => r.years === 10)!.risk = 0.14;
    a.tier.tier = 'high';
    const change = historyChange(a, [item('old2', '2026-10-12T09:00:00Z', 4.1, 14), item('old1', '2026-06-01T09:00:00Z', 3, 11, 'moderate')]);
    assert.ok(change);
    assert.equal(change.text, 'Hip 10-year 4.1% → 5.2%, major osteoporotic unchanged at 14%; tier moderate → high since 12 Oct 2026');
    assert.deepEqual(change.changes.map((c) => c.direction), ['up', 'same']);
    assert.equal(historyChange(a, []), null, 'no earlier assessment: nothing to compare');
    // The current assessment written back to FHIR is not its own "previous" one.
    assert.equal(historyChange(a, [item(a.id, a.createdAt, 5.2, 14)]), null);
  });
  test('trend: oldest first, the current point last; the path spans the box', () => {
    const a = structuredClone(imageCase.assessment);
    a.createdAt = '2026-12-03T10:00:00Z';
    const pts = trendPoints(a, [item('b', '2026-10-12T09:00:00Z', 4.1, 12), item('c', '2026-06-01T09:00:00Z', 3, 11)]);
    assert.deepEqual(pts.map((p) => p.assessmentId), ['c', 'b', a.id]);
    assert.ok(pts[2]!.current);
    const path = trendPath(pts, 'hip', 100, 50, 5)!;
    assert.equal(path[0]!.x, 5);
    assert.equal(path[2]!.x, 95);
    assert.ok(path.every((q) => q.y >= 5 && q.y <= 45));
    assert.equal(trendPath(pts.slice(0, 1), 'hip', 100, 50), null);
  });
});

describe('window/level and view', () => {
  test('the default window is the identity; a narrow window stretches contrast and clamps', () => {
    const id = windowLut(DEFAULT_WINDOW);
    for (let v = 0; v < 256; v++) assert.ok(Math.abs(id[v]! - v) <= 1, `identity at ${v}`);
    const narrow = windowLut({ width: 64, level: 128 });
    assert.equal(narrow[80], 0);
    assert.equal(narrow[200], 255);
    assert.ok(narrow[140]! > 140);
    const src = new Uint8ClampedArray([10, 10, 10, 255, 200, 200, 200, 128]);
    const out = new Uint8ClampedArray(8);
    applyWindow(src, out, { width: 64, level: 128 });
    assert.deepEqual([...out], [0, 0, 0, 255, 255, 255, 255, 128]);
  });
  test('zoom and pan stay inside the image', () => {
    assert.deepEqual(clampView({ zoom: 0.5, x: -10, y: 5 }, { width: 100, height: 100 }), { zoom: 1, x: 0, y: 0 });
    assert.deepEqual(clampView({ zoom: 2, x: 500, y: -3 }, { width: 100, height: 100 }), { zoom: 2, x: 100, y: 0 });
  });
});

describe('orders built by the actions', () => {
  test('FLS referral and DXA order: shared builders, profiles, active, reason with the numbers, research notice', () => {
    const now = new Date('2026-11-28T10:00:00Z');
    const fls = buildOrder('fls', imageCase, { fhirUser: 'Practitioner/demo-clinician', encounterId: null }, now);
    assert.deepEqual(fls.meta?.profile, [FLS_REFERRAL_PROFILE]);
    assert.equal(fls.status, 'active');
    assert.equal(fls.subject?.reference, 'Patient/demo-a-022');
    assert.equal(fls.requester?.reference, 'Practitioner/demo-clinician');
    assert.equal(fls.authoredOn, now.toISOString());
    const hip = imageCase.assessment.outcomes.hip.risks.find((r) => r.years === 10)!;
    assert.ok(fls.reasonCode?.[0]?.text?.includes(formatRiskWithInterval(hip.risk, hip.lower, hip.upper)));
    assert.match(fls.note?.[0]?.text ?? '', /Research use — trained on synthetic data/);
    assert.equal(fls.supportingInfo, undefined, 'no reference to a RiskAssessment that was not written back');
    const dxa = buildOrder('dxa', { ...imageCase, writeBack: { written: true }, fhir: { riskAssessment: { resourceType: 'RiskAssessment', id: 'ra-1' } } }, { fhirUser: null, encounterId: 'enc-1' }, now);
    assert.deepEqual(dxa.meta?.profile, [DXA_ORDER_PROFILE]);
    assert.equal(dxa.supportingInfo?.[0]?.reference, 'RiskAssessment/ra-1');
    assert.equal(dxa.encounter?.reference, 'Encounter/enc-1');
    assert.equal(dxa.requester, undefined);
  });
});

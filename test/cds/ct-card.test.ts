/**
 * The CDS card for a CT assessment, without a running service: what it says of the CT (attenuation against the
 * Pickhardt anchors, the worst fracture and the problem list), that a moderate or severe fracture warrants an FLS
 * referral and a provisional problem-list suggestion whatever the tier, that an order for a CT the pathway reads says
 * it will be assessed, and that such a fracture passes the hooks' tier gates.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Condition, ServiceRequest } from '@medplum/fhirtypes';
import { buildCard, type CardInput, type CareKnowledge, type DecidedAssessment } from '../../server/cds/cards.ts';
import { ctFindingsSentence, imminentReasonOf } from '../../server/cds/ct-words.ts';
import { orderFacts, shouldSpeak, type SpeakInput } from '../../server/cds/hooks.ts';
import { CdsStore } from '../../server/cds/store.ts';
import type { HookRequest, ServiceDefinition } from '../../server/cds/types.ts';
import { CPT, LOINC, loadOrderCodeMaps } from '../../server/fhir/conceptmaps.ts';
import type { CtAssessmentView } from '../../server/pathways/ct-spine/types.ts';
import { ctView } from '../support/ct-view.ts';
import type { RecommendedAction } from '../../server/risk/decision.ts';
import { createdWords } from '../../server/sandbox/ehr/router.ts';

const NOW = new Date('2026-12-03T10:00:00Z');
const NO_CARE: CareKnowledge = { known: true, status: { flsReferral: null, dxaOrder: null, dxaResult: null, treatment: null } };

function assessment(action: RecommendedAction, ct: CtAssessmentView | null): DecidedAssessment {
  const tier = action === 'refer-fls' ? 'high' : action === 'order-dxa' ? 'moderate' : 'low';
  const risks = (r: number, lo: number, hi: number) => [{ years: 10, risk: r, lower: lo, upper: hi }];
  const contributions = [{ factor: 'age', label: 'Age', value: 74, qfracture: 1.0, fused: 0.9 }];
  return {
    id: 'a-ct-1',
    patientId: 'demo-ct-003',
    mode: 'image-and-clinical',
    study: { id: 's-ct', studyUid: '1.2', seriesUid: '1.2.3', sopUid: '1.2.3.4', started: '2026-11-03T09:00:00Z', laterality: null },
    model: { id: 'ct-spine-v1', version: '1.0.0' },
    tier: { tier, basis: 'fused', rule: '' },
    outcomes: { hip: { risks: risks(0.021, 0.012, 0.035), contributions }, mof: { risks: risks(0.11, 0.07, 0.16), contributions } },
    decision: {
      action,
      actionWarranted: action === 'refer-fls',
      meaning: 'Below the 3% hip-fracture treatment threshold (probability 70%).',
      guideline: { name: 'BHOF 2022', url: 'https://doi.org/10.1007/s00198-021-05900-y' },
    },
    caveat: null,
    warnings: [],
    ct,
  } as unknown as DecidedAssessment;
}

function card(action: RecommendedAction, ct: CtAssessmentView | null, extra: Partial<CardInput> = {}) {
  return buildCard({
    assessment: assessment(action, ct),
    kind: 'assessment',
    context: { userId: 'Practitioner/demo-clinician', patientId: 'demo-ct-003', encounterId: 'enc-1' },
    publicBaseUrl: 'https://cds.example.test',
    retrievable: true,
    riskAssessmentRef: 'RiskAssessment/ra-ct-1',
    care: NO_CARE,
    now: NOW,
    ...extra,
  });
}

describe('CT card', () => {
  test('says what the CT showed in plain words, with the date, next to the risk and its interval', () => {
    const { card: c } = card('order-dxa', ctView());
    assert.match(c.detail!, /CT of 3 Nov 2026: L1 attenuation 96 HU \(osteoporosis likely at or below 110 HU\); moderate \(grade 2\) L1 compression fracture, not in the problem list\./);
    assert.match(c.detail!, /Major osteoporotic fracture: 11% \(95% interval 7\.0–16%\)/);
    assert.equal(c.summary, 'Moderate fracture risk — 10-year hip 2.1% (95% interval 1.2–3.5%)');
    assert.doesNotMatch(c.detail!, /hip X-ray/, 'a CT assessment does not speak of an X-ray');
  });

  test('a grade 2 fracture warrants an FLS referral and a provisional problem-list entry whatever the tier (warning)', () => {
    const built = card('none', ctView());
    const c = built.card;
    assert.equal(c.indicator, 'warning');
    assert.deepEqual((c.suggestions ?? []).map((s) => s.label), ['Refer to fracture liaison service', 'Add L1 vertebral fracture to the problem list (provisional, check the images)']);
    const referral = c.suggestions![0]!.actions![0]!.resource as ServiceRequest;
    assert.match(referral.reasonCode![0]!.text!, /^Vertebral fracture on CT, grade 2 at L1; 10-year hip fracture risk/);
    const problem = c.suggestions![1]!;
    assert.equal(problem.isRecommended, false, 'the clinician decides after looking at the images');
    const cond = problem.actions![0]!.resource as Condition;
    assert.equal(cond.resourceType, 'Condition');
    assert.equal(cond.verificationStatus?.coding?.[0]?.code, 'provisional');
    assert.equal(cond.category?.[0]?.coding?.[0]?.code, 'problem-list-item');
    assert.equal(cond.code?.coding?.[0]?.code, '15724005');
    assert.equal(cond.code?.text, 'Moderate (grade 2) L1 compression fracture (seen on CT, to confirm)');
    assert.deepEqual(cond.evidence?.[0]?.detail?.map((d) => d.reference), ['Observation/ct-att-1', 'Observation/ct-morph-1', 'RiskAssessment/ra-ct-1']);
    assert.equal(cond.subject?.reference, 'Patient/demo-ct-003');
    assert.equal(cond.encounter?.reference, 'Encounter/enc-1');
    assert.ok(built.suggestionIds.problemList && built.suggestionIds.fls);
    // What the demo EHR says once the clinician accepts it.
    assert.equal(createdWords(cond), 'Problem-list entry added: Moderate (grade 2) L1 compression fracture (seen on CT, to confirm) (provisional until you confirm it)');
  });

  test('already in the problem list: said, no problem-list suggestion; an open referral: no referral either (info)', () => {
    const { card: c } = card('refer-fls', ctView({ inProblemList: true }), { care: { known: true, status: { flsReferral: { id: 'r', status: 'active', since: '2026-11-10' }, dxaOrder: null, dxaResult: null, treatment: null } } });
    assert.match(c.detail!, /moderate \(grade 2\) L1 compression fracture \(in the problem list\)/);
    assert.equal(c.suggestions, undefined);
    assert.equal(c.indicator, 'info');
  });

  test('no fracture: the attenuation alone; the decision decides (DXA for a moderate risk); mild fractures are named but not flagged', () => {
    const none = card('order-dxa', ctView({ worstGrade: 0, worstLevel: null, imminentRisk: false })).card;
    assert.match(none.detail!, /L1 attenuation 96 HU \(osteoporosis likely at or below 110 HU\); no vertebral compression fracture\./);
    assert.deepEqual((none.suggestions ?? []).map((s) => s.label), ['Order DXA']);
    assert.equal(none.indicator, 'info');
    const mild = card('none', ctView({ worstGrade: 1, imminentRisk: false })).card;
    assert.match(mild.detail!, /mild \(grade 1\) L1 compression fracture, not in the problem list/);
    assert.equal(mild.suggestions, undefined);
    assert.equal(mild.indicator, 'info');
  });

  test('contrast, fallback level and thick slices are said', () => {
    const base = ctView();
    const pv = ctView({ phase: 'portal-venous', attenuation: { ...base.attenuation!, level: 'T12', medianHu: 118, phase: 'portal-venous', adjustedHu: 102 } });
    assert.match(ctFindingsSentence(pv), /^CT: T12 attenuation 102 HU \(osteoporosis likely at or below 110 HU; portal venous phase, adjusted for contrast\)/);
    const thick = ctView({ morphometry: null, worstGrade: 0, worstLevel: null, imminentRisk: false, attenuation: { ...base.attenuation!, adjustedHu: 172, medianHu: 172 } });
    assert.equal(ctFindingsSentence(thick), 'CT: L1 attenuation 172 HU (osteoporosis unlikely above 160 HU); vertebral heights not measured (slices too thick).');
    const mid = ctView({ attenuation: { ...base.attenuation!, adjustedHu: 135 } });
    assert.match(ctFindingsSentence(mid), /135 HU \(between 110 and 160 HU: low bone density possible, DXA decides\)/);
    const gated = ctView({ attenuation: null, gate: { outside: true, reason: 'paraspinal muscle reads 112 HU, outside 0–100 HU — the HU scale may be off', distance: 1.24, checks: [] } });
    assert.match(ctFindingsSentence(gated), /^CT: attenuation withheld \(paraspinal muscle reads 112 HU, outside 0–100 HU — the HU scale may be off\); moderate \(grade 2\) L1 compression fracture/);
    assert.equal(imminentReasonOf(ctView({ worstGrade: 3, worstLevel: 'T12' })), 'vertebral fracture on CT, grade 3 at T12');
    assert.equal(imminentReasonOf(ctView({ worstGrade: 1, imminentRisk: false })), null);
  });

  test('an ordered CT is said to be assessed when reported; a radiograph assessment keeps its X-ray line', () => {
    const { card: c } = card('refer-fls', null, { orderedCt: true });
    assert.match(c.detail!, /The CT being ordered will be assessed for bone density and vertebral fractures when reported\./);
    assert.match(c.detail!, /Uses the hip X-ray of 3 Nov 2026\./);
    assert.doesNotMatch(card('refer-fls', null).card.detail!, /CT being ordered/);
  });
});

describe('CT orders and the tier gates', () => {
  const codes = loadOrderCodeMaps();
  const order = (system: string, code: string): ServiceRequest => ({ resourceType: 'ServiceRequest', id: `o-${code}`, status: 'draft', intent: 'order', subject: { reference: 'Patient/p' }, code: { coding: [{ system, code }] } });
  const req = (o: ServiceRequest): HookRequest => ({ hook: 'order-sign', hookInstance: 'x', context: { userId: 'Practitioner/1', patientId: 'p', draftOrders: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: o }] } } }) as HookRequest;

  test('chest, abdomen and spine CTs (CPT, LOINC) are CTs the pathway reads; a pelvis CT and a hip radiograph are not', () => {
    for (const code of ['74150', '74160', '74170', '71250', '71260', '72128', '72131', '74177']) assert.equal(orderFacts(req(order(CPT, code)), codes).ctSpine, true, `CPT ${code}`);
    for (const code of ['24627-2', '36813-4', '24963-1']) assert.equal(orderFacts(req(order(LOINC, code)), codes).ctSpine, true, `LOINC ${code}`);
    assert.equal(orderFacts(req(order(CPT, '72192')), codes).ctSpine, false);
    assert.equal(orderFacts(req(order(CPT, '73502')), codes).ctSpine, false);
  });

  test('a low tier speaks on patient-view and order-sign when the CT shows a grade 2 fracture, and not without it', async () => {
    const store = new CdsStore(':memory:');
    const settings = { publicBaseUrl: 'https://c', deadlineMs: 1000, orderMinTier: 'moderate' as const, patientViewMinTier: 'high' as const };
    const speak = (hook: ServiceDefinition['hook'], ct: CtAssessmentView, patientId: string): Promise<boolean> => {
      const a = { ...assessment('none', ct), cacheKey: `k-${patientId}` };
      const x: SpeakInput = { service: { id: `svc-${hook}`, hook, title: 't', description: 'd' } as ServiceDefinition, outcome: { kind: 'assessment', assessment: a, retrievable: true, source: 'new' }, settings, store, sourceId: 'src', patientId, userId: 'Practitioner/1', now: NOW };
      return shouldSpeak(x);
    };
    assert.equal(await speak('patient-view', ctView(), 'p1'), true);
    assert.equal(await speak('order-sign', ctView(), 'p2'), true);
    assert.equal(await speak('patient-view', ctView({ worstGrade: 1, imminentRisk: false }), 'p3'), false);
    assert.equal(await speak('order-sign', ctView({ worstGrade: 0, worstLevel: null, imminentRisk: false }), 'p4'), false);
  });
});

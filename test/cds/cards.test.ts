/**
 * Card building without a running service: what the action line, suggestions and indicator are for each decision
 * and each kind of existing care, and that the detail stays short.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildCard, DXA_RECENT_DAYS, wordCount, type CardInput, type CareKnowledge, type DecidedAssessment } from '../../server/cds/cards.ts';
import type { CareStatus } from '../../server/orders/care-status.ts';
import type { RecommendedAction } from '../../server/risk/decision.ts';

const NOW = new Date('2026-12-03T10:00:00Z');
const NONE: CareStatus = { flsReferral: null, dxaOrder: null, dxaResult: null, treatment: null };

function assessment(action: RecommendedAction): DecidedAssessment {
  const tier = action === 'refer-fls' ? 'high' : action === 'order-dxa' ? 'moderate' : 'low';
  const risks = (r: number, lo: number, hi: number) => [{ years: 10, risk: r, lower: lo, upper: hi }];
  const contributions = [
    { factor: 'age', label: 'Age', value: 81, qfracture: 1.2, fused: 1 },
    { factor: 'b_falls', label: 'History of falls', value: 1, qfracture: 0.5, fused: 0.4 },
    { factor: 'bmi', label: 'Body mass index', value: 22.5, qfracture: 0.1, fused: 0.1 },
    { factor: 'b_type2', label: 'Type 2 diabetes', value: 1, qfracture: 0.05, fused: 0.04 },
  ];
  return {
    id: 'a-1',
    patientId: 'p-1',
    mode: 'image-and-clinical',
    study: { id: 's-1', studyUid: '1.2', seriesUid: '1.2.3', sopUid: '1.2.3.4', started: '2026-10-11T09:00:00Z', laterality: 'L' },
    model: { id: 'hip-xray-v1', version: '1.0.0' },
    tier: { tier, basis: 'fused', rule: '' },
    outcomes: {
      hip: { risks: risks(0.097, 0.023, 0.36), contributions },
      mof: { risks: risks(0.2, 0.067, 0.52), contributions },
    },
    decision: {
      hip: { outcome: 'hip', thresholdPercent: 3, shownPercent: 9.7, probabilityAbove: 0.95 },
      mof: { outcome: 'mof', thresholdPercent: 20, shownPercent: 20, probabilityAbove: 0.5 },
      action,
      actionWarranted: action === 'refer-fls',
      meaning: 'Above the 3% hip-fracture treatment threshold (probability 95%).',
      guideline: { name: 'BHOF 2022', url: 'https://doi.org/10.1007/s00198-021-05900-y' },
    },
    caveat: null,
    warnings: [],
  } as unknown as DecidedAssessment;
}

function card(action: RecommendedAction, care: CareKnowledge, extra: Partial<CardInput> = {}) {
  return buildCard({
    assessment: assessment(action),
    kind: 'assessment',
    context: { userId: 'Practitioner/demo-clinician', patientId: 'p-1' },
    publicBaseUrl: 'https://cds.example.test',
    retrievable: true,
    care,
    now: NOW,
    ...extra,
  }).card;
}
const labels = (c: ReturnType<typeof card>): string[] => (c.suggestions ?? []).map((s) => s.label);
const known = (s: Partial<CareStatus>): CareKnowledge => ({ known: true, status: { ...NONE, ...s } });

describe('buildCard', () => {
  test('three short lines, the notice, nothing of the model or the rule; reasons in plain words', () => {
    const c = card('refer-fls', known({}));
    const lines = c.detail!.split('\n\n');
    assert.equal(lines.length, 4);
    assert.match(lines[0]!, /^Above the 3% hip-fracture treatment threshold \(probability 95%\)\. Major osteoporotic fracture: 20% \(95% interval 6\.7–52%\)\.$/);
    assert.equal(lines[1], 'Main reasons: age 81, history of falls, BMI 22.5. Uses the hip X-ray of 11 Oct 2026.');
    assert.match(lines[2]!, /Recommended: refer to the fracture liaison service/);
    assert.equal(lines[3], '_Research use — trained on synthetic data._');
    assert.ok(wordCount(c.detail!) <= 60, `${wordCount(c.detail!)} words`);
    assert.equal(c.summary, 'High fracture risk — 10-year hip 9.7% (95% interval 2.3–36%)');
    assert.equal(c.indicator, 'warning');
    assert.deepEqual(labels(c), ['Refer to fracture liaison service']);
  });

  test('moderate → DXA recommended, info; low → no action, no suggestion, info', () => {
    const m = card('order-dxa', known({}));
    assert.deepEqual(labels(m), ['Order DXA']);
    assert.equal(m.suggestions![0]!.isRecommended, true);
    assert.equal(m.indicator, 'info');
    const l = card('none', known({}));
    assert.equal(l.suggestions, undefined);
    assert.match(l.detail!, /No action needed now\./);
    assert.equal(l.indicator, 'info');
  });

  test('an open referral: its state and date, no referral suggested, info (drafted and on-hold too)', () => {
    for (const [status, words] of [['active', 'active'], ['on-hold', 'on hold'], ['draft', 'drafted']] as const) {
      const c = card('refer-fls', known({ flsReferral: { id: 'r', status, since: '2026-11-12T09:00:00Z' } }));
      assert.match(c.detail!, new RegExp(`FLS referral ${words} since 12 Nov 2026 — no new referral needed\\.`));
      assert.equal(c.suggestions, undefined);
      assert.equal(c.indicator, 'info');
    }
  });

  test('on treatment: said, no referral pushed, info', () => {
    const c = card('refer-fls', known({ treatment: { id: 'm', name: 'alendronate 70 mg weekly', since: '2026-03-01' } }));
    assert.match(c.detail!, /On alendronate 70 mg weekly since 1 Mar 2026 — review treatment and adherence rather than refer\./);
    assert.equal(c.suggestions, undefined);
    assert.equal(c.indicator, 'info');
  });

  test('DXA: ordered or done within two years → no DXA suggested; done longer ago → suggested again', () => {
    assert.match(card('order-dxa', known({ dxaOrder: { id: 'd', status: 'active', since: '2026-11-20' } })).detail!, /DXA ordered on 20 Nov 2026\. No new scan needed\./);
    const recent = card('order-dxa', known({ dxaResult: { id: 'o', date: '2026-05-02', tScore: -2.7 } }));
    assert.match(recent.detail!, /DXA done on 2 May 2026 \(T-score −2\.7\)\. No new scan needed; review the result\./);
    assert.equal(recent.suggestions, undefined);
    const old = new Date(NOW.getTime() - (DXA_RECENT_DAYS + 30) * 86_400_000).toISOString().slice(0, 10);
    assert.deepEqual(labels(card('order-dxa', known({ dxaResult: { id: 'o', date: old, tScore: -1 } }))), ['Order DXA']);
    // For a referral the DXA is mentioned; the referral is still recommended.
    const high = card('refer-fls', known({ dxaOrder: { id: 'd', status: 'active', since: '2026-11-20' } }));
    assert.deepEqual(labels(high), ['Refer to fracture liaison service']);
    assert.match(high.detail!, /DXA ordered on 20 Nov 2026\./);
  });

  test('existing care unknown: said (in time, or not at all), no suggestion; the indicator still follows the decision', () => {
    const late = card('refer-fls', { known: false, reason: 'timeout' });
    assert.match(late.detail!, /could not be checked in time: check the chart before ordering an FLS referral\./);
    assert.equal(late.suggestions, undefined);
    assert.equal(late.indicator, 'warning');
    const failed = card('order-dxa', { known: false, reason: 'failed' });
    assert.match(failed.detail!, /could not be checked: check the chart before ordering a DXA\./);
    assert.equal(card('none', { known: false, reason: 'failed' }).detail!.includes('could not be checked'), false, 'a low risk needs no check');
  });

  test('the one caveat: the engine\'s, else in-progress, else data not shared', () => {
    const a = assessment('order-dxa');
    const withCaveat = buildCard({ assessment: { ...a, caveat: 'Low confidence: weigh the 95% interval.' }, kind: 'assessment', context: { userId: 'x', patientId: 'p-1' }, publicBaseUrl: 'https://c', retrievable: false, care: known({}), unavailable: ['family history'] }).card;
    assert.match(withCaveat.detail!, /⚠ Low confidence: weigh the 95% interval\./);
    assert.doesNotMatch(withCaveat.detail!, /family history/);
    const notShared = card('order-dxa', known({}), { unavailable: ['family history'] });
    assert.match(notShared.detail!, /⚠ Made without the family history the EHR did not share\./);
  });
});

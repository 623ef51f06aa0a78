/**
 * The card survey's core (bench/card-survey.ts `surveyCards`): warning counts, words, MOF < hip and tier/rounding
 * mismatches judged on the numbers the card shows — on hand-made cards, so each rule is seen to fire.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatSurvey, surveyCards, type SurveyItem } from '../../bench/card-survey.ts';
import type { DecidedAssessment } from '../../server/cds/cards.ts';
import type { Card } from '../../server/cds/types.ts';
import type { Tier } from '../../server/risk/assess.ts';
import { shownPercent } from '../../server/risk/numbers.ts';

const T = { hipHigh: 3, mofHigh: 20, mofModerate: 10 };

function item(id: string, tier: Tier, hip: number, mof: number, card: Partial<Card> | null, actionWarranted = tier === 'high'): SurveyItem {
  const risks = (r: number) => [{ years: 10, risk: r, lower: null, upper: null }];
  const assessment = {
    tier: { tier, basis: 'clinical-only', rule: '' },
    outcomes: { hip: { risks: risks(hip) }, mof: { risks: risks(mof) } },
    decision: {
      hip: { outcome: 'hip', thresholdPercent: 3, shownPercent: shownPercent(hip), probabilityAbove: null },
      mof: { outcome: 'mof', thresholdPercent: 20, shownPercent: shownPercent(mof), probabilityAbove: null },
      action: tier === 'high' ? 'refer-fls' : tier === 'moderate' ? 'order-dxa' : 'none',
      actionWarranted,
      meaning: '',
      guideline: { name: '', url: '' },
    },
    caveat: null,
  } as unknown as DecidedAssessment;
  const fmt = (r: number): string => `${shownPercent(r).toFixed(shownPercent(r) < 10 ? 1 : 0)}%`;
  const full: Card | null = card === null ? null : {
    summary: `${tier} fracture risk — 10-year hip ${fmt(hip)}`,
    detail: `Meaning. Major osteoporotic fracture: ${fmt(mof)}.\n\nMain reasons: age 80.\n\n_Research use — trained on synthetic data._`,
    indicator: 'info',
    source: { label: 'x' },
    ...card,
  };
  return { patientId: id, card: full, assessment };
}

describe('surveyCards', () => {
  test('a consistent set: warnings only with actionWarranted, words counted, nothing to flag', () => {
    const r = surveyCards([item('a', 'high', 0.05, 0.21, { indicator: 'warning' }), item('b', 'low', 0.01, 0.04, {}), item('c', 'moderate', 0.02, 0.12, {}), item('d', 'low', 0.01, 0.02, null)], T);
    assert.equal(r.patients, 4);
    assert.equal(r.cards, 3);
    assert.equal(r.warnings, 1);
    assert.equal(r.warningsWithActionWarranted, 1);
    assert.deepEqual(r.tiers, { high: 1, moderate: 1, low: 2 });
    assert.equal(r.words.median, 15);
    assert.deepEqual(r.mofBelowHip, []);
    assert.deepEqual(r.mismatches, []);
    assert.match(formatSurvey(r, 1, 'high'), /tier\/rounding mismatches: 0/);
  });

  test('a warning without actionWarranted is counted apart', () => {
    const r = surveyCards([item('a', 'moderate', 0.02, 0.12, { indicator: 'warning' })], T);
    assert.equal(r.warnings, 1);
    assert.equal(r.warningsWithActionWarranted, 0);
  });

  test('MOF below hip is flagged', () => {
    const r = surveyCards([item('a', 'high', 0.06, 0.05, {})], T);
    assert.deepEqual(r.mofBelowHip, ['a']);
  });

  test('"3.0%" shown with tier low is a mismatch (the shown value is at the threshold)', () => {
    const r = surveyCards([item('a', 'low', 0.02996, 0.05, {})], T);
    assert.equal(r.mismatches.length, 1);
    assert.match(r.mismatches[0]!.why, /tier low/);
  });

  test('tier high with both shown values below the thresholds is a mismatch', () => {
    const r = surveyCards([item('a', 'high', 0.0294, 0.12, {})], T);
    assert.equal(r.mismatches.length, 1);
    assert.match(r.mismatches[0]!.why, /tier high/);
  });

  test('a card showing another number than the decision compared is a mismatch', () => {
    const r = surveyCards([item('a', 'moderate', 0.025, 0.12, { summary: 'moderate fracture risk — 10-year hip 2.4%' })], T);
    assert.equal(r.mismatches.length, 1);
    assert.match(r.mismatches[0]!.why, /decision compared/);
  });
});

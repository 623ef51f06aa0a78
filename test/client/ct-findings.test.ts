/**
 * The "CT findings" panel's model without a browser: attenuation with band and phase, T-score and DXA, the
 * per-level rows, the warnings (unknown phase, fallback level, excluded levels, no heights) and what to do.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ctPanelModel, ctWarnings, leadingAction, levelRows } from '../../client/src/ct-findings.ts';
import type { Assessment } from '../../client/src/types.ts';
import type { CtAssessmentView } from '../../server/pathways/ct-spine/types.ts';
import { ctView } from '../support/ct-view.ts';

const date = (iso: string): string => iso.slice(0, 10);
function assessment(ct: CtAssessmentView, over: Partial<Assessment> = {}): Assessment {
  return { id: 'a', decision: { action: 'none' }, tscore: null, ct, ...over } as unknown as Assessment;
}

describe('CT findings panel model', () => {
  test('a grade 2 L1 fracture at 96 HU: band, T-score, rows, referral first, problem-list confirmation', () => {
    const ct = ctView();
    const m = ctPanelModel(assessment(ct), ct, date);
    assert.deepEqual(m.attenuation, { level: 'L1', hu: 96, band: 'low', bandText: 'osteoporosis likely at or below 110 HU', phaseText: 'non-contrast', rawHu: null, spread: 'IQR 84–108 HU' });
    assert.equal(m.tScore, '−2.7 (−3.4 to −2.0)');
    assert.equal(m.dxa, null);
    assert.deepEqual(m.rows?.find((r) => r.level === 'L1'), { level: 'L1', heights: { a: '17.9', m: '22.4', p: '26.9' }, heightLoss: '33%', grade: 2, gradeText: 'Moderate (grade 2)', shape: 'Wedge' });
    assert.equal(m.rows?.find((r) => r.level === 'T12')?.shape, '—');
    assert.deepEqual(m.rows?.map((r) => r.level), ['T12', 'L1', 'L2'], 'top of the spine first');
    assert.match(m.todo[0]!, /^Refer to the fracture liaison service: a moderate vertebral fracture/);
    assert.match(m.todo[1]!, /^DXA to record baseline/);
    assert.match(m.todo[2]!, /confirm it on the problem list .*nothing is recorded automatically/);
    assert.deepEqual(m.warnings, []);
    assert.deepEqual(m.notMeasured, ['T11 (heights not measurable)'], 'labelled but not in the table');
    assert.equal(leadingAction(assessment(ct)), 'refer-fls');
    assert.equal(leadingAction(assessment(ctView({ worstGrade: 1, imminentRisk: false }))), 'none');
  });

  test('attenuation withheld by the out-of-distribution gate: said with its reason, not "not measurable"', () => {
    const reason = 'paraspinal muscle reads 112 HU, outside 0–100 HU — the HU scale may be off';
    const ct = ctView({ attenuation: null, gate: { outside: true, reason, distance: 1.24, checks: [{ name: 'paraspinal muscle', value: 112, range: [0, 100], unit: 'HU', ok: false, note: 'mode of the box' }] } });
    const w = ctWarnings(ct);
    assert.ok(w.includes(`CT attenuation withheld: ${reason} (the risk does not use it; fractures still reported).`), w.join(' | '));
    assert.ok(!w.some((x) => /not measurable/.test(x)));
  });

  test('DXA used instead of the CT estimate is said and no DXA is asked for', () => {
    const ct = ctView({ worstGrade: 0, worstLevel: null, imminentRisk: false });
    const m = ctPanelModel(assessment(ct, { tscore: { estimate: null, dxa: { value: -2.9, date: '2026-05-02', observationId: 'o' }, used: 'dxa', calibrationVersion: '1' } }), ct, date);
    assert.equal(m.dxa, 'DXA 2026-05-02: −2.9 (used for the risk instead of the CT estimate)');
    assert.deepEqual(m.todo, ['Nothing more from the CT: follow the recommendation above.']);
  });

  test('warnings: unknown phase, fallback level, excluded levels (metal), thick slices; contrast shows the measured value', () => {
    const base = ctView();
    const ct = ctView({
      phase: 'unknown',
      levels: [...base.levels.slice(0, 1), { ...base.levels[1]!, excluded: 'metal (spinal hardware)' }, ...base.levels.slice(2)],
      attenuation: { ...base.attenuation!, level: 'T12', phase: 'unknown', excluded: [{ level: 'L1', reason: 'metal (spinal hardware)' }] },
      morphometry: null,
    });
    assert.deepEqual(ctWarnings(ct), [
      'Contrast phase unknown: if contrast was given the attenuation reads high, and the T-score estimate is wider.',
      'L1 could not be used: attenuation measured at T12 instead.',
      'L1 excluded: metal (spinal hardware).',
      'Vertebral heights not measured: the slices are too thick for morphometry; fractures cannot be excluded.',
    ]);
    assert.equal(levelRows(ct), null);
    const truncated = ctView({ levels: [...base.levels.slice(0, 3), { ...base.levels[3]!, truncated: true }] });
    assert.deepEqual(ctPanelModel(assessment(truncated), truncated, date).notMeasured, ['T11 (cut by the edge of the scan)']);
    const pv = ctView({ attenuation: { ...base.attenuation!, phase: 'portal-venous', medianHu: 121, adjustedHu: 96 } });
    const m = ctPanelModel(assessment(pv), pv, date);
    assert.equal(m.attenuation?.rawHu, 121);
    assert.equal(m.attenuation?.phaseText, 'portal venous phase, adjusted for contrast');
  });
});

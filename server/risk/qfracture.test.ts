/**
 * QFracture-2012 in TypeScript against (a) the five outputs of ClinRisk's compiled program stored in
 * coefficients.json and (b) the independent Python port (`frcds/qfracture.py`) on random profiles.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { REPO_ROOT } from '../config.ts';
import {
  COEFFICIENTS_PATH, linearPredictor, linearPredictorTerms, QF_BOOLEANS, QFractureInputError, riskPercent,
  type QfBoolean, type QFractureInputs, type Sex,
} from './qfracture.ts';

interface RefCase {
  id: string;
  inputs: Record<string, number | string>;
  expected_risk_percent_surv10_6dp: { fracture4: number; nof: number };
}
const file = JSON.parse(readFileSync(COEFFICIENTS_PATH, 'utf8')) as { reference_outputs: { cases: RefCase[] } };

function toInputs(raw: Record<string, number | string>): { sex: Sex; x: QFractureInputs } {
  const booleans: Partial<Record<QfBoolean, 0 | 1>> = {};
  for (const b of QF_BOOLEANS) if (raw[b] === 1) booleans[b] = 1;
  return {
    sex: raw['sex'] as Sex,
    x: { age: Number(raw['age']), bmi: Number(raw['bmi']), ethrisk: Number(raw['ethrisk']), smoke_cat: Number(raw['smoke_cat']), alcohol_cat6: Number(raw['alcohol_cat6']), booleans },
  };
}

describe('QFracture-2012', () => {
  test('reproduces the five reference outputs of ClinRisk\'s program (6 decimals)', () => {
    assert.equal(file.reference_outputs.cases.length, 5);
    for (const c of file.reference_outputs.cases) {
      const { sex, x } = toInputs(c.inputs);
      const mof = riskPercent('mof', sex, x);
      const hip = riskPercent('hip', sex, x);
      assert.ok(Math.abs(mof - c.expected_risk_percent_surv10_6dp.fracture4) <= 5e-7, `${c.id} MOF ${mof}`);
      assert.ok(Math.abs(hip - c.expected_risk_percent_surv10_6dp.nof) <= 5e-7, `${c.id} hip ${hip}`);
    }
  });

  test('terms add up to the linear predictor', () => {
    const { sex, x } = toInputs(file.reference_outputs.cases[1]!.inputs);
    const { lp, terms } = linearPredictorTerms('hip', sex, x);
    assert.ok(Math.abs(terms.reduce((s, t) => s + t.logHazard, 0) - lp) < 1e-12);
    assert.ok(terms.find((t) => t.factor === 'b_corticosteroids')!.logHazard > 0);
  });

  test('out-of-range inputs are typed errors, not zero', () => {
    const { sex, x } = toInputs(file.reference_outputs.cases[0]!.inputs);
    for (const bad of [{ age: 29 }, { age: 101 }, { age: 65.5 }, { bmi: 19.999 }, { bmi: 40.0001 }, { bmi: Number.NaN }, { ethrisk: 0 }, { smoke_cat: 5 }, { alcohol_cat6: -1 }]) {
      assert.throws(() => riskPercent('hip', sex, { ...x, ...bad }), QFractureInputError, JSON.stringify(bad));
    }
    assert.throws(() => riskPercent('hip', sex, x, 19), QFractureInputError);
  });

  test('agrees with the Python port (frcds/qfracture.py) on 200 random profiles', () => {
    const profiles = fc.sample(
      fc.record({
        sex: fc.constantFrom<Sex>('female', 'male'),
        age: fc.integer({ min: 30, max: 100 }),
        bmi: fc.double({ min: 20, max: 40, noNaN: true }),
        ethrisk: fc.integer({ min: 1, max: 9 }),
        smoke_cat: fc.integer({ min: 0, max: 4 }),
        alcohol_cat6: fc.integer({ min: 0, max: 5 }),
        flags: fc.array(fc.boolean(), { minLength: QF_BOOLEANS.length, maxLength: QF_BOOLEANS.length }),
        years: fc.integer({ min: 1, max: 18 }),
      }),
      { numRuns: 200, seed: 42 },
    );
    const rows = profiles.map((p) => {
      const x: Record<string, number | string> = { age: p.age, bmi: p.bmi, ethrisk: p.ethrisk, smoke_cat: p.smoke_cat, alcohol_cat6: p.alcohol_cat6 };
      QF_BOOLEANS.forEach((b, i) => (x[b] = p.flags[i] ? 1 : 0));
      return { sex: p.sex, years: p.years, x };
    });
    const py = [
      'import json, sys',
      'from frcds import qfracture as q',
      'rows = json.load(sys.stdin)',
      'print(json.dumps([[q.linear_predictor(o, r["sex"], r["x"]) for o in ("hip", "mof")] + [q.risk(o, r["sex"], r["x"], r["years"]) for o in ("hip", "mof")] for r in rows]))',
    ].join('\n');
    const r = spawnSync('sh', [join(REPO_ROOT, 'models/training/run'), '-c', py], { input: JSON.stringify(rows), encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as number[][];
    rows.forEach((row, i) => {
      const { sex, x } = toInputs({ ...row.x, sex: row.sex });
      const [lpHip, lpMof, rHip, rMof] = out[i]!;
      assert.ok(Math.abs(linearPredictor('hip', sex, x) - lpHip!) < 1e-12, `row ${i} hip lp`);
      assert.ok(Math.abs(linearPredictor('mof', sex, x) - lpMof!) < 1e-12, `row ${i} mof lp`);
      assert.ok(Math.abs(riskPercent('hip', sex, x, row.years) - rHip!) < 1e-9, `row ${i} hip risk`);
      assert.ok(Math.abs(riskPercent('mof', sex, x, row.years) - rMof!) < 1e-9, `row ${i} mof risk`);
    });
  });
});

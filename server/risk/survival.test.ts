/** Survival arithmetic as the manifest defines it (step baseline, sample sd, interval through the same formula). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { baselineAt, riskFrom, risksAt, spread, survivalCurve } from './survival.ts';

describe('survival', () => {
  const grid = [0, 0.5, 1, 1.5, 2];
  const h0 = [0, 0.01, 0.02, 0.03, 0.05];
  test('H0(t) is the value at the last grid point ≤ t', () => {
    assert.deepEqual([0, 0.49, 0.5, 0.99, 1, 1.7, 2, 5].map((t) => baselineAt(grid, h0, t)), [0, 0, 0.01, 0.01, 0.02, 0.03, 0.05, 0.05]);
  });
  test('spread uses the sample sd (ddof 1) times factor times z', () => {
    const s = spread([1, 2, 3], 2, 1.96, 1);
    assert.equal(s.etaMean, 2);
    assert.ok(Math.abs(s.sd - 1) < 1e-12);
    assert.ok(Math.abs(s.half - 3.92) < 1e-12);
    assert.equal(spread([1], 2, 1.96, 1).sd, 0);
  });
  test('risks and curve: 1 − exp(−H0·e^η), interval ordered, survival starts at 1', () => {
    const s = spread([0.1, 0.3], 1.5, 1.96, 1);
    const [r] = risksAt(grid, h0, s, [2]);
    assert.ok(Math.abs(r!.risk - (1 - Math.exp(-0.05 * Math.exp(0.2)))) < 1e-15);
    assert.ok(r!.lower < r!.risk && r!.risk < r!.upper);
    const c = survivalCurve(grid, h0, s);
    assert.equal(c[0]!.survival, 1);
    assert.ok(c.every((p) => p.lower <= p.survival && p.survival <= p.upper));
    assert.equal(riskFrom(0, 10), 0);
  });
});

/**
 * Recalibration of the T-score head: the fit recovers a known miscalibration, the held-out figures come from
 * folds the fit did not see, and the agreement figures match hand-computed values.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { agreement, pearson } from '../monitoring/agreement.ts';
import { estimateOf, fitRecalibration, foldsOf, mixtureQuantile, normalCdf, recalibrate, RecalibrationError, seededRandom, type RawPair } from './recalibrate.ts';

const IDENTITY = { intercept: 0, slope: 1, sdScale: 1 };

/** Pairs whose measured value is a + b·(raw mean) + Normal(0, noise); raw sd `rawSd`, 3 members around the mean. */
function simulate(n: number, truth: { a: number; b: number; noise: number; rawSd: number }, seed: number): RawPair[] {
  const rnd = seededRandom(seed);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  return Array.from({ length: n }, () => {
    const x = -1.5 + 1.2 * gauss();
    const raw = [-0.1, 0, 0.1].map((d) => ({ mean: x + d, sd: truth.rawSd }));
    return { raw, measured: truth.a + truth.b * x + truth.noise * gauss() };
  });
}

describe('agreement', () => {
  test('r, bias, coverage and Bland–Altman limits by hand', () => {
    const pairs = [
      { mean: -1, low: -2, high: 0, measured: -1.5 },
      { mean: -2, low: -3, high: -1, measured: -2.5 },
      { mean: 0, low: -1, high: 1, measured: 1.5 },
      { mean: -3, low: -4, high: -2, measured: -3 },
    ];
    const a = agreement(pairs);
    const diff = [0.5, 0.5, -1.5, 0];
    const bias = diff.reduce((x, y) => x + y) / 4;
    const sd = Math.sqrt(diff.reduce((s, d) => s + (d - bias) ** 2, 0) / 3);
    assert.equal(a.n, 4);
    assert.equal(a.coverage, 0.75);
    assert.ok(Math.abs(a.bias! - bias) < 1e-12);
    assert.ok(Math.abs(a.sdDiff! - sd) < 1e-12);
    assert.ok(Math.abs(a.limits!.upper - (bias + 1.96 * sd)) < 1e-12);
    assert.ok(Math.abs(a.r! - pearson([-1, -2, 0, -3], [-1.5, -2.5, 1.5, -3])!) < 1e-12);
    assert.ok(a.r! > 0.9 && a.r! < 1);
    assert.deepEqual(agreement([]), { n: 0, r: null, bias: null, coverage: null, sdDiff: null, limits: null, mae: null });
    assert.equal(pearson([1, 1, 1], [1, 2, 3]), null);
  });
});

describe('mixture', () => {
  test('one member: the 95 % interval is mean ± 1.96 sd', () => {
    assert.ok(Math.abs(normalCdf(1.959964) - 0.975) < 1e-6);
    const e = estimateOf([{ mean: -2, sd: 0.5 }], IDENTITY);
    assert.ok(Math.abs(e.low - (-2 - 1.959964 * 0.5)) < 1e-4 && Math.abs(e.high - (-2 + 1.959964 * 0.5)) < 1e-4);
    assert.ok(Math.abs(e.sd - 0.5) < 1e-12);
  });

  test('two members far apart: the mixture interval spans both, its sd includes their spread', () => {
    const ms = [{ mean: -3, sd: 0.2 }, { mean: -1, sd: 0.2 }];
    assert.ok(mixtureQuantile(ms, 0.025) < -3.2 && mixtureQuantile(ms, 0.975) > -0.8);
    assert.ok(Math.abs(mixtureQuantile(ms, 0.5) - -2) < 1e-4);
    assert.ok(Math.abs(estimateOf(ms, IDENTITY).sd - Math.sqrt(0.04 + 1)) < 1e-9);
  });
});

describe('recalibration', () => {
  test('recovers a known miscalibration; held-out coverage near 0.95 and bias near 0, before far off', () => {
    const pairs = simulate(600, { a: 0.9, b: 1.3, noise: 0.5, rawSd: 0.25 }, 11);
    const r = recalibrate(pairs, IDENTITY, { folds: 5, seed: 3 });
    assert.ok(Math.abs(r.params.slope - 1.3) < 0.08, `slope ${r.params.slope}`);
    assert.ok(Math.abs(r.params.intercept - 0.9) < 0.15, `intercept ${r.params.intercept}`);
    // The scale multiplies the raw sd only (sd_m = s·σ_m): members spread ±0.13 after the slope, so s·0.25 ≈
    // √(0.5² − 0.13²·2/3) ≈ 0.49 → s ≈ 1.95.
    assert.ok(r.params.sdScale > 1.8 && r.params.sdScale < 2.1, `sd scale ${r.params.sdScale}`);
    assert.ok(r.before.coverage! < 0.75, `before coverage ${r.before.coverage}`);
    assert.ok(Math.abs(r.before.bias!) > 0.3);
    assert.ok(r.after.coverage! > 0.92 && r.after.coverage! < 0.98, `after coverage ${r.after.coverage}`);
    assert.ok(Math.abs(r.after.bias!) < 0.07, `after bias ${r.after.bias}`);
    assert.equal(r.after.n, 600);
    assert.equal(r.foldParams.length, 5);
  });

  test('held-out figures are not in-sample: a pair predicted by its own fold would fit better', () => {
    // With few pairs and much noise, out-of-fold predictions are worse than in-sample ones.
    const pairs = simulate(12, { a: 0, b: 1, noise: 0.8, rawSd: 0.3 }, 5);
    const r = recalibrate(pairs, IDENTITY, { folds: 4, seed: 1 });
    assert.ok(r.after.mae! > r.afterInSample.mae!, `held-out MAE ${r.after.mae} vs in-sample ${r.afterInSample.mae}`);
  });

  test('a slope ≤ 0 or no spread is refused with the reason', () => {
    const flat: RawPair[] = [1, 2, 3, 4].map((y) => ({ raw: [{ mean: -1, sd: 0.3 }], measured: -y }));
    assert.throws(() => fitRecalibration(flat), /do not vary/);
    const inverse: RawPair[] = [1, 2, 3, 4].map((x) => ({ raw: [{ mean: -x, sd: 0.3 }], measured: x - 4 }));
    assert.throws(() => fitRecalibration(inverse), (e: unknown) => e instanceof RecalibrationError && /slope is -1\.000/.test(e.message));
    assert.throws(() => fitRecalibration(inverse.slice(0, 2)), /at least 3 pairs/);
  });

  test('folds: deterministic for a seed, sizes differ by at most one', () => {
    const a = foldsOf(23, 5, 9);
    assert.deepEqual(a, foldsOf(23, 5, 9));
    assert.notDeepEqual(a, foldsOf(23, 5, 10));
    const sizes = [0, 1, 2, 3, 4].map((f) => a.filter((x) => x === f).length);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);
  });
});

/**
 * The T-score mixture of a T-score-mediated model against brute force: the Gauss-Hermite rule against known moments,
 * the mixture mean against a fine trapezoid integral, the percentiles and tail probabilities against a fine grid over
 * each member's T-score, and MOF ≥ hip at every quantile, curve point and threshold.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bivariateUpperTail, gaussHermite, MediatedOutcome, tscoreSummary, type MediatedHead, type TscoreNormal } from './mediated.ts';

const grid = Array.from({ length: 121 }, (_, i) => i / 12);
const hipH0 = grid.map((t) => 0.0107 * (t / 10) ** 1.2);
const mofH0 = grid.map((t) => 0.035 * (t / 10) ** 1.1);
const hip: MediatedHead = { grid, h0: hipH0, base: [1.2, 1.0, 1.4], gamma: [-0.9, -1.0, -0.8] };
// The MOF head is below hip for member 1 at low T-scores (steeper hip gradient): the floor must bind there.
const mof: MediatedHead = { grid, h0: mofH0, base: [0.5, -0.6, 0.4], gamma: [-0.6, -0.3, -0.65] };
const image: TscoreNormal[] = [{ mean: -2.1, sd: 0.6 }, { mean: -1.7, sd: 0.7 }, { mean: -2.4, sd: 0.65 }];

const phi = (z: number): number => Math.exp(-z * z / 2) / Math.sqrt(2 * Math.PI);

/** Brute force over a fine grid of each member's T (±9 sd, 40,001 points, trapezoid weights): weighted samples of the risk. */
function samples(heads: MediatedHead[], ts: TscoreNormal[], t: number): { r: number; w: number }[] {
  const out: { r: number; w: number }[] = [];
  const n = 40_001;
  ts.forEach((tn, m) => {
    const zs = Array.from({ length: n }, (_, i) => -9 + (18 * i) / (n - 1));
    const dz = 18 / (n - 1);
    zs.forEach((z, i) => {
      const T = tn.mean + tn.sd * z;
      let h = 0;
      for (const x of heads) {
        let k = 0;
        while (k + 1 < x.grid.length && x.grid[k + 1]! <= t + 1e-9) k++;
        h = Math.max(h, x.h0[k]! * Math.exp(x.base[m]! + x.gamma[m]! * T));
      }
      out.push({ r: 1 - Math.exp(-h), w: (phi(z) * dz * (i === 0 || i === n - 1 ? 0.5 : 1)) / ts.length });
    });
  });
  return out;
}
const meanOf = (s: { r: number; w: number }[]): number => s.reduce((a, x) => a + x.r * x.w, 0) / s.reduce((a, x) => a + x.w, 0);
function quantileOf(s: { r: number; w: number }[], q: number): number {
  const sorted = [...s].sort((a, b) => a.r - b.r);
  const total = sorted.reduce((a, x) => a + x.w, 0);
  let c = 0;
  for (const x of sorted) {
    c += x.w / total;
    if (c >= q) return x.r;
  }
  return sorted.at(-1)!.r;
}
const tailOf = (s: { r: number; w: number }[], r: number): number => s.filter((x) => x.r >= r).reduce((a, x) => a + x.w, 0) / s.reduce((a, x) => a + x.w, 0);

describe('Gauss-Hermite rule (probabilists\')', () => {
  test('16 nodes: weights sum to 1, moments of N(0,1) exact up to degree 31, largest node 6.6308781', () => {
    const { nodes, weights } = gaussHermite(16);
    assert.equal(nodes.length, 16);
    const moment = (k: number): number => nodes.reduce((a, x, j) => a + weights[j]! * x ** k, 0);
    assert.ok(Math.abs(moment(0) - 1) < 1e-13);
    assert.ok(Math.abs(moment(1)) < 1e-13);
    let dfact = 1; // (k−1)!! = E Z^k for even k
    for (let k = 2; k <= 30; k += 2) {
      dfact *= k - 1;
      assert.ok(Math.abs(moment(k) / dfact - 1) < 1e-9, `E Z^${k}: ${moment(k)} vs ${dfact}`);
    }
    assert.ok(Math.abs(nodes.at(-1)! - 6.6308781983931) < 1e-9, `largest node ${nodes.at(-1)}`);
    assert.throws(() => gaussHermite(0), RangeError);
  });
});

describe('T-score mixture risk', () => {
  const hipOut = new MediatedOutcome([hip], image, 16);
  const mofOut = new MediatedOutcome([mof, hip], image, 16);

  test('mean risk equals the brute-force integral; the 2.5/97.5 percentiles and tail probabilities equal the fine-grid ones', () => {
    for (const [name, out, heads] of [['hip', hipOut, [hip]], ['mof', mofOut, [mof, hip]]] as const) {
      for (const t of [1, 5, 10]) {
        const s = samples([...heads], image, t);
        const r = out.riskAt(t);
        // The composite MOF risk has a kink where the hip floor starts to bind, which the 16-node rule integrates to
        // about 5e-4 (relative; measured 4.4e-4 at 1 year); the smooth hip risk to better than 1e-4.
        assert.ok(Math.abs(r.risk / meanOf(s) - 1) < (name === 'hip' ? 1e-4 : 1e-3), `${name} ${t}y mean ${r.risk} vs ${meanOf(s)}`);
        assert.ok(Math.abs(r.lower / quantileOf(s, 0.025) - 1) < 2e-3, `${name} ${t}y lower ${r.lower} vs ${quantileOf(s, 0.025)}`);
        assert.ok(Math.abs(r.upper / quantileOf(s, 0.975) - 1) < 2e-3, `${name} ${t}y upper ${r.upper} vs ${quantileOf(s, 0.975)}`);
        assert.ok(r.lower < r.risk && r.risk < r.upper);
        for (const thr of [r.lower, r.risk, (r.risk + r.upper) / 2]) {
          assert.ok(Math.abs(out.probabilityAtLeast(t, thr) - tailOf(s, thr)) < 1e-3, `${name} ${t}y P(≥ ${thr})`);
        }
      }
    }
  });

  test('MOF is at least hip at every horizon, bound, curve point and threshold; the hip floor binds for this pair', () => {
    const mofAlone = new MediatedOutcome([mof], image, 16);
    assert.ok(mofOut.floorRaised(mofOut.curve()), 'the constructed MOF head is below hip somewhere');
    assert.equal(mofAlone.floorRaised(mofAlone.curve()), false);
    // A floor far below the MOF head raises nothing.
    const lowHip: MediatedHead = { ...hip, base: hip.base.map((b) => b - 5) };
    assert.equal(new MediatedOutcome([mof, lowHip], image, 16).floorRaised(new MediatedOutcome([mof, lowHip], image, 16).curve()), false);
    assert.ok(grid.some((t) => mofAlone.quantile(t, 0.975) < hipOut.quantile(t, 0.975) || mofAlone.meanRisk(t) < hipOut.meanRisk(t)), 'the MOF head alone breaks MOF ≥ hip');
    const mc = mofOut.curve();
    const hc = hipOut.curve();
    mc.forEach((p, i) => {
      assert.ok(p.survival <= hc[i]!.survival + 1e-12, `survival at ${p.years}`);
      assert.ok(p.lower <= hc[i]!.lower + 1e-9 && p.upper <= hc[i]!.upper + 1e-9, `band at ${p.years}`);
    });
    for (const thr of [0.01, 0.03, 0.05, 0.1, 0.2, 0.3]) assert.ok(mofOut.probabilityAtLeast(10, thr) >= hipOut.probabilityAtLeast(10, thr) - 1e-12, `P(≥ ${thr})`);
  });

  test('a measured T-score (sd 0.1) gives a narrower interval around its own value; a point mass gives no interval', () => {
    const dxa = image.map(() => ({ mean: -2.6, sd: 0.1 }));
    const withDxa = new MediatedOutcome([hip], dxa, 16).riskAt(10);
    const est = hipOut.riskAt(10);
    assert.ok(withDxa.upper - withDxa.lower < (est.upper - est.lower) / 2, `${withDxa.upper - withDxa.lower} vs ${est.upper - est.lower}`);
    const point = new MediatedOutcome([hip], image.map(() => ({ mean: -2.6, sd: 0 })), 16);
    const p = point.riskAt(10);
    // Three members at one T still differ in their base log-hazards: the interval is their spread only.
    const perMember = hip.base.map((b, m) => 1 - Math.exp(-hipH0[120]! * Math.exp(b + hip.gamma[m]! * -2.6)));
    assert.ok(Math.abs(p.lower - Math.min(...perMember)) < 1e-8 && Math.abs(p.upper - Math.max(...perMember)) < 1e-8);
  });

  test('the log-hazard spread is the exact mixture sd (variance of member means plus mean of γ²σ²)', () => {
    const sp = hipOut.logHazardSpread();
    const means = hip.base.map((b, m) => b + hip.gamma[m]! * image[m]!.mean);
    const mean = means.reduce((a, x) => a + x, 0) / 3;
    const variance = means.reduce((a, x, m) => a + (x - mean) ** 2 + (hip.gamma[m]! * image[m]!.sd) ** 2, 0) / 3;
    assert.ok(Math.abs(sp.mean - mean) < 1e-12);
    assert.ok(Math.abs(sp.sd - Math.sqrt(variance)) < 1e-10);
  });

  test('T-score summary: mixture mean, sd and percentiles against a fine grid', () => {
    const s = tscoreSummary(image);
    const pts: { r: number; w: number }[] = [];
    for (const tn of image) for (let i = 0; i <= 20_000; i++) {
      const z = -9 + (18 * i) / 20_000;
      pts.push({ r: tn.mean + tn.sd * z, w: phi(z) });
    }
    assert.ok(Math.abs(s.mean - meanOf(pts)) < 1e-9);
    assert.ok(Math.abs(s.low - quantileOf(pts, 0.025)) < 2e-3 && Math.abs(s.high - quantileOf(pts, 0.975)) < 2e-3, `${s.low} ${s.high}`);
    assert.ok(s.sd > Math.max(...image.map((t) => t.sd)));
  });

  test('inconsistent inputs are refused', () => {
    assert.throws(() => new MediatedOutcome([{ ...hip, gamma: [-1] }], image, 16), RangeError);
    assert.throws(() => new MediatedOutcome([hip], [{ mean: Number.NaN, sd: 1 }, image[1]!, image[2]!], 16), RangeError);
  });
});

describe('unmeasured-determinants log-hazard term (u ~ N(−σ²/2, σ), shared, independent of T)', () => {
  const SIGMA = 0.3;
  const Z975 = 1.959963984540054;
  const withU = { unmeasuredLogHazardSd: SIGMA };
  const risk = (logH: number): number => -Math.expm1(-Math.exp(logH));
  /** Upper tail of the standard normal from the series / continued fraction of erf below (independent of decision.ts). */
  const upper = (z: number): number => 0.5 * (1 - erf(z / Math.SQRT2));

  test('σ = 0 given explicitly is the model without the term, number for number', () => {
    for (const heads of [[hip], [mof, hip]]) {
      const a = new MediatedOutcome(heads, image, 16);
      const b = new MediatedOutcome(heads, image, 16, { unmeasuredLogHazardSd: 0 });
      assert.deepEqual(b.curve(), a.curve());
      assert.deepEqual(b.logHazardSpread(), a.logHazardSpread());
      for (const thr of [0.01, 0.05, 0.2]) assert.equal(b.probabilityAtLeast(10, thr), a.probabilityAtLeast(10, thr));
    }
  });

  test('the bivariate normal upper tail equals a fine integral, for every correlation branch and both signs', () => {
    for (const r of [-0.999, -0.95, -0.6, -0.1, 0, 0.2, 0.5, 0.8, 0.93, 0.99, 0.99999, 1]) {
      for (const h of [-2, -0.3, 0.7, 2.5]) {
        for (const k of [-1.5, 0.2, 3]) {
          // P(X > h, Y > k) = ∫_h^∞ φ(x) P(Y > k | x) dx, Simpson on 20,000 intervals.
          // r = 1: Y = X, the integral starts at max(h, k).
          const a = r === 1 ? Math.max(h, k) : Math.max(h, -12);
          const n = 20_000;
          const dx = (12 - a) / n;
          let s = 0;
          for (let i = 0; i <= n; i++) {
            const x = a + i * dx;
            const cond = r === 1 ? 1 : 0.5 * (1 - erf((k - r * x) / Math.sqrt(2 * (1 - r * r))));
            s += phi(x) * cond * (i === 0 || i === n ? 1 : i % 2 ? 4 : 2);
          }
          const want = (s * dx) / 3;
          assert.ok(Math.abs(bivariateUpperTail(h, k, r) - want) < 2e-7, `h ${h} k ${k} r ${r}: ${bivariateUpperTail(h, k, r)} vs ${want}`);
        }
      }
    }
  });

  test('one member with a known T-score: log H is normal with sd σ (closed-form percentiles, tail and mean)', () => {
    const b = 1.1;
    const g = -0.9;
    const mu = -2.2;
    const head: MediatedHead = { grid, h0: hipH0, base: [b], gamma: [g] };
    const out = new MediatedOutcome([head], [{ mean: mu, sd: 0 }], 16, withU);
    const centre = Math.log(hipH0[120]!) + b + g * mu - SIGMA ** 2 / 2;
    const r = out.riskAt(10);
    // Measured: 5e-8 relative (the 1e-7 root tolerance on log H and the 1.2e-7 normal tail of decision.ts).
    assert.ok(Math.abs(r.lower / risk(centre - Z975 * SIGMA) - 1) < 1e-6, `lower ${r.lower} vs ${risk(centre - Z975 * SIGMA)}`);
    assert.ok(Math.abs(r.upper / risk(centre + Z975 * SIGMA) - 1) < 1e-6, `upper ${r.upper} vs ${risk(centre + Z975 * SIGMA)}`);
    for (const z of [-1.5, 0, 0.8, 2.2]) {
      const thr = risk(centre + z * SIGMA);
      assert.ok(Math.abs(out.probabilityAtLeast(10, thr) - upper(z)) < 3e-7, `P(≥ ${thr})`);
    }
    // Mean: Gauss-Hermite over u against a fine Simpson integral over N(centre, σ).
    let s = 0;
    const n = 20_000;
    for (let i = 0; i <= n; i++) {
      const z = -12 + (24 * i) / n;
      s += phi(z) * risk(centre + SIGMA * z) * (i === 0 || i === n ? 1 : i % 2 ? 4 : 2);
    }
    const mean = (s * 24) / n / 3;
    assert.ok(Math.abs(r.risk / mean - 1) < 1e-9, `mean ${r.risk} vs ${mean}`);
  });

  test('one member with an estimated T-score: γT + u is normal with variance γ²σ_T² + σ² (closed form)', () => {
    const b = 0.9;
    const g = -0.8;
    const tn = { mean: -1.9, sd: 0.6 };
    const out = new MediatedOutcome([{ grid, h0: hipH0, base: [b], gamma: [g] }], [tn], 16, withU);
    const sd = Math.sqrt((g * tn.sd) ** 2 + SIGMA ** 2);
    for (const t of [2, 10]) {
      const centre = Math.log(hipH0[t * 12]!) + b + g * tn.mean - SIGMA ** 2 / 2;
      const r = out.riskAt(t);
      assert.ok(Math.abs(r.lower / risk(centre - Z975 * sd) - 1) < 1e-6, `${t}y lower ${r.lower} vs ${risk(centre - Z975 * sd)}`);
      assert.ok(Math.abs(r.upper / risk(centre + Z975 * sd) - 1) < 1e-6, `${t}y upper ${r.upper} vs ${risk(centre + Z975 * sd)}`);
      assert.ok(Math.abs(out.probabilityAtLeast(t, risk(centre + 0.7 * sd)) - upper(0.7)) < 3e-7, `${t}y P(≥ 0.7 sd above the centre)`);
    }
  });

  test('MOF with its hip floor: tail and percentiles equal a fine integral over T of the exact tail in u', () => {
    const mofOut = new MediatedOutcome([mof, hip], image, 16, withU);
    for (const t of [1, 10]) {
      const i = t * 12;
      // P(log H ≥ x) = (1/M) Σ_m ∫ φ(z) P(u ≥ x − max_k(log H0_k + b_mk + γ_mk·T)) dz, T = μ_m + σ_m·z.
      const tail = (x: number): number => {
        let p = 0;
        image.forEach((tn, m) => {
          const n = 4000;
          let s = 0;
          for (let j = 0; j <= n; j++) {
            const z = -9 + (18 * j) / n;
            const T = tn.mean + tn.sd * z;
            const top = Math.max(Math.log(mofH0[i]!) + mof.base[m]! + mof.gamma[m]! * T, Math.log(hipH0[i]!) + hip.base[m]! + hip.gamma[m]! * T);
            s += phi(z) * upper((x - top + SIGMA ** 2 / 2) / SIGMA) * (j === 0 || j === n ? 1 : j % 2 ? 4 : 2);
          }
          p += (s * 18) / n / 3 / image.length;
        });
        return p;
      };
      const r = mofOut.riskAt(t);
      const logH = (v: number): number => Math.log(-Math.log1p(-v));
      assert.ok(Math.abs(tail(logH(r.lower)) - 0.975) < 2e-6, `${t}y lower: tail ${tail(logH(r.lower))}`);
      assert.ok(Math.abs(tail(logH(r.upper)) - 0.025) < 2e-6, `${t}y upper: tail ${tail(logH(r.upper))}`);
      for (const thr of [r.risk, (r.risk + r.upper) / 2]) assert.ok(Math.abs(mofOut.probabilityAtLeast(t, thr) - tail(logH(thr))) < 2e-6, `${t}y P(≥ ${thr})`);
    }
  });

  test('MOF is at least hip at every mean, percentile, curve point and threshold (random heads, mixed-sign γ)', () => {
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let floorBound = 0;
    for (let c = 0; c < 25; c++) {
      const M = 4;
      const h: MediatedHead = { grid, h0: hipH0, base: Array.from({ length: M }, () => 2 * rand() - 0.5), gamma: Array.from({ length: M }, () => -1.2 * rand()) };
      const f: MediatedHead = { grid, h0: mofH0, base: Array.from({ length: M }, () => 2 * rand() - 1.5), gamma: Array.from({ length: M }, () => 1.4 * rand() - 0.9) };
      const ts = Array.from({ length: M }, () => ({ mean: -3 + 3 * rand(), sd: c % 5 === 0 ? 0.1 : 0.2 + 0.6 * rand() }));
      const sigma = 0.1 + 0.5 * rand();
      const hipC = new MediatedOutcome([h], ts, 16, { unmeasuredLogHazardSd: sigma }).curve();
      const mofO = new MediatedOutcome([f, h], ts, 16, { unmeasuredLogHazardSd: sigma });
      const mofC = mofO.curve();
      if (mofO.floorRaised(mofC)) floorBound++;
      mofC.forEach((p, i) => {
        const q = hipC[i]!;
        assert.ok(p.survival <= q.survival + 1e-12, `case ${c} survival at ${p.years}`);
        // Both percentiles are found to 1e-7 on log H: a relative 1e-7 of the cumulative hazard.
        const slack = 2e-7 * Math.max(1e-12, -Math.log(q.lower));
        assert.ok(p.lower <= q.lower + slack && p.upper <= q.upper + 2e-7 * -Math.log(Math.max(q.upper, 1e-300)), `case ${c} band at ${p.years}`);
      });
      const hipO = new MediatedOutcome([h], ts, 16, { unmeasuredLogHazardSd: sigma });
      for (const thr of [0.005, 0.03, 0.1, 0.2, 0.4]) assert.ok(mofO.probabilityAtLeast(10, thr) >= hipO.probabilityAtLeast(10, thr), `case ${c} P(≥ ${thr})`);
    }
    assert.ok(floorBound >= 5, `the hip floor binds in ${floorBound} of 25 cases`);
  });

  test('the interval is strictly wider than without the term; the mean hazard is unchanged (E exp(u) = 1)', () => {
    for (const heads of [[hip], [mof, hip]]) {
      const off = new MediatedOutcome(heads, image, 16);
      const on = new MediatedOutcome(heads, image, 16, withU);
      for (const t of [1, 5, 10]) {
        const a = off.riskAt(t);
        const b = on.riskAt(t);
        assert.ok(b.lower < a.lower && b.upper > a.upper, `${heads.length} heads ${t}y: [${b.lower}, ${b.upper}] vs [${a.lower}, ${a.upper}]`);
      }
      // With a tiny baseline the risk is the cumulative hazard to 1e-8: its mean is E exp(η), unchanged by u.
      const tiny = heads.map((x) => ({ ...x, h0: x.h0.map((v) => v * 1e-6) }));
      const ratio = new MediatedOutcome(tiny, image, 16, withU).meanRisk(10) / new MediatedOutcome(tiny, image, 16).meanRisk(10);
      assert.ok(Math.abs(ratio - 1) < 1e-6, `mean hazard ratio ${ratio}`);
    }
  });

  test('the log-hazard spread: mean moved by −σ²/2, variance grown by σ²; the floor check uses the same σ', () => {
    const off = new MediatedOutcome([hip], image, 16).logHazardSpread();
    const on = new MediatedOutcome([hip], image, 16, withU).logHazardSpread();
    assert.ok(Math.abs(on.mean - (off.mean - SIGMA ** 2 / 2)) < 1e-12, `mean ${on.mean} vs ${off.mean}`);
    assert.ok(Math.abs(on.sd ** 2 - (off.sd ** 2 + SIGMA ** 2)) < 1e-12, `sd ${on.sd} vs ${off.sd}`);
    const lowHip: MediatedHead = { ...hip, base: hip.base.map((b) => b - 5) };
    const far = new MediatedOutcome([mof, lowHip], image, 16, withU);
    assert.equal(far.floorRaised(far.curve()), false);
    const near = new MediatedOutcome([mof, hip], image, 16, withU);
    assert.equal(near.floorRaised(near.curve()), true);
  });

  test('a negative or non-finite σ, or σ > 0 with more than one floor, is refused', () => {
    assert.throws(() => new MediatedOutcome([hip], image, 16, { unmeasuredLogHazardSd: -0.1 }), RangeError);
    assert.throws(() => new MediatedOutcome([hip], image, 16, { unmeasuredLogHazardSd: Number.NaN }), RangeError);
    assert.throws(() => new MediatedOutcome([mof, hip, hip], image, 16, withU), RangeError);
  });
});

/** Error function (Abramowitz & Stegun 7.1.26 is too coarse here): by its Maclaurin series, or 1 − its continued fraction tail. */
function erf(x: number): number {
  if (x < 0) return -erf(-x);
  if (x < 3) {
    let term = x;
    let s = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      s += term / (2 * n + 1);
      if (Math.abs(term) < 1e-17) break;
    }
    return (2 / Math.sqrt(Math.PI)) * s;
  }
  // erfc(x) = exp(−x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) (Lentz, backwards).
  let f = x;
  for (let n = 60; n >= 1; n--) f = x + n / 2 / f;
  return 1 - Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

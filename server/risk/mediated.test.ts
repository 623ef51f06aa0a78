/**
 * The T-score mixture of a T-score-mediated model against brute force: the Gauss-Hermite rule against known moments,
 * the mixture mean against a fine trapezoid integral, the percentiles and tail probabilities against a fine grid over
 * each member's T-score, and MOF ≥ hip at every quantile, curve point and threshold.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gaussHermite, MediatedOutcome, tscoreSummary, type MediatedHead, type TscoreNormal } from './mediated.ts';

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

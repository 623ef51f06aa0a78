/** The decision: threshold probabilities from the predictive distribution, the tier rule on shown values, wording. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decide, DECISION_DEFAULTS, normalUpperTail, probabilityAbove, tierOf, type DecisionSettings, type HazardComponent, type OutcomeDecision } from './decision.ts';

const SETTINGS: DecisionSettings = { tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 }, decisionProbability: 0.8, guideline: DECISION_DEFAULTS.guideline };
const risk = (c: HazardComponent, z = 0): number => 1 - Math.exp(-c.h0 * Math.exp(c.eta + z * c.s));

/** A deterministic standard-normal sample (Box–Muller over mulberry32). */
function normals(n: number): number[] {
  let a = 12345;
  const u = (): number => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

const od = (outcome: 'hip' | 'mof', shownPercent: number, probabilityAbove: number | null): OutcomeDecision => ({ outcome, thresholdPercent: outcome === 'hip' ? 3 : 20, shownPercent, probabilityAbove });

describe('decision', () => {
  test('normal tail: known values', () => {
    for (const [x, p] of [[0, 0.5], [1.959963985, 0.025], [-1.644853627, 0.95], [3, 0.0013499]] as const) assert.ok(Math.abs(normalUpperTail(x) - p) < 2e-7, `${x}`);
    assert.equal(normalUpperTail(Infinity), 0);
    assert.equal(normalUpperTail(-Infinity), 1);
  });

  test('probabilityAbove equals the share of the predictive distribution above the threshold (Monte Carlo)', () => {
    const zs = normals(200_000);
    const hip: HazardComponent = { h0: 0.0107, eta: 1.1, s: 0.9 };
    const mofOwn: HazardComponent = { h0: 0.042, eta: 0.2, s: 0.6 };
    for (const [components, thr] of [[[hip], 0.03], [[hip], 0.2], [[mofOwn, hip], 0.2], [[mofOwn, hip], 0.1]] as const) {
      // Comonotone: every component at the same quantile z (the construction of the shown interval).
      const share = zs.filter((z) => Math.max(...components.map((c) => risk(c, z))) >= thr).length / zs.length;
      const p = probabilityAbove(components, thr);
      assert.ok(Math.abs(p - share) < 0.004, `${p} vs ${share}`);
    }
    // The risk at the mean log-hazard sits at the median: probability ½ when the threshold is the point estimate.
    assert.ok(Math.abs(probabilityAbove([hip], risk(hip)) - 0.5) < 1e-7);
    // No spread (s = 0): a step at the point estimate.
    assert.equal(probabilityAbove([{ ...hip, s: 0 }], risk(hip) - 1e-6), 1);
    assert.equal(probabilityAbove([{ ...hip, s: 0 }], risk(hip) + 1e-6), 0);
    assert.throws(() => probabilityAbove([hip], 3), RangeError);
  });

  test('another predictive distribution hands in its own tail probability: same decision as the components it equals', () => {
    const hip: HazardComponent = { h0: 0.0107, eta: 1.1, s: 0.9 };
    const mof: HazardComponent = { h0: 0.042, eta: 0.9, s: 0.6 };
    const input = { hip: { risk10: risk(hip), components: [hip] }, mof: { risk10: risk(mof), components: [mof, hip] } };
    const viaFunction = {
      hip: { risk10: risk(hip), components: (thr: number) => probabilityAbove([hip], thr) },
      mof: { risk10: risk(mof), components: (thr: number) => probabilityAbove([mof, hip], thr) },
    };
    assert.deepEqual(decide(viaFunction, SETTINGS), decide(input, SETTINGS));
    // The function is called with the threshold as a fraction; its answer is kept within [0, 1].
    const seen: number[] = [];
    const d = decide({ hip: { risk10: 0.05, components: (thr) => (seen.push(thr), 1.2) }, mof: { risk10: 0.12, components: null } }, SETTINGS);
    assert.deepEqual(seen, [0.03]);
    assert.equal(d.decision.hip.probabilityAbove, 1);
    assert.equal(d.decision.mof.probabilityAbove, null);
  });

  test('MOF includes hip: its probability above a threshold is never below the hip component\'s', () => {
    const hip: HazardComponent = { h0: 0.0107, eta: 3.7, s: 1.5 };
    const mofOwn: HazardComponent = { h0: 0.042, eta: 2.3, s: 0.8 };
    assert.ok(risk(mofOwn) < risk(hip), 'a case where the MOF head alone is below hip');
    const p = probabilityAbove([mofOwn, hip], 0.2);
    assert.equal(p, Math.max(probabilityAbove([mofOwn], 0.2), probabilityAbove([hip], 0.2)));
  });

  test('tier rule on the shown values: high needs the probability, borderline is moderate, 3.0% is never "below 3%"', () => {
    assert.equal(tierOf(od('hip', 5.2, 0.93), od('mof', 12, 0.01), SETTINGS), 'high');
    assert.equal(tierOf(od('hip', 3.1, 0.51), od('mof', 5.4, 0), SETTINGS), 'moderate', 'a hip risk of 3.1% with a wide interval is borderline');
    assert.equal(tierOf(od('hip', 3.0, null), od('mof', 8, null), SETTINGS), 'high', 'clinical-only 3.0% (2.96% unrounded) is at the threshold');
    assert.equal(tierOf(od('hip', 2.9, null), od('mof', 8, null), SETTINGS), 'low');
    assert.equal(tierOf(od('hip', 1.3, 0.24), od('mof', 4, 0.01), SETTINGS), 'moderate', 'below, but a probability ≥ 20% of being above');
    assert.equal(tierOf(od('hip', 1.3, 0.19), od('mof', 4, 0.01), SETTINGS), 'low');
    assert.equal(tierOf(od('hip', 1, 0.01), od('mof', 10, 0.05), SETTINGS), 'moderate', 'MOF in the moderate band');
    assert.equal(tierOf(od('hip', 1, 0.01), od('mof', 23, 0.8), SETTINGS), 'high', 'MOF alone can make it high');
  });

  test('decide: shown values, action, warranted only for high, meaning in plain words with numbers.ts formats', () => {
    const hip: HazardComponent = { h0: 0.0107, eta: Math.log(-Math.log(1 - 0.0296) / 0.0107), s: 0 };
    const clinicalOnly = decide({ hip: { risk10: 0.0296, components: null }, mof: { risk10: 0.08, components: null } }, SETTINGS);
    assert.equal(clinicalOnly.decision.hip.shownPercent, 3);
    assert.equal(clinicalOnly.decision.hip.probabilityAbove, null);
    assert.equal(clinicalOnly.tier, 'high');
    assert.equal(clinicalOnly.decision.action, 'refer-fls');
    assert.equal(clinicalOnly.decision.actionWarranted, true);
    assert.equal(clinicalOnly.decision.meaning, 'Above the 3% hip-fracture treatment threshold.');
    assert.deepEqual(clinicalOnly.decision.guideline, DECISION_DEFAULTS.guideline);

    const wide = { ...hip, eta: Math.log(-Math.log(1 - 0.031) / 0.0107), s: 0.92 };
    const borderline = decide({ hip: { risk10: risk(wide), components: [wide] }, mof: { risk10: 0.054, components: [{ h0: 0.042, eta: 0.27, s: 0.6 }, wide] } }, SETTINGS);
    assert.equal(borderline.tier, 'moderate');
    assert.equal(borderline.decision.action, 'order-dxa');
    assert.equal(borderline.decision.actionWarranted, false);
    assert.match(borderline.decision.meaning, /^Borderline: 3\.1% is at or above the 3% hip-fracture treatment threshold, but the probability of being above it is only 5\d%\.$/);

    const low = decide({ hip: { risk10: 0.006, components: [{ h0: 0.0107, eta: -0.58, s: 0.28 }] }, mof: { risk10: 0.022, components: [{ h0: 0.042, eta: -0.6, s: 0.55 }] } }, SETTINGS);
    assert.equal(low.tier, 'low');
    assert.equal(low.decision.action, 'none');
    assert.equal(low.decision.meaning, 'Below the 3% hip-fracture and 20% major-osteoporotic-fracture treatment thresholds (probability of being above them <1% and <1%).');
  });
});

/**
 * Local recalibration of the T-score head (hip-xray-v2 contract, `tscore_head.calibration`; amendment 1) from a
 * site's radiograph–DXA pairs, and an honest estimate of what it changes.
 *
 * The head outputs, per ensemble member m, a RAW predictive mean μ_m and sd σ_m. A calibration (a, b, s) turns them
 * into Normal(a + b·μ_m, s·σ_m); the predictive distribution is the equal-weight mixture over members, its point
 * estimate the mixture mean and its 95 % interval the mixture's 2.5th and 97.5th percentiles.
 *
 * Fitting (on raw outputs, like the manifest's calibration, so the file replaces it):
 * 1. a, b: ordinary least squares of the measured T-score on the member-average raw mean μ̄ — the regression of the
 *    measured value on the prediction, so E[measured | estimate] = estimate afterwards (calibration-in-the-large
 *    and slope). A slope ≤ 0 is refused (the head would carry no usable signal at this site).
 * 2. s: maximum likelihood of the measured values under the mixture with a and b fixed (golden-section search on
 *    log s in [0.05, 20]); a proper scoring rule, so the interval widens exactly as much as the site's scatter needs.
 *
 * Held-out figures ("after"): K-fold cross-validation over the pairs (default 5 folds, folds drawn with a seeded
 * generator): each pair is predicted with parameters fitted on the other folds only, and the pooled held-out
 * predictions give r, bias, coverage and Bland–Altman limits. "Before" is the calibration in force (the manifest's,
 * or a previous local file's) on the same pairs. The parameters written to the file are then fitted on all pairs.
 */
import { agreement, type Agreement, type AgreementPair } from '../monitoring/agreement.ts';

/** One member's raw head output. */
export interface RawMember {
  readonly mean: number;
  readonly sd: number;
}

export interface CalibrationParams {
  readonly intercept: number;
  readonly slope: number;
  readonly sdScale: number;
}

/** A radiograph's raw head outputs and the measured DXA T-score it is paired with. */
export interface RawPair {
  readonly raw: readonly RawMember[];
  readonly measured: number;
}

export class RecalibrationError extends Error {
  override readonly name = 'RecalibrationError';
}

const SQRT2 = Math.SQRT2;

/** Standard normal CDF (Abramowitz & Stegun 7.1.26 erf, |error| < 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}

/** The calibrated members of a raw output. */
export function calibratedMembers(raw: readonly RawMember[], p: CalibrationParams): RawMember[] {
  return raw.map((m) => ({ mean: p.intercept + p.slope * m.mean, sd: p.sdScale * m.sd }));
}

/** Quantile `q` of the equal-weight mixture of normals, by bisection on its CDF (to 1e-6 T units). */
export function mixtureQuantile(members: readonly RawMember[], q: number): number {
  const cdf = (x: number): number => members.reduce((a, m) => a + normalCdf((x - m.mean) / m.sd), 0) / members.length;
  let lo = Math.min(...members.map((m) => m.mean - 10 * m.sd));
  let hi = Math.max(...members.map((m) => m.mean + 10 * m.sd));
  for (let i = 0; i < 100 && hi - lo > 1e-6; i++) {
    const mid = (lo + hi) / 2;
    if (cdf(mid) < q) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The estimate of one radiograph under a calibration: mixture mean, sd and 95 % interval. */
export function estimateOf(raw: readonly RawMember[], p: CalibrationParams): { mean: number; sd: number; low: number; high: number } {
  const ms = calibratedMembers(raw, p);
  const mean = ms.reduce((a, m) => a + m.mean, 0) / ms.length;
  const second = ms.reduce((a, m) => a + m.sd * m.sd + m.mean * m.mean, 0) / ms.length;
  return { mean, sd: Math.sqrt(Math.max(0, second - mean * mean)), low: mixtureQuantile(ms, 0.025), high: mixtureQuantile(ms, 0.975) };
}

const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

/** −log likelihood of the measured values under the calibrated mixtures. */
function negLogLik(pairs: readonly RawPair[], p: CalibrationParams): number {
  let nll = 0;
  for (const pr of pairs) {
    // log-sum-exp over members, equal weights
    const logs = calibratedMembers(pr.raw, p).map((m) => -LOG_SQRT_2PI - Math.log(m.sd) - 0.5 * ((pr.measured - m.mean) / m.sd) ** 2);
    const top = Math.max(...logs);
    nll -= top + Math.log(logs.reduce((a, l) => a + Math.exp(l - top), 0) / logs.length);
  }
  return nll;
}

const memberAverage = (raw: readonly RawMember[]): number => raw.reduce((a, m) => a + m.mean, 0) / raw.length;

/** Fits (a, b, s) on pairs (see the module comment). Needs at least 3 pairs with spread in the raw means. */
export function fitRecalibration(pairs: readonly RawPair[]): CalibrationParams {
  if (pairs.length < 3) throw new RecalibrationError(`a recalibration needs at least 3 pairs, got ${pairs.length}`);
  const x = pairs.map((p) => memberAverage(p.raw));
  const y = pairs.map((p) => p.measured);
  const n = pairs.length;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (x[i]! - mx) ** 2;
    sxy += (x[i]! - mx) * (y[i]! - my);
  }
  if (!(sxx > 1e-12)) throw new RecalibrationError('the radiographs\' raw T-score estimates do not vary: no slope can be fitted');
  const slope = sxy / sxx;
  if (!(slope > 0)) throw new RecalibrationError(`the fitted slope is ${slope.toFixed(3)} (≤ 0): the estimates do not rise with measured DXA at this site; do not use the model here`);
  const intercept = my - slope * mx;
  // Golden-section search for the maximum-likelihood sd scale on log s.
  const f = (logS: number): number => negLogLik(pairs, { intercept, slope, sdScale: Math.exp(logS) });
  let lo = Math.log(0.05);
  let hi = Math.log(20);
  const g = (Math.sqrt(5) - 1) / 2;
  let c = hi - g * (hi - lo);
  let d = lo + g * (hi - lo);
  let fc = f(c);
  let fd = f(d);
  for (let i = 0; i < 80 && hi - lo > 1e-7; i++) {
    if (fc < fd) {
      hi = d;
      d = c;
      fd = fc;
      c = hi - g * (hi - lo);
      fc = f(c);
    } else {
      lo = c;
      c = d;
      fc = fd;
      d = lo + g * (hi - lo);
      fd = f(d);
    }
  }
  return { intercept, slope, sdScale: Math.exp((lo + hi) / 2) };
}

/** A small deterministic generator (mulberry32) for the fold assignment: same seed, same folds. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fold of each pair: a seeded shuffle dealt round-robin, so fold sizes differ by at most one. */
export function foldsOf(n: number, k: number, seed: number): number[] {
  const rnd = seededRandom(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const fold = new Array<number>(n).fill(0);
  order.forEach((idx, pos) => (fold[idx] = pos % k));
  return fold;
}

const toAgreementPair = (raw: readonly RawMember[], measured: number, p: CalibrationParams): AgreementPair => {
  const e = estimateOf(raw, p);
  return { mean: e.mean, low: e.low, high: e.high, measured };
};

export interface RecalibrationResult {
  /** Fitted on all pairs: what the file carries. */
  readonly params: CalibrationParams;
  /** The calibration in force, on every pair. */
  readonly before: Agreement;
  /** Cross-validated: each pair predicted by parameters fitted without its fold. */
  readonly after: Agreement;
  /** After, computed in-sample with the final parameters (optimistic; for comparison only). */
  readonly afterInSample: Agreement;
  readonly folds: number;
  /** Parameters of each fold's fit, to show how stable the fit is. */
  readonly foldParams: CalibrationParams[];
  /** The pairs behind `before` and `after` (same order as the input), for plots. */
  readonly pairs: { readonly before: AgreementPair[]; readonly after: AgreementPair[] };
}

/** Fits the recalibration and measures it by K-fold cross-validation (see the module comment). */
export function recalibrate(pairs: readonly RawPair[], current: CalibrationParams, opts: { folds: number; seed: number }): RecalibrationResult {
  const k = Math.min(opts.folds, pairs.length);
  if (k < 2) throw new RecalibrationError(`cross-validation needs at least 2 folds and as many pairs (have ${pairs.length} pairs)`);
  const fold = foldsOf(pairs.length, k, opts.seed);
  const heldOut: AgreementPair[] = new Array<AgreementPair>(pairs.length);
  const foldParams: CalibrationParams[] = [];
  for (let f = 0; f < k; f++) {
    const fit = fitRecalibration(pairs.filter((_, i) => fold[i] !== f));
    foldParams.push(fit);
    pairs.forEach((p, i) => {
      if (fold[i] === f) heldOut[i] = toAgreementPair(p.raw, p.measured, fit);
    });
  }
  const params = fitRecalibration(pairs);
  const before = pairs.map((p) => toAgreementPair(p.raw, p.measured, current));
  return {
    params,
    before: agreement(before),
    after: agreement(heldOut),
    afterInSample: agreement(pairs.map((p) => toAgreementPair(p.raw, p.measured, params))),
    folds: k,
    foldParams,
    pairs: { before, after: heldOut },
  };
}

/**
 * Agreement of the radiograph's T-score estimate with measured DXA, on pairs (estimate, measured value): the figures
 * the site check reports before and after a local recalibration and that production monitoring keeps per site.
 *
 * - r: Pearson correlation of the estimate's mean with the measured T-score.
 * - bias: mean of (estimate − measured); Bland–Altman limits of agreement bias ± 1.96 · sd of the differences
 *   (Bland & Altman, Lancet 1986;327:307).
 * - coverage: share of measured values inside the estimate's 95 % predictive interval. The interval is calibrated
 *   against MEASURED DXA (hip-xray-v2 contract), so a well-calibrated head covers about 0.95 of measured values.
 */

/** One estimate paired with the measured DXA T-score. */
export interface AgreementPair {
  /** Predictive mean of the estimate. */
  readonly mean: number;
  /** 95 % predictive interval of the estimate. */
  readonly low: number;
  readonly high: number;
  readonly measured: number;
}

export interface Agreement {
  readonly n: number;
  /** null with fewer than 3 pairs or without spread in either variable. */
  readonly r: number | null;
  readonly bias: number | null;
  readonly coverage: number | null;
  /** sd of the differences (n − 1); null with fewer than 2 pairs. */
  readonly sdDiff: number | null;
  /** Bland–Altman 95 % limits of agreement; null with fewer than 2 pairs. */
  readonly limits: { readonly lower: number; readonly upper: number } | null;
  /** Mean absolute difference. */
  readonly mae: number | null;
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** Pearson correlation; null with fewer than 3 values or a constant variable. */
export function pearson(x: readonly number[], y: readonly number[]): number | null {
  const n = Math.min(x.length, y.length);
  if (n < 3) return null;
  const mx = sum(x.slice(0, n)) / n;
  const my = sum(y.slice(0, n)) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (!(sxx > 0) || !(syy > 0)) return null;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/** The agreement figures of a set of pairs (all null/zero for none). */
export function agreement(pairs: readonly AgreementPair[]): Agreement {
  const n = pairs.length;
  if (n === 0) return { n: 0, r: null, bias: null, coverage: null, sdDiff: null, limits: null, mae: null };
  const diff = pairs.map((p) => p.mean - p.measured);
  const bias = sum(diff) / n;
  const sdDiff = n >= 2 ? Math.sqrt(sum(diff.map((d) => (d - bias) ** 2)) / (n - 1)) : null;
  return {
    n,
    r: pearson(pairs.map((p) => p.mean), pairs.map((p) => p.measured)),
    bias,
    coverage: pairs.filter((p) => p.measured >= p.low && p.measured <= p.high).length / n,
    sdDiff,
    limits: sdDiff === null ? null : { lower: bias - 1.96 * sdDiff, upper: bias + 1.96 * sdDiff },
    mae: sum(diff.map(Math.abs)) / n,
  };
}

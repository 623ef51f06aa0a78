/**
 * From the ensemble's log-hazards to survival curves, risks and 95 % intervals, exactly as the manifest's
 * `risk_model` and `uncertainty` sections define them (models/training README, "Using the artefact"):
 * risk_k(t) = 1 − exp(−H0_k(t)·exp(η̄_k)), η̄ = member mean; interval: η̄ ± f_k·z·sd (sample sd over members,
 * ddof from the manifest), mapped through the same formula; H0(t) = value at the last grid point ≤ t.
 */
export interface EnsembleSpread {
  etaMean: number;
  sd: number;
  /** Half-width on the log-hazard scale: interval factor × z × sd. */
  half: number;
}

export function spread(etas: readonly number[], factor: number, z: number, ddof: number): EnsembleSpread {
  const n = etas.length;
  const mean = etas.reduce((a, b) => a + b, 0) / n;
  const ss = etas.reduce((a, b) => a + (b - mean) ** 2, 0);
  const sd = n - ddof > 0 ? Math.sqrt(ss / (n - ddof)) : 0;
  return { etaMean: mean, sd, half: factor * z * sd };
}

/** H0(t): value at the last grid point ≤ t (step function). */
export function baselineAt(grid: readonly number[], h0: readonly number[], t: number): number {
  let lo = 0;
  let hi = grid.length - 1;
  if (t < grid[0]!) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (grid[mid]! <= t + 1e-9) lo = mid;
    else hi = mid - 1;
  }
  return h0[lo]!;
}

export const riskFrom = (h0: number, eta: number): number => 1 - Math.exp(-h0 * Math.exp(eta));

export interface RiskWithInterval {
  years: number;
  risk: number;
  lower: number;
  upper: number;
}

export interface CurvePoint {
  years: number;
  survival: number;
  lower: number;
  upper: number;
}

export function risksAt(grid: readonly number[], h0: readonly number[], s: EnsembleSpread, horizons: readonly number[]): RiskWithInterval[] {
  return horizons.map((t) => {
    const b = baselineAt(grid, h0, t);
    return { years: t, risk: riskFrom(b, s.etaMean), lower: riskFrom(b, s.etaMean - s.half), upper: riskFrom(b, s.etaMean + s.half) };
  });
}

/** Survival curve on the manifest's grid (monthly 0–10 y): point estimate and 95 % band (lower = pessimistic). */
export function survivalCurve(grid: readonly number[], h0: readonly number[], s: EnsembleSpread): CurvePoint[] {
  return grid.map((t, i) => {
    const b = h0[i]!;
    return { years: t, survival: 1 - riskFrom(b, s.etaMean), lower: 1 - riskFrom(b, s.etaMean + s.half), upper: 1 - riskFrom(b, s.etaMean - s.half) };
  });
}

/**
 * From the ensemble's log-hazards to survival curves, risks and 95 % intervals, exactly as the manifest's
 * `risk_model` and `uncertainty` sections define them (models/training README, "Using the artefact"):
 * risk_k(t) = 1 − exp(−H0_k(t)·exp(η̄_k)), η̄ = member mean; interval: η̄ ± f_k·z·sd (sample sd over members,
 * ddof from the manifest), mapped through the same formula; H0(t) = value at the last grid point ≤ t.
 *
 * Composite outcomes. A major osteoporotic fracture (MOF) is the first of a hip, wrist, spine or shoulder fracture,
 * so the time to the first MOF is never later than the time to the first hip fracture and its cumulative hazard is
 * never below the hip's: H_mof(t) ≥ H_hip(t) at every t. The two heads of the model are fitted separately and can
 * break that (a patient whose radiograph drives the hip head harder than the MOF head). {@link compositeRisksAt} and
 * {@link compositeCurve} therefore take a list of hazard terms and use, at every time and at every quantile of the
 * predictive distribution (the point estimate η̄ and each bound η̄ ± f·z·sd), the largest cumulative hazard: MOF =
 * max(MOF head, hip head). This is the smallest change that makes the pair coherent, it leaves every MOF number that
 * was already at or above hip untouched, and the probabilities of decision.ts use the same construction.
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

/** One outcome head: its baseline cumulative hazard on its grid and the ensemble spread of its log-hazard. */
export interface HazardTerm {
  grid: readonly number[];
  h0: readonly number[];
  spread: EnsembleSpread;
}

/** Cumulative hazards at t (point, lower bound, upper bound): the largest over the terms at each quantile. */
function hazardsAt(terms: readonly HazardTerm[], t: number): { point: number; lower: number; upper: number } {
  let point = 0;
  let lower = 0;
  let upper = 0;
  for (const x of terms) {
    const b = baselineAt(x.grid, x.h0, t);
    point = Math.max(point, b * Math.exp(x.spread.etaMean));
    lower = Math.max(lower, b * Math.exp(x.spread.etaMean - x.spread.half));
    upper = Math.max(upper, b * Math.exp(x.spread.etaMean + x.spread.half));
  }
  return { point, lower, upper };
}

const riskOfHazard = (h: number): number => 1 - Math.exp(-h);

/** Risks with 95 % intervals at the horizons when the cumulative hazard is the largest of `terms` (header). */
export function compositeRisksAt(terms: readonly HazardTerm[], horizons: readonly number[]): RiskWithInterval[] {
  return horizons.map((t) => {
    const h = hazardsAt(terms, t);
    return { years: t, risk: riskOfHazard(h.point), lower: riskOfHazard(h.lower), upper: riskOfHazard(h.upper) };
  });
}

/** Survival curve with its 95 % band on the first term's grid when the cumulative hazard is the largest of `terms`. */
export function compositeCurve(terms: readonly HazardTerm[]): CurvePoint[] {
  return terms[0]!.grid.map((t) => {
    const h = hazardsAt(terms, t);
    return { years: t, survival: 1 - riskOfHazard(h.point), lower: 1 - riskOfHazard(h.upper), upper: 1 - riskOfHazard(h.lower) };
  });
}

/** Whether the first term is below another at some time or quantile, i.e. the composite differs from it alone. */
export function compositeBinds(terms: readonly HazardTerm[]): boolean {
  const own = terms[0]!;
  return own.grid.some((t) => {
    const h = hazardsAt(terms, t);
    const b = baselineAt(own.grid, own.h0, t);
    const s = own.spread;
    return h.point > b * Math.exp(s.etaMean) || h.lower > b * Math.exp(s.etaMean - s.half) || h.upper > b * Math.exp(s.etaMean + s.half);
  });
}

export function risksAt(grid: readonly number[], h0: readonly number[], s: EnsembleSpread, horizons: readonly number[]): RiskWithInterval[] {
  return compositeRisksAt([{ grid, h0, spread: s }], horizons);
}

/** Survival curve on the manifest's grid (monthly 0–10 y): point estimate and 95 % band (lower = pessimistic). */
export function survivalCurve(grid: readonly number[], h0: readonly number[], s: EnsembleSpread): CurvePoint[] {
  return compositeCurve([{ grid, h0, spread: s }]);
}

/**
 * Shapes an outcome of the assessment into what the survival chart and its text alternative show (issue 7:
 * fracture-free probability 0–10 years, 95 % band, clinical-only curve for comparison, markers at 2/5/10 years).
 * Pure: the chart view (views/survival-curve.tsx) only draws what this returns, and the unit tests check it.
 *
 * Probabilities are in percent. The fused curve is on the manifest's monthly grid; the clinical-only
 * (QFracture-2012) curve is yearly, which is all QFracture publishes.
 */
import type { OutcomeResult } from './types.ts';

export interface XY {
  x: number;
  y: number;
}

export interface CurveMarker {
  years: number;
  /** Fracture-free probability (%) of the model shown. */
  survival: number;
  /** 95 % interval of it (%); null when clinical-only. */
  lower: number | null;
  upper: number | null;
}

export interface CurveData {
  /** Which model the main curve is: the fused image + clinical model, or QFracture-2012 alone. */
  shown: 'fused' | 'clinical-only';
  /** Main curve (fused model; null in clinical-only mode, where the clinical curve is the main one). */
  fused: XY[] | null;
  /** 95 % band of the fused curve: lower and upper bounds (null in clinical-only mode). */
  bandLower: XY[] | null;
  bandUpper: XY[] | null;
  /** QFracture-2012 alone. */
  clinical: XY[];
  markers: CurveMarker[];
  /** Lower bound of the y axis (%), a multiple of 5 just below everything drawn, so small risks stay visible. */
  yMin: number;
}

export const MARKER_YEARS = [2, 5, 10] as const;

const pct = (p: number): number => Math.round(p * 1e6) / 1e4; // fraction → percent, without float noise in labels

/** The chart's data for one outcome. */
export function curveData(o: OutcomeResult): CurveData {
  const clinical = o.clinicalOnly.curve.map((p) => ({ x: p.years, y: pct(p.survival) }));
  const fusedCurve = o.shown === 'fused' && o.fused ? o.fused.curve : null;
  const markers = MARKER_YEARS.map((t) => {
    const r = o.risks.find((x) => x.years === t);
    if (!r) throw new RangeError(`assessment has no ${t}-year risk`);
    return { years: t, survival: pct(1 - r.risk), lower: r.upper === null ? null : pct(1 - r.upper), upper: r.lower === null ? null : pct(1 - r.lower) };
  });
  const ys = [...clinical.map((p) => p.y), ...(fusedCurve ?? []).map((p) => pct(p.lower)), ...markers.map((m) => m.lower ?? m.survival)];
  const lowest = Math.min(...ys);
  const yMin = Math.max(0, Math.min(95, Math.floor((lowest - 1) / 5) * 5));
  return {
    shown: fusedCurve ? 'fused' : 'clinical-only',
    fused: fusedCurve ? fusedCurve.map((p) => ({ x: p.years, y: pct(p.survival) })) : null,
    bandLower: fusedCurve ? fusedCurve.map((p) => ({ x: p.years, y: pct(p.lower) })) : null,
    bandUpper: fusedCurve ? fusedCurve.map((p) => ({ x: p.years, y: pct(p.upper) })) : null,
    clinical,
    markers,
    yMin,
  };
}

/** One row of the text alternative: the shown model's probability and interval, and QFracture-2012's. */
export interface CurveTableRow {
  years: number;
  survival: number;
  lower: number | null;
  upper: number | null;
  clinical: number;
}

/** The text alternative of the chart: fracture-free probability at 1, 2, 5 and 10 years. */
export function curveTable(o: OutcomeResult): CurveTableRow[] {
  return o.risks.map((r) => {
    const c = o.clinicalOnly.risks.find((x) => x.years === r.years);
    if (!c) throw new RangeError(`assessment has no clinical-only ${r.years}-year risk`);
    return { years: r.years, survival: pct(1 - r.risk), lower: r.upper === null ? null : pct(1 - r.upper), upper: r.lower === null ? null : pct(1 - r.lower), clinical: pct(1 - c.risk) };
  });
}

/** The fused curve's point nearest to `years` (for tooltips that name the band at that time). */
export function nearestIndex(points: readonly XY[], years: number): number {
  let best = 0;
  for (let i = 1; i < points.length; i++) if (Math.abs(points[i]!.x - years) < Math.abs(points[best]!.x - years)) best = i;
  return best;
}

/**
 * The factors panel's rows: each QFracture-2012 factor's contribution for one outcome joined with the chart
 * resources it came from, and the factors that were missing (default used). Pure, for the unit tests.
 */
import type { Assessment, Outcome } from './types.ts';

export interface FactorRow {
  factor: string;
  label: string;
  /** Value as charted (raw) when known, else the coded value. */
  value: string;
  /** Log-hazard contribution as it enters the model shown (fused term when the image is used, else QFracture's). */
  logHazard: number;
  status: 'recorded' | 'derived' | 'default' | 'not-recorded';
  sources: string[];
  note?: string;
}

/** Coded values that read better as words (ClinRisk coding, QFracture-2012). */
const SMOKING = ['Non-smoker', 'Ex-smoker', 'Light smoker', 'Moderate smoker', 'Heavy smoker'];
const ALCOHOL = ['None', '< 1 unit/day', '1–2 units/day', '3–6 units/day', '7–9 units/day', '> 9 units/day'];

function valueText(factor: string, value: number, raw: number | string | undefined): string {
  if (factor === 'age') return `${value} y`;
  if (factor === 'bmi') return `${typeof raw === 'number' ? raw : value} kg/m²`;
  if (factor === 'smoke_cat') return SMOKING[value] ?? String(value);
  if (factor === 'alcohol_cat6') return ALCOHOL[value] ?? String(value);
  if (factor === 'ethrisk') return typeof raw === 'string' ? raw : `group ${value}`;
  if (factor.startsWith('b_') || factor.startsWith('fh_')) return value ? 'Yes' : 'No';
  return raw !== undefined ? String(raw) : String(value);
}

/** Rows for the chart and table, largest absolute contribution first. */
export function factorRows(a: Assessment, outcome: Outcome): FactorRow[] {
  const o = a.outcomes[outcome];
  const useFused = o.shown === 'fused';
  return o.contributions.map((c) => {
    const rec = a.factors.records.find((r) => r.factor === c.factor);
    return {
      factor: c.factor,
      label: c.label,
      value: valueText(c.factor, c.value, rec?.raw),
      logHazard: useFused && c.fused !== null ? c.fused : c.qfracture,
      status: rec?.status ?? 'recorded',
      sources: rec?.sources ?? [],
      ...(rec?.note ? { note: rec.note } : {}),
    };
  });
}

/** The factors that were missing from the chart, with the default the engine used. */
export function missingRows(a: Assessment): { label: string; value: string; note?: string }[] {
  return a.factors.records
    .filter((r) => r.status === 'default')
    .map((r) => ({ label: r.label, value: valueText(r.factor, r.value, r.raw), ...(r.note ? { note: r.note } : {}) }));
}

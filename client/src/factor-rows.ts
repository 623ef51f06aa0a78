/**
 * The factors panel's rows: each QFracture-2012 factor's contribution for one outcome joined with the chart
 * resources it came from, and the factors that were missing (default used), told in plain words ("Age 84 — raises
 * the risk the most"): no log hazards, no hazard ratios, no QFracture group numbers. Pure, for the unit tests.
 */
import { formatBmi } from '../../server/risk/numbers.ts';
import type { Assessment, Outcome } from './types.ts';

export type Strength = 'most' | 'a lot' | 'somewhat' | 'a little';

export interface FactorRow {
  factor: string;
  label: string;
  /** Value as charted (raw) when known, else the coded value, in words. */
  value: string;
  /** "Age 84", "History of falls", "Smoking: heavy smoker". */
  name: string;
  /** Contribution as it enters the model shown (fused term when the image is used, else QFracture's); for ordering only. */
  logHazard: number;
  effect: 'raises' | 'lowers';
  strength: Strength;
  /** "raises the risk the most", "lowers the risk a little". */
  effectText: string;
  status: 'recorded' | 'derived' | 'default' | 'not-recorded';
  sources: string[];
  note?: string;
}

/** Coded values that read better as words (ClinRisk coding, QFracture-2012). */
const SMOKING = ['Non-smoker', 'Ex-smoker', 'Light smoker', 'Moderate smoker', 'Heavy smoker'];
const ALCOHOL = ['None', 'Less than 1 unit a day', '1–2 units a day', '3–6 units a day', '7–9 units a day', 'More than 9 units a day'];
/** QFracture-2012 ethnicity groups in words (group 1 also stands for "not stated"). */
const ETHNICITY = ['', 'White or not stated', 'Indian', 'Pakistani', 'Bangladeshi', 'Other Asian', 'Black Caribbean', 'Black African', 'Chinese', 'Other ethnic group'];

function valueText(factor: string, value: number, raw: number | string | undefined, status?: string): string {
  if (factor === 'age') return `${value}`;
  // A BMI outside QFracture-2012's 20–40 was clamped: the charted value, and the one the equations used.
  if (factor === 'bmi') return typeof raw === 'number' ? `${formatBmi(raw)} kg/m²${raw !== value ? ` (${value} used)` : ''}` : `${value} kg/m²`;
  if (factor === 'smoke_cat') return SMOKING[value] ?? String(value);
  if (factor === 'alcohol_cat6') return ALCOHOL[value] ?? String(value);
  if (factor === 'ethrisk') return status === 'default' ? 'Not recorded (counted as white or not stated)' : ETHNICITY[value] ?? 'Other ethnic group';
  if (factor.startsWith('b_') || factor.startsWith('fh_')) return value ? 'Yes' : 'No';
  return raw !== undefined ? String(raw) : String(value);
}

function nameOf(factor: string, label: string, value: string): string {
  if (factor === 'age') return `Age ${value}`;
  if (factor === 'bmi') return `BMI ${value}`;
  if (factor.startsWith('b_') || factor.startsWith('fh_')) return value === 'Yes' ? label : `No ${label.charAt(0).toLowerCase()}${label.slice(1)}`;
  if (factor === 'ethrisk') return `${label}: ${value}`;
  return `${label}: ${value.charAt(0).toLowerCase()}${value.slice(1)}`;
}

/** How much a term moves the risk, from its size: the largest raising term is "the most". */
function strengthOf(logHazard: number): Exclude<Strength, 'most'> {
  const a = Math.abs(logHazard);
  return a >= Math.log(2) ? 'a lot' : a >= Math.log(1.25) ? 'somewhat' : 'a little';
}

/** Rows for the list and table, largest absolute contribution first; terms too small to matter are left out. */
export function factorRows(a: Assessment, outcome: Outcome, minLogHazard = 0.01): FactorRow[] {
  const o = a.outcomes[outcome];
  const useFused = o.shown === 'fused';
  const rows = o.contributions
    .map((c) => {
      const rec = a.factors.records.find((r) => r.factor === c.factor);
      const logHazard = useFused && c.fused !== null ? c.fused : c.qfracture;
      const value = valueText(c.factor, c.value, rec?.raw, rec?.status);
      return { c, rec, logHazard, value };
    })
    .filter((x) => Math.abs(x.logHazard) >= minLogHazard)
    .sort((x, y) => Math.abs(y.logHazard) - Math.abs(x.logHazard));
  let mostGiven = false;
  return rows.map(({ c, rec, logHazard, value }) => {
    const effect = logHazard >= 0 ? 'raises' : 'lowers';
    let strength: Strength = strengthOf(logHazard);
    if (effect === 'raises' && !mostGiven) {
      strength = 'most';
      mostGiven = true;
    }
    return {
      factor: c.factor,
      label: c.label,
      value,
      name: nameOf(c.factor, c.label, value),
      logHazard,
      effect,
      strength,
      effectText: `${effect} the risk ${strength === 'most' ? 'the most' : strength}`,
      status: rec?.status ?? 'recorded',
      sources: rec?.sources ?? [],
      ...(rec?.note ? { note: rec.note } : {}),
    };
  });
}

/** Notes of the engine that carry model jargon are left out where the value already says it in plain words. */
function plainNote(factor: string, note: string | undefined): string | undefined {
  return factor === 'ethrisk' ? undefined : note;
}

/** The factors that were missing from the chart, with the default the engine used. */
export function missingRows(a: Assessment): { label: string; value: string; note?: string }[] {
  return a.factors.records
    .filter((r) => r.status === 'default')
    .map((r) => {
      const note = plainNote(r.factor, r.note);
      return { label: r.label, value: valueText(r.factor, r.value, r.raw, r.status), ...(note ? { note } : {}) };
    });
}

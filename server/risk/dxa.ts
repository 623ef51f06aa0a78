/**
 * The measured femoral-neck T-score a T-score-mediated model uses instead of its radiograph estimate (hip-xray-v2
 * contract: "when the chart has a recent measured DXA T-score, it replaces the estimate, with DXA's own precision
 * error as its sd").
 *
 * Which Observation counts: a DXA result of ValueSet `dxa-result` (read with the same search as the care status,
 * server/orders/care-status.ts, so a CDS hook answers it from its `dxaResults` prefetch) that
 * - is a femoral-neck T-score: a LOINC "DXA Femur [T-score]" code ({@link FEMORAL_NECK_TSCORE_CODES}; the charts name
 *   the femoral neck in `bodySite.text` — a `bodySite.text` naming another region, e.g. "Total hip" or
 *   "Trochanter", is not the femoral neck and is skipped) whose value is a T-score (care-status `tScoreOf`);
 * - has status final, amended or corrected (a preliminary result is not yet a measurement to act on);
 * - is dated on or before the assessment date and at most `maxAgeYears` before it (manifest
 *   `tscore_head.dxa_max_age_years`, or the `RISK_DXA_MAX_AGE_YEARS` setting): bone density changes, and an old
 *   value is no better than the radiograph's estimate.
 * The most recent such Observation wins (ties: the lowest T-score, the conservative reading of a same-day pair).
 */
import type { Observation } from '@medplum/fhirtypes';
import { tScoreOf } from '../orders/care-status.ts';

/** LOINC "DXA Femur [T-score]" (any side, left, right): the femoral-neck T-score codes of ValueSet `dxa-result`. */
export const FEMORAL_NECK_TSCORE_CODES: readonly string[] = ['38263-0', '80948-3', '80947-5'];

const LOINC = 'http://loinc.org';
const FINAL_STATUSES: readonly string[] = ['final', 'amended', 'corrected'];
const YEAR_MS = 365.25 * 86_400_000;

/** A measured DXA T-score chosen to replace the radiograph estimate. */
export interface MeasuredDxa {
  value: number;
  /** Date of the measurement (YYYY-MM-DD). */
  date: string;
  observationId: string;
}

const dateOf = (o: Observation): string | undefined => {
  const d = o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.effectiveInstant ?? o.issued;
  return d && /^\d{4}-\d{2}-\d{2}/.test(d) ? d.slice(0, 10) : undefined;
};

/** True when the Observation's body site, if it names one, is the femoral neck. */
function femoralNeckSite(o: Observation): boolean {
  const text = [o.bodySite?.text, ...(o.bodySite?.coding ?? []).map((c) => c.display)].filter((x): x is string => !!x).join(' ');
  return text === '' || /neck/i.test(text);
}

/**
 * The femoral-neck DXA T-score to use at `at` (header), or null when the chart has none recent enough.
 * @param at the assessment date.
 */
export function measuredDxa(observations: readonly Observation[], at: Date, maxAgeYears: number): MeasuredDxa | null {
  const atDay = at.toISOString().slice(0, 10);
  const ageYears = (day: string): number => (Date.parse(`${atDay}T00:00:00Z`) - Date.parse(`${day}T00:00:00Z`)) / YEAR_MS;
  const ok = observations
    .filter((o) => !!o.id && FINAL_STATUSES.includes(o.status) && (o.code?.coding ?? []).some((c) => c.system === LOINC && FEMORAL_NECK_TSCORE_CODES.includes(c.code ?? '')) && femoralNeckSite(o))
    .map((o) => ({ o, date: dateOf(o), value: tScoreOf(o) }))
    .filter((x): x is { o: Observation; date: string; value: number } => x.date !== undefined && x.value !== null && x.date <= atDay && ageYears(x.date) <= maxAgeYears);
  ok.sort((a, b) => b.date.localeCompare(a.date) || a.value - b.value);
  const best = ok[0];
  return best ? { value: best.value, date: best.date, observationId: best.o.id! } : null;
}

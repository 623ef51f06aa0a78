/**
 * Which DXA Observations are a measured femoral-neck T-score — what the radiograph's T-score head estimates — for
 * the site check and production monitoring.
 *
 * The ValueSet `dxa-result` (fhir-profiles/valuesets) lists femur and total-hip T-scores and BMDs. Only its LOINC
 * "DXA Femur [T-score]" terms count here (38263-0, left 80948-3, right 80947-5): the charts write the femoral-neck
 * result under them (the ValueSet's description: no femoral-neck-specific LOINC term was found), whereas the
 * total-hip T-score is another region with other values. The value must be a T-score by care-status.ts's
 * `tScoreOf` (not a BMD), the Observation a usable result (final, amended, corrected).
 */
import type { Observation } from '@medplum/fhirtypes';
import type { ValueSetIndex } from '../fhir/valuesets.ts';
import { tScoreOf } from '../orders/care-status.ts';

export const LOINC = 'http://loinc.org';
/** LOINC DXA Femur T-score terms: unspecified side, left, right. */
export const FEMUR_TSCORE_CODES: readonly string[] = ['38263-0', '80948-3', '80947-5'];
const RESULT_STATUSES: readonly string[] = ['final', 'amended', 'corrected'];

/** `system|code` search tokens of the femur T-score terms that the ValueSet `dxa-result` lists. */
export function femurTscoreTokens(vs: ValueSetIndex): string[] {
  const tokens = FEMUR_TSCORE_CODES.filter((c) => vs.has('dxa-result', LOINC, c)).map((c) => `${LOINC}|${c}`);
  if (tokens.length === 0) throw new Error('ValueSet dxa-result lists no DXA Femur T-score code: measured T-scores cannot be recognised');
  return tokens;
}

/** A measured femoral-neck T-score read from an Observation. */
export interface MeasuredTscore {
  readonly observationId: string;
  readonly patientId: string;
  readonly value: number;
  /** Date (or date-time) of the scan. */
  readonly date: string;
}

/** The measured femoral-neck T-score of an Observation, or null when it is not one (see the file comment). */
export function measuredTscore(o: Observation, vs: ValueSetIndex): MeasuredTscore | null {
  if (!o.id || !RESULT_STATUSES.includes(o.status)) return null;
  if (!(o.code?.coding ?? []).some((c) => c.system === LOINC && FEMUR_TSCORE_CODES.includes(c.code ?? '') && vs.has('dxa-result', c.system, c.code))) return null;
  const value = tScoreOf(o);
  const date = o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.issued;
  const m = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(o.subject?.reference ?? '');
  if (value === null || !date || Number.isNaN(Date.parse(date)) || !m) return null;
  return { observationId: o.id, patientId: m[1]!, value, date };
}

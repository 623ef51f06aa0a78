/**
 * What a CT assessment says in words, the same on the CDS card, in the SMART app's "CT findings" panel and in the
 * FLS worklist: the L1 (or fallback level) attenuation against the Pickhardt anchors, the worst prevalent vertebral
 * fracture by its Genant grade, and the problem-list entry a clinician may confirm. Pure (no I/O, no Node APIs): it
 * also runs in the app bundle.
 *
 * Attenuation bands use the phase-adjusted HU (`CtAttenuation.adjustedHu`, what the T-score estimate uses):
 * ≤ 110 HU osteoporosis likely (about 90 % specific for DXA osteoporosis), 110–160 HU indeterminate, > 160 HU
 * osteoporosis unlikely (≤ 160 HU is about 90 % sensitive) — Pickhardt et al., Ann Intern Med 2013.
 * Genant grades by height loss: 1 mild (20–25 %), 2 moderate (25–40 %), 3 severe (> 40 %) — `morphometry.ts`.
 * @see ../pathways/ct-spine/types.ts (CtAssessmentView)
 */
import type { CodeableConcept, Condition, Reference } from '@medplum/fhirtypes';
import type { CtAssessmentView, GenantGrade } from '../pathways/ct-spine/types.ts';

/** The Pickhardt anchors (HU): at or below `low` osteoporosis is likely; above `high` it is unlikely. */
export const PICKHARDT_HU = Object.freeze({ low: 110, high: 160 });

export type HuBand = 'low' | 'indeterminate' | 'normal';

export function huBand(hu: number): HuBand {
  return hu <= PICKHARDT_HU.low ? 'low' : hu <= PICKHARDT_HU.high ? 'indeterminate' : 'normal';
}

/** The band in plain words, with the anchor it was compared with. */
export const HU_BAND_WORDS: Readonly<Record<HuBand, string>> = Object.freeze({
  low: `osteoporosis likely at or below ${PICKHARDT_HU.low} HU`,
  indeterminate: `between ${PICKHARDT_HU.low} and ${PICKHARDT_HU.high} HU: low bone density possible, DXA decides`,
  normal: `osteoporosis unlikely above ${PICKHARDT_HU.high} HU`,
});

export const GRADE_WORDS: Readonly<Record<GenantGrade, string>> = Object.freeze({ 0: 'no fracture', 1: 'mild', 2: 'moderate', 3: 'severe' });

/** How the contrast phase is said: non-contrast needs no word; a contrast phase says the value was adjusted. */
export function phaseWords(phase: CtAssessmentView['phase']): string {
  switch (phase) {
    case 'non-contrast': return 'non-contrast';
    case 'unknown': return 'contrast phase unknown';
    default: return `${phase.replace('-', ' ')} phase, adjusted for contrast`;
  }
}

const hu = (v: number): string => `${Math.round(v)} HU`;

/** "L1 attenuation 96 HU (osteoporosis likely at or below 110 HU)"; "" when attenuation was not measurable. */
export function attenuationWords(ct: Pick<CtAssessmentView, 'attenuation'>): string {
  const a = ct.attenuation;
  if (!a) return '';
  const phase = a.phase === 'non-contrast' ? '' : `; ${phaseWords(a.phase)}`;
  return `${a.level} attenuation ${hu(a.adjustedHu)} (${HU_BAND_WORDS[huBand(a.adjustedHu)]}${phase})`;
}

/** "moderate (grade 2) L1 compression fracture"; null when no level has a fracture (or none was measured). */
export function fractureWords(ct: Pick<CtAssessmentView, 'worstGrade' | 'worstLevel'>): string | null {
  if (ct.worstGrade === 0 || !ct.worstLevel) return null;
  return `${GRADE_WORDS[ct.worstGrade]} (grade ${ct.worstGrade}) ${ct.worstLevel} compression fracture`;
}

/**
 * The card's CT sentence: attenuation, then the worst fracture and whether the problem list has it, e.g. "CT of
 * 3 Nov 2026: L1 attenuation 96 HU (osteoporosis likely at or below 110 HU); moderate (grade 2) L1 compression
 * fracture, not in the problem list." Levels too thick to measure say so instead of "no fracture"; attenuation the
 * out-of-distribution gate withheld says so with the gate's reason instead of "not measurable".
 */
export function ctFindingsSentence(ct: CtAssessmentView, date?: string): string {
  const parts: string[] = [];
  const att = attenuationWords(ct);
  if (att) parts.push(att);
  else if (ct.gate?.outside) parts.push(`attenuation withheld (${ct.gate.reason ?? 'outside the checked range'})`);
  else parts.push('attenuation not measurable (no usable L1, T12 or L2)');
  const fracture = fractureWords(ct);
  if (fracture) parts.push(`${fracture}${ct.inProblemList ? ' (in the problem list)' : ', not in the problem list'}`);
  else if (ct.morphometry === null) parts.push('vertebral heights not measured (slices too thick)');
  else parts.push('no vertebral compression fracture');
  return `CT${date ? ` of ${date}` : ''}: ${parts.join('; ')}.`;
}

/** The FLS flag reason for a moderate or severe prevalent fracture: "vertebral fracture on CT, grade 2 at L1"; else null. */
export function imminentReasonOf(ct: Pick<CtAssessmentView, 'imminentRisk' | 'worstGrade' | 'worstLevel'> | null | undefined): string | null {
  if (!ct?.imminentRisk || ct.worstGrade < 2) return null;
  return `vertebral fracture on CT, grade ${ct.worstGrade}${ct.worstLevel ? ` at ${ct.worstLevel}` : ''}`;
}

/** The problem-list entry suggested for a CT fracture is proposed only for grades 2–3 not already recorded. */
export function suggestsProblemListEntry(ct: Pick<CtAssessmentView, 'worstGrade' | 'worstLevel' | 'inProblemList'> | null | undefined): boolean {
  return !!ct && ct.worstGrade >= 2 && !!ct.worstLevel && !ct.inProblemList;
}

/**
 * The CT part of an assessment, or null (a radiograph or clinical-only assessment). Reads `ct` structurally so the
 * card and the app work with assessments built before the field existed.
 */
export function ctOf(a: object): CtAssessmentView | null {
  return (a as { ct?: CtAssessmentView | null }).ct ?? null;
}

const SNOMED = 'http://snomed.info/sct';
/** SNOMED CT code of the project's `fracture-mof` ValueSet for a vertebral fracture (so the worklist counts it once confirmed). */
export const VERTEBRAL_FRACTURE_CODE = Object.freeze({ system: SNOMED, code: '15724005', display: 'Fracture of vertebral column without spinal cord injury' });

export interface ProblemListInput {
  patientId: string;
  ct: CtAssessmentView;
  /** Encounter in which the card was shown, e.g. `Encounter/e-1`. */
  encounterRef?: string;
  /** The RiskAssessment the finding came with, e.g. `RiskAssessment/ra-1`. */
  riskAssessmentRef?: string;
  note: string;
}

/**
 * The problem-list Condition a clinician may accept: verificationStatus `provisional` (software found it; the
 * clinician who accepts the suggestion confirms it by looking at the images), clinicalStatus active, category
 * problem-list-item, the vertebral fracture code with the level and grade in `code.text`, the level as body site,
 * and the device-derived Observations as evidence. Never written by the service itself: only a card suggestion
 * (the clinician's click) creates it.
 */
export function problemListCondition(input: ProblemListInput): Condition {
  const { ct } = input;
  const what = fractureWords(ct);
  if (!what || !ct.worstLevel) throw new Error('no vertebral fracture to record');
  const code: CodeableConcept = { coding: [{ ...VERTEBRAL_FRACTURE_CODE }], text: `${what.charAt(0).toUpperCase()}${what.slice(1)} (seen on CT, to confirm)` };
  const evidence: Reference[] = ct.observationIds.map((id) => ({ reference: `Observation/${id}` }));
  if (input.riskAssessmentRef) evidence.push({ reference: input.riskAssessmentRef });
  return {
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'provisional', display: 'Provisional' }] },
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item', display: 'Problem List Item' }] }],
    code,
    bodySite: [{ text: `${ct.worstLevel} vertebra` }],
    subject: { reference: `Patient/${input.patientId}` },
    ...(input.encounterRef ? { encounter: { reference: input.encounterRef } } : {}),
    ...(evidence.length > 0 ? { evidence: [{ detail: evidence }] } : {}),
    note: [{ text: input.note }],
  };
}

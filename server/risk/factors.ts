/**
 * Clinical risk factors from a FHIR chart → QFracture-2012 inputs (issue 5, item 2), with provenance: for every
 * factor the resources it came from, or that it was missing and which default was used.
 *
 * The mapping is the one the cohort generator documents ("What the EHR knows", `models/training/README.md`) and the
 * model's clinical term was trained on, so the fused model sees what it saw in training:
 * - age: completed years from `Patient.birthDate` to the index date (the radiograph's date).
 * - BMI: latest LOINC 39156-5 Observation, clamped to 20–40; else latest weight (29463-7, kg) / height (8302-2,
 *   cm)²; else the DEFAULT 27.0 kg/m² (listed as missing). A clamped BMI is a warning that says which value was
 *   charted or derived and which was used ({@link bmiClampWarning}); the assessment decides whether it could change
 *   the tier (assess.ts).
 * - ethnicity (ethrisk 1–9): NHS ethnic category (UK Core `Extension-UKCore-EthnicCategory`) via the
 *   `qfracture-ethrisk-*` ValueSets; absent or `Z` (not stated) → 1, listed as missing. Without the UK Core
 *   extension, US Core race (`us-core-race`): detailed codes that name a QFracture group map to it (Indian 2029-7 →
 *   2, Pakistani 2044-6 → 3, Bangladeshi 2030-5 → 4, Chinese 2034-7 → 8, African 2060-2 → 7, West Indian 2075-0 →
 *   6); OMB categories alone are coarser than QFracture's groups: White 2106-3 → 1, Asian 2028-9 → 5 (other Asian),
 *   Black or African American 2054-5 → 9 (other: Caribbean vs African cannot be told), any other → 9; a note says
 *   the mapping was coarse.
 * - smoking (0–4): latest LOINC 72166-2 `valueCodeableConcept` via `qfracture-smoke-cat-*`; none → 0 (missing).
 * - alcohol (0–5): latest LOINC 74013-4 in UK units/day: 0 → 0, < 1 → 1, < 3 → 2, < 7 → 3, ≤ 9 → 4, > 9 → 5;
 *   none → 0 (missing).
 * - booleans: 1 when a Condition (clinicalStatus active/recurrence/relapse, or any status for prior fracture
 *   `b_fracture4`; not entered-in-error or refuted), MedicationRequest / MedicationStatement (status active) or
 *   FamilyMemberHistory has a code in the factor's `qfracture-*` ValueSet, dated on or before the index date.
 *   Conditions coded in ICD-10-CM / ICD-10 are mapped by the prefixes in {@link ICD10_PREFIXES}. No record → 0,
 *   as QFracture itself does (a coded chart is taken at its word; falls and family history are known to be
 *   under-coded, which the summary says).
 */
import type {
  CodeableConcept, Coding, Condition, Extension, FamilyMemberHistory, ImagingStudy, MedicationRequest,
  MedicationStatement, Observation, Patient, Reference,
} from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import { loadValueSets, type ValueSetIndex } from '../fhir/valuesets.ts';
import { dxaResultTokens } from '../orders/care-status.ts';
import { formatBmi } from './numbers.ts';
import { clampBmi, QF_BOOLEANS, RANGES, type QfBoolean, type QFractureInputs, type Sex } from './qfracture.ts';

export const DEFAULTS = { bmi: 27.0, ethrisk: 1, smoke_cat: 0, alcohol_cat6: 0 } as const;

const LOINC = 'http://loinc.org';
const CODES = { weight: '29463-7', height: '8302-2', bmi: '39156-5', smoking: '72166-2', alcohol: '74013-4' } as const;
const UK_ETHNIC_EXT = 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory';
const US_RACE_EXT = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race';
const ICD10_SYSTEMS = new Set(['http://hl7.org/fhir/sid/icd-10-cm', 'http://hl7.org/fhir/sid/icd-10']);

/** US Core race (CDC race & ethnicity code system) → ethrisk, detailed codes first (see the file header). */
const US_RACE_DETAILED: Record<string, number> = { '2029-7': 2, '2044-6': 3, '2030-5': 4, '2034-7': 8, '2060-2': 7, '2075-0': 6 };
const US_RACE_OMB: Record<string, number> = { '2106-3': 1, '2028-9': 5, '2054-5': 9 };

/**
 * ICD-10-CM / ICD-10 code prefixes for the common conditions (WHO ICD-10 chapters; a prefix matches the code
 * without its dot). For charts that code problems in ICD-10 rather than SNOMED CT; reviewed against the ICD-10-CM
 * 2024 tabular list titles, research use only.
 */
export const ICD10_PREFIXES: Partial<Record<QfBoolean, readonly string[]>> = {
  b_type1: ['E10'],
  b_type2: ['E11'],
  b_ra_sle: ['M05', 'M06', 'M32'],
  b_asthmacopd: ['J44', 'J45'],
  b_parkinsons: ['G20'],
  b_epilepsy2: ['G40'],
  b_dementia: ['F00', 'F01', 'F02', 'F03', 'G30'],
  b_liver: ['K70', 'K74'],
  b_renal: ['N184', 'N185', 'N186'],
  b_malabsorption: ['K50', 'K51', 'K900'],
  b_endocrine: ['E05', 'E21', 'E24'],
  b_cvd: ['I20', 'I21', 'I22', 'I25', 'I63', 'I64', 'G45'],
  b_anycancer: ['C'],
  b_falls: ['Z9181', 'R296'],
  b_fracture4: ['S720', 'S721', 'S722', 'S52', 'S22', 'S32', 'S42', 'M80'],
  b_carehome: ['Z591'],
};

const LABELS: Record<string, string> = {
  age: 'Age', bmi: 'Body mass index', ethrisk: 'Ethnicity', smoke_cat: 'Smoking', alcohol_cat6: 'Alcohol',
  b_antidepressant: 'Antidepressant', b_anycancer: 'Cancer', b_asthmacopd: 'Asthma or COPD', b_carehome: 'Lives in a care home',
  b_corticosteroids: 'Oral corticosteroids', b_cvd: 'Cardiovascular disease', b_dementia: 'Dementia', b_endocrine: 'Endocrine disorder',
  b_epilepsy2: 'Epilepsy / anticonvulsants', b_falls: 'History of falls', b_fracture4: 'Prior major osteoporotic fracture',
  b_hrt_oest: 'Oestrogen-only HRT', b_liver: 'Chronic liver disease', b_malabsorption: 'Malabsorption', b_parkinsons: 'Parkinson\'s disease',
  b_ra_sle: 'Rheumatoid arthritis or SLE', b_renal: 'Chronic kidney disease (stage 4–5)', b_type1: 'Type 1 diabetes', b_type2: 'Type 2 diabetes',
  fh_osteoporosis: 'Family history of osteoporosis',
};

/** How a factor's value was obtained. */
export type FactorStatus = 'recorded' | 'derived' | 'default' | 'not-recorded';

export interface FactorRecord {
  /** QFracture input name. */
  factor: string;
  label: string;
  /** The coded value used (ClinRisk coding; booleans 0/1). */
  value: number;
  /** `recorded`: read from the chart; `derived`: computed from other records (BMI from weight/height, coarse ethnicity);
   *  `default`: missing, the documented default used (listed as missing); `not-recorded`: a boolean with no record (0). */
  status: FactorStatus;
  /** `Type/id` of the resources the value came from. */
  sources: string[];
  /** Raw value as charted (e.g. BMI 41.3 before clamping, 2.5 units/day). */
  raw?: number | string;
  note?: string;
}

export interface ClinicalFactors {
  sex: Sex;
  /** Date the factors are evaluated at (YYYY-MM-DD). */
  indexDate: string;
  inputs: QFractureInputs;
  records: FactorRecord[];
  /** Key factors that were missing and replaced by a default (labels). */
  missing: string[];
  /** Warnings about the factors (out of range, clamped, coarse mapping). */
  warnings: string[];
}

/** The chart resources the engine reads for one patient. */
export interface Chart {
  patient: Patient;
  observations: Observation[];
  conditions: Condition[];
  medicationRequests: MedicationRequest[];
  medicationStatements: MedicationStatement[];
  familyHistory: FamilyMemberHistory[];
  imagingStudies: ImagingStudy[];
  /** DXA results (ValueSet `dxa-result`), read only when asked for ({@link LoadChartOptions}); absent otherwise. */
  dxaObservations?: Observation[];
}

export interface LoadChartOptions {
  /** Also read the DXA results (a T-score-mediated model replaces its estimate by a recent measured T-score). */
  dxa?: boolean;
  /** The project's ValueSets (default: loaded from `fhir-profiles/valuesets/`). */
  valueSets?: ValueSetIndex;
}

/** The chart cannot give the inputs QFracture needs (no sex, no birth date, age out of range). */
export class FactorError extends Error {
  override readonly name = 'FactorError';
  readonly code = 'CLINICAL_FACTORS';
}

/**
 * Reads everything the engine needs for one patient, in parallel. Observations are narrowed to the five codes.
 * Searches use `subject=Patient/<id>` (R4 defines it for every type read here but FamilyMemberHistory): the R4
 * `patient` parameter is `subject.where(resolve() is Patient)`, which some servers (the embedded one included)
 * evaluate by resolving every reference — tens of times slower.
 */
export async function loadChart(source: FhirDataSource, patientId: string, signal?: AbortSignal, opts: LoadChartOptions = {}): Promise<Chart> {
  const ref = `Patient/${patientId}`;
  const obsCodes = Object.values(CODES).map((c) => `${LOINC}|${c}`).join(',');
  // The same search as the care status (server/orders/care-status.ts): a CDS hook answers it from `dxaResults`.
  const dxa = opts.dxa ? source.search<Observation>('Observation', { subject: ref, code: dxaResultTokens(opts.valueSets ?? loadValueSets()).join(',') }, signal) : undefined;
  const [patient, observations, conditions, medicationRequests, medicationStatements, familyHistory, imagingStudies, dxaObservations] = await Promise.all([
    source.read<Patient>('Patient', patientId, signal),
    source.search<Observation>('Observation', { subject: ref, code: obsCodes }, signal),
    source.search<Condition>('Condition', { subject: ref }, signal),
    source.search<MedicationRequest>('MedicationRequest', { subject: ref }, signal),
    source.search<MedicationStatement>('MedicationStatement', { subject: ref }, signal),
    source.search<FamilyMemberHistory>('FamilyMemberHistory', { patient: ref }, signal),
    source.search<ImagingStudy>('ImagingStudy', { subject: ref }, signal),
    dxa,
  ]);
  // A chart source (a CDS prefetch above all) may hand back resources of someone else: only this patient's are used.
  if (patient.id !== patientId) throw new FactorError('the chart source returned another patient than the one asked for');
  const mine = <T extends { subject?: Reference; patient?: Reference }>(list: T[]): T[] =>
    list.filter((r) => referencesPatient(r.subject ?? r.patient, patientId));
  return {
    patient,
    observations: mine(observations),
    conditions: mine(conditions),
    medicationRequests: mine(medicationRequests),
    medicationStatements: mine(medicationStatements),
    familyHistory: mine(familyHistory),
    imagingStudies: mine(imagingStudies),
    ...(dxaObservations ? { dxaObservations: mine(dxaObservations) } : {}),
  };
}

/** True when `ref` points at `Patient/<patientId>` (relative, absolute or versioned). */
export function referencesPatient(ref: Reference | undefined, patientId: string): boolean {
  const m = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(ref?.reference ?? '');
  return !!m && m[1] === patientId;
}

const day = (s: string | undefined): string | undefined => (s && /^\d{4}-\d{2}-\d{2}/.test(s) ? s.slice(0, 10) : undefined);
const codings = (cc: CodeableConcept | undefined): Coding[] => cc?.coding ?? [];
const refOf = (r: { resourceType: string; id?: string }): string => `${r.resourceType}/${r.id ?? '?'}`;

function obsDate(o: Observation): string | undefined {
  return day(o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.effectiveInstant ?? o.issued);
}

/** Latest usable Observation with `code` on or before the index date (final/amended/corrected, not cancelled). */
function latestObservation(chart: Chart, code: string, indexDate: string): Observation | undefined {
  const ok = chart.observations.filter(
    (o) =>
      codings(o.code).some((c) => c.system === LOINC && c.code === code) &&
      !['entered-in-error', 'cancelled', 'preliminary', 'registered'].includes(o.status) &&
      (obsDate(o) ?? '0000') <= indexDate,
  );
  ok.sort((a, b) => (obsDate(b) ?? '').localeCompare(obsDate(a) ?? ''));
  return ok[0];
}

/** A quantity in the expected unit, or undefined (a BMI in the wrong unit is treated as missing, not guessed). */
function quantity(o: Observation | undefined, units: readonly string[]): number | undefined {
  const q = o?.valueQuantity;
  if (!q || typeof q.value !== 'number' || !Number.isFinite(q.value)) return undefined;
  const u = q.code ?? q.unit;
  if (u !== undefined && !units.includes(u)) return undefined;
  return q.value;
}

/** A BMI as written in a warning: outside QFracture-2012's range it never reads as inside it (numbers.ts `formatBmi`). */
export const bmiText = (bmi: number): string => formatBmi(bmi, RANGES.bmi);

/** The warning of a BMI clamped to QFracture-2012's range: "BMI 43 from weight and height is outside …; 40 was used." */
export function bmiClampWarning(raw: number, used: number, derived: boolean): string {
  return `BMI ${bmiText(raw)} ${derived ? 'from weight and height' : 'as recorded'} is outside the ${RANGES.bmi[0]}–${RANGES.bmi[1]} range QFracture-2012 accepts; ${used} was used.`;
}

export function alcoholCategory(unitsPerDay: number): number {
  if (unitsPerDay <= 0) return 0;
  if (unitsPerDay < 1) return 1;
  if (unitsPerDay < 3) return 2;
  if (unitsPerDay < 7) return 3;
  if (unitsPerDay <= 9) return 4;
  return 5;
}

function completedYears(birth: string, at: string): number {
  const [by, bm, bd] = birth.split('-').map(Number) as [number, number, number];
  const [ay, am, ad] = at.split('-').map(Number) as [number, number, number];
  return ay - by - (am < (bm || 1) || (am === (bm || 1) && ad < (bd || 1)) ? 1 : 0);
}

function valueSetIdFor(b: QfBoolean): string {
  return b === 'fh_osteoporosis' ? 'qfracture-fh-osteoporosis' : `qfracture-${b.replace(/_/g, '-')}`;
}

function icd10Match(b: QfBoolean, c: Coding): boolean {
  if (!c.system || !ICD10_SYSTEMS.has(c.system) || !c.code) return false;
  const code = c.code.replace('.', '').toUpperCase();
  return (ICD10_PREFIXES[b] ?? []).some((p) => code.startsWith(p));
}

function conditionCounts(cond: Condition, b: QfBoolean, indexDate: string): boolean {
  const ver = codings(cond.verificationStatus).map((c) => c.code);
  if (ver.includes('entered-in-error') || ver.includes('refuted')) return false;
  const onset = day(cond.onsetDateTime ?? cond.onsetPeriod?.start ?? cond.recordedDate);
  if (onset && onset > indexDate) return false;
  if (b === 'b_fracture4') return true;
  const clin = codings(cond.clinicalStatus).map((c) => c.code);
  return clin.length === 0 || clin.some((c) => c === 'active' || c === 'recurrence' || c === 'relapse');
}

/**
 * Maps a chart to QFracture-2012 inputs with provenance. `indexDate` (YYYY-MM-DD) is the date the risk is
 * assessed at: the radiograph's date for an image-based assessment, today for a clinical-only one.
 * @throws FactorError when sex, birth date or an in-range age cannot be established.
 */
export function extractFactors(chart: Chart, indexDate: string, vs: ValueSetIndex = loadValueSets()): ClinicalFactors {
  const p = chart.patient;
  const pref = refOf(p);
  const records: FactorRecord[] = [];
  const missing: string[] = [];
  const warnings: string[] = [];

  if (p.gender !== 'female' && p.gender !== 'male') {
    throw new FactorError(`Patient.gender is ${p.gender ?? 'absent'}: QFracture-2012 has equations for female and male only`);
  }
  const sex: Sex = p.gender;
  const birth = day(p.birthDate) ?? (p.birthDate && /^\d{4}$/.test(p.birthDate) ? `${p.birthDate}-07-01` : undefined);
  if (!birth) throw new FactorError('Patient.birthDate is absent: age is required');
  let age = completedYears(birth, indexDate);
  if (age < RANGES.age[0]) throw new FactorError(`age ${age} is below QFracture-2012's range (${RANGES.age[0]}–${RANGES.age[1]})`);
  if (age > RANGES.age[1]) {
    warnings.push(`Age ${age} is above QFracture-2012's range; computed at ${RANGES.age[1]}.`);
    age = RANGES.age[1];
  }
  records.push({ factor: 'age', label: LABELS['age']!, value: age, status: 'recorded', sources: [pref], ...(birth !== p.birthDate ? { note: 'birth year only; mid-year assumed' } : {}) });

  // BMI
  const bmiObs = latestObservation(chart, CODES.bmi, indexDate);
  const bmiRaw = quantity(bmiObs, ['kg/m2', 'kg/m^2', 'kg/(m^2)']);
  let bmi: number = DEFAULTS.bmi;
  if (bmiObs && bmiRaw !== undefined) {
    bmi = clampBmi(bmiRaw);
    records.push({ factor: 'bmi', label: LABELS['bmi']!, value: bmi, status: 'recorded', sources: [refOf(bmiObs)], raw: bmiRaw, ...(bmi !== bmiRaw ? { note: `clamped to QFracture's range ${RANGES.bmi[0]}–${RANGES.bmi[1]}` } : {}) });
    if (bmi !== bmiRaw) warnings.push(bmiClampWarning(bmiRaw, bmi, false));
  } else {
    const wObs = latestObservation(chart, CODES.weight, indexDate);
    const hObs = latestObservation(chart, CODES.height, indexDate);
    const w = quantity(wObs, ['kg']);
    const h = quantity(hObs, ['cm']);
    if (wObs && hObs && w !== undefined && h !== undefined && h > 50) {
      const raw = w / (h / 100) ** 2;
      bmi = clampBmi(raw);
      records.push({ factor: 'bmi', label: LABELS['bmi']!, value: bmi, status: 'derived', sources: [refOf(wObs), refOf(hObs)], raw, note: bmi !== raw ? `from the latest weight and height; clamped to QFracture's range ${RANGES.bmi[0]}–${RANGES.bmi[1]}` : 'from the latest weight and height' });
      if (bmi !== raw) warnings.push(bmiClampWarning(raw, bmi, true));
    } else {
      records.push({ factor: 'bmi', label: LABELS['bmi']!, value: bmi, status: 'default', sources: [], note: `no BMI, weight/height recorded: default ${DEFAULTS.bmi} kg/m²` });
      missing.push(LABELS['bmi']!);
    }
  }

  // Ethnicity
  let ethrisk: number = DEFAULTS.ethrisk;
  const ukExt = (p.extension ?? []).find((e) => e.url === UK_ETHNIC_EXT);
  const ukCode = ukExt?.valueCodeableConcept?.coding?.[0];
  const raceExt = (p.extension ?? []).find((e) => e.url === US_RACE_EXT);
  const ethGroup = ukCode ? [1, 2, 3, 4, 5, 6, 7, 8, 9].find((k) => vs.has(`qfracture-ethrisk-${k}`, ukCode.system, ukCode.code)) : undefined;
  if (ukCode && ethGroup !== undefined && ukCode.code !== 'Z') {
    ethrisk = ethGroup;
    records.push({ factor: 'ethrisk', label: LABELS['ethrisk']!, value: ethrisk, status: 'recorded', sources: [pref], raw: `NHS ethnic category ${ukCode.code}` });
  } else if (!ukCode?.code || ukCode.code === 'Z') {
    // An explicit NHS 'Z' (not stated) wins over US Core race: the UK category is the finer, primary record.
    const us = ukCode?.code === 'Z' ? undefined : usRaceEthrisk(raceExt);
    if (us) {
      ethrisk = us.ethrisk;
      records.push({ factor: 'ethrisk', label: LABELS['ethrisk']!, value: ethrisk, status: us.coarse ? 'derived' : 'recorded', sources: [pref], raw: `US Core race ${us.code}`, ...(us.coarse ? { note: 'OMB category is coarser than QFracture\'s groups' } : {}) });
      if (us.coarse) warnings.push('Ethnicity mapped from a coarse US Core (OMB) race category.');
    } else {
      records.push({ factor: 'ethrisk', label: LABELS['ethrisk']!, value: ethrisk, status: 'default', sources: ukCode ? [pref] : [], note: 'not stated: QFracture group 1 (white or not stated)' });
      missing.push(LABELS['ethrisk']!);
    }
  } else {
    records.push({ factor: 'ethrisk', label: LABELS['ethrisk']!, value: ethrisk, status: 'default', sources: [pref], raw: `unknown code ${ukCode.system}|${ukCode.code}`, note: 'code not in the qfracture-ethrisk-* ValueSets: group 1 used' });
    missing.push(LABELS['ethrisk']!);
  }

  // Smoking
  const smObs = latestObservation(chart, CODES.smoking, indexDate);
  const smCoding = codings(smObs?.valueCodeableConcept).find((c) => [0, 1, 2, 3, 4].some((k) => vs.has(`qfracture-smoke-cat-${k}`, c.system, c.code)));
  const smoke = smCoding ? [0, 1, 2, 3, 4].find((k) => vs.has(`qfracture-smoke-cat-${k}`, smCoding.system, smCoding.code))! : undefined;
  if (smObs && smoke !== undefined) {
    records.push({ factor: 'smoke_cat', label: LABELS['smoke_cat']!, value: smoke, status: 'recorded', sources: [refOf(smObs)], raw: smCoding!.display ?? smCoding!.code! });
  } else {
    records.push({ factor: 'smoke_cat', label: LABELS['smoke_cat']!, value: DEFAULTS.smoke_cat, status: 'default', sources: smObs ? [refOf(smObs)] : [], note: smObs ? 'smoking status code not in the qfracture-smoke-cat-* ValueSets: non-smoker assumed' : 'not recorded: non-smoker assumed' });
    missing.push(LABELS['smoke_cat']!);
  }

  // Alcohol
  const alObs = latestObservation(chart, CODES.alcohol, indexDate);
  const units = quantity(alObs, ['{drinks}/d', '/d', 'U/d', '{units}/d', 'units/day', '1/d']);
  if (alObs && units !== undefined && units >= 0) {
    records.push({ factor: 'alcohol_cat6', label: LABELS['alcohol_cat6']!, value: alcoholCategory(units), status: 'recorded', sources: [refOf(alObs)], raw: units });
  } else {
    records.push({ factor: 'alcohol_cat6', label: LABELS['alcohol_cat6']!, value: DEFAULTS.alcohol_cat6, status: 'default', sources: alObs ? [refOf(alObs)] : [], note: 'not recorded (or unusable unit): none assumed' });
    missing.push(LABELS['alcohol_cat6']!);
  }

  // Booleans
  const booleans: Partial<Record<QfBoolean, 0 | 1>> = {};
  for (const b of QF_BOOLEANS) {
    const vid = valueSetIdFor(b);
    const hit = (cc: CodeableConcept | undefined) => codings(cc).some((c) => vs.has(vid, c.system, c.code) || icd10Match(b, c));
    const sources: string[] = [];
    for (const c of chart.conditions) if (hit(c.code) && conditionCounts(c, b, indexDate)) sources.push(refOf(c));
    for (const m of chart.medicationRequests) {
      const authored = day(m.authoredOn);
      if (m.status === 'active' && hit(m.medicationCodeableConcept) && (!authored || authored <= indexDate)) sources.push(refOf(m));
    }
    for (const m of chart.medicationStatements) {
      const when = day(m.effectiveDateTime ?? m.effectivePeriod?.start ?? m.dateAsserted);
      if (m.status === 'active' && hit(m.medicationCodeableConcept) && (!when || when <= indexDate)) sources.push(refOf(m));
    }
    for (const f of chart.familyHistory) {
      if (f.status !== 'entered-in-error' && (f.condition ?? []).some((c) => hit(c.code))) sources.push(refOf(f));
    }
    const value = sources.length > 0 ? 1 : 0;
    if (value) booleans[b] = 1;
    records.push({ factor: b, label: LABELS[b]!, value, status: value ? 'recorded' : 'not-recorded', sources });
  }

  return {
    sex,
    indexDate,
    inputs: {
      age,
      bmi,
      ethrisk,
      smoke_cat: records.find((r) => r.factor === 'smoke_cat')!.value,
      alcohol_cat6: records.find((r) => r.factor === 'alcohol_cat6')!.value,
      booleans,
    },
    records,
    missing,
    warnings,
  };
}

function usRaceEthrisk(ext: Extension | undefined): { ethrisk: number; code: string; coarse: boolean } | undefined {
  if (!ext) return undefined;
  const subs = ext.extension ?? [];
  for (const s of subs.filter((x) => x.url === 'detailed')) {
    const code = s.valueCoding?.code;
    if (code && code in US_RACE_DETAILED) return { ethrisk: US_RACE_DETAILED[code]!, code, coarse: false };
  }
  const omb = subs.find((x) => x.url === 'ombCategory')?.valueCoding?.code;
  if (!omb || omb === 'UNK' || omb === 'ASKU') return undefined;
  return { ethrisk: US_RACE_OMB[omb] ?? 9, code: omb, coarse: omb !== '2106-3' };
}

/**
 * The FHIR side of the fracture liaison service (FLS) worklist: codes and identifiers of the
 * triage Task (profile `fhir-profiles/structuredefinitions/frcds-fls-triage-task.json`, CodeSystem
 * `fhir-profiles/codesystems/fls-triage.json`), how a worklist item's numbers are read back from a RiskAssessment
 * written by `server/risk/fhir-output.ts`, and batched reads.
 * @see https://hl7.org/fhir/R4/task.html
 */
import { createHash } from 'node:crypto';
import type { CodeableConcept, Coding, Condition, Resource, RiskAssessment, Task } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import { loadValueSets, type ValueSetIndex } from '../fhir/valuesets.ts';
import { ICD10_PREFIXES } from '../risk/factors.ts';
import { EXT } from '../risk/fhir-output.ts';
import { formatInterval, formatPercent } from '../risk/numbers.ts';
import { DISMISSAL_REASONS, FLS_TRIAGE_SYSTEM, type DismissalReasonCode, type RiskWithInterval, type WorklistMode, type WorklistStatus, type WorklistTier } from './types.ts';

export const TRIAGE_TASK_PROFILE = 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/frcds-fls-triage-task';
/** Task.identifier system; the value is the RiskAssessment id (one triage Task per RiskAssessment). */
export const TRIAGE_IDENTIFIER_SYSTEM = 'urn:frcds:fls-triage';
/** ServiceRequest.identifier system of the referral made by accepting a Task; the value is the Task id. */
export const REFERRAL_IDENTIFIER_SYSTEM = 'urn:frcds:fls-triage-referral';
export const TRIAGE_CODING: Readonly<Coding> = Object.freeze({ system: FLS_TRIAGE_SYSTEM, code: 'fls-triage', display: 'Fracture liaison service triage' });
export const TRIAGE_TOKEN = `${FLS_TRIAGE_SYSTEM}|fls-triage`;

/** Task statuses by worklist status (Task state machine: https://hl7.org/fhir/R4/task.html#statemachine). */
export const TASK_STATUSES: Record<WorklistStatus, readonly Task['status'][]> = {
  requested: ['requested', 'received', 'ready'],
  accepted: ['accepted', 'in-progress', 'on-hold', 'completed'],
  dismissed: ['rejected', 'cancelled'],
};
/** Task statuses that keep a triage Task "open": a new one for the same patient would be a duplicate. */
export const OPEN_TASK_STATUSES: readonly Task['status'][] = ['requested', 'received', 'ready', 'accepted', 'in-progress', 'on-hold'];

export function worklistStatusOf(task: Task): WorklistStatus | undefined {
  for (const [k, v] of Object.entries(TASK_STATUSES) as [WorklistStatus, readonly Task['status'][]][]) if (v.includes(task.status)) return k;
  return undefined;
}

const FHIR_ID_MAX = 64;

/**
 * A FHIR id derived from `prefix` and `key`: readable when it fits in 64 characters, else the prefix and a SHA-256
 * digest of the key (stable, so retries write the same resource).
 */
export function derivedId(prefix: string, key: string): string {
  const plain = `${prefix}-${key}`;
  if (plain.length <= FHIR_ID_MAX && /^[A-Za-z0-9\-.]+$/.test(plain)) return plain;
  return `${prefix}-${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
}

export const triageTaskId = (riskAssessmentId: string): string => derivedId('fls-triage', riskAssessmentId);
export const referralId = (taskId: string): string => derivedId('fls-referral', taskId);

export const hasCoding = (cc: CodeableConcept | undefined, c: Pick<Coding, 'system' | 'code'>): boolean =>
  (cc?.coding ?? []).some((x) => x.system === c.system && x.code === c.code);

export const isTriageTask = (t: Task): boolean => hasCoding(t.code, TRIAGE_CODING);

export function dismissalCoding(code: DismissalReasonCode): Coding {
  return { system: FLS_TRIAGE_SYSTEM, code, display: DISMISSAL_REASONS[code] };
}

export function isDismissalReason(x: unknown): x is DismissalReasonCode {
  return typeof x === 'string' && Object.hasOwn(DISMISSAL_REASONS, x);
}

/** `Type/id` → id when the reference is to `type` (relative, or absolute ending in `/Type/id`). */
export function idOf(reference: string | undefined, type: string): string | undefined {
  if (!reference) return undefined;
  const m = new RegExp(`(?:^|/)${type}/([A-Za-z0-9\\-.]{1,64})(?:/_history/[^/]+)?$`).exec(reference);
  return m?.[1];
}

// ---------------------------------------------------------------------------------------------------------------
// RiskAssessment → worklist numbers (the inverse of server/risk/fhir-output.ts)

const HIP = { system: 'http://snomed.info/sct', code: '5913000' } as const;
const MOF = { system: 'urn:frcds:outcome', code: 'mof' } as const;
const pct = (x: number): number => Number((x * 100).toFixed(2));

export interface RiskSummary {
  tier: WorklistTier | undefined;
  mode: WorklistMode;
  hip10: RiskWithInterval | undefined;
  mof10: RiskWithInterval | undefined;
  assessmentId: string | undefined;
  /**
   * The assessment's warnings: every note but the last, which fhir-output.ts always fills with the use statement,
   * and but the first when the RiskAssessment carries a `mitigation` (then its first note is the decision, not a
   * warning).
   */
  warnings: string[];
  studyId: string | undefined;
  occurrence: string | undefined;
}

/** A risk in percent as every screen writes it: `5.2% (95% interval 1.1–17%)`, or `5.2%` without an interval. */
export function describeRisk(r: RiskWithInterval | undefined): string {
  if (!r) return 'unknown';
  return `${formatPercent(r.estimate)}${r.lower !== null && r.upper !== null ? ` (95% interval ${formatInterval(r.lower, r.upper)})` : ''}`;
}

function tenYear(ra: RiskAssessment, outcome: { system: string; code: string }): RiskWithInterval | undefined {
  const p = (ra.prediction ?? []).find((x) => hasCoding(x.outcome, outcome) && x.whenRange?.high?.value === 10 && typeof x.probabilityDecimal === 'number');
  if (!p || p.probabilityDecimal === undefined) return undefined;
  const iv = p.extension?.find((e) => e.url === EXT.interval)?.extension ?? [];
  const lower = iv.find((e) => e.url === 'lower')?.valueDecimal;
  const upper = iv.find((e) => e.url === 'upper')?.valueDecimal;
  return { estimate: pct(p.probabilityDecimal), lower: lower === undefined ? null : pct(lower), upper: upper === undefined ? null : pct(upper) };
}

export function summarise(ra: RiskAssessment): RiskSummary {
  const tiers: WorklistTier[] = ['low', 'moderate', 'high'];
  let tier: WorklistTier | undefined;
  for (const p of ra.prediction ?? []) {
    const c = p.qualitativeRisk?.coding?.find((x) => x.system === 'http://terminology.hl7.org/CodeSystem/risk-probability');
    if (c?.code && (tiers as string[]).includes(c.code)) tier = c.code as WorklistTier;
  }
  const modeCode = ra.extension?.find((e) => e.url === EXT.mode)?.valueCode;
  const notes = (ra.note ?? []).map((n) => n.text ?? '').filter((t) => t !== '');
  return {
    tier,
    mode: modeCode === 'image-and-clinical' ? 'image-and-clinical' : 'clinical-only',
    hip10: tenYear(ra, HIP),
    mof10: tenYear(ra, MOF),
    assessmentId: ra.identifier?.find((i) => i.system === 'urn:frcds:assessment')?.value,
    warnings: notes.slice(ra.mitigation ? 1 : 0, -1),
    studyId: (ra.basis ?? []).map((b) => idOf(b.reference, 'ImagingStudy')).find((x) => x !== undefined),
    occurrence: ra.occurrenceDateTime ?? ra.occurrencePeriod?.start,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Imminent risk: a fragility fracture recorded in the 2 years before the assessment

/**
 * True when `c` records a major osteoporotic (fragility-site) fracture: a code in the `fracture-hip` /
 * `fracture-mof` / `qfracture-b-fracture4` ValueSets, or an ICD-10 code under the prefixes the risk engine uses
 * for `b_fracture4` (server/risk/factors.ts). Entered-in-error and refuted records do not count. The chart cannot
 * tell the mechanism (high-energy trauma): the FLS coordinator judges that (dismissal reason `not-fragility`).
 */
export function isFragilityFracture(c: Condition, vs: ValueSetIndex = loadValueSets()): boolean {
  const ver = (c.verificationStatus?.coding ?? []).map((x) => x.code);
  if (ver.includes('entered-in-error') || ver.includes('refuted')) return false;
  return (c.code?.coding ?? []).some((x) => {
    if (['fracture-hip', 'fracture-mof', 'qfracture-b-fracture4'].some((id) => vs.byId.has(id) && vs.has(id, x.system, x.code))) return true;
    if (x.system !== 'http://hl7.org/fhir/sid/icd-10-cm' && x.system !== 'http://hl7.org/fhir/sid/icd-10') return false;
    const code = (x.code ?? '').replace('.', '').toUpperCase();
    return code !== '' && (ICD10_PREFIXES.b_fracture4 ?? []).some((p) => code.startsWith(p));
  });
}

/** Date a fracture happened (onset), else when it was recorded (YYYY-MM-DD). */
export function fractureDate(c: Condition): string | undefined {
  const d = c.onsetDateTime ?? c.onsetPeriod?.start ?? c.recordedDate;
  return d && /^\d{4}-\d{2}-\d{2}/.test(d) ? d.slice(0, 10) : undefined;
}

/** The latest fragility fracture dated within `days` before (and not after) `at` (YYYY-MM-DD or date-time). */
export function recentFracture(conditions: readonly Condition[], at: string, days: number, vs?: ValueSetIndex): { condition: Condition; date: string } | undefined {
  const end = at.slice(0, 10);
  const start = new Date(Date.parse(`${end}T00:00:00Z`) - days * 86_400_000).toISOString().slice(0, 10);
  let best: { condition: Condition; date: string } | undefined;
  for (const c of conditions) {
    const d = fractureDate(c);
    if (d === undefined || d < start || d > end || !isFragilityFracture(c, vs)) continue;
    if (!best || d > best.date) best = { condition: c, date: d };
  }
  return best;
}

/** Imminent risk: a fragility fracture dated within `days` before (and not after) `at` (YYYY-MM-DD or date-time). */
export function hasImminentRisk(conditions: readonly Condition[], at: string, days: number, vs?: ValueSetIndex): boolean {
  return recentFracture(conditions, at, days, vs) !== undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Batched reads

/** Ids per `_id` (or reference list) search: keeps URLs well under common 8 kB limits. */
export const BATCH = 50;

function chunks<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** Reads many resources of one type with `_id=a,b,…` searches (one per {@link BATCH} ids, in parallel). */
export async function readMany<T extends Resource>(fhir: FhirDataSource, type: T['resourceType'], ids: Iterable<string>, signal?: AbortSignal): Promise<Map<string, T>> {
  const unique = [...new Set(ids)];
  const pages = await Promise.all(chunks(unique, BATCH).map((c) => fhir.search<T>(type, { _id: c.join(','), _count: String(c.length) }, signal)));
  const out = new Map<string, T>();
  for (const r of pages.flat()) if (r.id) out.set(r.id, r);
  return out;
}

/** Searches `type` by `subject=Patient/a,Patient/b,…` for many patients (batched); results grouped by patient id. */
export async function searchBySubject<T extends Resource & { subject?: { reference?: string } }>(
  fhir: FhirDataSource, type: T['resourceType'], patientIds: Iterable<string>, extra: Record<string, string> = {}, signal?: AbortSignal,
): Promise<Map<string, T[]>> {
  const unique = [...new Set(patientIds)];
  const pages = await Promise.all(chunks(unique, BATCH).map((c) => fhir.search<T>(type, { ...extra, subject: c.map((id) => `Patient/${id}`).join(',') }, signal)));
  const out = new Map<string, T[]>();
  for (const r of pages.flat()) {
    const pid = idOf(r.subject?.reference, 'Patient');
    if (!pid) continue;
    const list = out.get(pid) ?? [];
    list.push(r);
    out.set(pid, list);
  }
  return out;
}

/**
 * The chart the demo EHR shows, read from its FHIR server: demographics, problems, medicines, observations,
 * imaging studies, imaging reports, orders and past RiskAssessments (each section fails on its own: a chart with one broken
 * section still opens).
 */
import type { Condition, DiagnosticReport, HumanName, ImagingStudy, MedicationRequest, Observation, Patient, RiskAssessment, ServiceRequest } from '@medplum/fhirtypes';
import type { EhrFhir } from './fhir-access.ts';

export interface Section<T> {
  items: T[];
  error?: string;
}

export interface Chart {
  patient: Patient;
  problems: Section<Condition>;
  medicines: Section<MedicationRequest>;
  observations: Section<Observation>;
  imaging: Section<ImagingStudy>;
  /** DiagnosticReports, newest first (the "Finalise report" button acts on those awaiting sign-off). */
  reports: Section<DiagnosticReport>;
  orders: Section<ServiceRequest>;
  assessments: Section<RiskAssessment>;
}

async function section<T>(load: () => Promise<T[]>): Promise<Section<T>> {
  try {
    return { items: await load() };
  } catch (err) {
    return { items: [], error: (err as Error).message };
  }
}

/** Newest first by the given date; undated last. */
function newestFirst<T>(items: T[], date: (t: T) => string | undefined): T[] {
  return [...items].sort((a, b) => (date(b) ?? '').localeCompare(date(a) ?? ''));
}

export async function loadChart(fhir: EhrFhir, patientId: string): Promise<Chart> {
  const patient = await fhir.get<Patient>(`Patient/${encodeURIComponent(patientId)}`);
  const q = { patient: patientId, _count: '100' };
  const [problems, medicines, observations, imaging, reports, orders, assessments] = await Promise.all([
    section(async () => (await fhir.search<Condition>('Condition', q)).resources),
    section(async () => (await fhir.search<MedicationRequest>('MedicationRequest', q)).resources),
    section(async () => newestFirst((await fhir.search<Observation>('Observation', q)).resources, (o) => o.effectiveDateTime)),
    section(async () => newestFirst((await fhir.search<ImagingStudy>('ImagingStudy', q)).resources, (s) => s.started)),
    section(async () => newestFirst((await fhir.search<DiagnosticReport>('DiagnosticReport', q)).resources, (r) => r.effectiveDateTime ?? r.issued)),
    section(async () => newestFirst((await fhir.search<ServiceRequest>('ServiceRequest', q)).resources, (s) => s.authoredOn)),
    section(async () => newestFirst((await fhir.search<RiskAssessment>('RiskAssessment', q)).resources, (r) => r.occurrenceDateTime)),
  ]);
  return { patient, problems, medicines, observations, imaging, reports, orders, assessments };
}

/** "Given Family" from the official (or first) name. */
export function displayName(p: Patient): string {
  const n: HumanName | undefined = p.name?.find((x) => x.use === 'official') ?? p.name?.[0];
  if (!n) return `Patient ${p.id ?? ''}`.trim();
  return n.text ?? [...(n.given ?? []), n.family].filter(Boolean).join(' ');
}

/** The medical record number (identifier typed MR), if any. */
export function mrn(p: Patient): string | undefined {
  return p.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'MR'))?.value ?? p.identifier?.[0]?.value;
}

/** Age in whole years on `at` (default today). */
export function ageYears(birthDate: string | undefined, at = new Date()): number | undefined {
  if (!birthDate || !/^\d{4}-\d{2}-\d{2}/.test(birthDate)) return undefined;
  const [y, m, d] = birthDate.slice(0, 10).split('-').map(Number) as [number, number, number];
  let age = at.getUTCFullYear() - y;
  if (at.getUTCMonth() + 1 < m || (at.getUTCMonth() + 1 === m && at.getUTCDate() < d)) age -= 1;
  return age;
}

/**
 * Imaging reports in the demo EHR: which reports are still awaiting sign-off, and "Finalise report" — the
 * radiologist's sign-off, an update of the DiagnosticReport to `final` on the FHIR server. The EHR knows nothing
 * of the CDS service here: the FHIR server's Subscription notifies the service (server/events/README.md), whose
 * background job writes a RiskAssessment with the report in `basis`, which the EHR then finds by that `basis`.
 * @see https://hl7.org/fhir/R4/diagnosticreport.html (status: registered → partial/preliminary → final)
 * @see https://hl7.org/fhir/R4/riskassessment-definitions.html#RiskAssessment.basis
 */
import type { DiagnosticReport, RiskAssessment } from '@medplum/fhirtypes';
import { EhrFhirError, type EhrFhir } from './fhir-access.ts';

/** Report statuses before sign-off (FHIR R4 `diagnostic-report-status`): the ones the EHR offers to finalise. */
export const AWAITING_FINAL: readonly DiagnosticReport['status'][] = ['registered', 'partial', 'preliminary'];

export function awaitsFinal(r: DiagnosticReport): boolean {
  return AWAITING_FINAL.includes(r.status);
}

/** Why a report cannot be finalised: `not-found` (no such report for this patient) or `not-pending` (already signed off, cancelled…). */
export class FinaliseError extends Error {
  override readonly name = 'FinaliseError';
  constructor(
    readonly kind: 'not-found' | 'not-pending',
    message: string,
  ) {
    super(message);
  }
}

export interface Finalised {
  /** `DiagnosticReport/<id>`. */
  report: string;
  /** The version the update created (the one the Subscription notifies). */
  versionId?: string;
  /** Its `meta.lastUpdated`: an assessment answering it is written after this. */
  lastUpdated?: string;
}

/**
 * Signs a report off: reads it, checks it belongs to the patient and awaits sign-off, and PUTs it back with status
 * `final` and `issued` now (the time this version was made available, FHIR R4 DiagnosticReport.issued).
 */
export async function finaliseReport(fhir: EhrFhir, patientId: string, reportId: string, now = new Date()): Promise<Finalised> {
  let report: DiagnosticReport;
  try {
    report = await fhir.get<DiagnosticReport>(`DiagnosticReport/${encodeURIComponent(reportId)}`);
  } catch (err) {
    if (err instanceof EhrFhirError && err.notFound) throw new FinaliseError('not-found', 'no such report');
    throw err;
  }
  // A report of another patient is "not found" for this chart: the chart's URL must not reach other patients' data.
  if (report.subject?.reference !== `Patient/${patientId}`) throw new FinaliseError('not-found', 'no such report for this patient');
  if (!awaitsFinal(report)) throw new FinaliseError('not-pending', `the report is ${report.status}, not awaiting sign-off`);
  const { meta: _meta, ...rest } = report;
  const updated = await fhir.update<DiagnosticReport>({ ...rest, id: reportId, status: 'final', issued: now.toISOString() });
  return {
    report: `DiagnosticReport/${reportId}`,
    ...(updated?.meta?.versionId ? { versionId: updated.meta.versionId } : {}),
    ...(updated?.meta?.lastUpdated ? { lastUpdated: updated.meta.lastUpdated } : {}),
  };
}

/**
 * The newest RiskAssessment of the patient with the report in `basis`, written at or after `since` (so an older
 * assessment of an earlier version does not count). R4 has no search parameter for `basis`: filtered here.
 */
export async function assessmentForReport(fhir: EhrFhir, patientId: string, reportId: string, since: string | undefined): Promise<RiskAssessment | undefined> {
  const { resources } = await fhir.search<RiskAssessment>('RiskAssessment', { patient: patientId, _count: '100' });
  const ref = `DiagnosticReport/${reportId}`;
  const sinceMs = since ? Date.parse(since) : Number.NaN;
  return resources
    .filter((ra) => ra.basis?.some((b) => b.reference === ref || b.reference?.endsWith(`/${ref}`)))
    .filter((ra) => Number.isNaN(sinceMs) || Date.parse(ra.meta?.lastUpdated ?? '') >= sinceMs)
    .sort((a, b) => (b.meta?.lastUpdated ?? '').localeCompare(a.meta?.lastUpdated ?? ''))[0];
}

/**
 * Ids of the patients (among `patientIds`, or all when omitted) with at least one report awaiting sign-off: one
 * search, for the patient list's badge and its "awaiting sign-off" filter.
 */
export async function patientsWithPendingReports(fhir: EhrFhir, patientIds?: readonly string[]): Promise<Set<string>> {
  if (patientIds?.length === 0) return new Set();
  const params: Record<string, string> = { status: AWAITING_FINAL.join(','), _count: '500' };
  if (patientIds) params['patient'] = patientIds.map((id) => `Patient/${id}`).join(',');
  const { resources } = await fhir.search<DiagnosticReport>('DiagnosticReport', params);
  const ids = new Set<string>();
  for (const r of resources) {
    const m = /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(r.subject?.reference ?? '');
    if (m && awaitsFinal(r)) ids.add(m[1]!);
  }
  return ids;
}

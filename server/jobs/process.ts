/**
 * The job code (issue 8, item 2), run unchanged by both queues: one "imaging report became final" event →
 * find the ImagingStudy → assess → write the RiskAssessment and Provenance → ask the FLS triage whether a Task is
 * warranted.
 *
 * Delivery is at least once, so the job is idempotent:
 * - the idempotency key is the report id + `meta.versionId`; a key already completed is skipped (`duplicate`);
 * - the RiskAssessment and Provenance have ids derived from the report id (one result per report, rewritten by a
 *   newer version), written with PUT, so re-running after a crash rewrites the same resources;
 * - under a per-report lock, the version's order stamp (`meta.lastUpdated`, then a numeric `versionId`) is compared
 *   with the newest one already written: an older version never overwrites a newer one (`superseded`).
 *
 * A notification is only a hint that something changed: its payload is never trusted. The job always re-reads the
 * report from the FHIR server with the service's own credentials, so the order stamp is the server's, a report the
 * server does not hold is dead-lettered, and a forged "newer version" cannot supersede the genuine one. The report's
 * subject must be the ImagingStudy's subject, or nothing is assessed (a wrong-patient result is the worst outcome).
 * Failures worth retrying throw {@link RetryableJobError}; problems no retry can fix return a `dead` outcome.
 * @see https://hl7.org/fhir/uv/subscriptions-backport/STU1.1/ ("notifications can repeat and arrive out of order")
 */
import { createHash } from 'node:crypto';
import type { DiagnosticReport, ImagingStudy, Provenance, Reference, Resource, RiskAssessment } from '@medplum/fhirtypes';
import { FhirAccessError, FhirNotFoundError, type FhirDataSource } from '../fhir/client.ts';
import { hashPatientId, redactIds, type Logger } from '../logging.ts';
import { AssessmentError, type AssessRequest } from '../risk/assess.ts';
import { EXT } from '../risk/fhir-output.ts';
import type { ServiceResult } from '../risk/service.ts';
import { FINAL_STATUSES } from '../events/topic.ts';
import type { TriageFn } from './triage-link.ts';
import { idempotencyKey, RetryableJobError, type JobCoordination, type JobOutcome, type ReportEvent } from './types.ts';

/** Identifier system of the report version a job-written RiskAssessment answers. */
export const REPORT_EVENT_SYSTEM = 'urn:frcds:report-event';

export interface JobDeps {
  readonly fhir: FhirDataSource;
  /** The risk service's assess (without its own write-back: the job writes the resources itself). */
  readonly assess: (req: AssessRequest) => Promise<ServiceResult>;
  readonly triage: TriageFn | null;
  readonly coordination: JobCoordination;
  readonly logger: Logger;
}

/** A stamp that sorts versions of one resource in time order (string comparison). */
export function versionOrder(r: { meta?: { versionId?: string; lastUpdated?: string } }): string {
  const t = Date.parse(r.meta?.lastUpdated ?? '');
  const when = Number.isFinite(t) ? new Date(t).toISOString() : '0000-00-00T00:00:00.000Z';
  const v = r.meta?.versionId ?? '';
  return `${when}|${/^\d{1,15}$/.test(v) ? v.padStart(15, '0') : ''}`;
}

/** A stable FHIR id `<prefix><id>` (≤ 64 characters of [A-Za-z0-9-.]; hashed when the plain one is too long). */
export function derivedId(prefix: string, id: string): string {
  const plain = `${prefix}${id}`;
  return plain.length <= 64 ? plain : `${prefix}${createHash('sha256').update(id).digest('hex').slice(0, 40)}`;
}

/** Id of the RiskAssessment answering a report. */
export function riskAssessmentIdForReport(reportId: string): string {
  return derivedId('frcds-report-', reportId);
}

/** `Type/id` of a (relative, absolute or versioned) reference, or null. */
export function parseReference(ref: string | undefined, type: string): string | null {
  if (!ref) return null;
  const m = new RegExp(`(?:^|/)${type}/([A-Za-z0-9\\-.]{1,64})(?:/_history/[^/]+)?$`).exec(ref);
  return m ? m[1]! : null;
}

/**
 * A dead outcome. Reasons end up in the dead-letter list and in log lines: resource ids in them (error texts quote
 * request URLs) are hashed as the logs hash them.
 */
const dead = (key: string, reason: string): JobOutcome => ({ status: 'dead', key, reason: redactIds(reason) });

/** Turns a FHIR access failure into a retry (transient) or a dead letter (permanent). */
function fhirFailure(err: unknown, key: string, what: string): JobOutcome {
  if (err instanceof FhirAccessError) {
    if (err.retryable) throw new RetryableJobError(`${what}: ${redactIds(err.message)}`);
    return dead(key, `${what}: ${err.message}`);
  }
  throw err;
}

async function currentReport(deps: JobDeps, event: ReportEvent): Promise<{ report: DiagnosticReport } | { outcome: JobOutcome }> {
  // Whatever the notification carried (id only, or a full resource that anyone holding the channel secret could
  // have written), the report is read from the FHIR server.
  try {
    return { report: await deps.fhir.read<DiagnosticReport>('DiagnosticReport', event.reportId) };
  } catch (err) {
    const key = idempotencyKey(event.reportId, event.versionId);
    if (err instanceof FhirNotFoundError) return { outcome: dead(key, 'the notified DiagnosticReport does not exist on the FHIR server') };
    return { outcome: fhirFailure(err, key, 'reading the notified DiagnosticReport') };
  }
}

/** Finds the report's ImagingStudy: `imagingStudy`, else an order in `basedOn`, else the accession number. */
export async function findStudy(fhir: FhirDataSource, report: DiagnosticReport): Promise<{ study: ImagingStudy } | { missing: string }> {
  for (const ref of report.imagingStudy ?? []) {
    const id = parseReference(ref.reference, 'ImagingStudy');
    if (!id) continue;
    try {
      return { study: await fhir.read<ImagingStudy>('ImagingStudy', id) };
    } catch (err) {
      if (err instanceof FhirNotFoundError) return { missing: `the report's ImagingStudy/${id} does not exist on the FHIR server` };
      throw err;
    }
  }
  for (const ref of report.basedOn ?? []) {
    const id = parseReference(ref.reference, 'ServiceRequest');
    if (!id) continue;
    const found = await fhir.search<ImagingStudy>('ImagingStudy', { basedon: `ServiceRequest/${id}`, _count: '5' });
    if (found[0]) return { study: found[0] };
  }
  for (const ident of report.identifier ?? []) {
    const isAccession = (ident.type?.coding ?? []).some((c) => c.code === 'ACSN') || /accession/i.test(ident.system ?? '');
    if (!isAccession || !ident.value) continue;
    const found = await fhir.search<ImagingStudy>('ImagingStudy', { identifier: ident.value, _count: '5' });
    if (found[0]) return { study: found[0] };
  }
  return { missing: 'the report names no ImagingStudy (no imagingStudy reference, no basedOn order with a study, no matching accession number)' };
}

/** Where a job-written result comes from: its stable RiskAssessment id, the source resource, and its key. */
export interface ResultSource {
  readonly raId: string;
  /** The resource the result answers (the report; for a backfill, the study), added to basis and Provenance. */
  readonly source: Reference;
  readonly identifier: { system: string; value: string };
}

/** Adapts the risk service's resources to "one result per source": stable ids, the source in basis and entities. */
export function resultResources(stored: ServiceResult['stored'], from: ResultSource): { riskAssessment: RiskAssessment; provenance: Provenance } {
  const src = stored.fhir;
  const basis = src.riskAssessment.basis ?? [];
  // The heatmap's DocumentReference and Binaries are not written by jobs (they are re-rendered on demand by the
  // assessment API), so the RiskAssessment must not point at them.
  const riskAssessment: RiskAssessment = {
    ...structuredClone(src.riskAssessment),
    id: from.raId,
    extension: (src.riskAssessment.extension ?? []).filter((e) => e.url !== EXT.heatmap),
    identifier: [...(src.riskAssessment.identifier ?? []), from.identifier],
    basis: basis.some((b) => b.reference === from.source.reference) ? basis : [...basis, from.source],
  };
  const entities = src.provenance.entity ?? [];
  const provenance: Provenance = {
    ...structuredClone(src.provenance),
    id: `${from.raId}-provenance`,
    target: [{ reference: `RiskAssessment/${from.raId}` }],
    entity: entities.some((e) => e.what.reference === from.source.reference) ? entities : [...entities, { role: 'source', what: from.source }],
  };
  return { riskAssessment, provenance };
}

/**
 * The device-derived measurements a result's RiskAssessment rests on — a CT assessment's Observations (L1
 * attenuation, per-level morphometry) with their Device and Provenance — in write order; none for a radiograph.
 * The RiskAssessment's basis references them, so a job writes them first: otherwise the basis would dangle.
 */
export function measurementResources(stored: ServiceResult['stored']): Resource[] {
  const ct = stored.fhir.ct;
  return ct ? [ct.device, ...ct.observations, ct.provenance] : [];
}

/** Runs one event. Throws {@link RetryableJobError} (or an unexpected error) to ask for a retry. */
export async function processReportEvent(deps: JobDeps, event: ReportEvent): Promise<JobOutcome> {
  const log = deps.logger.child({ component: 'jobs', reportHash: hashPatientId(event.reportId), source: event.source });
  const got = await currentReport(deps, event);
  if ('outcome' in got) return got.outcome;
  const report = got.report;
  if (report.resourceType !== 'DiagnosticReport' || !report.id) return dead(idempotencyKey(event.reportId, event.versionId), 'the notified resource is not a DiagnosticReport with an id');
  const key = idempotencyKey(report.id, report.meta?.versionId);
  if (!FINAL_STATUSES.has(report.status)) return { status: 'skipped', key, reason: `not-final: the report's current status is ${report.status}` };
  if (await deps.coordination.isDone(key)) return { status: 'skipped', key, reason: 'duplicate: this report version was already processed' };

  let study: ImagingStudy;
  try {
    const found = await findStudy(deps.fhir, report);
    if ('missing' in found) return dead(key, found.missing);
    study = found.study;
  } catch (err) {
    return fhirFailure(err, key, 'finding the ImagingStudy');
  }
  const patientId = parseReference(study.subject?.reference, 'Patient');
  if (!patientId) return dead(key, 'the ImagingStudy has no Patient subject');
  const reportPatient = parseReference(report.subject?.reference, 'Patient');
  if (reportPatient !== patientId) {
    log.warn({ studyPatient: hashPatientId(patientId), reportPatient: reportPatient ? hashPatientId(reportPatient) : null }, 'report subject does not match its ImagingStudy subject; not assessed');
    return dead(key, reportPatient ? 'the report\'s subject is not the ImagingStudy\'s subject: not assessed' : 'the report has no Patient subject: not assessed');
  }

  let result: ServiceResult;
  try {
    const when = Date.parse(report.issued ?? report.effectiveDateTime ?? '');
    result = await deps.assess({ patientId, studyId: study.id!, ...(Number.isFinite(when) ? { at: new Date(when) } : {}) });
  } catch (err) {
    if (err instanceof AssessmentError) return dead(key, `assessment refused: ${err.message}`);
    return fhirFailure(err, key, 'assessing');
  }

  const { riskAssessment, provenance } = resultResources(result.stored, { raId: riskAssessmentIdForReport(report.id), source: { reference: `DiagnosticReport/${report.id}` }, identifier: { system: REPORT_EVENT_SYSTEM, value: key } });
  const order = versionOrder(report);
  const written = await deps.coordination.withReportLock(report.id, async () => {
    const latest = await deps.coordination.latestVersion(report.id!);
    if (latest !== null && latest > order) return null;
    try {
      await deps.fhir.write(result.stored.fhir.device);
      for (const r of measurementResources(result.stored)) await deps.fhir.write(r);
      const ra = await deps.fhir.write(riskAssessment);
      await deps.fhir.write(provenance);
      await deps.coordination.setLatestVersion(report.id!, order);
      return ra;
    } catch (err) {
      if (err instanceof FhirAccessError) throw new RetryableJobError(`writing the RiskAssessment: ${redactIds(err.message)}`);
      throw err;
    }
  });
  if (!written) {
    const outcome: JobOutcome = { status: 'skipped', key, reason: 'superseded: a newer version of this report was already assessed' };
    await deps.coordination.markDone(key, outcome);
    return outcome;
  }

  let triage: { created: boolean; reason: string; taskId?: string } | null = null;
  if (deps.triage) {
    try {
      triage = await deps.triage(deps.fhir, { patientId, riskAssessment: written, assessment: result.stored.assessment });
    } catch (err) {
      // A FHIR refusal or a triage input problem will not change on a retry: record it with the result.
      if ((err instanceof FhirAccessError && !err.retryable) || (err as Error).name === 'TriageInputError') triage = { created: false, reason: `triage failed: ${(err as Error).message}` };
      else throw new RetryableJobError(`FLS triage: ${redactIds((err as Error).message)}`);
    }
  }
  const outcome: JobOutcome = {
    status: 'done',
    key,
    reason: 'assessed',
    riskAssessmentId: written.id!,
    tier: result.stored.assessment.tier.tier,
    triage,
    assessmentSource: result.source,
  };
  await deps.coordination.markDone(key, outcome);
  log.info({ tier: outcome.tier, mode: result.stored.assessment.mode, triageCreated: triage?.created ?? null, assessmentSource: result.source }, 'report event processed');
  return outcome;
}

/**
 * The project's subscription topic "imaging DiagnosticReport became final" and the Subscriptions Backport (R4,
 * IG 1.1.0) identifiers both ends need. No standard topic for a report becoming final exists (standards page,
 * "FHIR Subscriptions"), so the project defines its own canonical; the document lives in
 * `fhir-profiles/subscriptiontopics/imaging-report-final.json` (R5 SubscriptionTopic shape, for documentation).
 * @see https://hl7.org/fhir/uv/subscriptions-backport/STU1.1/
 */
import type { DiagnosticReport } from '@medplum/fhirtypes';

/** Canonical URL of the topic (goes into `Subscription.criteria` of a topic-based R4 Subscription). */
export const TOPIC_URL = 'https://fracture-risk-cds.invalid/fhir/SubscriptionTopic/imaging-report-final';

/** Plain R4 criteria that approximates the topic (R4 criteria Subscriptions cannot express "became"). */
export const R4_CRITERIA = 'DiagnosticReport?status=final';

const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
/** Backport extensions and profiles (IG 1.1.0). */
export const BACKPORT_URLS = {
  payloadContent: `${BACKPORT}/backport-payload-content`,
  filterCriteria: `${BACKPORT}/backport-filter-criteria`,
  heartbeatPeriod: `${BACKPORT}/backport-heartbeat-period`,
  maxCount: `${BACKPORT}/backport-max-count`,
  statusProfile: `${BACKPORT}/backport-subscription-status-r4`,
  subscriptionProfile: `${BACKPORT}/backport-subscription`,
} as const;

export type PayloadContent = 'empty' | 'id-only' | 'full-resource';
export type NotificationType = 'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event';

/** Report statuses that count as "final" for the topic (an amended or corrected report is re-assessed). */
export const FINAL_STATUSES: ReadonlySet<string> = new Set(['final', 'amended', 'corrected']);

const V2_0074 = 'http://terminology.hl7.org/CodeSystem/v2-0074';
/**
 * HL7 v2-0074 diagnostic service sections that are imaging. Sites code a CT report `CT` (CAT scan) and a
 * radiograph `RX` as often as the generic `RAD`, and such a report may name its study only through its order or
 * accession number, so `RAD` alone would miss it.
 */
const IMAGING_SECTIONS: ReadonlySet<string> = new Set(['RAD', 'RX', 'CT', 'XRC', 'NMR', 'NMS', 'CUS', 'OUS', 'VUS']);
/** LOINC part "Radiology", the imaging report category of US Core DiagnosticReport for report and note exchange. */
const LOINC_RADIOLOGY = 'LP29684-5';

/** An imaging report: an imaging category (HL7 v2-0074 RAD, CT, RX …; LOINC Radiology) or a link to an ImagingStudy. */
export function isImagingReport(r: DiagnosticReport): boolean {
  if ((r.imagingStudy?.length ?? 0) > 0) return true;
  return (r.category ?? []).some((c) =>
    (c.coding ?? []).some((k) => (k.code === 'RAD' || ((k.system === undefined || k.system === V2_0074) && IMAGING_SECTIONS.has(k.code ?? ''))) || (k.system === 'http://loinc.org' && k.code === LOINC_RADIOLOGY)),
  );
}

/**
 * The topic's trigger: the report is final now and was not (absent, or another status) before.
 * @see fhir-profiles/subscriptiontopics/imaging-report-final.json `resourceTrigger`
 */
export function becameFinal(prior: DiagnosticReport | undefined, current: DiagnosticReport): boolean {
  if (!FINAL_STATUSES.has(current.status)) return false;
  if (!isImagingReport(current)) return false;
  return !prior || prior.status !== current.status;
}

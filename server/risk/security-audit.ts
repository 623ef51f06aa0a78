/**
 * Safety events of the risk engine (an image filed under another patient) as FHIR `AuditEvent`s, written to the
 * configured FHIR server with the service's own credentials — never to a CDS client's FHIR server, whose token is
 * only lent for reading the chart. The write is best effort: a failure is logged (hashed ids), and the assessment
 * it belongs to is never held up or failed by it.
 *
 * Shape: DICOM "Security Alert" (DCM 110113) with subtype "Patient Record" mismatch semantics, the patient and the
 * study as entities, outcome "minor failure" (the image was refused, the request still answered).
 * @see https://hl7.org/fhir/R4/auditevent.html
 * @see https://dicom.nema.org/medical/dicom/current/output/chtml/part16/sect_CID_400.html (audit event IDs)
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import { hashPatientId, type Logger } from '../logging.ts';
import type { SecurityEvent } from './assess.ts';

const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';

/** Builds the AuditEvent of one safety event. */
export function securityAuditEvent(e: SecurityEvent, recorded: Date): AuditEvent {
  const description = e.reason === 'no-patient-id'
    ? 'Image refused: no DICOM Patient ID to match against the chart'
    : 'Image refused: its DICOM Patient ID does not match the patient assessed';
  return {
    resourceType: 'AuditEvent',
    type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110113', display: 'Security Alert' },
    subtype: [{ system: 'urn:frcds:audit-subtype', code: e.kind, display: 'Image of another patient refused' }],
    action: 'E',
    recorded: recorded.toISOString(),
    outcome: '4',
    outcomeDesc: description,
    agent: [{
      type: { coding: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110150', display: 'Application' }] },
      who: { display: 'Fracture Risk CDS risk engine' },
      requestor: false,
    }],
    source: { observer: { display: 'Fracture Risk CDS' }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }] },
    entity: [
      { what: { reference: `Patient/${e.patientId}` }, type: { system: ENTITY_TYPE, code: '1', display: 'Person' }, role: { system: OBJECT_ROLE, code: '1', display: 'Patient' } },
      ...(e.studyId ? [{ what: { reference: `ImagingStudy/${e.studyId}` }, type: { system: ENTITY_TYPE, code: '2', display: 'System Object' }, role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' }, description: 'study whose image was refused' }] : []),
    ],
  };
}

/** A `SecurityEvent` sink that writes AuditEvents to `fhir`; never throws, never waits the caller. */
export function auditSecurityEvents(fhir: FhirDataSource, logger: Logger, now: () => Date = () => new Date()): (e: SecurityEvent) => void {
  const log = logger.child({ component: 'security-audit' });
  return (e) => {
    const ids = { patient: hashPatientId(e.patientId), kind: e.kind, reason: e.reason };
    log.warn(ids, 'safety event: image of another patient refused');
    void fhir.write(securityAuditEvent(e, now())).catch((err: unknown) => log.error({ ...ids, err: (err as Error).message }, 'the AuditEvent of a safety event could not be written'));
  };
}

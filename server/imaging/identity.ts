/**
 * Is this image of this patient? The ImagingStudy that led to an image is only a pointer (a prefetch, a forged
 * notification or a wrong study link can name another person's study), so before any pixel is used the DICOM
 * header's Patient ID (0010,0020), and Issuer of Patient ID (0010,0021) where present, are compared with the FHIR
 * Patient's identifiers. A mismatch or an image without a Patient ID is refused: a wrong-patient result is worse
 * than none.
 *
 * Rule (documented for sites in server/imaging/README.md):
 * - With `systems` configured (`IMAGE_PATIENT_ID_SYSTEMS`), the DICOM Patient ID must equal the value of a Patient
 *   identifier in one of those systems. This is for sites whose PACS id is not the EHR's MRN: the EHR keeps the PACS
 *   id as another identifier of the Patient, and that identifier's system is configured here.
 * - Otherwise, with an Issuer of Patient ID in the header, an identifier of that system must carry the Patient ID.
 * - Otherwise any Patient identifier whose value equals the Patient ID matches.
 * Values are compared exactly after trimming DICOM's padding spaces (LO values are space-padded to even length).
 * @see https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.7.html#sect_C.7.1.1 (Patient Module)
 * @see https://hl7.org/fhir/R4/patient-definitions.html#Patient.identifier
 */
import type { Patient } from '@medplum/fhirtypes';
import { jsonString, TAG, type DicomJsonDataset } from './dicom-json.ts';
import { ImagingError } from './errors.ts';

export interface IdentityOptions {
  /** Patient.identifier systems that carry the PACS Patient ID; empty or absent: see the module rule. */
  readonly systems?: readonly string[];
}

export type IdentityVerdict =
  | { readonly match: true }
  | { readonly match: false; readonly reason: 'no-patient-id' | 'mismatch' | 'issuer-mismatch' };

/** The image's Patient ID does not belong to the patient being assessed (or the image has none). */
export class PatientMismatchError extends ImagingError {
  readonly code = 'PATIENT_MISMATCH';
  readonly retryable = false;
  constructor(readonly reason: Exclude<IdentityVerdict, { match: true }>['reason']) {
    // No identifier values in the message: it reaches logs and, through the warning text, users.
    super(reason === 'no-patient-id' ? 'the image carries no DICOM Patient ID, so it cannot be matched to the patient' : 'the image belongs to another patient (its DICOM Patient ID does not match the chart)');
  }
}

const clean = (s: string | undefined): string | undefined => {
  const t = s?.trim();
  return t ? t : undefined;
};

/** Compares the header's patient identity with the FHIR Patient. */
export function checkImageIdentity(metadata: DicomJsonDataset, patient: Pick<Patient, 'identifier'>, opts: IdentityOptions = {}): IdentityVerdict {
  const pid = clean(jsonString(metadata, TAG.PatientID));
  if (!pid) return { match: false, reason: 'no-patient-id' };
  const issuer = clean(jsonString(metadata, TAG.IssuerOfPatientID));
  const ids = (patient.identifier ?? []).filter((i) => clean(i.value) === pid);
  if (opts.systems && opts.systems.length > 0) {
    return ids.some((i) => i.system !== undefined && opts.systems!.includes(i.system)) ? { match: true } : { match: false, reason: 'mismatch' };
  }
  if (ids.length === 0) return { match: false, reason: 'mismatch' };
  if (issuer && !ids.some((i) => i.system === issuer)) return { match: false, reason: 'issuer-mismatch' };
  return { match: true };
}

/** @throws PatientMismatchError unless the image is the patient's. */
export function assertImageIdentity(metadata: DicomJsonDataset, patient: Pick<Patient, 'identifier'>, opts: IdentityOptions = {}): void {
  const v = checkImageIdentity(metadata, patient, opts);
  if (!v.match) throw new PatientMismatchError(v.reason);
}

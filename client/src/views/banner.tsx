/**
 * Patient banner, shown when the EHR asks for one (`need_patient_banner`) or the app was opened from the worklist:
 * name, birth date with age, sex and MRN from the Patient resource (the assessment view reads it once).
 */
import type { Patient } from '@medplum/fhirtypes';
import { ageAt, formatDate } from '../format.ts';

/** "Given Family" from the official (else first) HumanName. */
export function displayName(p: Patient): string {
  const n = p.name?.find((x) => x.use === 'official') ?? p.name?.[0];
  if (!n) return 'Name not recorded';
  return n.text ?? [...(n.given ?? []), n.family ?? ''].join(' ').trim();
}

/** The MRN (identifier typed MR), else the first identifier. */
export function mrnOf(p: Patient): string | null {
  const id = p.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'MR')) ?? p.identifier?.[0];
  return id?.value ?? null;
}

/** What the views know of the patient: the resource once read, a name known from elsewhere, or that reading failed. */
export interface PatientInfo {
  patient: Patient | null;
  knownName?: string;
  failed: boolean;
}

/** The name to show and to put in questions ("this patient" until it is known; never a FHIR id). */
export function patientName(info: PatientInfo): string {
  if (info.patient) return displayName(info.patient);
  return info.knownName ?? 'this patient';
}

export function PatientBanner({ info }: { info: PatientInfo }) {
  const p = info.patient;
  const age = ageAt(p?.birthDate);
  const mrn = p ? mrnOf(p) : null;
  return (
    <section class="banner" aria-label="Patient">
      <span class="banner-name">{p ? displayName(p) : info.knownName ?? (info.failed ? 'Patient details unavailable' : 'Loading patient…')}</span>
      {p && (
        <>
          <span>
            <span class="muted">Born </span>
            {formatDate(p.birthDate)}
            {age !== null ? ` (${age} y)` : ''}
          </span>
          <span>
            <span class="muted">Sex </span>
            {p.gender ?? 'unknown'}
          </span>
          {mrn && (
            <span>
              <span class="muted">MRN </span>
              {mrn}
            </span>
          )}
        </>
      )}
    </section>
  );
}

/** Patient banner, shown when the EHR asks for one (`need_patient_banner`) or the app was opened from the worklist. */
import type { Patient } from '@medplum/fhirtypes';
import { useEffect, useState } from 'preact/hooks';
import { ageAt, formatDate } from '../format.ts';
import type { Session } from '../session.ts';

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

export function PatientBanner(props: { session: Session; patientId: string; knownName?: string }) {
  const [patient, setPatient] = useState<Patient | null>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    if (props.knownName || !props.session.patientId) return;
    props.session.readPatient().then(setPatient, () => setFailed(true));
  }, [props.patientId]);
  const age = ageAt(patient?.birthDate);
  return (
    <section class="banner" aria-label="Patient">
      <span class="banner-name">{patient ? displayName(patient) : props.knownName ?? (failed ? 'Patient details unavailable' : 'Loading patient…')}</span>
      {patient && (
        <>
          <span>
            <span class="muted">Born </span>
            {formatDate(patient.birthDate)}
            {age !== null ? ` (${age} y)` : ''}
          </span>
          <span>
            <span class="muted">Sex </span>
            {patient.gender ?? 'unknown'}
          </span>
          {mrnOf(patient) && (
            <span>
              <span class="muted">MRN </span>
              {mrnOf(patient)}
            </span>
          )}
        </>
      )}
    </section>
  );
}

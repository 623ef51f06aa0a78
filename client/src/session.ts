/**
 * What the views need from the SMART launch, independent of fhirclient: the access token (sent to the service's
 * API as `Authorization: Bearer`), the launch context from the token response (SMART App Launch 2.x §Launch
 * context: `patient`, `need_patient_banner`, `appContext`), the user, and the two FHIR calls the app makes itself.
 */
import type { Patient, ServiceRequest } from '@medplum/fhirtypes';

/** fhirclient's Client class (a CommonJS default export, hence the `.default`). */
type Client = import('fhirclient/lib/Client.js').default;

export interface Session {
  accessToken: string;
  /** Patient in context (patient-level launch; sent as `X-SMART-Patient`); null for the FLS worklist (user-level launch). */
  patientId: string | null;
  encounterId: string | null;
  needPatientBanner: boolean;
  /** The token response's `appContext` (from a CDS card's SMART link). */
  appContext: string | null;
  /** `Practitioner/…` of the signed-in user (id_token `fhirUser`). */
  fhirUser: string | null;
  /** Granted scopes. */
  scopes: string[];
  /** FHIR base URL the app was launched against; sent to the service's API as `X-FHIR-Server` (picks the token verifier). */
  fhirBaseUrl: string;
  /** Base URL of the service's API (`…/api`), derived from where the app is served. */
  apiBase: string;
  /** The patient in context, or (user-level launch: the worklist opened a patient) the one named. */
  readPatient(id?: string): Promise<Patient>;
  /** Creates a resource on the FHIR server with the user's token (SMART scope `…/ServiceRequest.c`). */
  createServiceRequest(sr: ServiceRequest): Promise<ServiceRequest>;
}

/** The app is served at `<service>/app/`; its API at `<service>/api/`. */
export function apiBaseFor(appLocation: string): string {
  return new URL('../api', new URL('.', appLocation)).href;
}

/** Builds the session from a ready fhirclient `Client`. */
export function sessionFromClient(client: Client, appLocation: string): Session {
  const tr = client.state.tokenResponse ?? {};
  const token = tr.access_token;
  if (typeof token !== 'string' || token === '') throw new Error('The authorization server returned no access token.');
  const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
  return {
    accessToken: token,
    patientId: str(tr.patient),
    encounterId: str(tr.encounter),
    needPatientBanner: tr.need_patient_banner === true,
    appContext: str(tr['appContext']),
    fhirUser: client.getFhirUser(),
    scopes: typeof tr.scope === 'string' ? tr.scope.split(/\s+/).filter(Boolean) : [],
    fhirBaseUrl: client.state.serverUrl,
    apiBase: apiBaseFor(appLocation),
    readPatient: (id) => (id && id !== str(tr.patient) ? (client.request(`Patient/${encodeURIComponent(id)}`) as Promise<Patient>) : (client.patient.read() as Promise<Patient>)),
    createServiceRequest: (sr) => client.create(sr as never) as Promise<ServiceRequest>,
  };
}

/** True for a user-level (FLS worklist) session: no patient context, user-level scopes granted. */
export function isWorklistSession(s: Pick<Session, 'patientId' | 'scopes'>): boolean {
  return s.patientId === null && s.scopes.some((sc) => sc.startsWith('user/'));
}

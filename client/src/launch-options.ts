/**
 * What `launch.html` asks the authorization server for (SMART App Launch 2.x, http://hl7.org/fhir/smart-app-launch/
 * app-launch.html): PKCE required, SMART v2 scopes, three kinds of launch.
 * - **EHR launch** (`?iss=…&launch=…`): patient-level scopes; fhirclient adds `launch` itself.
 * - **Standalone launch** (`?iss=…`, no `launch`): the same plus `launch/patient` (the server shows a patient picker).
 * - **FLS worklist** (`?mode=worklist&iss=…`): user-level scopes, no patient context (issue 8, item 3).
 * - **Model monitoring** (`?mode=monitoring&iss=…`): the clinical lead's view of the T-score estimate against DXA
 *   per site (views/monitoring.tsx); user-level read of RiskAssessments, no patient context.
 * Pure, so the unit tests can check every case.
 */

export const CLIENT_ID = 'fracture-risk-app';

/** Patient-level SMART v2 scopes the app needs (read patient data; create a ServiceRequest on confirmation). */
export const PATIENT_SCOPES = [
  'launch', 'openid', 'fhirUser',
  'patient/Patient.rs', 'patient/ImagingStudy.rs', 'patient/Observation.rs', 'patient/Condition.rs',
  'patient/MedicationRequest.rs', 'patient/RiskAssessment.rs', 'patient/ServiceRequest.c',
] as const;

/**
 * User-level scopes of the FLS coordinator's worklist: read the worklist (`user/Task.rs`), accept/dismiss
 * (`user/Task.u`), create the referral on accept (`user/ServiceRequest.c`). Task read and update are asked for as
 * two scopes rather than `user/Task.rus`: an authorization server that grants each requested scope only when one
 * registered scope covers it whole (the sandbox's does) would otherwise drop it.
 */
export const WORKLIST_SCOPES = ['openid', 'fhirUser', 'user/Patient.rs', 'user/Task.rs', 'user/Task.u', 'user/ServiceRequest.c', 'user/RiskAssessment.rs'] as const;

/** User-level scopes of the "Model monitoring" view: `/api/monitoring/tscore` needs `user/RiskAssessment.rs`. */
export const MONITORING_SCOPES = ['openid', 'fhirUser', 'user/RiskAssessment.rs'] as const;

export type LaunchMode = 'ehr' | 'standalone' | 'worklist' | 'monitoring';

export interface LaunchPlan {
  mode: LaunchMode;
  iss: string;
  /** Options for `FHIR.oauth2.authorize`. */
  options: { clientId: string; scope: string; redirectUri: string; pkceMode: 'required'; iss: string; launch?: string };
}

/** A launch that cannot proceed (no FHIR server named, or a worklist launch from inside a patient's chart). */
export class LaunchError extends Error {
  override readonly name = 'LaunchError';
}

/**
 * The plan for a launch URL's query. `defaultIss` (from `/app/config.json`: the FHIR server the service is
 * configured with) is used when the URL names none, so `…/app/launch.html` alone starts a standalone launch.
 */
export function planLaunch(query: URLSearchParams, defaultIss: string | null): LaunchPlan {
  const iss = query.get('iss') ?? defaultIss;
  if (!iss) throw new LaunchError('No FHIR server to launch against: open the app from the EHR, or add ?iss=<FHIR base URL> to the address.');
  if (!/^https?:\/\//.test(iss)) throw new LaunchError(`The iss parameter must be an http(s) URL of a FHIR server, got "${iss}".`);
  const launch = query.get('launch');
  const worklist = query.get('mode') === 'worklist';
  const monitoring = query.get('mode') === 'monitoring';
  if (worklist && launch) throw new LaunchError('The FLS worklist is a standalone launch (user-level access): open it without an EHR launch context.');
  if (monitoring && launch) throw new LaunchError('Model monitoring is a standalone launch (user-level access): open it without an EHR launch context.');
  const mode: LaunchMode = worklist ? 'worklist' : monitoring ? 'monitoring' : launch ? 'ehr' : 'standalone';
  const scopes: string[] = mode === 'worklist' ? [...WORKLIST_SCOPES] : mode === 'monitoring' ? [...MONITORING_SCOPES] : [...PATIENT_SCOPES];
  if (mode === 'standalone') scopes.push('launch/patient');
  if (mode === 'standalone') scopes.splice(scopes.indexOf('launch'), 1);
  return {
    mode,
    iss,
    options: { clientId: CLIENT_ID, scope: scopes.join(' '), redirectUri: 'index.html', pkceMode: 'required', iss, ...(launch ? { launch } : {}) },
  };
}

/**
 * The card's `appContext` (CDS Hooks 2.0 Link.appContext, passed through the token response): the assessment id,
 * either bare or as JSON `{"assessmentId": "…"}`. Null when absent or not usable as an id.
 */
export function assessmentIdFromAppContext(appContext: unknown): string | null {
  if (typeof appContext !== 'string' || appContext === '') return null;
  let candidate: unknown = appContext;
  if (appContext.trim().startsWith('{')) {
    try {
      candidate = (JSON.parse(appContext) as { assessmentId?: unknown }).assessmentId;
    } catch {
      return null;
    }
  }
  return typeof candidate === 'string' && /^[A-Za-z0-9\-.]{1,64}$/.test(candidate) ? candidate : null;
}

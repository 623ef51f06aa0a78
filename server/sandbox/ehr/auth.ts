/**
 * What the demo EHR needs from its authorization server (the sandbox's, `/sandbox/auth`, engineer B's side):
 * a token for its own FHIR calls, a patient-scoped token to hand a CDS service as `fhirAuthorization`, and EHR
 * launch contexts for SMART apps. Kept behind an interface so the EHR's code does not depend on how the sandbox
 * authorization server is built; `server/index.ts` supplies the implementation.
 * @see https://cds-hooks.hl7.org/2.0/#passing-the-access-token-to-the-cds-service
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html#launch-app-ehr-launch
 */
import type { FhirAuthorization } from './cds-types.ts';
import type { TokenProvider } from './fhir-access.ts';

/** Body of `POST /sandbox/auth/launch` (brief contract). */
export interface LaunchRequest {
  patient: string;
  encounter?: string;
  /** `Practitioner/<id>` of the user launching. */
  user?: string;
  appContext?: string;
  needPatientBanner?: boolean;
}

export class EhrAuthError extends Error {
  override readonly name = 'EhrAuthError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface EhrAuthorization {
  /** Bearer token for the EHR's own reads and writes on its FHIR server (`undefined`: none needed). */
  readonly ehrFhirToken: TokenProvider;
  /** `fhirAuthorization` for a call to a CDS service about one patient (`undefined`: none sent). */
  cdsFhirAuthorization(patientId: string): Promise<FhirAuthorization | undefined>;
  /** Registers an EHR launch context; returns the opaque `launch` parameter. @throws EhrAuthError */
  createLaunch(request: LaunchRequest): Promise<string>;
}

/** `POST {authBase}/launch` over HTTP, as the brief's contract defines it. */
export function httpLaunchCreator(authBase: string, timeoutMs = 5000): (request: LaunchRequest) => Promise<string> {
  return async (request) => {
    let res: Response;
    try {
      res = await fetch(`${authBase.replace(/\/+$/, '')}/launch`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new EhrAuthError(`launch: ${(err as Error).message}`);
    }
    const body = (await res.json().catch(() => undefined)) as { launch?: unknown } | undefined;
    if (!res.ok || typeof body?.launch !== 'string') throw new EhrAuthError(`launch: HTTP ${res.status}`, res.status);
    return body.launch;
  };
}

/**
 * The contract between the SMART authorization side and the service's protected APIs (brief: "SMART access
 * tokens"): what a verified access token says ({@link SmartAccess}) and who verifies it ({@link AccessTokenVerifier}).
 * @see https://hl7.org/fhir/smart-app-launch/STU2/scopes-and-launch-context.html
 */

/** What a verified SMART access token grants. */
export interface SmartAccess {
  /** `sub` of the token (the user's or, for client_credentials, the client's id). */
  readonly subject: string;
  /** Granted scopes, e.g. `patient/Observation.rs`, `launch`, `openid`. */
  readonly scopes: readonly string[];
  /** Launch patient (`patient` claim): when present, the token is limited to this patient's data. */
  readonly patient?: string;
  /** The user as a relative FHIR reference, e.g. `Practitioner/demo-clinician`. */
  readonly fhirUser?: string;
  /** The CDS card's `appContext` the app was launched with. */
  readonly appContext?: string;
  /** OAuth client the token was issued to (`client_id` claim), when known. */
  readonly clientId?: string;
  /** Expiry, seconds since the epoch, when known. */
  readonly expiresAt?: number;
}

/** Why a token was refused. `unavailable` means the authorization server could not be asked (retry later). */
export type AccessTokenErrorCode = 'missing' | 'malformed' | 'invalid' | 'expired' | 'unavailable';

/** A bearer token was absent or could not be verified. The message is safe to log (it never quotes the token). */
export class AccessTokenError extends Error {
  override readonly name = 'AccessTokenError';
  constructor(
    readonly code: AccessTokenErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * What the request says about where its token comes from, sent by the SMART app beside the token: `X-FHIR-Server`
 * (the FHIR base URL the app was launched against: picks the verifier) and `X-SMART-Patient` (the launch patient:
 * the patient a FHIR-delegated check reads). Neither widens what a token grants; only verified claims do.
 */
export interface VerifyContext {
  readonly fhirServer?: string;
  readonly patient?: string;
}

/** Verifies a bearer token (signature and claims, or introspection) and says what it grants. */
export interface AccessTokenVerifier {
  /**
   * `context` is optional: verifiers of one authorization server ignore it; the dispatching verifier
   * (server/auth/dispatch.ts) and the FHIR-delegated one need it.
   * @throws AccessTokenError
   */
  verify(token: string, context?: VerifyContext): Promise<SmartAccess>;
}

/** The `Type/id` tail of a FHIR reference or URL (`https://x/fhir/Practitioner/1` → `Practitioner/1`). */
export function relativeReference(ref: string | undefined): string | undefined {
  if (!ref) return undefined;
  const m = /([A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64})$/.exec(ref);
  return m ? m[1] : undefined;
}

/**
 * Builds a {@link SmartAccess} from JWT or introspection claims (RFC 7662 / SMART token response names). The launch
 * patient is the `patient` claim, or `context.patient` where a launcher nests the launch context (smart-launcher-v2
 * signs `{context: {patient, …}}`). A token whose scopes are all patient-level but that names no patient is refused:
 * read as user-level it would reach every patient.
 */
export function accessFromClaims(claims: Record<string, unknown>): SmartAccess {
  const str = (k: string): string | undefined => (typeof claims[k] === 'string' && claims[k] !== '' ? (claims[k] as string) : undefined);
  const scope = str('scope') ?? '';
  const scopes = scope.split(/\s+/).filter(Boolean);
  const subject = str('sub') ?? str('client_id');
  if (!subject) throw new AccessTokenError('invalid', 'the token has no subject (sub or client_id)');
  const context = claims['context'];
  const nested = context && typeof context === 'object' ? (context as Record<string, unknown>)['patient'] : undefined;
  const patient = str('patient') ?? (typeof nested === 'string' && nested !== '' ? nested : undefined);
  const patientLevelOnly = scopes.some((s) => s.startsWith('patient/')) && !scopes.some((s) => s.startsWith('user/') || s.startsWith('system/'));
  if (!patient && patientLevelOnly) throw new AccessTokenError('invalid', 'the token has patient-level scopes but names no patient');
  const fhirUser = relativeReference(str('fhirUser'));
  const appContext = str('appContext');
  const clientId = str('client_id');
  const exp = typeof claims['exp'] === 'number' ? claims['exp'] : undefined;
  return {
    subject,
    scopes,
    ...(patient ? { patient } : {}),
    ...(fhirUser ? { fhirUser } : {}),
    ...(appContext ? { appContext } : {}),
    ...(clientId ? { clientId } : {}),
    ...(exp !== undefined ? { expiresAt: exp } : {}),
  };
}

/**
 * Composition of the demo EHR for `server/index.ts`: its identity towards the sandbox authorization server (the
 * `demo-ehr` confidential client of `smart-config/smart-clients.json`, client_credentials over HTTP, as a real EHR
 * back end would do), patient-scoped `fhirAuthorization` tokens for the CDS service (minted by the sandbox
 * authorization server for the service's client, `frcds-service`), and launch contexts via
 * `POST /sandbox/auth/launch`.
 */
import type { RequestHandler } from 'express';
import type { AppConfig } from '../../config.ts';
import type { Logger } from '../../logging.ts';
import { ClientCredentialsTokenProvider } from '../../auth/token-provider.ts';
import type { SmartClientsFile } from '../smart/clients.ts';
import type { GrantContext, IssuedAccessToken } from '../smart/tokens.ts';
import { httpLaunchCreator, type EhrAuthorization } from './auth.ts';
import type { FhirAuthorization } from './cds-types.ts';
import { createDemoEhr, type DemoEhr } from './router.ts';

export const EHR_MOUNT = '/sandbox/ehr';
/** The EHR's own OAuth client (smart-config/smart-clients.json). */
export const EHR_CLIENT_ID = 'demo-ehr';
/** The OAuth client of the CDS service, to which the EHR issues `fhirAuthorization` tokens (smart-config/smart-clients.json). */
export const CDS_SERVICE_CLIENT_ID = 'frcds-service';
/** What the CDS service may read for the patient in context: the resources its prefetch templates name. */
export const CDS_FHIR_SCOPES = ['patient/Patient.rs', 'patient/ImagingStudy.rs', 'patient/Observation.rs', 'patient/Condition.rs', 'patient/MedicationRequest.rs', 'patient/MedicationStatement.rs', 'patient/FamilyMemberHistory.rs', 'patient/ServiceRequest.rs', 'patient/Endpoint.rs'];
/** `fhirAuthorization` tokens are short-lived: one hook call, plus background work the service finishes after it. */
const CDS_TOKEN_LIFETIME_S = 300;

/** The sandbox authorization server's in-process token minting (server/sandbox/smart/server.ts). */
export interface SandboxTokenIssuer {
  issueAccessToken(grant: GrantContext, options?: { lifetimeSeconds?: number }): Promise<IssuedAccessToken>;
}

/** Loopback base of this process (`PUBLIC_BASE_URL` may be a proxy the process cannot reach). */
function selfBase(config: AppConfig): string {
  return config.fhir.baseUrl.replace(/\/sandbox\/fhir$/, '');
}

export interface EhrAuthorizationOptions {
  /** The sandbox authorization server's base as this process reaches it (`…/sandbox/auth`). */
  authBaseUrl: string;
  /** `smart-config/smart-clients.json` (the EHR's client secret is read from it). */
  clients: SmartClientsFile | undefined;
  timeoutMs: number;
}

export function ehrAuthorization(o: EhrAuthorizationOptions, issuer: SandboxTokenIssuer | undefined): EhrAuthorization {
  const secret = o.clients?.clients.find((c) => c.clientId === EHR_CLIENT_ID)?.clientSecret;
  const provider = secret
    ? new ClientCredentialsTokenProvider({ tokenUrl: `${o.authBaseUrl}/token`, clientId: EHR_CLIENT_ID, clientSecret: secret, scope: 'system/*.cruds', timeoutMs: o.timeoutMs })
    : undefined;
  return {
    ehrFhirToken: async () => (provider ? provider.token() : undefined),
    async cdsFhirAuthorization(patientId: string): Promise<FhirAuthorization | undefined> {
      if (!issuer) return undefined;
      const t = await issuer.issueAccessToken({ clientId: CDS_SERVICE_CLIENT_ID, scopes: CDS_FHIR_SCOPES, patient: patientId }, { lifetimeSeconds: CDS_TOKEN_LIFETIME_S });
      return { access_token: t.token, token_type: 'Bearer', expires_in: t.expiresIn, scope: CDS_FHIR_SCOPES.join(' '), subject: CDS_SERVICE_CLIENT_ID, patient: patientId };
    },
    createLaunch: httpLaunchCreator(o.authBaseUrl, o.timeoutMs),
  };
}

/** Builds the demo EHR router (key generation ≈ 10 ms). */
export async function startDemoEhr(config: AppConfig, logger: Logger, issuer: SandboxTokenIssuer | undefined): Promise<DemoEhr & { handler: RequestHandler }> {
  const ehr = await createDemoEhr({
    mountPath: EHR_MOUNT,
    publicBaseUrl: config.publicBaseUrl,
    fhirBaseUrl: config.fhir.baseUrl,
    fhirPublicBaseUrl: config.fhir.publicBaseUrl,
    appLaunchUrl: `${config.publicBaseUrl}/app/launch.html`,
    auth: ehrAuthorization({ authBaseUrl: `${selfBase(config)}/sandbox/auth`, clients: config.files.smartClients, timeoutMs: config.fhir.timeoutMs }, issuer),
    logger,
  });
  return { ...ehr, handler: ehr.router };
}

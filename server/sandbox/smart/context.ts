/**
 * The state shared by the sandbox authorization server's routes (one module per protocol step, as in
 * smart-launcher-v2): configuration, registered clients, the token signer and the short-lived stores.
 */
import type { Logger } from '../../logging.ts';
import type { FhirSandbox } from '../fhir/router.ts';
import type { ClientRegistry, SmartClientsFile } from './clients.ts';
import { ExpiringMap } from './store.ts';
import type { GrantContext, TokenSigner } from './tokens.ts';

/** An EHR launch context created by `POST /sandbox/auth/launch` (what the `launch` parameter stands for). */
export interface LaunchContext {
  readonly patient: string;
  readonly encounter?: string;
  readonly user?: string;
  readonly appContext?: string;
  readonly needPatientBanner: boolean;
}

/** A validated authorization request waiting for the standalone picker. */
export interface PendingAuthorization {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly state?: string;
  readonly scopes: readonly string[];
  readonly codeChallenge?: string;
  readonly nonce?: string;
  readonly needsPatient: boolean;
}

/** What an authorization code (or a refresh token) stands for. */
export interface CodeGrant extends GrantContext {
  readonly redirectUri: string;
  readonly codeChallenge?: string;
  readonly nonce?: string;
}

export interface SmartSandboxContext {
  /** `iss` of every token and the OpenID issuer: `{PUBLIC_BASE_URL}/sandbox/auth`. */
  readonly issuer: string;
  /** Public FHIR base (`aud` of access tokens). */
  readonly fhirBaseUrl: string;
  /** `aud` values an authorization request may name (the public FHIR base and the loopback one the service uses). */
  readonly acceptedAudiences: ReadonlySet<string>;
  readonly clients: ClientRegistry;
  readonly settings: Omit<SmartClientsFile, 'clients'>;
  readonly signer: TokenSigner;
  readonly launches: ExpiringMap<LaunchContext>;
  readonly pending: ExpiringMap<PendingAuthorization>;
  readonly codes: ExpiringMap<CodeGrant>;
  readonly refreshTokens: ExpiringMap<CodeGrant>;
  /** The sandbox FHIR server, once built (patient picker, launch validation). */
  readonly fhir: () => FhirSandbox | undefined;
  readonly logger: Logger;
}

export const LAUNCH_TTL_MS = 60 * 60 * 1000;
export const PENDING_TTL_MS = 10 * 60 * 1000;

/** Strips a trailing slash, for comparing base URLs. */
export function normaliseBase(url: string): string {
  return url.replace(/\/+$/, '');
}

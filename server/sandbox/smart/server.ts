/**
 * The sandbox SMART authorization server (demo only), in the smart-launcher-v2 layout — one module per protocol
 * step: well-known.ts (discovery), launch.ts (EHR launch contexts), authorize.ts (authorization endpoint),
 * pick-patient.ts (standalone sign-in and patient picker), token.ts, jwks.ts, introspect.ts — plus fhir-guard.ts,
 * which makes the sandbox FHIR server enforce its tokens.
 *
 * Mount {@link SmartSandbox.router} at `/sandbox/auth` and wrap the sandbox FHIR router with
 * {@link SmartSandbox.guard} at `/sandbox/fhir`.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/
 */
import { Router, type RequestHandler } from 'express';
import type { CapabilityStatementRestSecurity } from '@medplum/fhirtypes';
import type { JSONWebKeySet } from 'jose';
import type { AccessTokenVerifier } from '../../auth/types.ts';
import { JwtAccessTokenVerifier } from '../../auth/verifier.ts';
import type { Logger } from '../../logging.ts';
import type { FhirSandbox } from '../fhir/router.ts';
import { authorizeHandler } from './authorize.ts';
import { ClientRegistry, type SmartClientsFile } from './clients.ts';
import { normaliseBase, type CodeGrant, type LaunchContext, type PendingAuthorization, type SmartSandboxContext } from './context.ts';
import { smartFhirGuard } from './fhir-guard.ts';
import { introspectRouter } from './introspect.ts';
import { jwksHandler } from './jwks.ts';
import { launchRouter } from './launch.ts';
import { pickPatientRouter } from './pick-patient.ts';
import { ExpiringMap } from './store.ts';
import { tokenRouter } from './token.ts';
import { TokenSigner, type GrantContext, type IssuedAccessToken } from './tokens.ts';
import { authEndpoints, openidConfigurationHandler, smartConfigurationHandler } from './well-known.ts';

/** The registered client developers use for curl access (smart-config/smart-clients.json). */
export const DEVELOPER_CLIENT_ID = 'demo-backend';

export interface SmartSandboxOptions {
  /** The service's public base URL (`PUBLIC_BASE_URL`); the issuer is `{publicBaseUrl}/sandbox/auth`. */
  readonly publicBaseUrl: string;
  /** Public base URL of the sandbox FHIR server (the `aud` of access tokens). */
  readonly fhirBaseUrl: string;
  /** Other base URLs an app may name as `aud` for the same server (e.g. the loopback URL the service uses). */
  readonly otherAudiences?: readonly string[];
  readonly clients: SmartClientsFile;
  readonly logger: Logger;
  /** The sandbox FHIR server (may be attached later with {@link SmartSandbox.attachFhir}). */
  readonly fhir?: FhirSandbox;
}

export interface SmartSandbox {
  readonly issuer: string;
  /** Routes of `/sandbox/auth`. */
  readonly router: Router;
  /** `/.well-known/smart-configuration` (also served through the guard under the FHIR base). */
  readonly wellKnown: RequestHandler;
  /** Verifies the sandbox's access tokens with its own key set (no HTTP). */
  readonly verifier: AccessTokenVerifier;
  readonly clients: ClientRegistry;
  /** The CapabilityStatement `rest.security` element advertising SMART (oauth-uris extension). */
  readonly capabilitySecurity: CapabilityStatementRestSecurity;
  attachFhir(fhir: FhirSandbox): void;
  /**
   * The sandbox FHIR router behind bearer-token and scope enforcement. `openReads` (`SANDBOX_FHIR_OPEN`): token-less
   * reads and searches are let through (see fhir-guard.ts).
   */
  guard(fhir: FhirSandbox, maxRequestBytes: number, options?: { readonly openReads?: boolean }): RequestHandler;
  /**
   * Signs an access token directly (tests, the demo EHR's CDS Hooks `fhirAuthorization`). `expiresAt` (epoch
   * seconds) overrides the configured lifetime.
   */
  issueAccessToken(grant: GrantContext, options?: { lifetimeSeconds?: number; expiresAt?: number }): Promise<IssuedAccessToken>;
  /** The public keys of the sandbox's signer (as served at `/sandbox/auth/jwks`). */
  jwks(): JSONWebKeySet;
  /** Signs a non-access-token JWT with the sandbox's key (the sandbox FHIR server's signed notifications). */
  signJwt: TokenSigner['signJwt'];
}

export async function createSmartSandbox(options: SmartSandboxOptions): Promise<SmartSandbox> {
  const base = normaliseBase(options.publicBaseUrl);
  const issuer = `${base}/sandbox/auth`;
  const fhirBaseUrl = normaliseBase(options.fhirBaseUrl);
  const signer = await TokenSigner.create(issuer, fhirBaseUrl);
  let fhir = options.fhir;
  const { clients: _c, ...settings } = options.clients;
  const ctx: SmartSandboxContext = {
    issuer,
    fhirBaseUrl,
    acceptedAudiences: new Set([fhirBaseUrl, ...(options.otherAudiences ?? []).map(normaliseBase)]),
    clients: new ClientRegistry(options.clients, base),
    settings,
    signer,
    launches: new ExpiringMap<LaunchContext>(),
    pending: new ExpiringMap<PendingAuthorization>(),
    codes: new ExpiringMap<CodeGrant>(),
    refreshTokens: new ExpiringMap<CodeGrant>(),
    fhir: () => fhir,
    logger: options.logger.child({ component: 'sandbox-auth' }),
  };
  // The sandbox's own resource server verifies in memory; audience = the FHIR base.
  const verifier = new JwtAccessTokenVerifier({ issuer, audience: [fhirBaseUrl], keys: { jwks: signer.jwks() } });
  const wellKnown = smartConfigurationHandler(ctx);

  const router = Router();
  router.get('/.well-known/openid-configuration', openidConfigurationHandler(ctx));
  router.get('/.well-known/smart-configuration', wellKnown);
  router.get('/authorize', authorizeHandler(ctx));
  router.use(pickPatientRouter(ctx));
  router.use(tokenRouter(ctx));
  router.get('/jwks', jwksHandler(ctx));
  router.use(introspectRouter(ctx, verifier));
  router.use(launchRouter(ctx));

  const e = authEndpoints(ctx);
  const capabilitySecurity: CapabilityStatementRestSecurity = {
    cors: true,
    service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR', display: 'SMART-on-FHIR' }] }],
    description: 'SMART App Launch 2 (sandbox authorization server, demo only). Discovery: .well-known/smart-configuration under this base.',
    extension: [
      {
        url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
        extension: [
          { url: 'authorize', valueUri: e.authorize },
          { url: 'token', valueUri: e.token },
          { url: 'introspect', valueUri: e.introspect },
        ],
      },
    ],
  };

  // The 401 message names the developer client (demo-backend), else any backend client.
  const backends = ctx.clients.all().filter((c) => c.type === 'confidential-symmetric' && c.scopes.some((s) => s.startsWith('system/')));
  const devClient = backends.find((c) => c.clientId === DEVELOPER_CLIENT_ID) ?? backends[0];

  return {
    issuer,
    router,
    wellKnown,
    verifier,
    clients: ctx.clients,
    capabilitySecurity,
    attachFhir(f) {
      fhir = f;
    },
    guard(f, maxRequestBytes, guardOptions = {}) {
      fhir = f;
      return smartFhirGuard({ verifier, fhir: f, wellKnown, help: { tokenUrl: e.token, clientId: devClient?.clientId ?? '<client id>' }, maxRequestBytes, openReads: guardOptions.openReads === true });
    },
    issueAccessToken(grant, o = {}) {
      return signer.accessToken(grant, o.lifetimeSeconds ?? settings.accessTokenLifetimeSeconds, o.expiresAt);
    },
    jwks: () => signer.jwks(),
    signJwt: (claims, o) => signer.signJwt(claims, o),
  };
}

/**
 * `GET /sandbox/fhir/.well-known/smart-configuration` (SMART App Launch 2 discovery) and
 * `GET /sandbox/auth/.well-known/openid-configuration` (OpenID Connect discovery of the same issuer).
 * Advertises S256 only; `issuer` and `jwks_uri` are present because `sso-openid-connect` is.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/conformance.html
 */
import type { RequestHandler } from 'express';
import type { SmartSandboxContext } from './context.ts';

export const SMART_CAPABILITIES = [
  'launch-ehr',
  'launch-standalone',
  'client-public',
  'client-confidential-symmetric',
  'context-ehr-patient',
  'context-ehr-encounter',
  'context-standalone-patient',
  'context-banner',
  'sso-openid-connect',
  'permission-v2',
  'permission-v1',
  'permission-user',
  'permission-patient',
  'permission-offline',
  'permission-online',
] as const;

/** The endpoints of the authorization server, absolute (public base). */
export function authEndpoints(ctx: SmartSandboxContext): { authorize: string; token: string; jwks: string; introspect: string; launch: string } {
  return {
    authorize: `${ctx.issuer}/authorize`,
    token: `${ctx.issuer}/token`,
    jwks: `${ctx.issuer}/jwks`,
    introspect: `${ctx.issuer}/introspect`,
    launch: `${ctx.issuer}/launch`,
  };
}

export function smartConfiguration(ctx: SmartSandboxContext): Record<string, unknown> {
  const e = authEndpoints(ctx);
  return {
    issuer: ctx.issuer,
    jwks_uri: e.jwks,
    authorization_endpoint: e.authorize,
    token_endpoint: e.token,
    introspection_endpoint: e.introspect,
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    scopes_supported: ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access', 'patient/*.cruds', 'user/*.cruds', 'system/*.cruds'],
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    capabilities: [...SMART_CAPABILITIES],
  };
}

export function smartConfigurationHandler(ctx: SmartSandboxContext): RequestHandler {
  return (_req, res) => {
    res.set({ 'Access-Control-Allow-Origin': '*', 'Cache-Control': 'public, max-age=60' }).json(smartConfiguration(ctx));
  };
}

export function openidConfigurationHandler(ctx: SmartSandboxContext): RequestHandler {
  return (_req, res) => {
    const e = authEndpoints(ctx);
    res.set({ 'Access-Control-Allow-Origin': '*', 'Cache-Control': 'public, max-age=60' }).json({
      issuer: ctx.issuer,
      authorization_endpoint: e.authorize,
      token_endpoint: e.token,
      jwks_uri: e.jwks,
      introspection_endpoint: e.introspect,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      scopes_supported: ['openid', 'fhirUser'],
      claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'fhirUser', 'nonce'],
      code_challenge_methods_supported: ['S256'],
    });
  };
}

/**
 * Builds the service's token machinery from the configuration:
 * - {@link createApiTokenVerifier}: how `/api/assessments` (and other APIs) verify SMART access tokens, from
 *   `smart-config/token-verification.json` — `auto` uses the sandbox authorization server's JWKS (over loopback) or,
 *   with an external FHIR server, the `issuer` and `jwks_uri` its `.well-known/smart-configuration` publishes; the
 *   `servers` entries (foreign authorization servers) are picked by the app's `X-FHIR-Server` header (dispatch.ts);
 * - {@link tokenVerificationWarnings}: unsafe-but-allowed token settings in force, for `/readyz`;
 * - {@link createFhirTokenProvider}: the bearer tokens of the service's own FHIR calls — the sandbox's
 *   `frcds-service` client (client_credentials) in sandbox mode, else `FHIR_AUTH`.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/conformance.html
 */
import type { AppConfig } from '../config.ts';
import { ClientCredentialsTokenProvider, StaticTokenProvider, type BearerTokenProvider } from './token-provider.ts';
import type { ReadinessWarning } from '../health/readiness.ts';
import { DispatchingVerifier } from './dispatch.ts';
import { IntrospectionAccessTokenVerifier } from './introspection.ts';
import { createServerVerifier } from './servers.ts';
import { AccessTokenError, type AccessTokenVerifier, type SmartAccess } from './types.ts';
import { JwtAccessTokenVerifier } from './verifier.ts';

/** The sandbox client the service itself uses (smart-config/smart-clients.json). */
export const SANDBOX_SERVICE_CLIENT_ID = 'frcds-service';

/** The sandbox authorization server's base as the service reaches it (loopback) and as published. */
export function sandboxAuthUrls(config: AppConfig): { internal: string; issuer: string } {
  return {
    internal: config.fhir.baseUrl.replace(/\/sandbox\/fhir$/, '/sandbox/auth'),
    issuer: `${config.publicBaseUrl}/sandbox/auth`,
  };
}

/**
 * Discovers the authorization server of an external FHIR server on first use (and again after a failure), then
 * verifies JWTs against its `jwks_uri`.
 */
class DiscoveringVerifier implements AccessTokenVerifier {
  #inner: Promise<AccessTokenVerifier> | undefined;
  constructor(
    private readonly fhirBaseUrl: string,
    private readonly audience: readonly string[],
    private readonly timeoutMs: number,
  ) {}

  async #discover(): Promise<AccessTokenVerifier> {
    const url = `${this.fhirBaseUrl}/.well-known/smart-configuration`;
    let body: Record<string, unknown>;
    try {
      const res = await fetch(url, { headers: { Accept: 'application/json' }, signal: AbortSignal.timeout(this.timeoutMs) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      body = (await res.json()) as Record<string, unknown>;
    } catch (err) {
      throw new AccessTokenError('unavailable', `SMART discovery at ${url} failed (${(err as Error).message})`);
    }
    const issuer = body['issuer'];
    const jwksUri = body['jwks_uri'];
    if (typeof issuer !== 'string' || typeof jwksUri !== 'string') {
      throw new AccessTokenError('unavailable', `${url} has no issuer/jwks_uri: configure smart-config/token-verification.json`);
    }
    return new JwtAccessTokenVerifier({ issuer, audience: this.audience, keys: { jwksUri, timeoutMs: this.timeoutMs } });
  }

  async verify(token: string): Promise<SmartAccess> {
    this.#inner ??= this.#discover();
    let inner: AccessTokenVerifier;
    try {
      inner = await this.#inner;
    } catch (err) {
      this.#inner = undefined;
      throw err;
    }
    return inner.verify(token);
  }
}

/**
 * The verifier of the service's APIs: the service's own FHIR server's tokens as the top-level settings say, and each
 * `servers` entry's tokens as that entry says, chosen per request by `X-FHIR-Server` ({@link DispatchingVerifier}).
 */
export function createApiTokenVerifier(config: AppConfig): AccessTokenVerifier {
  const servers = config.auth.tokenServers.map((s) => ({ id: s.id, fhirBaseUrl: s.fhirBaseUrl, verifier: createServerVerifier(s, { timeoutMs: config.fhir.timeoutMs }) }));
  return new DispatchingVerifier(ownTokenVerifier(config), [config.fhir.publicBaseUrl, config.fhir.baseUrl], servers);
}

/** `/readyz` warnings of the token settings: HS256 entries accepted (shared secrets: development only). */
export function tokenVerificationWarnings(config: AppConfig): ReadinessWarning[] {
  const hs256 = config.auth.tokenServers.filter((s) => s.mode === 'hs256').map((s) => s.id);
  if (!config.auth.allowHs256 || hs256.length === 0) return [];
  return [{
    key: 'API_TOKEN_ALLOW_HS256',
    message: `API access tokens signed with a shared secret (HS256) are accepted from ${hs256.join(', ')}: whoever holds the secret can mint a token for any patient. Development launchers only.`,
  }];
}

/** The verifier of tokens for the service's own FHIR server (the top-level settings of token-verification.json). */
export function ownTokenVerifier(config: AppConfig): AccessTokenVerifier {
  const v = config.files.tokenVerification;
  const audience = v.audience ?? [config.fhir.publicBaseUrl];
  if (v.mode === 'introspection') {
    return new IntrospectionAccessTokenVerifier({
      introspectionUrl: v.introspectionUrl!,
      clientId: v.clientId!,
      clientSecret: config.auth.introspectionClientSecret ?? '',
      timeoutMs: config.fhir.timeoutMs,
      ...(v.issuer ? { issuer: v.issuer } : {}),
    });
  }
  if (v.mode === 'jwks') return new JwtAccessTokenVerifier({ issuer: v.issuer!, audience, keys: { jwksUri: v.jwksUri!, timeoutMs: config.fhir.timeoutMs } });
  if (config.fhir.sandbox) {
    const urls = sandboxAuthUrls(config);
    return new JwtAccessTokenVerifier({ issuer: urls.issuer, audience, keys: { jwksUri: `${urls.internal}/jwks`, timeoutMs: config.fhir.timeoutMs } });
  }
  return new DiscoveringVerifier(config.fhir.baseUrl, audience, config.fhir.timeoutMs);
}

/** The token source of the service's FHIR client, or undefined when it calls without one (`FHIR_AUTH=none`). */
export function createFhirTokenProvider(config: AppConfig): BearerTokenProvider | undefined {
  if (config.fhir.sandbox) {
    const client = config.files.smartClients?.clients.find((c) => c.clientId === SANDBOX_SERVICE_CLIENT_ID);
    if (!client?.clientSecret) return undefined;
    return new ClientCredentialsTokenProvider({
      tokenUrl: `${sandboxAuthUrls(config).internal}/token`,
      clientId: client.clientId,
      clientSecret: client.clientSecret,
      scope: client.scopes.filter((s) => s.startsWith('system/')).join(' '),
      timeoutMs: config.fhir.timeoutMs,
    });
  }
  const a = config.auth.fhirClient;
  if (a.type === 'bearer') return new StaticTokenProvider(a.token);
  if (a.type === 'client-credentials') {
    return new ClientCredentialsTokenProvider({ tokenUrl: a.tokenUrl, clientId: a.clientId, clientSecret: a.clientSecret, ...(a.scope ? { scope: a.scope } : {}), timeoutMs: config.fhir.timeoutMs });
  }
  return undefined;
}

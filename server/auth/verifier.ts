/**
 * {@link AccessTokenVerifier} implementations:
 * - {@link JwtAccessTokenVerifier}: a JWT access token checked against the authorization server's JWKS (fetched and
 *   cached by jose, re-fetched when an unknown `kid` shows up, so key rotation works) — issuer, audience, expiry and
 *   signature (asymmetric algorithms only).
 * - {@link IntrospectionAccessTokenVerifier}: RFC 7662 token introspection, for opaque tokens, with a short cache.
 * @see https://www.rfc-editor.org/rfc/rfc7662
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html#step-5-access-token
 */
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { AccessTokenError, accessFromClaims, type AccessTokenVerifier, type SmartAccess } from './types.ts';

/** Signature algorithms accepted for access tokens; `none` and symmetric (HS*) ones never are. */
export const ACCEPTED_ALGORITHMS = ['RS256', 'RS384', 'ES256', 'ES384', 'PS256'] as const;

export interface JwtVerifierOptions {
  /** Expected `iss`. */
  readonly issuer: string;
  /** Accepted `aud` values (any one must match); empty or absent: `aud` is not checked. */
  readonly audience?: readonly string[];
  /** Where the keys come from: a JWKS URL (fetched over HTTP) or a key set held in memory. */
  readonly keys: { readonly jwksUri: string; readonly timeoutMs?: number } | { readonly jwks: JSONWebKeySet };
  /** Allowed clock skew in seconds (default 30). */
  readonly clockToleranceSeconds?: number;
}

export class JwtAccessTokenVerifier implements AccessTokenVerifier {
  readonly #getKey: JWTVerifyGetKey;
  readonly #options: JwtVerifierOptions;

  constructor(options: JwtVerifierOptions) {
    this.#options = options;
    this.#getKey = 'jwks' in options.keys
      ? createLocalJWKSet(options.keys.jwks)
      : createRemoteJWKSet(new URL(options.keys.jwksUri), { timeoutDuration: options.keys.timeoutMs ?? 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 });
  }

  async verify(token: string): Promise<SmartAccess> {
    if (!token || token.split('.').length !== 3) throw new AccessTokenError('malformed', 'the bearer token is not a JWT');
    const aud = this.#options.audience?.length ? [...this.#options.audience] : undefined;
    try {
      const { payload } = await jwtVerify(token, this.#getKey, {
        issuer: this.#options.issuer,
        ...(aud ? { audience: aud } : {}),
        algorithms: [...ACCEPTED_ALGORITHMS],
        clockTolerance: this.#options.clockToleranceSeconds ?? 30,
        requiredClaims: ['exp', 'iat'],
      });
      return accessFromClaims(payload as Record<string, unknown>);
    } catch (err) {
      if (err instanceof AccessTokenError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new AccessTokenError('expired', 'the access token has expired');
      if (err instanceof joseErrors.JWKSTimeout || (err instanceof Error && /fetch failed|ECONNREFUSED|Expected 200 OK/.test(err.message))) {
        throw new AccessTokenError('unavailable', 'the authorization server\'s keys could not be fetched');
      }
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw new AccessTokenError('invalid', `the access token's "${err.claim}" claim is not acceptable`);
      if (err instanceof joseErrors.JWKSNoMatchingKey) throw new AccessTokenError('invalid', 'the access token is signed with an unknown key');
      throw new AccessTokenError('invalid', 'the access token signature or format is invalid');
    }
  }
}

export interface IntrospectionVerifierOptions {
  readonly introspectionUrl: string;
  /** The protected resource's own client credentials (RFC 7662 §2.1: the endpoint is protected). */
  readonly clientId: string;
  readonly clientSecret: string;
  readonly timeoutMs?: number;
  /** Active answers are reused for this many seconds (never beyond the token's `exp`); default 30. */
  readonly cacheSeconds?: number;
  /** Accepted `iss` of introspected tokens, when the server reports one. */
  readonly issuer?: string;
}

export class IntrospectionAccessTokenVerifier implements AccessTokenVerifier {
  readonly #options: IntrospectionVerifierOptions;
  readonly #cache = new Map<string, { access: SmartAccess; until: number }>();

  constructor(options: IntrospectionVerifierOptions) {
    this.#options = options;
  }

  async verify(token: string): Promise<SmartAccess> {
    if (!token) throw new AccessTokenError('missing', 'no bearer token');
    const now = Date.now();
    const hit = this.#cache.get(token);
    if (hit && hit.until > now) return hit.access;
    this.#cache.delete(token);
    let res: Response;
    let body: Record<string, unknown>;
    try {
      res = await fetch(this.#options.introspectionUrl, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          Accept: 'application/json',
          Authorization: `Basic ${Buffer.from(`${encodeURIComponent(this.#options.clientId)}:${encodeURIComponent(this.#options.clientSecret)}`).toString('base64')}`,
        },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? 5000),
      });
      body = (await res.json()) as Record<string, unknown>;
    } catch {
      throw new AccessTokenError('unavailable', 'the introspection endpoint did not answer');
    }
    if (!res.ok) throw new AccessTokenError('unavailable', `the introspection endpoint answered HTTP ${res.status}`);
    if (body['active'] !== true) throw new AccessTokenError('invalid', 'the access token is not active');
    if (this.#options.issuer && typeof body['iss'] === 'string' && body['iss'] !== this.#options.issuer) {
      throw new AccessTokenError('invalid', 'the access token was issued by another server');
    }
    const exp = typeof body['exp'] === 'number' ? body['exp'] * 1000 : Number.POSITIVE_INFINITY;
    if (exp <= now) throw new AccessTokenError('expired', 'the access token has expired');
    const access = accessFromClaims(body);
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(token, { access, until: Math.min(exp, now + (this.#options.cacheSeconds ?? 30) * 1000) });
    return access;
  }
}

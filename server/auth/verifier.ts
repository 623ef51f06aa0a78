/**
 * {@link JwtAccessTokenVerifier}: a JWT access token checked against the authorization server's keys — pinned keys
 * (`jwks`) first, then its JWK Set URL (fetched and cached by jose, re-fetched when an unknown `kid` shows up, so key
 * rotation works) — expiry and signature (asymmetric algorithms only), plus issuer and audience when configured.
 * The RFC 7662 verifier lives in `introspection.ts` (re-exported here for existing importers).
 * @see https://www.rfc-editor.org/rfc/rfc7519
 * @see https://www.rfc-editor.org/rfc/rfc7517#section-5
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html#step-5-access-token
 */
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { AccessTokenError, accessFromClaims, type AccessTokenVerifier, type SmartAccess } from './types.ts';

export { IntrospectionAccessTokenVerifier, type IntrospectionVerifierOptions } from './introspection.ts';

/**
 * Signature algorithms accepted for access tokens; `none` and symmetric (HS*) ones never are here (a shared secret
 * lets every holder mint tokens: see hs256.ts for the development-only exception).
 */
export const ACCEPTED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/** Where the verification keys come from: pinned keys, a JWK Set URL, or both (pinned first). */
export interface JwtKeySource {
  /** Keys held in memory (configuration or a sandbox's own signer). */
  readonly jwks?: JSONWebKeySet;
  /** JWK Set URL, fetched over HTTP when no pinned key matches the token's `kid`. */
  readonly jwksUri?: string;
  /** Time-out of a JWK Set fetch in ms (default 5000). */
  readonly timeoutMs?: number;
}

export interface JwtVerifierOptions {
  /** Expected `iss`; absent: not checked (some authorization servers' tokens carry none). */
  readonly issuer?: string;
  /** Accepted `aud` values (any one must match); empty or absent: `aud` is not checked. */
  readonly audience?: readonly string[];
  readonly keys: JwtKeySource;
  /** Allowed clock skew in seconds (default 30). */
  readonly clockToleranceSeconds?: number;
  /** Claims that must be present (default `exp` and `iat`). */
  readonly requiredClaims?: readonly string[];
}

/**
 * jose's key lookup over pinned keys and/or a JWK Set URL. With both, the URL is asked only when no pinned key
 * matches (`JWKSNoMatchingKey`): a pinned key that matches but fails the signature check is a refusal, not a reason
 * to look elsewhere.
 */
export function jwtKeyGetter(keys: JwtKeySource): JWTVerifyGetKey {
  const local = keys.jwks ? createLocalJWKSet(keys.jwks) : undefined;
  const remote = keys.jwksUri
    ? createRemoteJWKSet(new URL(keys.jwksUri), { timeoutDuration: keys.timeoutMs ?? 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 })
    : undefined;
  if (local && remote) {
    return async (header, token) => {
      try {
        return await local(header, token);
      } catch (err) {
        if (err instanceof joseErrors.JWKSNoMatchingKey) return remote(header, token);
        throw err;
      }
    };
  }
  if (local) return local;
  if (remote) return remote;
  throw new Error('a JWT verifier needs pinned keys (jwks) or a JWK Set URL (jwksUri)');
}

/** Maps a jose failure to the {@link AccessTokenError} the guard answers with (never quoting the token). */
export function accessTokenErrorOf(err: unknown): AccessTokenError {
  if (err instanceof AccessTokenError) return err;
  if (err instanceof joseErrors.JWTExpired) return new AccessTokenError('expired', 'the access token has expired');
  if (err instanceof joseErrors.JWKSTimeout || (err instanceof Error && /fetch failed|ECONNREFUSED|Expected 200 OK/.test(err.message))) {
    return new AccessTokenError('unavailable', 'the authorization server\'s keys could not be fetched');
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) return new AccessTokenError('invalid', `the access token's "${err.claim}" claim is not acceptable`);
  if (err instanceof joseErrors.JWKSNoMatchingKey) return new AccessTokenError('invalid', 'the access token is signed with an unknown key');
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new AccessTokenError('invalid', 'the access token is signed with an algorithm that is not accepted');
  return new AccessTokenError('invalid', 'the access token signature or format is invalid');
}

export class JwtAccessTokenVerifier implements AccessTokenVerifier {
  readonly #getKey: JWTVerifyGetKey;
  readonly #options: JwtVerifierOptions;

  constructor(options: JwtVerifierOptions) {
    this.#options = options;
    this.#getKey = jwtKeyGetter(options.keys);
  }

  async verify(token: string): Promise<SmartAccess> {
    if (!token || token.split('.').length !== 3) throw new AccessTokenError('malformed', 'the bearer token is not a JWT');
    const aud = this.#options.audience?.length ? [...this.#options.audience] : undefined;
    try {
      const { payload } = await jwtVerify(token, this.#getKey, {
        ...(this.#options.issuer ? { issuer: this.#options.issuer } : {}),
        ...(aud ? { audience: aud } : {}),
        algorithms: [...ACCEPTED_ALGORITHMS],
        clockTolerance: this.#options.clockToleranceSeconds ?? 30,
        requiredClaims: [...(this.#options.requiredClaims ?? ['exp', 'iat'])],
      });
      return accessFromClaims(payload as Record<string, unknown>);
    } catch (err) {
      throw accessTokenErrorOf(err);
    }
  }
}

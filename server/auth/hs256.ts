/**
 * {@link Hs256AccessTokenVerifier}: JWT access tokens signed with HMAC-SHA-256 and a secret shared with the issuer —
 * what development launchers (e.g. the SMART launcher) issue, often without `iss` or `aud`.
 *
 * Development only: whoever holds a shared secret can mint tokens, so every service that verifies these tokens can
 * also forge them, for any patient. The configuration refuses an `hs256` entry unless `API_TOKEN_ALLOW_HS256=true`,
 * and `/readyz` then lists a warning. `exp` is always required; `iss` and `aud` are checked when configured.
 * @see https://www.rfc-editor.org/rfc/rfc7518#section-3.2
 */
import { jwtVerify } from 'jose';
import { accessTokenErrorOf } from './verifier.ts';
import { AccessTokenError, accessFromClaims, type AccessTokenVerifier, type SmartAccess } from './types.ts';

export interface Hs256VerifierOptions {
  /** The shared secret (from the environment variable the configuration names). */
  readonly secret: string;
  readonly issuer?: string;
  readonly audience?: readonly string[];
  /** Allowed clock skew in seconds (default 30). */
  readonly clockToleranceSeconds?: number;
}

export class Hs256AccessTokenVerifier implements AccessTokenVerifier {
  readonly #key: Uint8Array;
  readonly #options: Hs256VerifierOptions;

  constructor(options: Hs256VerifierOptions) {
    if (!options.secret) throw new Error('an HS256 verifier needs a secret');
    this.#key = new TextEncoder().encode(options.secret);
    this.#options = options;
  }

  async verify(token: string): Promise<SmartAccess> {
    if (!token || token.split('.').length !== 3) throw new AccessTokenError('malformed', 'the bearer token is not a JWT');
    const aud = this.#options.audience?.length ? [...this.#options.audience] : undefined;
    try {
      const { payload } = await jwtVerify(token, this.#key, {
        algorithms: ['HS256'],
        ...(this.#options.issuer ? { issuer: this.#options.issuer } : {}),
        ...(aud ? { audience: aud } : {}),
        clockTolerance: this.#options.clockToleranceSeconds ?? 30,
        requiredClaims: ['exp'],
      });
      return accessFromClaims(payload as Record<string, unknown>);
    } catch (err) {
      throw accessTokenErrorOf(err);
    }
  }
}

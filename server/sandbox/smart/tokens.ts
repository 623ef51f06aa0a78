/**
 * Signing of the sandbox's tokens: JWT access tokens (RS256, `kid` = the JWK thumbprint) carrying the SMART launch
 * context as claims, and OpenID Connect `id_token`s with `fhirUser`. The key pair is generated at start-up and held
 * in memory only (demo); the public half is served at `/sandbox/auth/jwks`.
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html#response-5
 * @see https://hl7.org/fhir/smart-app-launch/STU2/scopes-and-launch-context.html#scopes-for-requesting-identity-data
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet, type JWK, type JWTPayload } from 'jose';
import { randomHandle } from './store.ts';

export const SIGNING_ALG = 'RS256';

/** Who and what a token is for: the result of an authorization (or a client_credentials grant). */
export interface GrantContext {
  readonly clientId: string;
  readonly scopes: readonly string[];
  /** The signed-in user as a relative reference (`Practitioner/demo-clinician`); absent for backend clients. */
  readonly user?: string;
  readonly patient?: string;
  readonly encounter?: string;
  readonly appContext?: string;
  readonly needPatientBanner?: boolean;
}

export interface IssuedAccessToken {
  readonly token: string;
  readonly expiresIn: number;
  readonly jti: string;
}

export class TokenSigner {
  readonly issuer: string;
  readonly audience: string;
  readonly fhirBaseUrl: string;
  readonly #privateKey: CryptoKey;
  readonly #publicJwk: JWK;

  private constructor(issuer: string, fhirBaseUrl: string, privateKey: CryptoKey, publicJwk: JWK) {
    this.issuer = issuer;
    this.fhirBaseUrl = fhirBaseUrl;
    this.audience = fhirBaseUrl;
    this.#privateKey = privateKey;
    this.#publicJwk = publicJwk;
  }

  /** Generates a fresh RSA key pair (≈50–200 ms). */
  static async create(issuer: string, fhirBaseUrl: string): Promise<TokenSigner> {
    const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALG, { modulusLength: 2048, extractable: true });
    const jwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(jwk);
    return new TokenSigner(issuer, fhirBaseUrl.replace(/\/+$/, ''), privateKey, { ...jwk, kid, alg: SIGNING_ALG, use: 'sig' });
  }

  get kid(): string {
    return this.#publicJwk.kid!;
  }

  jwks(): JSONWebKeySet {
    return { keys: [{ ...this.#publicJwk }] };
  }

  /**
   * Signs an access token. `expiresAt` (seconds since the epoch) overrides the lifetime — tests use it to make
   * expired tokens.
   */
  async accessToken(grant: GrantContext, lifetimeSeconds: number, expiresAt?: number): Promise<IssuedAccessToken> {
    const now = Math.floor(Date.now() / 1000);
    const exp = expiresAt ?? now + lifetimeSeconds;
    const jti = randomHandle(16);
    const claims: Record<string, unknown> = { client_id: grant.clientId, scope: grant.scopes.join(' ') };
    if (grant.patient) claims['patient'] = grant.patient;
    if (grant.encounter) claims['encounter'] = grant.encounter;
    if (grant.user) claims['fhirUser'] = grant.user;
    if (grant.appContext !== undefined) claims['appContext'] = grant.appContext;
    if (grant.needPatientBanner !== undefined) claims['need_patient_banner'] = grant.needPatientBanner;
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: SIGNING_ALG, kid: this.kid, typ: 'at+jwt' })
      .setIssuer(this.issuer)
      .setSubject(grant.user ?? grant.clientId)
      .setAudience(this.audience)
      .setIssuedAt(Math.min(now, exp - 1))
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(this.#privateKey);
    return { token, expiresIn: exp - now, jti };
  }

  /**
   * Signs a JWT that is not an access token with the same key (`typ` JWT, fresh `jti`): the sandbox FHIR server's
   * signed subscription notifications use it, verified against `/sandbox/auth/jwks`. `issuedAt` (epoch seconds)
   * overrides now — tests use it to make expired tokens.
   */
  async signJwt(claims: JWTPayload, options: { readonly audience: string; readonly lifetimeSeconds: number; readonly issuedAt?: number }): Promise<string> {
    const iat = options.issuedAt ?? Math.floor(Date.now() / 1000);
    return new SignJWT({ ...claims })
      .setProtectedHeader({ alg: SIGNING_ALG, kid: this.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(options.audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + options.lifetimeSeconds)
      .setJti(randomHandle(16))
      .sign(this.#privateKey);
  }

  /** An OpenID Connect id_token for `grant.user` (`fhirUser` is the absolute URL of the user's resource). */
  async idToken(grant: GrantContext, lifetimeSeconds: number, nonce?: string): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const user = grant.user!;
    const jwt = new SignJWT({ fhirUser: `${this.fhirBaseUrl}/${user}`, ...(nonce ? { nonce } : {}) })
      .setProtectedHeader({ alg: SIGNING_ALG, kid: this.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setSubject(user.split('/')[1]!)
      .setAudience(grant.clientId)
      .setIssuedAt(now)
      .setExpirationTime(now + lifetimeSeconds);
    return jwt.sign(this.#privateKey);
  }
}

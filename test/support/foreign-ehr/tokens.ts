/**
 * The access tokens of a simulated EHR's authorization server, in the three formats EHRs use: opaque random strings,
 * ES384 JWTs (public key at the server's `jwks_uri`) and HS256 JWTs without `iss`/`aud` (development launchers).
 *
 * Every token issued is also remembered with its {@link Grant}, because the EHR's FHIR endpoint and its RFC 7662
 * introspection endpoint answer from that record — an opaque token has nothing else to read, and a launcher-style
 * HS256 token carries no patient. A JWT is checked (signature, `exp`) before its record is trusted.
 * @see https://www.rfc-editor.org/rfc/rfc7519 (JWT)
 * @see https://hl7.org/fhir/smart-app-launch/STU2/app-launch.html#response-5 (the token response)
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import type { AccessTokenFormat, Grant, TokenContext } from './types.ts';

export interface TokenIssueOptions {
  /** `aud` of an ES384 JWT: the tenant's FHIR base. */
  readonly audience?: string;
  /** Where the context goes (see {@link TokenContext}); ignored for opaque tokens. */
  readonly context: TokenContext;
}

export class EhrTokens {
  readonly #grants = new Map<string, Grant>();
  readonly format: AccessTokenFormat;
  /** `iss` of the ES384 JWTs (the authorization server's issuer URL). */
  readonly issuer: string;
  readonly #es384?: { privateKey: CryptoKey; publicKey: CryptoKey; publicJwk: JWK };
  readonly #hs256?: Uint8Array;

  private constructor(format: AccessTokenFormat, issuer: string, es384?: { privateKey: CryptoKey; publicKey: CryptoKey; publicJwk: JWK }, hs256?: Uint8Array) {
    this.format = format;
    this.issuer = issuer;
    if (es384) this.#es384 = es384;
    if (hs256) this.#hs256 = hs256;
  }

  /** A token store with a fresh key for `format` (an ES384 pair, or a 32-byte HS256 secret). */
  static async create(format: AccessTokenFormat, issuer: string): Promise<EhrTokens> {
    if (format === 'jwt-es384') {
      const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
      const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: `as-${randomUUID().slice(0, 8)}`, alg: 'ES384', use: 'sig' };
      return new EhrTokens(format, issuer, { privateKey, publicKey, publicJwk });
    }
    // A printable secret used as its UTF-8 bytes, as smart-launcher-v2 uses its configured `jwtSecret` string.
    if (format === 'hs256') return new EhrTokens(format, issuer, undefined, new TextEncoder().encode(randomBytes(32).toString('base64url')));
    return new EhrTokens(format, issuer);
  }

  /** The public JWKS of the ES384 tokens (empty for the other formats). */
  jwks(): { keys: JWK[] } {
    return { keys: this.#es384 ? [{ ...this.#es384.publicJwk }] : [] };
  }

  /** The HS256 shared secret (its UTF-8 bytes are the HMAC key), which the service is given (`servers[].secretEnv`). */
  hs256Secret(): string {
    if (!this.#hs256) throw new Error('this EHR does not sign HS256 tokens');
    return new TextDecoder().decode(this.#hs256);
  }

  async issue(grant: Grant, o: TokenIssueOptions): Promise<string> {
    let token: string;
    if (this.format === 'opaque') {
      token = randomBytes(32).toString('base64url');
    } else {
      const claims: JWTPayload = o.context === 'claims'
        ? { sub: grant.sub, client_id: grant.clientId, scope: grant.scope, ...(grant.patient ? { patient: grant.patient } : {}), ...(grant.fhirUser ? { fhirUser: grant.fhirUser } : {}) }
        : { scope: grant.scope, client_id: grant.clientId, ...(grant.fhirUser ? { fhirUser: grant.fhirUser } : {}), context: { ...(grant.patient ? { patient: grant.patient } : {}), need_patient_banner: false } };
      let jwt = new SignJWT(claims).setIssuedAt(grant.iat).setExpirationTime(grant.exp);
      if (this.format === 'jwt-es384') {
        jwt = jwt.setProtectedHeader({ alg: 'ES384', typ: 'JWT', kid: this.#es384!.publicJwk.kid! }).setIssuer(this.issuer).setJti(randomUUID());
        if (o.audience) jwt = jwt.setAudience(o.audience);
        token = await jwt.sign(this.#es384!.privateKey);
      } else {
        token = await jwt.setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(this.#hs256!);
      }
    }
    this.#grants.set(token, grant);
    return token;
  }

  /** The grant of a token this server issued and that is still valid (signature and `exp` for JWTs), or undefined. */
  async verify(token: string): Promise<Grant | undefined> {
    const grant = this.#grants.get(token);
    if (!grant || grant.exp <= Math.floor(Date.now() / 1000)) return undefined;
    try {
      if (this.format === 'jwt-es384') await jwtVerify(token, this.#es384!.publicKey, { algorithms: ['ES384'], issuer: this.issuer });
      else if (this.format === 'hs256') await jwtVerify(token, this.#hs256!, { algorithms: ['HS256'] });
    } catch {
      return undefined;
    }
    return grant;
  }
}

/**
 * How the service authenticates itself to an RFC 7662 introspection endpoint (§2.1: "the protected resource MUST
 * authenticate"). Authorization servers differ in what they want, so five ways are offered:
 * - `basic`: `Authorization: Basic` with the form-urlencoded client id and secret (RFC 6749 §2.3.1);
 * - `client_secret_post`: `client_id` and `client_secret` as form fields of the request body (RFC 6749 §2.3.1);
 * - `bearer`: `Authorization: Bearer <a credential the authorization server issued to this service>`;
 * - `bearer-token`: `Authorization: Bearer <the token being introspected>` (servers that let a token introspect
 *   itself, e.g. some EHR sandboxes);
 * - `private_key_jwt`: an RFC 7523 client assertion (`client_assertion_type` + `client_assertion`), a JWT signed with
 *   the service's private key: `iss` = `sub` = client id, `aud` = the introspection URL, `exp` 5 minutes ahead, a fresh
 *   `jti` (SMART Backend Services' authentication profile).
 * Signing uses jose (well-kept, already a dependency) rather than hand-rolled JWS.
 * @see https://www.rfc-editor.org/rfc/rfc7662#section-2.1
 * @see https://www.rfc-editor.org/rfc/rfc7523#section-2.2
 * @see https://hl7.org/fhir/smart-app-launch/STU2/client-confidential-asymmetric.html
 */
import { randomUUID } from 'node:crypto';
import { importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';

export type IntrospectionClientAuth =
  | { readonly type: 'basic'; readonly clientId: string; readonly clientSecret: string }
  | { readonly type: 'client_secret_post'; readonly clientId: string; readonly clientSecret: string }
  | { readonly type: 'bearer'; readonly credential: string }
  | { readonly type: 'bearer-token' }
  | { readonly type: 'private_key_jwt'; readonly clientId: string; readonly privateKey: JWK };

/** The names the configuration uses for {@link IntrospectionClientAuth} types. */
export const CLIENT_AUTH_TYPES = ['basic', 'client_secret_post', 'bearer', 'bearer-token', 'private_key_jwt'] as const;

/** What one introspection request carries to authenticate the service: extra headers and extra form fields. */
export interface ClientCredentials {
  readonly headers: Record<string, string>;
  readonly form: Record<string, string>;
}

/** RFC 7523 §2.2 `client_assertion_type` of a JWT client assertion. */
export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Asymmetric algorithms a private key may sign client assertions with. */
export const ASSERTION_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/**
 * The signing algorithm of a private JWK: its own `alg` when it names one, else the SMART Backend Services choice for
 * its key type (RSA → RS384, P-384 → ES384; P-256 → ES256, P-521 → ES512, Ed25519 → EdDSA). Undefined when the key
 * cannot sign an assertion.
 */
export function assertionAlgorithm(jwk: JWK): string | undefined {
  if (typeof jwk.alg === 'string') return (ASSERTION_ALGORITHMS as readonly string[]).includes(jwk.alg) ? jwk.alg : undefined;
  if (jwk.kty === 'RSA') return 'RS384';
  if (jwk.kty === 'EC') return ({ 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' } as Record<string, string>)[jwk.crv ?? ''];
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  return undefined;
}

/** Builds the client authentication of each introspection request to `endpoint`. */
export class IntrospectionClientAuthenticator {
  readonly #auth: IntrospectionClientAuth;
  readonly #endpoint: string;
  #key: Promise<{ key: CryptoKey | Uint8Array; alg: string }> | undefined;

  constructor(auth: IntrospectionClientAuth, endpoint: string) {
    this.#auth = auth;
    this.#endpoint = endpoint;
  }

  /** The credentials for introspecting `token` (which `bearer-token` sends back as the credential). */
  async credentials(token: string): Promise<ClientCredentials> {
    const a = this.#auth;
    switch (a.type) {
      case 'basic':
        // RFC 6749 §2.3.1: id and secret are encoded before being joined and base64-encoded. encodeURIComponent's
        // output is read back unchanged by both form-decoders and plain percent-decoders (it never emits `+`).
        return { headers: { Authorization: `Basic ${Buffer.from(`${encodeURIComponent(a.clientId)}:${encodeURIComponent(a.clientSecret)}`).toString('base64')}` }, form: {} };
      case 'client_secret_post':
        return { headers: {}, form: { client_id: a.clientId, client_secret: a.clientSecret } };
      case 'bearer':
        return { headers: { Authorization: `Bearer ${a.credential}` }, form: {} };
      case 'bearer-token':
        return { headers: { Authorization: `Bearer ${token}` }, form: {} };
      case 'private_key_jwt':
        return { headers: {}, form: { client_assertion_type: JWT_BEARER_ASSERTION, client_assertion: await this.#assertion(a.clientId, a.privateKey) } };
    }
  }

  async #assertion(clientId: string, jwk: JWK): Promise<string> {
    this.#key ??= (async () => {
      const alg = assertionAlgorithm(jwk);
      if (!alg) throw new Error('the private key cannot sign a client assertion (no usable alg for its key type)');
      return { key: await importJWK(jwk, alg), alg };
    })();
    const { key, alg } = await this.#key;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg, typ: 'JWT', ...(typeof jwk.kid === 'string' ? { kid: jwk.kid } : {}) })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(this.#endpoint)
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .setJti(randomUUID())
      .sign(key);
  }
}

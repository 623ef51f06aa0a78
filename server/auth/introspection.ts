/**
 * {@link IntrospectionAccessTokenVerifier}: RFC 7662 token introspection, for opaque tokens (and JWTs whose keys the
 * service cannot reach), with a short cache of active answers. The service authenticates to the endpoint in one of
 * the ways of client-auth.ts.
 * @see https://www.rfc-editor.org/rfc/rfc7662
 */
import { createHash } from 'node:crypto';
import { IntrospectionClientAuthenticator, type IntrospectionClientAuth } from './client-auth.ts';
import { AccessTokenError, accessFromClaims, type AccessTokenVerifier, type SmartAccess } from './types.ts';

export interface IntrospectionVerifierOptions {
  readonly introspectionUrl: string;
  /**
   * How the service authenticates to the endpoint (RFC 7662 §2.1: the endpoint is protected). Absent: HTTP Basic with
   * `clientId` and `clientSecret`, as before `clientAuth` existed.
   */
  readonly clientAuth?: IntrospectionClientAuth;
  readonly clientId?: string;
  readonly clientSecret?: string;
  readonly timeoutMs?: number;
  /** Active answers are reused for this many seconds (never beyond the token's `exp`); default 30. */
  readonly cacheSeconds?: number;
  /** Accepted `iss` of introspected tokens, when the server reports one. */
  readonly issuer?: string;
}

/** Cache key of a token: its SHA-256, so the cache holds no usable token. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export class IntrospectionAccessTokenVerifier implements AccessTokenVerifier {
  readonly #options: IntrospectionVerifierOptions;
  readonly #client: IntrospectionClientAuthenticator;
  readonly #cache = new Map<string, { access: SmartAccess; until: number }>();
  /** True when the token itself is the credential (`bearer-token`): a 401/403 then refuses the token, not the service. */
  readonly #selfAuthenticating: boolean;

  constructor(options: IntrospectionVerifierOptions) {
    this.#options = options;
    const auth: IntrospectionClientAuth = options.clientAuth ?? { type: 'basic', clientId: options.clientId ?? '', clientSecret: options.clientSecret ?? '' };
    this.#client = new IntrospectionClientAuthenticator(auth, options.introspectionUrl);
    this.#selfAuthenticating = auth.type === 'bearer-token';
  }

  async verify(token: string): Promise<SmartAccess> {
    if (!token) throw new AccessTokenError('missing', 'no bearer token');
    const now = Date.now();
    const key = tokenDigest(token);
    const hit = this.#cache.get(key);
    if (hit && hit.until > now) return hit.access;
    this.#cache.delete(key);
    let res: Response;
    let body: Record<string, unknown>;
    try {
      const credentials = await this.#client.credentials(token);
      res = await fetch(this.#options.introspectionUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', ...credentials.headers },
        body: new URLSearchParams({ token, token_type_hint: 'access_token', ...credentials.form }).toString(),
        // A redirect would carry the token (and maybe the client secret) to a URL nobody configured.
        redirect: 'error',
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? 5000),
      });
      if (this.#selfAuthenticating && (res.status === 401 || res.status === 403)) throw new AccessTokenError('invalid', 'the introspection endpoint refused the access token');
      body = (await res.json()) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof AccessTokenError) throw err;
      throw new AccessTokenError('unavailable', 'the introspection endpoint did not answer');
    }
    if (!res.ok) throw new AccessTokenError('unavailable', `the introspection endpoint answered HTTP ${res.status}`);
    if (!body || typeof body !== 'object' || body['active'] !== true) throw new AccessTokenError('invalid', 'the access token is not active');
    if (this.#options.issuer && typeof body['iss'] === 'string' && body['iss'] !== this.#options.issuer) {
      throw new AccessTokenError('invalid', 'the access token was issued by another server');
    }
    const exp = typeof body['exp'] === 'number' ? body['exp'] * 1000 : Number.POSITIVE_INFINITY;
    if (exp <= now) throw new AccessTokenError('expired', 'the access token has expired');
    const access = accessFromClaims(body);
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(key, { access, until: Math.min(exp, now + (this.#options.cacheSeconds ?? 30) * 1000) });
    return access;
  }
}

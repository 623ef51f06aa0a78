/**
 * Verification of the JWT a CDS client sends with every call (CDS Hooks 2.0 §Trusting CDS Clients, and the
 * cds-hooks/docs best practices), in their order: `iss` on the allowlist → `aud` = the URL called → `exp` → `tenant`
 * → signature with the client's keys (see {@link CdsJwtVerifier.verify} for where they come from) → `jti` not seen
 * before. Asymmetric algorithms only.
 *
 * Every failure is one typed {@link CdsAuthError} whose reason is for logs and tests only: the HTTP answer is a bare
 * 401. The token itself is never logged or stored; `iss`, `tenant` and `jti` may be.
 *
 * The `jti`s live in a {@link ReplayCache}: in process memory by default, or shared by every replica (Redis,
 * PostgreSQL, or the host's SQLite state file) so that a token replayed to another replica is refused too. When the
 * shared cache cannot be reached, {@link CdsJwtVerifier.verify} rejects with its StateUnavailableError — the call is
 * refused, never checked against per-process memory only.
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients
 * @see https://www.rfc-editor.org/rfc/rfc7515#section-4.1.2 (jku)
 */
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type ProtectedHeaderParameters } from 'jose';
import { PinnedKeys } from './pinned-keys.ts';
import { MemoryReplayCache } from '../state/replay.ts';
import type { ReplayCache } from '../state/types.ts';
import { ASYMMETRIC_ALGS, type CdsClient } from './clients.ts';

export type CdsAuthReason =
  | 'missing' | 'malformed' | 'alg' | 'unknown-iss' | 'aud' | 'expired' | 'iat' | 'claims' | 'tenant'
  | 'jku-not-allowed' | 'no-key' | 'signature' | 'replay';

export class CdsAuthError extends Error {
  override readonly name = 'CdsAuthError';
  constructor(readonly reason: CdsAuthReason, message: string = reason) {
    super(message);
  }
}

export interface VerifiedClient {
  client: CdsClient;
  iss: string;
  jti: string;
  tenant?: string;
}

export interface CdsJwtVerifierOptions {
  clients: readonly CdsClient[];
  /** Seconds a `jti` is remembered; tokens whose `iat` is older are refused (they could not be checked for replay). */
  jtiTtlS: number;
  clockSkewS: number;
  /** Upper bound on remembered `jti`s of the default in-memory cache (memory guard); beyond it the oldest are dropped. */
  maxJtis?: number;
  /** Where `iss|jti` are remembered (default: this process's memory). Replicas must share one. */
  replay?: ReplayCache;
  /** For tests: the current time in ms. */
  now?: () => number;
  /** JWKS fetch time-out, ms (default 2000) — a hook call must not wait longer than its budget on a key server. */
  jwksTimeoutMs?: number;
  /** Shortest interval between two JWKS re-fetches triggered by an unknown `kid`, ms (default 30 000). */
  jwksCooldownMs?: number;
}

const ALG_SET = new Set<string>(ASYMMETRIC_ALGS);

export class CdsJwtVerifier {
  readonly #byIss: Map<string, CdsClient>;
  readonly #keySets = new Map<string, JWTVerifyGetKey>();
  /** Pinned (inline `jwks`) key sets by `iss`, built once: importing keys on every call costs more than verifying. */
  readonly #pinned = new Map<string, JWTVerifyGetKey>();
  /** The same pinned keys as `node:crypto` key objects, for the direct check of the common case. */
  readonly #pinnedDirect = new Map<string, PinnedKeys>();
  readonly #replay: ReplayCache;
  readonly #opts: Required<Omit<CdsJwtVerifierOptions, 'clients' | 'replay'>>;

  constructor(opts: CdsJwtVerifierOptions) {
    this.#byIss = new Map(opts.clients.map((c) => [c.iss, c]));
    this.#opts = { jtiTtlS: opts.jtiTtlS, clockSkewS: opts.clockSkewS, maxJtis: opts.maxJtis ?? 100_000, now: opts.now ?? Date.now, jwksTimeoutMs: opts.jwksTimeoutMs ?? 2000, jwksCooldownMs: opts.jwksCooldownMs ?? 30_000 };
    this.#replay = opts.replay ?? new MemoryReplayCache({ maxKeys: this.#opts.maxJtis, now: this.#opts.now });
    // A malformed inline set fails here (JWKSInvalid), at start-up, rather than as a 401 on every call.
    for (const c of opts.clients) {
      if (!c.jwks) continue;
      this.#pinned.set(c.iss, createLocalJWKSet(c.jwks));
      this.#pinnedDirect.set(c.iss, new PinnedKeys(c.jwks));
    }
  }

  get clients(): readonly CdsClient[] {
    return [...this.#byIss.values()];
  }

  #remote(url: string): JWTVerifyGetKey {
    let set = this.#keySets.get(url);
    if (!set) {
      // jose caches the set (cacheMaxAge) and re-fetches when a kid is unknown (at most every cooldownDuration):
      // key rotation works without a restart.
      set = createRemoteJWKSet(new URL(url), { timeoutDuration: this.#opts.jwksTimeoutMs, cooldownDuration: this.#opts.jwksCooldownMs, cacheMaxAge: 600_000 });
      this.#keySets.set(url, set);
    }
    return set;
  }

  /**
   * The key lookup for one token of `client`, following the key rules documented on {@link CdsJwtVerifier.verify}:
   * pinned keys first, then (only when none of them fits the token's `kid` and `alg`) one remote set, or a refusal.
   */
  #keysFor(client: CdsClient, header: ProtectedHeaderParameters): JWTVerifyGetKey {
    const pinned = this.#pinned.get(client.iss);
    let remoteUrl: string | undefined;
    let refusal: CdsAuthError | undefined;
    if (header.jku !== undefined) {
      if (client.jkuAllowlist.includes(header.jku)) remoteUrl = header.jku;
      else refusal = new CdsAuthError('jku-not-allowed', pinned ? 'no pinned key fits the kid and the jku is not on the allowlist' : 'jku not on the allowlist');
    } else if (client.jwksUrl) {
      remoteUrl = client.jwksUrl;
    } else {
      refusal = new CdsAuthError('no-key', pinned ? 'no pinned key fits the kid and the token names no jku' : 'client has only a jku allowlist and the token names no jku');
    }
    return async (protectedHeader, token) => {
      if (pinned) {
        try {
          return await pinned(protectedHeader, token);
        } catch (err) {
          if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
        }
      }
      if (refusal) throw refusal;
      return this.#remote(remoteUrl!)(protectedHeader, token);
    };
  }

  /** The signature check by jose with the keys #keysFor allows (pinned, then an allowed remote set); claims again. */
  async #verifyWithJose(token: string, client: CdsClient, header: ProtectedHeaderParameters, audience: string): Promise<void> {
    const skew = this.#opts.clockSkewS;
    try {
      await jwtVerify(token, this.#keysFor(client, header), {
        algorithms: client.algorithms as string[],
        issuer: client.iss,
        audience,
        clockTolerance: skew,
        currentDate: new Date(this.#opts.now()),
      });
    } catch (err) {
      if (err instanceof CdsAuthError) throw err;
      if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid || err instanceof joseErrors.JWKSMultipleMatchingKeys) throw new CdsAuthError('no-key', err.code);
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw new CdsAuthError('signature');
      if (err instanceof joseErrors.JWTExpired) throw new CdsAuthError('expired');
      if (err instanceof joseErrors.JOSEError) throw new CdsAuthError('signature', err.code);
      throw new CdsAuthError('no-key', (err as Error).message);
    }
  }

  /**
   * Verifies `Authorization: Bearer <jwt>` for a call to `audience` (the full URL the client called, built from
   * PUBLIC_BASE_URL). Resolves to the client or throws {@link CdsAuthError}.
   *
   * Where the signature key comes from (pinned first; fetching only when allowed and needed):
   * - A pinned key (the client's inline `jwks`) whose `kid` and algorithm fit is used and nothing is fetched —
   *   whatever the `jku` header says, even a `jku` that is not on the allowlist. CDS Hooks 2.0 §Trusting CDS Clients
   *   lets the service hold a client's public keys it got out of band, and asks for an allowlist so that the
   *   service never *fetches* keys from a URL an attacker chose (the `jku` is only a hint where the keys are, RFC
   *   7515 §4.1.2). A key the operator pinned is the stronger trust anchor; a token it verifies can only come from
   *   the holder of the private key, and ignoring the hint fetches nothing, so nothing is gained by refusing it.
   * - A pinned key with the token's `kid` that does not verify the signature is a refusal (`signature`), never a
   *   reason to fetch: a `kid` names one key (it is unique within the client's set, CDS Hooks 2.0 §JSON Web Token).
   * - No pinned key fits (a new `kid` after a rotation, or no inline `jwks`): a `jku` is fetched only when it is on
   *   the client's `jkuAllowlist` (else `jku-not-allowed`); without a `jku`, the client's `jwksUrl` is fetched;
   *   without either, `no-key`. Remote sets are cached and re-fetched by jose when an unknown `kid` appears (at
   *   most every `jwksCooldownMs`), so rotation needs no restart wherever fetching is allowed.
   *
   * A client configured with inline `jwks` and no `jkuAllowlist`/`jwksUrl` therefore never causes egress.
   */
  async verify(authorization: string | undefined, audience: string, bodyHash?: string | (() => Promise<string | undefined>)): Promise<VerifiedClient> {
    const m = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)\s*$/i.exec(authorization ?? '');
    if (!m) throw new CdsAuthError(authorization ? 'malformed' : 'missing');
    const token = m[1]!;
    let header: ReturnType<typeof decodeProtectedHeader>;
    let claims: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      claims = decodeJwt(token);
    } catch {
      throw new CdsAuthError('malformed');
    }
    if (typeof header.alg !== 'string' || !ALG_SET.has(header.alg)) throw new CdsAuthError('alg', `alg ${String(header.alg)} is not an asymmetric algorithm`);
    if (header.typ !== undefined && String(header.typ).toUpperCase() !== 'JWT') throw new CdsAuthError('malformed', 'typ is not JWT');
    // 1. issuer allowlist
    const client = typeof claims.iss === 'string' ? this.#byIss.get(claims.iss) : undefined;
    if (!client) throw new CdsAuthError('unknown-iss');
    if (!client.algorithms.includes(header.alg as (typeof client.algorithms)[number])) throw new CdsAuthError('alg', `alg ${header.alg} not allowed for this client`);
    // 2. audience = the endpoint called
    const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!auds.includes(audience)) throw new CdsAuthError('aud');
    // 3. exp / iat / jti present and in range
    const now = this.#opts.now() / 1000;
    const skew = this.#opts.clockSkewS;
    if (typeof claims.exp !== 'number' || typeof claims.iat !== 'number' || typeof claims.jti !== 'string' || claims.jti.length === 0) throw new CdsAuthError('claims');
    if (claims.exp + skew <= now) throw new CdsAuthError('expired');
    if (claims.iat - skew > now || now - claims.iat > this.#opts.jtiTtlS) throw new CdsAuthError('iat');
    // 4. tenant
    const tenant = typeof claims['tenant'] === 'string' ? claims['tenant'] : undefined;
    if (client.tenants && (!tenant || !client.tenants.includes(tenant))) throw new CdsAuthError('tenant');
    // `nbf` (RFC 7519 §4.1.5) here rather than in jose: the pinned-key path below does not run jose's claim checks.
    if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf - skew > now)) throw new CdsAuthError('claims', 'nbf');
    // 5. signature with the client's keys: the one pinned key the `kid` names, checked directly (pinned-keys.ts);
    // otherwise jose, with the fetching rules of #keysFor.
    const direct = this.#pinnedDirect.get(client.iss)?.check(token, header as { alg: string; kid?: string });
    if (direct === false) throw new CdsAuthError('signature');
    if (direct === undefined) await this.#verifyWithJose(token, client, header, audience);
    // 6. replay: only after the signature (an attacker must not be able to burn a legitimate jti). Remembered as
    // long as a token with this `iat` is accepted at all (jtiTtlS), on every replica sharing the cache. `bodyHash`
    // (sha256 of the raw request body; a function so the body is read only for a signed token) lets a
    // byte-identical resend through while the first use is unanswered (see {@link CdsJwtVerifier.answered}).
    const hash = typeof bodyHash === 'function' ? await bodyHash() : bodyHash;
    if (!(await this.#replay.claim(`${client.iss}|${claims.jti}`, this.#opts.now() + this.#opts.jtiTtlS * 1000, hash))) throw new CdsAuthError('replay');
    return { client, iss: client.iss, jti: claims.jti, ...(tenant ? { tenant } : {}) };
  }

  /**
   * Marks the call of `verified` answered (the router does it once the response is done, or the connection is
   * gone): from then on its `jti` is refused even with the same body. Until then a byte-identical resend of the call
   * — a load balancer retrying it on another replica because the first one died — is accepted.
   */
  answered(verified: VerifiedClient): Promise<void> {
    return this.#replay.answered(`${verified.iss}|${verified.jti}`);
  }
}

/**
 * Verification of the JWT a FHIR server signs for each subscription notification (`EVENTS_AUTH=jwt`), in this
 * order: a compact JWS in `Authorization: Bearer` → an asymmetric `alg` (HS*, `none` refused before any key is
 * looked at) → signature with the FHIR server's keys → `iss` = the configured issuer → `aud` = the notification
 * endpoint URL → `exp`, `iat` and `jti` present, `iat` not in the future, the token at most
 * {@link MAX_NOTIFICATION_TOKEN_LIFETIME_S} old and valid for at most that long → `jti` not seen before.
 *
 * Modelled on the CDS client check (server/cds/jwt.ts) but smaller: one issuer, one key source, no `jku`.
 * jose does the JWS and the registered-claim checks (RFC 7519 §4.1); this file adds only what jose has no option
 * for: the algorithm gate before key lookup, the lifetime cap (`exp - iat`) and the replay cache.
 *
 * Every failure is one typed {@link NotificationAuthError} whose reason is for logs and tests only: the HTTP answer is
 * a bare 401. The token itself is never logged or stored; only its `jti` is remembered, until the token expires —
 * in a {@link ReplayCache}: process memory by default, or shared by the replicas (a notification replayed to another
 * replica is refused too; a shared cache that cannot be reached refuses the notification with its error).
 * @see https://www.rfc-editor.org/rfc/rfc7519#section-4.1
 * @see https://www.rfc-editor.org/rfc/rfc8725#section-3.1 (JWT BCP: verify the algorithm)
 * @see https://hl7.org/fhir/uv/subscriptions-backport/STU1.1/channels.html#rest-hook
 */
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { MemoryReplayCache } from '../state/replay.ts';
import type { ReplayCache } from '../state/types.ts';

/** Algorithms a notification may be signed with: asymmetric only, so nothing the service holds can forge one. */
export const NOTIFICATION_JWT_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/** Longest accepted validity (`exp - iat`) and age (`now - iat`) of a notification token, seconds. */
export const MAX_NOTIFICATION_TOKEN_LIFETIME_S = 300;

export type NotificationAuthReason =
  | 'missing' | 'malformed' | 'alg' | 'not-configured' | 'no-key' | 'signature' | 'iss' | 'aud' | 'expired' | 'iat'
  | 'lifetime' | 'claims' | 'replay';

export class NotificationAuthError extends Error {
  override readonly name = 'NotificationAuthError';
  constructor(readonly reason: NotificationAuthReason, message: string = reason) {
    super(message);
  }
}

/**
 * A key that signs notification tokens, as a FHIR server holds it (in the sandbox: the sandbox authorization
 * server's signer, handed over by the composition root so that product code never imports the sandbox).
 */
export interface NotificationSigningKey {
  /** The `iss` of what {@link NotificationSigningKey.signJwt} signs. */
  readonly issuer: string;
  /** The public keys that verify it. */
  jwks(): JSONWebKeySet;
  /** Signs `claims` with `iss`, `aud`, `iat`, `exp` = `iat + lifetimeSeconds` and a fresh `jti`. */
  signJwt(claims: JWTPayload, options: { readonly audience: string; readonly lifetimeSeconds: number; readonly issuedAt?: number }): Promise<string>;
}

export interface NotificationJwtVerifierOptions {
  readonly issuer: string;
  /** The notification endpoint URL under PUBLIC_BASE_URL. */
  readonly audience: string;
  /** The signer's keys; undefined while they are not known yet (the sandbox's are handed over after start-up). */
  readonly keys: () => JWTVerifyGetKey | undefined;
  /** Clock skew tolerated on `exp`/`iat`, seconds (default 30). */
  readonly clockSkewS?: number;
  /** Upper bound on remembered `jti`s of the default in-memory cache (memory guard, default 100 000); beyond it the oldest are dropped. */
  readonly maxJtis?: number;
  /** Where `jti`s are remembered (default: this process's memory). Replicas must share one. */
  readonly replay?: ReplayCache;
  /** For tests: the current time in ms. */
  readonly now?: () => number;
}

const ALG_SET = new Set<string>(NOTIFICATION_JWT_ALGS);
const COMPACT_JWS = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*$/i;

export class NotificationJwtVerifier {
  readonly #opts: Required<Omit<NotificationJwtVerifierOptions, 'keys' | 'replay'>> & Pick<NotificationJwtVerifierOptions, 'keys'>;
  readonly #replay: ReplayCache;

  constructor(opts: NotificationJwtVerifierOptions) {
    const { replay, ...rest } = opts;
    this.#opts = { clockSkewS: 30, maxJtis: 100_000, now: Date.now, ...rest };
    this.#replay = replay ?? new MemoryReplayCache({ maxKeys: this.#opts.maxJtis, now: this.#opts.now });
  }

  /** How many `jti`s this process's memory holds (tests, metrics); 0 when a shared replay cache holds them. */
  get rememberedJtis(): number {
    return this.#replay instanceof MemoryReplayCache ? this.#replay.size : 0;
  }

  /** Verifies the `Authorization` header of one notification; resolves to its `jti` or throws {@link NotificationAuthError}. */
  async verify(authorization: string | undefined): Promise<{ jti: string }> {
    const m = COMPACT_JWS.exec(authorization ?? '');
    if (!m) throw new NotificationAuthError(authorization ? 'malformed' : 'missing');
    const token = m[1]!;
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new NotificationAuthError('malformed');
    }
    if (typeof alg !== 'string' || !ALG_SET.has(alg)) throw new NotificationAuthError('alg', `alg ${String(alg)} is not an accepted asymmetric algorithm`);
    const keys = this.#opts.keys();
    if (!keys) throw new NotificationAuthError('not-configured', 'the notification signer\'s keys are not known yet');
    const nowMs = this.#opts.now();
    const skew = this.#opts.clockSkewS;
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, keys, {
        algorithms: [...NOTIFICATION_JWT_ALGS],
        issuer: this.#opts.issuer,
        audience: this.#opts.audience,
        requiredClaims: ['exp', 'iat', 'jti'],
        maxTokenAge: MAX_NOTIFICATION_TOKEN_LIFETIME_S,
        clockTolerance: skew,
        currentDate: new Date(nowMs),
      }));
    } catch (err) {
      throw toAuthError(err);
    }
    const { exp, iat, jti } = claims as { exp: number; iat: number; jti: unknown };
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw new NotificationAuthError('claims', 'jti must be a non-empty string');
    if (exp - iat > MAX_NOTIFICATION_TOKEN_LIFETIME_S) throw new NotificationAuthError('lifetime', `the token is valid for ${exp - iat} s (at most ${MAX_NOTIFICATION_TOKEN_LIFETIME_S} s accepted)`);
    // Replay: only after the signature, so that nobody but the signer can burn a jti. Remembered until the token
    // expires (a token past `exp` is refused anyway). The in-memory default forgets the oldest beyond `maxJtis`,
    // which could let such a token be replayed until it expires; that takes more than `maxJtis` notifications within
    // MAX_NOTIFICATION_TOKEN_LIFETIME_S, all signed by the FHIR server itself, and a replayed notification only
    // offers a job the queue already holds (jobs are idempotent per report version).
    if (!(await this.#replay.claim(`notification|${jti}`, (exp + skew) * 1000))) throw new NotificationAuthError('replay');
    return { jti };
  }
}

function toAuthError(err: unknown): NotificationAuthError {
  if (err instanceof NotificationAuthError) return err;
  if (err instanceof joseErrors.JWTExpired) return new NotificationAuthError(err.claim === 'iat' ? 'iat' : 'expired', err.message);
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return new NotificationAuthError('iss');
    if (err.claim === 'aud') return new NotificationAuthError('aud');
    if (err.claim === 'iat') return new NotificationAuthError('iat', err.message);
    return new NotificationAuthError('claims', err.message);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new NotificationAuthError('signature');
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys || err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) return new NotificationAuthError('no-key', err.code);
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new NotificationAuthError('alg', err.code);
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return new NotificationAuthError('malformed', err.code);
  // Anything else (a key set that cannot be fetched or read, an unsupported key) is a key problem, not a crash.
  return new NotificationAuthError('no-key', err instanceof joseErrors.JOSEError ? err.code : (err as Error).message);
}

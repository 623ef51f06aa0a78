/**
 * Signature check of a compact JWS against a CDS client's pinned keys (its inline `jwks`), with `node:crypto` and
 * key objects imported once.
 *
 * Why by hand next to jose: jose verifies through WebCrypto, which imports nothing per call but runs every check as
 * an asynchronous job on the libuv thread pool; for RS384 — the algorithm Epic signs CDS Hooks JWTs with by default —
 * that costs 0.19 ms of CPU per token against 0.045 ms here (`bench:cds` prints the per-call CPU). Only the signature
 * is checked here, and only when the case is unambiguous; everything else (a `kid` that fits no pinned key or more
 * than one, `crit` or `b64` headers, keys jose would refuse) answers `undefined` and the caller falls back to jose.
 * The claims are checked by the caller for both paths.
 *
 * The rules jose applies that matter for a pinned key, kept here: the key's `alg` (when the JWK names one) must be
 * the token's; the JWK's `use` must be `sig` when present; RSA moduli of at least 2048 bits (RFC 7518 §3.3); an EC
 * key's curve must be the algorithm's (ES256 P-256, ES384 P-384, ES512 P-521, RFC 7518 §3.4); EdDSA with Ed25519 or
 * Ed448 (RFC 8037); ECDSA signatures in the JWS (IEEE P1363) encoding.
 * @see https://www.rfc-editor.org/rfc/rfc7515#section-5.2 (validating a JWS)
 * @see https://www.rfc-editor.org/rfc/rfc7518#section-3 (algorithms)
 */
import { constants, createPublicKey, verify as cryptoVerify, type JsonWebKey, type KeyObject, type VerifyKeyObjectInput, type VerifyPublicKeyInput } from 'node:crypto';
import type { JSONWebKeySet } from 'jose';

/** One pinned key ready for `node:crypto`. */
interface PinnedKey {
  readonly kid: string | undefined;
  readonly alg: string | undefined;
  readonly key: KeyObject;
}

const HASH: Record<string, string> = { RS256: 'sha256', RS384: 'sha384', RS512: 'sha512', PS256: 'sha256', PS384: 'sha384', PS512: 'sha512', ES256: 'sha256', ES384: 'sha384', ES512: 'sha512' };
const CURVE: Record<string, string> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };

/** The verify input for `alg` with `key`, or undefined when the key is not one jose would use for that algorithm. */
function verifyInput(alg: string, key: KeyObject): VerifyKeyObjectInput | VerifyPublicKeyInput | undefined {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (alg.startsWith('RS') || alg.startsWith('PS')) {
    if (type !== 'rsa' || (details.modulusLength ?? 0) < 2048) return undefined;
    return alg.startsWith('PS') ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST } : { key };
  }
  if (alg.startsWith('ES')) return type === 'ec' && details.namedCurve === CURVE[alg] ? { key, dsaEncoding: 'ieee-p1363' } : undefined;
  if (alg === 'EdDSA') return type === 'ed25519' || type === 'ed448' ? { key } : undefined;
  return undefined;
}

/** A client's pinned keys, imported once. */
export class PinnedKeys {
  readonly #keys: PinnedKey[];

  /** Keys that cannot be imported (or are not for signatures) are left to jose, which reports them. */
  constructor(jwks: JSONWebKeySet) {
    this.#keys = [];
    for (const jwk of jwks.keys) {
      if (jwk.use !== undefined && jwk.use !== 'sig') continue;
      try {
        this.#keys.push({ kid: jwk.kid, alg: jwk.alg, key: createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }) });
      } catch {
        // Not importable here: such a key is never used by this path.
      }
    }
  }

  /**
   * Checks the signature of `token` (compact JWS, header already decoded as `header`).
   * @returns true (valid) or false (the one key named by `kid` does not verify it: a refusal, never a reason to look
   *   further), or undefined when this path does not decide and jose must.
   */
  check(token: string, header: { alg: string; kid?: string | undefined; crit?: unknown; b64?: unknown }): boolean | undefined {
    if (header.kid === undefined || header.crit !== undefined || header.b64 !== undefined) return undefined;
    const fits = this.#keys.filter((k) => k.kid === header.kid && (k.alg === undefined || k.alg === header.alg));
    if (fits.length !== 1) return undefined;
    const input = verifyInput(header.alg, fits[0]!.key);
    if (!input) return undefined;
    const dot = token.lastIndexOf('.');
    const signature = Buffer.from(token.slice(dot + 1), 'base64url');
    return cryptoVerify(HASH[header.alg] ?? null, Buffer.from(token.slice(0, dot), 'latin1'), input, signature);
  }
}

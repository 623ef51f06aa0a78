/**
 * The demo EHR's CDS Hooks client identity: an ES384 key pair made at start-up, the JWKS that publishes its public
 * half (`/sandbox/ehr/.well-known/jwks.json`), and the JWT sent as `Authorization: Bearer` on every call to a CDS
 * service (discovery, hooks and feedback).
 *
 * The key lives only in memory: it is a demo client, and the CDS service fetches the JWKS by URL (configured in
 * `smart-config/cds-clients.json`), so a new key after a restart is picked up as a key rotation would be.
 * @see https://cds-hooks.hl7.org/2.0/#trusting-cds-clients (CDS Hooks 2.0 "Trusting CDS Clients")
 */
import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JWK, type CryptoKey } from 'jose';

/** ES384 is the algorithm the spec recommends and the public CDS Hooks sandbox uses. */
export const CDS_CLIENT_ALG = 'ES384';

/** Lifetime of a client JWT. The spec asks for a short one; 5 minutes is what the public sandbox uses. */
export const CDS_JWT_LIFETIME_S = 300;

export interface JsonWebKeySet {
  keys: JWK[];
}

export interface CdsClientSigner {
  /** `iss` of every JWT (`${PUBLIC_BASE_URL}/sandbox/ehr`). */
  readonly issuer: string;
  /** `kid` of the current key (its RFC 7638 thumbprint). */
  readonly kid: string;
  /** The public JWKS to serve. Never contains private members. */
  jwks(): JsonWebKeySet;
  /** A fresh JWT for one call to `audience` (the exact URL called). Each has a unique `jti`. */
  sign(audience: string): Promise<string>;
}

/** Makes a signer with a new ES384 key pair. */
export async function createCdsClientSigner(issuer: string): Promise<CdsClientSigner> {
  const { privateKey, publicKey } = await generateKeyPair(CDS_CLIENT_ALG, { extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub, 'sha256');
  const publicJwk: JWK = { kty: pub.kty, crv: pub.crv, x: pub.x, y: pub.y, kid, alg: CDS_CLIENT_ALG, use: 'sig' };
  return new Es384Signer(issuer, kid, publicJwk, privateKey);
}

class Es384Signer implements CdsClientSigner {
  constructor(
    readonly issuer: string,
    readonly kid: string,
    readonly publicJwk: JWK,
    readonly privateKey: CryptoKey,
  ) {}

  jwks(): JsonWebKeySet {
    return { keys: [{ ...this.publicJwk }] };
  }

  async sign(audience: string): Promise<string> {
    // Header `typ: JWT` and `kid` are required by CDS Hooks 2.0; the payload carries iss, aud, exp, iat, jti.
    return new SignJWT({})
      .setProtectedHeader({ alg: CDS_CLIENT_ALG, typ: 'JWT', kid: this.kid })
      .setIssuer(this.issuer)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime(`${CDS_JWT_LIFETIME_S}s`)
      .setJti(randomUUID())
      .sign(this.privateKey);
  }
}

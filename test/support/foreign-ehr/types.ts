/**
 * What a simulated foreign EHR is made of (test/support/foreign-ehr/): the conventions it follows, per EHR and per
 * FHIR base ("tenant"), and the grants its authorization server keeps. The three EHRs of the interoperability
 * suite are values of {@link EhrConvention} (`epic-like.ts`, `oracle-like.ts`, `launcher-like.ts`); everything else
 * in this folder reads these options and never branches on an EHR's name.
 */
import type { Coding } from '@medplum/fhirtypes';

/** How the service verifies the app's access tokens for one FHIR base (token-verification.json `servers[].mode`). */
export type VerificationMode = 'jwks' | 'introspection' | 'fhir-delegated' | 'hs256';

/** How the service authenticates to an RFC 7662 introspection endpoint (`servers[].clientAuth`). */
export type ClientAuth = 'basic' | 'client_secret_post' | 'bearer' | 'bearer-token' | 'private_key_jwt';

/** Where the launch context of an access token lives. */
export type TokenContext =
  /** In the token's top-level claims (`sub`, `patient`, `fhirUser`, `client_id`, `scope`), as SMART servers do. */
  | 'claims'
  /**
   * As smart-launcher-v2 signs its access tokens: `scope`, `client_id`, `fhirUser` and a nested `context` object
   * (`{ patient, need_patient_banner }`), no `sub` and no top-level `patient`. Its introspection answer spreads
   * `context` to the top level (so `patient` is there) and has no `sub` or `iss`.
   */
  | 'launcher-v2';

export type Verification =
  | { readonly mode: 'fhir-delegated' }
  | {
      readonly mode: 'jwks';
      /** Pin the public key inline (`servers[].jwks`); the served `jwksUri` is configured too, as the fallback. */
      readonly pinned: boolean;
      /** Configure `issuer` (checked by the service). */
      readonly checkIssuer: boolean;
    }
  | { readonly mode: 'introspection'; readonly clientAuth: ClientAuth }
  | { readonly mode: 'hs256' };

/** One FHIR base of the EHR (a tenant of a multi-tenant EHR, or a launcher's "sim" URL) and its authorization server. */
export interface TenantConvention {
  /** Short id, `[a-z0-9-]+`; the service's `servers[].id` is `<ehr id>-<tenant id>`. */
  readonly id: string;
  /** Path of the FHIR base on the EHR's FHIR origin, e.g. `/api/FHIR/R4` (no trailing slash). */
  readonly fhirPath: string;
  /** Path prefix of this tenant's OAuth endpoints on the authorization origin, e.g. `/oauth2`. */
  readonly authPath: string;
  /** How the service is configured to verify the app's tokens for this base. */
  readonly verification: Verification;
  /** Where the launch context of this tenant's access tokens lives. */
  readonly tokenContext: TokenContext;
}

export type AccessTokenFormat =
  /** Random opaque strings (no structure); only the EHR can say what they grant. */
  | 'opaque'
  /** JWTs signed with the authorization server's ES384 key (published at its `jwks_uri`). */
  | 'jwt-es384'
  /** JWTs signed HS256 with a shared secret, without `iss` or `aud` (a development launcher). */
  | 'hs256';

/** How the EHR's CDS client proves who it is to the CDS service. */
export interface CdsSigning {
  readonly alg: 'RS384' | 'ES384';
  /**
   * Where the service finds the public key:
   * - `jku-served`: the JWT names the EHR's JWKS URL in `jku` (the service allowlists it and also has it as `jwksUrl`);
   * - `jwks-url`: no `jku`; the service has the EHR's JWKS URL configured (`jwksUrl`);
   * - `jku-unreachable-pinned`: the JWT names a `jku` nobody answers at; the service has the key pinned (`jwks`).
   */
  readonly keySource: 'jku-served' | 'jwks-url' | 'jku-unreachable-pinned';
  /** Extra claims: `sub` (the CDS client id) and `nbf` (5 minutes before `iat`), as Epic documents. */
  readonly subAndNbf: boolean;
}

export interface EhrConvention {
  /** `[a-z0-9-]+`: names the CDS client entry, the servers[] entries and the artefacts. */
  readonly id: string;
  readonly label: string;
  readonly accessTokens: AccessTokenFormat;
  /** Media type of the EHR's FHIR answers, and the `Accept` it sends on its own FHIR requests. */
  readonly fhirMediaType: 'application/fhir+json' | 'application/json+fhir';
  /** The authorization server on its own origin (another port), as Oracle Health's is on another host. */
  readonly separateAuthOrigin: boolean;
  /** Launch ids: random opaque strings, or base64url JSON of the launch (smart-launcher-v2 encodes its launch so). */
  readonly launchIds: 'opaque' | 'encoded';
  readonly tenants: readonly TenantConvention[];
  readonly cds: {
    readonly signing: CdsSigning;
    /** `iss` of its CDS JWTs: the first tenant's FHIR base (Epic: "the FHIR endpoint of the organization") or its origin. */
    readonly issuer: 'fhir-base' | 'origin';
    /** `sub` of its CDS JWTs when `signing.subAndNbf` (the CDS client id the service was registered under). */
    readonly clientId: string;
    /** Path of its CDS JWKS on the FHIR origin. */
    readonly jwksPath: string;
    /** The coding of the orderable the EHR puts in `draftOrders` for a left hip X-ray. */
    readonly hipXrayOrder: Coding;
    /** The EHR's own name of that orderable (`code.text`; a CPT coding carries no descriptor, which is AMA copyright). */
    readonly hipXrayOrderText: string;
    /** Which prefetch keys the EHR fills: none, a few (the service fetches the rest), or all of them. */
    readonly prefetch: 'none' | 'partial' | 'full';
    /** Scope of the `fhirAuthorization` token it hands the service (SMART v1 or v2 syntax, as the EHR speaks). */
    readonly fhirAuthorizationScope: string;
  };
}

/** What an access token of the EHR grants (the authorization server's record; also its introspection answer). */
export interface Grant {
  readonly tenant: string;
  /** `sub`: the user (hashed id) or, for the CDS service's token, its client id. */
  readonly sub: string;
  readonly clientId: string;
  readonly scope: string;
  readonly patient?: string;
  readonly fhirUser?: string;
  readonly appContext?: string;
  /** Seconds since the epoch. */
  readonly iat: number;
  readonly exp: number;
}

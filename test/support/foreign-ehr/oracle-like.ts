/**
 * "jku-jsonfhir": an Oracle Health (Cerner Millennium)-like EHR, modelled on Oracle's public documentation
 * (docs.oracle.com "Millennium Platform APIs" → "FHIR R4 APIs": "R4 Overview", "Service Root URL",
 * "ServiceRequest"; and the tenant's published `.well-known/smart-configuration`):
 * - FHIR answers carry `Content-Type: application/json+fhir` (as the R4 overview's examples show) and the EHR's own
 *   FHIR requests send `Accept: application/json+fhir`; the base is per tenant (`/r4/{tenant id}`).
 * - The authorization server is on another origin than the FHIR server (authorization.cerner.com vs
 *   fhir-ehr.cerner.com), per tenant under `/tenants/{tenant id}/protocols/oauth2/profiles/smart-v1` (the real
 *   token endpoint also names the FHIR host; one prefix is kept here), advertises `introspection_endpoint` and
 *   `private_key_jwt`; access tokens are asymmetric JWTs (ES384 here) with `iss`, `aud`, `sub`, `patient`, `scope`.
 * - Orders are coded with the tenant's order catalogue, code set 200
 *   (`https://fhir.cerner.com/{tenant id}/codeSet/200`, `userSelected`), which a site maps with its own ConceptMap
 *   (`ORDER_CODE_MAPS_DIR`).
 * - The CDS client names its JWKS in `jku`, at a URL the service cannot reach (a locked-down network); the service
 *   has the key pinned in cds-clients.json (`jwks`) with the `jku` allowlisted.
 * - CDS calls fill only some prefetch keys; the service reads the rest from the `application/json+fhir` server.
 * Four tenants, one per way the service checks the app's tokens: `jwks` with the key pinned (no `aud` check),
 * `introspection` with a `private_key_jwt` client assertion, `introspection` with `client_secret_post`, and
 * `fhir-delegated` (the token read-checked against the `application/json+fhir` server).
 * The tenant ids are made up; nothing here is Oracle code.
 */
import type { EhrConvention, TenantConvention } from './types.ts';

export const ORACLE_TENANTS = {
  jwks: '5f1e0a10-7c3b-4c21-9d1e-000000000a01',
  introspectKey: '5f1e0a10-7c3b-4c21-9d1e-000000000a02',
  introspectSecret: '5f1e0a10-7c3b-4c21-9d1e-000000000a03',
  delegated: '5f1e0a10-7c3b-4c21-9d1e-000000000a04',
} as const;

/** The order catalogue code set of the first tenant, and the synthetic code of its left-hip X-ray orderable. */
export const ORACLE_ORDER_SYSTEM = `https://fhir.cerner.com/${ORACLE_TENANTS.jwks}/codeSet/200`;
export const ORACLE_HIP_XRAY_CODE = '2799112';

const tenant = (id: string, tenantId: string, verification: TenantConvention['verification']): TenantConvention => ({
  id,
  fhirPath: `/r4/${tenantId}`,
  authPath: `/tenants/${tenantId}/protocols/oauth2/profiles/smart-v1`,
  verification,
  tokenContext: 'claims',
});

export const ORACLE_LIKE: EhrConvention = {
  id: 'jku-jsonfhir',
  label: 'Oracle Health-like EHR (application/json+fhir, pinned CDS key)',
  accessTokens: 'jwt-es384',
  fhirMediaType: 'application/json+fhir',
  separateAuthOrigin: true,
  launchIds: 'opaque',
  tenants: [
    tenant('jwks', ORACLE_TENANTS.jwks, { mode: 'jwks', pinned: true, checkIssuer: true }),
    tenant('introspect-key', ORACLE_TENANTS.introspectKey, { mode: 'introspection', clientAuth: 'private_key_jwt' }),
    tenant('introspect-secret', ORACLE_TENANTS.introspectSecret, { mode: 'introspection', clientAuth: 'client_secret_post' }),
    tenant('delegated', ORACLE_TENANTS.delegated, { mode: 'fhir-delegated' }),
  ],
  cds: {
    signing: { alg: 'ES384', keySource: 'jku-unreachable-pinned', subAndNbf: false },
    issuer: 'origin',
    clientId: 'frcds',
    jwksPath: '/cds/jwks.json',
    hipXrayOrder: { system: ORACLE_ORDER_SYSTEM, code: ORACLE_HIP_XRAY_CODE, userSelected: true },
    hipXrayOrderText: 'XR Hip Left 1 View',
    prefetch: 'partial',
    fhirAuthorizationScope: [
      'patient/Patient.rs', 'patient/ImagingStudy.rs', 'patient/Observation.rs', 'patient/Condition.rs',
      'patient/MedicationRequest.rs', 'patient/MedicationStatement.rs', 'patient/FamilyMemberHistory.rs',
    ].join(' '),
  },
};

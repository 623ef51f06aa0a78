/**
 * "cpt-opaque": an Epic-like EHR, modelled on Epic's public developer documentation (fhir.epic.com, "Documentation"
 * → "CDS Hooks" → "Trusting CDS Clients", and "OAuth 2.0 Specification"):
 * - CDS JWTs: `alg` RS384 (Epic's default), header `jku` naming the organisation's public-key set, `kid`, `typ: JWT`;
 *   claims `iss` = the organisation's FHIR endpoint, `sub` = the CDS client id, `aud` = the service URL called,
 *   `iat`, `exp`, `jti`, and `nbf` set 5 minutes before `iat`. The service trusts it by its JWKS URL (`jwksUrl`,
 *   also allowlisted as `jku`).
 * - Orders: the imaging orderable carries a CPT code only (`http://www.ama-assn.org/go/cpt`, 73502 hip X-ray; no
 *   descriptor, which is AMA copyright, only the EHR's own orderable name in `code.text`);
 *   the service maps it with its shipped CPT ConceptMap.
 * - Authorization: `/oauth2/authorize` and `/oauth2/token` beside the FHIR endpoint (`/api/FHIR/R4`), PKCE S256,
 *   `aud` = the FHIR base, EHR launch with an opaque `launch`; access tokens are opaque strings, so the service
 *   checks the app's token by reading `Patient/{id}` with it (`fhir-delegated`).
 * - CDS calls send no prefetch: the service reads the chart with `fhirServer` + `fhirAuthorization` (an opaque
 *   token limited to the patient, SMART v1 `.read` scopes).
 * Nothing here is Epic code; paths are shaped like Epic's so a reader recognises them.
 */
import type { EhrConvention } from './types.ts';

export const EPIC_LIKE: EhrConvention = {
  id: 'cpt-opaque',
  label: 'Epic-like EHR (CPT orders, opaque tokens)',
  accessTokens: 'opaque',
  fhirMediaType: 'application/fhir+json',
  separateAuthOrigin: false,
  launchIds: 'opaque',
  tenants: [
    {
      id: 'prod',
      fhirPath: '/interconnect-fhir-oauth/api/FHIR/R4',
      authPath: '/interconnect-fhir-oauth/oauth2',
      verification: { mode: 'fhir-delegated' },
      tokenContext: 'claims',
    },
  ],
  cds: {
    signing: { alg: 'RS384', keySource: 'jku-served', subAndNbf: true },
    issuer: 'fhir-base',
    clientId: 'frcds-cds-hooks',
    jwksPath: '/interconnect-fhir-oauth/api/epic/2019/Security/Open/PublicKeys/530013/frcds',
    hipXrayOrder: { system: 'http://www.ama-assn.org/go/cpt', code: '73502' },
    hipXrayOrderText: 'XR HIP 2-3 VIEWS LEFT',
    prefetch: 'none',
    fhirAuthorizationScope: [
      'patient/Patient.read', 'patient/ImagingStudy.read', 'patient/Observation.read', 'patient/Condition.read',
      'patient/MedicationRequest.read', 'patient/MedicationStatement.read', 'patient/FamilyMemberHistory.read',
    ].join(' '),
  },
};

/**
 * "hs256-launcher": a development launcher modelled on smart-launcher-v2 (github.com/smart-on-fhir/smart-launcher-v2,
 * backend/routes/auth/token.ts, introspect.ts, fhir/proxy.ts, fhir/.well-known/smart-configuration.ts), paired with
 * a CDS client like the public CDS Hooks sandbox (ES384 JWTs, every prefetch template filled):
 * - access tokens are HS256 JWTs signed with the launcher's secret, with `exp`/`iat` but no `iss` or `aud`;
 * - launch options live in the URL (`/v/r4/sim/{base64url options}/fhir`), and the `launch` id is itself base64url
 *   JSON of the launch (who, which patient, the CDS link's `appContext`);
 * - the introspection endpoint (RFC 7662) requires `Authorization: Bearer <a token it signed>`;
 * - the FHIR proxy rewrites the upstream server's URLs in its answers to its own base.
 * smart-launcher-v2 signs `scope`, `client_id`, `fhirUser` and a nested `context` (`{patient, …}`) into its access
 * tokens — no `sub` and no top-level `patient` — and its introspection answer spreads `context` to the top level.
 * That shape is the `plain` tenant here, which the service checks by introspection (`clientAuth: bearer-token`).
 * The `sim-claims` tenant instead writes `sub`, `patient`, `fhirUser` and `client_id` as top-level claims: what the
 * service's `hs256` mode reads (`accessFromClaims`), so that its tokens are limited to their patient.
 * Nothing here is launcher code.
 */
import type { EhrConvention } from './types.ts';

/** The launcher's URL-encoded launch options of the `sim-claims` tenant. */
export const LAUNCHER_SIM = Buffer.from(JSON.stringify({ launch_ehr: 1, token_context: 'claims' })).toString('base64url');

export const LAUNCHER_LIKE: EhrConvention = {
  id: 'hs256-launcher',
  label: 'smart-launcher-v2-like launcher with a CDS Hooks sandbox-like client (HS256 tokens)',
  accessTokens: 'hs256',
  fhirMediaType: 'application/fhir+json',
  separateAuthOrigin: false,
  launchIds: 'encoded',
  tenants: [
    { id: 'sim-claims', fhirPath: `/v/r4/sim/${LAUNCHER_SIM}/fhir`, authPath: `/v/r4/sim/${LAUNCHER_SIM}/auth`, verification: { mode: 'hs256' }, tokenContext: 'claims' },
    { id: 'plain', fhirPath: '/v/r4/fhir', authPath: '/v/r4/auth', verification: { mode: 'introspection', clientAuth: 'bearer-token' }, tokenContext: 'launcher-v2' },
  ],
  cds: {
    signing: { alg: 'ES384', keySource: 'jwks-url', subAndNbf: false },
    issuer: 'origin',
    clientId: 'cds-sandbox',
    jwksPath: '/.well-known/jwks.json',
    hipXrayOrder: { system: 'http://snomed.info/sct', code: '783628002', display: 'Plain X-ray of hip' },
    hipXrayOrderText: 'XR hip (left)',
    prefetch: 'full',
    fhirAuthorizationScope: 'patient/*.read',
  },
};

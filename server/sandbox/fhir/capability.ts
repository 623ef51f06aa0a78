/**
 * The sandbox's CapabilityStatement (`GET /sandbox/fhir/metadata`), which Medplum's router does not serve.
 * Built from the same definitions the router uses, so it lists exactly the resource types and search parameters
 * the sandbox accepts (see search.ts for what is rejected).
 * @see https://hl7.org/fhir/R4/capabilitystatement.html
 */
import type { ResourceType } from '@medplum/fhirtypes';
import type { CapabilityStatement, CapabilityStatementRestResource, CapabilityStatementRestResourceSearchParam, CapabilityStatementRestSecurity } from '@medplum/fhirtypes';
import { r4ResourceTypes, searchParamsOf } from './definitions.ts';

const RESULT_PARAMS: CapabilityStatementRestResourceSearchParam[] = [
  { name: '_count', type: 'number', documentation: 'Page size (default and ceiling in smart-config/sandbox.json).' },
  { name: '_offset', type: 'number', documentation: 'Index of the first entry of the page.' },
  { name: '_sort', type: 'string', documentation: 'Comma-separated search parameters, "-" for descending.' },
  { name: '_total', type: 'token' },
  { name: '_summary', type: 'token', documentation: 'Only "count" changes the result (no entries).' },
  { name: '_include', type: 'special' },
  { name: '_revinclude', type: 'special' },
  { name: '_elements', type: 'string' },
];

/**
 * The `rest.security` to publish when reads and searches need no token (`SANDBOX_FHIR_OPEN`): the SMART section
 * stays (writes, and apps that want a token, still use it) but its description no longer says a token is required.
 */
export function openReadsSecurity(security: CapabilityStatementRestSecurity): CapabilityStatementRestSecurity {
  return {
    ...security,
    description: 'Reads and searches need no token (interop demo mode, SANDBOX_FHIR_OPEN=true, loopback only); writes need a SMART App Launch 2 access token from the sandbox authorization server (demo only). A request that carries a token is limited to its scopes. Discovery: .well-known/smart-configuration under this base.',
  };
}

/** `security`: the SMART on FHIR section (oauth-uris extension) when the sandbox authorization server guards the server. */
export function buildCapabilityStatement(fhirBaseUrl: string, version: string, date: string, security?: CapabilityStatementRestSecurity): CapabilityStatement {
  const resource: CapabilityStatementRestResource[] = r4ResourceTypes().map((type) => ({
    type: type as ResourceType,
    profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
    interaction: (['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'] as const).map((code) => ({ code })),
    versioning: 'versioned',
    readHistory: true,
    updateCreate: true,
    conditionalCreate: true,
    conditionalUpdate: true,
    conditionalDelete: 'single',
    searchParam: Object.values(searchParamsOf(type))
      .filter((p) => p.code && p.type)
      .sort((a, b) => (a.code! < b.code! ? -1 : 1))
      .map((p) => ({ name: p.code!, type: p.type, ...(p.url ? { definition: p.url } : {}) })),
  }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date,
    publisher: 'Fracture Risk CDS contributors',
    kind: 'instance',
    software: { name: 'Fracture Risk CDS sandbox FHIR server (Medplum fhir-router, in memory)', version },
    implementation: {
      description: 'Embedded demo FHIR R4 server holding the synthetic demo cohort. Research use — synthetic data only.',
      url: fhirBaseUrl,
    },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'application/json+fhir', 'json'],
    patchFormat: ['application/json-patch+json'],
    rest: [
      {
        mode: 'server',
        ...(security ? { security } : {}),
        documentation: 'Searches page with _count/_offset; unknown search parameters are rejected with 400; transactions are atomic.',
        resource,
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
        searchParam: RESULT_PARAMS,
      },
    ],
  };
}

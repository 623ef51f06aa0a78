/**
 * The three CDS services this product offers (discovery, CDS Hooks 2.0 §Discovery) and their prefetch templates.
 *
 * Templates use only 2.0 tokens (`{{context.patientId}}`) and 2.0 query forms (instance read; type search on the
 * patient with token `code` equality and `_sort`). They ask for exactly what `server/risk/factors.ts` `loadChart`
 * reads, so a client that honours every template needs no FHIR call back; a client that omits a key gets it fetched
 * with `fhirServer` + `fhirAuthorization` ({@link HookFhirSource}). `serviceRequests` and `dxaResults` serve the card's
 * check of existing care (server/orders/care-status.ts). `|` is percent-encoded (see the SMART note in
 * the standards reference: some proxies collapse `//` in unencoded query strings).
 * @see https://cds-hooks.hl7.org/2.0/#prefetch-template
 */
import { loadValueSets } from '../fhir/valuesets.ts';
import { dxaResultTokens, OPEN_REFERRAL_STATUSES } from '../orders/care-status.ts';
import type { ServiceDefinition } from './types.ts';

/** LOINC codes of the Observations QFracture needs (weight, height, BMI, smoking, alcohol) — as factors.ts reads them. */
export const FACTOR_LOINC = ['29463-7', '8302-2', '39156-5', '72166-2', '74013-4'] as const;

/** `system|code` of the DXA results (ValueSet `dxa-result`) that care status reads: the `dxaResults` template asks for exactly these. */
export const DXA_RESULT_TOKENS: readonly string[] = Object.freeze(dxaResultTokens(loadValueSets()));

const enc = (s: string): string => encodeURIComponent(s);

/** Prefetch key → template. Keys are also what {@link HookFhirSource} looks up per resource type. */
export const PREFETCH: Readonly<Record<string, string>> = Object.freeze({
  patient: 'Patient/{{context.patientId}}',
  imagingStudies: 'ImagingStudy?patient={{context.patientId}}&_sort=-started',
  observations: `Observation?patient={{context.patientId}}&code=${FACTOR_LOINC.map((c) => enc(`http://loinc.org|${c}`)).join(',')}`,
  conditions: 'Condition?patient={{context.patientId}}',
  medicationRequests: 'MedicationRequest?patient={{context.patientId}}',
  medicationStatements: 'MedicationStatement?patient={{context.patientId}}',
  familyHistory: 'FamilyMemberHistory?patient={{context.patientId}}',
  // Existing care (server/orders/care-status.ts): open referrals and orders, DXA results. Without them the card
  // cannot tell whether a referral or DXA already exists, and says so instead of suggesting one.
  serviceRequests: `ServiceRequest?patient={{context.patientId}}&status=${OPEN_REFERRAL_STATUSES.join(',')}`,
  dxaResults: `Observation?patient={{context.patientId}}&code=${DXA_RESULT_TOKENS.map(enc).join(',')}`,
});

export const SERVICE_IDS = { orderSelect: 'fracture-risk-order-select', orderSign: 'fracture-risk-order-sign', patientView: 'fracture-risk-patient-view' } as const;

const NOTICE = 'Research use — trained on synthetic data.';

export const SERVICES: readonly ServiceDefinition[] = [
  {
    hook: 'order-select',
    id: SERVICE_IDS.orderSelect,
    title: 'Fracture risk at imaging order (select)',
    description: `When a bone-relevant imaging order is selected (hip, pelvis, femur or spine radiograph; spine, chest, abdomen or pelvis CT; DXA or VFA; coded in CPT, LOINC, SNOMED CT or a site's mapped local codes), shows the patient's 10-year hip and major osteoporotic fracture risk with its 95 % interval (from the latest hip radiograph plus QFracture-2012 clinical factors) and suggests FLS referral / DXA. Speaks only at or above the configured risk tier. ${NOTICE}`,
    prefetch: { ...PREFETCH },
  },
  {
    hook: 'order-sign',
    id: SERVICE_IDS.orderSign,
    title: 'Fracture risk at imaging order (sign)',
    description: `At signing of a bone-relevant imaging order (hip, pelvis, femur or spine radiograph; spine, chest, abdomen or pelvis CT; DXA or VFA), shows the patient's 10-year fracture risk with its 95 % interval and suggests FLS referral / DXA. Speaks only at or above the configured risk tier. ${NOTICE}`,
    prefetch: { ...PREFETCH },
  },
  {
    hook: 'patient-view',
    id: SERVICE_IDS.patientView,
    title: 'Fracture risk on chart open',
    description: `On opening a chart, shows the 10-year fracture risk when it is high, or when it has changed since the service last spoke for this patient (new radiograph analysed, tier changed). Silent otherwise. ${NOTICE}`,
    prefetch: { ...PREFETCH },
  },
];

export const serviceById = (id: string): ServiceDefinition | undefined => SERVICES.find((s) => s.id === id);

/**
 * ServiceRequest builders for the two actions the product suggests after a fracture-risk estimate: a referral to
 * the fracture liaison service (FLS) and a DXA (bone densitometry) order.
 *
 * PURE TypeScript on purpose — no Node imports, no I/O — so the same builders run in the CDS Hooks service
 * (card suggestions, `server/cds/`), in the FLS worklist (`server/fls/`) and in the SMART app bundle (`client/`).
 * Every resource they return claims and satisfies the matching profile in `fhir-profiles/structuredefinitions/`
 * (`frcds-fls-referral`, `frcds-dxa-order`); `server/orders/service-requests.test.ts` checks that against the
 * StructureDefinitions' required elements and fixed codes.
 *
 * Status `draft`: a CDS Hooks `create` action proposes a resource the clinician still has to sign
 * (CDS Hooks 2.0 §Action, https://cds-hooks.hl7.org/2.0/#action). A caller that places the order itself
 * (the SMART app after a click) may pass `status: 'active'`.
 * @see https://hl7.org/fhir/R4/servicerequest.html
 */
import type { CodeableConcept, Coding, Reference, Resource, ServiceRequest } from '@medplum/fhirtypes';

export type { ServiceRequest } from '@medplum/fhirtypes';

/** Canonical base of the project's conformance resources (`.invalid`: not resolvable, research prototype). */
export const FRCDS_CANONICAL = 'https://fracture-risk-cds.invalid/fhir';

export const FLS_REFERRAL_PROFILE = `${FRCDS_CANONICAL}/StructureDefinition/frcds-fls-referral`;
export const DXA_ORDER_PROFILE = `${FRCDS_CANONICAL}/StructureDefinition/frcds-dxa-order`;

/** The project's CodeSystem for service codes no international terminology names precisely (`fhir-profiles/codesystems/`). */
export const FRCDS_SERVICE_CODES = `${FRCDS_CANONICAL}/CodeSystem/frcds-service-request-codes`;

export const SNOMED = 'http://snomed.info/sct';

/** `ServiceRequest.code` of an FLS referral: the project's code (no SNOMED CT International concept names the FLS). */
export const FLS_REFERRAL_CODE: Readonly<Coding> = Object.freeze({
  system: FRCDS_SERVICE_CODES,
  code: 'fls-referral',
  display: 'Referral to fracture liaison service',
});

/** `ServiceRequest.code` of a DXA order: SNOMED CT 312681000 (also in ValueSet `imaging-orders`). */
export const DXA_CODE: Readonly<Coding> = Object.freeze({ system: SNOMED, code: '312681000', display: 'Bone density scan' });

/** Categories from the R4 example ValueSet `servicerequest-category` / SNOMED CT. */
export const REFERRAL_CATEGORY: Readonly<Coding> = Object.freeze({ system: SNOMED, code: '3457005', display: 'Patient referral' });
export const IMAGING_CATEGORY: Readonly<Coding> = Object.freeze({ system: SNOMED, code: '363679005', display: 'Imaging' });

export type ServiceRequestStatus = 'draft' | 'active';

/** What both builders take. References are `Type/id` strings (relative) or absolute URLs. */
export interface ServiceRequestInput {
  /** FHIR `Patient.id` (bare id, not `Patient/…`). */
  patientId: string;
  /**
   * The RiskAssessment that motivates the request, e.g. `RiskAssessment/ra-123` → `supportingInfo` (R4
   * `reasonReference` may not point at a RiskAssessment; `supportingInfo` may point at anything).
   */
  riskAssessmentRef?: string;
  /** Who asks, e.g. `Practitioner/demo-clinician` → `requester`. */
  requesterRef?: string;
  /** Free-text reason → `reasonCode.text`, e.g. "10-year hip fracture risk 14% (95% interval 10–19%)". */
  reason?: string;
  /** Encounter in which the request is made → `encounter`. */
  encounterRef?: string;
  /** Resource id, when the caller wants a stable one (e.g. a `PUT`). */
  id?: string;
  /** Default `draft` (a proposal awaiting signature). */
  status?: ServiceRequestStatus;
  /** ISO 8601 date-time; default: none (the EHR stamps it when signed). */
  authoredOn?: string;
  /** Free-text note (e.g. the research-use notice) → `note[0].text`. */
  note?: string;
}

/** Thrown for inputs no valid ServiceRequest can be made from (a programming error in the caller). */
export class ServiceRequestInputError extends Error {
  override readonly name = 'ServiceRequestInputError';
}

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
/** `Type/id` or an absolute http(s) URL: what a FHIR Reference.reference may hold here. */
const REFERENCE = /^(?:[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}|https?:\/\/\S+)$/;

function ref<T extends Resource>(value: string, field: string, type?: T['resourceType']): Reference<T> {
  if (!REFERENCE.test(value)) throw new ServiceRequestInputError(`${field} must be "Type/id" or an absolute URL, got "${value}"`);
  if (type && !value.startsWith(`${type}/`) && !value.includes(`/${type}/`)) {
    throw new ServiceRequestInputError(`${field} must reference a ${type}, got "${value}"`);
  }
  return { reference: value };
}

function common(input: ServiceRequestInput, profile: string, code: Coding, category: Coding): ServiceRequest {
  if (!FHIR_ID.test(input.patientId)) throw new ServiceRequestInputError(`patientId must be a FHIR id, got "${input.patientId}"`);
  if (input.id !== undefined && !FHIR_ID.test(input.id)) throw new ServiceRequestInputError(`id must be a FHIR id, got "${input.id}"`);
  const sr: ServiceRequest = {
    resourceType: 'ServiceRequest',
    ...(input.id ? { id: input.id } : {}),
    meta: { profile: [profile] },
    status: input.status ?? 'draft',
    intent: 'order',
    category: [{ coding: [{ ...category }] }],
    priority: 'routine',
    code: { coding: [{ ...code }], text: code.display } satisfies CodeableConcept,
    subject: { reference: `Patient/${input.patientId}` },
  };
  if (input.encounterRef) sr.encounter = ref(input.encounterRef, 'encounterRef', 'Encounter');
  if (input.authoredOn) sr.authoredOn = input.authoredOn;
  if (input.requesterRef) sr.requester = ref(input.requesterRef, 'requesterRef');
  if (input.reason) sr.reasonCode = [{ text: input.reason }];
  if (input.riskAssessmentRef) sr.supportingInfo = [ref(input.riskAssessmentRef, 'riskAssessmentRef', 'RiskAssessment')];
  if (input.note) sr.note = [{ text: input.note }];
  return sr;
}

/** "Refer to fracture liaison service" — profile `frcds-fls-referral`. */
export function flsReferral(input: ServiceRequestInput): ServiceRequest {
  return common(input, FLS_REFERRAL_PROFILE, FLS_REFERRAL_CODE, REFERRAL_CATEGORY);
}

/** "Order DXA" — profile `frcds-dxa-order`. */
export function dxaOrder(input: ServiceRequestInput): ServiceRequest {
  return common(input, DXA_ORDER_PROFILE, DXA_CODE, IMAGING_CATEGORY);
}

function hasCoding(sr: Pick<ServiceRequest, 'code'>, c: Coding): boolean {
  return (sr.code?.coding ?? []).some((x) => x.system === c.system && x.code === c.code);
}

/** True for an FLS referral made by {@link flsReferral} or any ServiceRequest carrying its code. */
export function isFlsReferral(sr: Pick<ServiceRequest, 'code'>): boolean {
  return hasCoding(sr, FLS_REFERRAL_CODE);
}

/**
 * CPT codes of DXA bone densitometry and vertebral fracture assessment (codes only: CPT descriptors are AMA
 * copyright). Listed here too, not only in `fhir-profiles/conceptmaps/cpt.json`, because this module is pure (no
 * I/O) and also runs in the SMART app bundle.
 */
export const DXA_CPT_CODES: readonly string[] = Object.freeze(['77080', '77081', '77085', '77086']);
const CPT = 'http://www.ama-assn.org/go/cpt';

/** True for a DXA order (SNOMED CT 312681000, or CPT 77080/77081/77085/77086), whoever made it. */
export function isDxaOrder(sr: Pick<ServiceRequest, 'code'>): boolean {
  return hasCoding(sr, DXA_CODE) || (sr.code?.coding ?? []).some((x) => x.system === CPT && !!x.code && DXA_CPT_CODES.includes(x.code));
}

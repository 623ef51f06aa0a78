/**
 * The ServiceRequest builders against the R4 base definitions (the sandbox's validator: R4 JSON Schema +
 * StructureDefinitions) and against the project's profiles (their fixed/pattern codes and minimum cardinalities).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { CodeableConcept, ServiceRequest } from '@medplum/fhirtypes';
import { REPO_ROOT } from '../config.ts';
import { FhirValidator } from '../sandbox/fhir/validate.ts';
import { dxaOrder, flsReferral, isDxaOrder, isFlsReferral, ServiceRequestInputError, FRCDS_SERVICE_CODES } from './service-requests.ts';

interface Element { path: string; min?: number; fixedCode?: string; patternCodeableConcept?: CodeableConcept }
interface Sd { url: string; differential: { element: Element[] } }
const sd = (id: string): Sd => JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/structuredefinitions', `${id}.json`), 'utf8')) as Sd;

/** Checks the profile's own constraints: min ≥ 1 present, fixedCode equal, patternCodeableConcept codings contained. */
function checkProfile(sr: ServiceRequest, profile: Sd): void {
  assert.deepEqual(sr.meta?.profile, [profile.url]);
  for (const e of profile.differential.element) {
    const key = e.path.split('.')[1];
    if (!key) continue;
    const value = (sr as unknown as Record<string, unknown>)[key];
    if (e.min) assert.ok(value !== undefined && (!Array.isArray(value) || value.length >= e.min), `${e.path} min ${e.min}`);
    if (e.fixedCode) assert.equal(value, e.fixedCode, e.path);
    if (e.patternCodeableConcept) {
      const concepts = (Array.isArray(value) ? value : [value]) as CodeableConcept[];
      for (const want of e.patternCodeableConcept.coding ?? []) {
        assert.ok(concepts.some((c) => c.coding?.some((x) => x.system === want.system && x.code === want.code)), `${e.path} carries ${want.system}|${want.code}`);
      }
    }
  }
}

describe('ServiceRequest builders', () => {
  const validator = new FhirValidator();
  const full = { patientId: 'demo-a-022', riskAssessmentRef: 'RiskAssessment/ra-1', requesterRef: 'Practitioner/demo-clinician', encounterRef: 'Encounter/e1', reason: '10-yr hip fracture risk 14%', authoredOn: '2026-03-02T10:00:00Z', note: 'Research use — trained on synthetic data' };

  for (const [name, build, profileId] of [['flsReferral', flsReferral, 'frcds-fls-referral'], ['dxaOrder', dxaOrder, 'frcds-dxa-order']] as const) {
    test(`${name}: minimal and full inputs validate against R4 and follow ${profileId}`, () => {
      for (const input of [{ patientId: 'demo-a-001' }, full, { ...full, status: 'active' as const, id: 'sr-1' }]) {
        const sr = build(input);
        validator.validate(sr);
        checkProfile(sr, sd(profileId));
        assert.equal(sr.subject.reference, `Patient/${input.patientId}`);
        assert.equal(sr.status, 'status' in input ? input.status : 'draft');
      }
      const sr = build(full);
      assert.deepEqual(sr.supportingInfo, [{ reference: 'RiskAssessment/ra-1' }]);
      assert.equal(sr.requester?.reference, 'Practitioner/demo-clinician');
      assert.equal(sr.reasonCode?.[0]?.text, full.reason);
    });
  }

  test('recognisers tell the two apart', () => {
    assert.ok(isFlsReferral(flsReferral({ patientId: 'p' })) && !isDxaOrder(flsReferral({ patientId: 'p' })));
    assert.ok(isDxaOrder(dxaOrder({ patientId: 'p' })) && !isFlsReferral(dxaOrder({ patientId: 'p' })));
  });

  test('isDxaOrder also knows the CPT codes of DXA and VFA (77080, 77081, 77085, 77086), not other CPT codes', () => {
    const cpt = (code: string) => ({ code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code }] } });
    for (const c of ['77080', '77081', '77085', '77086']) assert.ok(isDxaOrder(cpt(c)), c);
    for (const c of ['73502', '77078', '71250']) assert.ok(!isDxaOrder(cpt(c)), c);
    assert.ok(!isDxaOrder({ code: { coding: [{ system: 'http://loinc.org', code: '77080' }] } }), 'the code alone is not enough');
    assert.ok(isDxaOrder({ code: { coding: [{ system: 'urn:local', code: 'DXA' }, { system: 'http://snomed.info/sct', code: '312681000' }] } }), 'any coding');
  });

  test('bad inputs are typed errors, not invalid resources', () => {
    assert.throws(() => flsReferral({ patientId: 'Patient/x' }), ServiceRequestInputError);
    assert.throws(() => flsReferral({ patientId: 'p', riskAssessmentRef: 'Observation/1' }), ServiceRequestInputError);
    assert.throws(() => dxaOrder({ patientId: 'p', requesterRef: 'not a ref' }), ServiceRequestInputError);
    assert.throws(() => dxaOrder({ patientId: 'p', id: 'bad id' }), ServiceRequestInputError);
  });

  test('the FLS code is defined in the project CodeSystem', () => {
    const cs = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/codesystems/frcds-service-request-codes.json'), 'utf8')) as { url: string; concept: { code: string }[] };
    assert.equal(cs.url, FRCDS_SERVICE_CODES);
    assert.ok(cs.concept.some((c) => c.code === 'fls-referral'));
  });
});

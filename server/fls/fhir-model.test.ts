import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, test } from 'node:test';
import type { Condition, MedicationRequest } from '@medplum/fhirtypes';
import { derivedId, hasImminentRisk, idOf, isFragilityFracture, summarise, worklistStatusOf } from './fhir-model.ts';
import { isOsteoporosisTreatment } from './triage.ts';
import { REPO_ROOT } from '../config.ts';
import { loadValueSets } from '../fhir/valuesets.ts';
import { PATHWAY_EVENT_URL } from './pathway.ts';
import { ALL_PATHWAY_STEPS, FLS_PATHWAY_SYSTEM, PATHWAY_STEP_LABELS, TREATMENT_OUTCOMES } from './types.ts';

const fracture = (onset: string, coding: { system: string; code: string }, extra: Partial<Condition> = {}): Condition => ({
  resourceType: 'Condition', subject: { reference: 'Patient/p' }, code: { coding: [coding] }, onsetDateTime: onset, ...extra,
});
const SNOMED_HIP = { system: 'http://snomed.info/sct', code: '5913000' };
const SNOMED_WRIST = { system: 'http://snomed.info/sct', code: '65966004' };
const ICD_HIP = { system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'S72.001A' };
const ASTHMA = { system: 'http://snomed.info/sct', code: '195967001' };

test('imminent risk: a fragility-site fracture within the window before the assessment, and only then', () => {
  const at = '2026-11-28T10:00:00Z';
  assert.equal(hasImminentRisk([fracture('2026-10-01', SNOMED_HIP)], at, 730), true);
  assert.equal(hasImminentRisk([fracture('2024-11-28', SNOMED_WRIST)], at, 730), true, 'the first day of the window counts');
  assert.equal(hasImminentRisk([fracture('2024-11-27', SNOMED_WRIST)], at, 730), false, 'a day older does not');
  assert.equal(hasImminentRisk([fracture('2026-12-01', SNOMED_HIP)], at, 730), false, 'after the assessment: not known then');
  assert.equal(hasImminentRisk([fracture('2026-06-01', ICD_HIP)], at, 730), true, 'ICD-10-CM coded');
  assert.equal(hasImminentRisk([fracture('2026-06-01', ASTHMA)], at, 730), false, 'not a fracture');
  const eie = fracture('2026-06-01', SNOMED_HIP, { verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'entered-in-error' }] } });
  assert.equal(isFragilityFracture(eie), false);
  assert.equal(hasImminentRisk([eie], at, 730), false);
  const recordedOnly: Condition = { resourceType: 'Condition', subject: { reference: 'Patient/p' }, code: { coding: [SNOMED_HIP] }, recordedDate: '2026-01-05' };
  assert.equal(hasImminentRisk([recordedOnly], at, 730), true, 'no onset: the recorded date is used');
  assert.equal(hasImminentRisk([fracture('2026-06-01', SNOMED_HIP)], at, 30), false, 'the window is a setting');
});

test('current osteoporosis treatment: ValueSet code or ingredient name, active only', () => {
  const med = (cc: MedicationRequest['medicationCodeableConcept'], status: MedicationRequest['status'] = 'active'): MedicationRequest => ({
    resourceType: 'MedicationRequest', status, intent: 'order', subject: { reference: 'Patient/p' }, medicationCodeableConcept: cc,
  });
  assert.equal(isOsteoporosisTreatment(med({ coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '46041' }] })), true, 'alendronate (RxNorm)');
  assert.equal(isOsteoporosisTreatment(med({ coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '993449' }] })), true, 'denosumab (RxNorm)');
  assert.equal(isOsteoporosisTreatment(med({ text: 'Romosozumab 210 mg SC monthly' })), true, 'by name');
  assert.equal(isOsteoporosisTreatment(med({ coding: [{ system: 'https://dmd.nhs.uk', code: 'x', display: 'Zoledronic acid 5mg/100ml infusion' }] })), true, 'other terminology, by display');
  assert.equal(isOsteoporosisTreatment(med({ coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '46041' }] }, 'stopped')), false, 'stopped');
  assert.equal(isOsteoporosisTreatment(med({ coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '8640', display: 'prednisone' }] })), false, 'a corticosteroid is not a treatment');
});

test('ids and references', () => {
  assert.equal(derivedId('fls-triage', 'frcds-abc'), 'fls-triage-frcds-abc');
  const long = derivedId('fls-referral', 'x'.repeat(80));
  assert.match(long, /^fls-referral-[0-9a-f]{40}$/);
  assert.equal(long, derivedId('fls-referral', 'x'.repeat(80)), 'stable');
  assert.equal(idOf('Patient/p-1', 'Patient'), 'p-1');
  assert.equal(idOf('https://ehr.example.org/fhir/Patient/p-1/_history/3', 'Patient'), 'p-1');
  assert.equal(idOf('Group/p-1', 'Patient'), undefined);
  assert.equal(worklistStatusOf({ resourceType: 'Task', status: 'ready', intent: 'order' }), 'requested');
  assert.equal(worklistStatusOf({ resourceType: 'Task', status: 'in-progress', intent: 'order' }), 'accepted');
  assert.equal(worklistStatusOf({ resourceType: 'Task', status: 'rejected', intent: 'order' }), 'dismissed');
  assert.equal(worklistStatusOf({ resourceType: 'Task', status: 'entered-in-error', intent: 'order' }), undefined);
});

test('the fls-pathway CodeSystem, its ValueSet and the event extension match the code (steps, treatment outcomes, URLs)', () => {
  type Concept = { code: string; display: string; concept?: Concept[] };
  const cs = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/codesystems/fls-pathway.json'), 'utf8')) as { url: string; concept: Concept[] };
  assert.equal(cs.url, FLS_PATHWAY_SYSTEM);
  const group = (code: string): Concept[] => cs.concept.find((c) => c.code === code)?.concept ?? [];
  assert.deepEqual(group('pathway-step').map((c) => [c.code, c.display]), ALL_PATHWAY_STEPS.map((s) => [s, PATHWAY_STEP_LABELS[s]]));
  assert.deepEqual(group('treatment-outcome').map((c) => [c.code, c.display]), Object.entries(TREATMENT_OUTCOMES));
  const vs = loadValueSets();
  for (const s of ALL_PATHWAY_STEPS) assert.ok(vs.has('fls-pathway-step', FLS_PATHWAY_SYSTEM, s), s);
  const ext = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/structuredefinitions/fls-pathway-event.json'), 'utf8')) as { url: string };
  assert.equal(ext.url, PATHWAY_EVENT_URL);
});

describe('summarise: warnings of a RiskAssessment', () => {
  it('leaves out the decision note (first, with a mitigation) and the use statement (last)', () => {
    const ra = {
      resourceType: 'RiskAssessment' as const,
      status: 'final' as const,
      subject: { reference: 'Patient/p1' },
      mitigation: 'Refer to the fracture liaison service.',
      note: [{ text: 'High risk. Above the 3% hip-fracture treatment threshold.' }, { text: 'Image quality: underexposed.' }, { text: 'Research use.' }],
    };
    assert.deepEqual(summarise(ra).warnings, ['Image quality: underexposed.']);
    const older = { ...ra, mitigation: undefined };
    assert.deepEqual(summarise(older).warnings, ['High risk. Above the 3% hip-fracture treatment threshold.', 'Image quality: underexposed.']);
  });
});

/**
 * Clinical factors read over HTTP from the embedded FHIR sandbox seeded with the demo cohort: the QFracture-2012
 * linear predictors equal the generator's EHR values (truth.json `ehr.qf_lp_*`, computed independently in Python
 * from the same chart view), and every factor says where it came from or that a default was used.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Condition, Observation, Patient, Resource } from '@medplum/fhirtypes';
import { HttpFhirClient, FhirNotFoundError, FhirTimeoutError, FhirUnavailableError, type FhirDataSource } from '../fhir/client.ts';
import { DEMO_DIR, startDemoStack, type DemoStack, type DemoTruthPatient } from '../../test/support/demo-stack.ts';
import { alcoholCategory, extractFactors, FactorError, loadChart, referencesPatient, type Chart } from './factors.ts';
import { linearPredictor } from './qfracture.ts';

const truth = (JSON.parse(readFileSync(join(DEMO_DIR, 'truth.json'), 'utf8')) as { patients: DemoTruthPatient[] }).patients;
let stack: DemoStack;
let client: HttpFhirClient;

before(async () => {
  stack = await startDemoStack();
  client = stack.fhirClient({ timeoutMs: 5000 }); // system-level token (the FHIR sandbox enforces SMART scopes)
});
after(async () => stack?.close());

function studyDate(chart: Chart): string {
  return chart.imagingStudies[0]!.started!.slice(0, 10);
}

describe('clinical factors from the demo cohort over HTTP', () => {
  test('every demo patient: QFracture-2012 predictors equal the generator\'s EHR values', async () => {
    assert.equal(truth.length, 50);
    for (const t of truth) {
      const chart = await loadChart(client, t.patient_id);
      assert.equal(chart.imagingStudies.length, 1, t.patient_id);
      const f = extractFactors(chart, studyDate(chart));
      assert.equal(f.sex, t.sex);
      for (const o of ['hip', 'mof'] as const) {
        const lp = linearPredictor(o, f.sex, f.inputs);
        assert.ok(Math.abs(lp - t.ehr[`qf_lp_${o}`]) < 1e-9, `${t.patient_id} ${o}: ${lp} vs ${t.ehr[`qf_lp_${o}`]}`);
      }
    }
  });

  test('missing factors are listed with the default used; recorded ones name their resources', async () => {
    let withMissingBmi = 0;
    for (const t of truth) {
      const chart = await loadChart(client, t.patient_id);
      const f = extractFactors(chart, studyDate(chart));
      const bmi = f.records.find((r) => r.factor === 'bmi')!;
      if (t.ehr.bmi === null) {
        withMissingBmi++;
        assert.equal(bmi.status, 'default');
        assert.equal(bmi.value, 27);
        assert.ok(f.missing.includes('Body mass index'));
      } else {
        assert.equal(bmi.status, 'recorded');
        assert.match(bmi.sources[0]!, /^Observation\//);
      }
      assert.equal(f.missing.includes('Ethnicity'), t.ehr.nhs_ethnic === 'Z', t.patient_id);
      assert.equal(f.missing.includes('Smoking'), t.ehr.smoke_cat === null, t.patient_id);
      assert.equal(f.missing.includes('Alcohol'), t.ehr.alcohol_cat6 === null, t.patient_id);
      for (const r of f.records) {
        if (r.status === 'recorded' || r.status === 'derived') assert.ok(r.sources.length > 0, `${t.patient_id} ${r.factor}`);
        if (r.factor.startsWith('b_') && r.value === 1) assert.ok(r.sources.every((s) => /^(Condition|MedicationRequest|MedicationStatement|FamilyMemberHistory)\//.test(s)));
      }
    }
    assert.ok(withMissingBmi > 0, 'the demo cohort has patients without BMI');
  });

  test('BMI from weight/height when no BMI Observation; ICD-10-CM conditions; US Core race; resolved or future conditions ignored', async () => {
    const chart = await loadChart(client, 'demo-a-001');
    const noBmi: Chart = { ...chart, observations: chart.observations.filter((o) => o.code.coding?.[0]?.code !== '39156-5') };
    const f = extractFactors(noBmi, studyDate(chart));
    const bmi = f.records.find((r) => r.factor === 'bmi')!;
    assert.equal(bmi.status, 'derived');
    assert.equal(bmi.sources.length, 2);
    assert.ok(Math.abs(bmi.value - 107.4 / 1.92 ** 2) < 1e-9);

    const icd: Condition = { resourceType: 'Condition', id: 'x1', subject: { reference: 'Patient/demo-a-001' }, code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'E11.9' }] }, clinicalStatus: { coding: [{ code: 'active' }] } };
    const resolved: Condition = { ...icd, id: 'x2', code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'G20' }] }, clinicalStatus: { coding: [{ code: 'resolved' }] } };
    const future: Condition = { ...icd, id: 'x3', code: { coding: [{ system: 'http://snomed.info/sct', code: '84757009' }] }, onsetDateTime: '2099-01-01' };
    const g = extractFactors({ ...chart, conditions: [...chart.conditions, icd, resolved, future] }, studyDate(chart));
    assert.equal(g.inputs.booleans.b_type2, 1);
    assert.deepEqual(g.records.find((r) => r.factor === 'b_type2')!.sources, ['Condition/x1']);
    assert.equal(g.inputs.booleans.b_parkinsons, undefined);
    assert.equal(g.inputs.booleans.b_epilepsy2, undefined);

    const p: Patient = { ...chart.patient, extension: [{ url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race', extension: [{ url: 'ombCategory', valueCoding: { system: 'urn:oid:2.16.840.1.113883.6.238', code: '2028-9' } }, { url: 'detailed', valueCoding: { system: 'urn:oid:2.16.840.1.113883.6.238', code: '2044-6' } }] }] };
    const h = extractFactors({ ...chart, patient: p }, studyDate(chart));
    assert.equal(h.inputs.ethrisk, 3);
    const coarse = { ...p, extension: [{ url: p.extension![0]!.url, extension: [p.extension![0]!.extension![0]!] }] };
    const k = extractFactors({ ...chart, patient: coarse }, studyDate(chart));
    assert.equal(k.inputs.ethrisk, 5);
    assert.equal(k.records.find((r) => r.factor === 'ethrisk')!.status, 'derived');
  });

  test('observations after the index date are not used', async () => {
    const chart = await loadChart(client, 'demo-a-001');
    const later: Observation = { ...chart.observations.find((o) => o.code.coding?.[0]?.code === '39156-5')!, id: 'later', effectiveDateTime: '2099-01-01', valueQuantity: { value: 35, unit: 'kg/m2', code: 'kg/m2' } };
    const f = extractFactors({ ...chart, observations: [...chart.observations, later] }, studyDate(chart));
    assert.notEqual(f.records.find((r) => r.factor === 'bmi')!.sources[0], 'Observation/later');
  });

  test('typed errors: unknown patient, no gender, too young, unreachable or silent server', async () => {
    await assert.rejects(loadChart(client, 'no-such-patient'), FhirNotFoundError);
    const chart = await loadChart(client, 'demo-a-001');
    assert.throws(() => extractFactors({ ...chart, patient: { ...chart.patient, gender: 'unknown' } }, '2026-11-01'), FactorError);
    assert.throws(() => extractFactors({ ...chart, patient: { ...chart.patient, birthDate: '2010-01-01' } }, '2026-11-01'), FactorError);
    await assert.rejects(new HttpFhirClient({ baseUrl: 'http://127.0.0.1:1/fhir', timeoutMs: 2000 }).read('Patient', 'x'), FhirUnavailableError);
    const net = await import('node:net');
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const t0 = Date.now();
    await assert.rejects(new HttpFhirClient({ baseUrl: `http://127.0.0.1:${port}/fhir`, timeoutMs: 300 }).read('Patient', 'x'), FhirTimeoutError);
    assert.ok(Date.now() - t0 < 2000);
    silent.close();
  });

  test('alcohol categories follow the documented unit bands', () => {
    assert.deepEqual([0, 0.5, 1, 2.9, 3, 6.9, 7, 9, 9.1].map(alcoholCategory), [0, 1, 2, 2, 3, 3, 4, 4, 5]);
  });
});

describe('a chart source that hands back someone else\'s resources (a CDS prefetch, above all)', () => {
  /** The demo chart of one patient, with another patient's ImagingStudy and Condition mixed in. */
  const mixedSource = (asked: string, other: string): FhirDataSource => ({
    baseUrl: client.baseUrl,
    read: <T extends Resource>(type: T['resourceType'], id: string) => client.read<T>(type, id),
    search: async <T extends Resource>(type: T['resourceType'], params: Record<string, string>) => {
      const mine = await client.search<T>(type, params);
      const foreign = await client.search<T>(type, Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v.replace(`Patient/${asked}`, `Patient/${other}`)])));
      return [...mine, ...foreign];
    },
    write: () => Promise.reject(new Error('read-only')),
  });

  test('only the asked patient\'s resources are used', async () => {
    const chart = await loadChart(mixedSource('demo-a-003', 'demo-a-022'), 'demo-a-003');
    assert.ok(chart.imagingStudies.length > 0);
    for (const s of chart.imagingStudies) assert.equal(s.subject?.reference, 'Patient/demo-a-003');
    for (const c of chart.conditions) assert.equal(c.subject.reference, 'Patient/demo-a-003');
  });

  test('a Patient read that answers another patient is refused', async () => {
    const swapped: FhirDataSource = { ...client, baseUrl: client.baseUrl, read: <T extends Resource>(type: T['resourceType']) => client.read<T>(type, 'demo-a-022'), search: (t, p) => client.search(t, p), write: (r) => client.write(r) };
    await assert.rejects(loadChart(swapped, 'demo-a-003'), FactorError);
  });

  test('referencesPatient reads relative, absolute and versioned references', () => {
    assert.equal(referencesPatient({ reference: 'Patient/p-1' }, 'p-1'), true);
    assert.equal(referencesPatient({ reference: 'https://ehr.example/fhir/Patient/p-1/_history/3' }, 'p-1'), true);
    assert.equal(referencesPatient({ reference: 'Patient/p-10' }, 'p-1'), false);
    assert.equal(referencesPatient({ reference: 'Group/p-1' }, 'p-1'), false);
    assert.equal(referencesPatient(undefined, 'p-1'), false);
  });
});

/**
 * loadCareStatus: open FLS referral / DXA order, latest DXA result with its T-score, current treatment — from a
 * source that, like some FHIR servers, ignores search parameters (so every condition must be re-checked).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MedicationRequest, MedicationStatement, Observation, Resource, ServiceRequest } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import type { ValueSetIndex } from '../fhir/valuesets.ts';
import { CareStatusConfigError, loadCareStatus, tScoreOf } from './care-status.ts';
import { dxaOrder, flsReferral } from './service-requests.ts';

const LOINC = 'http://loinc.org';
const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';

function valueSets(sets: Record<string, string[]>): ValueSetIndex {
  const byId = new Map(Object.entries(sets).map(([id, codes]) => [id, new Set(codes)] as const));
  return { byId, has: (id, s, c) => !!s && !!c && (byId.get(id)?.has(`${s}|${c}`) ?? false), ids: () => [...byId.keys()] };
}
const VS = valueSets({
  'dxa-result': [`${LOINC}|80948-3`, `${LOINC}|38265-5`],
  'osteoporosis-treatment': [`${RXNORM}|46041`],
});

/** Answers every search with every resource of the type, whatever the parameters (the worst a server may do). */
function source(resources: Resource[], calls: { type: string; params: Record<string, string> }[] = []): FhirDataSource {
  return {
    baseUrl: 'https://ehr.example/fhir',
    read: () => Promise.reject(new Error('not used')),
    search: <T extends Resource>(type: T['resourceType'], params: Record<string, string>) => {
      calls.push({ type, params });
      return Promise.resolve(resources.filter((r) => r.resourceType === type) as T[]);
    },
    write: () => Promise.reject(new Error('read-only')),
  };
}

const P = 'p-1';
const referral = (id: string, status: 'active' | 'draft', authoredOn: string, patientId = P): ServiceRequest => ({ ...flsReferral({ patientId, status, id, authoredOn }), status });
const dxaObs = (id: string, code: string, date: string, value: number, unit: string, display: string, patientId = P): Observation => ({
  resourceType: 'Observation', id, status: 'final', subject: { reference: `Patient/${patientId}` },
  code: { coding: [{ system: LOINC, code, display }] }, effectiveDateTime: date, valueQuantity: { value, unit },
});

describe('loadCareStatus', () => {
  test('nothing on file → all null; searches are on the patient, with the DXA codes and open statuses', async () => {
    const calls: { type: string; params: Record<string, string> }[] = [];
    const cs = await loadCareStatus(source([], calls), P, { valueSets: VS });
    assert.deepEqual(cs, { flsReferral: null, dxaOrder: null, dxaResult: null, treatment: null });
    const obs = calls.find((c) => c.type === 'Observation')!;
    assert.equal(obs.params['subject'], 'Patient/p-1');
    assert.deepEqual(obs.params['code']!.split(',').sort(), [`${LOINC}|38265-5`, `${LOINC}|80948-3`]);
    assert.equal(calls.find((c) => c.type === 'ServiceRequest')!.params['status'], 'active,on-hold,draft');
  });

  test('an active FLS referral is found with its date; a completed one, another patient\'s and a DXA order are not it', async () => {
    const completed: ServiceRequest = { ...referral('r-old', 'active', '2025-01-01'), status: 'completed' };
    const cs = await loadCareStatus(source([completed, referral('r-other', 'active', '2026-01-01', 'p-2'), referral('r-1', 'active', '2026-11-12T09:00:00Z'), dxaOrder({ patientId: P, id: 'd-1', status: 'active', authoredOn: '2026-11-20' })]), P, { valueSets: VS });
    assert.deepEqual(cs.flsReferral, { id: 'r-1', status: 'active', since: '2026-11-12T09:00:00Z' });
    assert.deepEqual(cs.dxaOrder, { id: 'd-1', status: 'active', since: '2026-11-20' });
  });

  test('an active referral is preferred to an older draft one', async () => {
    const cs = await loadCareStatus(source([referral('r-draft', 'draft', '2026-01-01'), referral('r-act', 'active', '2026-06-01')]), P, { valueSets: VS });
    assert.equal(cs.flsReferral?.id, 'r-act');
  });

  test('latest DXA result: the T-score of the latest scan, not the BMD; older scans and other codes ignored', async () => {
    const cs = await loadCareStatus(source([
      dxaObs('bmd-new', '38265-5', '2026-05-02', 0.71, 'g/cm2', 'DXA Femur [Mass/Area] Bone density'),
      dxaObs('t-new', '80948-3', '2026-05-02', -2.7, '{T-score}', 'DXA Femur-L T-score BMD'),
      dxaObs('t-old', '80948-3', '2023-01-01', -1.2, '{T-score}', 'DXA Femur-L T-score BMD'),
      dxaObs('weight', '29463-7', '2026-06-01', 62, 'kg', 'Body weight'),
      dxaObs('t-other', '80948-3', '2026-07-01', -3.5, '{T-score}', 'DXA Femur-L T-score BMD', 'p-2'),
    ]), P, { valueSets: VS });
    assert.deepEqual(cs.dxaResult, { id: 't-new', date: '2026-05-02', tScore: -2.7 });
  });

  test('a BMD alone is a DXA result without a T-score', async () => {
    const cs = await loadCareStatus(source([dxaObs('bmd', '38265-5', '2026-05-02', 0.71, 'g/cm2', 'DXA Femur [Mass/Area] Bone density')]), P, { valueSets: VS });
    assert.deepEqual(cs.dxaResult, { id: 'bmd', date: '2026-05-02', tScore: null });
  });

  test('treatment: an active alendronate order (by code) or a denosumab statement (by name); stopped ones do not count', async () => {
    const stopped: MedicationRequest = { resourceType: 'MedicationRequest', id: 'm-0', status: 'stopped', intent: 'order', subject: { reference: `Patient/${P}` }, medicationCodeableConcept: { coding: [{ system: RXNORM, code: '46041' }], text: 'Alendronic acid 70 mg' }, authoredOn: '2020-01-01' };
    const active: MedicationRequest = { ...stopped, id: 'm-1', status: 'active', authoredOn: '2026-03-01' };
    assert.deepEqual((await loadCareStatus(source([stopped, active]), P, { valueSets: VS })).treatment, { id: 'm-1', name: 'Alendronic acid 70 mg', since: '2026-03-01' });
    assert.equal((await loadCareStatus(source([stopped]), P, { valueSets: VS })).treatment, null);
    const statement: MedicationStatement = { resourceType: 'MedicationStatement', id: 's-1', status: 'active', subject: { reference: `Patient/${P}` }, medicationCodeableConcept: { text: 'Denosumab 60 mg every 6 months' }, effectivePeriod: { start: '2025-09-01' } };
    assert.deepEqual((await loadCareStatus(source([statement]), P, { valueSets: VS })).treatment, { id: 's-1', name: 'Denosumab 60 mg every 6 months', since: '2025-09-01' });
  });

  test('a failing source rejects (the caller must say it could not check, not assume none)', async () => {
    const failing: FhirDataSource = { ...source([]), search: () => Promise.reject(new Error('FHIR down')) };
    await assert.rejects(loadCareStatus(failing, P, { valueSets: VS }), /FHIR down/);
  });

  test('without the dxa-result ValueSet it refuses rather than report "no DXA"', async () => {
    await assert.rejects(loadCareStatus(source([]), P, { valueSets: valueSets({ 'osteoporosis-treatment': [`${RXNORM}|46041`] }) }), CareStatusConfigError);
  });

  test('tScoreOf: T-score by name or plain unit; never a BMD in g/cm²', () => {
    assert.equal(tScoreOf(dxaObs('a', '80948-3', '2026-01-01', -2.1, '', 'DXA Femur-L T-score BMD')), -2.1);
    assert.equal(tScoreOf(dxaObs('b', 'x', '2026-01-01', 0.8, 'g/cm2', 'T-score (wrongly named)')), null);
    assert.equal(tScoreOf(dxaObs('c', 'x', '2026-01-01', 0.8, 'g/cm²', 'BMD')), null);
  });
});

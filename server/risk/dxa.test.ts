/** Which measured DXA T-score replaces a T-score-mediated model's estimate (dxa.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Observation } from '@medplum/fhirtypes';
import { loadValueSets } from '../fhir/valuesets.ts';
import { FEMORAL_NECK_TSCORE_CODES, measuredDxa } from './dxa.ts';

const AT = new Date('2026-11-27T12:00:00Z');
const obs = (id: string, date: string, value: number, over: Partial<Observation> = {}): Observation => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '80948-3', display: 'DXA Femur - left [T-score] Bone density' }] },
  subject: { reference: 'Patient/p-1' },
  effectiveDateTime: date,
  bodySite: { text: 'Femoral neck, left' },
  valueQuantity: { value, unit: 'T-score', system: 'http://unitsofmeasure.org', code: '{T-score}' },
  ...over,
});

describe('measured DXA T-score', () => {
  test('the femoral-neck codes are DXA results of ValueSet dxa-result', () => {
    const vs = loadValueSets();
    for (const c of FEMORAL_NECK_TSCORE_CODES) assert.ok(vs.has('dxa-result', 'http://loinc.org', c), c);
  });

  test('the most recent final femoral-neck T-score within the age limit; the limit counts from the assessment date', () => {
    const list = [obs('old', '2024-01-10', -2.9), obs('new', '2026-05-12', -2.6), obs('mid', '2025-03-01', -2.0)];
    assert.deepEqual(measuredDxa(list, AT, 2), { value: -2.6, date: '2026-05-12', observationId: 'new' });
    assert.equal(measuredDxa([obs('old', '2024-01-10', -2.9)], AT, 2), null, '2.9 years old');
    assert.equal(measuredDxa([obs('old', '2024-01-10', -2.9)], AT, 3)?.observationId, 'old');
    assert.equal(measuredDxa([obs('edge', '2024-11-28', -1.0)], AT, 2)?.observationId, 'edge', 'just inside two years');
  });

  test('not counted: preliminary or entered in error, a later date, another region, a BMD, another code', () => {
    const skip = [
      obs('prelim', '2026-06-01', -3, { status: 'preliminary' }),
      obs('eie', '2026-06-01', -3, { status: 'entered-in-error' }),
      obs('future', '2026-12-01', -3),
      obs('total-hip', '2026-06-01', -3, { bodySite: { text: 'Total hip, left' } }),
      obs('bmd', '2026-06-01', 0.71, { valueQuantity: { value: 0.71, unit: 'g/cm2', code: 'g/cm2' } }),
      obs('hip-code', '2026-06-01', -3, { code: { coding: [{ system: 'http://loinc.org', code: '38264-8', display: 'DXA Hip [T-score] Bone density' }] }, bodySite: undefined }),
    ];
    assert.equal(measuredDxa(skip, AT, 2), null);
    // Without a body site the code alone says femur; a same-day pair reads the lower (conservative) value.
    const pair = [obs('a', '2026-06-01', -1.8, { bodySite: undefined }), obs('b', '2026-06-01T10:00:00Z', -2.2, { code: { coding: [{ system: 'http://loinc.org', code: '80947-5' }] } })];
    assert.deepEqual(measuredDxa([...skip, ...pair], AT, 2), { value: -2.2, date: '2026-06-01', observationId: 'b' });
  });
});

/**
 * The app's patient routes (server/risk/routes.ts): history read back from the FHIR server's RiskAssessments (only
 * the service's own, of this patient, newest first, capped), care status, the token's patient restriction and the
 * answers to FHIR failures — on an in-memory FHIR data source, through HTTP (supertest).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RiskAssessment, Resource } from '@medplum/fhirtypes';
import express, { type Express } from 'express';
import request from 'supertest';
import type { SmartAccess } from '../auth/types.ts';
import { FhirTimeoutError, type FhirDataSource } from '../fhir/client.ts';
import type { CareStatus } from '../orders/care-status.ts';
import { silentLogger } from '../../test/support/demo-stack.ts';
import { EXT } from './fhir-output.ts';
import { createPatientRouter, HISTORY_LIMIT, historyItems, type AssessmentHistoryResponse } from './routes.ts';

const HIP = { coding: [{ system: 'http://snomed.info/sct', code: '5913000' }] };
const MOF = { coding: [{ system: 'urn:frcds:outcome', code: 'mof' }] };

/** A RiskAssessment shaped as server/risk/fhir-output.ts writes it (10-year predictions only). */
function ra(id: string, patient: string, date: string, hip: number, mof: number, opts: { tier?: string; system?: string; status?: RiskAssessment['status']; interval?: boolean } = {}): RiskAssessment {
  const pred = (outcome: typeof HIP, p: number) => ({
    outcome,
    probabilityDecimal: p,
    whenRange: { low: { value: 0 }, high: { value: 10 } },
    ...(opts.interval === false ? {} : { extension: [{ url: EXT.interval, extension: [{ url: 'level', valueDecimal: 0.95 }, { url: 'lower', valueDecimal: p / 2 }, { url: 'upper', valueDecimal: Math.min(1, p * 2) }] }] }),
    qualitativeRisk: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/risk-probability', code: opts.tier ?? 'high' }] },
  });
  return {
    resourceType: 'RiskAssessment',
    id: `ra-${id}`,
    identifier: [{ system: opts.system ?? 'urn:frcds:assessment', value: id }],
    status: opts.status ?? 'final',
    subject: { reference: `Patient/${patient}` },
    occurrenceDateTime: date,
    extension: [{ url: EXT.mode, valueCode: opts.interval === false ? 'clinical-only' : 'image-and-clinical' }],
    prediction: [pred(HIP, hip), pred(MOF, mof)],
  };
}

class FakeFhir implements FhirDataSource {
  readonly baseUrl = 'http://fhir.invalid/fhir';
  searches: { type: string; params: Record<string, string> }[] = [];
  constructor(private readonly resources: Resource[], private readonly failure?: Error) {}
  read<T extends Resource>(): Promise<T> {
    throw new Error('not used');
  }
  async search<T extends Resource>(type: T['resourceType'], params: Record<string, string>): Promise<T[]> {
    this.searches.push({ type, params });
    if (this.failure) throw this.failure;
    return this.resources.filter((r) => r.resourceType === type) as T[];
  }
  write<T extends Resource>(): Promise<T> {
    throw new Error('not used');
  }
}

const CARE: CareStatus = { flsReferral: { id: 'sr-1', status: 'active', since: '2026-11-12T09:00:00Z' }, dxaOrder: null, dxaResult: null, treatment: null };

function app(fhir: FhirDataSource, access?: Partial<SmartAccess>, careStatus?: (f: FhirDataSource, id: string) => Promise<CareStatus>): Express {
  const a = express();
  if (access) a.use((_req, res, next) => ((res.locals['smartAccess'] = { subject: 'u', scopes: [], ...access }), next()));
  a.use('/api/patients', createPatientRouter({ fhir, logger: silentLogger(), ...(careStatus ? { careStatus } : {}) }));
  return a;
}

describe('history items from RiskAssessments', () => {
  test('only the service’s own, of this patient, not entered in error; newest first; one per assessment id', () => {
    const items = historyItems(
      [
        ra('a1', 'p1', '2026-10-12T10:00:00Z', 0.041, 0.12, { tier: 'moderate' }),
        ra('a2', 'p1', '2026-12-01T10:00:00Z', 0.052, 0.14),
        ra('a2', 'p1', '2026-11-30T10:00:00Z', 0.05, 0.13), // an older copy of the same assessment
        ra('x1', 'p2', '2026-11-01T10:00:00Z', 0.3, 0.4),
        ra('x2', 'p1', '2026-11-01T10:00:00Z', 0.3, 0.4, { system: 'urn:other' }),
        ra('x3', 'p1', '2026-11-02T10:00:00Z', 0.3, 0.4, { status: 'entered-in-error' }),
        ra('c1', 'p1', '2026-09-01T10:00:00Z', 0.02, 0.08, { interval: false, tier: 'low' }),
      ],
      'p1',
    );
    assert.deepEqual(items.items.map((i) => i.assessmentId), ['a2', 'a1', 'c1']);
    assert.equal(items.truncated, false);
    assert.deepEqual(items.items[0], { assessmentId: 'a2', date: '2026-12-01T10:00:00Z', mode: 'image-and-clinical', tier: 'high', hip10: { estimate: 5.2, lower: 2.6, upper: 10.4 }, mof10: { estimate: 14, lower: 7, upper: 28 } });
    assert.deepEqual(items.items[2]!.hip10, { estimate: 2, lower: null, upper: null });
    assert.equal(items.items[2]!.mode, 'clinical-only');
    assert.equal(items.items[1]!.tier, 'moderate');
  });
  test('capped: the newest HISTORY_LIMIT, truncated says more exist', () => {
    const many = Array.from({ length: HISTORY_LIMIT + 5 }, (_, i) => ra(`a${i}`, 'p1', new Date(Date.UTC(2026, 0, 1 + i)).toISOString(), 0.05, 0.1));
    const out = historyItems(many, 'p1');
    assert.equal(out.items.length, HISTORY_LIMIT);
    assert.equal(out.truncated, true);
    assert.equal(out.items[0]!.assessmentId, `a${HISTORY_LIMIT + 4}`);
  });
});

describe('GET /api/patients/{id}/assessments and /care-status', () => {
  test('history: searches the patient’s RiskAssessments by identifier system, newest first', async () => {
    const fhir = new FakeFhir([ra('a1', 'p1', '2026-10-12T10:00:00Z', 0.041, 0.12), ra('a2', 'p1', '2026-12-01T10:00:00Z', 0.052, 0.14), ra('b', 'p2', '2026-12-01T10:00:00Z', 0.5, 0.6)]);
    const res = await request(app(fhir)).get('/api/patients/p1/assessments').expect(200);
    assert.equal(res.headers['cache-control'], 'no-store');
    const body = res.body as AssessmentHistoryResponse;
    assert.equal(body.patientId, 'p1');
    assert.deepEqual(body.items.map((i) => i.assessmentId), ['a2', 'a1']);
    assert.equal(fhir.searches[0]!.type, 'RiskAssessment');
    assert.equal(fhir.searches[0]!.params['patient'], 'Patient/p1');
    assert.equal(fhir.searches[0]!.params['identifier'], 'urn:frcds:assessment|');
  });
  test('care status: the loader’s answer for the patient', async () => {
    let asked = '';
    const res = await request(app(new FakeFhir([]), undefined, async (_f, id) => ((asked = id), CARE))).get('/api/patients/p1/care-status').expect(200);
    assert.equal(asked, 'p1');
    assert.deepEqual(res.body, { patientId: 'p1', careStatus: CARE });
  });
  test('a patient-level token reaches only its own patient (403 otherwise); user-level tokens any', async () => {
    const fhir = new FakeFhir([]);
    const own = app(fhir, { patient: 'p1' }, async () => CARE);
    await request(own).get('/api/patients/p1/assessments').expect(200);
    const r1 = await request(own).get('/api/patients/p2/assessments').expect(403);
    assert.equal(r1.body.code, 'PATIENT_MISMATCH');
    await request(own).get('/api/patients/p2/care-status').expect(403);
    await request(app(fhir, { scopes: ['user/RiskAssessment.rs'] }, async () => CARE)).get('/api/patients/p2/care-status').expect(200);
    assert.equal(fhir.searches.length, 1, 'the refused request never reached the FHIR server');
  });
  test('a malformed id is a 400; a slow FHIR server a 504; a failing care status a 500 without its text', async () => {
    await request(app(new FakeFhir([]))).get('/api/patients/a%20b/assessments').expect(400);
    const slow = await request(app(new FakeFhir([], new FhirTimeoutError('timed out')))).get('/api/patients/p1/assessments').expect(504);
    assert.equal(slow.body.code, 'FHIR_TIMEOUT');
    const broken = await request(app(new FakeFhir([]), undefined, async () => { throw new Error('secret detail'); })).get('/api/patients/p1/care-status').expect(500);
    assert.ok(!JSON.stringify(broken.body).includes('secret detail'));
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Resource, RiskAssessment, Task } from '@medplum/fhirtypes';
import type { FhirDataSource } from '../fhir/client.ts';
import { loadConfig } from '../config.ts';
import { silentLogger } from '../../test/support/demo-stack.ts';
import type { Assessment } from '../risk/assess.ts';
import { configuredTriage } from './runtime.ts';

/** A FHIR server with nothing on it that keeps what is written. */
function emptyFhir(): FhirDataSource & { written: Resource[] } {
  const written: Resource[] = [];
  return {
    baseUrl: 'https://fhir.invalid',
    written,
    read: () => Promise.reject(new Error('not used')),
    search: <T extends Resource>() => Promise.resolve([] as T[]),
    write: <T extends Resource>(r: T) => {
      written.push(r);
      return Promise.resolve(r);
    },
  };
}

describe('jobs: the triage the background jobs run', () => {
  it('gives new triage Tasks the configured contact due date (FLS_DUE_CONTACT_DAYS)', async () => {
    const config = loadConfig({ FLS_DUE_CONTACT_DAYS: '5', LOG_LEVEL: 'silent' });
    const triage = await configuredTriage(config, silentLogger());
    assert.ok(triage, 'the FLS module is part of this build');
    const fhir = emptyFhir();
    const ra: RiskAssessment = { resourceType: 'RiskAssessment', id: 'ra-1', status: 'final', subject: { reference: 'Patient/p1' } };
    const before = Date.now();
    const r = await triage(fhir, { patientId: 'p1', riskAssessment: ra, assessment: { tier: { tier: 'high' } } as unknown as Assessment });
    assert.equal(r.created, true);
    const task = fhir.written[0] as Task;
    const due = Date.parse(task.restriction?.period?.end ?? '');
    const days = (due - before) / 86_400_000;
    assert.ok(days > 4 && days < 6, `due ${days.toFixed(2)} days after creation, expected 5`);
  });
});

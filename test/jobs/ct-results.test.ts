/**
 * A CT study assessed by a job (report-final event) or by the backfill leaves a RiskAssessment whose every basis
 * reference resolves: the device-derived CT Observations it rests on (L1 attenuation, per-level morphometry) are
 * written with it, not only referenced. Demo stack (SMART-guarded FHIR sandbox + DICOMweb), the real CT pathway and
 * model, the demo CT patient with the unreported fracture.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DiagnosticReport, ImagingStudy, Observation, RiskAssessment } from '@medplum/fhirtypes';
import { loadConfig } from '../../server/config.ts';
import { FhirNotFoundError, type HttpFhirClient } from '../../server/fhir/client.ts';
import { runBackfill } from '../../server/jobs/backfill.ts';
import { processReportEvent } from '../../server/jobs/process.ts';
import { createStandaloneRisk } from '../../server/jobs/runtime.ts';
import { SqliteJobQueue } from '../../server/jobs/sqlite-queue.ts';
import type { JobCoordination } from '../../server/jobs/types.ts';
import type { ModelRegistry } from '../../server/inference/registry.ts';
import type { RiskService } from '../../server/risk/service.ts';
import { startDemoStack, silentLogger, type DemoStack } from '../support/demo-stack.ts';

const PATIENT = 'demo-ct-003';

const queues: SqliteJobQueue[] = [];

/** The SQLite queue's own coordination (in memory): idempotency keys, report versions, report locks. */
function coordination(): JobCoordination {
  const queue = new SqliteJobQueue({ path: ':memory:', maxAttempts: 1, backoffMs: 10, leaseMs: 60_000, logger: silentLogger() });
  queues.push(queue);
  return queue.coordination;
}

/** Every `Type/id` in the basis is on the server; returns the CT Observations among them. */
async function basisResolves(fhir: HttpFhirClient, ra: RiskAssessment): Promise<Observation[]> {
  const ct: Observation[] = [];
  for (const b of ra.basis ?? []) {
    const [type, id] = b.reference!.split('/') as [Observation['resourceType'], string];
    try {
      const r = await fhir.read<Observation>(type, id);
      if (r.resourceType === 'Observation' && r.device) ct.push(r);
    } catch (err) {
      if (err instanceof FhirNotFoundError) assert.fail(`the RiskAssessment's basis names ${type}/<id>, which was never written`);
      throw err;
    }
  }
  return ct;
}

describe('CT results written by jobs and the backfill', () => {
  let stack: DemoStack;
  let risk: RiskService;
  let registry: ModelRegistry;
  before(async () => {
    stack = await startDemoStack();
    const config = loadConfig({
      FHIR_BASE_URL: stack.fhirBaseUrl, DICOMWEB_BASE_URL: stack.dicomWebBaseUrl, FHIR_AUTH: 'client-credentials', FHIR_TOKEN_URL: `${stack.authBaseUrl}/token`,
      FHIR_CLIENT_ID: 'demo-backend', FHIR_CLIENT_SECRET: 'sandbox-only-demo-backend-secret', INFERENCE_DEVICE: 'cpu',
    });
    ({ risk, registry } = await createStandaloneRisk(config, silentLogger()));
  });
  after(async () => {
    for (const q of queues) await q.close();
    await registry?.close();
    await stack?.close();
  });

  it('a final CT report: the RiskAssessment and the CT Observations it rests on', { timeout: 120_000 }, async () => {
    const fhir = stack.fhirClient();
    const report = await fhir.read<DiagnosticReport>('DiagnosticReport', `${PATIENT}-ct-report`);
    const outcome = await processReportEvent(
      { fhir, assess: (req) => risk.assess(req), triage: null, coordination: coordination(), logger: silentLogger() },
      { reportId: report.id!, versionId: report.meta!.versionId!, source: 'backport-id-only', receivedAt: new Date().toISOString() },
    );
    assert.equal(outcome.status, 'done', outcome.reason);
    const ra = await fhir.read<RiskAssessment>('RiskAssessment', outcome.riskAssessmentId!);
    assert.ok(ra.basis?.some((b) => b.reference === `ImagingStudy/${PATIENT}-ct`));
    const ct = await basisResolves(fhir, ra);
    assert.ok(ct.length >= 2, `L1 attenuation and per-level morphometry Observations (${ct.length})`);
  });

  it('the backfill of a CT study: the same', { timeout: 120_000 }, async () => {
    const fhir = stack.fhirClient();
    const study = await fhir.read<ImagingStudy>('ImagingStudy', `${PATIENT}-ct`);
    // Only this study: the backfill lists studies started on or after `since`, oldest first.
    const since = study.started!.slice(0, 10);
    const others = (await fhir.search<ImagingStudy>('ImagingStudy', { started: `ge${since}`, _count: '500' })).filter((s) => s.id !== study.id);
    for (const s of others) await fhir.write<ImagingStudy>({ ...s, started: '2000-01-01T00:00:00Z' });
    const summary = await runBackfill({ fhir, risk, triage: null, dbPath: ':memory:', runId: 'ct', since, concurrency: 1, logger: silentLogger() });
    assert.equal(summary.total, 1);
    assert.deepEqual(summary.failed, []);
    const ra = (await fhir.search<RiskAssessment>('RiskAssessment', { _count: '500' })).find((r) => r.identifier?.some((i) => i.value === `ImagingStudy/${study.id}`));
    assert.ok(ra, 'the backfill wrote a RiskAssessment for the CT study');
    const ct = await basisResolves(fhir, ra);
    assert.ok(ct.length >= 2, `L1 attenuation and per-level morphometry Observations (${ct.length})`);
  });
});

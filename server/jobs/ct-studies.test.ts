/**
 * CT studies take the same workflow as hip radiographs: a final CT report fires the topic and its job asks the
 * assessment for the CT ImagingStudy (found through the report's study link, or through its order when the report
 * names no study), and the backfill lists CT ImagingStudies with the others. The assessment itself (which pathway
 * reads the study) is not under test: a recording assessor stands in for it. Runs on the in-process FHIR sandbox
 * seeded with the demo CT charts (server/sandbox/demo-cohort/fhir/demo-ct-*.json).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { Bundle, DiagnosticReport, ImagingStudy, Resource } from '@medplum/fhirtypes';
import { loadConfig, REPO_ROOT } from '../config.ts';
import { becameFinal } from '../events/topic.ts';
import type { FhirDataSource } from '../fhir/client.ts';
import { createLogger } from '../logging.ts';
import { AssessmentError, type AssessRequest } from '../risk/assess.ts';
import type { ServiceResult } from '../risk/service.ts';
import { createFhirSandbox, type FhirSandbox } from '../sandbox/fhir/router.ts';
import { seedFhirSandbox } from '../sandbox/seed.ts';
import { runBackfill } from './backfill.ts';
import { processReportEvent } from './process.ts';
import { SqliteJobQueue } from './sqlite-queue.ts';
import type { JobCoordination } from './types.ts';

const DEMO_FHIR = join(REPO_ROOT, 'server/sandbox/demo-cohort/fhir');
const config = loadConfig({});
const logger = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
let fhir: FhirSandbox;
let dir: string;
let ctPatients: string[];

const source = (): FhirDataSource => ({
  baseUrl: config.fhir.publicBaseUrl,
  read: async <T extends Resource>(type: T['resourceType'], id: string) => {
    const r = await fhir.handle('GET', `${type}/${id}`);
    assert.equal(r.status, 200, `${type} read`);
    return r.body as T;
  },
  search: async <T extends Resource>(type: T['resourceType'], params: Record<string, string>) => {
    const r = await fhir.handle('GET', `${type}?${new URLSearchParams({ ...params, _count: '500' }).toString()}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return ((r.body as Bundle<T>).entry ?? []).map((e) => e.resource!);
  },
  write: async <T extends Resource>(resource: T) => (await fhir.repo.updateResource(resource as Resource & { id: string })) as T,
});

/** An assessor that records what it is asked and answers "refused" (no result resources are needed here). */
function recordingAssess(calls: AssessRequest[]): (req: AssessRequest) => Promise<ServiceResult> {
  return (req) => {
    calls.push(req);
    return Promise.reject(new AssessmentError('BAD_REQUEST', 'recorded (test assessor)'));
  };
}

const queues: SqliteJobQueue[] = [];

/** The SQLite queue's own coordination (in memory): idempotency keys, report versions, report locks. */
function coordination(): JobCoordination {
  const queue = new SqliteJobQueue({ path: ':memory:', maxAttempts: 1, backoffMs: 10, leaseMs: 60_000, logger });
  queues.push(queue);
  return queue.coordination;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'frcds-ct-jobs-'));
  mkdirSync(join(dir, 'fhir'));
  const files = readdirSync(DEMO_FHIR).filter((f) => /^demo-ct-\d+\.json$/.test(f));
  assert.ok(files.length >= 4, 'the demo CT charts are committed');
  for (const f of files) copyFileSync(join(DEMO_FHIR, f), join(dir, 'fhir', f));
  ctPatients = files.map((f) => f.replace(/\.json$/, '')).sort();
  fhir = createFhirSandbox({ baseUrl: config.fhir.publicBaseUrl, page: config.files.sandbox.fhir, maxRequestBytes: config.files.sandbox.fhir.maxRequestBytes, logger });
  const seeded = await seedFhirSandbox(fhir.repo, { fhirDir: join(dir, 'fhir'), dicomWebBaseUrl: config.dicomweb.publicBaseUrl, logger });
  assert.equal(seeded.failedBundles, 0);
});
after(async () => {
  for (const q of queues) await q.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('CT studies in the report-final and backfill workflow', () => {
  test('a final CT report is assessed against its CT ImagingStudy', async () => {
    const pid = ctPatients[0]!;
    const report = (await fhir.handle('GET', `DiagnosticReport/${pid}-ct-report`)).body as DiagnosticReport;
    assert.equal(becameFinal(undefined, report), true);
    const calls: AssessRequest[] = [];
    const outcome = await processReportEvent(
      { fhir: source(), assess: recordingAssess(calls), triage: null, coordination: coordination(), logger },
      { reportId: report.id!, versionId: report.meta!.versionId!, source: 'backport-id-only', receivedAt: new Date().toISOString() },
    );
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.patientId, pid);
    const study = (await fhir.handle('GET', `ImagingStudy/${calls[0]!.studyId}`)).body as ImagingStudy;
    assert.deepEqual(study.modality?.map((m) => m.code), ['CT']);
    assert.equal(calls[0]!.at?.toISOString(), new Date(report.issued!).toISOString());
    assert.equal(outcome.status, 'dead');
    assert.match(outcome.reason, /assessment refused: recorded/);
  });

  test('a CT report categorised only as CT (v2-0074) and linked only through its order fires the topic and finds its study', async () => {
    const pid = ctPatients[1]!;
    const original = (await fhir.handle('GET', `DiagnosticReport/${pid}-ct-report`)).body as DiagnosticReport;
    const { imagingStudy: _linked, ...rest } = original;
    const report: DiagnosticReport = {
      ...rest,
      id: `${pid}-ct-report-order-only`,
      identifier: [],
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'CT', display: 'CAT Scan' }] }],
    };
    assert.ok(report.basedOn?.length, 'the report names its order');
    assert.equal(becameFinal(undefined, report), true, 'a CT-section report is an imaging report');
    assert.equal(becameFinal(undefined, { ...report, category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'LAB' }] }] }), false);
    assert.equal(becameFinal(undefined, { ...report, category: [{ coding: [{ system: 'http://loinc.org', code: 'LP29684-5', display: 'Radiology' }] }] }), true);
    const stored = await fhir.repo.updateResource(report as DiagnosticReport & { id: string });
    const calls: AssessRequest[] = [];
    await processReportEvent(
      { fhir: source(), assess: recordingAssess(calls), triage: null, coordination: coordination(), logger },
      { reportId: stored.id!, versionId: stored.meta!.versionId!, source: 'backport-id-only', receivedAt: new Date().toISOString() },
    );
    assert.deepEqual(calls.map((c) => [c.patientId, c.studyId]), [[pid, `${pid}-ct`]]);
  });

  test('the backfill lists and assesses CT ImagingStudies', async () => {
    const calls: AssessRequest[] = [];
    const summary = await runBackfill({
      fhir: source(),
      risk: { fhir: source(), assess: recordingAssess(calls) },
      triage: null,
      dbPath: ':memory:',
      runId: 'ct',
      since: '2026-01-01',
      concurrency: 2,
      logger,
    });
    assert.equal(summary.total, ctPatients.length);
    assert.deepEqual(calls.map((c) => c.studyId).sort(), ctPatients.map((p) => `${p}-ct`));
    assert.deepEqual(calls.map((c) => c.patientId).sort(), ctPatients);
  });
});

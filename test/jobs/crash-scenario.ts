/**
 * The "kill it in the middle of a batch of 50 events" scenario shared by the SQLite and the Redis tests: the demo
 * FHIR + DICOMweb stack runs in the test process (as the hospital's servers, guarded by SMART tokens); the service
 * and the workers run as child processes that the test SIGKILLs and restarts.
 */
import assert from 'node:assert/strict';
import type { DiagnosticReport, RiskAssessment, Task } from '@medplum/fhirtypes';
import { buildNotification } from '../../server/events/notification.ts';
import { TOPIC_URL } from '../../server/events/topic.ts';
import { REPORT_EVENT_SYSTEM, riskAssessmentIdForReport } from '../../server/jobs/process.ts';
import { idempotencyKey, type JobStats } from '../../server/jobs/types.ts';
import type { DemoStack } from '../support/demo-stack.ts';

export const SECRET = 'crash-test-secret-0123456789';
/** Operator credential of the service children (`OPS_TOKEN`): `/api/jobs/stats` needs it. */
export const OPS_TOKEN = 'crash-test-ops-token-0123456789abcdef';
export const OPS_HEADERS = { Authorization: `Bearer ${OPS_TOKEN}` };

/** Environment of a service or worker child that uses the test's demo stack as its external servers. */
export function childEnv(stack: DemoStack, extra: Record<string, string>): Record<string, string> {
  return {
    HOST: '127.0.0.1',
    FHIR_BASE_URL: stack.fhirBaseUrl,
    DICOMWEB_BASE_URL: stack.dicomWebBaseUrl,
    FHIR_AUTH: 'client-credentials',
    FHIR_TOKEN_URL: `${stack.authBaseUrl}/token`,
    FHIR_CLIENT_ID: 'demo-backend',
    FHIR_CLIENT_SECRET: 'sandbox-only-demo-backend-secret',
    EVENTS_SECRET: SECRET,
    OPS_TOKEN,
    INFERENCE_DEVICE: 'cpu',
    LOG_LEVEL: 'info',
    JOBS_CONCURRENCY: '2',
    ...extra,
  };
}

export interface BatchReport {
  id: string;
  versionId: string;
}

/**
 * The demo cohort's hip-radiograph reports (50) with their current versions. The durability scenario was sized on
 * them; the demo CT reports (`demo-ct-*`) take the same job code and are covered by server/jobs/ct-studies.test.ts.
 */
export async function demoReports(stack: DemoStack): Promise<BatchReport[]> {
  const reports = await stack.fhirClient().search<DiagnosticReport>('DiagnosticReport', { _count: '200' });
  return reports.filter((r) => !r.id!.startsWith('demo-ct-')).map((r) => ({ id: r.id!, versionId: r.meta!.versionId! }));
}

/** Sends one id-only Backport notification per report (event numbers 1..n); every answer must be 200. */
export async function sendBatch(serviceBase: string, stack: DemoStack, reports: BatchReport[]): Promise<void> {
  let n = 0;
  for (const r of reports) {
    n++;
    const body = buildNotification({
      subscriptionUrl: `${stack.fhirBaseUrl}/Subscription/crash-test`,
      topic: TOPIC_URL,
      type: 'event-notification',
      status: 'active',
      eventsSinceStart: n,
      events: [{ number: n, timestamp: new Date().toISOString(), focusUrl: `${stack.fhirBaseUrl}/DiagnosticReport/${r.id}/_history/${r.versionId}` }],
    });
    const res = await fetch(`${serviceBase}/api/events/notifications`, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json', 'X-Subscription-Secret': SECRET }, body: JSON.stringify(body) });
    assert.equal(res.status, 200, `notification ${n} answered ${res.status}: ${await res.text()}`);
  }
}

export async function stats(serviceBase: string): Promise<JobStats> {
  const res = await fetch(`${serviceBase}/api/jobs/stats`, { headers: OPS_HEADERS });
  if (!res.ok) throw new Error(`stats answered ${res.status}`);
  return (await res.json()) as JobStats;
}

/**
 * "All 50 processed exactly once in effect": one RiskAssessment per report, answering that report version; each
 * written at most twice (a job cut off by the kill is run again, rewriting the same resource); no other job
 * RiskAssessments; at most one FLS triage Task per patient; no dead letters.
 */
export async function checkExactlyOnceInEffect(stack: DemoStack, reports: BatchReport[], raWrites: Map<string, number>, finalStats: JobStats): Promise<void> {
  assert.equal(finalStats.completedKeys, reports.length, 'every report version completed once');
  assert.equal(finalStats.deadLetters, 0, 'no dead letters');
  const fhir = stack.fhirClient();
  const ras = (await fhir.search<RiskAssessment>('RiskAssessment', { _count: '500' })).filter((r) => r.id?.startsWith('frcds-report-'));
  assert.equal(ras.length, reports.length, 'one RiskAssessment per report');
  for (const r of reports) {
    const ra = ras.find((x) => x.id === riskAssessmentIdForReport(r.id));
    assert.ok(ra, `RiskAssessment for ${r.id}`);
    assert.equal(ra.identifier?.find((i) => i.system === REPORT_EVENT_SYSTEM)?.value, idempotencyKey(r.id, r.versionId));
    const w = raWrites.get(ra.id!) ?? 0;
    assert.ok(w >= 1 && w <= 2, `${ra.id} written ${w} times`);
  }
  const tasks = await fhir.search<Task>('Task', { _count: '500' });
  const perPatient = new Map<string, number>();
  for (const t of tasks) if (t.for?.reference) perPatient.set(t.for.reference, (perPatient.get(t.for.reference) ?? 0) + 1);
  for (const [p, n] of perPatient) assert.ok(n <= 1, `${n} triage Tasks for one patient (${p.length} chars)`);
}

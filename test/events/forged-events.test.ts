/**
 * Forged and careless notifications against the running service (`startWholeService`, sandbox mode). Whoever holds
 * the channel secret can post any payload; the job must still assess only what the FHIR server holds:
 * - a full-resource notification of a report the server does not have → dead letter, no RiskAssessment, no Task;
 * - a forged "version 999, dated 2099" of a real (still preliminary) report, naming another patient → nothing is
 *   written, and the genuine finalisation afterwards still produces the RiskAssessment and the FLS Task;
 * - a final report whose subject is not its ImagingStudy's subject → dead letter, nothing written.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Bundle, DiagnosticReport, RiskAssessment, Task } from '@medplum/fhirtypes';
import { buildNotification } from '../../server/events/notification.ts';
import { TOPIC_URL } from '../../server/events/topic.ts';
import { riskAssessmentIdForReport } from '../../server/jobs/process.ts';
import type { DeadLetterView } from '../../server/jobs/routes.ts';
import type { JobStats } from '../../server/jobs/types.ts';
import { waitFor } from '../support/service-process.ts';
import { startWholeService, type WholeService } from '../support/whole-service.ts';

const SECRET = 'forged-events-secret-0123456789ab';
/** A high-risk demo patient whose radiograph report starts preliminary. */
const REPORT = 'demo-a-022-xr-report';
const PATIENT = 'Patient/demo-a-022';

describe('notifications are hints: the job trusts only the FHIR server', () => {
  let whole: WholeService;
  let base: string;
  let token: string;

  const fhirGet = (path: string): Promise<Response> => fetch(`${base}/sandbox/fhir/${path}`, { headers: { Accept: 'application/fhir+json', Authorization: `Bearer ${token}` } });
  const fhir = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
    const res = await fetch(`${base}/sandbox/fhir/${path}`, { ...init, headers: { Accept: 'application/fhir+json', Authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) } });
    assert.ok(res.ok, `${init.method ?? 'GET'} ${path.split('?')[0]} → ${res.status}`);
    return (await res.json()) as T;
  };
  // Operations endpoints: a system-level token of the sandbox authorization server is an operator credential.
  const ops = (path: string): Promise<Response> => fetch(`${base}/api/jobs/${path}`, { headers: { Authorization: `Bearer ${token}` } });
  const stats = async (): Promise<JobStats> => (await (await ops('stats')).json()) as JobStats;
  const deadLetters = async (): Promise<DeadLetterView[]> => ((await (await ops('dead-letters')).json()) as { deadLetters: DeadLetterView[] }).deadLetters;
  const notifyFull = async (resource: DiagnosticReport, n: number): Promise<Response> => {
    const body = buildNotification({
      subscriptionUrl: `${base}/sandbox/fhir/Subscription/frcds-report-events`,
      topic: TOPIC_URL,
      type: 'event-notification',
      status: 'active',
      eventsSinceStart: n,
      events: [{ number: n, timestamp: new Date().toISOString(), focusUrl: `${base}/sandbox/fhir/DiagnosticReport/${resource.id}/_history/${resource.meta?.versionId ?? '1'}`, resource }],
    });
    return fetch(`${base}/api/events/notifications`, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json', 'X-Subscription-Secret': SECRET }, body: JSON.stringify(body) });
  };
  const idle = (label: string, done: (s: JobStats) => boolean): Promise<JobStats> =>
    waitFor(label, async () => {
      const s = await stats();
      return done(s) && s.queued === 0 && s.running === 0 ? s : undefined;
    }, 30_000);
  const tasksFor = async (patient: string): Promise<Task[]> =>
    ((await fhir<Bundle<Task>>('Task?_count=200')).entry ?? []).map((e) => e.resource!).filter((t) => t.for?.reference === patient);

  before(async () => {
    whole = await startWholeService({ EVENTS_SECRET: SECRET, JOBS_BACKOFF_MS: '50' });
    base = whole.base;
    token = await whole.token('system/*.cruds');
  });
  after(async () => {
    await whole?.close();
  });

  it('a notification of a report the FHIR server does not have is dead-lettered; nothing is written', { timeout: 60_000 }, async () => {
    const real = await fhir<DiagnosticReport>('DiagnosticReport/demo-a-001-xr-report');
    const madeUp: DiagnosticReport = { ...real, id: 'made-up-report-1', status: 'final', meta: { versionId: '1', lastUpdated: new Date().toISOString() } };
    const deadBefore = (await stats()).deadLetters;
    const res = await notifyFull(madeUp, 1);
    assert.equal(res.status, 200);
    await idle('the made-up report job', (s) => s.deadLetters > deadBefore);
    const dead = await deadLetters();
    assert.ok(dead.some((d) => /does not exist on the FHIR server/.test(d.reason)));
    assert.ok(!JSON.stringify(dead).includes('made-up-report-1'), 'dead letters carry no raw report id');
    assert.ok(dead.some((d) => /^[0-9a-f]{16}$/.test(d.reportHash ?? '') && d.key === `DiagnosticReport/#${d.reportHash}/_history/1`), 'the hashed report id and key find the job');
    assert.equal((await fetch(`${base}/api/jobs/dead-letters`)).status, 401, 'not without the operator credential');
    assert.equal((await fhirGet(`RiskAssessment/${riskAssessmentIdForReport('made-up-report-1')}`)).status, 404);
  });

  it('a forged future version naming another patient writes nothing, and the genuine sign-off still gives the RiskAssessment and FLS Task', { timeout: 150_000 }, async () => {
    const genuine = await fhir<DiagnosticReport>(`DiagnosticReport/${REPORT}`);
    assert.equal(genuine.status, 'preliminary', 'the demo starts with this report preliminary');
    const forged: DiagnosticReport = {
      ...genuine,
      status: 'final',
      subject: { reference: 'Patient/demo-a-001' },
      meta: { versionId: '999', lastUpdated: '2099-01-01T00:00:00.000Z' },
    };
    const before = await stats();
    const skipped = (s: JobStats): number => Object.entries(s.outcomes).filter(([k]) => k.startsWith('skipped:')).reduce((a, [, v]) => a + v, 0);
    assert.equal((await notifyFull(forged, 2)).status, 200);
    await idle('the forged version job', (s) => skipped(s) > skipped(before));
    const raId = riskAssessmentIdForReport(REPORT);
    assert.equal((await fhirGet(`RiskAssessment/${raId}`)).status, 404, 'the forged payload was not assessed');

    await fhir<DiagnosticReport>(`DiagnosticReport/${REPORT}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json-patch+json' },
      body: JSON.stringify([{ op: 'replace', path: '/status', value: 'final' }]),
    });
    const ra = await waitFor('the RiskAssessment of the genuine finalisation', async () => {
      const r = await fhirGet(`RiskAssessment/${raId}`);
      return r.ok ? ((await r.json()) as RiskAssessment) : undefined;
    }, 90_000);
    assert.equal(ra.subject?.reference, PATIENT, 'the result is about the report\'s real patient');
    const tasks = await waitFor('the FLS triage Task', async () => {
      const mine = await tasksFor(PATIENT);
      return mine.length > 0 ? mine : undefined;
    }, 30_000);
    assert.equal(tasks.length, 1);
    assert.equal((await tasksFor('Patient/demo-a-001')).length, 0, 'the patient named by the forgery got nothing');
  });

  it('a final report whose subject is not its ImagingStudy\'s subject is dead-lettered; nothing is written', { timeout: 60_000 }, async () => {
    const deadBefore = (await stats()).deadLetters;
    const mismatched: DiagnosticReport = {
      resourceType: 'DiagnosticReport',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '26401-0' }] },
      subject: { reference: 'Patient/demo-a-001' },
      imagingStudy: [{ reference: 'ImagingStudy/demo-a-022-xr' }],
      issued: new Date().toISOString(),
    };
    // Created on the server itself: the sandbox's own Subscription notifies the service.
    const created = await fhir<DiagnosticReport>('DiagnosticReport', { method: 'POST', headers: { 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(mismatched) });
    await idle('the mismatched report job', (s) => s.deadLetters > deadBefore);
    assert.ok((await deadLetters()).some((d) => /not the ImagingStudy's subject/.test(d.reason)));
    assert.equal((await fhirGet(`RiskAssessment/${riskAssessmentIdForReport(created.id!)}`)).status, 404);
  });
});

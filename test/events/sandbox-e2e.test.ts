/**
 * End-to-end in the sandbox, through the real composition (`startService`, as `npm start` runs it): marking a demo
 * DiagnosticReport final in the sandbox FHIR server produces, with no other action, a RiskAssessment and — the
 * patient being high-risk (demo-a-022) — an FLS triage Task; duplicate and out-of-order notifications of the same
 * report give that one result (issue 8, "Must show").
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Bundle, DiagnosticReport, RiskAssessment, Task } from '@medplum/fhirtypes';
import { buildNotification } from '../../server/events/notification.ts';
import { buildSubscription } from '../../server/events/subscription.ts';
import { TOPIC_URL } from '../../server/events/topic.ts';
import { REPORT_EVENT_SYSTEM, riskAssessmentIdForReport } from '../../server/jobs/process.ts';
import { idempotencyKey, type JobStats } from '../../server/jobs/types.ts';
import { waitFor } from '../support/service-process.ts';
import { startWholeService, type WholeService } from '../support/whole-service.ts';

const SECRET = 'e2e-test-secret-0123456789abcdef';
const REPORT = 'demo-a-022-xr-report';
const PATIENT = 'Patient/demo-a-022';

describe('report events end-to-end in the sandbox', () => {
  let whole: WholeService;
  let base: string;
  let token: string;

  const fhir = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
    const res = await fetch(`${base}/sandbox/fhir/${path}`, { ...init, headers: { Accept: 'application/fhir+json', Authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) } });
    assert.ok(res.ok, `${init.method ?? 'GET'} ${path.split('?')[0]} → ${res.status}`);
    return (await res.json()) as T;
  };
  // An operations endpoint: the sandbox's system-level token is an operator credential.
  const stats = async (): Promise<JobStats> => (await (await fetch(`${base}/api/jobs/stats`, { headers: { Authorization: `Bearer ${token}` } })).json()) as JobStats;
  const notify = async (body: unknown): Promise<Response> =>
    fetch(`${base}/api/events/notifications`, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json', 'X-Subscription-Secret': SECRET }, body: JSON.stringify(body) });

  before(async () => {
    whole = await startWholeService({ EVENTS_SECRET: SECRET });
    base = whole.base;
    token = await whole.token('system/*.cruds');
  });
  after(async () => {
    await whole?.close();
  });

  it('the sandbox registered and activated the service\'s own Subscription at start-up', async () => {
    const sub = await waitFor('the handshake', async () => {
      const s = await fhir<{ status: string }>('Subscription/frcds-report-events');
      return s.status === 'active' ? s : undefined;
    }, 20_000);
    assert.equal(sub.status, 'active');
  });

  it('marking a preliminary report final yields a RiskAssessment and an FLS triage Task, with no other action', { timeout: 120_000 }, async () => {
    const before = await fhir<DiagnosticReport>(`DiagnosticReport/${REPORT}`);
    assert.equal(before.status, 'preliminary', 'the demo starts with this report preliminary');
    const finalised = await fhir<DiagnosticReport>(`DiagnosticReport/${REPORT}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json-patch+json' },
      body: JSON.stringify([{ op: 'replace', path: '/status', value: 'final' }]),
    });
    const raId = riskAssessmentIdForReport(REPORT);
    const ra = await waitFor('the RiskAssessment', async () => {
      const r = await fetch(`${base}/sandbox/fhir/RiskAssessment/${raId}`, { headers: { Authorization: `Bearer ${token}` } });
      return r.ok ? ((await r.json()) as RiskAssessment) : undefined;
    }, 90_000);
    assert.equal(ra.subject?.reference, PATIENT);
    assert.equal(ra.identifier?.find((i) => i.system === REPORT_EVENT_SYSTEM)?.value, idempotencyKey(REPORT, finalised.meta!.versionId));
    assert.ok(ra.basis?.some((b) => b.reference === `DiagnosticReport/${REPORT}`));
    assert.ok(ra.basis?.some((b) => b.reference === 'ImagingStudy/demo-a-022-xr'));
    const prov = await fhir<{ target: { reference: string }[] }>(`Provenance/${raId}-provenance`);
    assert.equal(prov.target[0]!.reference, `RiskAssessment/${raId}`);
    const tasks = await waitFor('the FLS triage Task', async () => {
      const b = await fhir<Bundle<Task>>('Task?_count=100');
      const mine = (b.entry ?? []).map((e) => e.resource!).filter((t) => t.for?.reference === PATIENT);
      return mine.length > 0 ? mine : undefined;
    }, 30_000);
    assert.equal(tasks.length, 1);
    assert.ok(tasks[0]!.focus?.reference?.endsWith(`RiskAssessment/${raId}`), 'the Task is about this RiskAssessment');
  });

  it('duplicate and out-of-order notifications of the same report give that one result', { timeout: 60_000 }, async () => {
    const raId = riskAssessmentIdForReport(REPORT);
    const history = await fhir<Bundle<DiagnosticReport>>(`DiagnosticReport/${REPORT}/_history`);
    const versions = (history.entry ?? []).map((e) => e.resource!).sort((a, b) => a.meta!.lastUpdated!.localeCompare(b.meta!.lastUpdated!));
    const newest = versions[versions.length - 1]!;
    const oldestFinal = versions.find((v) => v.status === 'final' && v.meta!.versionId !== newest.meta!.versionId);
    assert.ok(oldestFinal, 'the report has an older final version (the seeded one)');
    const subscriptionUrl = `${base}/sandbox/fhir/Subscription/frcds-report-events`;
    const raHistoryBefore = (await fhir<Bundle>(`RiskAssessment/${raId}/_history`)).entry?.length ?? 0;
    const statsBefore = await stats();

    const focus = (v: DiagnosticReport): string => `${base}/sandbox/fhir/DiagnosticReport/${REPORT}/_history/${v.meta!.versionId}`;
    const idOnly = buildNotification({ subscriptionUrl, topic: TOPIC_URL, type: 'event-notification', status: 'active', eventsSinceStart: 1, events: [{ number: 1, timestamp: new Date().toISOString(), focusUrl: focus(newest) }] });
    const older = buildNotification({ subscriptionUrl, topic: TOPIC_URL, type: 'event-notification', status: 'active', eventsSinceStart: 2, events: [{ number: 2, timestamp: new Date().toISOString(), focusUrl: focus(oldestFinal), resource: oldestFinal }] });
    const dup = await (await notify(idOnly)).json() as { accepted: number; duplicates: number };
    assert.equal(dup.duplicates, 1, 'the same version again is not queued again');
    const late = await notify(older);
    assert.equal(late.status, 200);
    // The job re-reads the report from the server (a payload is never trusted), finds the newest version it already
    // assessed, and skips: as a duplicate of that version, or as superseded if it raced the newer one's write.
    const skips = (s: JobStats): number => (s.outcomes['skipped:superseded'] ?? 0) + (s.outcomes['skipped:duplicate'] ?? 0);
    await waitFor('the out-of-order job to finish', async () => {
      const s = await stats();
      return skips(s) > skips(statsBefore) && s.queued === 0 && s.running === 0 ? s : undefined;
    }, 30_000);
    const ra = await fhir<RiskAssessment>(`RiskAssessment/${raId}`);
    assert.equal(ra.identifier?.find((i) => i.system === REPORT_EVENT_SYSTEM)?.value, idempotencyKey(REPORT, newest.meta!.versionId), 'the older version did not overwrite the newer');
    assert.equal((await fhir<Bundle>(`RiskAssessment/${raId}/_history`)).entry?.length ?? 0, raHistoryBefore, 'the RiskAssessment was not written again');
    const tasks = await fhir<Bundle<Task>>('Task?_count=100');
    assert.equal((tasks.entry ?? []).filter((e) => e.resource?.for?.reference === PATIENT).length, 1, 'still one triage Task');
    assert.equal((await stats()).completedKeys, statsBefore.completedKeys);
  });

  it('a plain R4 criteria Subscription (registered over HTTP) gets the final report PUT to {endpoint}/DiagnosticReport/{id}', { timeout: 60_000 }, async () => {
    const sub = buildSubscription({ endpoint: `${base}/api/events/notifications`, mode: 'criteria', headers: [`X-Subscription-Secret: ${SECRET}`] });
    const stored = await fhir<{ id: string }>('Subscription', { method: 'POST', headers: { 'Content-Type': 'application/fhir+json' }, body: JSON.stringify(sub) });
    await waitFor('the criteria Subscription to be active', async () => (await fhir<{ status: string }>(`Subscription/${stored.id}`)).status === 'active', 10_000);
    const count = async (): Promise<number> => {
      const m = /frcds_report_events_received_total\{kind="r4-rest-hook",result="(?:accepted|duplicate)"\} (\d+)/g;
      const text = await (await fetch(`${base}/metrics`)).text();
      return [...text.matchAll(m)].reduce((a, x) => a + Number(x[1]), 0);
    };
    const before = await count();
    await fhir<DiagnosticReport>('DiagnosticReport/demo-a-003-xr-report', {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json-patch+json' },
      body: JSON.stringify([{ op: 'replace', path: '/status', value: 'final' }]),
    });
    await waitFor('the R4 rest-hook PUT', async () => (await count()) > before, 20_000);
    await waitFor('the RiskAssessment', async () => (await fetch(`${base}/sandbox/fhir/RiskAssessment/${riskAssessmentIdForReport('demo-a-003-xr-report')}`, { headers: { Authorization: `Bearer ${token}` } })).ok, 45_000);
  });
});

/**
 * Bad notifications against the running service (`startService`, sandbox mode): wrong or missing secret → 401,
 * malformed Bundle → 400 naming the problem, unknown topic → 422 and a dead letter with the reason, a report that
 * leads to no ImagingStudy → a dead letter with the reason; the service keeps serving throughout (issue 8,
 * "Must show"). Also: a report found by accession number alone is assessed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DiagnosticReport, ImagingStudy } from '@medplum/fhirtypes';
import { buildNotification } from '../../server/events/notification.ts';
import { TOPIC_URL } from '../../server/events/topic.ts';
import { riskAssessmentIdForReport } from '../../server/jobs/process.ts';
import type { DeadLetterView } from '../../server/jobs/routes.ts';
import { hashPatientId } from '../../server/logging.ts';
import { waitFor } from '../support/service-process.ts';
import { startWholeService, type WholeService } from '../support/whole-service.ts';

const SECRET = 'bad-notification-secret-0123456789';

describe('bad notifications are rejected or dead-lettered, never crash the service', () => {
  let whole: WholeService;
  let base: string;
  let token: string;

  const post = (body: string | object, headers: Record<string, string> = { 'X-Subscription-Secret': SECRET }): Promise<Response> =>
    fetch(`${base}/api/events/notifications`, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  // An operations endpoint: the sandbox's system-level token is an operator credential.
  const deadLetters = async (): Promise<DeadLetterView[]> => ((await (await fetch(`${base}/api/jobs/dead-letters`, { headers: { Authorization: `Bearer ${token}` } })).json()) as { deadLetters: DeadLetterView[] }).deadLetters;
  const fhirWrite = async <T extends { resourceType: string }>(r: T): Promise<T> => {
    const res = await fetch(`${base}/sandbox/fhir/${r.resourceType}`, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token}` }, body: JSON.stringify(r) });
    assert.equal(res.status, 201);
    return (await res.json()) as T;
  };
  const event = (focusUrl: string, topic = TOPIC_URL): object =>
    buildNotification({ subscriptionUrl: `${base}/sandbox/fhir/Subscription/x`, topic, type: 'event-notification', status: 'active', eventsSinceStart: 1, events: [{ number: 1, timestamp: new Date().toISOString(), focusUrl }] });

  before(async () => {
    whole = await startWholeService({ EVENTS_SECRET: SECRET, JOBS_BACKOFF_MS: '50' });
    base = whole.base;
    token = await whole.token('system/*.cruds');
  });
  after(async () => {
    await whole?.close();
  });

  it('wrong or missing secret → 401 without details', async () => {
    const good = event(`${base}/sandbox/fhir/DiagnosticReport/demo-a-001-xr-report`);
    const wrong = await post(good, { 'X-Subscription-Secret': 'not-the-secret-at-all' });
    assert.equal(wrong.status, 401);
    assert.equal(await wrong.text(), '');
    assert.equal((await post(good, {})).status, 401);
    const put = await fetch(`${base}/api/events/notifications/DiagnosticReport/x`, { method: 'PUT', headers: { 'Content-Type': 'application/fhir+json' }, body: '{}' });
    assert.equal(put.status, 401);
  });

  it('malformed Bundles → 400 saying what is wrong', async () => {
    const notJson = await post('{"resourceType": "Bundle",');
    assert.equal(notJson.status, 400);
    const collection = await post({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Parameters', parameter: [] } }] });
    assert.equal(collection.status, 400);
    assert.match(JSON.stringify(await collection.json()), /type/);
    const noStatus = await post({ resourceType: 'Bundle', type: 'history', entry: [{ resource: { resourceType: 'Patient' } }] });
    assert.equal(noStatus.status, 400);
    assert.match(JSON.stringify(await noStatus.json()), /SubscriptionStatus/);
    const noType = await post({ resourceType: 'Bundle', type: 'history', entry: [{ resource: { resourceType: 'Parameters', parameter: [{ name: 'topic', valueCanonical: TOPIC_URL }] } }] });
    assert.equal(noType.status, 400);
    assert.match(JSON.stringify(await noType.json()), /parameter ..type.. is missing/);
    const badPut = await fetch(`${base}/api/events/notifications/DiagnosticReport/abc`, { method: 'PUT', headers: { 'Content-Type': 'application/fhir+json', 'X-Subscription-Secret': SECRET }, body: JSON.stringify({ resourceType: 'DiagnosticReport', id: 'other', status: 'final' }) });
    assert.equal(badPut.status, 400);
  });

  it('unknown topic → 422 and a dead letter with the reason', async () => {
    const res = await post(event(`${base}/sandbox/fhir/DiagnosticReport/demo-a-001-xr-report`, 'http://example.org/topic/lab-result'));
    assert.equal(res.status, 422);
    assert.match(JSON.stringify(await res.json()), /unknown topic/);
    assert.ok((await deadLetters()).some((d) => /unknown topic http:\/\/example\.org\/topic\/lab-result/.test(d.reason)));
  });

  it('a notification typed with the older application/json+fhir is read like application/fhir+json', async () => {
    const body = JSON.stringify(event(`${base}/sandbox/fhir/DiagnosticReport/demo-a-001-xr-report`, 'http://example.org/topic/legacy-type'));
    const res = await fetch(`${base}/api/events/notifications`, { method: 'POST', headers: { 'Content-Type': 'application/json+fhir; charset=utf-8', 'X-Subscription-Secret': SECRET }, body });
    assert.equal(res.status, 422, 'parsed and judged on its content (an unknown topic), not refused for its media type');
  });

  it('an event whose focus is not a DiagnosticReport → 422 and a dead letter', async () => {
    const res = await post(event(`${base}/sandbox/fhir/Patient/demo-a-001`));
    assert.equal(res.status, 422);
    assert.ok((await deadLetters()).some((d) => /focus is a Patient/.test(d.reason)));
  });

  it('a final report with no study → dead-lettered with the reason (sent by the sandbox Subscription itself)', { timeout: 60_000 }, async () => {
    const orphan = await fhirWrite<DiagnosticReport>({ resourceType: 'DiagnosticReport', status: 'final', category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD' }] }], code: { text: 'XR hip' }, subject: { reference: 'Patient/demo-a-001' } });
    const dangling = await fhirWrite<DiagnosticReport>({ resourceType: 'DiagnosticReport', status: 'final', code: { text: 'XR hip' }, subject: { reference: 'Patient/demo-a-001' }, imagingStudy: [{ reference: 'ImagingStudy/does-not-exist' }] });
    const letters = await waitFor('both dead letters', async () => {
      const d = await deadLetters();
      // Dead letters name reports by the salted hash the service's logs use (same process: same salt).
      const a = d.find((x) => x.reportHash === hashPatientId(orphan.id!));
      const b = d.find((x) => x.reportHash === hashPatientId(dangling.id!));
      return a && b ? { a, b } : undefined;
    }, 45_000);
    assert.match(letters.a.reason, /names no ImagingStudy/);
    assert.match(letters.b.reason, new RegExp(`ImagingStudy/#${hashPatientId('does-not-exist')} does not exist`));
    for (const raw of [orphan.id!, dangling.id!, 'does-not-exist']) assert.ok(!JSON.stringify(letters).includes(raw), `raw id ${raw} in a dead letter`);
  });

  it('a report that names its study only by accession number is assessed', { timeout: 60_000 }, async () => {
    const studyRes = await fetch(`${base}/sandbox/fhir/ImagingStudy/demo-a-001-xr`, { headers: { Authorization: `Bearer ${token}` } });
    const study = (await studyRes.json()) as ImagingStudy;
    const acsn = study.identifier!.find((i) => i.type?.coding?.some((c) => c.code === 'ACSN'))!;
    const report = await fhirWrite<DiagnosticReport>({ resourceType: 'DiagnosticReport', status: 'final', category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD' }] }], code: { text: 'XR hip' }, subject: { reference: 'Patient/demo-a-001' }, identifier: [{ type: acsn.type!, value: acsn.value! }] });
    await waitFor('the RiskAssessment', async () => (await fetch(`${base}/sandbox/fhir/RiskAssessment/${riskAssessmentIdForReport(report.id!)}`, { headers: { Authorization: `Bearer ${token}` } })).ok, 45_000);
  });

  it('the service is still healthy and counting', async () => {
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /frcds_report_events_received_total\{kind="any",result="rejected"\} [1-9]/);
    assert.match(metrics, /frcds_jobs_finished_total\{outcome="dead"\} [1-9]/);
  });
});

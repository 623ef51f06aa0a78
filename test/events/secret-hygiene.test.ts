/**
 * `EVENTS_AUTH=secret` keeps its secret to itself: through the whole service (`startService`, sandbox mode, logging
 * at `trace` into a buffer), across the signed-up handshake, a genuine finalisation, wrong and missing secrets (one
 * of them the real secret with a character added), malformed and unknown-topic notifications, the secret appears in
 * no log line, in no `GET /api/events/subscriptions` answer and in no error answer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Subscription } from '@medplum/fhirtypes';
import { ClientCredentialsTokenProvider } from '../../server/auth/token-provider.ts';
import { loadConfig } from '../../server/config.ts';
import { buildNotification } from '../../server/events/notification.ts';
import { TOPIC_URL } from '../../server/events/topic.ts';
import { startService, type RunningService } from '../../server/index.ts';
import { riskAssessmentIdForReport } from '../../server/jobs/process.ts';
import { createLogger } from '../../server/logging.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/service-process.ts';

const SECRET = 'hygiene-secret-7f3a9c2e5b1d4086';
const REPORT = 'demo-a-010-xr-report';

describe('the shared secret stays out of logs, answers and error messages', () => {
  const logLines: string[] = [];
  const answers: string[] = [];
  let service: RunningService;
  let dataDir: string;
  let base: string;
  let token: string;

  const post = async (body: string, headers: Record<string, string>): Promise<Response> => {
    const res = await fetch(`${base}/api/events/notifications`, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json', ...headers }, body });
    answers.push(`${res.status} ${JSON.stringify([...res.headers])} ${await res.clone().text()}`);
    return res;
  };
  const event = (focus: string, topic = TOPIC_URL): string =>
    JSON.stringify(buildNotification({ subscriptionUrl: `${base}/sandbox/fhir/Subscription/frcds-report-events`, topic, type: 'event-notification', status: 'active', eventsSinceStart: 50, events: [{ number: 50, timestamp: new Date().toISOString(), focusUrl: focus }] }));

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'frcds-hygiene-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const config = loadConfig({
      PORT: String(port), HOST: '127.0.0.1', PUBLIC_BASE_URL: base, LOG_LEVEL: 'trace', INFERENCE_DEVICE: 'cpu',
      CDS_FEEDBACK_DB: join(dataDir, 'cds.sqlite'), FLS_AUDIT_DB: join(dataDir, 'fls-audit.sqlite'), JOBS_DB_PATH: join(dataDir, 'jobs.sqlite'), STATE_DB: join(dataDir, 'state.sqlite'),
      EVENTS_SECRET: SECRET,
    });
    const logger = createLogger({ level: 'trace', destination: new Writable({ write: (chunk: Buffer, _e, cb) => void (logLines.push(chunk.toString('utf8')), cb()) }) });
    service = await startService(config, logger);
    await service.started;
    const backend = config.files.smartClients!.clients.find((c) => c.clientId === 'demo-backend')!;
    token = await new ClientCredentialsTokenProvider({ tokenUrl: `${base}/sandbox/auth/token`, clientId: 'demo-backend', clientSecret: backend.clientSecret!, scope: 'system/*.cruds' }).token();
  });
  after(async () => {
    await service?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('exercises the receiver: handshake, a genuine finalisation, and every kind of refusal', { timeout: 120_000 }, async () => {
    const fhirGet = async <T>(path: string): Promise<T | undefined> => {
      const r = await fetch(`${base}/sandbox/fhir/${path}`, { headers: { Authorization: `Bearer ${token}` } });
      return r.ok ? ((await r.json()) as T) : undefined;
    };
    const sub = await waitFor('the handshake', async () => ((await fhirGet<Subscription>('Subscription/frcds-report-events'))?.status === 'active' ? true : undefined), 20_000);
    assert.ok(sub);
    const patched = await fetch(`${base}/sandbox/fhir/DiagnosticReport/${REPORT}`, { method: 'PATCH', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json-patch+json' }, body: JSON.stringify([{ op: 'replace', path: '/status', value: 'final' }]) });
    assert.equal(patched.status, 200);
    await waitFor('the RiskAssessment', () => fhirGet(`RiskAssessment/${riskAssessmentIdForReport(REPORT)}`), 90_000);

    const focus = `${base}/sandbox/fhir/DiagnosticReport/demo-a-001-xr-report/_history/1`;
    assert.equal((await post(event(focus), { 'X-Subscription-Secret': `${SECRET}x` })).status, 401, 'the real secret plus a character');
    assert.equal((await post(event(focus), { 'X-Subscription-Secret': SECRET.slice(0, -1) })).status, 401, 'a prefix of the real secret');
    assert.equal((await post(event(focus), { Authorization: `Bearer ${SECRET}` })).status, 401, 'the secret in the wrong header');
    assert.equal((await post(event(focus), {})).status, 401);
    assert.equal((await post('{"resourceType": "Bundle",', { 'X-Subscription-Secret': SECRET })).status, 400);
    assert.equal((await post(JSON.stringify({ resourceType: 'Bundle', type: 'collection' }), { 'X-Subscription-Secret': SECRET })).status, 400);
    assert.equal((await post(event(focus, 'http://example.org/other-topic'), { 'X-Subscription-Secret': SECRET })).status, 422);
    assert.equal((await post(event(`${base}/sandbox/fhir/Patient/demo-a-001`), { 'X-Subscription-Secret': SECRET })).status, 422);
    const put = await fetch(`${base}/api/events/notifications/DiagnosticReport/x`, { method: 'PUT', headers: { 'Content-Type': 'application/fhir+json', 'X-Subscription-Secret': SECRET }, body: JSON.stringify({ resourceType: 'DiagnosticReport', id: 'y', status: 'final', code: { text: 'x' } }) });
    answers.push(await put.text());
    assert.equal(put.status, 400);
  });

  it('the secret is in no answer, not in /api/events/subscriptions, and in no log line', async () => {
    // The list may be guarded for operators: then ask with the sandbox's system token.
    let res = await fetch(`${base}/api/events/subscriptions`);
    if (res.status === 401 || res.status === 403) res = await fetch(`${base}/api/events/subscriptions`, { headers: { Authorization: `Bearer ${token}` } });
    const subs = await res.text();
    assert.match(subs, /frcds-report-events/, 'the subscriptions list names the Subscription (so the check below looks at real content)');
    assert.ok(!subs.includes(SECRET), 'not in /api/events/subscriptions');
    for (const a of answers) assert.ok(!a.includes(SECRET), `not in an answer: ${a.slice(0, 200)}`);
    assert.ok(logLines.length > 20, `the service logged (${logLines.length} lines)`);
    assert.ok(logLines.some((l) => /notification rejected/.test(l)), 'the refusals were logged');
    const leaking = logLines.filter((l) => l.includes(SECRET) || l.includes(SECRET.slice(0, 12)));
    assert.deepEqual(leaking, [], 'no log line carries the secret or a part of it');
  });
});

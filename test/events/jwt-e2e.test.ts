/**
 * `EVENTS_AUTH=jwt` end to end in the sandbox, through the real composition (`startService`): the service's own
 * Subscription holds no secret, the sandbox signs every notification with its authorization server's key, and
 * marking a demo report final produces the RiskAssessment. Notifications without a token, with an expired token, a
 * token for another audience, one signed by another key, an HS256 one, or a replayed genuine one are refused with a
 * bare 401 and nothing is queued; the same notification with a fresh genuine token is accepted (so the refusals are
 * the token's doing).
 *
 * To sign tokens that are wrong in exactly one way with the sandbox's genuine key, the test borrows the sandbox
 * signer: it records the instance whose `signJwt` the notifier calls. To replay a genuine token, it records the
 * Authorization header of the sandbox's own deliveries (same process, global `fetch`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT, type JSONWebKeySet } from 'jose';
import type { DiagnosticReport, RiskAssessment, Subscription } from '@medplum/fhirtypes';
import { buildNotification } from '../../server/events/notification.ts';
import { TOPIC_URL } from '../../server/events/topic.ts';
import { riskAssessmentIdForReport } from '../../server/jobs/process.ts';
import type { JobStats } from '../../server/jobs/types.ts';
import { TokenSigner } from '../../server/sandbox/smart/tokens.ts';
import { waitFor } from '../support/service-process.ts';
import { startWholeService, type WholeService } from '../support/whole-service.ts';

const REPORT = 'demo-a-022-xr-report';
/** A preliminary demo report nobody finalises in this test: a notification about it would queue a new job. */
const UNTOUCHED_REPORT = 'demo-a-031-xr-report';

interface Delivery { url: string; method: string; authorization: string | null; secretHeader: string | null; body: string }

describe('report events with EVENTS_AUTH=jwt, end to end in the sandbox', () => {
  let whole: WholeService;
  let base: string;
  let aud: string;
  let token: string;
  let sandboxSigner: TokenSigner | undefined;
  const deliveries: Delivery[] = [];
  const originalSignJwt = TokenSigner.prototype.signJwt;
  const originalFetch = globalThis.fetch;

  const fhir = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
    const res = await fetch(`${base}/sandbox/fhir/${path}`, { ...init, headers: { Accept: 'application/fhir+json', Authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) } });
    assert.ok(res.ok, `${init.method ?? 'GET'} ${path.split('?')[0]} → ${res.status}`);
    return (await res.json()) as T;
  };
  // An operations endpoint: the sandbox's system-level token is an operator credential there.
  const stats = async (): Promise<JobStats> => (await (await fetch(`${base}/api/jobs/stats`, { headers: { Authorization: `Bearer ${token}` } })).json()) as JobStats;
  const metric = async (kind: string, result: string): Promise<number> => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const m = new RegExp(`frcds_report_events_received_total\\{kind="${kind}",result="${result}"\\} (\\d+)`).exec(text);
    return m ? Number(m[1]) : 0;
  };
  const eventFor = (reportId: string, versionId = '1'): object =>
    buildNotification({ subscriptionUrl: `${base}/sandbox/fhir/Subscription/frcds-report-events`, topic: TOPIC_URL, type: 'event-notification', status: 'active', eventsSinceStart: 99, events: [{ number: 99, timestamp: new Date().toISOString(), focusUrl: `${base}/sandbox/fhir/DiagnosticReport/${reportId}/_history/${versionId}` }] });
  const post = (body: object, headers: Record<string, string>): Promise<Response> =>
    originalFetch(`${base}/api/events/notifications`, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json', ...headers }, body: JSON.stringify(body) });
  const signer = (): TokenSigner => {
    assert.ok(sandboxSigner, 'the sandbox signed at least one notification');
    return sandboxSigner;
  };
  const nowS = (): number => Math.floor(Date.now() / 1000);

  before(async () => {
    const remember = (s: TokenSigner): void => void (sandboxSigner = s);
    TokenSigner.prototype.signJwt = function (this: TokenSigner, ...args: Parameters<TokenSigner['signJwt']>) {
      remember(this);
      return originalSignJwt.apply(this, args);
    };
    globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = String(input instanceof Request ? input.url : input);
      // The sandbox notifier passes a Headers object; the test's own calls pass plain objects.
      if (url.includes('/api/events/notifications') && init?.headers instanceof Headers) {
        deliveries.push({ url, method: init.method ?? 'GET', authorization: init.headers.get('authorization'), secretHeader: init.headers.get('x-subscription-secret'), body: String(init.body ?? '') });
      }
      return originalFetch(input, init);
    }) as typeof fetch;
    whole = await startWholeService({ EVENTS_AUTH: 'jwt' });
    base = whole.base;
    aud = `${base}/api/events/notifications`;
    token = await whole.token('system/*.cruds');
  });
  after(async () => {
    TokenSigner.prototype.signJwt = originalSignJwt;
    globalThis.fetch = originalFetch;
    await whole?.close();
  });

  it('the service\'s own Subscription holds no secret and the signed handshake activated it', async () => {
    const sub = await waitFor('the handshake', async () => {
      const s = await fhir<Subscription>('Subscription/frcds-report-events');
      return s.status === 'active' ? s : undefined;
    }, 20_000);
    assert.equal(sub.channel.header, undefined, 'no channel.header: nothing secret is stored');
    assert.doesNotMatch(JSON.stringify(sub), /secret/i);
    const handshake = deliveries.find((d) => d.body.includes('"handshake"'));
    assert.ok(handshake, 'the sandbox delivered a handshake');
    assert.ok(handshake.authorization?.startsWith('Bearer '), 'the handshake carried a bearer token');
    assert.equal(handshake.secretHeader, null);
  });

  it('finalising a demo report in the sandbox yields the RiskAssessment; the notification was a short-lived signed JWT', { timeout: 120_000 }, async () => {
    const before = await fhir<DiagnosticReport>(`DiagnosticReport/${REPORT}`);
    assert.equal(before.status, 'preliminary');
    await fhir<DiagnosticReport>(`DiagnosticReport/${REPORT}`, { method: 'PATCH', headers: { 'Content-Type': 'application/json-patch+json' }, body: JSON.stringify([{ op: 'replace', path: '/status', value: 'final' }]) });
    const ra = await waitFor('the RiskAssessment', async () => {
      const r = await fetch(`${base}/sandbox/fhir/RiskAssessment/${riskAssessmentIdForReport(REPORT)}`, { headers: { Authorization: `Bearer ${token}` } });
      return r.ok ? ((await r.json()) as RiskAssessment) : undefined;
    }, 90_000);
    assert.equal(ra.subject?.reference, 'Patient/demo-a-022');
    const delivery = deliveries.find((d) => d.body.includes('event-notification') && d.body.includes(REPORT));
    assert.ok(delivery?.authorization, 'the event notification carried a token');
    const jwt = delivery.authorization.replace(/^Bearer /, '');
    const claims = decodeJwt(jwt);
    assert.equal(decodeProtectedHeader(jwt).alg, 'RS256');
    assert.equal(claims.iss, `${base}/sandbox/auth`);
    assert.equal(claims.aud, aud);
    assert.ok(typeof claims.jti === 'string' && claims.jti.length > 0);
    assert.ok(claims.exp! - claims.iat! <= 300, 'valid for at most 5 minutes');
  });

  it('no token, an expired one, another audience, another key, HS256, a replayed genuine one → bare 401, nothing queued', { timeout: 60_000 }, async () => {
    const body = eventFor(UNTOUCHED_REPORT);
    const statsBefore = await waitFor('the queue to be idle', async () => {
      const s = await stats();
      return s.queued === 0 && s.running === 0 && s.delayed === 0 ? s : undefined;
    }, 30_000);
    const acceptedBefore = await metric('event-notification', 'accepted');
    const rejectedBefore = await metric('any', 'rejected');
    const sandboxJwks = (await (await originalFetch(`${base}/sandbox/auth/jwks`)).json()) as JSONWebKeySet;
    const kid = sandboxJwks.keys[0]!.kid!;
    const iss = `${base}/sandbox/auth`;

    // another key: an RSA key of the attacker's, under the sandbox key's kid, with every claim right
    const attacker = await generateKeyPair('RS256');
    const otherKey = await new SignJWT({ jti: 'other-key' }).setProtectedHeader({ alg: 'RS256', kid }).setIssuer(iss).setAudience(aud).setIssuedAt().setExpirationTime('60s').sign(attacker.privateKey);
    // HS256 keyed with the sandbox's public key (the classic algorithm-confusion forgery)
    const hsKey = new TextEncoder().encode(JSON.stringify(sandboxJwks.keys[0]));
    const hs256 = await new SignJWT({ jti: 'hs256' }).setProtectedHeader({ alg: 'HS256', kid }).setIssuer(iss).setAudience(aud).setIssuedAt().setExpirationTime('60s').sign(hsKey);
    const genuine = deliveries.find((d) => d.body.includes('event-notification') && d.body.includes(REPORT))!.authorization!;

    const cases: [string, Record<string, string>][] = [
      ['no token', {}],
      ['a shared-secret header instead of a token', { 'X-Subscription-Secret': 'a-long-guessed-secret-value-123' }],
      ['an expired token (genuine key)', { Authorization: `Bearer ${await signer().signJwt({}, { audience: aud, lifetimeSeconds: 60, issuedAt: nowS() - 600 })}` }],
      ['a token for another audience (genuine key)', { Authorization: `Bearer ${await signer().signJwt({}, { audience: `${base}/cds-services/fracture-risk-order-select`, lifetimeSeconds: 60 })}` }],
      ['a sandbox access token (genuine key, audience the FHIR server)', { Authorization: `Bearer ${token}` }],
      ['a token valid for an hour (genuine key)', { Authorization: `Bearer ${await signer().signJwt({}, { audience: aud, lifetimeSeconds: 3600 })}` }],
      ['a token signed by another key', { Authorization: `Bearer ${otherKey}` }],
      ['an HS256 token', { Authorization: `Bearer ${hs256}` }],
      ['a replayed genuine token', { Authorization: genuine }],
    ];
    for (const [what, headers] of cases) {
      const res = await post(body, headers);
      assert.equal(res.status, 401, what);
      assert.equal(await res.text(), '', `${what}: a bare 401`);
    }
    const put = await originalFetch(`${base}/api/events/notifications/DiagnosticReport/${UNTOUCHED_REPORT}`, { method: 'PUT', headers: { 'Content-Type': 'application/fhir+json', Authorization: genuine }, body: JSON.stringify({ resourceType: 'DiagnosticReport', id: UNTOUCHED_REPORT, status: 'final', code: { text: 'x' } }) });
    assert.equal(put.status, 401, 'the R4 PUT route is guarded the same way');

    assert.equal(await metric('event-notification', 'accepted'), acceptedBefore, 'nothing accepted');
    assert.equal(await metric('any', 'rejected'), rejectedBefore + cases.length + 1, 'every one counted as rejected');
    const statsAfter = await stats();
    assert.equal(statsAfter.queued + statsAfter.running + statsAfter.delayed + statsAfter.done, statsBefore.queued + statsBefore.running + statsBefore.delayed + statsBefore.done, 'no job was queued');

    // The control: the same notification with a fresh genuine token is taken.
    const ok = await post(body, { Authorization: `Bearer ${await signer().signJwt({}, { audience: aud, lifetimeSeconds: 60 })}` });
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { accepted: number }).accepted, 1);
  });
});

/**
 * Operations endpoints, security headers and hostile bodies against the running service (`startWholeService`,
 * sandbox mode, no `OPS_TOKEN`):
 * - `/api/jobs/*`, `/api/events/subscriptions`, `/api/feedback/summary` answer 401 without a credential, 200 with a
 *   system-level token of the sandbox authorization server, 401 with the app's patient-level token;
 * - the real demo EHR pages and the consent page cannot be framed, the app keeps its own framing policy, and every
 *   answer sends nosniff and no-referrer;
 * - a 3,000-deep resource sent through the SMART guard gets a 400 OperationOutcome, not the engine's stack overflow.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { getNoFollow, pkce, postForm } from '../support/oauth.ts';
import { startWholeService, type WholeService } from '../support/whole-service.ts';

const OPS_PATHS = ['/api/jobs/stats', '/api/jobs/dead-letters', '/api/events/subscriptions', '/api/feedback/summary'];

describe('operations endpoints, headers and over-deep bodies on the running service', () => {
  let whole: WholeService;
  let base: string;
  let systemToken: string;
  /** The consent page of a standalone launch (a live `request` handle). */
  let consent: URL;
  /** A patient-level token of the SMART app (standalone launch through the consent page). */
  let patientToken: string;

  before(async () => {
    whole = await startWholeService();
    base = whole.base;
    systemToken = await whole.token('system/*.rs');
    const p = pkce();
    const redirectUri = `${base}/app/index.html`;
    const authorize = new URL(`${base}/sandbox/auth/authorize`);
    for (const [k, v] of Object.entries({ response_type: 'code', client_id: 'fracture-risk-app', redirect_uri: redirectUri, scope: 'launch/patient openid fhirUser patient/*.rs', state: 's', aud: whole.config.fhir.publicBaseUrl, code_challenge: p.challenge, code_challenge_method: 'S256' })) authorize.searchParams.set(k, v);
    const r = await getNoFollow(authorize.toString());
    assert.equal(r.status, 302);
    consent = r.location!;
    const second = await getNoFollow(authorize.toString());
    const form = new URLSearchParams({ request: second.location!.searchParams.get('request')!, user: 'Practitioner/demo-clinician', patient: 'demo-a-022', decision: 'allow' });
    const post = await fetch(new URL('pick-patient', second.location!), { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form.toString(), redirect: 'manual' });
    assert.equal(post.status, 302);
    const code = new URL(post.headers.get('location')!).searchParams.get('code')!;
    const t = await postForm(`${base}/sandbox/auth/token`, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: 'fracture-risk-app', code_verifier: p.verifier });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    patientToken = String(t.body['access_token']);
  });
  after(async () => {
    await whole?.close();
  });

  it('operations endpoints: 401 without a credential or with a patient-level token, 200 with a system-level sandbox token', async () => {
    for (const path of OPS_PATHS) {
      const none = await fetch(`${base}${path}`);
      assert.equal(none.status, 401, `${path} without a credential`);
      assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer /);
      assert.equal((await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${patientToken}` } })).status, 401, `${path} with the app's patient token`);
      const ok = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${systemToken}` } });
      assert.equal(ok.status, 200, `${path} with a system token`);
      assert.equal(ok.headers.get('cache-control'), 'no-store', path);
    }
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'probes stay open');
    assert.equal((await fetch(`${base}/metrics`)).status, 200, 'probes stay open');
  });

  it('the demo EHR and the consent page cannot be framed; the app can be, by APP_FRAME_ANCESTORS only; all send nosniff and no-referrer', async () => {
    const csp = async (url: string | URL, headers: Record<string, string> = {}): Promise<string> => {
      const res = await fetch(url, { headers, redirect: 'manual' });
      await res.arrayBuffer();
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', String(url));
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer', String(url));
      return res.headers.get('content-security-policy') ?? '';
    };
    const ehr = await csp(`${base}/sandbox/ehr/`);
    assert.match(ehr, /frame-ancestors 'none'/);
    assert.match(ehr, /frame-src 'self'/, 'the EHR still frames the app');
    assert.match(await csp(`${base}/sandbox/ehr/patients/demo-a-022`), /frame-ancestors 'none'/);
    const page = await fetch(consent);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Sign in as \(demo user\)/);
    assert.match(await csp(consent), /frame-ancestors 'none'/);
    assert.match(await csp(`${base}/`, { Accept: 'text/html' }), /frame-ancestors 'none'/);
    assert.match(await csp(`${base}/app/index.html`), /frame-ancestors 'self'/);
    for (const path of ['/healthz', '/cds-services', '/sandbox/fhir/metadata', '/api/fls/worklist', '/sandbox/auth/.well-known/smart-configuration']) {
      assert.match(await csp(`${base}${path}`), /default-src 'none'.*frame-ancestors 'none'/, path);
    }
  });

  it('a 3,000-deep resource through the SMART guard gets a 400 OperationOutcome without internal text', async () => {
    const levels = 3000;
    const body = `{"resourceType":"Patient","extension":[${'{"url":"urn:x","extension":['.repeat(levels)}{"url":"urn:x","valueString":"end"}${']}'.repeat(levels)}]}`;
    const res = await fetch(`${base}/sandbox/fhir/Patient`, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${await whole.token('system/*.cruds')}` }, body });
    const text = await res.text();
    assert.equal(res.status, 400, text.slice(0, 300));
    const o = JSON.parse(text) as OperationOutcome;
    assert.equal(o.resourceType, 'OperationOutcome');
    assert.match(o.issue?.[0]?.details?.text ?? '', /more than 100 levels deep/);
    assert.ok(!/call stack|RangeError/.test(text), text.slice(0, 300));
    const asPatient = await fetch(`${base}/sandbox/fhir/Observation`, { method: 'POST', headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${patientToken}` }, body: body.replace('"resourceType":"Patient"', '"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/demo-a-022"}') });
    const patientText = await asPatient.text();
    assert.ok([400, 403].includes(asPatient.status), `${asPatient.status} ${patientText.slice(0, 300)}`);
    assert.ok(!/call stack|RangeError/.test(patientText), patientText.slice(0, 300));
  });
});

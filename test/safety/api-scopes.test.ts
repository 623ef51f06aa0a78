/**
 * `/api/assessments` checks the scopes of the access token, not only that it is valid: it needs one covering
 * reading RiskAssessment (`patient/RiskAssessment.r`, `user/…`, `system/…`, or a wider one such as `patient/*.rs`);
 * any other token is 403 `insufficient_scope`. Answers carry `Cache-Control: no-store`. The whole service runs in
 * this process on the fixture cohort; tokens come from the sandbox authorization server over HTTP (EHR launch for
 * patient-level ones, client_credentials for system-level ones).
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../../server/config.ts';
import { ASSESSMENT_SCOPES } from '../../server/risk/routes.ts';
import { getNoFollow, pkce, postForm } from '../support/oauth.ts';
import { startWholeService, type WholeService } from '../support/whole-service.ts';

const PATIENT = 'fx-0001';

describe('/api/assessments needs a RiskAssessment read scope', () => {
  let svc: WholeService;

  /** A patient-level token for `scope` (EHR launch, authorization code with PKCE, as the SMART app gets it). */
  const launchToken = async (scope: string): Promise<string> => {
    const launchRes = await fetch(`${svc.base}/sandbox/auth/launch`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ patient: PATIENT }) });
    assert.equal(launchRes.status, 201);
    const { launch } = (await launchRes.json()) as { launch: string };
    const p = pkce();
    const redirectUri = `${svc.base}/app/index.html`;
    const auth = await getNoFollow(
      `${svc.base}/sandbox/auth/authorize?${new URLSearchParams({ response_type: 'code', client_id: 'fracture-risk-app', redirect_uri: redirectUri, scope: `launch openid ${scope}`, state: 's', aud: `${svc.base}/sandbox/fhir`, launch, code_challenge: p.challenge, code_challenge_method: 'S256' })}`,
    );
    const code = auth.location?.searchParams.get('code');
    assert.ok(code, `authorize answered ${auth.status} ${auth.location}`);
    const t = await postForm(`${svc.base}/sandbox/auth/token`, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: 'fracture-risk-app', code_verifier: p.verifier });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    assert.equal(t.body['scope'], `launch openid ${scope}`, 'the scopes asked for were granted as they are');
    return String(t.body['access_token']);
  };

  const assess = (token: string): Promise<Response> =>
    fetch(`${svc.base}/api/assessments`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, body: JSON.stringify({ patient: PATIENT }) });

  const insufficient = async (res: Response, what: string): Promise<void> => {
    assert.equal(res.status, 403, `${what}: ${res.status} ${await res.clone().text()}`);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer .*error="insufficient_scope"/, what);
    assert.match(challenge, /scope="patient\/RiskAssessment\.r user\/RiskAssessment\.r system\/RiskAssessment\.r"/, what);
    assert.equal(((await res.json()) as { code: string }).code, 'INSUFFICIENT_SCOPE', what);
  };

  before(async () => {
    svc = await startWholeService({
      SANDBOX_DATA_DIR: join(REPO_ROOT, 'test/fixtures/fhir-cohort'),
      MODELS_DIR: join(REPO_ROOT, 'test/fixtures/models'),
      IMAGING_WORKERS: '0',
    });
  });
  after(async () => svc?.close());

  test('the scopes named in the challenge are the ones the guard is built with', () => {
    assert.deepEqual([...ASSESSMENT_SCOPES], ['patient/RiskAssessment.r', 'user/RiskAssessment.r', 'system/RiskAssessment.r']);
  });

  test('a valid token for the right patient but without a RiskAssessment scope is 403 insufficient_scope', async () => {
    const patientOnly = await launchToken('patient/Patient.rs patient/Observation.rs');
    await insufficient(await assess(patientOnly), 'patient/Patient.rs patient/Observation.rs');
    await insufficient(await fetch(`${svc.base}/api/assessments/anything`, { headers: { Authorization: `Bearer ${patientOnly}` } }), 'GET by id');
    const createOnly = await launchToken('patient/ServiceRequest.c');
    await insufficient(await assess(createOnly), 'patient/ServiceRequest.c');
    await insufficient(await assess(await svc.token('system/Patient.rs')), 'system/Patient.rs');
  });

  test('patient/RiskAssessment.rs (the app), patient/*.rs and system/RiskAssessment.rs pass; answers are no-store', async () => {
    for (const token of [await launchToken('patient/RiskAssessment.rs'), await launchToken('patient/*.rs'), await svc.token('system/RiskAssessment.rs')]) {
      const res = await assess(token);
      assert.ok(res.status === 200 || res.status === 201, `${res.status} ${await res.clone().text()}`);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const { assessment } = (await res.json()) as { assessment: { id: string } };
      const again = await fetch(`${svc.base}/api/assessments/${assessment.id}`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(again.status, 200);
      assert.equal(again.headers.get('cache-control'), 'no-store');
    }
    const missing = await fetch(`${svc.base}/api/assessments/no-such-id`, { headers: { Authorization: `Bearer ${await svc.token('system/RiskAssessment.rs')}` } });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('cache-control'), 'no-store', 'errors too');
  });
});

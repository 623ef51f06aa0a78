/**
 * The sandbox SMART authorization server and the token-guarded sandbox FHIR server over real HTTP (issue 7, item 2):
 * discovery, the EHR launch and the standalone launch as fhirclient performs them (launch → authorize → redirect to
 * the app's index.html with a code → token with the PKCE verifier), PKCE and redirect-URI refusals, scope
 * enforcement on the FHIR server (patient compartment, create permission, expiry), client_credentials, refresh and
 * introspection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import type { Bundle, CapabilityStatement, Observation, OperationOutcome, ServiceRequest } from '@medplum/fhirtypes';
import { startDemoStack, type DemoStack } from '../../../test/support/demo-stack.ts';
import { DEMO_BACKEND, getNoFollow, pkce, postForm, SERVICE_CLIENT, type Pkce } from '../../../test/support/oauth.ts';
import { SMART_CAPABILITIES } from './well-known.ts';

let stack: DemoStack;
let appRedirect = '';
const APP = 'fracture-risk-app';
const APP_SCOPES = 'launch openid fhirUser offline_access patient/Patient.rs patient/Observation.rs patient/ImagingStudy.rs patient/RiskAssessment.rs patient/ServiceRequest.c';

before(async () => {
  stack = await startDemoStack();
  // The demo stack serves on 127.0.0.1:<port>; the app's registered redirect is {PUBLIC_BASE_URL}/app/index.html.
  appRedirect = `${stack.base}/app/index.html`;
});
after(async () => stack?.close());

function authorizeUrl(params: Record<string, string | undefined>): string {
  const u = new URL(`${stack.authBaseUrl}/authorize`);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return u.toString();
}

async function ehrLaunch(body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${stack.authBaseUrl}/launch`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as { launch: string }).launch;
}

/** authorize → the app's redirect URI with ?code&state (as fhirclient's ready() receives it). */
async function authorizeCode(launch: string | undefined, p: Pkce, extra: Record<string, string> = {}): Promise<string> {
  const r = await getNoFollow(
    authorizeUrl({ response_type: 'code', client_id: APP, redirect_uri: appRedirect, scope: APP_SCOPES, state: 'st-1', aud: stack.fhirBaseUrl, launch, code_challenge: p.challenge, code_challenge_method: 'S256', ...extra }),
  );
  assert.equal(r.status, 302, r.text);
  assert.equal(`${r.location!.origin}${r.location!.pathname}`, appRedirect);
  assert.equal(r.location!.searchParams.get('state'), 'st-1');
  const code = r.location!.searchParams.get('code');
  assert.ok(code, `no code: ${r.location}`);
  return code;
}

async function fhir(path: string, token: string, init: RequestInit = {}): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(`${stack.fhirBaseUrl}/${path}`, { ...init, headers: { Accept: 'application/fhir+json', 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined, headers: res.headers };
}

describe('discovery', () => {
  test('.well-known/smart-configuration is public and has the required fields, S256 only', async () => {
    const res = await fetch(`${stack.fhirBaseUrl}/.well-known/smart-configuration`);
    assert.equal(res.status, 200);
    const c = (await res.json()) as Record<string, unknown>;
    for (const k of ['issuer', 'jwks_uri', 'authorization_endpoint', 'token_endpoint', 'grant_types_supported', 'capabilities', 'code_challenge_methods_supported']) assert.ok(k in c, k);
    assert.deepEqual(c['code_challenge_methods_supported'], ['S256']);
    for (const cap of ['launch-ehr', 'launch-standalone', 'client-public', 'client-confidential-symmetric', 'context-ehr-patient', 'context-standalone-patient', 'sso-openid-connect', 'permission-v2', 'permission-user', 'permission-patient']) {
      assert.ok((c['capabilities'] as string[]).includes(cap), cap);
    }
    assert.deepEqual(c['capabilities'], [...SMART_CAPABILITIES]);
    assert.equal(c['token_endpoint'], `${stack.authBaseUrl}/token`);
    const jwks = (await (await fetch(String(c['jwks_uri']))).json()) as { keys: { kid: string; alg: string; d?: string }[] };
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0]!.alg, 'RS256');
    assert.equal(jwks.keys[0]!.d, undefined, 'no private key material');
  });

  test('/metadata is public and names the OAuth endpoints (SMART oauth-uris extension)', async () => {
    const res = await fetch(`${stack.fhirBaseUrl}/metadata`);
    assert.equal(res.status, 200);
    const cs = (await res.json()) as CapabilityStatement;
    const sec = cs.rest?.[0]?.security;
    assert.equal(sec?.service?.[0]?.coding?.[0]?.code, 'SMART-on-FHIR');
    const uris = sec?.extension?.find((e) => e.url === 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris')?.extension ?? [];
    assert.equal(uris.find((e) => e.url === 'authorize')?.valueUri, `${stack.authBaseUrl}/authorize`);
    assert.equal(uris.find((e) => e.url === 'token')?.valueUri, `${stack.authBaseUrl}/token`);
  });

  test('a request without a token is 401 with an OperationOutcome saying how to get one', async () => {
    const res = await fetch(`${stack.fhirBaseUrl}/Patient?_count=1`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer /);
    const oo = (await res.json()) as OperationOutcome;
    assert.equal(oo.resourceType, 'OperationOutcome');
    assert.match(oo.issue[0]!.details!.text!, /curl -s -u demo-backend:.* -d grant_type=client_credentials -d scope=system\/\*\.rs .*\/sandbox\/auth\/token/);
    const bad = await fetch(`${stack.fhirBaseUrl}/Patient?_count=1`, { headers: { Authorization: 'Bearer not.a.token' } });
    assert.equal(bad.status, 401);
  });
});

describe('EHR launch (authorization code + PKCE, as fhirclient does it)', () => {
  let token = '';
  let response: Record<string, unknown> = {};

  before(async () => {
    const launch = await ehrLaunch({ patient: 'demo-a-022', appContext: '{"assessment":"a-1"}', needPatientBanner: false });
    const p = pkce();
    const code = await authorizeCode(launch, p, { nonce: 'n-1' });
    const t = await postForm(`${stack.authBaseUrl}/token`, { grant_type: 'authorization_code', code, redirect_uri: appRedirect, client_id: APP, code_verifier: p.verifier });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    assert.equal(t.headers.get('cache-control'), 'no-store');
    response = t.body;
    token = String(response['access_token']);
  });

  test('the token response carries the launch context, an id_token with fhirUser and a refresh token', () => {
    assert.equal(response['token_type'], 'Bearer');
    assert.equal(response['patient'], 'demo-a-022');
    assert.equal(response['need_patient_banner'], false);
    assert.equal(response['appContext'], '{"assessment":"a-1"}');
    assert.ok(Number(response['expires_in']) > 0);
    assert.equal(response['scope'], APP_SCOPES);
    const id = decodeJwt(String(response['id_token']));
    assert.equal(id['fhirUser'], `${stack.fhirBaseUrl}/Practitioner/demo-clinician`);
    assert.equal(id.aud, APP);
    assert.equal(id['nonce'], 'n-1');
    assert.ok(typeof response['refresh_token'] === 'string');
    const at = decodeJwt(token);
    assert.equal(at['patient'], 'demo-a-022');
    assert.equal(at['fhirUser'], 'Practitioner/demo-clinician');
    assert.equal(at.aud, stack.fhirBaseUrl);
    assert.equal(at.iss, stack.authBaseUrl);
  });

  test('fhirUser resolves: the demo users are seeded in the sandbox FHIR server', async () => {
    const sys = await stack.token();
    for (const id of ['demo-clinician', 'demo-fls-coordinator']) assert.equal((await fhir(`Practitioner/${id}`, sys)).status, 200);
  });

  test('patient/ scopes reach the launch patient only', async () => {
    assert.equal((await fhir('Patient/demo-a-022', token)).status, 200);
    const other = await fhir('Patient/demo-a-001', token);
    assert.equal(other.status, 403);
    assert.match((other.body as OperationOutcome).issue[0]!.details!.text!, /another patient/);
    // Searching another patient's data is refused; a search without a patient is confined to the launch patient.
    assert.equal((await fhir('Observation?patient=demo-a-001', token)).status, 403);
    assert.equal((await fhir('Observation?subject=Patient/demo-a-001', token)).status, 403);
    const all = await fhir('Observation?_count=500', token);
    assert.equal(all.status, 200);
    const obs = ((all.body as Bundle<Observation>).entry ?? []).map((e) => e.resource!);
    assert.ok(obs.length > 0);
    assert.ok(obs.every((o) => o.subject?.reference === 'Patient/demo-a-022'));
    const patients = (await fhir('Patient?_count=50', token)).body as Bundle;
    assert.deepEqual(patients.entry?.map((e) => e.resource?.id), ['demo-a-022']);
    // A read of another patient's Observation (found with a system token) is refused.
    const sys = await stack.token();
    const foreign = ((await fhir('Observation?patient=demo-a-001&_count=1', sys)).body as Bundle<Observation>).entry![0]!.resource!;
    assert.equal((await fhir(`Observation/${foreign.id}`, token)).status, 403);
    // _revinclude cannot smuggle other patients' data in.
    const inc = (await fhir('Patient?_revinclude=Observation:subject&_count=5', token)).body as Bundle;
    assert.ok((inc.entry ?? []).every((e) => e.resource?.resourceType === 'Patient' ? e.resource.id === 'demo-a-022' : (e.resource as Observation).subject?.reference === 'Patient/demo-a-022'));
  });

  test('types without a granted scope are refused (403), and .c is needed to create', async () => {
    assert.equal((await fhir('Condition?_count=1', token)).status, 403);
    const obs: Observation = { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/demo-a-022' } };
    assert.equal((await fhir('Observation', token, { method: 'POST', body: JSON.stringify(obs) })).status, 403);
  });

  test('patient/ServiceRequest.c creates in the patient compartment only', async () => {
    const sr = (patient: string): ServiceRequest => ({ resourceType: 'ServiceRequest', status: 'draft', intent: 'order', code: { text: 'FLS referral' }, subject: { reference: `Patient/${patient}` } });
    const created = await fhir('ServiceRequest', token, { method: 'POST', body: JSON.stringify(sr('demo-a-022')) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const refused = await fhir('ServiceRequest', token, { method: 'POST', body: JSON.stringify(sr('demo-a-001')) });
    assert.equal(refused.status, 403);
    assert.match((refused.body as OperationOutcome).issue[0]!.details!.text!, /does not refer to the token's patient/);
    // No update permission: PUT is refused even for the own patient.
    const id = (created.body as ServiceRequest).id!;
    assert.equal((await fhir(`ServiceRequest/${id}`, token, { method: 'PUT', body: JSON.stringify({ ...sr('demo-a-022'), id }) })).status, 403);
  });

  test('DSTU2 media types pass the same checks: a write typed application/json+fhir is compartment-checked; _format and the old Accept are answered', async () => {
    const sr = (patient: string): ServiceRequest => ({ resourceType: 'ServiceRequest', status: 'draft', intent: 'order', code: { text: 'FLS referral' }, subject: { reference: `Patient/${patient}` } });
    const legacy = { 'Content-Type': 'application/json+fhir', Accept: 'application/json+fhir' };
    const refused = await fhir('ServiceRequest', token, { method: 'POST', headers: legacy, body: JSON.stringify(sr('demo-a-001')) });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    const created = await fhir('ServiceRequest', token, { method: 'POST', headers: legacy, body: JSON.stringify(sr('demo-a-022')) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(created.headers.get('content-type') ?? '', /^application\/json\+fhir/);
    const search = await fhir('Observation?_format=json&_count=2', token, { headers: { Accept: '*/*' } });
    assert.equal(search.status, 200, JSON.stringify(search.body));
    assert.ok(((search.body as Bundle).entry ?? []).every((e) => (e.resource as Observation).subject?.reference === 'Patient/demo-a-022'));
    assert.equal((await fhir('Observation?_format=xml', token)).status, 406);
  });

  test('an expired token is refused with 401', async () => {
    const expired = await stack.token({ clientId: APP, scopes: ['patient/*.rs'], patient: 'demo-a-022' }, { expiresAt: Math.floor(Date.now() / 1000) - 120 });
    const res = await fhir('Patient/demo-a-022', expired);
    assert.equal(res.status, 401);
    assert.match((res.body as OperationOutcome).issue[0]!.details!.text!, /expired/);
    assert.match(res.headers.get('www-authenticate') ?? '', /invalid_token/);
  });

  test('refresh_token gives a new access token with the same context', async () => {
    const r = await postForm(`${stack.authBaseUrl}/token`, { grant_type: 'refresh_token', refresh_token: String(response['refresh_token']), client_id: APP });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body['patient'], 'demo-a-022');
    assert.notEqual(r.body['access_token'], token);
    assert.equal((await fhir('Patient/demo-a-022', String(r.body['access_token']))).status, 200);
    const wider = await postForm(`${stack.authBaseUrl}/token`, { grant_type: 'refresh_token', refresh_token: String(response['refresh_token']), client_id: APP, scope: 'user/*.rs' });
    assert.equal(wider.body['error'], 'invalid_scope');
  });
});

describe('PKCE and redirect URI checks', () => {
  test('a public client without PKCE, or with plain, is sent back with invalid_request', async () => {
    const launch = await ehrLaunch({ patient: 'demo-a-001' });
    const base = { response_type: 'code', client_id: APP, redirect_uri: appRedirect, scope: APP_SCOPES, state: 's', aud: stack.fhirBaseUrl, launch };
    const none = await getNoFollow(authorizeUrl(base));
    assert.equal(none.status, 302);
    assert.equal(none.location!.searchParams.get('error'), 'invalid_request');
    assert.match(none.location!.searchParams.get('error_description') ?? '', /PKCE/);
    assert.equal(none.location!.searchParams.get('code'), null);
    const p = pkce();
    const plain = await getNoFollow(authorizeUrl({ ...base, code_challenge: p.verifier, code_challenge_method: 'plain' }));
    assert.equal(plain.location!.searchParams.get('error'), 'invalid_request');
    assert.match(plain.location!.searchParams.get('error_description') ?? '', /S256/);
  });

  test('a wrong or missing code_verifier is invalid_grant, and a code works once', async () => {
    const launch = await ehrLaunch({ patient: 'demo-a-001' });
    const p = pkce();
    const code = await authorizeCode(launch, p);
    const wrong = await postForm(`${stack.authBaseUrl}/token`, { grant_type: 'authorization_code', code, redirect_uri: appRedirect, client_id: APP, code_verifier: pkce().verifier });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body['error'], 'invalid_grant');
    // The code was consumed by the failed attempt (single use), so even the right verifier now fails.
    const again = await postForm(`${stack.authBaseUrl}/token`, { grant_type: 'authorization_code', code, redirect_uri: appRedirect, client_id: APP, code_verifier: p.verifier });
    assert.equal(again.body['error'], 'invalid_grant');
    const code2 = await authorizeCode(await ehrLaunch({ patient: 'demo-a-001' }), p);
    const missing = await postForm(`${stack.authBaseUrl}/token`, { grant_type: 'authorization_code', code: code2, redirect_uri: appRedirect, client_id: APP });
    assert.equal(missing.body['error'], 'invalid_grant');
    assert.match(String(missing.body['error_description']), /code_verifier/);
    const code3 = await authorizeCode(await ehrLaunch({ patient: 'demo-a-001' }), p);
    const ok = await postForm(`${stack.authBaseUrl}/token`, { grant_type: 'authorization_code', code: code3, redirect_uri: appRedirect, client_id: APP, code_verifier: p.verifier });
    assert.equal(ok.status, 200);
    const reuse = await postForm(`${stack.authBaseUrl}/token`, { grant_type: 'authorization_code', code: code3, redirect_uri: appRedirect, client_id: APP, code_verifier: p.verifier });
    assert.equal(reuse.body['error'], 'invalid_grant');
  });

  test('an unregistered redirect_uri gets an error page, not a redirect; a different one at the token endpoint is invalid_grant', async () => {
    const p = pkce();
    const launch = await ehrLaunch({ patient: 'demo-a-001' });
    const evil = await getNoFollow(authorizeUrl({ response_type: 'code', client_id: APP, redirect_uri: 'https://evil.example/cb', scope: APP_SCOPES, aud: stack.fhirBaseUrl, launch, code_challenge: p.challenge, code_challenge_method: 'S256' }));
    assert.equal(evil.status, 400);
    assert.equal(evil.location, undefined);
    assert.match(evil.text, /is not registered/);
    const unknown = await getNoFollow(authorizeUrl({ response_type: 'code', client_id: 'nobody', redirect_uri: appRedirect }));
    assert.equal(unknown.status, 400);
    const code = await authorizeCode(launch, p);
    const r = await postForm(`${stack.authBaseUrl}/token`, { grant_type: 'authorization_code', code, redirect_uri: `${appRedirect}?x=1`, client_id: APP, code_verifier: p.verifier });
    assert.equal(r.body['error'], 'invalid_grant');
  });

  test('aud must be the sandbox FHIR base; an unknown launch is refused', async () => {
    const p = pkce();
    const base = { response_type: 'code', client_id: APP, redirect_uri: appRedirect, scope: APP_SCOPES, code_challenge: p.challenge, code_challenge_method: 'S256' };
    const badAud = await getNoFollow(authorizeUrl({ ...base, aud: 'https://other.example/fhir', launch: await ehrLaunch({ patient: 'demo-a-001' }) }));
    assert.equal(badAud.location!.searchParams.get('error'), 'invalid_request');
    const badLaunch = await getNoFollow(authorizeUrl({ ...base, aud: stack.fhirBaseUrl, launch: 'made-up' }));
    assert.equal(badLaunch.location!.searchParams.get('error'), 'invalid_request');
    const noPatient = await fetch(`${stack.authBaseUrl}/launch`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ patient: 'no-such-patient' }) });
    assert.equal(noPatient.status, 404);
  });
});

describe('standalone launch', () => {
  const STANDALONE = 'launch/patient openid fhirUser patient/Patient.rs patient/Observation.rs';

  test('the picker page lets the user choose a demo user and a patient; the token has both', async () => {
    const p = pkce();
    const r = await getNoFollow(authorizeUrl({ response_type: 'code', client_id: APP, redirect_uri: appRedirect, scope: STANDALONE, state: 'sa', aud: stack.fhirBaseUrl, code_challenge: p.challenge, code_challenge_method: 'S256' }));
    assert.equal(r.status, 302);
    assert.match(r.location!.pathname, /\/sandbox\/auth\/pick-patient$/);
    const page = await fetch(r.location!);
    const html = await page.text();
    assert.equal(page.status, 200);
    assert.match(html, /<html lang="en">/);
    assert.match(html, /<legend>Sign in as \(demo user\)<\/legend>/);
    assert.match(html, /value="Practitioner\/demo-fls-coordinator"/);
    assert.match(html, /<label for="p-demo-a-022">/);
    assert.match(html, /Research use — trained on synthetic data/);
    const form = new URLSearchParams({ request: r.location!.searchParams.get('request')!, user: 'Practitioner/demo-fls-coordinator', patient: 'demo-a-022', decision: 'allow' });
    const post = await fetch(new URL('pick-patient', r.location!), { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form.toString(), redirect: 'manual' });
    assert.equal(post.status, 302);
    const back = new URL(post.headers.get('location')!);
    assert.equal(back.searchParams.get('state'), 'sa');
    const t = await postForm(`${stack.authBaseUrl}/token`, { grant_type: 'authorization_code', code: back.searchParams.get('code')!, redirect_uri: appRedirect, client_id: APP, code_verifier: p.verifier });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    assert.equal(t.body['patient'], 'demo-a-022');
    assert.equal(decodeJwt(String(t.body['id_token']))['fhirUser'], `${stack.fhirBaseUrl}/Practitioner/demo-fls-coordinator`);
  });

  test('deny sends access_denied back to the app', async () => {
    const p = pkce();
    const r = await getNoFollow(authorizeUrl({ response_type: 'code', client_id: APP, redirect_uri: appRedirect, scope: STANDALONE, state: 'd', aud: stack.fhirBaseUrl, code_challenge: p.challenge, code_challenge_method: 'S256' }));
    const post = await fetch(new URL('pick-patient', r.location!), { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ request: r.location!.searchParams.get('request')!, decision: 'deny' }).toString(), redirect: 'manual' });
    const back = new URL(post.headers.get('location')!);
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.equal(back.searchParams.get('state'), 'd');
  });

  test('user-level scopes with login_hint skip the picker; user/ scopes reach every patient', async () => {
    const p = pkce();
    const r = await getNoFollow(
      authorizeUrl({ response_type: 'code', client_id: APP, redirect_uri: appRedirect, scope: 'openid fhirUser user/Patient.rs user/Task.cu', state: 'w', aud: stack.fhirBaseUrl, code_challenge: p.challenge, code_challenge_method: 'S256', login_hint: 'demo-fls-coordinator' }),
    );
    assert.equal(`${r.location!.origin}${r.location!.pathname}`, appRedirect);
    const t = await postForm(`${stack.authBaseUrl}/token`, { grant_type: 'authorization_code', code: r.location!.searchParams.get('code')!, redirect_uri: appRedirect, client_id: APP, code_verifier: p.verifier });
    assert.equal(t.body['patient'], undefined);
    const token = String(t.body['access_token']);
    assert.equal(decodeJwt(token)['fhirUser'], 'Practitioner/demo-fls-coordinator');
    assert.equal((await fhir('Patient/demo-a-001', token)).status, 200);
    assert.equal((await fhir('Patient/demo-b-003', token)).status, 200);
    assert.equal((await fhir('Observation?_count=1', token)).status, 403, 'no Observation scope');
  });
});

describe('backend clients and introspection', () => {
  test('client_credentials: secrets checked, system scopes only, scopes enforced', async () => {
    const url = `${stack.authBaseUrl}/token`;
    const wrong = await postForm(url, { grant_type: 'client_credentials', scope: 'system/*.rs' }, { id: DEMO_BACKEND.id, secret: 'wrong-secret-wrong-secret' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body['error'], 'invalid_client');
    const publicClient = await postForm(url, { grant_type: 'client_credentials', client_id: APP });
    assert.equal(publicClient.body['error'], 'unauthorized_client');
    const patientScope = await postForm(url, { grant_type: 'client_credentials', scope: 'patient/*.rs' }, DEMO_BACKEND);
    assert.equal(patientScope.body['error'], 'invalid_scope');
    const tooMuch = await postForm(url, { grant_type: 'client_credentials', scope: 'system/Patient.d' }, SERVICE_CLIENT);
    assert.equal(tooMuch.body['error'], 'invalid_scope');
    // The service's own client by default gets its registered system scopes: read everything, write back results.
    const svc = await postForm(url, { grant_type: 'client_credentials' }, SERVICE_CLIENT);
    assert.equal(svc.status, 200, JSON.stringify(svc.body));
    assert.match(String(svc.body['scope']), /system\/RiskAssessment\.cu/);
    const token = String(svc.body['access_token']);
    assert.equal((await fhir('Patient?_count=3', token)).status, 200);
    const ra = { resourceType: 'RiskAssessment', status: 'final', subject: { reference: 'Patient/demo-a-003' } };
    assert.equal((await fhir('RiskAssessment', token, { method: 'POST', body: JSON.stringify(ra) })).status, 201);
    assert.equal((await fhir('Patient/demo-a-003', token, { method: 'DELETE' })).status, 403);
    // client_secret_post works as well as HTTP Basic.
    const post = await postForm(url, { grant_type: 'client_credentials', client_id: DEMO_BACKEND.id, client_secret: DEMO_BACKEND.secret, scope: 'system/Patient.rs' });
    assert.equal(post.status, 200);
  });

  test('introspection: active tokens with their context, inactive for anything else; callers must authenticate', async () => {
    const url = `${stack.authBaseUrl}/introspect`;
    const token = await stack.token({ clientId: APP, scopes: ['patient/*.rs'], patient: 'demo-a-022', user: 'Practitioner/demo-clinician' });
    const active = await postForm(url, { token }, SERVICE_CLIENT);
    assert.equal(active.status, 200);
    assert.equal(active.body['active'], true);
    assert.equal(active.body['patient'], 'demo-a-022');
    assert.equal(active.body['scope'], 'patient/*.rs');
    assert.equal(active.body['client_id'], APP);
    assert.equal((await postForm(url, { token: 'garbage' }, SERVICE_CLIENT)).body['active'], false);
    const expired = await stack.token({}, { expiresAt: Math.floor(Date.now() / 1000) - 120 });
    assert.equal((await postForm(url, { token: expired }, SERVICE_CLIENT)).body['active'], false);
    assert.equal((await postForm(url, { token })).status, 401);
  });
});

describe('Subscriptions hold endpoint credentials: system/ scopes only', () => {
  test('patient/*.rs and user/*.rs tokens cannot read or search a Subscription; system/ tokens can', async () => {
    const sys = await stack.token({ clientId: 'demo-backend', scopes: ['system/*.cruds'] });
    const sub = {
      resourceType: 'Subscription',
      status: 'off',
      reason: 'test',
      criteria: 'DiagnosticReport?status=final',
      channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/notify', payload: 'application/fhir+json', header: ['X-Subscription-Secret: do-not-leak-0123456789'] },
    };
    const created = await fhir('Subscription', sys, { method: 'POST', body: JSON.stringify(sub) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = (created.body as { id: string }).id;
    const patientToken = await stack.token({ clientId: APP, scopes: ['patient/*.rs'], patient: 'demo-a-022', user: 'Practitioner/demo-clinician' });
    const userToken = await stack.token({ clientId: APP, scopes: ['user/*.rs'], user: 'Practitioner/demo-clinician' });
    for (const token of [patientToken, userToken]) {
      for (const path of [`Subscription/${id}`, 'Subscription', 'Subscription?status=off', `Subscription/${id}/_history`]) {
        const r = await fhir(path, token);
        assert.equal(r.status, 403, `${path} → ${r.status}`);
        assert.doesNotMatch(JSON.stringify(r.body), /do-not-leak/);
      }
      const batch = { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `Subscription/${id}` } }] };
      const b = await fhir('', token, { method: 'POST', body: JSON.stringify(batch) });
      assert.doesNotMatch(JSON.stringify(b.body), /do-not-leak/, 'not through a batch either');
    }
    assert.equal((await fhir(`Subscription/${id}`, sys)).status, 200);
  });
});

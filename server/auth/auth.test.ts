/**
 * The service side of SMART (issue 7, item 1): scope parsing, `requireSmartAccess` with both verifiers (JWKS over
 * HTTP and RFC 7662 introspection) against the real sandbox authorization server, the client_credentials token
 * provider (shared requests, renewal before expiry) and HttpFhirClient's token handling on the guarded sandbox.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import request from 'supertest';
import { startDemoStack, type DemoStack } from '../../test/support/demo-stack.ts';
import { SERVICE_CLIENT } from '../../test/support/oauth.ts';
import { FhirHttpError, HttpFhirClient } from '../fhir/client.ts';
import { patientAllowed, requireSmartAccess } from './require.ts';
import { grantingContexts, holdsScope, parseResourceScope, scopeCovers } from './scopes.ts';
import { ClientCredentialsTokenProvider, TokenProviderError } from './token-provider.ts';
import { AccessTokenError, accessFromClaims, type AccessTokenVerifier } from './types.ts';
import { IntrospectionAccessTokenVerifier, JwtAccessTokenVerifier } from './verifier.ts';

describe('SMART v2 scopes', () => {
  test('parses v2 and v1 forms and refuses malformed ones', () => {
    assert.deepEqual([...parseResourceScope('patient/Observation.rs')!.permissions], ['r', 's']);
    assert.deepEqual([...parseResourceScope('user/*.cruds')!.permissions], ['c', 'r', 'u', 'd', 's']);
    assert.deepEqual([...parseResourceScope('patient/*.read')!.permissions], ['r', 's']);
    assert.deepEqual([...parseResourceScope('system/Task.write')!.permissions], ['c', 'u', 'd']);
    assert.equal(parseResourceScope('patient/Observation.sr'), undefined, 'letters must be in cruds order');
    assert.equal(parseResourceScope('patient/Observation.rr'), undefined);
    assert.equal(parseResourceScope('openid'), undefined);
    assert.equal(parseResourceScope('patient/Observation.rs?category=laboratory')!.query, 'category=laboratory');
  });

  test('grants by context, type and permission; granular scopes grant nothing', () => {
    assert.deepEqual([...grantingContexts('patient/*.rs user/Task.cu', 'Task', 'u')], ['user']);
    assert.deepEqual([...grantingContexts('patient/*.rs user/Task.cu', 'Observation', 's')], ['patient']);
    assert.equal(grantingContexts('patient/Observation.rs?category=vital-signs', 'Observation', 'r').size, 0);
    assert.ok(scopeCovers('patient/*.rs', 'patient/RiskAssessment.r'));
    assert.ok(!scopeCovers('patient/*.rs', 'user/RiskAssessment.r'));
    assert.ok(!scopeCovers('patient/*.r', 'patient/RiskAssessment.rs'));
    assert.ok(holdsScope(['launch', 'user/*.cruds'], 'user/Patient.r'));
  });

  test('accessFromClaims keeps the SMART context and makes fhirUser relative', () => {
    const a = accessFromClaims({ sub: 'u1', scope: 'a b', patient: 'p1', fhirUser: 'https://x.example/fhir/Practitioner/demo-clinician', appContext: 'ctx', exp: 5 });
    assert.deepEqual(a, { subject: 'u1', scopes: ['a', 'b'], patient: 'p1', fhirUser: 'Practitioner/demo-clinician', appContext: 'ctx', expiresAt: 5 });
    assert.throws(() => accessFromClaims({ scope: 'a' }), AccessTokenError);
  });
});

describe('requireSmartAccess and the verifiers against the sandbox authorization server', () => {
  let stack: DemoStack;
  let jwks: AccessTokenVerifier;
  let introspection: AccessTokenVerifier;

  const appWith = (verifier: AccessTokenVerifier, anyScope?: string[]): express.Express =>
    express()
      .use(requireSmartAccess(verifier, anyScope ? { anyScope } : {}))
      .get('/p/:id', (req, res) => void (patientAllowed(res, String(req.params['id'])) ? res.json(res.locals['smartAccess']) : res.status(403).json({ code: 'PATIENT_MISMATCH' })));

  before(async () => {
    stack = await startDemoStack();
    jwks = new JwtAccessTokenVerifier({ issuer: stack.authBaseUrl, audience: [stack.fhirBaseUrl], keys: { jwksUri: `${stack.authBaseUrl}/jwks` } });
    introspection = new IntrospectionAccessTokenVerifier({ introspectionUrl: `${stack.authBaseUrl}/introspect`, clientId: SERVICE_CLIENT.id, clientSecret: SERVICE_CLIENT.secret });
  });
  after(async () => stack?.close());

  for (const which of ['jwks', 'introspection'] as const) {
    test(`${which}: 401 + WWW-Authenticate without, with a bad or an expired token; the access in res.locals otherwise`, async () => {
      const app = appWith(which === 'jwks' ? jwks : introspection);
      const none = await request(app).get('/p/demo-a-022').expect(401);
      assert.match(none.headers['www-authenticate'] ?? '', /^Bearer realm="fracture-risk-cds"$/);
      const bad = await request(app).get('/p/demo-a-022').set('Authorization', 'Bearer abc.def.ghi').expect(401);
      assert.match(bad.headers['www-authenticate'] ?? '', /error="invalid_token"/);
      const expired = await stack.token({ patient: 'demo-a-022' }, { expiresAt: Math.floor(Date.now() / 1000) - 120 });
      await request(app).get('/p/demo-a-022').set('Authorization', `Bearer ${expired}`).expect(401);
      const token = await stack.token({ clientId: 'fracture-risk-app', scopes: ['patient/*.rs'], patient: 'demo-a-022', user: 'Practitioner/demo-clinician', appContext: 'x' });
      const ok = await request(app).get('/p/demo-a-022').set('Authorization', `Bearer ${token}`).expect(200);
      assert.equal(ok.body.patient, 'demo-a-022');
      assert.equal(ok.body.fhirUser, 'Practitioner/demo-clinician');
      assert.equal(ok.body.appContext, 'x');
      // A token for one patient may not be used for another (403); user-level tokens may.
      await request(app).get('/p/demo-a-001').set('Authorization', `Bearer ${token}`).expect(403);
      const user = await stack.token({ clientId: 'fracture-risk-app', scopes: ['user/*.rs'], user: 'Practitioner/demo-fls-coordinator' });
      await request(app).get('/p/demo-a-001').set('Authorization', `Bearer ${user}`).expect(200);
    });
  }

  test('a token signed by another key or issued for another audience is refused', async () => {
    const other = await startDemoStack(undefined, {}); // a second sandbox: same issuer URL scheme, different key
    try {
      const foreign = await other.token({ patient: 'demo-a-022' });
      await assert.rejects(jwks.verify(foreign), (e: unknown) => e instanceof AccessTokenError && e.code === 'invalid');
    } finally {
      await other.close();
    }
    const wrongAud = new JwtAccessTokenVerifier({ issuer: stack.authBaseUrl, audience: ['https://elsewhere.example/fhir'], keys: { jwksUri: `${stack.authBaseUrl}/jwks` } });
    await assert.rejects(wrongAud.verify(await stack.token()), (e: unknown) => e instanceof AccessTokenError && /aud/.test(e.message));
  });

  test('anyScope: 403 insufficient_scope when no held scope covers a required one', async () => {
    const app = appWith(jwks, ['patient/RiskAssessment.r', 'user/RiskAssessment.r', 'system/RiskAssessment.r']);
    const narrow = await stack.token({ scopes: ['patient/Observation.rs'], patient: 'demo-a-022' });
    const r = await request(app).get('/p/demo-a-022').set('Authorization', `Bearer ${narrow}`).expect(403);
    assert.match(r.headers['www-authenticate'] ?? '', /insufficient_scope/);
    const wide = await stack.token({ scopes: ['patient/*.rs'], patient: 'demo-a-022' });
    await request(app).get('/p/demo-a-022').set('Authorization', `Bearer ${wide}`).expect(200);
  });

  test('an unreachable JWKS is 503 (retry later), not 401', async () => {
    const down = new JwtAccessTokenVerifier({ issuer: stack.authBaseUrl, keys: { jwksUri: 'http://127.0.0.1:1/jwks', timeoutMs: 500 } });
    const r = await request(appWith(down)).get('/p/x').set('Authorization', `Bearer ${await stack.token()}`).expect(503);
    assert.equal(r.body.code, 'TOKEN_UNVERIFIABLE');
  });

  test('ClientCredentialsTokenProvider: one request for concurrent callers, renewal before expiry, typed refusal', async () => {
    let now = Date.now();
    const provider = new ClientCredentialsTokenProvider({ tokenUrl: `${stack.authBaseUrl}/token`, clientId: SERVICE_CLIENT.id, clientSecret: SERVICE_CLIENT.secret, scope: 'system/Patient.rs', now: () => now });
    const [a, b, c] = await Promise.all([provider.token(), provider.token(), provider.token()]);
    assert.equal(provider.requests, 1);
    assert.equal(a, b);
    assert.equal(b, c);
    now += 3600_000 - 61_000; // one second before the 60 s renewal margin of a one-hour token: still cached
    assert.equal(await provider.token(), a);
    assert.equal(provider.requests, 1);
    now += 2_000; // inside the margin: renewed
    await provider.token();
    assert.equal(provider.requests, 2);
    const refused = new ClientCredentialsTokenProvider({ tokenUrl: `${stack.authBaseUrl}/token`, clientId: SERVICE_CLIENT.id, clientSecret: 'not-the-secret-at-all' });
    await assert.rejects(refused.token(), (e: unknown) => e instanceof TokenProviderError && !e.retryable && /invalid_client/.test(e.message) && !/not-the-secret/.test(e.message));
  });

  test('HttpFhirClient: sends the provider\'s token, gets a fresh one after a 401, and fails typed without one', async () => {
    const client = new HttpFhirClient({ baseUrl: stack.fhirBaseUrl, timeoutMs: 5000, tokenProvider: new ClientCredentialsTokenProvider({ tokenUrl: `${stack.authBaseUrl}/token`, clientId: SERVICE_CLIENT.id, clientSecret: SERVICE_CLIENT.secret }) });
    assert.equal((await client.read('Patient', 'demo-a-001')).id, 'demo-a-001');
    // A provider whose first token is refused by the server (expired): invalidate() and one retry with a new one.
    let calls = 0;
    const stale = await stack.token({}, { expiresAt: Math.floor(Date.now() / 1000) - 120 });
    const fresh = await stack.token();
    const flaky = new HttpFhirClient({ baseUrl: stack.fhirBaseUrl, timeoutMs: 5000, tokenProvider: { token: async () => (calls++ === 0 ? stale : fresh), invalidate: () => undefined } });
    assert.equal((await flaky.read('Patient', 'demo-a-001')).id, 'demo-a-001');
    assert.equal(calls, 2);
    const anonymous = new HttpFhirClient({ baseUrl: stack.fhirBaseUrl, timeoutMs: 5000 });
    await assert.rejects(anonymous.read('Patient', 'demo-a-001'), (e: unknown) => e instanceof FhirHttpError && e.status === 401);
  });
});

describe('accessFromClaims: where the launch patient is, and tokens that name none', () => {
  test('reads context.patient where a launcher nests the launch context', () => {
    assert.equal(accessFromClaims({ client_id: 'app', scope: 'launch patient/*.rs', context: { patient: 'demo-a-022' } }).patient, 'demo-a-022');
  });
  test('a token with only patient-level scopes and no patient is refused (read as user-level it would reach everyone)', () => {
    assert.throws(() => accessFromClaims({ client_id: 'app', scope: 'launch patient/*.rs' }), (e: unknown) => e instanceof AccessTokenError && e.code === 'invalid');
    assert.equal(accessFromClaims({ client_id: 'app', scope: 'user/*.rs patient/*.rs' }).patient, undefined);
  });
});

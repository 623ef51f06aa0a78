/**
 * FhirDelegatedVerifier against a tiny FHIR server: the token reads the launch patient (200 + that Patient) or is
 * refused (403, another patient's resource, 404); no redirect followed, answers capped and time-limited, successes
 * cached per (token, patient) within the configured time and the token's life, refusals never cached.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { FhirDelegatedVerifier } from './fhir-delegated.ts';
import { startStubServer, type StubAnswer, type StubServer } from './test-http.ts';
import { AccessTokenError } from './types.ts';

const refused = (code: string, message?: RegExp) => (e: unknown): boolean =>
  e instanceof AccessTokenError && e.code === code && (!message || message.test(e.message));

describe('FHIR-delegated verification (opaque EHR tokens)', () => {
  let fhir: StubServer;
  let elsewhere: StubServer;
  const grants = new Map<string, string>([['token-for-p1', 'p1'], ['token-for-p2', 'p2']]);

  before(async () => {
    elsewhere = await startStubServer(() => ({ body: { resourceType: 'Patient', id: 'p1' } }));
    fhir = await startStubServer((r): StubAnswer => {
      const m = /^\/fhir\/Patient\/([^/?]+)$/.exec(r.url);
      const token = /^Bearer (.+)$/.exec(r.headers.authorization ?? '')?.[1];
      if (r.url.startsWith('/moved/')) return { status: 302, headers: { Location: `${elsewhere.url}/fhir/Patient/p1` } };
      if (r.url.startsWith('/big/')) return { body: { resourceType: 'Patient', id: 'p1', text: { div: 'x'.repeat(4096) } } };
      if (r.url.startsWith('/slow/')) return { delayMs: 1500, body: { resourceType: 'Patient', id: 'p1' } };
      if (r.url.startsWith('/liar/')) return { body: { resourceType: 'Patient', id: 'p2' } };
      if (r.url.startsWith('/down/')) return { status: 503, body: { resourceType: 'OperationOutcome' } };
      if (!m || !token) return { status: 401, body: { resourceType: 'OperationOutcome' } };
      const id = decodeURIComponent(m[1]!);
      if (id === 'gone') return { status: 404, body: { resourceType: 'OperationOutcome' } };
      const granted = grants.get(token) ?? (token.split('.').length === 3 ? 'p1' : undefined);
      if (!granted) return { status: 401, body: { resourceType: 'OperationOutcome' } };
      if (granted !== id) return { status: 403, body: { resourceType: 'OperationOutcome' } };
      return { headers: { 'Content-Type': 'application/fhir+json' }, body: { resourceType: 'Patient', id } };
    });
  });
  after(async () => {
    await fhir?.close();
    await elsewhere?.close();
  });

  const verifier = (path = '/fhir', extra: Partial<ConstructorParameters<typeof FhirDelegatedVerifier>[0]> = {}): FhirDelegatedVerifier =>
    new FhirDelegatedVerifier({ fhirBaseUrl: `${fhir.url}${path}`, serverId: 'epic-test', timeoutMs: 1000, ...extra });

  test('accepted: GET {base}/Patient/{id} with the token and Accept: application/fhir+json; access limited to that patient', async () => {
    const v = verifier();
    const a = await v.verify('token-for-p1', { patient: 'p1' });
    assert.equal(a.patient, 'p1');
    assert.deepEqual(a.scopes, ['patient/*.rs']);
    assert.equal(a.subject, 'fhir-delegated:epic-test');
    const r = fhir.requests.find((q) => q.headers.authorization === 'Bearer token-for-p1')!;
    assert.equal(r.method, 'GET');
    assert.equal(r.url, '/fhir/Patient/p1');
    assert.match(r.headers.accept ?? '', /^application\/fhir\+json/);
  });

  test('a FHIR server that answers a made-up token too cannot vouch for any: refused as unverifiable, never accepted', async () => {
    const open = new FhirDelegatedVerifier({ fhirBaseUrl: `${elsewhere.url}/fhir`, serverId: 'open-test', timeoutMs: 1000 });
    await assert.rejects(open.verify('whatever', { patient: 'p1' }), refused('unavailable', /does not refuse a made-up token/));
    const canary = elsewhere.requests.at(-1)!;
    assert.match(canary.headers.authorization ?? '', /^Bearer frcds-canary-[0-9a-f]{32}$/);
  });

  test('refused: the FHIR server answers 403 (token for another patient), 404, 401 (unknown token)', async () => {
    const v = verifier();
    await assert.rejects(v.verify('token-for-p1', { patient: 'p2' }), refused('invalid', /HTTP 403/));
    await assert.rejects(v.verify('token-for-p1', { patient: 'gone' }), refused('invalid', /HTTP 404/));
    await assert.rejects(v.verify('forged', { patient: 'p1' }), refused('invalid', /HTTP 401/));
  });

  test('refused: a 200 with another patient\'s resource; no X-SMART-Patient; a patient id that is not a FHIR id', async () => {
    await assert.rejects(verifier('/liar').verify('token-for-p1', { patient: 'p1' }), refused('invalid', /launch patient/));
    const n = fhir.requests.length;
    await assert.rejects(verifier().verify('token-for-p1'), refused('invalid', /X-SMART-Patient/));
    await assert.rejects(verifier().verify('token-for-p1', { patient: '../Observation' }), refused('malformed'));
    assert.equal(fhir.requests.length, n, 'nothing was sent for these');
  });

  test('a redirect is not followed; a large answer, a slow server and a 503 are "unavailable"', async () => {
    await assert.rejects(verifier('/moved').verify('token-for-p1', { patient: 'p1' }), refused('unavailable', /redirect/));
    assert.ok(!elsewhere.requests.some((q) => q.headers.authorization === 'Bearer token-for-p1'), 'the token never reached the redirect target');
    await assert.rejects(verifier('/big', { maxResponseBytes: 1024 }).verify('token-for-p1', { patient: 'p1' }), refused('unavailable', /exceeds 1024 bytes/));
    await assert.rejects(verifier('/slow', { timeoutMs: 300 }).verify('token-for-p1', { patient: 'p1' }), refused('unavailable', /timed out/));
    await assert.rejects(verifier('/down').verify('token-for-p1', { patient: 'p1' }), refused('unavailable', /503/));
  });

  test('cache: per (token, patient), at most cacheSeconds and 60 s, never beyond a JWT token\'s exp; refusals not cached', async () => {
    let clock = Date.now();
    const v = verifier('/fhir', { now: () => clock, cacheSeconds: 600 });
    await v.verify('token-for-p2', { patient: 'p2' });
    await Promise.all([v.verify('token-for-p2', { patient: 'p2' }), v.verify('token-for-p2', { patient: 'p2' })]);
    assert.equal(v.reads, 1);
    clock += 59_000;
    await v.verify('token-for-p2', { patient: 'p2' });
    assert.equal(v.reads, 1, 'still cached at 59 s');
    clock += 2_000;
    await v.verify('token-for-p2', { patient: 'p2' });
    assert.equal(v.reads, 2, 'capped at 60 s although cacheSeconds is 600');
    // Refusals are asked again each time.
    await assert.rejects(v.verify('token-for-p2', { patient: 'p1' }));
    await assert.rejects(v.verify('token-for-p2', { patient: 'p1' }));
    assert.equal(v.reads, 4);
    // A JWT-shaped token that expires in 5 s is cached no longer than that, and refused once expired.
    const exp = Math.floor(clock / 1000) + 5;
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode('unrelated-key-the-service-never-sees'));
    const w = verifier('/fhir', { now: () => clock });
    assert.equal((await w.verify(jwt, { patient: 'p1' })).expiresAt, exp);
    clock += 6_000;
    await assert.rejects(w.verify(jwt, { patient: 'p1' }), refused('expired'));
    assert.equal(w.reads, 1);
  });
});

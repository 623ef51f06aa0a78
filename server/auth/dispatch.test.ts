/**
 * The dispatching verifier (X-FHIR-Server picks the verifier; unknown servers are refused) and, at route level, the
 * real guard in front of the real risk API (server/risk/routes.ts, on a stub risk service): a token limited to
 * patient P that asks about Q is refused, whichever mode verified it.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import { SignJWT } from 'jose';
import request from 'supertest';
import { FhirNotFoundError } from '../fhir/client.ts';
import { createLogger } from '../logging.ts';
import { createRiskRouter } from '../risk/routes.ts';
import type { RiskService } from '../risk/service.ts';
import { DispatchingVerifier, normalizeFhirBase } from './dispatch.ts';
import { FhirDelegatedVerifier } from './fhir-delegated.ts';
import { Hs256AccessTokenVerifier } from './hs256.ts';
import { requireSmartAccess } from './require.ts';
import { startStubServer, type StubServer } from './test-http.ts';
import { AccessTokenError, type AccessTokenVerifier, type SmartAccess, type VerifyContext } from './types.ts';

/** A verifier that accepts any token and says who it is (and what context it was given). */
class Named implements AccessTokenVerifier {
  readonly seen: (VerifyContext | undefined)[] = [];
  constructor(readonly name: string) {}
  async verify(_token: string, context?: VerifyContext): Promise<SmartAccess> {
    this.seen.push(context);
    return { subject: this.name, scopes: [] };
  }
}

describe('DispatchingVerifier', () => {
  const own = new Named('own');
  const epic = new Named('epic');
  const v = new DispatchingVerifier(own, ['http://localhost:8080/sandbox/fhir', 'http://127.0.0.1:8080/sandbox/fhir'], [{ id: 'epic', fhirBaseUrl: 'https://ehr.example/api/FHIR/R4', verifier: epic }]);

  test('normalizeFhirBase: one trailing slash, scheme/host case and default port do not matter; non-http is undefined', () => {
    assert.equal(normalizeFhirBase('HTTPS://EHR.example:443/api/FHIR/R4/'), 'https://ehr.example/api/FHIR/R4');
    assert.equal(normalizeFhirBase('https://ehr.example/fhir?x=1'), 'https://ehr.example/fhir');
    assert.equal(normalizeFhirBase('javascript:alert(1)'), undefined);
    assert.equal(normalizeFhirBase('not a url'), undefined);
  });

  test('absent header or the service\'s own FHIR base → own verifier; an entry\'s base → that entry, with the context', async () => {
    assert.equal((await v.verify('t')).subject, 'own');
    assert.equal((await v.verify('t', { fhirServer: 'http://127.0.0.1:8080/sandbox/fhir/' })).subject, 'own');
    assert.equal((await v.verify('t', { fhirServer: 'https://ehr.example/api/FHIR/R4/', patient: 'p' })).subject, 'epic');
    assert.deepEqual(epic.seen.at(-1), { fhirServer: 'https://ehr.example/api/FHIR/R4/', patient: 'p' });
  });

  test('any other server is refused (invalid → 401), naming it as not allowlisted', async () => {
    for (const fhirServer of ['https://ehr.example/api/FHIR/R5', 'https://evil.example/fhir', 'not a url']) {
      await assert.rejects(v.verify('t', { fhirServer }), (e: unknown) => e instanceof AccessTokenError && e.code === 'invalid' && e.message.includes(`${fhirServer} is not allowlisted`));
    }
  });

  test('an entry for the service\'s own base URL wins over the own verifier; two entries for one base are refused', async () => {
    const local = new Named('launcher');
    const w = new DispatchingVerifier(own, ['http://localhost:8080/sandbox/fhir'], [{ id: 'launcher', fhirBaseUrl: 'http://localhost:8080/sandbox/fhir', verifier: local }]);
    assert.equal((await w.verify('t', { fhirServer: 'http://localhost:8080/sandbox/fhir' })).subject, 'launcher');
    assert.equal((await w.verify('t')).subject, 'own');
    assert.throws(() => new DispatchingVerifier(own, [], [{ id: 'a', fhirBaseUrl: 'https://x/fhir', verifier: own }, { id: 'b', fhirBaseUrl: 'https://x/fhir/', verifier: own }]), /configured twice/);
  });
});

describe('route level: requireSmartAccess + the risk API, tokens limited to patient P asking about Q', () => {
  const SECRET = 'launcher-secret-for-the-route-test';
  const LAUNCHER = 'https://launcher.example/fhir';
  let fhir: StubServer;
  let app: express.Express;
  const assessed: string[] = [];

  before(async () => {
    // The EHR's FHIR server: the opaque token "opaque-for-p" reads Patient/p and nothing else.
    fhir = await startStubServer((r) => {
      const ok = r.headers.authorization === 'Bearer opaque-for-p' && r.url === '/fhir/Patient/p';
      return ok ? { body: { resourceType: 'Patient', id: 'p' } } : { status: r.headers.authorization === 'Bearer opaque-for-p' ? 403 : 401, body: { resourceType: 'OperationOutcome' } };
    });
    const verifier = new DispatchingVerifier(new Named('own'), ['http://localhost:8080/sandbox/fhir'], [
      { id: 'oracle-like', fhirBaseUrl: `${fhir.url}/fhir`, verifier: new FhirDelegatedVerifier({ fhirBaseUrl: `${fhir.url}/fhir`, serverId: 'oracle-like', timeoutMs: 2000 }) },
      { id: 'launcher', fhirBaseUrl: LAUNCHER, verifier: new Hs256AccessTokenVerifier({ secret: SECRET }) },
    ]);
    const service = {
      assess: async ({ patientId }: { patientId: string }) => {
        assessed.push(patientId);
        throw new FhirNotFoundError(`Patient/${patientId} not found`); // the guard let it through: that is what is tested
      },
      get: (id: string) => (id === 'assessment-of-q' ? { assessment: { id, patientId: 'q' }, pngs: null } : undefined),
    } as unknown as RiskService;
    const logger = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
    const risk = createRiskRouter(service, logger);
    const guard = requireSmartAccess(verifier, { realm: 'fracture-risk-cds' });
    app = express().use('/api/assessments', (req, res, next) => void guard(req, res, (err?: unknown) => (err ? next(err) : risk(req, res, next))));
  });
  after(() => fhir?.close());

  const post = (token: string, fhirServer: string, launchPatient: string | null, patient: string) => {
    const r = request(app).post('/api/assessments').set('Authorization', `Bearer ${token}`).set('X-FHIR-Server', fhirServer);
    return (launchPatient ? r.set('X-SMART-Patient', launchPatient) : r).send({ patient });
  };

  test('fhir-delegated: P\'s token for P passes the guard; asking about Q is 403; claiming Q as the launch patient is 401', async () => {
    await post('opaque-for-p', `${fhir.url}/fhir`, 'p', 'p').expect(404);
    assert.deepEqual(assessed, ['p']);
    const mismatch = await post('opaque-for-p', `${fhir.url}/fhir`, 'p', 'q').expect(403);
    assert.equal(mismatch.body.code, 'PATIENT_MISMATCH');
    const lied = await post('opaque-for-p', `${fhir.url}/fhir`, 'q', 'q').expect(401);
    assert.equal(lied.body.code, 'TOKEN_INVALID');
    assert.match(lied.headers['www-authenticate'] ?? '', /error="invalid_token"/);
    await post('opaque-for-p', `${fhir.url}/fhir`, null, 'p').expect(401);
    const img = await request(app).get('/api/assessments/assessment-of-q/heatmap.png').set('Authorization', 'Bearer opaque-for-p').set('X-FHIR-Server', `${fhir.url}/fhir`).set('X-SMART-Patient', 'p').expect(403);
    assert.equal(img.body.code, 'PATIENT_MISMATCH');
    assert.deepEqual(assessed, ['p'], 'the service was never asked about q');
  });

  test('hs256: the patient claim limits the token, X-SMART-Patient does not widen it', async () => {
    const token = await new SignJWT({ client_id: 'app', scope: 'patient/*.rs', patient: 'p' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));
    const r = await post(token, LAUNCHER, 'q', 'q').expect(403);
    assert.equal(r.body.code, 'PATIENT_MISMATCH');
    const forged = await new SignJWT({ client_id: 'app', patient: 'q' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode('another-secret-entirely-0123456789'));
    await post(forged, LAUNCHER, 'q', 'q').expect(401);
  });

  test('a server that is not allowlisted is 401 TOKEN_INVALID naming it', async () => {
    const r = await post('opaque-for-p', 'https://unknown.example/fhir', 'p', 'p').expect(401);
    assert.equal(r.body.code, 'TOKEN_INVALID');
    assert.match(r.body.error, /https:\/\/unknown\.example\/fhir is not allowlisted/);
    assert.match(r.headers['www-authenticate'] ?? '', /not allowlisted/);
  });
});

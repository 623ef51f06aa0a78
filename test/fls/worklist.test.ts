/**
 * FLS triage and worklist end to end on the embedded FHIR sandbox seeded with the demo cohort: RiskAssessments made
 * by the real risk service (smoke fixture model) and written to the server, triage Tasks created by
 * maybeCreateTriageTask, the worklist API behind real SMART token verification (JWTs signed here, verified by
 * server/auth's JwtAccessTokenVerifier), AuditEvents on the server and in the local SQLite log.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import request from 'supertest';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { AuditEvent, Condition, MedicationRequest, Patient, Resource, RiskAssessment, ServiceRequest, Task } from '@medplum/fhirtypes';
import { REPO_ROOT } from '../../server/config.ts';
import { JwtAccessTokenVerifier } from '../../server/auth/verifier.ts';
import { HttpFhirClient } from '../../server/fhir/client.ts';
import { DicomWebClient } from '../../server/imaging/dicomweb-client.ts';
import { ModelRegistry } from '../../server/inference/registry.ts';
import { flsReferral, isFlsReferral } from '../../server/orders/service-requests.ts';
import { RiskService } from '../../server/risk/service.ts';
import { AuditLog } from '../../server/fls/audit.ts';
import { CSV_COLUMNS } from '../../server/fls/csv.ts';
import { TRIAGE_TASK_PROFILE } from '../../server/fls/fhir-model.ts';
import { createFlsRouter, smartGuards } from '../../server/fls/routes.ts';
import { maybeCreateTriageTask } from '../../server/fls/triage.ts';
import type { WorklistItem, WorklistResponse } from '../../server/fls/types.ts';
import { Worklist } from '../../server/fls/worklist.ts';
import { parseCsv } from '../support/csv.ts';
import { startDemoStack, type DemoStack } from '../support/demo-stack.ts';
import { freePort } from '../support/net.ts';

const PATIENTS = ['demo-a-001', 'demo-a-002', 'demo-a-003', 'demo-a-010', 'demo-a-018', 'demo-a-019', 'demo-a-022', 'demo-a-036', 'demo-b-001', 'demo-b-002', 'demo-b-004'];
const ISSUER = 'https://auth.test.invalid';

let stack: DemoStack;
let registry: ModelRegistry;
let fhir: HttpFhirClient;
const ras = new Map<string, RiskAssessment & { id: string }>();
const tiers = new Map<string, string>();
let auditDir = '';

let privateKey: CryptoKey;
let jwk: JWK;
async function token(claims: { scope: string; fhirUser?: string; sub?: string; patient?: string }, key: CryptoKey = privateKey): Promise<string> {
  return new SignJWT({ scope: claims.scope, ...(claims.fhirUser ? { fhirUser: claims.fhirUser } : {}), ...(claims.patient ? { patient: claims.patient } : {}) })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISSUER)
    .setSubject(claims.sub ?? 'fls-coordinator-1')
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(key);
}
const COORDINATOR = { scope: 'openid fhirUser user/Task.rs user/Task.u user/ServiceRequest.c user/Patient.rs', fhirUser: 'Practitioner/demo-fls-coordinator' };

const put = async (r: Resource): Promise<void> => {
  const res = await stack.fhir.handle('PUT', `${r.resourceType}/${r.id}`, r);
  assert.ok(res.status < 300, `PUT ${r.resourceType}/${r.id}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
};

before(async () => {
  stack = await startDemoStack();
  registry = await ModelRegistry.load({ modelsDir: join(REPO_ROOT, 'test/fixtures/models'), device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  // The sandbox FHIR server demands a bearer token (server/sandbox/smart): the service's system-level client.
  fhir = stack.fhirClient({ timeoutMs: 10_000 });
  const service = new RiskService({
    deps: { fhir, dicomweb: new DicomWebClient({ baseUrl: stack.dicomWebBaseUrl, timeoutMs: 10_000 }), registry, settings: { lookbackDays: 730, tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 } }, logger: stack.logger },
    cacheSize: 100, writeBack: true, logger: stack.logger,
  });
  for (const p of PATIENTS) {
    const out = await service.assess({ patientId: p });
    assert.deepEqual(out.stored.writeBack, { written: true });
    const ra = out.stored.fhir.riskAssessment as RiskAssessment & { id: string };
    ras.set(p, ra);
    tiers.set(p, out.stored.assessment.tier.tier);
  }
  const kp = await generateKeyPair('ES256', { extractable: true });
  privateKey = kp.privateKey;
  jwk = { ...(await exportJWK(kp.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  auditDir = mkdtempSync(join(tmpdir(), 'frcds-fls-audit-'));
});

after(async () => {
  await registry?.close();
  await stack?.close();
  if (auditDir) rmSync(auditDir, { recursive: true, force: true });
});

const high = (): string[] => PATIENTS.filter((p) => tiers.get(p) === 'high');
const notHigh = (): string[] => PATIENTS.filter((p) => tiers.get(p) !== 'high');

describe('triage Task creation', () => {
  test('the cohort sample has high-tier and lower-tier patients (otherwise these tests prove nothing)', () => {
    assert.ok(high().length >= 4, `high: ${high().join(',')}`);
    assert.ok(notHigh().length >= 2, `not high: ${notHigh().join(',')}`);
  });

  test('current treatment and an open FLS referral block the Task, with the reason; lower tiers get none', async () => {
    const [treated, referred] = high();
    const alendronate: MedicationRequest = {
      resourceType: 'MedicationRequest', id: `${treated}-alendronate`, status: 'active', intent: 'order', subject: { reference: `Patient/${treated}` },
      medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '46041', display: 'alendronate' }] }, authoredOn: '2026-01-10',
    };
    await put(alendronate);
    await put(flsReferral({ patientId: referred!, id: `${referred}-earlier-fls`, status: 'active', authoredOn: '2026-10-01T00:00:00Z' }));
    const t = await maybeCreateTriageTask(fhir, { patientId: treated!, riskAssessment: ras.get(treated!)! });
    assert.deepEqual(t, { created: false, reason: 'current-treatment' });
    const r = await maybeCreateTriageTask(fhir, { patientId: referred!, riskAssessment: ras.get(referred!)! });
    assert.deepEqual(r, { created: false, reason: 'open-fls-referral' });
    for (const p of notHigh()) {
      assert.deepEqual(await maybeCreateTriageTask(fhir, { patientId: p, riskAssessment: ras.get(p)! }), { created: false, reason: 'tier-not-eligible' }, p);
    }
    // Treatment stopped, referral completed: now they qualify.
    await put({ ...alendronate, status: 'stopped' });
    await put({ ...flsReferral({ patientId: referred!, id: `${referred}-earlier-fls`, status: 'active', authoredOn: '2026-10-01T00:00:00Z' }), status: 'completed' });
  });

  test('high tier → one profiled Task per RiskAssessment; a retry does not duplicate it; a second assessment finds the open Task', async () => {
    const created = new Map<string, string>();
    for (const p of high()) {
      const r = await maybeCreateTriageTask(fhir, { patientId: p, riskAssessment: ras.get(p)! }, { logger: stack.logger });
      assert.equal(r.created, true, `${p}: ${r.reason}`);
      assert.equal(r.reason, 'created');
      created.set(p, r.taskId!);
    }
    const p0 = high()[0]!;
    const again = await Promise.all([1, 2, 3].map(() => maybeCreateTriageTask(fhir, { patientId: p0, riskAssessment: ras.get(p0)! })));
    for (const a of again) assert.deepEqual(a, { created: false, reason: 'already-exists', taskId: created.get(p0) });
    const tasks = await fhir.search<Task>('Task', { identifier: `urn:frcds:fls-triage|${ras.get(p0)!.id}` });
    assert.equal(tasks.length, 1);
    const task = tasks[0]!;
    assert.deepEqual(task.meta?.profile, [TRIAGE_TASK_PROFILE]);
    assert.equal(task.status, 'requested');
    assert.equal(task.focus?.reference, `RiskAssessment/${ras.get(p0)!.id}`);
    assert.equal(task.for?.reference, `Patient/${p0}`);
    assert.match(task.description ?? '', /Research use — trained on synthetic data/);
    // The profile's required elements and fixed values hold (differential walk).
    const sd = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/structuredefinitions/frcds-fls-triage-task.json'), 'utf8')) as { differential: { element: { path: string; min?: number; fixedCode?: string; patternCodeableConcept?: { coding: { system: string; code: string }[] } }[] } };
    for (const e of sd.differential.element) {
      const key = e.path.split('.')[1];
      if (!key) continue;
      const v = (task as unknown as Record<string, unknown>)[key];
      if ((e.min ?? 0) >= 1) assert.ok(v !== undefined, `${e.path} is required by the profile`);
      if (e.fixedCode) assert.equal(v, e.fixedCode, e.path);
      for (const c of e.patternCodeableConcept?.coding ?? []) assert.ok(task.code?.coding?.some((x) => x.system === c.system && x.code === c.code), e.path);
    }
    // Another RiskAssessment for the same patient (a later report) while the Task is open.
    const later = { ...ras.get(p0)!, id: `${ras.get(p0)!.id}-later` };
    await put(later);
    assert.deepEqual(await maybeCreateTriageTask(fhir, { patientId: p0, riskAssessment: later }), { created: false, reason: 'open-triage-task', taskId: created.get(p0) });
    // Configurable tiers: lower tiers join the worklist when asked to (the worklist tests below use them).
    for (const p of notHigh()) {
      const r = await maybeCreateTriageTask(fhir, { patientId: p, riskAssessment: ras.get(p)! }, { tiers: ['low', 'moderate', 'high'] });
      assert.equal(r.created, true, `${p}: ${r.reason}`);
    }
  });
});

describe('worklist API', () => {
  let app: express.Express;
  let audit: AuditLog;
  let wrongKey: CryptoKey;

  before(async () => {
    const verifier = new JwtAccessTokenVerifier({ issuer: ISSUER, keys: { jwks: { keys: [jwk] } } });
    audit = new AuditLog({ fhir, dbPath: join(auditDir, 'audit.sqlite'), logger: stack.logger });
    app = express().use('/api/fls', createFlsRouter({ worklist: new Worklist({ fhir, imminentDays: 730 }), audit, guards: smartGuards(verifier), logger: stack.logger }));
    wrongKey = (await generateKeyPair('ES256')).privateKey;
    // Sites: the demo charts record none; give site-B charts their managing organisation.
    for (const p of PATIENTS.filter((x) => x.startsWith('demo-b-'))) {
      const pat = (await stack.fhir.handle('GET', `Patient/${p}`)).body as Patient;
      await put({ ...pat, managingOrganization: { display: 'Site B' } });
    }
  });
  after(() => audit.close());

  const get = async (q = ''): Promise<WorklistItem[]> => {
    const res = await request(app).get(`/api/fls/worklist${q}`).set('Authorization', `Bearer ${await token(COORDINATOR)}`).expect(200);
    const body = res.body as WorklistResponse;
    assert.equal(body.total, body.items.length);
    assert.equal(body.notice, 'Research use — trained on synthetic data');
    assert.equal(res.headers['cache-control'], 'no-store');
    return body.items;
  };

  test('401 without or with a forged token, 403 with patient-level or read-only scopes', async () => {
    const none = await request(app).get('/api/fls/worklist').expect(401);
    assert.match(String(none.headers['www-authenticate']), /^Bearer/);
    await request(app).get('/api/fls/worklist').set('Authorization', `Bearer ${await token(COORDINATOR, wrongKey)}`).expect(401);
    await request(app).get('/api/fls/worklist').set('Authorization', `Bearer ${await token({ scope: 'launch/patient patient/Task.rs', patient: 'demo-a-022' })}`).expect(403);
    const readOnly = await token({ scope: 'user/Task.rs', fhirUser: 'Practitioner/demo-clinician' });
    await request(app).get('/api/fls/worklist').set('Authorization', `Bearer ${readOnly}`).expect(200);
    await request(app).post('/api/fls/worklist/anything/dismiss').set('Authorization', `Bearer ${readOnly}`).send({ reason: 'declined' }).expect(403);
    const noReferral = await token({ scope: 'user/Task.rs user/Task.u', fhirUser: 'Practitioner/demo-clinician' });
    const items = await get();
    const r = await request(app).post(`/api/fls/worklist/${items[0]!.taskId}/accept`).set('Authorization', `Bearer ${noReferral}`).expect(403);
    assert.match(r.body.error, /ServiceRequest\.c/);
    assert.equal((await get()).find((i) => i.taskId === items[0]!.taskId)?.status, 'requested', 'nothing changed');
  });

  test('every patient with a Task is listed once, ranked by 10-year hip risk, with intervals and the assessment', async () => {
    const items = await get();
    assert.deepEqual(items.map((i) => i.patientId).sort(), [...PATIENTS].sort());
    for (let i = 1; i < items.length; i++) assert.ok(items[i - 1]!.hip10.estimate >= items[i]!.hip10.estimate, 'sorted by hip risk, descending');
    for (const it of items) {
      const ra = ras.get(it.patientId)!;
      assert.equal(it.riskAssessmentId, ra.id);
      assert.equal(it.tier, tiers.get(it.patientId));
      const hip10 = ra.prediction!.find((p) => p.outcome?.coding?.[0]?.code === '5913000' && p.whenRange?.high?.value === 10)!;
      assert.ok(Math.abs(it.hip10.estimate - hip10.probabilityDecimal! * 100) < 0.01);
      if (it.mode === 'clinical-only') assert.equal(it.hip10.lower, null);
      else assert.ok(it.hip10.lower !== null && it.hip10.lower <= it.hip10.estimate && it.hip10.upper! >= it.hip10.estimate);
      assert.ok(it.assessmentId && ra.identifier?.some((x) => x.value === it.assessmentId));
      assert.ok(it.patientName.includes('Synthetic-'), 'name from the Patient');
      assert.equal(it.status, 'requested');
      if (it.mode === 'image-and-clinical') assert.match(it.studyDate ?? '', /^\d{4}-\d{2}-\d{2}T/);
    }
  });

  test('imminent flag: a fracture Condition dated within 2 years before the assessment', async () => {
    const items = await get();
    for (const it of items) {
      const occurred = ras.get(it.patientId)!.occurrenceDateTime!.slice(0, 10);
      const cutoff = new Date(Date.parse(occurred) - 730 * 86_400_000).toISOString().slice(0, 10);
      const conds = await fhir.search<Condition>('Condition', { subject: `Patient/${it.patientId}` });
      const expected = conds.some((c) => /-fracture-\d+$/.test(c.id ?? '') && c.onsetDateTime!.slice(0, 10) >= cutoff && c.onsetDateTime!.slice(0, 10) <= occurred);
      assert.equal(it.imminent, expected, it.patientId);
    }
    assert.ok(items.some((i) => i.imminent) && items.some((i) => !i.imminent), 'both cases present in the sample');
  });

  test('filters: tier, status, dates, site; bad values are 400', async () => {
    const all = await get();
    for (const tier of ['low', 'moderate', 'high'] as const) {
      assert.deepEqual((await get(`?tier=${tier}`)).map((i) => i.taskId), all.filter((i) => i.tier === tier).map((i) => i.taskId));
    }
    assert.equal((await get('?status=requested')).length, all.length);
    assert.equal((await get('?status=dismissed')).length, 0);
    const day = all[0]!.authoredOn.slice(0, 10);
    const prev = new Date(Date.parse(day) - 86_400_000).toISOString().slice(0, 10);
    const next = new Date(Date.parse(day) + 86_400_000).toISOString().slice(0, 10);
    assert.equal((await get(`?from=${day}&to=${day}`)).length, all.length);
    assert.equal((await get(`?to=${prev}`)).length, 0);
    assert.equal((await get(`?from=${next}`)).length, 0);
    const siteB = await get('?site=Site%20B');
    assert.deepEqual(siteB.map((i) => i.patientId).sort(), PATIENTS.filter((p) => p.startsWith('demo-b-')).sort());
    assert.ok(siteB.every((i) => i.site === 'Site B'));
    const t = await token(COORDINATOR);
    for (const q of ['?tier=urgent', '?status=open', '?from=2026-13-01', '?from=2026-11-02&to=2026-11-01', '?tier=low&tier=high']) {
      const r = await request(app).get(`/api/fls/worklist${q}`).set('Authorization', `Bearer ${t}`).expect(400);
      assert.equal(r.body.code, 'BAD_REQUEST', q);
    }
  });

  test('accept: an active FLS referral, the Task in progress with it as output; idempotent', async () => {
    const target = (await get('?tier=high'))[0]!;
    const t = await token(COORDINATOR);
    const res = await request(app).post(`/api/fls/worklist/${target.taskId}/accept`).set('Authorization', `Bearer ${t}`).send({ note: 'Seen in clinic' }).expect(201);
    assert.equal(res.body.item.status, 'accepted');
    const srId = res.body.serviceRequestId as string;
    const sr = await fhir.read<ServiceRequest>('ServiceRequest', srId);
    assert.ok(isFlsReferral(sr));
    assert.equal(sr.status, 'active');
    assert.equal(sr.subject.reference, `Patient/${target.patientId}`);
    assert.equal(sr.supportingInfo?.[0]?.reference, `RiskAssessment/${target.riskAssessmentId}`);
    assert.equal(sr.requester?.reference, 'Practitioner/demo-fls-coordinator');
    const task = await fhir.read<Task>('Task', target.taskId);
    assert.equal(task.status, 'in-progress');
    assert.equal(task.output?.[0]?.valueReference?.reference, `ServiceRequest/${srId}`);
    assert.equal(task.owner?.reference, 'Practitioner/demo-fls-coordinator');
    const again = await request(app).post(`/api/fls/worklist/${target.taskId}/accept`).set('Authorization', `Bearer ${t}`).expect(200);
    assert.equal(again.body.serviceRequestId, srId);
    const referrals = (await fhir.search<ServiceRequest>('ServiceRequest', { subject: `Patient/${target.patientId}` })).filter((s) => s.identifier?.some((i) => i.value === target.taskId));
    assert.equal(referrals.length, 1, 'one referral whatever the number of clicks');
    assert.equal(res.body.item.pathway.step, 'accepted');
    assert.equal(res.body.item.care.flsReferral?.id, srId, 'the item shows its referral');
    assert.equal((await get('?status=accepted')).map((i) => i.taskId).join(), target.taskId);
    // The referral now blocks a new triage Task for this patient.
    const later = { ...ras.get(target.patientId)!, id: `${target.riskAssessmentId}-after-accept` };
    await put(later);
    assert.equal((await maybeCreateTriageTask(fhir, { patientId: target.patientId, riskAssessment: later })).reason, 'open-fls-referral');
  });

  test('dismiss: reason from the CodeSystem → rejected with statusReason; bad reasons and unknown Tasks refused', async () => {
    const target = (await get('?status=requested'))[0]!;
    const t = await token(COORDINATOR);
    await request(app).post(`/api/fls/worklist/${target.taskId}/dismiss`).set('Authorization', `Bearer ${t}`).send({ reason: 'bored' }).expect(400);
    await request(app).post(`/api/fls/worklist/${target.taskId}/dismiss`).set('Authorization', `Bearer ${t}`).send({ reason: 'other' }).expect(400);
    await request(app).post('/api/fls/worklist/no-such-task/dismiss').set('Authorization', `Bearer ${t}`).send({ reason: 'declined' }).expect(404);
    const res = await request(app).post(`/api/fls/worklist/${target.taskId}/dismiss`).set('Authorization', `Bearer ${t}`).send({ reason: 'declined', note: 'Prefers GP follow-up' }).expect(200);
    assert.equal(res.body.item.status, 'dismissed');
    assert.equal(res.body.item.dismissalReason, 'declined');
    const task = await fhir.read<Task>('Task', target.taskId);
    assert.equal(task.status, 'rejected');
    assert.deepEqual(task.statusReason?.coding?.map((c) => [c.system, c.code]), [['https://fracture-risk-cds.invalid/fhir/CodeSystem/fls-triage', 'declined']]);
    assert.equal(task.note?.at(-1)?.text, 'Prefers GP follow-up');
    await request(app).post(`/api/fls/worklist/${target.taskId}/dismiss`).set('Authorization', `Bearer ${t}`).send({ reason: 'declined' }).expect(200);
    await request(app).post(`/api/fls/worklist/${target.taskId}/accept`).set('Authorization', `Bearer ${t}`).expect(409);
    assert.deepEqual((await get('?status=dismissed')).map((i) => i.taskId), [target.taskId]);
  });

  test('CSV export: same filters, RFC 4180, awkward names survive', async () => {
    const victim = (await get('?status=requested'))[0]!;
    const pat = (await stack.fhir.handle('GET', `Patient/${victim.patientId}`)).body as Patient;
    await put({ ...pat, name: [{ use: 'official', family: 'Smith, "Jr"', given: ['=cmd|x'] }] });
    const res = await request(app).get('/api/fls/worklist.csv?status=requested').set('Authorization', `Bearer ${await token(COORDINATOR)}`).expect(200);
    assert.match(String(res.headers['content-type']), /^text\/csv/);
    assert.match(String(res.headers['content-disposition']), /attachment; filename="fls-worklist-\d{4}-\d{2}-\d{2}\.csv"/);
    const rows = parseCsv(res.text);
    const json = await get('?status=requested');
    assert.equal(rows.length, json.length + 1);
    assert.deepEqual(rows.slice(1).map((r) => r[0]), json.map((i) => i.taskId), 'same rows, same order');
    const row = rows.find((r) => r[0] === victim.taskId)!;
    assert.equal(row[CSV_COLUMNS.indexOf('patientName')], '\'=cmd|x Smith, "Jr"');
  });

  test('every action is an AuditEvent on the FHIR server, refused ones included', async () => {
    const events = await fhir.search<AuditEvent>('AuditEvent', {});
    const by = (code: string, outcome?: string): AuditEvent[] => events.filter((e) => e.subtype?.[0]?.code === code && (!outcome || e.outcome === outcome));
    const accepts = events.filter((e) => e.action === 'U' && e.entity?.some((x) => x.what?.reference?.startsWith('ServiceRequest/')));
    assert.ok(accepts.length >= 2, 'accept and re-accept');
    assert.ok(accepts.every((e) => e.agent[0]?.who?.reference === 'Practitioner/demo-fls-coordinator' && e.agent[0]?.requestor === true));
    assert.ok(by('update', '4').length >= 4, 'refused updates (conflicts, bad reasons, 404, missing scope) are audited');
    assert.ok(by('search-type').some((e) => e.type.code === '110106'), 'CSV export');
    const view = by('search-type').find((e) => e.type.code === 'rest' && e.entity?.some((x) => x.role?.code === '24'))!;
    assert.ok(view.entity!.filter((x) => x.what?.reference?.startsWith('Patient/')).length >= 1);
    assert.equal((await audit.pending()).length, 0, 'nothing kept locally while the FHIR server works');
  });
});

describe('local audit log when the FHIR server fails', () => {
  test('kept in SQLite, survives a restart, forwarded when the server is back', async () => {
    const dbPath = join(auditDir, 'fallback.sqlite');
    const down = new HttpFhirClient({ baseUrl: `http://127.0.0.1:${await freePort()}/fhir`, timeoutMs: 2000 });
    const a1 = new AuditLog({ fhir: down, dbPath, logger: stack.logger });
    const out = await a1.record({ action: 'dismiss', actor: { subject: 'u1', fhirUser: 'Practitioner/demo-fls-coordinator' }, outcome: '0', taskId: 'fls-triage-x', patientIds: ['demo-a-001'], reason: 'declined' });
    assert.equal(out.stored, 'local');
    assert.equal(await a1.forwardPending(), 0, 'still down');
    await a1.close();
    const a2 = new AuditLog({ fhir, dbPath, logger: stack.logger });
    const kept = await a2.pending();
    assert.equal(kept.length, 1);
    assert.equal(kept[0]!.event.entity?.[0]?.what?.reference, 'Task/fls-triage-x');
    assert.equal(await a2.forwardPending(), 1);
    assert.equal((await a2.pending()).length, 0);
    assert.equal((await a2.rows()).length, 1, 'the local log keeps the forwarded row (append-only)');
    const onServer = (await fhir.search<AuditEvent>('AuditEvent', {})).filter((e) => e.entity?.some((x) => x.what?.reference === 'Task/fls-triage-x'));
    assert.equal(onServer.length, 1);
    a2.close();
  });
});

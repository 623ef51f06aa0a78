/**
 * The FLS pathway through the HTTP API on the embedded FHIR sandbox with the demo cohort: one item goes through every
 * step with its due dates, shows overdue after a due date on an injected clock, and the KPIs follow; a DXA
 * Observation and an osteoporosis MedicationRequest move items by themselves; If-Match, bulk actions, filters,
 * sorting, MRN and site in JSON and CSV. Authentication is covered by worklist.test.ts: here the guards stand in for
 * a verified coordinator token.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import express, { type RequestHandler } from 'express';
import request from 'supertest';
import type { MedicationRequest, Observation, Patient, Resource, RiskAssessment, ServiceRequest, Task } from '@medplum/fhirtypes';
import type { HttpFhirClient } from '../../server/fhir/client.ts';
import { AuditLog } from '../../server/fls/audit.ts';
import { CSV_COLUMNS } from '../../server/fls/csv.ts';
import { addDays } from '../../server/fls/pathway.ts';
import { createFlsRouter } from '../../server/fls/routes.ts';
import { buildTriageTask } from '../../server/fls/triage.ts';
import {
  FLS_PATHWAY_SYSTEM, RESEARCH_NOTICE, type BulkResponse, type KpiResponse, type WorklistItem, type WorklistItemResponse, type WorklistResponse,
} from '../../server/fls/types.ts';
import { Worklist } from '../../server/fls/worklist.ts';
import { flsReferral, isFlsReferral } from '../../server/orders/service-requests.ts';
import { EXT } from '../../server/risk/fhir-output.ts';
import { parseCsv } from '../support/csv.ts';
import { startDemoStack, type DemoStack } from '../support/demo-stack.ts';

const COORDINATOR = 'Practitioner/demo-fls-coordinator';
const IDENTIFIED = new Date('2026-11-02T09:00:00Z');
/** hip / MOF 10-year risks (fractions) per patient; demo-b-001 is site B. */
const PATIENTS: Record<string, [number, number]> = {
  'demo-a-001': [0.052, 0.21],
  'demo-a-002': [0.031, 0.12],
  'demo-a-003': [0.12, 0.33],
  'demo-a-004': [0.01, 0.14],
  'demo-b-001': [0.04, 0.25],
};

let stack: DemoStack;
let fhir: HttpFhirClient;
let audit: AuditLog;
let app: express.Express;
let clock = new Date('2026-11-03T10:00:00Z');
const taskIds = new Map<string, string>();

const put = async (r: Resource): Promise<void> => {
  const res = await stack.fhir.handle('PUT', `${r.resourceType}/${r.id}`, r);
  assert.ok(res.status < 300, `PUT ${r.resourceType}/${r.id}: ${res.status} ${JSON.stringify(res.body).slice(0, 400)}`);
};

function riskAssessment(pid: string, hip: number, mof: number): RiskAssessment & { id: string } {
  const tier = hip >= 0.03 || mof >= 0.2 ? 'high' : mof >= 0.1 ? 'moderate' : 'low';
  const prediction = (system: string, code: string, p: number): NonNullable<RiskAssessment['prediction']>[number] => ({
    outcome: { coding: [{ system, code }] },
    probabilityDecimal: p,
    whenRange: { low: { value: 0, unit: 'a' }, high: { value: 10, unit: 'a' } },
    qualitativeRisk: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/risk-probability', code: tier }] },
    extension: [{ url: EXT.interval, extension: [{ url: 'lower', valueDecimal: p * 0.6 }, { url: 'upper', valueDecimal: p * 1.5 }] }],
  });
  return {
    resourceType: 'RiskAssessment', id: `ra-pathway-${pid}`, status: 'final', subject: { reference: `Patient/${pid}` }, occurrenceDateTime: IDENTIFIED.toISOString(),
    extension: [{ url: EXT.mode, valueCode: 'image-and-clinical' }],
    prediction: [prediction('http://snomed.info/sct', '5913000', hip), prediction('urn:frcds:outcome', 'mof', mof)],
    note: [{ text: RESEARCH_NOTICE }],
  };
}

const passGuard: RequestHandler = (_req, res, next) => {
  res.locals['smartAccess'] = { subject: 'coordinator-1', scopes: ['user/Task.rs', 'user/Task.u', 'user/ServiceRequest.c'], fhirUser: COORDINATOR };
  next();
};

before(async () => {
  stack = await startDemoStack();
  fhir = stack.fhirClient({ timeoutMs: 10_000 });
  for (const [pid, [hip, mof]] of Object.entries(PATIENTS)) {
    const ra = riskAssessment(pid, hip, mof);
    await put(ra);
    const t = buildTriageTask(pid, ra, IDENTIFIED);
    await put(t);
    taskIds.set(pid, t.id!);
  }
  audit = new AuditLog({ fhir, dbPath: ':memory:', logger: stack.logger });
  const worklist = new Worklist({ fhir, imminentDays: 730, now: () => clock });
  app = express().use('/api/fls', createFlsRouter({ worklist, audit, guards: { read: passGuard, write: passGuard }, logger: stack.logger }));
});

after(async () => {
  audit?.close();
  await stack?.close();
});

const one = async (pid: string): Promise<WorklistItem> => {
  const res = await request(app).get(`/api/fls/worklist/${taskIds.get(pid)}`).expect(200);
  const body = res.body as WorklistItemResponse;
  assert.equal(res.headers['etag'], `W/"${body.item.pathway.version}"`);
  return body.item;
};
const list = async (q = ''): Promise<WorklistItem[]> => ((await request(app).get(`/api/fls/worklist${q}`).expect(200)).body as WorklistResponse).items;
const kpis = async (q = ''): Promise<KpiResponse> => (await request(app).get(`/api/fls/kpis${q}`).expect(200)).body as KpiResponse;
const step = (pid: string, version: string, body: Record<string, unknown>): request.Test =>
  request(app).post(`/api/fls/worklist/${taskIds.get(pid)}/step`).set('If-Match', `W/"${version}"`).send(body);

describe('FLS pathway', () => {
  test('a new item: identified, MRN and site from the chart, flag reason in displayed numbers, contact due in 14 days', async () => {
    const it = await one('demo-a-001');
    const pat = (await stack.fhir.handle('GET', 'Patient/demo-a-001')).body as Patient;
    assert.equal(it.mrn, pat.identifier?.find((i) => i.type?.coding?.[0]?.code === 'MR')?.value);
    assert.ok(it.mrn, 'the demo chart has an MRN');
    assert.equal(it.site, pat.managingOrganization?.display);
    assert.ok(it.site, 'the demo chart names its site');
    assert.equal(it.flagReason, '10-year hip fracture risk 5.2% (above the 3% threshold); 10-year major osteoporotic fracture risk 21% (above the 20% threshold)');
    assert.equal((await one('demo-a-002')).flagReason, '10-year hip fracture risk 3.1% (above the 3% threshold)');
    assert.equal((await one('demo-a-004')).flagReason, '10-year major osteoporotic fracture risk 14% (moderate: from 10%)');
    assert.equal(it.pathway.step, 'identified');
    assert.equal(it.pathway.dueDate, '2026-11-16');
    assert.equal(it.pathway.dueFor, 'Contact the patient');
    assert.equal(it.pathway.overdue, false);
    assert.deepEqual(it.pathway.nextSteps, ['accepted']);
    assert.equal(it.pathway.history[0]?.step, 'identified');
    assert.equal(it.care.flsReferral, null);
  });

  test('one item through every step: due dates, overdue on the injected clock, KPIs follow, referral completed at close', async () => {
    const pid = 'demo-a-001';
    const k0 = await kpis();
    assert.equal(k0.identified, 5);
    assert.equal(k0.accepted, 0);
    assert.equal(k0.overdue, 0);

    let it = await one(pid);
    const early = await step(pid, it.pathway.version, { step: 'contacted' }).expect(409);
    assert.match(early.body.error, /accept it first/);
    const acc = await request(app).post(`/api/fls/worklist/${it.taskId}/accept`).set('If-Match', `W/"${it.pathway.version}"`).send({}).expect(201);
    it = acc.body.item as WorklistItem;
    assert.equal(it.pathway.step, 'accepted');
    assert.equal(it.care.flsReferral?.status, 'active', 'the item shows its referral');
    assert.equal(it.pathway.owner?.reference, COORDINATOR);
    assert.equal(it.pathway.owner?.display, 'Demo FLS-Coordinator');
    assert.equal(it.pathway.dueDate, '2026-11-16', 'contact still due 14 days after identification');
    assert.equal((await kpis()).accepted, 1);

    clock = new Date('2026-11-17T08:00:00Z');
    it = await one(pid);
    assert.equal(it.pathway.overdue, true, 'contact was due on 2026-11-16');
    assert.ok((await list('?overdue=true')).some((x) => x.taskId === it.taskId));
    assert.ok(!(await list('?overdue=false')).some((x) => x.taskId === it.taskId));
    assert.equal((await kpis()).overdue, 5);

    const stale = await request(app).post(`/api/fls/worklist/${it.taskId}/notes`).set('If-Match', 'W/"1"').send({ text: 'Called, no answer' }).expect(409);
    assert.equal(stale.body.code, 'STALE_VERSION');
    const noted = await request(app).post(`/api/fls/worklist/${it.taskId}/notes`).set('If-Match', `W/"${it.pathway.version}"`).send({ text: 'Called, no answer' }).expect(201);
    it = noted.body.item as WorklistItem;
    assert.deepEqual(it.pathway.notes.map((n) => [n.text, n.author]), [['Called, no answer', 'Demo FLS-Coordinator']]);

    it = (await step(pid, it.pathway.version, { step: 'contacted', date: '2026-11-10', note: 'Invited to clinic' }).expect(200)).body.item;
    assert.equal(it.pathway.step, 'contacted');
    assert.equal(it.pathway.dueDate, addDays('2026-11-02', 84), 'DXA due 12 weeks after identification');
    assert.equal(it.pathway.overdue, false);
    let k = await kpis();
    assert.equal(k.contacted, 1);
    assert.equal(k.contactedWithinTarget, 1, 'contacted on day 8');
    assert.equal(k.overdue, 4);

    await step(pid, it.pathway.version, { step: 'contacted' }).expect(409);
    await step(pid, it.pathway.version, { step: 'dxa-booked', date: '2027-01-01' }).expect(400);
    const before = await step(pid, it.pathway.version, { step: 'dxa-booked', date: '2026-11-09' }).expect(400);
    assert.match(before.body.error, /before the current step/);
    it = (await step(pid, it.pathway.version, { step: 'dxa-booked' }).expect(200)).body.item;
    assert.equal(it.pathway.step, 'dxa-booked');

    // The DXA result arrives in the chart: the item moves to "assessed" by itself.
    const dxa: Observation = {
      resourceType: 'Observation', id: 'pathway-dxa-a-001', status: 'final', subject: { reference: `Patient/${pid}` }, effectiveDateTime: '2026-11-20T10:00:00Z',
      code: { coding: [{ system: 'http://loinc.org', code: '38263-0', display: 'DXA Femur [T-score] Bone density' }] }, valueQuantity: { value: -2.7, unit: '{T-score}', system: 'http://unitsofmeasure.org', code: '{T-score}' },
    };
    await put(dxa);
    clock = new Date('2026-11-21T08:00:00Z');
    it = await one(pid);
    assert.equal(it.pathway.step, 'assessed');
    const detected = it.pathway.history.find((e) => e.step === 'assessed')!;
    assert.equal(detected.source, 'fhir');
    assert.equal(detected.time, '2026-11-20T10:00:00Z');
    assert.equal(it.pathway.dueDate, '2026-12-04', 'treatment decision 14 days after the DXA');
    assert.equal(it.care.dxaResult?.tScore, -2.7);
    k = await kpis();
    assert.equal(k.assessed, 1);
    assert.equal(k.assessedWithin12Weeks, 1);

    await step(pid, it.pathway.version, { step: 'treatment-decided', treatment: 'continuing' }).expect(400);
    it = (await step(pid, it.pathway.version, { step: 'treatment-decided', treatment: 'started', note: 'Alendronic acid weekly' }).expect(200)).body.item;
    assert.equal(it.pathway.step, 'treatment-decided');
    assert.equal(it.pathway.dueDate, addDays('2026-11-21', 112), '16-week follow-up');
    assert.equal((await kpis()).treatmentStarted, 1);
    const stored = await fhir.read<Task>('Task', it.taskId);
    assert.ok(stored.extension?.some((e) => e.extension?.some((x) => x.url === 'source' && x.valueCode === 'fhir')), 'the detected step is written into the Task with the next update');

    clock = new Date(`${addDays('2026-11-21', 113)}T08:00:00Z`);
    it = await one(pid);
    assert.equal(it.pathway.overdue, true, 'the 16-week follow-up is late');
    it = (await step(pid, it.pathway.version, { step: 'follow-up-16w', treatment: 'continuing' }).expect(200)).body.item;
    assert.equal(it.pathway.dueDate, addDays('2026-11-21', 365));
    assert.equal(it.pathway.overdue, false);
    assert.equal((await kpis()).followUp16Weeks, 1);

    clock = new Date(`${addDays('2026-11-21', 366)}T08:00:00Z`);
    it = (await step(pid, it.pathway.version, { step: 'follow-up-12m', treatment: 'continuing' }).expect(200)).body.item;
    assert.equal(it.pathway.dueDate, null);
    assert.equal((await kpis()).onTreatmentAt12Months, 1);

    it = (await step(pid, it.pathway.version, { step: 'closed' }).expect(200)).body.item;
    assert.equal(it.pathway.step, 'closed');
    assert.deepEqual(it.pathway.nextSteps, []);
    assert.deepEqual(it.pathway.history.map((e) => e.step), ['identified', 'accepted', 'contacted', 'dxa-booked', 'assessed', 'treatment-decided', 'follow-up-16w', 'follow-up-12m', 'closed']);
    await step(pid, it.pathway.version, { step: 'follow-up-12m' }).expect(409);
    await request(app).post(`/api/fls/worklist/${it.taskId}/dismiss`).send({ reason: 'declined' }).expect(409);
    k = await kpis();
    assert.equal(k.closed, 1);
    assert.equal(k.byStep.closed, 1);
    assert.equal(k.open, 4);

    const task = await fhir.read<Task>('Task', it.taskId);
    assert.equal(task.status, 'completed');
    assert.deepEqual(task.businessStatus?.coding?.map((c) => [c.system, c.code]), [[FLS_PATHWAY_SYSTEM, 'closed']]);
    const sr = await fhir.read<ServiceRequest>('ServiceRequest', it.serviceRequestId!);
    assert.equal(sr.status, 'completed', 'closing the pathway completes the FLS referral');
  });

  test('an osteoporosis MedicationRequest after identification is detected as treatment started', async () => {
    const pid = 'demo-a-003';
    let it = await one(pid);
    it = (await request(app).post(`/api/fls/worklist/${it.taskId}/accept`).send({}).expect(201)).body.item;
    const mr: MedicationRequest = {
      resourceType: 'MedicationRequest', id: 'pathway-alendronate-a-003', status: 'active', intent: 'order', subject: { reference: `Patient/${pid}` }, authoredOn: '2026-11-25',
      medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '46041', display: 'alendronate' }], text: 'Alendronic acid 70 mg weekly' },
    };
    await put(mr);
    it = await one(pid);
    assert.equal(it.pathway.step, 'treatment-decided');
    const e = it.pathway.history.find((x) => x.step === 'treatment-decided')!;
    assert.deepEqual([e.source, e.treatment, e.time], ['fhir', 'started', '2026-11-25']);
    assert.equal(it.care.treatment?.name, 'Alendronic acid 70 mg weekly');
    assert.equal((await kpis()).treatmentStarted, 2);
  });

  test('bulk: per-item results; an explicit dismissal reason is required; assign then filter by owner', async () => {
    const ids = ['demo-a-002', 'demo-a-004', 'demo-b-001'].map((p) => taskIds.get(p)!);
    const noReason = await request(app).post('/api/fls/worklist/bulk').send({ taskIds: ids, action: 'dismiss' }).expect(400);
    assert.match(noReason.body.error, /reason/);
    assert.ok((await Promise.all(ids.map((id) => fhir.read<Task>('Task', id)))).every((t) => t.status === 'requested'), 'nothing changed');

    const early = (await request(app).post('/api/fls/worklist/bulk').send({ taskIds: ids, action: 'step', step: 'contacted' }).expect(200)).body as BulkResponse;
    assert.deepEqual([early.succeeded, early.failed], [0, 3]);
    assert.ok(early.results.every((r) => r.status === 409 && r.code === 'CONFLICT'));

    const assigned = (await request(app).post('/api/fls/worklist/bulk').send({ taskIds: [...ids, 'no-such-task'], action: 'assign', owner: { reference: COORDINATOR } }).expect(200)).body as BulkResponse;
    assert.deepEqual([assigned.succeeded, assigned.failed], [3, 1]);
    assert.deepEqual(assigned.results.at(-1), { taskId: 'no-such-task', ok: false, status: 404, code: 'NOT_FOUND', error: 'Task/no-such-task was not found' });
    assert.ok(assigned.results.slice(0, 3).every((r) => r.item?.pathway.owner?.display === 'Demo FLS-Coordinator'));
    const mine = await list('?owner=me&step=identified');
    assert.deepEqual(mine.map((i) => i.taskId).sort(), [...ids].sort());
    assert.ok((await list('?owner=none')).every((i) => i.pathway.owner === null));

    // demo-a-002 already has an open FLS referral (made from a card): accepting links it instead of writing another.
    await put(flsReferral({ patientId: 'demo-a-002', id: 'pathway-card-referral-a-002', status: 'active', authoredOn: '2026-11-20T09:00:00Z' }));
    const accepted = (await request(app).post('/api/fls/worklist/bulk').send({ taskIds: ids.slice(0, 2), action: 'step', step: 'accepted' }).expect(200)).body as BulkResponse;
    assert.equal(accepted.succeeded, 2);
    assert.equal(accepted.results[0]!.item!.serviceRequestId, 'pathway-card-referral-a-002');
    const open = (await fhir.search<ServiceRequest>('ServiceRequest', { subject: 'Patient/demo-a-002' })).filter((x) => isFlsReferral(x) && x.status === 'active');
    assert.deepEqual(open.map((x) => x.id), ['pathway-card-referral-a-002'], 'no duplicate referral');
    const dismissed = (await request(app).post('/api/fls/worklist/bulk').send({ taskIds: ids.slice(1), action: 'dismiss', reason: 'moved-away' }).expect(200)).body as BulkResponse;
    assert.deepEqual([dismissed.succeeded, dismissed.failed], [2, 0]);
    const fromAccepted = dismissed.results[0]!.item!;
    assert.equal(fromAccepted.pathway.step, 'dismissed', 'dismissed from an accepted step');
    const sr = await fhir.read<ServiceRequest>('ServiceRequest', fromAccepted.serviceRequestId!);
    assert.equal(sr.status, 'revoked', 'its FLS referral is withdrawn');
    const k = await kpis();
    assert.equal(k.dismissed, 2);
    assert.equal(k.dismissedByReason['moved-away'], 2);
  });

  test('filters, sorting, KPIs per site and range; CSV with MRN, site, step, due date, owner', async () => {
    const all = await list();
    assert.equal(all.length, 5);
    const byDue = await list('?sort=due');
    const dues = byDue.map((i) => i.pathway.dueDate);
    const firstNull = dues.indexOf(null);
    assert.ok(firstNull > 0 && dues.slice(firstNull).every((d) => d === null), 'nothing due last');
    assert.deepEqual(dues.slice(0, firstNull), [...dues.slice(0, firstNull)].sort());
    assert.deepEqual((await list('?sort=name&dir=desc')).map((i) => i.patientName), all.map((i) => i.patientName).sort((a, b) => b.localeCompare(a, 'en', { sensitivity: 'base' })));
    assert.deepEqual((await list('?step=dismissed')).length, 2);
    for (const q of ['?step=done', '?overdue=yes', '?sort=size', '?owner=Bob', '?dir=up']) {
      assert.equal((await request(app).get(`/api/fls/worklist${q}`).expect(400)).body.code, 'BAD_REQUEST', q);
    }
    const siteB = all.find((i) => i.patientId === 'demo-b-001')!.site!;
    const kb = await kpis(`?site=${encodeURIComponent(siteB)}`);
    assert.equal(kb.identified, 1);
    const k = await kpis();
    assert.equal(k.bySite.reduce((n, s) => n + s.identified, 0), 5);
    assert.equal((await kpis('?from=2026-11-03')).identified, 0, 'identified on 2026-11-02');
    await request(app).get('/api/fls/kpis?tier=high').expect(400);
    const kcsv = parseCsv((await request(app).get('/api/fls/kpis.csv').expect(200)).text);
    assert.equal(kcsv[1]![kcsv[0]!.indexOf('identified')], '5');

    const res = await request(app).get('/api/fls/worklist.csv').expect(200);
    const rows = parseCsv(res.text);
    const col = (r: string[], c: (typeof CSV_COLUMNS)[number]): string => r[CSV_COLUMNS.indexOf(c)]!;
    assert.equal(rows.length, 6);
    for (const r of rows.slice(1)) {
      const it = all.find((i) => i.taskId === r[0])!;
      assert.equal(col(r, 'mrn'), it.mrn);
      assert.ok(col(r, 'site') !== '' && col(r, 'site') === it.site, 'site is never silently empty when the chart has one');
      assert.equal(col(r, 'step'), it.pathway.step);
      assert.equal(col(r, 'dueDate'), it.pathway.dueDate ?? '');
      assert.equal(col(r, 'owner'), it.pathway.owner?.display ?? '');
    }
    const closed = rows.find((r) => r[0] === taskIds.get('demo-a-001'))!;
    assert.equal(col(closed, 'hip10'), '5.2');
    assert.equal(col(closed, 'hip10Text'), '5.2% (95% interval 3.1–7.8%)');
    const owners = (await request(app).get('/api/fls/owners').expect(200)).body.owners as { reference: string; display: string }[];
    assert.ok(owners.some((o) => o.reference === COORDINATOR && o.display === 'Demo FLS-Coordinator'));
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { before, describe, test } from 'node:test';
import type { Bundle, Resource, ServiceRequest, Task } from '@medplum/fhirtypes';
import { REPO_ROOT } from '../config.ts';
import type { FhirDataSource } from '../fhir/client.ts';
import { computeKpis } from '../fls/kpis.ts';
import { DEFAULT_DUE_DAYS } from '../fls/pathway.ts';
import type { WorklistItem } from '../fls/types.ts';
import { Worklist } from '../fls/worklist.ts';
import { createLogger } from '../logging.ts';
import { DEMO_PLAN } from './fls-demo.ts';
import { createFhirSandbox, type FhirSandbox } from './fhir/router.ts';
import { seedFhirSandbox } from './seed.ts';

const logger = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const NOW = new Date('2026-12-03T09:30:00Z');
const FHIR_DIR = join(REPO_ROOT, 'server/sandbox/demo-cohort/fhir');

/** The sandbox as a FhirDataSource without HTTP (its own interaction handler). */
function source(sandbox: FhirSandbox): FhirDataSource {
  const ok = <T extends Resource>(r: { status: number; body: Resource }, what: string): T => {
    if (r.status >= 300) throw Object.assign(new Error(`${what}: HTTP ${r.status}`), { code: r.status === 404 ? 'FHIR_NOT_FOUND' : 'FHIR_HTTP' });
    return r.body as T;
  };
  return {
    baseUrl: 'http://localhost:8080/sandbox/fhir',
    read: async <T extends Resource>(type: T['resourceType'], id: string) => ok<T>(await sandbox.handle('GET', `${type}/${id}`), `read ${type}`),
    search: async <T extends Resource>(type: T['resourceType'], params: Record<string, string>) => {
      const b = ok<Bundle>(await sandbox.handle('GET', `${type}?${new URLSearchParams({ _count: '100', ...params }).toString()}`), `search ${type}`);
      return (b.entry ?? []).map((e) => e.resource).filter((r): r is T => r?.resourceType === type);
    },
    write: async <T extends Resource>(r: T) => ok<T>(await sandbox.handle(r.id ? 'PUT' : 'POST', r.id ? `${r.resourceType}/${r.id}` : r.resourceType, r), `write ${r.resourceType}`),
  };
}

describe('FLS pathway demo in the sandbox seed', () => {
  let sandbox: FhirSandbox;
  let items: WorklistItem[];
  const byPatient = (pid: string): WorklistItem => items.find((i) => i.patientId === pid)!;

  before(async () => {
    sandbox = createFhirSandbox({ baseUrl: 'http://localhost:8080/sandbox/fhir', page: { defaultPageSize: 20, maxPageSize: 100 }, maxRequestBytes: 1 << 20, logger });
    const seeded = await seedFhirSandbox(sandbox.repo, { fhirDir: FHIR_DIR, dicomWebBaseUrl: 'http://localhost:8080/sandbox/dicom-web', logger, flsDemo: { now: NOW } });
    assert.equal(seeded.failedBundles, 0);
    assert.equal(seeded.flsDemoItems, DEMO_PLAN.length, 'every planned patient has a chart and a QFracture estimate');
    items = await new Worklist({ fhir: source(sandbox), imminentDays: 730, now: () => NOW }).list();
  });

  test('one item per planned patient, at the planned steps, with the chart detecting DXA and treatment', () => {
    assert.equal(items.length, DEMO_PLAN.length);
    assert.deepEqual(Object.fromEntries(items.map((i) => [i.patientId, i.pathway.step])), {
      'demo-a-009': 'identified', 'demo-a-038': 'identified', 'demo-a-006': 'contacted', 'demo-a-026': 'dxa-booked',
      'demo-a-005': 'assessed', 'demo-a-034': 'treatment-decided', 'demo-b-001': 'dismissed',
    });
    assert.equal(byPatient('demo-a-005').pathway.history.find((e) => e.step === 'assessed')?.source, 'fhir', 'DXA Observation detected');
    assert.equal(byPatient('demo-a-005').care.dxaResult?.tScore, -2.6);
    const treated = byPatient('demo-a-034');
    assert.deepEqual(treated.pathway.history.filter((e) => e.step === 'treatment-decided').map((e) => [e.source, e.treatment]), [['fhir', 'started']]);
    assert.match(treated.care.treatment?.name ?? '', /Alendronic acid/);
    assert.equal(byPatient('demo-b-001').dismissalReason, 'declined');
    for (const it of items) {
      assert.ok(it.hip10.estimate > 0 && it.mof10.estimate >= it.hip10.estimate, `${it.patientId}: MOF never below hip`);
      assert.ok(it.mrn && it.site, `${it.patientId}: MRN and site from the chart`);
      assert.equal(it.mode, 'clinical-only');
    }
  });

  test('overdue items, owners and notes; KPIs along the path', () => {
    const overdue = items.filter((i) => i.pathway.overdue).map((i) => i.patientId).sort();
    assert.deepEqual(overdue, ['demo-a-005', 'demo-a-034', 'demo-a-038'], 'contact, treatment decision and 16-week follow-up late');
    assert.equal(byPatient('demo-a-009').pathway.overdue, false);
    assert.equal(byPatient('demo-a-038').pathway.owner?.display, 'Demo FLS-Coordinator');
    assert.equal(byPatient('demo-a-009').pathway.owner, null);
    assert.match(byPatient('demo-a-038').pathway.notes[0]?.text ?? '', /invitation letter/);
    assert.equal(byPatient('demo-a-026').care.flsReferral?.status, 'active');
    const k = computeKpis(items, {}, NOW, DEFAULT_DUE_DAYS);
    assert.equal(k.identified, 7);
    assert.equal(k.accepted, 5);
    assert.equal(k.contacted, 4);
    assert.equal(k.assessed, 2);
    assert.equal(k.treatmentStarted, 1);
    assert.equal(k.overdue, 3);
    assert.equal(k.dismissedByReason.declined, 1);
    assert.ok(k.bySite.length >= 2, 'both sites');
  });

  test('a dismissed item after acceptance has its referral revoked; seeding again writes the same resources', async () => {
    const dismissed = byPatient('demo-b-001');
    const sr = (await sandbox.handle('GET', `ServiceRequest/${dismissed.serviceRequestId}`)).body as ServiceRequest;
    assert.equal(sr.status, 'revoked');
    await seedFhirSandbox(sandbox.repo, { fhirDir: FHIR_DIR, dicomWebBaseUrl: 'http://localhost:8080/sandbox/dicom-web', logger, flsDemo: { now: NOW } });
    const tasks = (await sandbox.handle('GET', 'Task?_count=100')).body as Bundle<Task>;
    assert.equal(tasks.entry?.length, DEMO_PLAN.length);
  });

  test('without the option the seed writes no pathway', async () => {
    const plain = createFhirSandbox({ baseUrl: 'http://localhost:8080/sandbox/fhir', page: { defaultPageSize: 20, maxPageSize: 100 }, maxRequestBytes: 1 << 20, logger });
    const seeded = await seedFhirSandbox(plain.repo, { fhirDir: FHIR_DIR, dicomWebBaseUrl: 'http://localhost:8080/sandbox/dicom-web', logger });
    assert.equal(seeded.flsDemoItems, undefined);
    assert.equal(((await plain.handle('GET', 'Task')).body as Bundle).entry?.length ?? 0, 0);
  });
});

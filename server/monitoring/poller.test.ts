/**
 * The DXA poller against the embedded FHIR sandbox over loopback HTTP: demo patients with DXA results, image-based
 * RiskAssessments written with the `tscore-estimate` extension; a poll pairs each DXA result with its patient's
 * latest such assessment within the radiograph–DXA window, by site; the cursor makes the next poll see only new
 * results; a new DXA Observation is paired on the next poll.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Bundle, ImagingStudy, Observation, Resource, RiskAssessment } from '@medplum/fhirtypes';
import { loadConfig, REPO_ROOT } from '../config.ts';
import { FhirNotFoundError, FhirTimeoutError, HttpFhirClient, type FhirDataSource } from '../fhir/client.ts';
import { startEmbeddedSandboxes, type EmbeddedSandboxes } from '../risk/embedded.ts';
import { openSqlite } from '../state/sqlite.ts';
import { silentLogger } from '../../test/support/demo-stack.ts';
import { CURSOR, estimateOf, TscorePoller, TSCORE_ESTIMATE_URL } from './poller.ts';
import { SqliteMonitoringStore } from './store.ts';

const DEMO = join(REPO_ROOT, 'server/sandbox/demo-cohort');
/** DXA 282 and 184 days before the radiograph; demo-b-009 is a site-B patient (331 days). */
const PAIRED = ['demo-a-007', 'demo-a-008', 'demo-b-009'];
/** Has an assessment, but the DXA is 875 days from the radiograph. */
const FAR = 'demo-a-002';
/** DXA, no assessment (until the last step). */
const LATER = 'demo-a-012';

const work = mkdtempSync(join(tmpdir(), 'frcds-poller-'));
let sandboxes: EmbeddedSandboxes;
let fhir: HttpFhirClient;
const studies = new Map<string, ImagingStudy>();

function resourcesOf(id: string): { bundle: Bundle; study: ImagingStudy } {
  const bundle = JSON.parse(readFileSync(join(DEMO, 'fhir', `${id}.json`), 'utf8')) as Bundle;
  return { bundle, study: bundle.entry!.map((e) => e.resource!).find((r): r is ImagingStudy => r.resourceType === 'ImagingStudy')! };
}

/** An image-based assessment as the service writes it back (only the parts monitoring reads). */
const assessment = (patientId: string, study: ImagingStudy, mean: number, when: string, calibration = 'hip-xray-v2@2.0.0'): RiskAssessment => ({
  resourceType: 'RiskAssessment',
  status: 'final',
  subject: { reference: `Patient/${patientId}` },
  occurrenceDateTime: when,
  basis: [{ reference: `Patient/${patientId}` }, { reference: `ImagingStudy/${study.id}` }],
  method: { coding: [{ system: 'urn:frcds:model', code: 'hip-xray-v2', version: '2.0.0' }] },
  extension: [{
    url: TSCORE_ESTIMATE_URL,
    extension: [{ url: 'mean', valueDecimal: mean }, { url: 'low', valueDecimal: mean - 1.25 }, { url: 'high', valueDecimal: mean + 1.25 }, { url: 'calibration', valueString: calibration }, { url: 'used', valueCode: 'image' }],
  }],
});

before(async () => {
  const site = join(work, 'site');
  mkdirSync(join(site, 'fhir'), { recursive: true });
  symlinkSync(join(DEMO, 'dicom'), join(site, 'dicom'));
  for (const id of [...PAIRED, FAR, LATER]) {
    const { bundle, study } = resourcesOf(id);
    studies.set(id, study);
    writeFileSync(join(site, 'fhir', `${id}.json`), JSON.stringify(bundle));
  }
  sandboxes = await startEmbeddedSandboxes(loadConfig({ SANDBOX_DATA_DIR: site }), silentLogger());
  fhir = new HttpFhirClient({ baseUrl: sandboxes.fhirBaseUrl, timeoutMs: 10_000 });
  for (const id of [...PAIRED, FAR]) {
    // An older assessment with another estimate first: the latest one is the one paired.
    await fhir.write(assessment(id, studies.get(id)!, 0.5, '2026-10-01T09:00:00Z', 'older-calibration'));
    await fhir.write(assessment(id, studies.get(id)!, -1.5, '2026-11-20T09:00:00Z'));
  }
});

after(async () => {
  await sandboxes?.close();
  rmSync(work, { recursive: true, force: true });
});

test('poll: DXA results paired with the latest image-based estimate by site; the cursor moves on; a new DXA result is paired next time', async () => {
  const store = new SqliteMonitoringStore(openSqlite(':memory:'), { ownsDb: true });
  const poller = new TscorePoller({ fhir, store, pairWindowDays: 730, logger: silentLogger(), now: () => new Date() });

  const first = await poller.poll();
  assert.deepEqual(first, { seen: 5, paired: 3, known: 0, unpaired: 2, failed: 0 });
  const seriesA = { site: 'frcds-site-a', model: 'hip-xray-v2@2.0.0', calibration: 'hip-xray-v2@2.0.0' };
  const a = await store.window(seriesA, 10);
  assert.equal(a.length, 2);
  const p7 = a.find((p) => p.observationId === 'demo-a-007-dxa-t-score')!;
  assert.deepEqual({ mean: p7.mean, low: p7.low, high: p7.high, measured: p7.measured }, { mean: -1.5, low: -2.75, high: -0.25, measured: -0.5 });
  assert.equal(p7.imageDate, studies.get('demo-a-007')!.started!.slice(0, 10));
  assert.equal((await store.window({ ...seriesA, site: 'frcds-site-b' }, 10)).length, 1);
  assert.equal((await store.series()).length, 2, 'the older assessments (another calibration) were not paired');
  const cursor = await store.cursor(CURSOR);
  assert.ok(cursor && !Number.isNaN(Date.parse(cursor)));

  // Nothing new: the cursor keeps the next poll to what changed since (at most the boundary Observation again).
  const second = await poller.poll();
  assert.equal(second.paired, 0);
  assert.ok(second.seen < first.seen, `second poll saw ${second.seen}`);

  // The later patient is assessed, then has a new DXA scan.
  await fhir.write(assessment(LATER, studies.get(LATER)!, -2.0, new Date().toISOString()));
  const obs: Observation = {
    resourceType: 'Observation', id: 'monitoring-test-new-dxa', status: 'final', subject: { reference: `Patient/${LATER}` },
    code: { coding: [{ system: 'http://loinc.org', code: '80947-5', display: 'DXA Femur - right [T-score] Bone density' }] },
    effectiveDateTime: studies.get(LATER)!.started!.slice(0, 10),
    valueQuantity: { value: -2.3, unit: 'T-score', system: 'http://unitsofmeasure.org', code: '{T-score}' },
  };
  await fhir.write(obs);
  const third = await poller.poll();
  assert.equal(third.paired, 1);
  const later = (await store.window(seriesA, 10)).find((p) => p.observationId === 'monitoring-test-new-dxa')!;
  assert.deepEqual({ mean: later.mean, measured: later.measured }, { mean: -2, measured: -2.3 });
  await store.close();
});

test('estimateOf reads the extension and refuses an incomplete one', () => {
  const ra = assessment('p', { resourceType: 'ImagingStudy', id: 's', status: 'available', subject: { reference: 'Patient/p' } }, -1, '2026-01-01');
  assert.deepEqual(estimateOf(ra), { mean: -1, low: -2.25, high: 0.25, calibration: 'hip-xray-v2@2.0.0' });
  ra.extension![0]!.extension = ra.extension![0]!.extension!.filter((e) => e.url !== 'low');
  assert.equal(estimateOf(ra), null);
});

test('a DXA result whose assessment points at a deleted study is skipped (the cursor moves on); a time-out holds the cursor back for a retry', async () => {
  const obs: Observation = {
    resourceType: 'Observation', id: 'o1', status: 'final', subject: { reference: 'Patient/p1' }, meta: { lastUpdated: '2026-12-01T10:00:00.000Z' },
    code: { coding: [{ system: 'http://loinc.org', code: '80948-3' }] }, effectiveDateTime: '2026-11-01', valueQuantity: { value: -2.1, unit: 'T-score', code: '{T-score}' },
  };
  const ra = assessment('p1', { resourceType: 'ImagingStudy', id: 'gone', status: 'available', subject: { reference: 'Patient/p1' } }, -2, '2026-11-02T00:00:00Z');
  ra.id = 'ra1';
  const source = (readError: Error): FhirDataSource => ({
    baseUrl: 'http://fhir.invalid',
    search: async <T extends Resource>(type: T['resourceType']) => (type === 'Observation' ? [obs] : type === 'RiskAssessment' ? [ra] : []) as unknown as T[],
    read: async () => {
      throw readError;
    },
    write: async (r) => r,
  });
  const gone = new SqliteMonitoringStore(openSqlite(':memory:'), { ownsDb: true });
  const r1 = await new TscorePoller({ fhir: source(new FhirNotFoundError('ImagingStudy not found')), store: gone, pairWindowDays: 730, logger: silentLogger() }).poll();
  assert.deepEqual(r1, { seen: 1, paired: 0, known: 0, unpaired: 1, failed: 0 });
  assert.equal(await gone.cursor(CURSOR), '2026-12-01T10:00:00.000Z');
  const slow = new SqliteMonitoringStore(openSqlite(':memory:'), { ownsDb: true });
  const r2 = await new TscorePoller({ fhir: source(new FhirTimeoutError('no answer')), store: slow, pairWindowDays: 730, logger: silentLogger() }).poll();
  assert.deepEqual(r2, { seen: 1, paired: 0, known: 0, unpaired: 0, failed: 1 });
  assert.equal(await slow.cursor(CURSOR), null);
  await gone.close();
  await slow.close();
});

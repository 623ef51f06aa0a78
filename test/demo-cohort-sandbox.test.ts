/**
 * The committed demo cohort as the demo stack serves it: every FHIR bundle seeds without a rejection, every
 * ImagingStudy leads (through its Endpoint, rewritten to the sandbox DICOMweb URL) to a study the sandbox DICOMweb
 * server has, for the same patient (DICOM PatientID = the Patient's `urn:frcds:synthetic-mrn` identifier); every
 * Patient names its hospital and carries an MRN; the charted DXA results are what the care status reads; and the
 * demo shows every tier (low, moderate, high) with the shipped model and the default decision settings.
 * The demo cohort is a committed artefact (brief contract 5): this suite fails, not skips, when it is missing.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { before, describe, test } from 'node:test';
import express, { type Express } from 'express';
import request from 'supertest';
import type { Bundle, Endpoint, ImagingStudy, Organization, Patient, Resource } from '@medplum/fhirtypes';
import { loadConfig, REPO_ROOT } from '../server/config.ts';
import { HttpFhirClient, type FhirDataSource } from '../server/fhir/client.ts';
import { DicomWebClient } from '../server/imaging/dicomweb-client.ts';
import { ModelRegistry } from '../server/inference/registry.ts';
import { assess } from '../server/risk/assess.ts';
import { createLogger } from '../server/logging.ts';
import { loadCareStatus } from '../server/orders/care-status.ts';
import { createDicomWebRouter } from '../server/sandbox/dicomweb/router.ts';
import { createFhirSandbox, type FhirSandbox } from '../server/sandbox/fhir/router.ts';
import { seedFhirSandbox, type SeedResult } from '../server/sandbox/seed.ts';
import { startDemoStack } from './support/demo-stack.ts';

const DEMO = join(REPO_ROOT, 'server/sandbox/demo-cohort');
const config = loadConfig({});
const logger = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
let fhir: FhirSandbox;
let seeded: SeedResult;
let dicomApp: Express;
let instanceCount = 0;

/** The in-process sandbox as a read-only FHIR data source (searches go through its real search code). */
const sandboxSource = (): FhirDataSource => ({
  baseUrl: config.fhir.publicBaseUrl,
  read: async <T extends Resource>(type: T['resourceType'], id: string) => (await fhir.handle('GET', `${type}/${id}`)).body as T,
  search: async <T extends Resource>(type: T['resourceType'], params: Record<string, string>) => {
    const r = await fhir.handle('GET', `${type}?${new URLSearchParams({ ...params, _count: '500' }).toString()}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return ((r.body as Bundle<T>).entry ?? []).map((e) => e.resource!);
  },
  write: () => Promise.reject(new Error('read-only')),
});

before(async () => {
  fhir = createFhirSandbox({ baseUrl: config.fhir.publicBaseUrl, page: config.files.sandbox.fhir, maxRequestBytes: config.files.sandbox.fhir.maxRequestBytes, logger });
  seeded = await seedFhirSandbox(fhir.repo, { fhirDir: join(DEMO, 'fhir'), dicomWebBaseUrl: config.dicomweb.publicBaseUrl, logger });
  const dicom = await createDicomWebRouter({ dicomDir: join(DEMO, 'dicom'), logger });
  instanceCount = dicom.instanceCount;
  dicomApp = express().use('/sandbox/dicom-web', dicom.router);
});

describe('demo cohort in the sandboxes', () => {
  test('every bundle seeds (no rejections) and there is one Patient per bundle', () => {
    assert.equal(seeded.failedBundles, 0, seeded.errors.map((e) => e.message).join('\n'));
    assert.ok(seeded.bundles >= 40, `only ${seeded.bundles} bundles`);
    assert.equal(seeded.byType['Patient'], seeded.bundles);
    assert.ok(instanceCount > 0);
  });

  test('every ImagingStudy resolves to a DICOMweb study of the same patient', async () => {
    const studies = (await fhir.handle('GET', 'ImagingStudy?_count=500')).body as Bundle<ImagingStudy>;
    assert.ok((studies.entry?.length ?? 0) > 0);
    let checked = 0;
    for (const entry of studies.entry ?? []) {
      const study = entry.resource!;
      const endpoint = (await fhir.handle('GET', study.endpoint![0]!.reference!)).body as Endpoint;
      assert.equal(endpoint.address, config.dicomweb.publicBaseUrl);
      const patient = (await fhir.handle('GET', study.subject.reference!)).body as Patient;
      const mrn = patient.identifier?.find((i) => i.system === 'urn:frcds:synthetic-mrn')?.value;
      assert.ok(mrn, 'Patient has an urn:frcds:synthetic-mrn identifier');
      const uid = study.identifier?.find((i) => i.system === 'urn:dicom:uid')?.value?.replace(/^urn:oid:/, '');
      assert.ok(uid);
      const res = await request(dicomApp).get(`/sandbox/dicom-web/studies?StudyInstanceUID=${uid}`).set('Accept', 'application/dicom+json').expect(200);
      const found = JSON.parse(res.text) as Record<string, { Value?: unknown[] }>[];
      assert.equal(found.length, 1, `study of ImagingStudy/${study.id} is not in the DICOMweb sandbox`);
      assert.equal(found[0]!['00100020']?.Value?.[0], mrn, 'DICOM PatientID = FHIR MRN');
      checked++;
    }
    // A CT study has many instances: compare with the studies the PACS lists, not with its instance count.
    const all = JSON.parse((await request(dicomApp).get('/sandbox/dicom-web/studies?limit=10000').set('Accept', 'application/dicom+json').expect(200)).text) as unknown[];
    assert.equal(checked, all.length, 'one DICOM study per ImagingStudy');
  });

  test('every Patient names its hospital (managingOrganization, MRN assigner) and has an MR-typed MRN', async () => {
    const patients = ((await fhir.handle('GET', 'Patient?_count=500')).body as Bundle<Patient>).entry!.map((e) => e.resource!);
    assert.equal(patients.length, seeded.bundles);
    const sites = new Set<string>();
    for (const p of patients) {
      const org = p.managingOrganization;
      assert.match(org?.display ?? '', /^Synthetic hospital [AB]$/, p.id);
      const stored = (await fhir.handle('GET', org!.reference!)).body as Organization;
      assert.equal(stored.name, org!.display);
      const mrn = p.identifier?.find((i) => i.type?.coding?.some((c) => c.system === 'http://terminology.hl7.org/CodeSystem/v2-0203' && c.code === 'MR'));
      assert.equal(mrn?.system, 'urn:frcds:synthetic-mrn');
      assert.match(mrn?.value ?? '', /^DEMO[AB]\d{4}$/);
      assert.equal(mrn?.assigner?.display, org!.display);
      sites.add(org!.display!);
    }
    assert.equal(sites.size, 2);
  });

  test('the charted DXA results are the care status\'s DXA result (ValueSet dxa-result), for about a third of patients', async () => {
    const patients = ((await fhir.handle('GET', 'Patient?_count=500')).body as Bundle<Patient>).entry!.map((e) => e.resource!.id!);
    const source = sandboxSource();
    let withDxa = 0;
    for (const id of patients) {
      const status = await loadCareStatus(source, id);
      const charted = ((await fhir.handle('GET', `Observation?subject=Patient/${id}&_count=100`)).body as Bundle).entry?.map((e) => e.resource!).filter((r) => r.id?.endsWith('-dxa-t-score')) ?? [];
      if (charted.length === 0) {
        assert.equal(status.dxaResult, null, id);
        continue;
      }
      withDxa++;
      const t = charted[0] as { id: string; valueQuantity: { value: number }; effectiveDateTime: string };
      assert.deepEqual(status.dxaResult, { id: t.id, date: t.effectiveDateTime, tScore: t.valueQuantity.value }, id);
    }
    assert.ok(withDxa >= patients.length / 4 && withDxa <= patients.length * 0.45, `${withDxa} of ${patients.length}`);
  });

  test('the quick-start query answers a searchset with fullUrls and a next link', async () => {
    const r = await fhir.handle('GET', 'Patient?_count=5');
    const b = r.body as Bundle;
    assert.equal(r.status, 200);
    assert.equal(b.entry?.length, 5);
    assert.ok(b.entry?.every((e) => e.fullUrl === `${config.fhir.publicBaseUrl}/Patient/${e.resource?.id}`));
    assert.equal(b.link?.find((l) => l.relation === 'next')?.url, `${config.fhir.publicBaseUrl}/Patient?_count=5&_offset=5`);
  });
});

describe('demo cohort tiers', () => {
  test('the shipped model puts demo patients in every tier: low, moderate and high', async () => {
    const stack = await startDemoStack(DEMO, { smart: false });
    const registry = await ModelRegistry.load(config.inference, logger);
    try {
      assert.ok(registry.status().models.length > 0, 'a model is loaded');
      const deps = {
        fhir: new HttpFhirClient({ baseUrl: stack.fhirBaseUrl, timeoutMs: 30_000 }),
        dicomweb: new DicomWebClient({ baseUrl: stack.dicomWebBaseUrl, timeoutMs: 30_000, retries: 0 }),
        registry,
        settings: config.risk,
        logger,
      };
      const byTier: Record<string, string[]> = { low: [], moderate: [], high: [] };
      for (const f of readdirSync(join(DEMO, 'fhir')).sort()) {
        const id = f.replace(/\.json$/, '');
        const { assessment } = await assess(deps, { patientId: id });
        byTier[assessment.tier.tier]!.push(id);
      }
      for (const tier of ['low', 'moderate', 'high']) assert.ok(byTier[tier]!.length > 0, `no ${tier}-tier patient: ${JSON.stringify(byTier)}`);
    } finally {
      await registry.close();
      await stack.close();
    }
  });
});

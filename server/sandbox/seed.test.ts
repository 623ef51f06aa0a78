import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { before, describe, test } from 'node:test';
import type { Endpoint, Patient } from '@medplum/fhirtypes';
import { REPO_ROOT } from '../config.ts';
import { createLogger } from '../logging.ts';
import { createFhirSandbox, type FhirSandbox } from './fhir/router.ts';
import { PLACEHOLDER_DICOMWEB, resourcesOfSeedBundle, rewriteEndpoint, SeedError, seedFhirSandbox } from './seed.ts';

const GOOD = join(REPO_ROOT, 'test/fixtures/fhir-cohort/fhir');
const BAD = join(REPO_ROOT, 'test/fixtures/fhir-cohort-bad/fhir');
const DICOMWEB = 'https://frcds.example.org/sandbox/dicom-web';
const logs: string[] = [];
const logger = createLogger({
  level: 'info',
  destination: new Writable({
    write(c: Buffer, _e, cb) {
      logs.push(c.toString());
      cb();
    },
  }),
});
let sandbox: FhirSandbox;
before(() => {
  sandbox = createFhirSandbox({ baseUrl: 'http://localhost:8080/sandbox/fhir', page: { defaultPageSize: 20, maxPageSize: 100 }, maxRequestBytes: 1 << 20, logger });
});

describe('rewriteEndpoint', () => {
  test('replaces the placeholder base (and keeps any path below it), leaves other addresses alone', () => {
    const e: Endpoint = { resourceType: 'Endpoint', status: 'active', connectionType: { code: 'dicom-wado-rs' }, payloadType: [], address: PLACEHOLDER_DICOMWEB };
    assert.equal(rewriteEndpoint(e, `${DICOMWEB}/`), true);
    assert.equal(e.address, DICOMWEB);
    const sub = { ...e, address: `${PLACEHOLDER_DICOMWEB}/studies` };
    rewriteEndpoint(sub, DICOMWEB);
    assert.equal(sub.address, `${DICOMWEB}/studies`);
    const other = { ...e, address: 'https://pacs.invalid/dicom-webX' };
    assert.equal(rewriteEndpoint(other, DICOMWEB), false);
    assert.equal(other.address, 'https://pacs.invalid/dicom-webX');
  });
});

describe('resourcesOfSeedBundle (contract 4 checks)', () => {
  const ok = { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient', id: 'p1' }, request: { method: 'PUT', url: 'Patient/p1' } }] };
  test('accepts a PUT-only transaction', () => {
    assert.equal(resourcesOfSeedBundle('p1.json', ok, DICOMWEB).resources.length, 1);
  });
  const bad: [string, unknown, RegExp][] = [
    ['not a bundle', { resourceType: 'Patient' }, /not a FHIR Bundle/],
    ['searchset', { ...ok, type: 'searchset' }, /expected "transaction"/],
    ['POST entry', { ...ok, entry: [{ resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } }] }, /must use PUT/],
    ['url mismatch', { ...ok, entry: [{ resource: { resourceType: 'Patient', id: 'p1' }, request: { method: 'PUT', url: 'Patient/p2' } }] }, /request\.url is not/],
    ['duplicate', { ...ok, entry: [ok.entry[0], ok.entry[0]] }, /repeats Patient/],
    ['empty', { ...ok, entry: [] }, /no entries/],
  ];
  for (const [name, data, message] of bad) {
    test(`rejects ${name} with a SeedError naming the file`, () => {
      assert.throws(() => resourcesOfSeedBundle('p1.json', data, DICOMWEB), (err: unknown) => err instanceof SeedError && err.file === 'p1.json' && message.test(err.message));
    });
  }
});

describe('seedFhirSandbox', () => {
  test('loads every fixture bundle, rewrites Endpoint.address, and is idempotent', async () => {
    const first = await seedFhirSandbox(sandbox.repo, { fhirDir: GOOD, dicomWebBaseUrl: DICOMWEB, logger });
    assert.equal(first.bundles, 7);
    assert.equal(first.failedBundles, 0);
    assert.equal(first.byType['Patient'], 7);
    assert.equal(first.byType['ImagingStudy'], 7);
    assert.equal(first.endpointsRewritten, 7);
    const ep = await sandbox.repo.readResource<Endpoint>('Endpoint', 'frcds-pacs');
    assert.equal(ep.address, DICOMWEB);
    const before = await sandbox.repo.countByType(['Patient', 'Observation', 'Condition', 'ImagingStudy', 'Endpoint', 'DiagnosticReport']);
    const again = await seedFhirSandbox(sandbox.repo, { fhirDir: GOOD, dicomWebBaseUrl: DICOMWEB, logger });
    assert.equal(again.resources, first.resources);
    assert.deepEqual(await sandbox.repo.countByType(Object.keys(before)), before);
    const p = await sandbox.repo.readResource<Patient>('Patient', 'fx-0004');
    assert.equal(p.identifier?.[0]?.system, 'urn:frcds:synthetic-mrn');
  });

  test('a bad bundle is rejected whole (no partial writes), good ones still load, and the log names no patient', async () => {
    logs.length = 0;
    const res = await seedFhirSandbox(sandbox.repo, { fhirDir: BAD, dicomWebBaseUrl: DICOMWEB, logger });
    assert.equal(res.bundles, 1);
    assert.equal(res.failedBundles, 3);
    const messages = res.errors.map((e) => e.message).join('\n');
    assert.match(messages, /bad-0002\.json: rejected by the FHIR server: DiagnosticReport\.status must be one of/);
    assert.match(messages, /bad-0003\.json: unreadable JSON/);
    assert.match(messages, /bad-0004\.json: entry\[1\] uses POST method/);
    // bad-0002's Patient and Observation came before the invalid DiagnosticReport: the transaction rolled them back.
    await assert.rejects(sandbox.repo.readResource('Patient', 'bad-0002'));
    await assert.rejects(sandbox.repo.readResource('Observation', 'bad-0002-obs-bmi'));
    await sandbox.repo.readResource('Patient', 'fx-0001');
    const log = logs.join('');
    assert.match(log, /"msg":"seed bundle rejected"/);
    assert.match(log, /"patientIdHash":"[0-9a-f]{16}"/);
    assert.doesNotMatch(log, /bad-000\d|fx-000\d|Synthetic-|FX9/);
  });

  test('a missing folder is an error for the caller (readiness reports it)', async () => {
    await assert.rejects(seedFhirSandbox(sandbox.repo, { fhirDir: join(GOOD, 'nope'), dicomWebBaseUrl: DICOMWEB, logger }), { code: 'ENOENT' });
  });
});

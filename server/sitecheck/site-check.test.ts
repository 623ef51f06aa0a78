/**
 * The site check end to end on a tiny site: a few demo-cohort patients (FHIR bundles with DXA results, their DICOM
 * files) served by the embedded FHIR and DICOMweb sandboxes over real loopback HTTP, the tiny v2-shaped model
 * (test/fixtures/hip-xray-v2-tiny) through the registry, `npm run site-check` (its `main`) with --fhir/--dicomweb.
 *
 * The site's DXA values are planted: each paired patient's measured T-score is set to 0.4 + 1.6 × the model's raw
 * T-score mean for their radiograph (computed here from the DICOM file, outside the site check) plus a small fixed
 * offset. The check must then report the "before" bias these values imply and fit a recalibration close to
 * intercept 0.4, slope 1.6 — through FHIR search, DICOMweb, decoding, preprocessing and the registry. Also: a
 * failing image counted by code, the radiograph–DXA window, the file accepted by the service's loader, no patient
 * id in anything written.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Bundle, ImagingStudy, Observation } from '@medplum/fhirtypes';
import { loadConfig, REPO_ROOT } from '../config.ts';
import { decodeFrame } from '../imaging/decode/index.ts';
import { parseDicomFile } from '../imaging/dicom.ts';
import { preprocessPixels } from '../imaging/preprocess.ts';
import { loadTscoreCalibration, type RecalibrationFile } from '../inference/calibration.ts';
import { readManifest } from '../inference/manifest.ts';
import { ModelRegistry } from '../inference/registry.ts';
import { startEmbeddedSandboxes, type EmbeddedSandboxes } from '../risk/embedded.ts';
import { silentLogger } from '../../test/support/demo-stack.ts';
import { main } from './cli.ts';
import type { SiteCheckReport } from './report.ts';

const DEMO = join(REPO_ROOT, 'server/sandbox/demo-cohort');
const FIXTURE = join(REPO_ROOT, 'test/fixtures/hip-xray-v2-tiny');
/** Radiograph within 730 days of a DXA T-score. */
const PAIRED = ['demo-a-007', 'demo-a-008', 'demo-a-012', 'demo-a-019', 'demo-a-028', 'demo-b-008', 'demo-b-009'];
const PLANTED = { intercept: 0.4, slope: 1.6 };
const OFFSETS = [0.02, -0.02, 0.01, -0.01, 0.015, -0.015, 0];
/** DXA 875 days before the radiograph: outside the window. */
const TOO_OLD = 'demo-a-002';
/** Paired, but its ImagingStudy points at a study the PACS does not have. */
const BROKEN = 'demo-a-033';
/** No DXA at all. */
const NO_DXA = 'demo-a-001';

const work = mkdtempSync(join(tmpdir(), 'frcds-site-check-'));
const site = join(work, 'site');
const models = join(work, 'models');
let sandboxes: EmbeddedSandboxes;
const expected = new Map<string, { value: number; daysApart: number; rawMean: number }>();

function resources(id: string): { bundle: Bundle; study: ImagingStudy; dxa: Observation | undefined } {
  const bundle = JSON.parse(readFileSync(join(DEMO, 'fhir', `${id}.json`), 'utf8')) as Bundle;
  const rs = (bundle.entry ?? []).map((e) => e.resource!);
  const study = rs.find((r): r is ImagingStudy => r.resourceType === 'ImagingStudy')!;
  const dxa = rs.find((r): r is Observation => r.resourceType === 'Observation' && (r.code?.coding ?? []).some((c) => c.code === '80948-3' || c.code === '80947-5'));
  return { bundle, study, dxa };
}

/** The fixture model's raw T-score mixture mean for a study's DICOM file, outside the site check's code path. */
async function rawMeanOf(registry: ModelRegistry, study: ImagingStudy): Promise<number> {
  const uid = study.identifier!.find((i) => i.system === 'urn:dicom:uid')!.value!.replace(/^urn:oid:/, '');
  const series = study.series![0]!;
  const file = parseDicomFile(new Uint8Array(readFileSync(join(DEMO, 'dicom', uid, series.uid, `${series.instance![0]!.uid}.dcm`))));
  const model = registry.get('hip-xray-v2-tiny');
  const stored = await decodeFrame(file.transferSyntaxUid, file.frame(0), file.pixelModule);
  const image = preprocessPixels({ stored, pixelModule: file.pixelModule, laterality: file.string('00200062') ?? file.string('00200060') }, model.manifest.preprocessing);
  // The T-score head reads the image only; the clinical input does not enter it.
  const out = await model.infer({ image, clinical: [0, 0] });
  return out.tscore!.reduce((a, m) => a + m.mean, 0) / out.tscore!.length;
}

before(async () => {
  mkdirSync(join(site, 'fhir'), { recursive: true });
  symlinkSync(join(DEMO, 'dicom'), join(site, 'dicom'));
  mkdirSync(models);
  cpSync(FIXTURE, join(models, 'hip-xray-v2-tiny'), { recursive: true });
  // A log-hazard (v1-shaped) model beside it: it has no T-score head to check.
  cpSync(join(REPO_ROOT, 'test/fixtures/models/hip-xray-smoke'), join(models, 'hip-xray-smoke'), { recursive: true });
  const registry = await ModelRegistry.load({ modelsDir: models, device: 'cpu', threads: 1, maxBatch: 1, maxWaitMs: 0 }, silentLogger());
  try {
    for (const id of [...PAIRED, TOO_OLD, BROKEN, NO_DXA]) {
      const { bundle, study, dxa } = resources(id);
      const daysApart = dxa ? Math.round((Date.parse(study.started!) - Date.parse(dxa.effectiveDateTime!)) / 86_400_000) : NaN;
      if (PAIRED.includes(id)) {
        const rawMean = await rawMeanOf(registry, study);
        const value = Number((PLANTED.intercept + PLANTED.slope * rawMean + OFFSETS[PAIRED.indexOf(id)]!).toFixed(4));
        dxa!.valueQuantity!.value = value;
        expected.set(id, { value, daysApart, rawMean });
      }
      if (id === BROKEN) study.identifier!.find((i) => i.system === 'urn:dicom:uid')!.value = 'urn:oid:2.25.1234567890';
      writeFileSync(join(site, 'fhir', `${id}.json`), JSON.stringify(bundle));
    }
  } finally {
    await registry.close();
  }
  process.env['MODELS_DIR'] = models;
  process.env['INFERENCE_DEVICE'] = 'cpu';
  sandboxes = await startEmbeddedSandboxes(loadConfig({ SANDBOX_DATA_DIR: site }), silentLogger());
});

after(async () => {
  await sandboxes?.close();
  rmSync(work, { recursive: true, force: true });
});

const run = (out: string, extra: string[] = []): Promise<number> =>
  main(['--fhir', sandboxes.fhirBaseUrl, '--dicomweb', sandboxes.dicomWebBaseUrl, '--model', 'hip-xray-v2-tiny', '--site', 'tiny-site', '--out', out, '--min-pairs', '3', '--folds', '3', '--concurrency', '2', ...extra]);

test('site check on a tiny site: pairs, failures, figures, recalibration file', async () => {
  const out = join(work, 'out');
  assert.equal(await run(out), 0);
  const report = JSON.parse(readFileSync(join(out, 'site-check.json'), 'utf8')) as SiteCheckReport;
  const md = readFileSync(join(out, 'site-check.md'), 'utf8');

  // 9 patients with a femur T-score; the one 875 days off has no pair; the broken study fails at the PACS.
  assert.equal(report.counts.dxaPatients, 9);
  assert.equal(report.counts.withoutImage, 1);
  assert.equal(report.counts.pairs, 8);
  assert.deepEqual(report.counts.failures, { PACS_HTTP_ERROR: 1 });
  assert.equal(report.counts.processed, 7);
  assert.equal(report.counts.ood, 0, 'the fixture model reads the demo radiographs in distribution');
  assert.equal(report.before.n, 7);
  const days = PAIRED.map((id) => Math.abs(expected.get(id)!.daysApart)).sort((a, b) => a - b);
  assert.equal(report.medianDaysApart, days[3]);
  assert.equal(report.model.calibration.version, 'hip-xray-v2-tiny-fixture-1');
  assert.equal(report.model.calibration.source, 'manifest');

  // "Before": the manifest calibration (intercept 0.1, slope 1) against the planted values.
  const planted = PAIRED.map((id) => expected.get(id)!);
  const bias = planted.reduce((a, p) => a + (0.1 + p.rawMean - p.value), 0) / planted.length;
  assert.ok(Math.abs(report.before.bias! - bias) < 0.01, `before bias ${report.before.bias} vs ${bias}`);
  assert.ok(report.before.r! > 0.98, `before r ${report.before.r}`);

  assert.equal(report.recalibration.status, 'fitted');
  if (report.recalibration.status !== 'fitted') return;
  // The planted miscalibration is recovered; least squares leaves no mean residual in sample.
  const p = report.recalibration.params;
  assert.ok(Math.abs(p.slope - PLANTED.slope) < 0.25 && Math.abs(p.intercept - PLANTED.intercept) < 0.12, `fitted ${JSON.stringify(p)}`);
  assert.ok(Math.abs(report.recalibration.after.bias!) < 0.1, `held-out bias ${report.recalibration.after.bias}`);
  assert.ok(Math.abs(report.recalibration.afterInSample.bias!) < 1e-6, `in-sample bias ${report.recalibration.afterInSample.bias}`);
  assert.equal(report.recalibration.after.n, report.counts.inDistribution);
  assert.equal(report.recalibration.foldParams.length, 3);
  const version = `tiny-site-${new Date().toISOString().slice(0, 10).replace(/-/g, '')}-1`;
  assert.equal(report.recalibration.file.version, version);

  // The file is the contract's, and the service's loader takes it for this model (and refuses it for another).
  const filePath = join(out, `tscore-recalibration-${version}.json`);
  const file = JSON.parse(readFileSync(filePath, 'utf8')) as RecalibrationFile;
  assert.equal(file.kind, 'frcds-tscore-recalibration');
  assert.equal(file.basis.pairs, report.counts.inDistribution);
  const manifest = readManifest(join(FIXTURE, 'manifest.json'));
  const cal = loadTscoreCalibration(manifest, filePath);
  assert.deepEqual(cal, { intercept: file.intercept, slope: file.slope, sdScale: file.sd_scale, version, source: 'local' });
  assert.throws(() => loadTscoreCalibration({ ...manifest, version: '9.9.9' }, filePath), /not hip-xray-v2-tiny@9\.9\.9/);

  // The figure: one point per pair, before and after, in each of its two panels.
  const svg = readFileSync(join(out, 'site-check.svg'), 'utf8');
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.equal(svg.match(/fill-opacity="0\.6"/g)?.length, 2 * 2 * 7);
  assert.match(md, /!\[[^\]]+\]\(site-check\.svg\)/);

  // Aggregates only: no patient id anywhere in what is written.
  for (const text of [JSON.stringify(report), md, svg, readFileSync(filePath, 'utf8')]) assert.doesNotMatch(text, /demo-[ab]-\d{3}/);
  assert.match(md, /\| pairs \| 8 \|/);
  assert.match(md, /held out \(3-fold cross-validation\)/);

  // A second run on the same day gets the next version.
  assert.equal(await run(out), 0);
  const again = JSON.parse(readFileSync(join(out, 'site-check.json'), 'utf8')) as SiteCheckReport;
  assert.equal(again.recalibration.status === 'fitted' && again.recalibration.file.version, version.replace(/-1$/, '-2'));
});

test('--max limits the pairs; a window too short for any pair exits 3; bad options, an unknown model or one without a T-score head exit 2', async () => {
  const out = join(work, 'out-max');
  assert.equal(await run(out, ['--max', '2', '--min-pairs', '30']), 0);
  const report = JSON.parse(readFileSync(join(out, 'site-check.json'), 'utf8')) as SiteCheckReport;
  assert.equal(report.counts.pairs, 2);
  assert.equal(report.recalibration.status, 'not-fitted');
  assert.equal(await run(join(work, 'out-none'), ['--window-days', '10']), 3);
  assert.equal(await run(join(work, 'out-bad'), ['--folds', '1']), 2);
  assert.equal(await run(join(work, 'out-bad'), ['--site', 'a b']), 2);
  assert.equal(await run(join(work, 'out-bad'), ['--model', 'no-such-model']), 2);
  assert.equal(await run(join(work, 'out-bad'), ['--model', 'hip-xray-smoke']), 2);
});

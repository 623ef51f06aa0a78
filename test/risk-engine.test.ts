/**
 * The risk engine end to end on real inputs: the committed demo cohort served by the embedded FHIR and DICOMweb
 * sandboxes over HTTP, the non-hip DICOM fixtures, and a real ONNX model through the registry.
 *
 * Two model set-ups:
 * - the smoke-config fixture model (test/fixtures/models/hip-xray-smoke): always; checks the machinery — every demo
 *   patient gets an assessment, numbers are consistent, fail-safes that do not depend on the model's judgement
 *   (selection rule, image checks, missing factors), FHIR output validity, API, cache;
 * - models/hip-xray-v1 (the real artefact): the fail-safes that depend on the model's OOD judgement (artefact
 *   cases, the mislabelled blank "hip", site B). Until the artefact lands these are SKIPPED WITH A LOUD REASON.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import request from 'supertest';
import { validateResource } from '@medplum/core';
import type { Condition, ImagingStudy, Patient, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { REPO_ROOT } from '../server/config.ts';
import { DicomWebClient } from '../server/imaging/dicomweb-client.ts';
import { ModelRegistry } from '../server/inference/registry.ts';
import { assess, clinicalInputs, LOW_CONFIDENCE_DEFAULTS, OOD_WARNING, type AssessDeps, type Assessment } from '../server/risk/assess.ts';
import { shownPercent } from '../server/risk/numbers.ts';
import { baselineAt } from '../server/risk/survival.ts';
import { extractFactors, loadChart } from '../server/risk/factors.ts';
import { linearPredictor } from '../server/risk/qfracture.ts';
import { EXT, toFhir } from '../server/risk/fhir-output.ts';
import { createRiskRouter } from '../server/risk/routes.ts';
import { RiskService } from '../server/risk/service.ts';
import { createDicomWebRouter } from '../server/sandbox/dicomweb/router.ts';
import { R4_DEFINITIONS_DIR } from '../server/sandbox/fhir/definitions.ts';
import { FhirValidator } from '../server/sandbox/fhir/validate.ts';
import { DEMO_DIR, startDemoStack, type DemoStack, type DemoTruthPatient } from './support/demo-stack.ts';

const truth = (JSON.parse(readFileSync(join(DEMO_DIR, 'truth.json'), 'utf8')) as { patients: DemoTruthPatient[] }).patients;
const REAL_MODEL_DIR = join(REPO_ROOT, 'models');
const REAL_PRESENT = existsSync(join(REAL_MODEL_DIR, 'hip-xray-v1', 'manifest.json'));
const AT = new Date('2026-11-27T12:00:00Z');
const SETTINGS = { lookbackDays: 730, tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 } };

let stack: DemoStack;
let smoke: ModelRegistry;
let real: ModelRegistry | undefined;
let deps: AssessDeps;
let nonhipDir = '';
let nonhipBase = '';
let nonhipServer: import('node:http').Server;
const results = new Map<string, Assessment>();

before(async () => {
  stack = await startDemoStack();
  smoke = await ModelRegistry.load({ modelsDir: join(REPO_ROOT, 'test/fixtures/models'), device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  if (REAL_PRESENT) real = await ModelRegistry.load({ modelsDir: REAL_MODEL_DIR, device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  deps = {
    fhir: stack.fhirClient({ timeoutMs: 10_000 }), // system-level token (the FHIR sandbox enforces SMART scopes)
    dicomweb: new DicomWebClient({ baseUrl: stack.dicomWebBaseUrl, timeoutMs: 10_000 }),
    registry: smoke,
    settings: SETTINGS,
    logger: stack.logger,
  };
  // Non-hip radiographs: their own DICOMweb server, and charts in the FHIR sandbox pointing at them.
  nonhipDir = mkdtempSync(join(tmpdir(), 'frcds-nonhip-'));
  for (const f of ['nonhip-knee.dcm', 'nonhip-blank.dcm']) cpSync(join(REPO_ROOT, 'test/fixtures/nonhip', f), join(nonhipDir, f));
  const router = await createDicomWebRouter({ dicomDir: nonhipDir, logger: stack.logger });
  const app = express().use('/dicom-web', router.router);
  nonhipServer = await new Promise((r) => {
    const s = app.listen(0, '127.0.0.1', () => r(s));
  });
  nonhipBase = `http://127.0.0.1:${(nonhipServer.address() as { port: number }).port}/dicom-web`;
  const index = JSON.parse(readFileSync(join(REPO_ROOT, 'test/fixtures/nonhip/index.json'), 'utf8')) as Record<string, { study_uid: string; series_uid: string; sop_uid: string; body_part: string }>;
  for (const [pid, x] of Object.entries(index)) {
    // The MRN is what the fixture's DICOM header carries as Patient ID, as a PACS fed by the same EHR would.
    const patient: Patient = { resourceType: 'Patient', id: pid, gender: 'female', birthDate: '1950-01-01', identifier: [{ system: 'urn:frcds:synthetic-mrn', value: pid.toUpperCase() }] };
    const study: ImagingStudy = {
      resourceType: 'ImagingStudy', id: `${pid}-xr`, status: 'available', subject: { reference: `Patient/${pid}` }, started: '2026-11-20T09:30:00Z',
      identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:${x.study_uid}` }],
      series: [{ uid: x.series_uid, modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'DX' }, instance: [{ uid: x.sop_uid, sopClass: { system: 'urn:ietf:rfc:3986', code: 'urn:oid:1.2.840.10008.5.1.4.1.1.1.1' } }] }],
    };
    for (const r of [patient, study]) {
      const res = await stack.fhir.handle('PUT', `${r.resourceType}/${r.id}`, r);
      assert.ok(res.status < 300, JSON.stringify(res.body));
    }
  }
});

after(async () => {
  await smoke?.close();
  await real?.close();
  nonhipServer?.close();
  await stack?.close();
  if (nonhipDir) rmSync(nonhipDir, { recursive: true, force: true });
});

function nonhipDeps(registry: ModelRegistry): AssessDeps {
  return { ...deps, registry, dicomweb: new DicomWebClient({ baseUrl: nonhipBase, timeoutMs: 10_000 }) };
}

function checkConsistent(a: Assessment, id: string): void {
  for (const o of ['hip', 'mof'] as const) {
    const r = a.outcomes[o];
    assert.deepEqual(r.risks.map((x) => x.years), [1, 2, 5, 10], id);
    let prev = 0;
    for (const x of r.risks) {
      assert.ok(Number.isFinite(x.risk) && x.risk >= 0 && x.risk <= 1, `${id} ${o} ${x.years}`);
      assert.ok(x.risk >= prev - 1e-12, `${id} ${o}: risk must not fall with time`);
      prev = x.risk;
      if (r.shown === 'fused') assert.ok(x.lower! <= x.risk + 1e-12 && x.risk <= x.upper! + 1e-12, `${id} ${o} interval`);
      else assert.equal(x.lower, null);
    }
    if (r.shown === 'fused') {
      assert.equal(r.fused!.curve[0]!.survival, 1);
      assert.ok(r.fused!.curve.at(-1)!.years >= 10 - 1e-6);
      assert.ok(r.fused!.curve.every((p) => p.lower <= p.survival + 1e-12 && p.survival <= p.upper + 1e-12));
    }
    assert.ok(r.contributions.some((c) => c.factor === 'age'));
  }
  // Never a silent number: a clinical-only result always says why — in the warnings and in the one caveat.
  if (a.mode === 'clinical-only') assert.ok(a.warnings.length > 0 && (a.warnings.includes(OOD_WARNING) || a.warnings.some((w) => /clinical-only/.test(w))), `${id}: ${a.warnings.join(' | ')}`);
  if (a.mode === 'clinical-only' && a.ood !== null) assert.match(a.caveat ?? '', /clinical factors only/, id);
  if (a.missingFactors.length > 0) assert.ok(a.warnings.some((w) => w.startsWith('Missing risk factors')), id);
  checkMofAtLeastHip(a, id);
  checkDecision(a, id);
}

/** MOF includes hip: at every horizon, bound and curve point the MOF risk is at least the hip risk. */
function checkMofAtLeastHip(a: Assessment, id: string): void {
  const hip = a.outcomes.hip;
  const mof = a.outcomes.mof;
  hip.risks.forEach((h, i) => {
    const m = mof.risks[i]!;
    assert.ok(m.risk >= h.risk, `${id} ${h.years} y: MOF ${m.risk} < hip ${h.risk}`);
    if (h.lower !== null) assert.ok(m.lower! >= h.lower && m.upper! >= h.upper!, `${id} ${h.years} y bounds`);
  });
  hip.clinicalOnly.risks.forEach((h, i) => assert.ok(mof.clinicalOnly.risks[i]!.risk >= h.risk, `${id} clinical-only ${h.years} y`));
  if (hip.fused && mof.fused) {
    hip.fused.curve.forEach((p, i) => {
      const q = mof.fused!.curve[i]!;
      assert.ok(q.survival <= p.survival && q.lower <= p.lower && q.upper <= p.upper, `${id} curve at ${p.years} y`);
    });
    hip.fused.risks.forEach((h, i) => assert.ok(mof.fused!.risks[i]!.risk >= h.risk, `${id} fused ${h.years} y`));
  }
  if (hip.imageTermOnly && mof.imageTermOnly) hip.imageTermOnly.risks.forEach((h, i) => assert.ok(mof.imageTermOnly!.risks[i]!.risk >= h.risk, `${id} image term ${h.years} y`));
}

/** The decision is taken on the shown 10-year values (no tier/rounding mismatch) and follows the tier rule. */
function checkDecision(a: Assessment, id: string): void {
  const d = a.decision;
  const r10 = (o: 'hip' | 'mof') => a.outcomes[o].risks.find((x) => x.years === 10)!;
  for (const o of ['hip', 'mof'] as const) {
    assert.equal(d[o].shownPercent, shownPercent(r10(o).risk), `${id} ${o} shown`);
    assert.equal(d[o].probabilityAbove === null, a.mode === 'clinical-only', `${id} ${o}: a probability exactly when there is an interval`);
  }
  const over = [d.hip, d.mof].filter((x) => x.shownPercent >= x.thresholdPercent);
  if (a.tier.tier === 'high') assert.ok(over.some((x) => x.probabilityAbove === null || x.probabilityAbove >= 0.8), `${id}: high without a sure threshold`);
  if (a.tier.tier === 'low') assert.equal(over.length, 0, `${id}: low although a shown value is at or above its threshold`);
  if (over.length > 0) assert.notEqual(a.tier.tier, 'low', id);
  assert.equal(d.action, { high: 'refer-fls', moderate: 'order-dxa', low: 'none' }[a.tier.tier]);
  assert.equal(d.actionWarranted, a.tier.tier === 'high');
  assert.ok(d.meaning.length > 0 && !/log.hazard/i.test(d.meaning), id);
  assert.ok(d.guideline.url.startsWith('https://'));
}

describe('risk engine on the demo cohort (smoke fixture model)', () => {
  test('every demo patient gets an assessment; clinical-only risks equal QFracture-2012 from the chart', async () => {
    for (const t of truth) {
      const { assessment: a } = await assess(deps, { patientId: t.patient_id, at: AT });
      results.set(t.patient_id, a);
      assert.ok(a.study || a.mode === 'clinical-only', t.patient_id);
      assert.equal(a.study?.id ?? `${t.patient_id}-xr`, `${t.patient_id}-xr`, 'the demo study was chosen');
      assert.equal(a.indexDate, t.index_datetime.slice(0, 10));
      const q10 = a.outcomes.hip.clinicalOnly.risks.find((x) => x.years === 10)!.risk;
      assert.ok(Math.abs(100 * q10 - t.ehr.qf_risk10_hip) < 1e-9, `${t.patient_id}: ${100 * q10} vs ${t.ehr.qf_risk10_hip}`);
      // MOF includes hip: the clinical-only MOF risk is QFracture's MOF risk, or its hip risk where that is higher.
      assert.ok(Math.abs(100 * a.outcomes.mof.clinicalOnly.risks.find((x) => x.years === 10)!.risk - Math.max(t.ehr.qf_risk10_mof, t.ehr.qf_risk10_hip)) < 1e-9);
      checkConsistent(a, t.patient_id);
      assert.equal(a.model.provider, 'cpu');
    }
    assert.equal(results.size, 50);
  });

  test('site-B demo radiographs (a coarser detector) are flagged by the resolution check; site A\'s are not', () => {
    for (const t of truth) {
      const a = results.get(t.patient_id)!;
      const res = a.quality.find((q) => q.check === 'resolution');
      assert.ok(res, t.patient_id);
      assert.equal(res.passed, t.site === 'A', `${t.patient_id} spacing ${res.value}`);
      if (t.site === 'B') assert.ok(a.warnings.some((w) => /Coarse pixel spacing/.test(w)));
    }
  });

  test('the OOD rule is applied exactly: image-derived risk shown iff distance ≤ threshold', () => {
    for (const a of results.values()) {
      assert.ok(a.ood);
      assert.equal(a.mode === 'image-and-clinical', a.ood.distance <= a.ood.threshold);
      assert.equal(a.outcomes.hip.withheld, a.ood.outside);
      if (a.ood.outside) assert.ok(a.outcomes.hip.fused === null && a.outcomes.mof.imageTermOnly === null, 'a withheld risk is not handed out');
      assert.equal(a.heatmap === null, a.ood.outside);
    }
  });

  test('a knee radiograph is refused by the selection rule: clinical-only with the reason', async () => {
    const { assessment: a, pngs } = await assess(nonhipDeps(smoke), { patientId: 'nonhip-knee', at: AT });
    assert.equal(a.mode, 'clinical-only');
    assert.equal(pngs, null);
    assert.ok(a.warnings.some((w) => /could not be used.*BodyPartExamined is KNEE/.test(w)), a.warnings.join(' | '));
  });

  test('a blank field labelled HIP passes selection but the image checks flag it', async () => {
    const { assessment: a } = await assess(nonhipDeps(smoke), { patientId: 'nonhip-blank', at: AT });
    assert.ok(a.ood, 'the model read it');
    const failed = a.quality.filter((q) => !q.passed).map((q) => q.check);
    assert.ok(failed.includes('contrast'), `failed checks: ${failed.join(', ')}`);
  });

  test('no study within the look-back → clinical-only, saying so', async () => {
    const { assessment: a } = await assess({ ...deps, settings: { ...SETTINGS, lookbackDays: 1 } }, { patientId: 'demo-a-003', at: AT });
    assert.equal(a.mode, 'clinical-only');
    assert.equal(a.ood, null);
    assert.ok(a.warnings.some((w) => /No eligible hip radiograph .* last 1 days/.test(w)));
  });

  test('heatmap and display PNGs have the display geometry; the overlay is transparent outside the model window', async () => {
    const id = truth.find((t) => results.get(t.patient_id)!.mode === 'image-and-clinical')?.patient_id;
    assert.ok(id, 'at least one demo patient is in distribution for the smoke model');
    const { assessment: a, pngs } = await assess(deps, { patientId: id, at: AT });
    for (const png of [pngs!.display(), pngs!.overlay()]) {
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      assert.equal(png.readUInt32BE(16), a.heatmap!.width);
      assert.equal(png.readUInt32BE(20), a.heatmap!.height);
    }
    assert.ok(a.heatmap!.peak && a.heatmap!.peak.x > 0 && a.heatmap!.peak.x < 1 && a.heatmap!.peak.y > 0 && a.heatmap!.peak.y < 1);
  });
});

describe('FHIR output', () => {
  const validator = new FhirValidator();
  const profile = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/structuredefinitions/frcds-risk-assessment.json'), 'utf8')) as { differential: { element: { path: string; min?: number; sliceName?: string }[] } };

  /**
   * The profile as @medplum/core's validator needs it: the base R4 RiskAssessment snapshot with the profile's
   * differential constraints (cardinality, types) applied to the unsliced elements. Extension slices are checked by
   * {@link checkProfile}'s walk and by the tests on the extension contents, not by this snapshot.
   */
  function profileWithSnapshot(): StructureDefinition {
    const sd = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/structuredefinitions/frcds-risk-assessment.json'), 'utf8')) as StructureDefinition;
    const bundle = JSON.parse(readFileSync(join(R4_DEFINITIONS_DIR, 'profiles-resources.json'), 'utf8')) as { entry: { resource: StructureDefinition }[] };
    const base = bundle.entry.find((e) => e.resource.resourceType === 'StructureDefinition' && e.resource.id === 'RiskAssessment')!.resource;
    const snap = structuredClone(base.snapshot!.element!);
    for (const d of sd.differential!.element!) {
      if (d.sliceName) continue;
      const e = snap.find((x) => x.path === d.path);
      assert.ok(e, `profile element ${d.path} exists in R4 RiskAssessment`);
      if (d.min !== undefined) e.min = d.min;
      if (d.max !== undefined) e.max = d.max;
      if (d.type) e.type = d.type;
    }
    return { ...sd, snapshot: { element: snap } };
  }
  const profileSd = profileWithSnapshot();

  /** The profile's required elements (differential min ≥ 1, no slices) are present, with at least `min` entries. */
  function checkProfile(ra: Resource): void {
    assert.doesNotThrow(() => validateResource(ra, { profile: profileSd }), 'medplum validation against the profile');
    for (const e of profile.differential.element) {
      if (!e.min || e.sliceName) continue;
      const parts = e.path.split('.').slice(1).map((p) => p.replace('[x]', ''));
      const walk = (nodes: unknown[], i: number): unknown[] => {
        if (i === parts.length) return nodes;
        const next: unknown[] = [];
        for (const n of nodes) for (const [k, v] of Object.entries(n as Record<string, unknown>)) {
          if (k === parts[i] || (e.path.endsWith('[x]') && i === parts.length - 1 && k.startsWith(parts[i]!))) next.push(...(Array.isArray(v) ? v : [v]));
        }
        return walk(next, i + 1);
      };
      const found = walk([ra], 0);
      assert.ok(found.length >= e.min, `${e.path}: ${found.length} < min ${e.min}`);
    }
    assert.ok(ra.meta?.profile?.includes('https://fracture-risk-cds.invalid/fhir/StructureDefinition/frcds-risk-assessment'));
  }

  test('RiskAssessment, Device, Provenance, Binary, DocumentReference validate (R4 JSON Schema + StructureDefinitions) and follow the profile', async () => {
    let fused = 0;
    let clinicalOnly = 0;
    // Assess first, validate after: validating the PNG Binaries takes seconds on a loaded machine, long enough for
    // the sandbox to close the idle keep-alive connection the next FHIR read would reuse.
    const ids = ['demo-a-003', 'demo-a-006', 'demo-b-007', 'demo-a-020', 'nonhip-knee'];
    const assessed = new Map<string, Awaited<ReturnType<typeof assess>>>();
    for (const id of ids) assessed.set(id, await assess(id.startsWith('nonhip') ? nonhipDeps(smoke) : deps, { patientId: id, at: AT }));
    for (const id of ids) {
      const result = assessed.get(id)!;
      const f = toFhir(result);
      for (const r of [f.riskAssessment, f.device, f.provenance, ...f.binaries, ...(f.documentReference ? [f.documentReference] : [])]) {
        assert.doesNotThrow(() => validator.validate(r), `${id} ${r.resourceType}`);
      }
      checkProfile(f.riskAssessment);
      assert.equal(f.riskAssessment.prediction!.length, 8);
      const notes = f.riskAssessment.note!.map((n) => n.text);
      for (const w of result.assessment.warnings) assert.ok(notes.includes(w), 'every warning is in note');
      const a = result.assessment;
      assert.ok(notes[0]!.includes(a.decision.meaning), 'the decision is the first note');
      assert.ok(f.riskAssessment.text?.div.includes(a.decision.meaning.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')), 'and in the narrative');
      assert.match(f.riskAssessment.text!.div, /Research use — trained on synthetic data/);
      assert.ok(f.riskAssessment.mitigation?.includes(a.decision.guideline.url));
      for (const p of f.riskAssessment.prediction!) {
        const tp = p.extension?.find((e) => e.url === EXT.thresholdProbability);
        const o = p.outcome!.text === 'Hip fracture' ? 'hip' : 'mof';
        if (p.whenRange!.high!.value === 10) {
          assert.equal(p.qualitativeRisk!.coding![0]!.code, a.tier.tier);
          if (a.mode === 'image-and-clinical') {
            assert.ok(tp, `${id}: threshold probability on the 10-year ${o} prediction`);
            assert.equal(tp.extension!.find((x) => x.url === 'threshold')!.valueDecimal, a.decision[o].thresholdPercent / 100);
            assert.ok(Math.abs(tp.extension!.find((x) => x.url === 'probability')!.valueDecimal! - a.decision[o].probabilityAbove!) < 1e-6);
          } else assert.equal(tp, undefined, 'no probability without an interval');
        } else assert.equal(tp, undefined);
      }
      if (result.assessment.mode === 'image-and-clinical') {
        fused++;
        assert.ok(f.riskAssessment.prediction!.every((p) => p.extension?.find((e) => e.url === EXT.interval)?.extension?.length === 3), 'interval on every prediction');
        assert.ok(f.riskAssessment.basis!.some((b) => b.reference?.startsWith('ImagingStudy/')));
        assert.ok(f.documentReference && f.binaries.length === 2);
      } else {
        clinicalOnly++;
        assert.equal(f.riskAssessment.method!.coding![0]!.code, 'qfracture-2012');
      }
    }
    assert.ok(fused > 0 && clinicalOnly > 0, `covered fused ${fused} and clinical-only ${clinicalOnly}`);
  });

  test('a broken resource is rejected by the same validation (the check can fail)', () => {
    const ex = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/examples/riskassessment-demo-a-003.json'), 'utf8')) as { entry: { resource: Resource & { prediction?: unknown[]; method?: unknown } }[] };
    const ra = ex.entry.find((e) => e.resource.resourceType === 'RiskAssessment')!.resource;
    assert.throws(() => checkProfile({ ...ra, prediction: ra.prediction!.slice(0, 3) } as Resource), /prediction|8/);
    assert.throws(() => checkProfile({ ...ra, method: undefined } as Resource), /method/);
    assert.throws(() => validator.validate({ resourceType: 'RiskAssessment', subject: { reference: 'Patient/x' } }), /status/);
    assert.throws(() => validator.validate({ resourceType: 'RiskAssessment', status: 'final', subject: { reference: 'Patient/x' }, prediction: [{ probabilityDecimal: 'high' }] }));
    assert.throws(() => validator.validate({ resourceType: 'RiskAssessment', status: 'final', subject: { reference: 'Patient/x' }, extension: [{ valueCode: 'x' }] }));
  });

  test('the example in fhir-profiles/examples validates and follows the profile', () => {
    const dir = join(REPO_ROOT, 'fhir-profiles/examples');
    const bundle = JSON.parse(readFileSync(join(dir, 'riskassessment-demo-a-003.json'), 'utf8')) as { entry: { resource: Resource }[] };
    for (const e of bundle.entry) assert.doesNotThrow(() => validator.validate(e.resource), e.resource.resourceType);
    checkProfile(bundle.entry.find((e) => e.resource.resourceType === 'RiskAssessment')!.resource);
  });
});

describe('API and cache', () => {
  let service: RiskService;
  let app: express.Express;
  before(() => {
    service = new RiskService({ deps, cacheSize: 50, writeBack: true, logger: stack.logger });
    app = express().use('/api/assessments', createRiskRouter(service, stack.logger));
  });

  test('POST computes (201) then answers from memory (200); GET by id and the PNGs; write-back reaches the FHIR server', async () => {
    const first = await request(app).post('/api/assessments').send({ patient: 'demo-a-020' }).expect(201);
    const a = first.body.assessment as Assessment;
    assert.equal(first.body.fhir.riskAssessment.resourceType, 'RiskAssessment');
    assert.deepEqual(first.body.writeBack, { written: true });
    const stored = await stack.fhir.handle('GET', `RiskAssessment/frcds-${a.id}`);
    assert.equal(stored.status, 200);
    const t0 = performance.now();
    const second = await request(app).post('/api/assessments').send({ patient: 'demo-a-020' }).expect(200);
    assert.ok(performance.now() - t0 < 200);
    assert.equal(second.body.source, 'memo');
    assert.equal(second.body.assessment.id, a.id);
    await request(app).get(`/api/assessments/${a.id}`).expect(200);
    if (first.body.links) {
      const png = await request(app).get(`/api/assessments/${a.id}/heatmap.png`).expect(200);
      assert.equal(png.headers['content-type'], 'image/png');
      await request(app).get(`/api/assessments/${a.id}/display.png`).expect(200).expect('content-type', 'image/png');
    }
  });

  test('a changed factor gives a new assessment; an unchanged chart reuses the cached one', async () => {
    const r1 = await service.assess({ patientId: 'demo-a-021', at: AT });
    const r2 = await service.assess({ patientId: 'demo-a-021', at: AT });
    assert.equal(r2.source, 'cache');
    assert.equal(r2.stored.assessment.id, r1.stored.assessment.id);
    const cond: Condition = { resourceType: 'Condition', id: 'demo-a-021-test-dementia', subject: { reference: 'Patient/demo-a-021' }, clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] }, code: { coding: [{ system: 'http://snomed.info/sct', code: '52448006' }] }, onsetDateTime: '2020-01-01' };
    assert.ok((await stack.fhir.handle('PUT', 'Condition/demo-a-021-test-dementia', cond)).status < 300);
    try {
      const r3 = await service.assess({ patientId: 'demo-a-021', at: AT });
      assert.equal(r3.source, 'new');
      assert.notEqual(r3.stored.assessment.id, r1.stored.assessment.id);
      assert.ok(r3.stored.assessment.outcomes.hip.clinicalOnly.linearPredictor > r1.stored.assessment.outcomes.hip.clinicalOnly.linearPredictor);
    } finally {
      // The sandbox is shared by the other tests: leave the demo chart as it was.
      assert.ok((await stack.fhir.handle('DELETE', 'Condition/demo-a-021-test-dementia')).status < 300);
    }
  });

  test('bad requests get clear errors', async () => {
    await request(app).post('/api/assessments').send({}).expect(400);
    await request(app).post('/api/assessments').send({ patient: '../etc' }).expect(400);
    await request(app).post('/api/assessments').send({ patient: 'no-such-patient' }).expect(404);
    await request(app).post('/api/assessments').send({ patient: 'demo-a-001', study: 'demo-a-002-xr' }).expect(404);
    await request(app).get('/api/assessments/unknown').expect(404);
  });
});

describe('fail-safes that need the real model (models/hip-xray-v1)', () => {
  test('artefact demo cases (hardware, motion, cropped neck, under-exposure): image-derived risk withheld or flagged', async () => {
    assert.ok(REAL_PRESENT, 'the committed model models/hip-xray-v1 is missing');
    const realDeps = { ...deps, registry: real! };
    const lines: string[] = [];
    for (const t of truth.filter((x) => x.image.should_exclude)) {
      const { assessment: a } = await assess(realDeps, { patientId: t.patient_id, at: AT });
      const failed = a.quality.filter((q) => !q.passed).map((q) => q.check);
      lines.push(`${t.patient_id} ${t.image.artefact}: ood ${a.ood!.distance.toFixed(1)}/${a.ood!.threshold.toFixed(1)} ${a.mode}; checks failed: ${failed.join(', ') || 'none'}`);
      assert.ok(a.ood!.outside || failed.length > 0, lines.at(-1));
      checkConsistent(a, t.patient_id);
    }
    process.stdout.write(`# artefact cases (real model):\n${lines.map((l) => `#   ${l}`).join('\n')}\n`);
  });

  test('the blank field labelled HIP is outside the training distribution (risk withheld, warning shown)', async () => {
    assert.ok(REAL_PRESENT, 'the committed model models/hip-xray-v1 is missing');
    const { assessment: a } = await assess(nonhipDeps(real!), { patientId: 'nonhip-blank', at: AT });
    assert.equal(a.ood!.outside, true, `OOD distance ${a.ood!.distance} vs ${a.ood!.threshold}`);
    assert.equal(a.mode, 'clinical-only');
    assert.ok(a.warnings.includes(OOD_WARNING));
  });

  test('site-B cases: each either shows the image-derived risk with the coarse-detector warning, or withholds it (OOD)', async () => {
    assert.ok(REAL_PRESENT, 'the committed model models/hip-xray-v1 is missing');
    const realDeps = { ...deps, registry: real! };
    const lines: string[] = [];
    for (const t of truth.filter((x) => x.site === 'B')) {
      const { assessment: a } = await assess(realDeps, { patientId: t.patient_id, at: AT });
      lines.push(`${t.patient_id}: ood ${a.ood!.distance.toFixed(1)}/${a.ood!.threshold.toFixed(1)} ${a.mode}`);
      assert.ok(a.warnings.some((w) => /Coarse pixel spacing/.test(w)) || a.warnings.includes(OOD_WARNING));
      if (a.mode === 'clinical-only') assert.ok(a.warnings.includes(OOD_WARNING));
    }
    process.stdout.write(`# site-B cases (real model):\n${lines.map((l) => `#   ${l}`).join('\n')}\n`);
  });

  test('the clinical inputs the engine computes from each demo chart are the training definition (cloglog of the EHR QFracture risk)', async () => {
    assert.ok(REAL_PRESENT, 'the committed model models/hip-xray-v1 is missing');
    // frcds/model/data.py Cohort.clinical(): log(-log(1 - qf_risk10/100)), qf_risk10 the EHR QFracture risk (truth.json).
    // (The parity fixture's demo rows borrow clinical inputs from test patients, so they cannot serve here.)
    const model = real!.get('hip-xray-v1');
    assert.deepEqual(model.manifest.clinical_term.inputs, ['qf_cloglog10_hip', 'qf_cloglog10_mof']);
    for (const t of truth) {
      const chart = await loadChart(deps.fhir, t.patient_id);
      const f = extractFactors(chart, chart.imagingStudies[0]!.started!.slice(0, 10));
      const x = clinicalInputs(model, f.sex, { hip: linearPredictor('hip', f.sex, f.inputs), mof: linearPredictor('mof', f.sex, f.inputs) });
      const want = [t.ehr.qf_risk10_hip, t.ehr.qf_risk10_mof].map((r) => Math.log(-Math.log1p(-r / 100)));
      for (let k = 0; k < 2; k++) assert.ok(Math.abs(x[k]! - want[k]!) < 1e-9, `${t.patient_id} input ${k}: ${x[k]} vs ${want[k]}`);
    }
  });

  test('every demo patient gets an assessment with the real model; tiers, low confidence and MOF ≥ hip over the cohort', async () => {
    assert.ok(REAL_PRESENT, 'the committed model models/hip-xray-v1 is missing');
    const realDeps = { ...deps, registry: real! };
    const manifest = real!.get('hip-xray-v1').manifest;
    const h0 = manifest.risk_model.baseline_cumulative_hazard;
    let shown = 0;
    let rawMofBelowHip = 0;
    let wideButOrdinary = 0;
    const tiers = { low: 0, moderate: 0, high: 0 };
    const lowConfidence: string[] = [];
    for (const t of truth) {
      const { assessment: a } = await assess(realDeps, { patientId: t.patient_id, at: AT });
      checkConsistent(a, t.patient_id);
      tiers[a.tier.tier]++;
      if (a.mode === 'image-and-clinical') {
        shown++;
        // What the MOF head alone says (its mean log-hazard is kept in fused.logHazard).
        const rawMof10 = 1 - Math.exp(-baselineAt(h0.grid_years, h0['mof']!, 10) * Math.exp(a.outcomes.mof.fused!.logHazard));
        if (rawMof10 < a.outcomes.hip.risks.at(-1)!.risk) {
          rawMofBelowHip++;
          assert.ok(a.outcomes.mof.raisedToHip, `${t.patient_id}: the MOF risk was raised to hip`);
        }
        // Low confidence means unusual uncertainty: ensemble spread above the limit or close to the OOD threshold.
        const unusual = (o: 'hip' | 'mof') => a.outcomes[o].fused!.sd > LOW_CONFIDENCE_DEFAULTS.maxLogHazardSd || a.ood!.distance > LOW_CONFIDENCE_DEFAULTS.nearOodFraction * a.ood!.threshold;
        for (const o of ['hip', 'mof'] as const) assert.equal(a.outcomes[o].lowConfidence, unusual(o), `${t.patient_id} ${o}`);
        if (a.outcomes.hip.lowConfidence || a.outcomes.mof.lowConfidence) {
          lowConfidence.push(t.patient_id);
          assert.match(a.caveat ?? '', /^Low confidence/, t.patient_id);
        } else if (a.outcomes.hip.intervalWidth10y! > 10) wideButOrdinary++;
      } else {
        assert.equal(a.outcomes.hip.lowConfidence || a.outcomes.mof.lowConfidence, false, 'no low-confidence flag without an image-derived risk');
      }
    }
    process.stdout.write(`# real model over the demo cohort: tiers ${JSON.stringify(tiers)}; image-derived ${shown}; low confidence ${lowConfidence.length} (${lowConfidence.join(', ')}); 10-year hip interval wider than 10 points but ordinary spread ${wideButOrdinary}; MOF head alone below hip ${rawMofBelowHip} (all raised to hip)\n`);
    assert.ok(shown >= 30, `only ${shown} of 50 demo patients got an image-derived risk`);
    assert.ok(rawMofBelowHip > 0, 'the cohort has a patient whose MOF head alone is below hip (the constraint is exercised)');
    assert.ok(wideButOrdinary > 0, 'a wide interval in percentage points alone is not "low confidence"');
    assert.ok(lowConfidence.length <= 0.25 * shown, `low confidence should be unusual: ${lowConfidence.length} of ${shown}`);
    assert.ok(tiers.low > 0 && tiers.moderate > 0 && tiers.high > 0, `every tier occurs: ${JSON.stringify(tiers)}`);
  });

  test('the decision settings reach the engine: decision probability, guideline, low-confidence limits', async () => {
    assert.ok(REAL_PRESENT, 'the committed model models/hip-xray-v1 is missing');
    const base = { ...deps, registry: real! };
    const { assessment: a } = await assess(base, { patientId: 'demo-a-002', at: AT });
    const p = a.decision.hip.probabilityAbove!;
    assert.ok(a.decision.hip.shownPercent >= 3 && p > 0.5 && p < 0.8, `demo-a-002 is borderline by default (P ${p})`);
    assert.equal(a.tier.tier, 'moderate');
    const guideline = { name: 'NOGG 2022', url: 'https://www.nogg.org.uk/full-guideline' };
    const { assessment: b } = await assess({ ...base, settings: { ...SETTINGS, decisionProbability: p - 0.01, guideline } }, { patientId: 'demo-a-002', at: AT });
    assert.equal(b.tier.tier, 'high', 'a lower probability requirement makes the same risk high');
    assert.deepEqual(b.decision.guideline, guideline);
    const { assessment: c } = await assess({ ...base, settings: { ...SETTINGS, lowConfidence: { maxLogHazardSd: 0.3, nearOodFraction: 0.95 } } }, { patientId: 'demo-a-002', at: AT });
    assert.equal(a.outcomes.hip.lowConfidence, false);
    assert.equal(c.outcomes.hip.lowConfidence, true, `spread ${c.outcomes.hip.fused!.sd} above a limit of 0.3`);
  });

  test('MOF is never below hip for a patient whose MOF model alone is: risks at 1/2/5/10 y, bounds, curves, decision, FHIR', async () => {
    assert.ok(REAL_PRESENT, 'the committed model models/hip-xray-v1 is missing');
    const result = await assess({ ...deps, registry: real! }, { patientId: 'demo-a-022', at: AT });
    const a = result.assessment;
    assert.equal(a.mode, 'image-and-clinical');
    const h0 = real!.get('hip-xray-v1').manifest.risk_model.baseline_cumulative_hazard;
    const rawMof10 = 1 - Math.exp(-baselineAt(h0.grid_years, h0['mof']!, 10) * Math.exp(a.outcomes.mof.fused!.logHazard));
    const hip10 = a.outcomes.hip.risks.at(-1)!.risk;
    assert.ok(rawMof10 < hip10, `demo-a-022: the MOF head alone gives ${rawMof10} < hip ${hip10}`);
    assert.ok(a.outcomes.mof.raisedToHip);
    checkMofAtLeastHip(a, 'demo-a-022');
    assert.ok(a.decision.mof.shownPercent >= a.decision.hip.shownPercent);
    assert.ok(a.decision.mof.probabilityAbove! >= 0 && a.decision.mof.probabilityAbove! <= 1);
    const ra = toFhir(result, { binaries: false }).riskAssessment;
    const p10 = (text: string) => ra.prediction!.find((p) => p.outcome!.text === text && p.whenRange!.high!.value === 10)!.probabilityDecimal!;
    assert.ok(p10('Major osteoporotic fracture') >= p10('Hip fracture'));
  });
});

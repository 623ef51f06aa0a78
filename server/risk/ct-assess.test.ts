/**
 * CT assessments end to end over the demo stack (FHIR and DICOMweb sandboxes with the demo CT patients), with the
 * tiny fixture CT model and the real analysis and overlays: the newest eligible study is the CT; a grade ≥ 2
 * fracture sets the imminent-risk flag and an FLS referral; a refused CT (L1–L2 not in the field) is a clinical-only
 * assessment with the reason; a CT study of another patient filed under this one raises the security event and is
 * not used; the write-back Observations validate against R4 and their profiles and are in the RiskAssessment basis;
 * the overlays are served as PNGs on the CT routes and not on the radiograph ones; problem-list rule.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateResource } from '@medplum/core';
import type { Condition, ImagingStudy, Observation, StructureDefinition } from '@medplum/fhirtypes';
import express from 'express';
import request from 'supertest';
import { startDemoStack, type DemoStack } from '../../test/support/demo-stack.ts';
import { REPO_ROOT } from '../config.ts';
import { ModelRegistry } from '../inference/registry.ts';
import { DEFAULT_GATE } from '../pathways/ct-spine/gate.ts';
import { renderCtOverlays } from '../pathways/ct-spine/overlay.ts';
import { R4_DEFINITIONS_DIR } from '../sandbox/fhir/definitions.ts';
import { FhirValidator } from '../sandbox/fhir/validate.ts';
import { assess, type AssessDeps, type Assessment, type SecurityEvent } from './assess.ts';
import { vertebralFractureInProblemList } from './ct-assess.ts';
import { CT_PROFILES } from './ct-fhir.ts';
import { loadCtModel } from './ct-model.ts';
import { toFhir } from './fhir-output.ts';
import { createRiskRouter } from './routes.ts';
import { RiskService } from './service.ts';

const AT = new Date('2026-12-01T12:00:00Z');
const SETTINGS = { lookbackDays: 730, tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 } };
const CT_MODEL = loadCtModel(join(REPO_ROOT, 'test/fixtures/ct-spine-v1-tiny'));

let stack: DemoStack;
let registry: ModelRegistry;
let deps: AssessDeps;
let dir = '';
const events: SecurityEvent[] = [];
const results = new Map<string, Assessment>();

before(async () => {
  stack = await startDemoStack();
  dir = mkdtempSync(join(tmpdir(), 'frcds-ct-assess-'));
  cpSync(join(REPO_ROOT, 'test/fixtures/models/hip-xray-smoke'), join(dir, 'hip-xray-smoke'), { recursive: true });
  registry = await ModelRegistry.load({ modelsDir: dir, device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  deps = { ...stack.assessDeps(registry, SETTINGS), onSecurityEvent: (e) => events.push(e), ct: { model: CT_MODEL, renderOverlays: renderCtOverlays, concurrency: 4 } };
});

after(async () => {
  await registry?.close();
  await stack?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function ctAssessment(patientId: string): Promise<Assessment> {
  const hit = results.get(patientId);
  if (hit) return hit;
  const { assessment } = await assess(deps, { patientId, at: AT });
  results.set(patientId, assessment);
  return assessment;
}

/** The profile as @medplum/core validates it: the R4 Observation snapshot with the differential's cardinalities and types. */
function profileSnapshot(id: string): StructureDefinition {
  const sd = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/structuredefinitions', `${id}.json`), 'utf8')) as StructureDefinition;
  const bundle = JSON.parse(readFileSync(join(R4_DEFINITIONS_DIR, 'profiles-resources.json'), 'utf8')) as { entry: { resource: StructureDefinition }[] };
  const base = bundle.entry.find((e) => e.resource.resourceType === 'StructureDefinition' && e.resource.id === 'Observation')!.resource;
  const snap = structuredClone(base.snapshot!.element!);
  for (const d of sd.differential!.element!) {
    const e = snap.find((x) => x.path === d.path);
    assert.ok(e, `profile element ${d.path} exists in R4 Observation`);
    if (d.min !== undefined) e.min = d.min;
    if (d.max !== undefined) e.max = d.max;
    if (d.type) e.type = d.type;
  }
  return { ...sd, snapshot: { element: snap } };
}

/** Pattern and fixed values of the differential hold on the resource (medplum's snapshot check does not read them). */
function checkPatterns(o: Observation, id: string): void {
  const sd = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/structuredefinitions', `${id}.json`), 'utf8')) as StructureDefinition;
  for (const d of sd.differential!.element!) {
    const key = d.path.split('.')[1];
    if (!key) continue;
    const v = (o as unknown as Record<string, unknown>)[key];
    if (d.fixedCode) assert.equal(v, d.fixedCode, d.path);
    if (d.patternCodeableConcept) {
      const list = (Array.isArray(v) ? v : [v]) as { coding?: { system?: string; code?: string }[] }[];
      const want = d.patternCodeableConcept.coding![0]!;
      assert.ok(list.some((cc) => cc.coding?.some((c) => c.system === want.system && c.code === want.code)), `${d.path} has ${want.code}`);
    }
  }
}

describe('CT assessment', () => {
  test('a grade ≥ 2 fracture: CT model, imminent risk, FLS referral, not in the problem list; MOF ≥ hip', async () => {
    const a = await ctAssessment('demo-ct-003');
    assert.equal(a.mode, 'image-and-clinical', a.warnings.join(' | '));
    assert.equal(a.model.id, CT_MODEL.id);
    assert.equal(a.study?.modality, 'CT');
    assert.equal(a.study?.id, 'demo-ct-003-ct');
    const ct = a.ct!;
    assert.ok(ct.worstGrade >= 2, `worst grade ${ct.worstGrade} at ${ct.worstLevel}`);
    assert.equal(ct.imminentRisk, true);
    assert.equal(ct.inProblemList, false);
    assert.equal(a.decision.action, 'refer-fls');
    assert.match(a.caveat ?? '', /vertebral fracture.*not in the problem list/);
    assert.ok(ct.attenuation && Number.isFinite(ct.attenuation.adjustedHu));
    assert.ok(ct.attenuation.tScore.low < ct.attenuation.tScore.estimate && ct.attenuation.tScore.estimate < ct.attenuation.tScore.high);
    assert.ok(ct.overlays && ct.overlays.sagittal.width > 0 && ct.overlays.axial.height > 0);
    assert.equal(a.tscore?.used, 'image');
    for (const [i, h] of a.outcomes.hip.risks.entries()) {
      const m = a.outcomes.mof.risks[i]!;
      assert.ok(m.risk >= h.risk - 1e-12 && m.lower! >= h.lower! - 1e-9 && m.upper! >= h.upper! - 1e-9);
      assert.ok(h.lower! <= h.risk && h.risk <= h.upper!);
    }
    assert.ok(a.decision.mof.probabilityAbove! >= 0 && a.decision.mof.probabilityAbove! <= 1);
    assert.ok(a.basis.includes('ImagingStudy/demo-ct-003-ct'));
    for (const id of ct.observationIds) assert.ok(a.basis.includes(`Observation/${id}`), id);
  });

  test('a grade ≥ 2 fracture makes the action an FLS referral even when the modelled risk is low', async () => {
    // The same model with every member's intercept lowered by 5: risks far below every threshold.
    const low = structuredClone(CT_MODEL);
    for (const m of low.manifest.risk_model.members) {
      m.intercept.hip -= 5;
      m.intercept.mof -= 5;
    }
    const { assessment: a } = await assess({ ...deps, ct: { ...deps.ct!, model: low } }, { patientId: 'demo-ct-003', at: AT });
    assert.equal(a.tier.tier, 'low');
    assert.ok(a.ct!.worstGrade >= 2);
    assert.equal(a.decision.action, 'refer-fls');
    assert.match(a.decision.meaning, /vertebral fracture on the CT is itself a treatment indication/);
  });

  test('a CT outside the gate: attenuation withheld from the T-score (the prior used), plain warning, fractures still counted', async () => {
    // The muscle range moved so the demo CT's real muscle (≈ 40 HU) reads as a miscalibrated scale.
    const saved = DEFAULT_GATE.muscleHu;
    DEFAULT_GATE.muscleHu = [200, 300];
    try {
      const { assessment: a } = await assess(deps, { patientId: 'demo-ct-003', at: AT });
      assert.equal(a.ood?.outside, true);
      assert.ok(a.ood!.distance > a.ood!.threshold);
      assert.equal(a.ct?.gate?.outside, true);
      assert.equal(a.ct?.attenuation, null);
      assert.equal(a.tscore?.used, 'none');
      assert.match(a.warnings[0]!, /^CT attenuation withheld: paraspinal muscle reads \d+ HU, outside 200–300 HU — the HU scale may be off; fractures still reported\. The risk uses the T-score distribution of the training population instead\./);
      assert.ok(!a.warnings.some((w) => /no vertebral attenuation could be measured/.test(w)));
      assert.ok(a.ct!.worstGrade >= 2 && a.ct!.imminentRisk);
      assert.equal(a.decision.action, 'refer-fls');
      assert.equal(a.ct!.observationIds.length, a.ct!.morphometry!.length);
    } finally {
      DEFAULT_GATE.muscleHu = saved;
    }
  });

  test('a CT without a fracture: no imminent-risk flag', async () => {
    const normal = await ctAssessment('demo-ct-001');
    assert.equal(normal.mode, 'image-and-clinical', normal.warnings.join(' | '));
    assert.ok(normal.ct!.worstGrade < 2, `worst grade ${normal.ct!.worstGrade}`);
    assert.equal(normal.ct!.imminentRisk, false);
  });

  test('a CT the pathway refuses (L1–L2 not in the field) is clinical-only with the reason, never an exception', async () => {
    const a = await ctAssessment('demo-ct-004');
    assert.equal(a.mode, 'clinical-only');
    assert.equal(a.ct, null);
    assert.match(a.warnings[0]!, /^The CT could not be used: .+Clinical-only/);
    assert.ok(!a.warnings.some((w) => w.startsWith('No eligible hip radiograph')));
    assert.match(a.caveat ?? '', /CT could not be used/);
    assert.ok(a.basis.includes('ImagingStudy/demo-ct-004-ct'));
    assert.equal(a.outcomes.hip.risks[0]!.lower, null);
  });

  test('another patient\'s CT filed under this patient: not used, security event raised', async () => {
    const other = (await stack.fhirClient().read<ImagingStudy>('ImagingStudy', 'demo-ct-002-ct'));
    const planted: ImagingStudy = { ...other, id: 'planted-ct-for-005', subject: { reference: 'Patient/demo-ct-005' }, started: '2026-11-30T08:00:00Z' };
    delete planted.meta;
    await stack.fhirClient().write(planted);
    const before = events.length;
    const { assessment: a } = await assess(deps, { patientId: 'demo-ct-005', at: AT });
    assert.equal(a.mode, 'clinical-only');
    assert.match(a.warnings[0]!, /another patient/);
    assert.doesNotMatch(a.warnings.join(' '), /DEMOA09|2\.25\./);
    assert.equal(events.length, before + 1);
    assert.deepEqual(events.at(-1), { kind: 'image-patient-mismatch', patientId: 'demo-ct-005', studyId: 'planted-ct-for-005', reason: 'mismatch' });
  });

  test('write-back: Observations valid R4 and against their profiles, device-derived, with Provenance of the study', async () => {
    const a = await ctAssessment('demo-ct-003');
    const fhir = toFhir({ assessment: a, pngs: null }, { binaries: false });
    const out = fhir.ct!;
    assert.ok(out, 'CT resources built');
    const validator = new FhirValidator();
    const profiles: Record<string, string> = { [CT_PROFILES.attenuation]: 'frcds-ct-attenuation', [CT_PROFILES.morphometry]: 'frcds-ct-morphometry' };
    const snaps = Object.fromEntries(Object.entries(profiles).map(([url, id]) => [url, profileSnapshot(id)]));
    assert.deepEqual(out.observations.map((o) => o.id), a.ct!.observationIds);
    assert.equal(out.observations.filter((o) => o.meta!.profile![0] === CT_PROFILES.attenuation).length, 1);
    assert.equal(out.observations.filter((o) => o.meta!.profile![0] === CT_PROFILES.morphometry).length, a.ct!.morphometry!.length);
    for (const o of out.observations) {
      assert.doesNotThrow(() => validator.validate(o), `R4 ${o.id}`);
      const url = o.meta!.profile![0]!;
      assert.doesNotThrow(() => validateResource(o, { profile: snaps[url]! }), `profile ${o.id}`);
      checkPatterns(o, profiles[url]!);
      assert.equal(o.device?.reference, `Device/${out.device.id}`);
      assert.deepEqual(o.derivedFrom, [{ reference: 'ImagingStudy/demo-ct-003-ct' }]);
    }
    const worst = out.observations.find((o) => o.bodySite?.text?.startsWith(a.ct!.worstLevel!))!;
    assert.equal(worst.component!.find((c) => c.code.coding![0]!.code === 'genant-grade')!.valueInteger, a.ct!.worstGrade);
    for (const r of [out.device, out.provenance, fhir.riskAssessment]) assert.doesNotThrow(() => validator.validate(r), r.resourceType);
    assert.deepEqual(out.provenance.entity, [{ role: 'source', what: { reference: 'ImagingStudy/demo-ct-003-ct' } }]);
    assert.deepEqual(out.provenance.target.map((t) => t.reference), out.observations.map((o) => `Observation/${o.id}`));
    for (const o of out.observations) assert.ok(fhir.riskAssessment.basis!.some((b) => b.reference === `Observation/${o.id}`));
    assert.match(fhir.riskAssessment.method!.coding![0]!.display!, /CT \+ QFracture/);
    assert.match(fhir.riskAssessment.text!.div, /T-score: CT estimate −?\d\.\d/);
    assert.match(fhir.riskAssessment.text!.div, new RegExp(`Genant grade ${a.ct!.worstGrade} at ${a.ct!.worstLevel}, not in the problem list`));
  });

  test('API: the overlays on the CT routes (PNG), not on the radiograph routes; write-back lands in the FHIR server', async () => {
    const service = new RiskService({ deps: { ...deps, fhir: stack.fhirClient() }, cacheSize: 10, writeBack: true, logger: stack.logger });
    const app = express().use('/api/assessments', createRiskRouter(service, stack.logger));
    const res = await request(app).post('/api/assessments').send({ patient: 'demo-ct-002' }).expect(201);
    const body = res.body as { assessment: Assessment; links: Record<string, string>; writeBack: { written: boolean; error?: string } };
    assert.equal(body.assessment.mode, 'image-and-clinical', body.assessment.warnings.join(' | '));
    assert.deepEqual(body.writeBack, { written: true });
    const id = body.assessment.id;
    for (const kind of ['ct-sagittal', 'ct-axial']) {
      const png = await request(app).get(`/api/assessments/${id}/${kind}.png`).buffer(true).expect(200);
      assert.equal(png.headers['content-type'], 'image/png');
      assert.equal(png.headers['cache-control'], 'no-store');
      assert.deepEqual([...(png.body as Buffer).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    }
    assert.ok(body.links['ctSagittal']?.endsWith('/ct-sagittal.png'));
    await request(app).get(`/api/assessments/${id}/display.png`).expect(404);
    await request(app).get(`/api/assessments/${id}/heatmap.png`).expect(404);
    // Same study, model and factors: served from the cache.
    await request(app).post('/api/assessments').send({ patient: 'demo-ct-002' }).expect(200);
    const obs = await stack.fhirClient().read<Observation>('Observation', body.assessment.ct!.observationIds[0]!);
    assert.equal(obs.device?.reference?.startsWith('Device/frcds-ct-spine-analysis-'), true);
  });
});

describe('problem list', () => {
  const cond = (system: string, code: string, over: Partial<Condition> = {}): Condition => ({ resourceType: 'Condition', subject: { reference: 'Patient/p' }, code: { coding: [{ system, code }] }, ...over });
  test('ICD-10 prefixes and SNOMED codes count when active or unstated, not when resolved or refuted', () => {
    assert.equal(vertebralFractureInProblemList([cond('http://hl7.org/fhir/sid/icd-10-cm', 'S32.010A')]), true);
    assert.equal(vertebralFractureInProblemList([cond('http://hl7.org/fhir/sid/icd-10', 'M48.56')]), true);
    assert.equal(vertebralFractureInProblemList([cond('http://hl7.org/fhir/sid/icd-10-cm', 'M8008XA')]), true, 'without the dot');
    assert.equal(vertebralFractureInProblemList([cond('http://snomed.info/sct', '15724005')]), true);
    assert.equal(vertebralFractureInProblemList([cond('http://hl7.org/fhir/sid/icd-10-cm', 'S72.001A')]), false, 'hip fracture');
    assert.equal(vertebralFractureInProblemList([cond('http://snomed.info/sct', '15724005', { clinicalStatus: { coding: [{ code: 'resolved' }] } })]), false);
    assert.equal(vertebralFractureInProblemList([cond('http://snomed.info/sct', '15724005', { verificationStatus: { coding: [{ code: 'refuted' }] } })]), false);
  });
});

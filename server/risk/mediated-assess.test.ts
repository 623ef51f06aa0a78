/**
 * A T-score-mediated (hip-xray-v2-shaped) model end to end: the demo cohort over the embedded FHIR and DICOMweb
 * sandboxes, the closed-form fixture model test/fixtures/hip-xray-v2-tiny through the registry beside the v1 smoke
 * model. Checks: the radiograph's T-score estimate; a recent measured DXA T-score replaces it (and joins the basis),
 * an older one does not (manifest limit, and the setting overriding it); the interval comes from the quadrature
 * mixture; the threshold probability lies in (0, 1); MOF ≥ hip everywhere; the FHIR extension; the v1 model's
 * assessment of the same patient has no T-score and is unchanged by the DXA; BMI outside 20–40 warns (derived and
 * recorded) and is the caveat when the charted value could change the tier.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Observation, Resource } from '@medplum/fhirtypes';
import { startDemoStack, type DemoStack } from '../../test/support/demo-stack.ts';
import { REPO_ROOT } from '../config.ts';
import type { FhirDataSource } from '../fhir/client.ts';
import { ModelRegistry } from '../inference/registry.ts';
import { assess, type AssessDeps, type Assessment } from './assess.ts';
import { readFileSync } from 'node:fs';
import type { StructureDefinition } from '@medplum/fhirtypes';
import express from 'express';
import request from 'supertest';
import { factorRows } from '../../client/src/factor-rows.ts';
import { buildCard } from '../cds/cards.ts';
import { FhirValidator } from '../sandbox/fhir/validate.ts';
import { EXT, toFhir } from './fhir-output.ts';
import { createRiskRouter } from './routes.ts';
import { RiskService } from './service.ts';

const AT = new Date('2026-11-27T12:00:00Z');
const SETTINGS = { lookbackDays: 730, tiers: { mofModerate: 10, mofHigh: 20, hipHigh: 3 } };

let stack: DemoStack;
let registry: ModelRegistry;
let deps: AssessDeps;
let dir = '';

before(async () => {
  stack = await startDemoStack();
  dir = mkdtempSync(join(tmpdir(), 'frcds-v2-models-'));
  cpSync(join(REPO_ROOT, 'test/fixtures/models/hip-xray-smoke'), join(dir, 'hip-xray-smoke'), { recursive: true });
  cpSync(join(REPO_ROOT, 'test/fixtures/hip-xray-v2-tiny'), join(dir, 'hip-xray-v2-tiny'), { recursive: true });
  registry = await ModelRegistry.load({ modelsDir: dir, device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
  assert.equal(registry.status().ready, true, registry.status().detail);
  deps = stack.assessDeps(registry, SETTINGS);
});

after(async () => {
  await registry?.close();
  await stack?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const V2 = 'hip-xray-v2-tiny';
const r10 = (a: Assessment, o: 'hip' | 'mof') => a.outcomes[o].risks.find((r) => r.years === 10)!;

function checkMofAtLeastHip(a: Assessment): void {
  const hip = a.outcomes.hip.fused!;
  const mof = a.outcomes.mof.fused!;
  hip.risks.forEach((h, i) => {
    const m = mof.risks[i]!;
    assert.ok(m.risk >= h.risk - 1e-12 && m.lower >= h.lower - 1e-9 && m.upper >= h.upper - 1e-9, `${a.patientId} ${h.years}y MOF ≥ hip`);
  });
  hip.curve.forEach((h, i) => {
    const m = mof.curve[i]!;
    assert.ok(m.survival <= h.survival + 1e-12 && m.lower <= h.lower + 1e-9 && m.upper <= h.upper + 1e-9, `${a.patientId} curve ${h.years}`);
  });
  assert.ok(a.decision.mof.probabilityAbove! >= 0 && a.decision.hip.probabilityAbove! >= 0);
}

type Search = (type: string, params: Record<string, string>, signal?: AbortSignal) => Promise<Resource[]>;

/** `source` with its search replaced (every other member delegated to it). */
function withSearch(source: FhirDataSource, search: Search): FhirDataSource {
  return new Proxy(source, {
    get(target, prop) {
      if (prop === 'search') return search;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** The chart source with extra Observations for one patient (as if charted; they replace ones of the same code). */
function withObservations(source: FhirDataSource, patientId: string, extra: Observation[]): FhirDataSource {
  return withSearch(source, async (type, params, signal) => {
    const found = await source.search<Resource>(type as Resource['resourceType'], params, signal);
    if (type !== 'Observation' || params['subject'] !== `Patient/${patientId}`) return found;
    const codes = (params['code'] ?? '').split(',');
    const mine = extra.filter((o) => o.code.coding!.some((c) => codes.includes(`${c.system}|${c.code}`)));
    return [...found.filter((o) => !mine.some((x) => x.code.coding![0]!.code === (o as Observation).code?.coding?.[0]?.code)), ...mine];
  });
}

describe('T-score-mediated model end to end', () => {
  test('radiograph estimate without a usable DXA: interval from the mixture, probability in (0, 1), MOF ≥ hip, FHIR extension', async () => {
    // demo-a-002's DXA (11 Jun 2024) is 2.5 years old at the assessment date: older than the manifest's 2 years.
    const { assessment: a } = await assess(deps, { patientId: 'demo-a-002', at: AT, modelId: V2 });
    assert.equal(a.mode, 'image-and-clinical');
    assert.equal(a.model.id, V2);
    assert.ok(a.tscore);
    assert.equal(a.tscore.used, 'image');
    assert.equal(a.tscore.dxa, null);
    assert.equal(a.tscore.calibrationVersion, 'hip-xray-v2-tiny-fixture-1');
    const est = a.tscore.estimate!;
    assert.ok(est.low < est.mean && est.mean < est.high && est.sd > 0.5, JSON.stringify(est));
    assert.ok(!a.basis.some((b) => b.startsWith('Observation/demo-a-002-dxa')));
    for (const o of ['hip', 'mof'] as const) {
      const r = r10(a, o);
      assert.ok(r.lower! < r.risk && r.risk < r.upper!, `${o} interval ${JSON.stringify(r)}`);
      assert.equal(a.outcomes[o].fused!.curve.length, 121);
    }
    checkMofAtLeastHip(a);
    const ra = toFhir({ assessment: a, pngs: null }, { binaries: false }).riskAssessment;
    const ext = ra.extension!.find((e) => e.url === EXT.tscoreEstimate)!;
    const sub = (u: string) => ext.extension!.find((e) => e.url === u)!;
    assert.ok(Math.abs(sub('mean').valueDecimal! - est.mean) < 1e-3);
    assert.ok(Math.abs(sub('low').valueDecimal! - est.low) < 1e-3 && Math.abs(sub('high').valueDecimal! - est.high) < 1e-3);
    assert.equal(sub('calibration').valueString, 'hip-xray-v2-tiny-fixture-1');
    assert.equal(sub('used').valueCode, 'image');
    assert.match(ra.text!.div, /Femoral-neck T-score: radiograph estimate −?\d\.\d \(−?\d\.\d to −?\d\.\d\)/);
  });

  test('a recent measured DXA T-score replaces the estimate (sd 0.1, in the basis, narrower interval); the setting can refuse it as too old', async () => {
    // demo-a-008: radiograph 20 Nov 2026, DXA femoral neck −2.0 on 20 May 2026.
    const { assessment: a } = await assess(deps, { patientId: 'demo-a-008', at: AT, modelId: V2 });
    assert.deepEqual(a.tscore!.dxa, { value: -2, date: '2026-05-20', observationId: 'demo-a-008-dxa-t-score' });
    assert.equal(a.tscore!.used, 'dxa');
    assert.ok(a.tscore!.estimate, 'the radiograph estimate is still reported beside the DXA');
    assert.ok(a.basis.includes('Observation/demo-a-008-dxa-t-score'));
    const noDxa = (await assess({ ...deps, settings: { ...SETTINGS, dxaMaxAgeYears: 0.25 } }, { patientId: 'demo-a-008', at: AT, modelId: V2 })).assessment;
    assert.equal(noDxa.tscore!.used, 'image');
    assert.equal(noDxa.tscore!.dxa, null);
    assert.ok(!noDxa.basis.includes('Observation/demo-a-008-dxa-t-score'));
    assert.notEqual(a.cacheKey, noDxa.cacheKey, 'the DXA in use is part of the cache key');
    // Narrower on the log-hazard scale (in points it also depends on where the risk lies).
    const sd = (x: Assessment) => x.outcomes.hip.fused!.sd;
    assert.ok(sd(a) < sd(noDxa) / 2, `log-hazard sd with DXA ${sd(a)} vs estimate ${sd(noDxa)}`);
    assert.notEqual(r10(a, 'hip').risk, r10(noDxa, 'hip').risk);
    checkMofAtLeastHip(a);
    const ra = toFhir({ assessment: a, pngs: null }, { binaries: false }).riskAssessment;
    assert.ok(ra.basis!.some((b) => b.reference === 'Observation/demo-a-008-dxa-t-score'));
    // Valid R4, and the extension has every slice its StructureDefinition requires, each with the declared type.
    assert.doesNotThrow(() => new FhirValidator().validate(ra));
    const def = JSON.parse(readFileSync(join(REPO_ROOT, 'fhir-profiles/structuredefinitions/tscore-estimate.json'), 'utf8')) as StructureDefinition;
    const ext = ra.extension!.find((e) => e.url === def.url)!;
    for (const el of def.differential!.element!.filter((e) => e.sliceName)) {
      const found = ext.extension!.filter((e) => e.url === el.sliceName);
      assert.ok(found.length >= (el.min ?? 0) && found.length <= 1, `slice ${el.sliceName}`);
      const type = def.differential!.element!.find((e) => e.id === `Extension.extension:${el.sliceName}.value[x]`)!.type![0]!.code;
      for (const f of found) assert.ok(`value${type[0]!.toUpperCase()}${type.slice(1)}` in f, `${el.sliceName} is ${type}`);
    }
    assert.match(ra.text!.div, /DXA 2026-05-20 −2\.0 \(used\)/);
    // The card's reasons line shows both, the DXA marked as the one used.
    const card = buildCard({ assessment: a, kind: 'assessment', context: { userId: 'Practitioner/x', patientId: 'demo-a-008' }, publicBaseUrl: 'https://c', retrievable: false, care: { known: true, status: { flsReferral: null, dxaOrder: null, dxaResult: null, treatment: null } } }).card;
    assert.match(card.detail!, /Femoral-neck T-score: radiograph estimate −?\d\.\d \(−?\d\.\d to −?\d\.\d\); DXA 20 May 2026 −2\.0 \(used\)\./);
    // The setting overrides the manifest the other way too: demo-a-010's DXA of 30 Jan 2023 counts with 5 years.
    const old = (await assess({ ...deps, settings: { ...SETTINGS, dxaMaxAgeYears: 5 } }, { patientId: 'demo-a-010', at: AT, modelId: V2 })).assessment;
    assert.equal(old.tscore!.used, 'dxa');
    assert.equal(old.tscore!.dxa!.date, '2023-01-30');
    assert.equal((await assess(deps, { patientId: 'demo-a-010', at: AT, modelId: V2 })).assessment.tscore!.used, 'image');
  });

  test('threshold probabilities lie strictly inside (0, 1) where the risk is near its threshold, and agree with the tier', async () => {
    const ids = ['demo-a-003', 'demo-a-007', 'demo-a-012', 'demo-a-019', 'demo-a-024', 'demo-a-028'];
    let inside = 0;
    for (const id of ids) {
      const { assessment: a } = await assess(deps, { patientId: id, at: AT, modelId: V2 });
      if (a.mode !== 'image-and-clinical') continue;
      checkMofAtLeastHip(a);
      for (const o of ['hip', 'mof'] as const) {
        const p = a.decision[o].probabilityAbove!;
        assert.ok(p >= 0 && p <= 1);
        if (p > 0.001 && p < 0.999) inside++;
        // Risk at or above the threshold is what the probability measures: shown risk far above → p high, far below → low.
        if (r10(a, o).lower! * 100 >= a.decision[o].thresholdPercent) assert.ok(p >= 0.975 - 1e-6, `${id} ${o}`);
        if (r10(a, o).upper! * 100 < a.decision[o].thresholdPercent) assert.ok(p <= 0.025 + 1e-6, `${id} ${o}`);
      }
    }
    assert.ok(inside >= 1, 'at least one outcome with a probability strictly inside (0, 1)');
  });

  test('the manifest\'s unmeasured log-hazard sd reaches every outcome: log-hazard mean −σ²/2, variance +σ², wider intervals, MOF ≥ hip', async () => {
    const sigma = 0.4;
    const uDir = mkdtempSync(join(tmpdir(), 'frcds-v2-unmeasured-'));
    let uRegistry: ModelRegistry | undefined;
    try {
      cpSync(join(REPO_ROOT, 'test/fixtures/hip-xray-v2-tiny'), join(uDir, V2), { recursive: true });
      const file = join(uDir, V2, 'manifest.json');
      const man = JSON.parse(readFileSync(file, 'utf8')) as { uncertainty: Record<string, unknown> };
      man.uncertainty['unmeasured_log_hazard_sd'] = sigma;
      writeFileSync(file, JSON.stringify(man));
      const reg = await ModelRegistry.load({ modelsDir: uDir, device: 'cpu', threads: 2, maxBatch: 8, maxWaitMs: 2 }, stack.logger);
      uRegistry = reg;
      assert.equal(reg.status().ready, true, reg.status().detail);
      const uDeps = stack.assessDeps(reg, SETTINGS);
      for (const id of ['demo-a-002', 'demo-a-008']) {
        const a: Assessment = (await assess(deps, { patientId: id, at: AT, modelId: V2 })).assessment;
        const b: Assessment = (await assess(uDeps, { patientId: id, at: AT, modelId: V2 })).assessment;
        assert.equal(b.mode, 'image-and-clinical');
        checkMofAtLeastHip(b);
        for (const o of ['hip', 'mof'] as const) {
          const f0 = a.outcomes[o].fused!;
          const f1 = b.outcomes[o].fused!;
          assert.ok(Math.abs(f1.logHazard - (f0.logHazard - sigma ** 2 / 2)) < 1e-9 && Math.abs(f1.sd ** 2 - (f0.sd ** 2 + sigma ** 2)) < 1e-9, `${id} ${o} spread ${f1.logHazard} ${f1.sd} vs ${f0.logHazard} ${f0.sd}`);
          const i0 = a.outcomes[o].imageTermOnly!;
          const i1 = b.outcomes[o].imageTermOnly!;
          assert.ok(Math.abs(i1.logHazard - (i0.logHazard - sigma ** 2 / 2)) < 1e-9, `${id} ${o} image-term-only log-hazard`);
          f1.risks.forEach((r, i) => assert.ok(r.lower! < f0.risks[i]!.lower! && r.upper! > f0.risks[i]!.upper!, `${id} ${o} ${r.years}y interval`));
          i1.risks.forEach((r, i) => assert.ok(r.lower! < i0.risks[i]!.lower! && r.upper! > i0.risks[i]!.upper!, `${id} ${o} ${r.years}y image-term-only interval`));
        }
      }
    } finally {
      await uRegistry?.close();
      rmSync(uDir, { recursive: true, force: true });
    }
  });

  test('the v1 model of the same registry: no T-score, no DXA read, same numbers whether or not the chart has a DXA', async () => {
    const a = (await assess(deps, { patientId: 'demo-a-008', at: AT })).assessment;
    assert.equal(a.model.id, 'hip-xray-smoke', 'v1 stays the default without MODEL_DEFAULT');
    assert.equal(a.tscore, null);
    assert.ok(!a.basis.some((b) => b.includes('dxa')));
    const searches: string[] = [];
    const spy = withSearch(deps.fhir, (t, p, s) => (searches.push(`${t}?${p['code'] ?? ''}`), deps.fhir.search<Resource>(t as Resource['resourceType'], p, s)));
    const b = (await assess({ ...deps, fhir: spy }, { patientId: 'demo-a-008', at: AT })).assessment;
    assert.ok(!searches.some((q) => q.includes('80948-3')), 'a v1 assessment does not read DXA results');
    assert.deepEqual(b.outcomes, a.outcomes);
    searches.length = 0;
    await assess({ ...deps, fhir: spy }, { patientId: 'demo-a-008', at: AT, modelId: V2 });
    assert.ok(searches.some((q) => q.includes('80948-3')), 'a v2 assessment reads them with the care-status codes');
  });
});

describe('a T-score-mediated model output that breaks the contract', () => {
  test('a T-score sd that is not positive, or a non-finite base log-hazard: clinical-only with the reason, no T-score estimate', async () => {
    const model = registry.get(V2);
    for (const [what, patch] of [
      ['sd 0', (o: Awaited<ReturnType<typeof model.infer>>) => ({ ...o, tscore: o.tscore!.map((x) => ({ ...x, sd: 0 })) })],
      ['NaN base', (o: Awaited<ReturnType<typeof model.infer>>) => ({ ...o, baseLogHazard: o.baseLogHazard!.map((r) => [Number.NaN, r[1]!]) })],
    ] as const) {
      const broken = { ...model, infer: async (x: Parameters<typeof model.infer>[0]) => patch(await model.infer(x)) };
      const fake = { get: () => broken, list: () => [broken] } as unknown as ModelRegistry;
      const { assessment: a } = await assess({ ...deps, registry: fake }, { patientId: 'demo-a-008', at: AT, modelId: V2 });
      assert.equal(a.mode, 'clinical-only', what);
      assert.ok(a.warnings.includes('The model could not estimate a T-score from this radiograph: clinical-only (QFracture-2012) risk.'), what);
      assert.equal(a.tscore!.estimate, null);
      assert.equal(a.tscore!.used, 'none');
      assert.equal(a.caveat, 'The radiograph could not be used: this risk rests on clinical factors only.');
    }
  });
});

describe('POST /api/assessments with a model id', () => {
  test('"model" picks the model; without it the default (v1); an unknown or malformed model id is 404 / 400', async () => {
    const service = new RiskService({ deps, cacheSize: 20, writeBack: false, logger: stack.logger });
    const app = express().use('/api/assessments', createRiskRouter(service, stack.logger));
    const v2 = await request(app).post('/api/assessments').send({ patient: 'demo-a-008', model: V2 }).expect(201);
    const a2 = (v2.body as { assessment: Assessment }).assessment;
    assert.equal(a2.model.id, V2);
    assert.equal(a2.tscore!.used, 'dxa');
    const v1 = await request(app).post('/api/assessments').send({ patient: 'demo-a-008' }).expect(201);
    assert.equal((v1.body as { assessment: Assessment }).assessment.model.id, 'hip-xray-smoke');
    assert.equal((v1.body as { assessment: Assessment }).assessment.tscore, null);
    await request(app).post('/api/assessments').send({ patient: 'demo-a-008', model: V2 }).expect(200);
    const unknown = await request(app).post('/api/assessments').send({ patient: 'demo-a-008', model: 'hip-xray-v9' }).expect(404);
    assert.match((unknown.body as { error: string }).error, /hip-xray-v9/);
    await request(app).post('/api/assessments').send({ patient: 'demo-a-008', model: '../etc' }).expect(400);
  });
});

describe('BMI outside QFracture-2012\'s range', () => {
  const obs = (id: string, code: string, value: number, unit: string): Observation => ({
    resourceType: 'Observation', id, status: 'final', subject: { reference: 'Patient/demo-a-003' }, effectiveDateTime: '2026-10-01',
    code: { coding: [{ system: 'http://loinc.org', code }] }, valueQuantity: { value, unit, code: unit },
  });

  test('derived from weight and height (BMI 43.2): a warning in the engine\'s words, 40 used', async () => {
    // A chart without a BMI Observation: weight 120 kg, height 166.7 cm.
    const fhir = withObservations(deps.fhir, 'demo-a-003', [obs('w', '29463-7', 120, 'kg'), obs('h', '8302-2', 166.7, 'cm')]);
    const noBmi = withSearch(fhir, async (t, p, s) => (await fhir.search<Resource>(t as Resource['resourceType'], p, s)).filter((r) => (r as Observation).code?.coding?.[0]?.code !== '39156-5'));
    for (const modelId of [V2, 'hip-xray-smoke']) {
      const { assessment: a } = await assess({ ...deps, fhir: noBmi }, { patientId: 'demo-a-003', at: AT, modelId });
      assert.equal(a.factors.inputs.bmi, 40);
      assert.ok(a.warnings.includes('BMI 43.2 from weight and height is outside the 20–40 range QFracture-2012 accepts; 40 was used.'), a.warnings.join(' | '));
    }
  });

  test('recorded (BMI 17.2 and 58): a warning; the caveat when the charted value could change the tier', async () => {
    const low = (await assess({ ...deps, fhir: withObservations(deps.fhir, 'demo-a-003', [obs('b', '39156-5', 17.2, 'kg/m2')]) }, { patientId: 'demo-a-003', at: AT, modelId: V2 })).assessment;
    assert.equal(low.factors.inputs.bmi, 20);
    assert.ok(low.warnings.includes('BMI 17.2 as recorded is outside the 20–40 range QFracture-2012 accepts; 20 was used.'), low.warnings.join(' | '));
    // Where the reasons name the BMI, they name the charted value and the one used.
    const card = buildCard({ assessment: low, kind: 'assessment', context: { userId: 'Practitioner/x', patientId: 'demo-a-003' }, publicBaseUrl: 'https://c', retrievable: false, care: { known: true, status: { flsReferral: null, dxaOrder: null, dxaResult: null, treatment: null } } }).card;
    if (/BMI/.test(card.detail!)) assert.match(card.detail!, /BMI 17\.2 \(20 used\)/);
    assert.equal(factorRows(low, 'hip').find((r) => r.factor === 'bmi')?.value, '17.2 kg/m² (20 used)');
    // Over the demo cohort, a BMI far out of range changes the tier of some patient when its term is continued
    // past the edge: that patient's caveat names it, and a patient whose tier would not change has no such caveat.
    let named = 0;
    let quiet = 0;
    for (const id of ['demo-a-003', 'demo-a-007', 'demo-a-012', 'demo-a-019', 'demo-a-028', 'demo-a-033']) {
      const extra = [{ ...obs('b', '39156-5', 12, 'kg/m2'), subject: { reference: `Patient/${id}` } }];
      const { assessment: a } = await assess({ ...deps, fhir: withObservations(deps.fhir, id, extra) }, { patientId: id, at: AT, modelId: V2 });
      if (a.caveat?.startsWith('BMI 12 as recorded is outside the 20–40 range QFracture-2012 accepts; 20 was used, and the actual value could change the recommendation.')) named++;
      else if (!a.caveat?.startsWith('BMI')) quiet++;
    }
    assert.ok(named >= 1, `a BMI of 12 changes some tier (named ${named}, quiet ${quiet})`);
  });
});

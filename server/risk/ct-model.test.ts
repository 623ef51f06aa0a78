/** The CT spine risk model: manifest checks and the risk it gives (ct-model.ts), on the tiny fixture manifest. */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { ContrastPhase } from '../pathways/ct-spine/l1-roi.ts';
import type { GenantGrade } from '../pathways/ct-spine/types.ts';
import { REPO_ROOT } from '../config.ts';
import { CtModelError, ctRisk, loadCtModel, tscoreFromHu, validateCtManifest, type CtRiskRequest } from './ct-model.ts';

const DIR = join(REPO_ROOT, 'test/fixtures/ct-spine-v1-tiny');
const model = loadCtModel(DIR);
const cloglog = (r: number) => Math.log(-Math.log1p(-r));
const REQ: CtRiskRequest = { clinical: { hip: cloglog(0.04), mof: cloglog(0.14) }, ct: { worstGrade: 0, adjustedHu: 140, phase: 'non-contrast' }, dxa: null };
const with_ = (over: Partial<CtRiskRequest['ct']>, dxa: CtRiskRequest['dxa'] = null): CtRiskRequest => ({ ...REQ, ct: { ...REQ.ct, ...over }, dxa });

describe('CT model manifest', () => {
  test('the fixture loads with its id and version', () => {
    assert.equal(model.id, 'ct-spine-v1-tiny');
    assert.equal(model.version, '0.0.1');
    assert.equal(model.manifest.risk_model.members.length, 3);
  });

  test('the committed CT model (models/ct-spine-v1) passes the same checks', () => {
    const real = loadCtModel(join(REPO_ROOT, 'models/ct-spine-v1'));
    assert.equal(real.manifest.kind, 'ct-spine');
    const r = ctRisk(real, REQ).outcomes.mof.riskAt(10);
    assert.ok(r.lower <= r.risk && r.risk <= r.upper && r.upper < 1);
  });

  test('a broken manifest is refused with the field named', () => {
    // Loosely typed on purpose: each case writes a value the contract forbids.
    type Loose = { [k: string]: Loose } & Loose[];
    const raw = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as Loose;
    const bad = (mut: (m: Loose) => void): string => {
      const m = structuredClone(raw);
      mut(m);
      try {
        validateCtManifest(m);
        return 'accepted';
      } catch (e) {
        assert.ok(e instanceof CtModelError);
        return (e as Error).message;
      }
    };
    assert.match(bad((m) => { m['kind'] = 'hip-xray' as unknown as Loose; }), /kind must be "ct-spine"/);
    assert.match(bad((m) => { delete m['tscore_from_hu']!['phase_offset_hu']!['portal-venous']; }), /phase_offset_hu\.portal-venous/);
    assert.match(bad((m) => { m['risk_model']!['members']![1]!['fracture']!['mof'] = [0, 0.5, 0.8] as unknown as Loose; }), /members\[1\]\.fracture\.mof/);
    assert.match(bad((m) => { m['risk_model']!['baseline_cumulative_hazard']!['hip']![3] = 0 as unknown as Loose; }), /baseline_cumulative_hazard\.hip/);
    assert.match(bad((m) => { m['tscore_from_hu']!['slope'] = -0.03 as unknown as Loose; }), /slope/);
    assert.match(bad((m) => { m['not_for_clinical_use'] = false as unknown as Loose; }), /not_for_clinical_use/);
  });

  test('a missing or unreadable manifest names the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'frcds-ct-model-'));
    try {
      assert.throws(() => loadCtModel(dir), (e: Error) => e instanceof CtModelError && e.message.includes('manifest.json'));
      cpSync(DIR, dir, { recursive: true });
      writeFileSync(join(dir, 'manifest.json'), '{ not json');
      assert.throws(() => loadCtModel(dir), CtModelError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('CT risk', () => {
  const r10 = (req: CtRiskRequest, o: 'hip' | 'mof' = 'mof') => ctRisk(model, req).outcomes[o].riskAt(10);

  test('the T-score estimate is linear in HU; an unknown phase widens it', () => {
    const man = model.manifest;
    const t = tscoreFromHu(man, 110, 'non-contrast');
    assert.ok(Math.abs(t.mean - (man.tscore_from_hu.intercept + man.tscore_from_hu.slope * 110)) < 1e-12);
    assert.equal(t.sd, man.tscore_from_hu.sd);
    assert.ok(tscoreFromHu(man, 110, 'unknown').sd > t.sd);
    const a = ctRisk(model, with_({ phase: 'unknown' })).outcomes.mof.riskAt(10);
    const b = r10(REQ);
    assert.ok(a.upper - a.lower > b.upper - b.lower, 'wider interval with the phase unknown');
  });

  test('lower attenuation gives a higher risk; the estimate is the source', () => {
    assert.ok(r10(with_({ adjustedHu: 90 })).risk > r10(with_({ adjustedHu: 180 })).risk);
    assert.equal(ctRisk(model, REQ).tscore.source, 'ct');
  });

  test('a prevalent fracture multiplies the hazard by the manifest grade terms', () => {
    const man = model.manifest;
    // At the mean T-score, member-averaged: log H(grade 2) − log H(grade 0) = mean fracture term.
    const r0 = ctRisk(model, REQ).outcomes.mof.logHazardSpread().mean;
    const r2 = ctRisk(model, with_({ worstGrade: 2 })).outcomes.mof.logHazardSpread().mean;
    const expected = man.risk_model.members.reduce((a, m) => a + m.fracture.mof[2], 0) / man.risk_model.members.length;
    assert.ok(Math.abs(r2 - r0 - expected) < 1e-9, `${r2 - r0} vs ${expected}`);
    assert.ok(r10(with_({ worstGrade: 3 })).risk > r10(with_({ worstGrade: 2 })).risk);
    assert.ok(r10(with_({ worstGrade: 2 })).risk > r10(with_({ worstGrade: 1 })).risk);
  });

  test('a recent measured DXA replaces the estimate; without attenuation the prior is used', () => {
    const dxa = { value: -3.1, date: '2026-05-01', observationId: 'dxa-1' };
    const d = ctRisk(model, with_({}, dxa));
    assert.equal(d.tscore.source, 'dxa');
    assert.deepEqual(d.tscore.normal, { mean: -3.1, sd: model.manifest.risk_model.dxa_precision_sd });
    assert.ok(d.estimate !== null, 'the attenuation estimate is still reported');
    const p = ctRisk(model, with_({ adjustedHu: null }));
    assert.equal(p.tscore.source, 'prior');
    assert.deepEqual(p.tscore.normal, model.manifest.tscore_prior);
    assert.equal(p.estimate, null);
  });

  test('MOF is never below hip; intervals contain the mean; risks are plausible', () => {
    for (const grade of [0, 1, 2, 3] as const) {
      for (const hu of [60, 120, 200, null]) {
        const r = ctRisk(model, with_({ worstGrade: grade, adjustedHu: hu }));
        for (const t of [1, 2, 5, 10]) {
          const h = r.outcomes.hip.riskAt(t);
          const m = r.outcomes.mof.riskAt(t);
          assert.ok(m.risk >= h.risk - 1e-12 && m.lower >= h.lower - 1e-9 && m.upper >= h.upper - 1e-9, `grade ${grade} HU ${hu} t ${t}`);
          assert.ok(h.lower <= h.risk && h.risk <= h.upper);
        }
      }
    }
    const base = r10(REQ);
    assert.ok(base.risk > 0.05 && base.risk < 0.4, `MOF 10 y ${base.risk}`);
  });
});

describe('the committed CT model served as trained', () => {
  // The training pipeline saved every test patient's inputs and predicted risks (models/ct-spine-v1/predictions);
  // the service must give the same numbers from the same inputs, or the evaluation does not describe what is served.
  test('reproduces the saved site-A test predictions (mean risk and the upper 95 % bound, hip and MOF)', () => {
    const dir = join(REPO_ROOT, 'models/ct-spine-v1');
    const model = loadCtModel(dir);
    const off = model.manifest.tscore_from_hu.phase_offset_hu;
    const lines = gunzipSync(readFileSync(join(dir, 'predictions/test-site-a.csv.gz'))).toString('utf8').trim().split('\n');
    const head = lines[0]!.split(',');
    const fromPercent = (percent: number): number => Math.log(-Math.log(1 - percent / 100));
    let worst = 0;
    const sources = new Set<string>();
    for (const line of lines.slice(1, 401)) {
      const v = line.split(',');
      const r = (k: string): string => v[head.indexOf(k)]!;
      const hu = Number(r('ct_hu'));
      const phase = r('ct_phase') as ContrastPhase;
      sources.add(r('t_source'));
      const res = ctRisk(model, {
        clinical: { hip: fromPercent(Number(r('qf_risk10_hip'))), mof: fromPercent(Number(r('qf_risk10_mof'))) },
        ct: { worstGrade: Number(r('ct_grade')) as GenantGrade, adjustedHu: Number.isFinite(hu) ? hu - off[phase] : null, phase },
        dxa: r('t_source') === 'dxa' ? { value: Number(r('t_mean')), date: '2016-01-01', observationId: 'x' } : null,
      });
      for (const o of ['hip', 'mof'] as const) {
        worst = Math.max(worst, Math.abs(res.outcomes[o].meanRisk(10) - Number(r(`pred_${o}`))), Math.abs(res.outcomes[o].quantile(10, 0.975) - Number(r(`hi_${o}`))));
      }
    }
    assert.ok(sources.size >= 2, `T-score sources covered: ${[...sources].join(', ')}`);
    assert.ok(worst < 1e-4, `largest difference ${worst}`);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRefusal } from '../types.ts';
import { analyseCtVolume } from './analyse.ts';
import { buildSpinePhantom, defaultLevels, DEFAULT_PHANTOM, type PhantomLevel } from './phantom.ts';
import type { CtFindings } from './types.ts';

const NC = { phase: 'non-contrast', phaseRecorded: false } as const;

function phantom(sliceMm: number, edit: (l: PhantomLevel) => PhantomLevel = (l) => l, hu = 120) {
  return buildSpinePhantom({ ...DEFAULT_PHANTOM, sliceMm, seed: 3, levels: defaultLevels(hu).map(edit) }).volume;
}

function findings(r: ReturnType<typeof analyseCtVolume>): CtFindings {
  assert.ok(!isRefusal(r), JSON.stringify(r));
  return r;
}

describe('CT volume analysis', () => {
  it('labels the levels, measures L1 of an intact spine', () => {
    const f = findings(analyseCtVolume(phantom(1), NC));
    assert.equal(f.attenuation?.level, 'L1');
    assert.equal(f.worstGrade, 0);
    assert.deepEqual(f.warnings, []);
  });

  it('grades a wedge L1 as the worst level and measures attenuation at T12 instead (a fracture reads denser)', () => {
    const f = findings(analyseCtVolume(phantom(1, (l) => (l.label === 'L1' ? { ...l, anteriorFraction: 0.7 } : l)), NC));
    assert.deepEqual(f.levels.map((l) => l.label), ['L4', 'L3', 'L2', 'L1', 'T12', 'T11']);
    assert.ok(f.levels.every((l) => l.excluded === undefined || l.truncated));
    assert.equal(f.attenuation?.level, 'T12');
    assert.ok(Math.abs(f.attenuation!.medianHu - 120) <= 5, `median ${f.attenuation!.medianHu}`);
    assert.equal(f.attenuation!.adjustedHu, f.attenuation!.medianHu);
    assert.equal(f.worstGrade, 2);
    assert.equal(f.worstLevel, 'L1');
    const graded = f.morphometry!.map((m) => m.level);
    assert.ok(graded.includes('L1') && graded.every((l) => ['T11', 'T12', 'L1', 'L2', 'L3', 'L4'].includes(l)), graded.join());
    assert.ok(f.morphometry!.filter((m) => m.level !== 'L1').every((m) => m.grade === 0));
    assert.ok(Math.abs(f.geometry.midlineColumn - (f.geometry.box.c0 + f.geometry.box.c1) / 2) <= 1, JSON.stringify(f.geometry));
    assert.deepEqual(f.warnings, ['L1 not used for attenuation: a compression fracture makes trabecular bone read denser; T12 was measured instead']);
  });

  it('excludes a level with metal from attenuation and morphometry, with the reason, and falls back to T12', () => {
    const f = findings(analyseCtVolume(phantom(2, (l) => (l.label === 'L1' ? { ...l, metal: true } : l)), NC));
    assert.match(f.levels.find((l) => l.label === 'L1')!.excluded ?? '', /metal/);
    assert.equal(f.attenuation?.level, 'T12');
    assert.match(f.warnings.join('\n'), /L1 was not usable; T12 was measured instead/);
    assert.ok(!f.morphometry!.some((m) => m.level === 'L1'));
    assert.equal(f.worstGrade, 0, JSON.stringify(f.morphometry));
  });

  it('gives no morphometry for 5 mm slices, with a plain warning, but still measures attenuation', () => {
    const f = findings(analyseCtVolume(phantom(5), NC));
    assert.equal(f.morphometry, null);
    assert.equal(f.worstGrade, 0);
    assert.equal(f.worstLevel, null);
    assert.match(f.warnings.join('\n'), /no vertebral heights or fracture grades: slices 5 mm apart are too coarse/);
    assert.equal(f.attenuation?.level, 'L1');
  });

  it('subtracts the phase offset and warns on contrast and on an unknown phase', () => {
    const vol = phantom(3);
    const pv = findings(analyseCtVolume(vol, { phase: 'portal-venous', phaseRecorded: true, phaseOffsetHu: { 'portal-venous': 11 } }));
    assert.equal(pv.attenuation!.adjustedHu, pv.attenuation!.medianHu - 11);
    assert.equal(pv.attenuation!.phase, 'portal-venous');
    assert.match(pv.warnings.join('\n'), /portal-venous contrast: 11\.0 HU subtracted/);
    const unadjusted = findings(analyseCtVolume(vol, { phase: 'portal-venous', phaseRecorded: true }));
    assert.equal(unadjusted.attenuation!.adjustedHu, unadjusted.attenuation!.medianHu);
    assert.match(unadjusted.warnings.join('\n'), /value reported unadjusted/);
    const unknown = findings(analyseCtVolume(vol, { phase: 'unknown', phaseRecorded: false, phaseOffsetHu: { 'portal-venous': 11 } }));
    assert.equal(unknown.attenuation!.adjustedHu, unknown.attenuation!.medianHu);
    assert.match(unknown.warnings.join('\n'), /contrast phase unknown/);
    const agent = findings(analyseCtVolume(vol, { phase: 'unknown', phaseRecorded: true }));
    assert.match(agent.warnings.join('\n'), /contrast agent is recorded but not the phase/);
  });

  it('passes localisation refusals through', () => {
    const lumbar = buildSpinePhantom({ ...DEFAULT_PHANTOM, levels: defaultLevels().slice(0, 3) }).volume;
    const r = analyseCtVolume(lumbar, NC);
    assert.ok(isRefusal(r));
    assert.equal(r.code, 'no-labelling-cue');
  });
});

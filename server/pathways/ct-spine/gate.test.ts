import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../../config.ts';
import { isRefusal } from '../types.ts';
import { analyseCtVolume } from './analyse.ts';
import { ctGate, halfSampleMode } from './gate.ts';
import { measureStudy } from './measure-cli.ts';
import { buildSpinePhantom, DEFAULT_PHANTOM, defaultLevels } from './phantom.ts';
import type { CtFindings } from './types.ts';
import type { CtVolume } from './volume.ts';

const NC = { phase: 'non-contrast', phaseRecorded: false } as const;

function analysed(vol: CtVolume, opts: Parameters<typeof analyseCtVolume>[1] = NC): CtFindings {
  const f = analyseCtVolume(vol, opts);
  assert.ok(!isRefusal(f), JSON.stringify(f));
  return f;
}

/** A wrong rescale intercept: every voxel off by `hu`. */
function shifted(vol: CtVolume, hu: number): CtVolume {
  return { ...vol, hu: Float32Array.from(vol.hu, (v) => v + hu) };
}

describe('CT out-of-distribution gate', () => {
  test('half-sample mode finds the dominant tissue despite a minority of another', () => {
    const xs = [...Array.from({ length: 70 }, (_, i) => 40 + ((i * 7) % 11) - 5), ...Array.from({ length: 30 }, (_, i) => -100 + (i % 5))].sort((a, b) => a - b);
    assert.ok(Math.abs(halfSampleMode(xs) - 40) <= 5, String(halfSampleMode(xs)));
  });

  const phantom = buildSpinePhantom({ ...DEFAULT_PHANTOM, levels: defaultLevels(150) }).volume;

  test('a normal phantom is inside; fat and air are not in its field and do not count against it', () => {
    const f = analysed(phantom);
    assert.ok(f.gate, 'the gate is reported');
    assert.equal(f.gate.outside, false, f.gate.reason ?? '');
    const byName = new Map(f.gate.checks.map((c) => [c.name, c]));
    assert.ok(Math.abs(byName.get('paraspinal muscle')!.value! - 40) <= 8);
    assert.equal(byName.get('subcutaneous fat')!.ok, null);
    assert.equal(byName.get('air outside the body')!.ok, null);
    assert.ok(f.gate.distance <= 1);
  });

  for (const hu of [60, -60]) {
    test(`a rescale intercept off by ${hu > 0 ? '+' : ''}${hu} HU is outside, with the muscle named in the reason`, () => {
      const f = analysed(shifted(phantom, hu));
      assert.equal(f.gate?.outside, true);
      assert.match(f.gate!.reason!, /paraspinal muscle reads -?\d+ HU, outside 0–100 HU — the HU scale may be off/);
      assert.ok(f.gate!.distance > 1);
    });
  }

  test('tube voltage outside 80–140 kVp is outside; inside the range it passes', () => {
    assert.match(analysed(phantom, { ...NC, kvp: 70 }).gate!.reason!, /tube voltage reads 70 kVp, outside 80–140 kVp/);
    assert.equal(analysed(phantom, { ...NC, kvp: 120 }).gate!.outside, false);
  });

  test('pixel spacing beyond 1 mm is outside', () => {
    const f = analysed(phantom);
    const l1 = f.levels.find((l) => l.label === 'L1')!;
    const k = (z: number): number => phantom.z.findIndex((v) => v >= z);
    const site = { sliceFrom: k(l1.zBottom), sliceTo: k(l1.zTop) - 1, box: f.geometry.box, midlineColumn: f.geometry.midlineColumn, level: 'L1' };
    assert.equal(ctGate(phantom, site).outside, false);
    const coarse = ctGate({ ...phantom, spacing: { ...phantom.spacing, row: 1.2, column: 1.2 } }, site);
    assert.equal(coarse.checks.find((c) => c.name === 'pixel spacing')?.ok, false);
    assert.match(coarse.reason!, /pixel spacing reads 1.20 mm, outside 0.40–1.00 mm/);
  });
});

describe('CT gate on the demo CT studies (the service decoders, as measured)', () => {
  const DEMO = join(REPO_ROOT, 'server/sandbox/demo-cohort');
  const truth = (JSON.parse(readFileSync(join(DEMO, 'ct', 'truth.json'), 'utf8')) as { patients: { role: string; study_instance_uid: string }[] }).patients;
  for (const t of truth.filter((p) => p.role !== 'chest-refused')) {
    test(`${t.role}: inside, with fat, muscle and air measured in range; +60 HU intercept error: outside`, async () => {
      const m = await measureStudy(join(DEMO, 'dicom', 'ct', t.study_instance_uid), t.study_instance_uid);
      assert.ok(m.findings && m.volume, JSON.stringify(m.refusal));
      const g = m.findings.gate!;
      assert.equal(g.outside, false, g.reason ?? '');
      for (const name of ['subcutaneous fat', 'paraspinal muscle', 'air outside the body']) assert.equal(g.checks.find((c) => c.name === name)?.ok, true, name);
      const off = analysed(shifted(m.volume, 60));
      assert.equal(off.gate?.outside, true);
      assert.match(off.gate!.reason!, /air outside the body reads -9\d\d HU/);
    });
  }
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRefusal } from '../types.ts';
import { contrastPhaseOf, contrastRecorded, measureTrabecularHu } from './l1-roi.ts';
import { buildSpinePhantom, defaultLevels, DEFAULT_PHANTOM } from './phantom.ts';
import { localiseVertebrae, type SpineLocalisation } from './vertebrae.ts';

function setup(trabecularHu: number, sliceMm: number, metal: string[] = []) {
  const levels = defaultLevels(trabecularHu).map((l) => ({ ...l, metal: metal.includes(l.label) }));
  const { volume } = buildSpinePhantom({ ...DEFAULT_PHANTOM, sliceMm, noiseSd: 25, seed: 7, levels });
  const loc = localiseVertebrae(volume);
  assert.ok(!isRefusal(loc));
  return { volume, loc: loc as SpineLocalisation };
}

describe('L1 trabecular attenuation', () => {
  for (const [hu, sliceMm] of [[95, 2], [180, 3]] as const) {
    it(`recovers a ${hu} HU core within 5 HU under 25 HU noise at ${sliceMm} mm, and bands it by the anchors`, () => {
      const { volume, loc } = setup(hu, sliceMm);
      const r = measureTrabecularHu(volume, loc, { phase: 'non-contrast' });
      assert.ok(!isRefusal(r));
      assert.equal(r.level, 'L1');
      assert.ok(Math.abs(r.medianHu - hu) <= 5, `median ${r.medianHu}`);
      assert.ok(Math.abs(r.sdHu - 25) <= 5, `sd ${r.sdHu} (cortex or the basivertebral vein in the ROI would inflate it)`);
      assert.ok(Math.abs(r.meanHu - hu) <= 3, `mean ${r.meanHu} (the phantom's vein would pull it down)`);
      assert.ok(r.p25 < r.medianHu && r.medianHu < r.p75);
      assert.equal(r.band, hu <= 110 ? 'low (≤ 110 HU)' : 'normal (> 160 HU)');
      assert.deepEqual(r.warnings, []);
    });
  }

  it('skips a level with metal and a caller-excluded level, falling back in order, and warns on contrast', () => {
    const { volume, loc } = setup(130, 2, ['L1']);
    const r = measureTrabecularHu(volume, loc, { exclude: ['T12'], phase: 'portal-venous' });
    assert.ok(!isRefusal(r));
    assert.equal(r.level, 'L2');
    assert.deepEqual(r.excluded.map((e) => e.level), ['L1', 'T12']);
    assert.match(r.excluded[0]!.reason, /metal/);
    assert.match(r.warnings.join(), /L2 was measured instead/);
    assert.match(r.warnings.join(), /portal-venous contrast/);
    const unknown = measureTrabecularHu(volume, loc, { order: ['L2'] });
    assert.ok(!isRefusal(unknown));
    assert.match(unknown.warnings.join(), /contrast phase unknown/);
    const none = measureTrabecularHu(volume, loc, { order: ['L1', 'T12'], exclude: ['T12'] });
    assert.ok(isRefusal(none));
    assert.equal(none.code, 'no-usable-level');
  });

  it('reads the contrast phase from the series description, else unknown', () => {
    const ds = (desc: string, agent?: string) => ({
      '0008103E': { vr: 'LO', Value: [desc] },
      ...(agent ? { '00180010': { vr: 'LO', Value: [agent] } } : {}),
    });
    assert.deepEqual(
      ['ABD/PELVIS PORTAL VENOUS 1.0 B30f', 'Abdomen NC 2mm', 'CTA arterial', 'Delayed 5 min', 'Abdomen 1.0', 'non-contrast'].map((d) => contrastPhaseOf(ds(d))),
      ['portal-venous', 'non-contrast', 'arterial', 'delayed', 'unknown', 'non-contrast'],
    );
    assert.equal(contrastRecorded(ds('Abdomen', 'Omnipaque 350')), true);
    assert.equal(contrastRecorded(ds('Abdomen')), false);
  });
});

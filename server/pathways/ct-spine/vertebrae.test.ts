import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRefusal } from '../types.ts';
import { buildSpinePhantom, defaultLevels, DEFAULT_PHANTOM } from './phantom.ts';
import { localiseVertebrae } from './vertebrae.ts';

describe('vertebral body localisation and labelling', () => {
  for (const sliceMm of [2, 5]) {
    it(`labels T11–L4 from the ribs at ${sliceMm} mm slices, with z extents within a slice of the truth`, () => {
      const { volume, truth } = buildSpinePhantom({ ...DEFAULT_PHANTOM, sliceMm, levels: defaultLevels(110) });
      const loc = localiseVertebrae(volume);
      assert.ok(!isRefusal(loc), JSON.stringify(loc));
      assert.deepEqual(loc.vertebrae.map((v) => v.label), truth.map((t) => t.label));
      assert.deepEqual(loc.vertebrae.map((v) => v.ribs), [false, false, false, false, true, true]);
      loc.vertebrae.forEach((v, i) => {
        assert.ok(Math.abs(v.zBottom - truth[i]!.zBottom) <= sliceMm, `${v.label} bottom ${v.zBottom} vs ${truth[i]!.zBottom}`);
        assert.ok(Math.abs(v.zTop - truth[i]!.zTop) <= sliceMm, `${v.label} top ${v.zTop} vs ${truth[i]!.zTop}`);
      });
      assert.ok(Math.abs(loc.midlineColumn - (volume.columns - 1) / 2) <= 1, `midline ${loc.midlineColumn}`);
    });
  }

  it('labels T11–L4 on 0.625 mm slices with sharp-kernel noise (65 HU), giving levels in the thin volume\'s slices', () => {
    // Localised on averaged slices: on the thin slices themselves the noise crosses the bone thresholds in soft
    // tissue, the body box widens and the rib cue is lost (the earlier rule refused this as no-labelling-cue).
    const { volume, truth } = buildSpinePhantom({ ...DEFAULT_PHANTOM, sliceMm: 0.625, noiseSd: 65, levels: defaultLevels(60) });
    const loc = localiseVertebrae(volume);
    assert.ok(!isRefusal(loc), JSON.stringify(loc));
    assert.deepEqual(loc.vertebrae.map((v) => v.label), truth.map((t) => t.label));
    loc.vertebrae.forEach((v, i) => {
      assert.ok(v.sliceTo < volume.slices && v.sliceFrom <= v.sliceTo);
      assert.equal(v.zBottom, volume.z[v.sliceFrom]! - volume.spacing.slice / 2);
      assert.ok(Math.abs(v.zBottom - truth[i]!.zBottom) <= 2 && Math.abs(v.zTop - truth[i]!.zTop) <= 2, `${v.label} ${v.zBottom}–${v.zTop}`);
    });
  });

  it('refuses a field without rib-bearing levels, and one without L1 and L2', () => {
    const lumbar = buildSpinePhantom({ ...DEFAULT_PHANTOM, levels: defaultLevels().slice(0, 3) });
    const a = localiseVertebrae(lumbar.volume);
    assert.ok(isRefusal(a));
    assert.equal(a.code, 'no-labelling-cue');
    const thoracic = buildSpinePhantom({ ...DEFAULT_PHANTOM, levels: defaultLevels().slice(4) });
    const b = localiseVertebrae(thoracic.volume);
    assert.ok(isRefusal(b));
    assert.equal(b.code, 'l1-l2-not-in-field');
  });

  it('refuses a volume with no spine', () => {
    const { volume } = buildSpinePhantom({ ...DEFAULT_PHANTOM, levels: defaultLevels().slice(0, 2) });
    volume.hu.fill(40);
    const r = localiseVertebrae(volume);
    assert.ok(isRefusal(r));
    assert.equal(r.code, 'no-spine');
  });
});

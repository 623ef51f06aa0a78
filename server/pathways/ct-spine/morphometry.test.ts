import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRefusal } from '../types.ts';
import { genantGrade, measureMorphometry } from './morphometry.ts';
import { BODY, buildSpinePhantom, defaultLevels, DEFAULT_PHANTOM } from './phantom.ts';
import { localiseVertebrae } from './vertebrae.ts';

/** The phantom's top surface rises linearly from the anterior to the posterior edge: height at a fraction u of depth. */
const wedgeHeight = (hp: number, fraction: number, u: number): number => hp * fraction + (hp - hp * fraction) * u;

describe('vertebral morphometry and Genant grade', () => {
  it('grades by the anchor thresholds', () => {
    assert.deepEqual([0.1, 0.199, 0.2, 0.25, 0.26, 0.4, 0.41].map(genantGrade), [0, 0, 1, 1, 2, 2, 3]);
  });

  // Anterior fractions whose measured ratio (at 15 %/85 % of depth) lies well inside a grade band: 0.54 → 3, 0.70 → 2.
  for (const [fraction, grade] of [[0.4, 3], [0.6, 2]] as const) {
    it(`finds a wedge L1 (anterior ${Math.round(fraction * 100)} % of posterior) as grade ${grade}, other levels grade 0`, () => {
      // L2–T11: L1 with both neighbours, T12 for the rib cue; fewer levels keep the 1 mm phantom small.
      const levels = defaultLevels(110).slice(2).map((l) => (l.label === 'L1' ? { ...l, anteriorFraction: fraction } : l));
      const { volume } = buildSpinePhantom({ ...DEFAULT_PHANTOM, sliceMm: 1, levels });
      const loc = localiseVertebrae(volume);
      assert.ok(!isRefusal(loc));
      const m = measureMorphometry(volume, loc);
      assert.ok(!isRefusal(m));
      const l1 = m.find((x) => x.level === 'L1')!;
      // Heights are measured at 15 % and 85 % of the body's depth, so the expected ratio is the surface's there.
      const depthMm = (loc.box.r1 - loc.box.r0) * volume.spacing.row;
      assert.ok(Math.abs(depthMm - 2 * BODY.b) <= 2, `body depth ${depthMm}`);
      const expected = wedgeHeight(26, fraction, 0.15) / wedgeHeight(26, fraction, 0.85);
      assert.ok(Math.abs(l1.ratios.wedge - expected) <= 0.04, `wedge ratio ${l1.ratios.wedge} vs ${expected}`);
      assert.equal(l1.grade, grade);
      assert.equal(l1.shape, 'wedge');
      for (const x of m.filter((y) => y.level !== 'L1')) {
        assert.equal(x.grade, 0, `${x.level} ${JSON.stringify(x.ratios)}`);
        const truthHp = levels.find((l) => l.label === x.level)!.height;
        assert.ok(Math.abs(x.hp - truthHp) <= 2, `${x.level} Hp ${x.hp} vs ${truthHp}`);
      }
    });
  }

  it('refuses slices too thick for heights', () => {
    const { volume } = buildSpinePhantom({ ...DEFAULT_PHANTOM, sliceMm: 5, levels: defaultLevels() });
    const loc = localiseVertebrae(volume);
    assert.ok(!isRefusal(loc));
    const m = measureMorphometry(volume, loc);
    assert.ok(isRefusal(m));
    assert.equal(m.code, 'slices-too-thick');
  });
});

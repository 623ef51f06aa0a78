import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRefusal } from '../types.ts';
import { genantGrade, measureMorphometry } from './morphometry.ts';
import { BODY, buildSpinePhantom, defaultLevels, DEFAULT_PHANTOM } from './phantom.ts';
import { localiseVertebrae } from './vertebrae.ts';

describe('vertebral morphometry and Genant grade', () => {
  it('grades by the anchor thresholds', () => {
    assert.deepEqual([0.1, 0.199, 0.2, 0.25, 0.26, 0.4, 0.41].map(genantGrade), [0, 0, 1, 1, 2, 2, 3]);
  });

  // Anterior fractions well inside a grade band: 0.4 (60 % loss) → 3, 0.7 (30 % loss) → 2.
  for (const [fraction, grade] of [[0.4, 3], [0.7, 2]] as const) {
    it(`finds a wedge L1 (anterior ${Math.round(fraction * 100)} % of posterior) as grade ${grade}, other levels grade 0`, () => {
      // L2–T11: L1 with both neighbours, T12 for the rib cue; fewer levels keep the 1 mm phantom small.
      const levels = defaultLevels(110).slice(2).map((l) => (l.label === 'L1' ? { ...l, anteriorFraction: fraction } : l));
      const { volume } = buildSpinePhantom({ ...DEFAULT_PHANTOM, sliceMm: 1, levels });
      const loc = localiseVertebrae(volume);
      assert.ok(!isRefusal(loc));
      const m = measureMorphometry(volume, loc);
      assert.ok(!isRefusal(m));
      const l1 = m.find((x) => x.level === 'L1')!;
      // The phantom's top surface rises linearly from the anterior to the posterior wall, and the anterior and
      // posterior heights are taken at the walls, so the wedge ratio is the phantom's fraction.
      const depthMm = (loc.box.r1 - loc.box.r0) * volume.spacing.row;
      assert.ok(Math.abs(depthMm - 2 * BODY.b) <= 2, `body depth ${depthMm}`);
      assert.ok(Math.abs(l1.ratios.wedge - fraction) <= 0.04, `wedge ratio ${l1.ratios.wedge} vs ${fraction}`);
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

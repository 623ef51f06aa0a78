import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeFrame } from './decode/index.ts';
import { parseDicomFile } from './dicom.ts';
import { PreprocessError } from './errors.ts';
import { checkRecipe, preprocessPixels, type PreprocessRecipe } from './preprocess.ts';
import { demoCohortFiles, fixturePath, REPO } from '../../test/support/dicom-fixtures.ts';

const DIR = join(REPO, 'test/fixtures/preprocess');
const recipe = JSON.parse(readFileSync(join(DIR, 'recipe.json'), 'utf8')) as PreprocessRecipe;

interface ParityFixture {
  dicom: string;
  transferSyntax: string;
  photometric: string;
  laterality: string;
  shape: [number, number];
  tensorBase64: string;
}

async function preprocessFile(path: string, r: PreprocessRecipe = recipe): Promise<Float32Array> {
  const file = parseDicomFile(readFileSync(path));
  const pm = file.pixelModule;
  const stored = await decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
  return preprocessPixels({ stored, pixelModule: pm, laterality: file.string('00200062') ?? file.string('00200060') }, r);
}

describe('preprocessing parity with frcds/preprocess.py (issue 3, item 7a)', () => {
  const fixtures = readdirSync(DIR).filter((f) => f.endsWith('.json') && f !== 'recipe.json').sort();

  it('has parity fixtures, including demo-cohort files once the cohort is committed (models/training/preprocess_fixtures.py)', () => {
    assert.ok(fixtures.length >= 1, 'no fixtures in test/fixtures/preprocess');
    if (demoCohortFiles().length > 0) {
      assert.ok(fixtures.filter((f) => f.startsWith('demo-')).length >= 3, 'demo cohort present but fewer than 3 demo parity fixtures: regenerate them');
    }
  });

  it('is sensitive to the things it must get right (wrong laterality or photometric moves the tensor)', async () => {
    const path = fixturePath('parity-jpeg-ls-12-mono1-left.dcm');
    const file = parseDicomFile(readFileSync(path));
    const pm = file.pixelModule;
    const stored = await decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
    const good = preprocessPixels({ stored, pixelModule: pm, laterality: 'L' }, recipe);
    const mad = (a: Float32Array) => a.reduce((s, x, i) => s + Math.abs(x - good[i]!), 0) / a.length;
    assert.ok(mad(preprocessPixels({ stored, pixelModule: pm, laterality: 'R' }, recipe)) > 1e-2);
    assert.ok(mad(preprocessPixels({ stored, pixelModule: { ...pm, photometricInterpretation: 'MONOCHROME2' }, laterality: 'L' }, recipe)) > 1e-2);
  });

  for (const name of fixtures) {
    it(`${name}: TypeScript tensor equals Python's (mean |Δ| ≤ 1e-3)`, async () => {
      const fx = JSON.parse(readFileSync(join(DIR, name), 'utf8')) as ParityFixture;
      const b = Buffer.from(fx.tensorBase64, 'base64');
      const expected = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      const ours = await preprocessFile(join(REPO, fx.dicom));
      assert.equal(ours.length, fx.shape[0] * fx.shape[1]);
      let sum = 0;
      let max = 0;
      for (let i = 0; i < ours.length; i++) {
        const d = Math.abs(ours[i]! - expected[i]!);
        sum += d;
        max = Math.max(max, d);
      }
      const mad = sum / ours.length;
      assert.ok(mad <= 1e-3, `${fx.dicom} (${fx.transferSyntax} ${fx.photometric} ${fx.laterality}): mean |Δ| = ${mad}, max ${max}`);
    });
  }
});

describe('preprocessing behaviour', () => {
  it('reads its constants from the recipe: a different S gives a different output size', async () => {
    const r = structuredClone(recipe);
    r.constants = { ...r.constants, S: 64, LO_INDEX: 40, HI_INDEX: 4055 };
    assert.equal((await preprocessFile(fixturePath('explicit-le-16.dcm'), r)).length, 64 * 64);
  });

  it('refuses a recipe it does not implement', () => {
    assert.throws(() => checkRecipe({ ...recipe, name: 'something-else' }), PreprocessError);
    assert.throws(() => checkRecipe({ ...recipe, steps: recipe.steps.slice(1) }), PreprocessError);
    assert.throws(() => checkRecipe({ ...recipe, constants: { ...recipe.constants, HI_INDEX: 1e9 } }), PreprocessError);
  });

  it('mirrors left hips: L equals the column-mirrored image processed as R', async () => {
    const file = parseDicomFile(readFileSync(fixturePath('explicit-le-16.dcm')));
    const pm = file.pixelModule;
    const stored = (await decodeFrame(file.transferSyntaxUid, file.frame(0), pm)) as Uint16Array;
    const mirrored = new Uint16Array(stored.length);
    for (let y = 0; y < pm.rows; y++) for (let x = 0; x < pm.columns; x++) mirrored[y * pm.columns + x] = stored[y * pm.columns + (pm.columns - 1 - x)]!;
    const a = preprocessPixels({ stored, pixelModule: pm, laterality: 'L' }, recipe);
    const b = preprocessPixels({ stored: mirrored, pixelModule: pm, laterality: 'R' }, recipe);
    assert.deepEqual(a, b);
  });

  it('rejects colour, missing spacing and too-coarse spacing with PreprocessError', async () => {
    const file = parseDicomFile(readFileSync(fixturePath('explicit-le-16.dcm')));
    const pm = file.pixelModule;
    const stored = await decodeFrame(file.transferSyntaxUid, file.frame(0), pm);
    assert.throws(() => preprocessPixels({ stored, pixelModule: { ...pm, photometricInterpretation: 'RGB' }, laterality: 'R' }, recipe), PreprocessError);
    assert.throws(() => preprocessPixels({ stored, pixelModule: { ...pm, pixelSpacingMm: undefined }, laterality: 'R' }, recipe), PreprocessError);
    assert.throws(() => preprocessPixels({ stored, pixelModule: { ...pm, pixelSpacingMm: [5, 5] }, laterality: 'R' }, recipe), /too coarse/);
  });
});

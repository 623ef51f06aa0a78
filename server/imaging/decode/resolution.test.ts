/**
 * Reduced-resolution decoding: the level rule, the codestream reading it relies on, and the decoded pixels against
 * the reference decoder (OpenJPEG's opj_decompress -r, from Debian's libopenjp2-tools, which .ci/setup installs).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseDicomFile, type DicomFile } from '../dicom.ts';
import type { PixelModule } from '../pixel-module.ts';
import { TS } from '../transfer-syntax.ts';
import { ImagingPool, inlineImaging, withResolution } from '../worker-pool.ts';
import { decodeFrame, decodeFrameAt, REDUCIBLE } from './index.ts';
import { readJ2kDecompositionLevels } from './jpeg2000.ts';
import { chooseReductionLevel, reducedExtent, reducedPixelModule, resolutionNeedOf, strictestNeed, type ResolutionNeed } from './resolution.ts';
import { fixturePath, REPO } from '../../../test/support/dicom-fixtures.ts';

/** The demo cohort's largest JPEG 2000 radiograph: 2110 × 2032, 0.148 mm, 12-bit, 5 decompositions. */
const LARGE_J2K = join(REPO, 'server/sandbox/demo-cohort/dicom/2.25.194028265246438451854232190121438986035/2.25.42896757839887391941928359406833499886/2.25.68054873820987736307455184883370014097.dcm');
const NEED: ResolutionNeed = resolutionNeedOf({ FOV_MM: 200, S: 128 });
const load = (p: string): DicomFile => parseDicomFile(readFileSync(p));

const pm = (rows: number, columns: number, spacing?: number, samplesPerPixel = 1): PixelModule => ({
  rows, columns, samplesPerPixel, bitsAllocated: 16, bitsStored: 12, highBit: 11, pixelRepresentation: 0,
  photometricInterpretation: samplesPerPixel === 1 ? 'MONOCHROME2' : 'RGB', planarConfiguration: 0, numberOfFrames: 1,
  rescaleSlope: 1, rescaleIntercept: 0, ...(spacing ? { pixelSpacingMm: [spacing, spacing] as [number, number] } : {}),
});

/** Pixels of `opj_decompress -r level` (PGM, big-endian 16-bit). */
function referenceReduced(codestream: Uint8Array, level: number): { width: number; height: number; pixels: number[] } {
  const dir = mkdtempSync(join(tmpdir(), 'frcds-j2k-'));
  try {
    writeFileSync(join(dir, 'in.j2k'), codestream);
    execFileSync('opj_decompress', ['-i', join(dir, 'in.j2k'), '-o', join(dir, 'out.pgm'), '-r', String(level)], { stdio: 'ignore' });
    const pgm = readFileSync(join(dir, 'out.pgm'));
    const m = /^P5\s+(?:#[^\n]*\n)?(\d+)\s+(\d+)\s+(\d+)\s/.exec(pgm.subarray(0, 64).toString('latin1'));
    assert.ok(m, 'opj_decompress wrote a PGM');
    const [width, height, max] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const bytes = max > 255 ? 2 : 1;
    const start = pgm.length - width * height * bytes;
    const pixels = Array.from({ length: width * height }, (_, i) => (bytes === 2 ? pgm.readUInt16BE(start + 2 * i) : pgm[start + i]!));
    return { width, height, pixels };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the resolution rule (chooseReductionLevel)', () => {
  it('keeps ≥ 2 decoded pixels per working pixel and a ≥ 512 px longest side, at most the codestream\'s levels', () => {
    // 200 mm at 0.148 mm = 1351 px: level 2 leaves 338 ≥ 256 px and 528 px ≥ 512; level 3 would leave 169 px.
    assert.equal(chooseReductionLevel(pm(2110, 2032, 0.148), NEED, 5), 2);
    assert.equal(chooseReductionLevel(pm(2110, 2032, 0.148), NEED, 1), 1, 'never beyond the decompositions present');
    // A 3000 × 2500 detector at 0.1 mm: 2000 px field → level 2 (500 px); level 3 would leave 250 < 256.
    assert.equal(chooseReductionLevel(pm(3000, 2500, 0.1), NEED, 5), 2);
    // 616 px at 0.34 mm: level 1 keeps 294 px across the field but only 308 px for the display → full decode.
    assert.equal(chooseReductionLevel(pm(616, 616, 0.3404), NEED, 5), 0);
    assert.equal(chooseReductionLevel(pm(616, 616, 0.3404), { ...NEED, minLongestSide: 300 }, 5), 1);
    // Coarse spacing: 200 mm at 0.7 mm = 286 px; level 1 would leave 143 < 256.
    assert.equal(chooseReductionLevel(pm(4000, 4000, 0.7), NEED, 5), 0);
  });

  it('decodes in full without a pixel spacing, for colour images and for no levels', () => {
    assert.equal(chooseReductionLevel(pm(2110, 2032), NEED, 5), 0);
    assert.equal(chooseReductionLevel(pm(2110, 2032, 0.148, 3), NEED, 5), 0);
    assert.equal(chooseReductionLevel(pm(2110, 2032, 0.148), NEED, 0), 0);
  });

  it('sizes and spacing of a reduced level follow ISO/IEC 15444-1 B.5 (ceil over the image area)', () => {
    assert.equal(reducedExtent(2110, 0, 2), 528);
    assert.equal(reducedExtent(67, 0, 1), 34);
    assert.equal(reducedExtent(100, 3, 2), 25 - 1);
    const r = reducedPixelModule(pm(2110, 2032, 0.148), 2, 528, 508);
    assert.deepEqual([r.rows, r.columns, r.pixelSpacingMm], [528, 508, [0.592, 0.592]]);
    assert.deepEqual(r.reducedFrom, { level: 2, rows: 2110, columns: 2032, pixelSpacingMm: [0.148, 0.148] });
  });

  it('several models: the finest working spacing and the strictest margins win', () => {
    const n = strictestNeed([NEED, { fovMm: 100, size: 128, minLongestSide: 256 }, { fovMm: 200, size: 64, minPixelsPerBin: 3 }]);
    assert.deepEqual(n, { fovMm: 100, size: 128, minPixelsPerBin: 3, minLongestSide: 512 });
    assert.equal(strictestNeed([]), undefined);
  });
});

describe('JPEG 2000 at a reduced resolution level', () => {
  it('reads the number of decompositions from COD (opj_compress default: 5)', () => {
    for (const f of ['jpeg2000-90-12.dcm', 'jpeg2000-90-16.dcm', 'jpeg2000-91-12.dcm']) {
      assert.equal(readJ2kDecompositionLevels(load(fixturePath(f)).frame(0)), 5, f);
    }
    assert.equal(readJ2kDecompositionLevels(load(LARGE_J2K).frame(0)), 5);
    assert.equal(readJ2kDecompositionLevels(Uint8Array.from([0xff, 0xd8, 0xff, 0xd9])), undefined, 'not a codestream');
  });

  it('equals the reference decoder at that level bit for bit, with the pixel module of the decoded array', async () => {
    const file = load(LARGE_J2K);
    const r = await decodeFrameAt(file.transferSyntaxUid, file.frame(0), file.pixelModule, NEED);
    assert.equal(r.level, 2);
    assert.deepEqual([r.pixelModule.rows, r.pixelModule.columns], [528, 508]);
    assert.deepEqual(r.pixelModule.pixelSpacingMm, [0.592, 0.592]);
    assert.deepEqual(r.pixelModule.reducedFrom, { level: 2, rows: 2110, columns: 2032, pixelSpacingMm: [0.148, 0.148] });
    assert.equal(r.stored.length, 528 * 508);
    assert.equal(r.stored.constructor, Uint16Array);
    const ref = referenceReduced(file.frame(0), 2);
    assert.deepEqual([ref.height, ref.width], [528, 508]);
    assert.deepEqual(Array.from(r.stored), ref.pixels);
    // Lossy .91 and a level chosen by a looser need, on the small fixtures.
    for (const f of ['jpeg2000-91-12.dcm', 'jpeg2000-90-16.dcm']) {
      const small = load(fixturePath(f));
      const got = await decodeFrameAt(small.transferSyntaxUid, small.frame(0), small.pixelModule, { fovMm: 10, size: 4, minPixelsPerBin: 1, minLongestSide: 8 });
      assert.ok(got.level >= 1, `${f}: reduced`);
      const want = referenceReduced(small.frame(0), got.level);
      assert.deepEqual([got.pixelModule.rows, got.pixelModule.columns], [want.height, want.width], f);
      assert.deepEqual(Array.from(got.stored), want.pixels, f);
    }
  });

  it('keeps the full decode when no level meets the need, and for every other syntax', async () => {
    const small = load(fixturePath('jpeg2000-90-12.dcm'));
    const r = await decodeFrameAt(small.transferSyntaxUid, small.frame(0), small.pixelModule, NEED);
    assert.equal(r.level, 0);
    assert.equal(r.pixelModule, small.pixelModule);
    assert.deepEqual(r.stored, await decodeFrame(small.transferSyntaxUid, small.frame(0), small.pixelModule));
    assert.deepEqual(REDUCIBLE, [TS.jpeg2000Lossless, TS.jpeg2000]);
    const jls = load(fixturePath('jpeg-ls-80-12.dcm'));
    const j = await decodeFrameAt(jls.transferSyntaxUid, jls.frame(0), jls.pixelModule, { fovMm: 10, size: 4, minPixelsPerBin: 1, minLongestSide: 1 });
    assert.equal(j.level, 0);
  });
});

describe('reduced decoding through the imaging executors', () => {
  const pool = new ImagingPool({ size: 1 });
  after(() => pool.close());

  it('the worker pool returns the same array and pixel module as inline decoding', async () => {
    const file = load(LARGE_J2K);
    const inline = await inlineImaging.decodeFrameAt(file.transferSyntaxUid, file.frame(0), file.pixelModule, NEED);
    const pooled = await pool.decodeFrameAt(file.transferSyntaxUid, new Uint8Array(file.frame(0)), file.pixelModule, NEED);
    assert.equal(pooled.level, 2);
    assert.deepEqual(pooled.pixelModule, inline.pixelModule);
    assert.deepEqual(pooled.stored, inline.stored);
  });

  it('withResolution applies its need when the caller names none; without a need it is the executor itself', async () => {
    const file = load(LARGE_J2K);
    const wrapped = withResolution(pool, NEED);
    const r = await wrapped.decodeFrameAt(file.transferSyntaxUid, new Uint8Array(file.frame(0)), file.pixelModule);
    assert.equal(r.level, 2);
    const own = await wrapped.decodeFrameAt(file.transferSyntaxUid, new Uint8Array(file.frame(0)), file.pixelModule, { ...NEED, minLongestSide: 1024 });
    assert.equal(own.level, 1, 'the caller\'s own need wins');
    assert.equal(withResolution(pool, undefined), pool);
  });
});

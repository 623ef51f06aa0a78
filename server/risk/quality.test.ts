/** Image-quality messages never read as a contradiction ("0.40 mm > 0.4 mm"); the saturation check and electronic shutters. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { StoredArray } from '../imaging/decode/types.ts';
import type { PixelModule } from '../imaging/pixel-module.ts';
import { borderRegionArea, checkImageQuality, distinct, QUALITY_THRESHOLDS } from './quality.ts';

describe('quality message numbers', () => {
  test('a value just over a limit is written with the digits that show it is over', () => {
    assert.equal(distinct(0.4003, 0.4), '0.4003');
    assert.equal(distinct(0.401, 0.4), '0.401');
    assert.equal(distinct(0.5, 0.4), '0.50');
    assert.equal(distinct(0.62519, 0.4), '0.63');
  });
});

const ROWS = 240;
const COLS = 200;
const MAX12 = 4095;

function pixelModule(o: Partial<PixelModule> = {}): PixelModule {
  return {
    rows: ROWS, columns: COLS, samplesPerPixel: 1, bitsAllocated: 16, bitsStored: 12, highBit: 11, pixelRepresentation: 0,
    photometricInterpretation: 'MONOCHROME2', planarConfiguration: 0, numberOfFrames: 1, rescaleSlope: 1, rescaleIntercept: 0,
    pixelSpacingMm: [0.15, 0.15], ...o,
  };
}

/** Whether (r, c) lies in the exposed field: a rectangle inset from the edges and rotated by 2° about the centre. */
function inField(r: number, c: number): boolean {
  const a = (2 * Math.PI) / 180;
  const y = r - ROWS / 2;
  const x = c - COLS / 2;
  const yr = Math.cos(a) * y - Math.sin(a) * x + ROWS / 2;
  const xr = Math.sin(a) * y + Math.cos(a) * x + COLS / 2;
  return yr >= 22 && yr < ROWS - 15 && xr >= 25 && xr < COLS - 12;
}

/**
 * A textured 12-bit radiograph-like frame (values 300..3700, none at 0 or 4095) with, when `shutter`, a black
 * electronic shutter (stored 0) over the unexposed border; `edit` then changes pixels (clipped regions).
 */
function frame(shutter: boolean, edit?: (px: Uint16Array) => void): Uint16Array {
  const px = new Uint16Array(ROWS * COLS);
  let s = 12345;
  for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const noise = ((s >>> 8) % 400) - 200;
    const v = 2000 + 1200 * Math.sin(r / 17) * Math.cos(c / 23) + noise;
    px[r * COLS + c] = shutter && !inField(r, c) ? 0 : Math.round(v);
  }
  edit?.(px);
  return px;
}

/** A disc of `value` inside the field (≈ 700 pixels, > 2 % of the exposed area). */
function disc(value: number): (px: Uint16Array) => void {
  return (px) => {
    for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) if ((r - 120) ** 2 + (c - 100) ** 2 <= 15 ** 2) px[r * COLS + c] = value;
  };
}

/** Share of the exposed field (known from its geometry, not from a fill) at the frame's extreme stored values. */
function inFieldExtremes(px: Uint16Array): number {
  const mn = px.reduce((a, v) => Math.min(a, v), Infinity);
  const mx = px.reduce((a, v) => Math.max(a, v), -Infinity);
  let exposed = 0;
  let at = 0;
  for (let i = 0; i < px.length; i++) {
    if (!inField(Math.floor(i / COLS), i % COLS)) continue;
    exposed++;
    if (px[i] === mn || px[i] === mx) at++;
  }
  return at / exposed;
}

const invert = (px: Uint16Array): Uint16Array => px.map((v) => MAX12 - v);

function saturation(stored: StoredArray, pm: PixelModule = pixelModule()): { passed: boolean; value: number } {
  const q = checkImageQuality(stored, pm, new Float32Array(64), 8, 'R').find((x) => x.check === 'saturation')!;
  return { passed: q.passed, value: q.value! };
}

describe('saturation check and electronic shutters', () => {
  test('a black shutter over a rotated, inset border is not clipping', () => {
    const px = frame(true);
    const shutterShare = px.filter((v) => v === 0).length / px.length;
    assert.ok(shutterShare > 0.2, `the shutter covers ${shutterShare} of the frame`);
    const s = saturation(px);
    assert.equal(s.passed, true, `saturated ${s.value}`);
    assert.equal(s.value, inFieldExtremes(px));
    assert.ok(s.value < 1e-3);
  });

  test('the same frame with a clipped blob inside the field fails, as a share of the exposed area', () => {
    for (const value of [0, MAX12]) {
      const px = frame(true, disc(value));
      const s = saturation(px);
      assert.equal(s.passed, false, `blob at ${value}: saturated ${s.value}`);
      assert.ok(Math.abs(s.value - inFieldExtremes(px)) < 1e-12, `${s.value} vs ${inFieldExtremes(px)}`);
      assert.ok(s.value > QUALITY_THRESHOLDS.maxSaturated);
    }
  });

  test('clipping without a shutter still fails: a blob inside, or a white band at the border', () => {
    assert.equal(saturation(frame(false, disc(0))).passed, false);
    assert.equal(saturation(frame(false, disc(MAX12))).passed, false);
    // White is never a shutter: a band clipped to white along the top edge stays clipping.
    const band = frame(false, (px) => px.fill(MAX12, 0, 10 * COLS));
    const s = saturation(band);
    assert.equal(s.passed, false);
    assert.ok(s.value >= 10 / ROWS && s.value < 10 / ROWS + 1e-3, String(s.value));
    assert.equal(saturation(frame(false)).passed, true);
  });

  test('the documented trade-off: black clipping connected to the border reads as a shutter', () => {
    const band = frame(false, (px) => px.fill(0, 0, 10 * COLS));
    assert.equal(saturation(band).passed, true);
  });

  test('MONOCHROME1: the black shutter is the maximum stored value; a border at the minimum (white) is clipping', () => {
    const mono1 = pixelModule({ photometricInterpretation: 'MONOCHROME1' });
    assert.equal(saturation(invert(frame(true)), mono1).passed, true);
    assert.equal(saturation(invert(frame(true, disc(0))), mono1).passed, false);
    // Read as MONOCHROME2, the same stored shutter would be white, hence clipping.
    assert.equal(saturation(invert(frame(true)), pixelModule()).passed, false);
    const whiteBand = invert(frame(false, (px) => px.fill(MAX12, 0, 10 * COLS)));
    assert.equal(saturation(whiteBand, mono1).passed, false);
  });

  test('the shutter is found through the bit mask and in signed frames', () => {
    // Bits above BitsStored are not pixel data: a shutter written as 0xF000 is still stored 0.
    const masked = frame(true);
    for (let i = 0; i < masked.length; i += 3) masked[i]! |= 0xf000;
    assert.equal(saturation(masked).passed, true);
    assert.equal(saturation(frame(true, disc(0)).map((v, i) => (i % 3 === 0 ? v | 0xf000 : v))).passed, false);
    const signedPm = pixelModule({ bitsStored: 16, highBit: 15, pixelRepresentation: 1 });
    const signed = Int16Array.from(frame(true), (v) => (v === 0 ? -32768 : v - 2048));
    assert.equal(saturation(signed, signedPm).passed, true);
    const signedBlob = Int16Array.from(frame(true, disc(0)), (v) => (v === 0 ? -32768 : v - 2048));
    assert.equal(saturation(signedBlob, signedPm).passed, false);
  });

  test('a frame of one constant value has no exposed area and fails', () => {
    const s = saturation(new Uint16Array(ROWS * COLS));
    assert.deepEqual(s, { passed: false, value: 1 });
  });
});

describe('border region fill', () => {
  // 5 × 6 grid; 0 marks the value filled.
  const grid = [
    0, 0, 7, 7, 7, 0,
    7, 0, 7, 0, 7, 7,
    7, 7, 7, 0, 7, 7,
    0, 7, 0, 0, 7, 0,
    0, 7, 7, 7, 7, 0,
  ];
  const bin = (i: number): number => grid[i]!;
  const count = grid.filter((v) => v === 0).length;

  test('counts only the 4-connected regions that touch the border', () => {
    // border-connected: (0,0),(0,1),(1,1) · (0,5) · (3,0),(4,0) · (3,5),(4,5); the inner (1,3),(2,3),(3,2),(3,3) is enclosed
    assert.equal(borderRegionArea(bin, 0, count, 5, 6), 8);
  });

  test('a region reached only diagonally from the border is not filled', () => {
    const g = [7, 7, 7, 7, 0, 7, 7, 7, 0];
    assert.equal(borderRegionArea((i) => g[i]!, 0, 2, 3, 3), 1);
  });

  test('nothing at the value on the border: nothing filled', () => {
    assert.equal(borderRegionArea(bin, 5, 0, 5, 6), 0);
    assert.equal(borderRegionArea((i) => (i === 7 ? 0 : 1), 0, 1, 3, 5), 0);
  });
});

describe('contrast and hardware percentiles are those of the exposed image', () => {
  /** A flat field: values 1900..2100 (5 % of the 12-bit range) inside the field, a black shutter outside. */
  const flat = (shutter: boolean): Uint16Array => {
    const px = new Uint16Array(ROWS * COLS);
    for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) px[r * COLS + c] = shutter && !inField(r, c) ? 0 : 1900 + ((r * 7 + c * 13) % 201);
    return px;
  };
  const check = (px: Uint16Array, name: string): { passed: boolean; value: number } => {
    const q = checkImageQuality(px, pixelModule(), new Float32Array(64), 8, 'R').find((x) => x.check === name)!;
    return { passed: q.passed, value: q.value! };
  };
  test('a low-contrast image behind a black shutter fails the contrast check, as it does without the shutter', () => {
    const without = check(flat(false), 'contrast');
    const behind = check(flat(true), 'contrast');
    assert.equal(without.passed, false);
    assert.equal(behind.passed, false, `range ${behind.value}`);
    assert.ok(Math.abs(behind.value - without.value) < 0.005, `${behind.value} vs ${without.value}`);
  });
  test('a normal image behind a black shutter passes contrast and hardware', () => {
    assert.equal(check(frame(true), 'contrast').passed, true);
    assert.equal(check(frame(true), 'hardware').passed, true);
  });
});

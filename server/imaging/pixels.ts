/**
 * From stored values to numbers the model can use: unused high bits masked and sign extended (PS3.5 §8.1.1),
 * the modality LUT applied (PS3.3 C.11.1.1.2: value = stored × slope + intercept), and MONOCHROME1 turned so that
 * larger means brighter like MONOCHROME2 (PS3.3 C.7.6.3.1.2).
 */
import type { StoredArray } from './decode/types.ts';
import type { PixelModule } from './pixel-module.ts';

/** A single-sample image as float64 values, row-major. */
export interface GrayImage {
  rows: number;
  columns: number;
  data: Float64Array;
}

/**
 * Stored values as integers with bits above BitsStored cleared (unsigned) or sign-extended (signed).
 * Returns the input when nothing needs to change.
 */
export function maskStored(stored: StoredArray, pm: PixelModule): StoredArray {
  const bits = pm.bitsStored;
  if (bits >= pm.bitsAllocated) return stored;
  const out = stored.slice();
  if (pm.pixelRepresentation === 0) {
    const mask = bits >= 32 ? 0xffffffff : (1 << bits) - 1;
    for (let i = 0; i < out.length; i++) out[i] = out[i]! & mask;
  } else {
    const shift = 32 - bits;
    for (let i = 0; i < out.length; i++) out[i] = (out[i]! << shift) >> shift;
  }
  return out;
}

/** Modality values (stored × slope + intercept) of a single-sample frame, float64. */
export function modalityValues(stored: StoredArray, pm: PixelModule): GrayImage {
  if (pm.samplesPerPixel !== 1) {
    throw new RangeError(`modality values need a single-sample image; this one has ${pm.samplesPerPixel} samples per pixel`);
  }
  const s = maskStored(stored, pm);
  const n = pm.rows * pm.columns;
  const data = new Float64Array(n);
  const { rescaleSlope: m, rescaleIntercept: b } = pm;
  if (m === 1 && b === 0) for (let i = 0; i < n; i++) data[i] = s[i]!;
  else for (let i = 0; i < n; i++) data[i] = s[i]! * m + b;
  return { rows: pm.rows, columns: pm.columns, data };
}

/**
 * MONOCHROME1 shows the minimum value as white. `negate` flips the sign (what the preprocessing recipe uses:
 * exact, range-free); `range` maps v → (min + max) − v over the representable modality range, the usual display
 * convention, keeping values positive.
 */
export function invertMonochrome1(img: GrayImage, pm: PixelModule, mode: 'negate' | 'range' = 'negate'): GrayImage {
  if (pm.photometricInterpretation !== 'MONOCHROME1') return img;
  const out = new Float64Array(img.data.length);
  if (mode === 'negate') {
    for (let i = 0; i < out.length; i++) out[i] = -img.data[i]!;
  } else {
    const lo = pm.pixelRepresentation === 1 ? -(2 ** (pm.bitsStored - 1)) : 0;
    const hi = pm.pixelRepresentation === 1 ? 2 ** (pm.bitsStored - 1) - 1 : 2 ** pm.bitsStored - 1;
    const a = lo * pm.rescaleSlope + pm.rescaleIntercept;
    const b = hi * pm.rescaleSlope + pm.rescaleIntercept;
    const sum = a + b;
    for (let i = 0; i < out.length; i++) out[i] = sum - img.data[i]!;
  }
  return { rows: img.rows, columns: img.columns, data: out };
}

/**
 * The model's preprocessing recipe (`frcds/preprocess.py`, RECIPE "frcds-hip-ap-v1"), reimplemented so that the
 * service feeds the ONNX model exactly what training saw. Constants come from the recipe object in the model
 * manifest, never from this file; the step sequence is checked against the one implemented here.
 *
 * Steps (see the Python docstring for the normative text):
 * 1. orient: ImageLaterality 'L' → mirror columns.
 * 2. crop_pad: a FOV_MM field centred on the image; n = floor(FOV/spacing + 0.5), origin floor((size − n)/2);
 *    outside the image the pad value is the stored value with the smallest presentation value.
 * 3. box_average: S×S bins with integer edges floor(k·n/S) over STORED values (exact integer sums, float64 mean).
 * 4. rescale: v = sign·(slope·mean + intercept), sign −1 for MONOCHROME1.
 * 5. normalise: lo/hi = sorted[LO_INDEX]/sorted[HI_INDEX]; d = hi − lo (1 when < MIN_RANGE); (v − lo)/d.
 * 6. clip to [CLIP_LO, CLIP_HI]; 7. cast to float32 (Math.fround = round-to-nearest-even).
 * All arithmetic is float64 in the same order as numpy's, so results agree to the last float32 bit in practice.
 */
import type { StoredArray } from './decode/types.ts';
import { jsonString, TAG, type DicomJsonDataset } from './dicom-json.ts';
import { PreprocessError } from './errors.ts';
import type { PixelModule } from './pixel-module.ts';

export interface PreprocessConstants {
  S: number;
  FOV_MM: number;
  LO_INDEX: number;
  HI_INDEX: number;
  MIN_RANGE: number;
  CLIP_LO: number;
  CLIP_HI: number;
}

/** The recipe as written into the model manifest (only the parts this implementation reads are typed). */
export interface PreprocessRecipe {
  name: string;
  steps: readonly { op: string }[];
  constants: PreprocessConstants;
}

const IMPLEMENTED = { name: 'frcds-hip-ap-v1', ops: ['orient', 'crop_pad', 'box_average', 'rescale', 'normalise', 'clip', 'cast'] };

/** Throws PreprocessError unless the recipe is the one implemented here, with sane constants. */
export function checkRecipe(recipe: PreprocessRecipe): PreprocessConstants {
  if (recipe.name !== IMPLEMENTED.name) {
    throw new PreprocessError(`preprocessing recipe "${recipe.name}" is not implemented (this service implements ${IMPLEMENTED.name})`);
  }
  const ops = recipe.steps.map((s) => s.op);
  if (ops.join(',') !== IMPLEMENTED.ops.join(',')) {
    throw new PreprocessError(`preprocessing steps [${ops.join(', ')}] differ from the implemented [${IMPLEMENTED.ops.join(', ')}]`);
  }
  const c = recipe.constants;
  const n = c.S * c.S;
  if (!Number.isInteger(c.S) || c.S < 1 || !(c.FOV_MM > 0) || !Number.isInteger(c.LO_INDEX) || !Number.isInteger(c.HI_INDEX) ||
      c.LO_INDEX < 0 || c.HI_INDEX >= n || c.LO_INDEX > c.HI_INDEX || !(c.MIN_RANGE >= 0) || !(c.CLIP_LO < c.CLIP_HI)) {
    throw new PreprocessError('preprocessing recipe constants are inconsistent');
  }
  return c;
}

export interface PreprocessInput {
  /** Stored values of one single-sample frame, row-major (maskStored applied or not: it is applied here). */
  stored: StoredArray;
  pixelModule: PixelModule;
  /** ImageLaterality, else Laterality ('L' mirrors). */
  laterality: string | undefined;
}

/** Laterality as the recipe reads it: ImageLaterality (0020,0062), else Laterality (0020,0060). */
export function lateralityOf(ds: DicomJsonDataset): string | undefined {
  return jsonString(ds, TAG.ImageLaterality) ?? jsonString(ds, TAG.Laterality);
}

/** Stored pixels → float32[S·S] model input (row-major, row 0 at the top). */
export function preprocessPixels(input: PreprocessInput, recipe: PreprocessRecipe): Float32Array {
  const c = checkRecipe(recipe);
  const pm = input.pixelModule;
  if (pm.samplesPerPixel !== 1) throw new PreprocessError('only single-sample (grey-scale) images can be preprocessed');
  if (pm.photometricInterpretation !== 'MONOCHROME1' && pm.photometricInterpretation !== 'MONOCHROME2') {
    throw new PreprocessError(`unsupported photometric interpretation ${pm.photometricInterpretation}`);
  }
  const spacing = pm.pixelSpacingMm;
  if (!spacing) throw new PreprocessError('neither PixelSpacing nor ImagerPixelSpacing is present');
  const { rows, columns } = pm;
  if (input.stored.length < rows * columns) throw new PreprocessError('stored pixel array is smaller than Rows × Columns');
  const S = c.S;
  const nr = Math.floor(c.FOV_MM / spacing[0] + 0.5);
  const nc = Math.floor(c.FOV_MM / spacing[1] + 0.5);
  if (nr < S || nc < S) throw new PreprocessError(`pixel spacing ${spacing.join('/')} mm too coarse: the ${c.FOV_MM} mm field has fewer than ${S} pixels`);
  const r0 = Math.floor((rows - nr) / 2);
  const c0 = Math.floor((columns - nc) / 2);
  const flip = input.laterality === 'L';
  const stored = input.stored;
  const slope = pm.rescaleSlope;
  const icpt = pm.rescaleIntercept;
  const sign = pm.photometricInterpretation === 'MONOCHROME1' ? -1 : 1;
  // Stored values with unused high bits cleared / sign-extended (as maskStored does), inline to avoid a copy.
  const needsMask = pm.bitsStored < pm.bitsAllocated;
  const bitMask = pm.bitsStored >= 32 ? 0xffffffff : 2 ** pm.bitsStored - 1;
  const shift = 32 - pm.bitsStored;
  const signed = pm.pixelRepresentation === 1;
  const valueAt = (i: number): number => {
    const raw = stored[i]!;
    if (!needsMask) return raw;
    return signed ? (raw << shift) >> shift : raw & bitMask;
  };

  // Pad value: only needed when the window leaves the image.
  let pad = 0;
  if (r0 < 0 || c0 < 0 || r0 + nr > rows || c0 + nc > columns) {
    let mn = Infinity;
    let mx = -Infinity;
    for (let i = 0; i < rows * columns; i++) {
      const v = valueAt(i);
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    pad = sign * slope > 0 ? mn : mx;
  }

  // Integer bin edges floor(k·n/S), k = 0..S.
  const edges = (n: number) => Int32Array.from({ length: S + 1 }, (_, k) => Math.floor((k * n) / S));
  const re = edges(nr);
  const ce = edges(nc);
  // Per column bin: the window columns [a, b) that fall inside the image, in image coordinates of the ORIENTED
  // image (x = c0 + j), and how many fall outside (padded).
  const inA = new Int32Array(S);
  const inB = new Int32Array(S);
  const padCols = new Float64Array(S);
  for (let k = 0; k < S; k++) {
    const a = Math.max(c0 + ce[k]!, 0);
    const b = Math.min(c0 + ce[k + 1]!, columns);
    inA[k] = a;
    inB[k] = Math.max(a, b);
    padCols[k] = ce[k + 1]! - ce[k]! - Math.max(0, b - a);
  }

  const sums = new Float64Array(S * S); // integer sums < 2^53: exact
  for (let kr = 0; kr < S; kr++) {
    const off = kr * S;
    for (let i = re[kr]!; i < re[kr + 1]!; i++) {
      const y = r0 + i;
      if (y < 0 || y >= rows) {
        for (let k = 0; k < S; k++) sums[off + k]! += pad * (ce[k + 1]! - ce[k]!);
        continue;
      }
      const base = y * columns;
      for (let k = 0; k < S; k++) {
        let acc = pad * padCols[k]!;
        const a = inA[k]!;
        const b = inB[k]!;
        // Stored column range of this bin (mirrored for left hips: oriented x ↔ stored column columns − 1 − x).
        const lo = flip ? base + columns - b : base + a;
        const hi = flip ? base + columns - a : base + b;
        // Three monomorphic loops: masking inline, not through a call per pixel.
        if (!needsMask) for (let p = lo; p < hi; p++) acc += stored[p]!;
        else if (!signed) for (let p = lo; p < hi; p++) acc += stored[p]! & bitMask;
        else for (let p = lo; p < hi; p++) acc += (stored[p]! << shift) >> shift;
        sums[off + k]! += acc;
      }
    }
  }
  const counts = new Float64Array(S * S);
  for (let kr = 0; kr < S; kr++) {
    for (let k = 0; k < S; k++) counts[kr * S + k] = (re[kr + 1]! - re[kr]!) * (ce[k + 1]! - ce[k]!);
  }

  const v = new Float64Array(S * S);
  for (let i = 0; i < S * S; i++) v[i] = sign * (slope * (sums[i]! / counts[i]!) + icpt);
  const sorted = Float64Array.from(v).sort();
  const lo = sorted[c.LO_INDEX]!;
  const hi = sorted[c.HI_INDEX]!;
  const d = hi - lo >= c.MIN_RANGE ? hi - lo : 1.0;
  const out = new Float32Array(S * S);
  for (let i = 0; i < S * S; i++) {
    const x = (v[i]! - lo) / d;
    out[i] = Math.fround(x < c.CLIP_LO ? c.CLIP_LO : x > c.CLIP_HI ? c.CLIP_HI : x);
  }
  return out;
}

/**
 * Image-quality checks (issue 5, item 4) on the radiograph the model reads. Each failed check is a WARNING shown
 * with the result; the decision to withhold the image-derived risk belongs to the model's OOD distance.
 *
 * Thresholds (research prototype; not validated on real images):
 * - resolution: pixel spacing > 0.4 mm — twice the coarsest detector of the training site (0.14–0.2 mm), where
 *   the femoral neck's trabecular pattern (trabeculae ≈ 0.1–0.3 mm) is no longer resolved.
 * - saturation: > 1 % of pixels at the image's minimum or maximum stored value (clipped detector or clipped export).
 * - contrast: the 1st–99th percentile range of stored values spans < 20 % of the BitsStored range.
 * - noise / blur: the mean squared 4-neighbour Laplacian of the preprocessed (128 px, percentile-normalised) image
 *   above 0.03 (noisy: under-exposure) or below 0.0075 (blurred: motion) — about 2× and ½× the median of the
 *   clean site-A demo images (0.015), set by looking at those images.
 * - hardware-like intensities: the brightest pixels lie far above bone — (max − p99) > 0.5 × (p99 − p1) of the
 *   presentation values (metal attenuates far more than cortical bone).
 * - missing laterality: neither ImageLaterality nor Laterality — the image is read as a right hip (not mirrored).
 */
import type { StoredArray } from '../imaging/decode/types.ts';
import type { PixelModule } from '../imaging/pixel-module.ts';

export interface QualityCheck {
  check: 'resolution' | 'saturation' | 'contrast' | 'noise' | 'blur' | 'hardware' | 'laterality';
  passed: boolean;
  value: number | null;
  threshold: number | null;
  message: string;
}

export const QUALITY_THRESHOLDS = { maxSpacingMm: 0.4, maxSaturated: 0.01, minRange: 0.2, maxLaplacian: 0.03, minLaplacian: 0.0075, hardwareRatio: 0.5 } as const;

/** `value` with the fewest decimals (at least 2) that do not read as `limit`: 0.4003 vs 0.4 → "0.4003", never "0.40 > 0.4". */
export function distinct(value: number, limit: number): string {
  for (let d = 2; d <= 6; d++) if (Number(value.toFixed(d)) !== limit) return value.toFixed(d);
  return String(value);
}

export function checkImageQuality(stored: StoredArray, pm: PixelModule, working: Float32Array, size: number, laterality: string | undefined): QualityCheck[] {
  const T = QUALITY_THRESHOLDS;
  const out: QualityCheck[] = [];
  // The acquisition's spacing: a frame decoded at a reduced resolution (pm.reducedFrom) has a coarser array spacing.
  const spacing = Math.max(...(pm.reducedFrom?.pixelSpacingMm ?? pm.pixelSpacingMm ?? [NaN, NaN]));
  out.push({ check: 'resolution', passed: spacing <= T.maxSpacingMm, value: spacing, threshold: T.maxSpacingMm, message: `Coarse pixel spacing (${distinct(spacing, T.maxSpacingMm)} mm, more than ${T.maxSpacingMm} mm): bone texture is not resolved.` });

  // Percentiles from a histogram of the integer stored values (O(n); a sort of 5 M values costs ~0.5 s).
  const n = pm.rows * pm.columns;
  const bits = Math.min(pm.bitsStored, 16);
  const offset = pm.pixelRepresentation === 1 ? 2 ** (bits - 1) : 0;
  const hist = new Uint32Array(2 ** bits);
  const mask = 2 ** bits - 1;
  const shift = 32 - bits;
  const needsMask = pm.bitsStored < pm.bitsAllocated || pm.bitsStored > 16;
  // Specialised loops: this runs over every pixel (5 M on a full-size radiograph).
  if (offset === 0 && pm.bitsStored <= 16) {
    if (needsMask) for (let i = 0; i < n; i++) hist[stored[i]! & mask]!++;
    else for (let i = 0; i < n; i++) hist[stored[i]!]!++;
  } else {
    for (let i = 0; i < n; i++) {
      const raw = stored[i]!;
      const v = !needsMask ? raw : pm.pixelRepresentation === 1 ? (raw << shift) >> shift : raw & mask;
      hist[Math.min(mask, Math.max(0, v + offset))]!++;
    }
  }
  const q = (f: number): number => {
    const target = Math.floor(f * (n - 1));
    let acc = 0;
    for (let v = 0; v < hist.length; v++) {
      acc += hist[v]!;
      if (acc > target) return v - offset;
    }
    return hist.length - 1 - offset;
  };
  const mn = q(0);
  const mx = q(1);
  const sat = (hist[mn + offset]! + (mx !== mn ? hist[mx + offset]! : 0)) / n;
  out.push({ check: 'saturation', passed: sat <= T.maxSaturated, value: sat, threshold: T.maxSaturated, message: `${(100 * sat).toFixed(1)}% of pixels are at the darkest or brightest value (clipped or saturated).` });
  const range = (q(0.99) - q(0.01)) / (2 ** pm.bitsStored - 1);
  out.push({ check: 'contrast', passed: range >= T.minRange, value: range, threshold: T.minRange, message: `Low contrast: the image uses ${(100 * range).toFixed(0)}% of its grey-level range.` });

  let lap = 0;
  for (let r = 1; r < size - 1; r++) for (let c = 1; c < size - 1; c++) {
    const i = r * size + c;
    const d = 4 * working[i]! - working[i - 1]! - working[i + 1]! - working[i - size]! - working[i + size]!;
    lap += d * d;
  }
  lap /= (size - 2) * (size - 2);
  out.push({ check: 'noise', passed: lap <= T.maxLaplacian, value: lap, threshold: T.maxLaplacian, message: 'Noisy image (possible under-exposure).' });
  out.push({ check: 'blur', passed: lap >= T.minLaplacian, value: lap, threshold: T.minLaplacian, message: 'Blurred image (possible patient motion).' });

  // Presentation order: MONOCHROME1 stores bright as low values.
  const inv = pm.photometricInterpretation === 'MONOCHROME1';
  const bright = inv ? q(0.01) - mn : mx - q(0.99);
  const ratio = bright / Math.max(1e-9, q(0.99) - q(0.01));
  out.push({ check: 'hardware', passed: ratio <= T.hardwareRatio, value: ratio, threshold: T.hardwareRatio, message: 'Very bright structure far above bone intensity (possible metal implant).' });
  out.push({ check: 'laterality', passed: laterality === 'L' || laterality === 'R', value: null, threshold: null, message: 'Image laterality is not recorded: read as a right hip (not mirrored).' });
  return out;
}

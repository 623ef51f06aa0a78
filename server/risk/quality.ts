/**
 * Image-quality checks on the radiograph the model reads. Each failed check is a WARNING shown with the result; the
 * decision to withhold the image-derived risk belongs to the model's OOD distance.
 *
 * Thresholds (research prototype; not validated on real images):
 * - resolution: pixel spacing > 0.4 mm — twice the coarsest detector of the training site (0.14–0.2 mm), where
 *   the femoral neck's trabecular pattern (trabeculae ≈ 0.1–0.3 mm) is no longer resolved.
 * - saturation: > 1 % of the exposed area at the image's minimum or maximum stored value (clipped detector or clipped
 *   export). An electronic shutter is not clipping: DR systems burn the unexposed border to black at one constant
 *   extreme value (the synthetic cohort's vendors B and C do, with an inset and rotated field), and counting it
 *   flagged every such image. The shutter is taken to be the 4-connected region at the presentation-black extreme
 *   (the minimum stored value, the maximum for MONOCHROME1) that touches the image border; it is left out of both
 *   the count and the area. Trade-off: a clipped export whose black background touches the border is no longer
 *   caught; clipped anatomy inside the field, and anything clipped to white (even at the border), still is. The
 *   DICOM Display Shutter module is not read by the pixel module, so the shutter is found from the pixels alone.
 *   The flood fill is written here because none of the libraries the project uses offers a connected-region fill
 *   over a typed array; it is an iterative scanline fill (a stack of run starts, no recursion), O(shutter area +
 *   border): about 2–15 ms per full-size (≈ 2,200 × 2,200) synthetic vendor-B/C frame with a 4–26 % shutter, and
 *   only the border scan when the border holds no black pixel.
 * - contrast: the 1st–99th percentile range of the exposed image's stored values (outside an electronic shutter, as
 *   for saturation) spans < 20 % of the BitsStored range; the hardware check uses the same percentiles.
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
  // Presentation order: MONOCHROME1 stores bright as low values.
  const inv = pm.photometricInterpretation === 'MONOCHROME1';
  // Histogram bin of pixel i, exactly as binned above (so the shutter's pixels are a subset of the extreme's bin).
  const bin: (i: number) => number =
    offset === 0 && pm.bitsStored <= 16
      ? needsMask ? (i) => stored[i]! & mask : (i) => stored[i]!
      : (i) => {
          const raw = stored[i]!;
          const v = !needsMask ? raw : pm.pixelRepresentation === 1 ? (raw << shift) >> shift : raw & mask;
          return Math.min(mask, Math.max(0, v + offset));
        };
  const black = (inv ? mx : mn) + offset;
  const shutter = borderRegionArea(bin, black, hist[black]!, pm.rows, pm.columns);
  const exposed = n - shutter;
  const clipped = hist[mn + offset]! + (mx !== mn ? hist[mx + offset]! : 0) - shutter;
  // Nothing exposed (one constant value throughout): no image at all, reported as fully saturated.
  const sat = exposed > 0 ? clipped / exposed : 1;
  out.push({ check: 'saturation', passed: sat <= T.maxSaturated, value: sat, threshold: T.maxSaturated, message: `${(100 * sat).toFixed(1)}% of the exposed image is at the darkest or brightest value (clipped or saturated).` });
  // Percentiles of the exposed image (the shutter's pixels taken out of the black bin): a shutter at one extreme
  // would otherwise become the 1st (or 99th) percentile and make a flat image read as high-contrast.
  const qx = (f: number): number => {
    const target = Math.floor(f * (Math.max(1, exposed) - 1));
    let acc = 0;
    for (let v = 0; v < hist.length; v++) {
      acc += hist[v]! - (v === black ? shutter : 0);
      if (acc > target) return v - offset;
    }
    return hist.length - 1 - offset;
  };
  const range = (qx(0.99) - qx(0.01)) / (2 ** pm.bitsStored - 1);
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

  const bright = inv ? qx(0.01) - mn : mx - qx(0.99);
  const ratio = bright / Math.max(1e-9, qx(0.99) - qx(0.01));
  out.push({ check: 'hardware', passed: ratio <= T.hardwareRatio, value: ratio, threshold: T.hardwareRatio, message: 'Very bright structure far above bone intensity (possible metal implant).' });
  out.push({ check: 'laterality', passed: laterality === 'L' || laterality === 'R', value: null, threshold: null, message: 'Image laterality is not recorded: read as a right hip (not mirrored).' });
  return out;
}

/**
 * Number of pixels in the 4-connected region(s) whose bin is `value` and that touch the image border (an electronic
 * shutter). A scanline fill seeded from the border pixels: each popped seed is widened to its whole run along the
 * row, and the runs it touches in the rows above and below are pushed (one seed per run), so each pixel is read a
 * bounded number of times and the stack holds run starts, not pixels. `count` (the histogram count of `value`) is
 * checked first: nothing is allocated when the value is absent or no border pixel has it.
 */
export function borderRegionArea(bin: (i: number) => number, value: number, count: number, rows: number, columns: number): number {
  if (count === 0) return 0;
  const stack: number[] = [];
  for (let c = 0; c < columns; c++) {
    if (bin(c) === value) stack.push(c);
    if (rows > 1 && bin((rows - 1) * columns + c) === value) stack.push((rows - 1) * columns + c);
  }
  for (let r = 1; r < rows - 1; r++) {
    if (bin(r * columns) === value) stack.push(r * columns);
    if (columns > 1 && bin(r * columns + columns - 1) === value) stack.push(r * columns + columns - 1);
  }
  if (stack.length === 0) return 0;
  const seen = new Uint8Array(rows * columns);
  let area = 0;
  // Pushes the start of every unseen run at `value` within columns lo..hi of row r.
  const scan = (r: number, lo: number, hi: number): void => {
    const base = r * columns;
    let inRun = false;
    for (let c = lo; c <= hi; c++) {
      const j = base + c;
      const match = !seen[j] && bin(j) === value;
      if (match && !inRun) stack.push(j);
      inRun = match;
    }
  };
  while (stack.length > 0) {
    const i = stack.pop()!;
    if (seen[i]) continue;
    const r = Math.floor(i / columns);
    const base = r * columns;
    let lo = i - base;
    let hi = lo;
    while (lo > 0 && !seen[base + lo - 1] && bin(base + lo - 1) === value) lo--;
    while (hi < columns - 1 && !seen[base + hi + 1] && bin(base + hi + 1) === value) hi++;
    seen.fill(1, base + lo, base + hi + 1);
    area += hi - lo + 1;
    if (r > 0) scan(r - 1, lo, hi);
    if (r < rows - 1) scan(r + 1, lo, hi);
  }
  return area;
}

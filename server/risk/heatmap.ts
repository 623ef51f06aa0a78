/**
 * Heatmap rendering (issue 5, item 3): the member-averaged CAM (a coarse h×w grid over the PREPROCESSED image)
 * mapped back to the radiograph's own geometry through the preprocessing recipe — working pixel → crop/pad window
 * (bin edges floor(k·n/S)) → oriented image (+ r0, c0) → stored columns (mirrored back for left hips) — bilinearly
 * interpolated, colour-mapped and made translucent (alpha ∝ CAM value), at the size of the display image.
 * The display image is the radiograph windowed with its own VOI window (WindowCenter/Width, PS3.3 C.11.2.1.2),
 * MONOCHROME1 inverted, so overlay and display PNG line up pixel for pixel.
 */
import type { StoredArray } from '../imaging/decode/types.ts';
import type { PixelModule } from '../imaging/pixel-module.ts';
import type { PreprocessConstants } from '../imaging/preprocess.ts';
import { colourMap, encodePng } from './png.ts';

export interface HeatmapInput {
  stored: StoredArray;
  pixelModule: PixelModule;
  laterality: string | undefined;
  constants: PreprocessConstants;
  /** CAM grid values, row-major h×w. */
  cam: Float32Array;
  grid: [number, number];
  /** Longest side of the PNGs (the radiograph is downsampled to it). */
  maxSide?: number;
}

export interface HeatmapPngs {
  width: number;
  height: number;
  /** PNG encoding is deferred until a PNG is asked for (and then memoised): most assessments are never viewed. */
  display: () => Buffer;
  overlay: () => Buffer;
  /** Where the CAM peaks, as a fraction of the display image (x from the left, y from the top). */
  peak: { x: number; y: number } | undefined;
}

/** The colour map tabulated once (256 entries × RGB). */
const LUT = Uint8Array.from({ length: 256 * 3 }, (_, i) => colourMap(Math.floor(i / 3) / 255)[i % 3]!);

function valueAt(stored: StoredArray, pm: PixelModule, i: number): number {
  const raw = stored[i]!;
  if (pm.bitsStored >= pm.bitsAllocated) return raw;
  if (pm.pixelRepresentation === 1) {
    const shift = 32 - pm.bitsStored;
    return (raw << shift) >> shift;
  }
  return raw & (2 ** pm.bitsStored - 1);
}

export function renderHeatmap(input: HeatmapInput): HeatmapPngs {
  const { pixelModule: pm, stored, constants: c } = input;
  const maxSide = input.maxSide ?? 512;
  const f = Math.max(pm.rows, pm.columns) / maxSide;
  const scale = f > 1 ? f : 1;
  const W = Math.max(1, Math.round(pm.columns / scale));
  const H = Math.max(1, Math.round(pm.rows / scale));
  const srcRow = Int32Array.from({ length: H }, (_, y) => Math.min(pm.rows - 1, Math.floor(((y + 0.5) * pm.rows) / H)));
  const srcCol = Int32Array.from({ length: W }, (_, x) => Math.min(pm.columns - 1, Math.floor(((x + 0.5) * pm.columns) / W)));
  // Only the display-size sample of the stored values is kept (≤ 512×512), so a cached assessment holds ~1 MB,
  // not the whole radiograph; windowing, colour mapping and PNG encoding wait until a PNG is asked for.
  const sampledStored = new Int32Array(W * H);
  const unmasked = pm.bitsStored >= pm.bitsAllocated;
  const mask = 2 ** Math.min(pm.bitsStored, 31) - 1;
  for (let y = 0; y < H; y++) {
    const base = srcRow[y]! * pm.columns;
    const o = y * W;
    if (unmasked) for (let x = 0; x < W; x++) sampledStored[o + x] = stored[base + srcCol[x]!]!;
    else if (pm.pixelRepresentation === 0) for (let x = 0; x < W; x++) sampledStored[o + x] = stored[base + srcCol[x]!]! & mask;
    else for (let x = 0; x < W; x++) sampledStored[o + x] = valueAt(stored, pm, base + srcCol[x]!);
  }

  // Geometry of the model window in stored coordinates (see the file header).
  const [gh, gw] = input.grid;
  const nr = Math.floor(c.FOV_MM / pm.pixelSpacingMm![0] + 0.5);
  const nc = Math.floor(c.FOV_MM / pm.pixelSpacingMm![1] + 0.5);
  const r0 = Math.floor((pm.rows - nr) / 2);
  const c0 = Math.floor((pm.columns - nc) / 2);
  const flip = input.laterality === 'L';
  const camGrid = Float32Array.from(input.cam);
  let camMax = 0;
  let peakIdx = -1;
  camGrid.forEach((v, i) => {
    if (v > camMax) {
      camMax = v;
      peakIdx = i;
    }
  });
  let peak: HeatmapPngs['peak'];
  if (peakIdx >= 0) {
    const pr = Math.floor(peakIdx / gw);
    const pc = peakIdx % gw;
    const row = r0 + ((pr + 0.5) * nr) / gh;
    const ocol = c0 + ((pc + 0.5) * nc) / gw;
    const col = flip ? pm.columns - 1 - ocol : ocol;
    peak = { x: col / pm.columns, y: row / pm.rows };
  }
  const windowing = { slope: pm.rescaleSlope, intercept: pm.rescaleIntercept, center: pm.windowCenter, width: pm.windowWidth, inv: pm.photometricInterpretation === 'MONOCHROME1' };

  const displayPixels = (): Uint8Array => {
    // Display: modality LUT then VOI window; without a window, the 1st–99th percentile of the sampled values.
    const v = Float64Array.from(sampledStored, (s) => windowing.slope * s + windowing.intercept);
    let lo: number;
    let hi: number;
    if (windowing.center !== undefined && windowing.width !== undefined && windowing.width > 1) {
      lo = windowing.center - 0.5 - (windowing.width - 1) / 2;
      hi = windowing.center - 0.5 + (windowing.width - 1) / 2;
    } else {
      const s = Float64Array.from(v).sort();
      lo = s[Math.floor(0.01 * (s.length - 1))]!;
      hi = s[Math.floor(0.99 * (s.length - 1))]!;
    }
    const grey = new Uint8Array(W * H);
    for (let i = 0; i < W * H; i++) {
      const t = hi > lo ? (v[i]! - lo) / (hi - lo) : 0.5;
      const g = Math.round(255 * Math.min(1, Math.max(0, t)));
      grey[i] = windowing.inv ? 255 - g : g;
    }
    return grey;
  };

  const overlayPixels = (): Uint8Array => {
    // Display pixel → stored (row, col) → oriented col → window (i, j) → working (u, v) → CAM cell, bilinear.
    const rgba = new Uint8Array(W * H * 4);
    if (!(camMax > 0)) return rgba;
    const cam = (a: number, b: number) => camGrid[Math.min(gh - 1, Math.max(0, a)) * gw + Math.min(gw - 1, Math.max(0, b))]!;
    for (let y = 0; y < H; y++) {
      const i = srcRow[y]! - r0;
      if (i < 0 || i >= nr) continue;
      const cu = ((i + 0.5) * gh) / nr - 0.5;
      const a0 = Math.floor(cu);
      const fa = cu - a0;
      for (let x = 0; x < W; x++) {
        const oc = flip ? pm.columns - 1 - srcCol[x]! : srcCol[x]!;
        const j = oc - c0;
        if (j < 0 || j >= nc) continue;
        const cv = ((j + 0.5) * gw) / nc - 0.5;
        const b0 = Math.floor(cv);
        const fb = cv - b0;
        const val = (1 - fa) * ((1 - fb) * cam(a0, b0) + fb * cam(a0, b0 + 1)) + fa * ((1 - fb) * cam(a0 + 1, b0) + fb * cam(a0 + 1, b0 + 1));
        const t = val / camMax;
        if (t < 0.1) continue;
        const o = (y * W + x) * 4;
        const ci = Math.min(255, Math.round(t * 255)) * 3;
        rgba[o] = LUT[ci]!;
        rgba[o + 1] = LUT[ci + 1]!;
        rgba[o + 2] = LUT[ci + 2]!;
        rgba[o + 3] = Math.round(255 * 0.7 * t);
      }
    }
    return rgba;
  };

  let displayPng: Buffer | undefined;
  let overlayPng: Buffer | undefined;
  return {
    width: W,
    height: H,
    display: () => (displayPng ??= encodePng(W, H, displayPixels(), 'grey')),
    overlay: () => (overlayPng ??= encodePng(W, H, overlayPixels(), 'rgba')),
    peak,
  };
}

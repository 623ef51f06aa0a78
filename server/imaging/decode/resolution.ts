/**
 * Decoding only the resolution the consumer needs. The model reads a 200 mm field averaged down to 128 × 128 and
 * the display/heatmap PNG is at most 512 px on its longest side, while a stored radiograph has 1,500–3,000 px per
 * side. JPEG 2000 keeps the image as a wavelet pyramid: level k (the LL band after k decompositions) is a
 * low-pass-filtered image at 1/2^k of the size in each direction with the same sample range (the analysis
 * low-pass filters have unit DC gain), and the decoder can stop there, skipping the entropy decoding and inverse
 * transform of the finer levels — most of the work.
 *
 * The rule (chooseReductionLevel): the largest level k ≤ the codestream's number of decompositions such that, at
 * the spacing 2^k × the header's,
 * 1. the model's field still spans at least `minPixelsPerBin` (2) decoded pixels per working pixel in each
 *    direction: floor(FOV / (spacing · 2^k) + 0.5) ≥ 2 · S — every box-average bin of the preprocessing still
 *    averages ≥ 2 × 2 decoded pixels, so bin edges fall on a grid at least twice as fine as the bins;
 * 2. the decoded image's longest side stays ≥ `minLongestSide` (512, the display PNG size), so the display and
 *    heatmap PNGs come out at the same size as from a full decode.
 * Level 0 (full decode) when no level qualifies, when the spacing is unknown (the preprocessing refuses such
 * images anyway) or for colour images.
 */
import type { PixelModule } from '../pixel-module.ts';
import type { StoredArray } from './types.ts';

/** What the consumer of a decoded frame needs from it. */
export interface ResolutionNeed {
  /** Side of the square field the model reads, in mm (the recipe's FOV_MM). */
  fovMm: number;
  /** Working size in pixels across that field (the recipe's S). */
  size: number;
  /** Decoded pixels per working pixel, per direction, that must remain (default 2). */
  minPixelsPerBin?: number;
  /** Longest side the decoded image must keep (default {@link DISPLAY_LONGEST_SIDE}). */
  minLongestSide?: number;
}

/** Longest side of the display and heatmap PNGs (server/risk/heatmap.ts renders at most this many pixels). */
export const DISPLAY_LONGEST_SIDE = 512;
/** Default of {@link ResolutionNeed.minPixelsPerBin}. */
export const MIN_PIXELS_PER_BIN = 2;

/** A decoded frame and the pixel module that describes its array (reduced geometry when `level` > 0). */
export interface DecodedFrame {
  stored: StoredArray;
  pixelModule: PixelModule;
  /** Resolution level decoded: 0 = full, k = 1/2^k per side. */
  level: number;
}

/** The need of a preprocessing recipe's constants (FOV_MM, S). */
export function resolutionNeedOf(constants: { FOV_MM: number; S: number }): ResolutionNeed {
  return { fovMm: constants.FOV_MM, size: constants.S };
}

/**
 * The need that satisfies all of `needs` (several models may read the same frame): the finest working spacing
 * (largest size / fovMm), with the strictest margins. Undefined for none.
 */
export function strictestNeed(needs: readonly ResolutionNeed[]): ResolutionNeed | undefined {
  if (needs.length === 0) return undefined;
  const finest = needs.reduce((a, b) => (b.size / b.fovMm > a.size / a.fovMm ? b : a));
  return {
    fovMm: finest.fovMm,
    size: finest.size,
    minPixelsPerBin: Math.max(...needs.map((n) => n.minPixelsPerBin ?? MIN_PIXELS_PER_BIN)),
    minLongestSide: Math.max(...needs.map((n) => n.minLongestSide ?? DISPLAY_LONGEST_SIDE)),
  };
}

/**
 * Size along one axis at level k of a JPEG 2000 codestream whose image area is [offset, extent) on the reference
 * grid (ISO/IEC 15444-1 B.5: ceil(extent / 2^k) − ceil(offset / 2^k)).
 */
export function reducedExtent(extent: number, offset: number, level: number): number {
  const f = 2 ** level;
  return Math.ceil(extent / f) - Math.ceil(offset / f);
}

/** Geometry of the decoded image at a given level: rows and columns. */
export type LevelGeometry = (level: number) => { rows: number; columns: number };

/**
 * The level to decode (see the file header for the rule). `maxLevel` is the codestream's number of wavelet
 * decompositions; `geometry` gives the decoded size at a level (default: ceil(size / 2^k)).
 */
export function chooseReductionLevel(pm: PixelModule, need: ResolutionNeed, maxLevel: number, geometry?: LevelGeometry): number {
  const spacing = pm.pixelSpacingMm;
  if (!spacing || pm.samplesPerPixel !== 1 || !(need.fovMm > 0) || !(need.size >= 1)) return 0;
  const perBin = need.minPixelsPerBin ?? MIN_PIXELS_PER_BIN;
  const longest = need.minLongestSide ?? DISPLAY_LONGEST_SIDE;
  const size = geometry ?? ((k: number) => ({ rows: Math.ceil(pm.rows / 2 ** k), columns: Math.ceil(pm.columns / 2 ** k) }));
  for (let k = Math.min(Math.max(0, Math.floor(maxLevel)), 16); k >= 1; k--) {
    const f = 2 ** k;
    // The preprocessing's own window size formula at the reduced spacing.
    const nr = Math.floor(need.fovMm / (spacing[0] * f) + 0.5);
    const nc = Math.floor(need.fovMm / (spacing[1] * f) + 0.5);
    const { rows, columns } = size(k);
    if (nr >= perBin * need.size && nc >= perBin * need.size && Math.max(rows, columns) >= longest) return k;
  }
  return 0;
}

/** The pixel module of the array decoded at `level` (rows × columns), spacing 2^level × the header's. */
export function reducedPixelModule(pm: PixelModule, level: number, rows: number, columns: number): PixelModule {
  if (level === 0) return pm;
  const f = 2 ** level;
  const out: PixelModule = {
    ...pm,
    rows,
    columns,
    reducedFrom: { level, rows: pm.rows, columns: pm.columns, ...(pm.pixelSpacingMm ? { pixelSpacingMm: pm.pixelSpacingMm } : {}) },
  };
  if (pm.pixelSpacingMm) out.pixelSpacingMm = [pm.pixelSpacingMm[0] * f, pm.pixelSpacingMm[1] * f];
  return out;
}

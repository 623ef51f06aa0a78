/**
 * A CT volume from decoded axial slices: stored values → HU (the modality LUT of each slice, reusing the imaging
 * layer's masking), slices ordered from inferior to superior along the slice normal, with the geometry checked
 * (one orientation, one pixel spacing, one matrix size, no duplicate positions, no gaps). Also the fetch plan:
 * which slices a caller needs for a z-range, from instance positions alone, before any pixels are retrieved.
 */
import type { StoredArray } from '../../imaging/decode/types.ts';
import type { PixelModule } from '../../imaging/pixel-module.ts';
import { maskStored } from '../../imaging/pixels.ts';
import { sliceNormal } from './select.ts';

export interface CtSlice {
  pm: Pick<PixelModule, 'rows' | 'columns' | 'bitsAllocated' | 'bitsStored' | 'pixelRepresentation' | 'rescaleSlope' | 'rescaleIntercept' | 'pixelSpacingMm'>;
  stored: StoredArray;
  /** Image Position (Patient), mm: the centre of the first transmitted voxel. */
  position: readonly number[];
  /** Image Orientation (Patient): row then column direction cosines. */
  orientation: readonly number[];
}

export interface CtVolume {
  rows: number;
  columns: number;
  slices: number;
  /** mm between voxel centres: along a column (row index), along a row (column index), between slices. */
  spacing: { row: number; column: number; slice: number };
  orientation: readonly number[];
  /** Patient head–foot coordinate (mm, + superior) of each slice, increasing with the slice index. */
  z: Float64Array;
  /** Whether a larger row index is more posterior (column cosine y > 0 in LPS). */
  rowsGoPosterior: boolean;
  /** HU, index = slice × rows × columns + row × columns + column. */
  hu: Float32Array;
}

export type VolumeErrorCode = 'empty' | 'not-axial' | 'inconsistent-orientation' | 'inconsistent-size' | 'inconsistent-spacing' | 'duplicate-position' | 'gap';

export class VolumeError extends Error {
  constructor(
    readonly code: VolumeErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'VolumeError';
  }
}

export interface VolumeOptions {
  /** Cosine tolerance when comparing orientations of slices. */
  orientationTolerance: number;
  /** Relative tolerance on pixel spacing between slices. */
  spacingTolerance: number;
  /** Positions closer than this (mm) are duplicates. */
  duplicateMm: number;
  /** A step larger than this multiple of the median step is a gap (a missing slice). */
  gapFactor: number;
}

export const DEFAULT_VOLUME: VolumeOptions = { orientationTolerance: 1e-3, spacingTolerance: 1e-3, duplicateMm: 0.01, gapFactor: 1.5 };

function median(xs: ArrayLike<number>): number {
  const s = Array.from(xs).sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Signed head–foot coordinate of a position: its projection on the slice normal, oriented so + is superior. */
function along(position: readonly number[], normal: readonly [number, number, number]): number {
  const s = Math.sign(normal[2]) || 1;
  return s * (position[0]! * normal[0] + position[1]! * normal[1] + position[2]! * normal[2]) + 0; // + 0: no -0
}

/** Sorted positions, checked for duplicates and gaps; returns the median step. */
function checkSteps(z: readonly number[], opts: VolumeOptions): number {
  if (z.length < 2) return NaN;
  const steps = z.slice(1).map((v, i) => v - z[i]!);
  const dupe = steps.findIndex((d) => d < opts.duplicateMm);
  if (dupe >= 0) throw new VolumeError('duplicate-position', `two slices share the position ${z[dupe]!.toFixed(2)} mm`);
  const step = median(steps);
  const gap = steps.findIndex((d) => d > opts.gapFactor * step);
  if (gap >= 0) throw new VolumeError('gap', `a gap of ${steps[gap]!.toFixed(2)} mm between slices (spacing ${step.toFixed(2)} mm) at ${z[gap]!.toFixed(1)} mm`);
  return step;
}

/** Assembles the HU volume; throws `VolumeError` when the slices do not form one regular axial stack. */
export function assembleVolume(input: readonly CtSlice[], opts: VolumeOptions = DEFAULT_VOLUME): CtVolume {
  const first = input[0];
  if (!first) throw new VolumeError('empty', 'no slices');
  const normal = sliceNormal(first.orientation);
  if (!normal) throw new VolumeError('not-axial', 'the slice orientation is missing or degenerate');
  if (Math.abs(normal[2]) < 0.9) throw new VolumeError('not-axial', 'the slices are not axial');
  const { rows, columns } = first.pm;
  const ps = first.pm.pixelSpacingMm;
  if (!ps) throw new VolumeError('inconsistent-spacing', 'the pixel spacing is not recorded');
  for (const s of input) {
    if (s.orientation.length < 6 || s.orientation.some((v, i) => Math.abs(v - first.orientation[i]!) > opts.orientationTolerance)) {
      throw new VolumeError('inconsistent-orientation', 'the slices do not share one orientation');
    }
    if (s.pm.rows !== rows || s.pm.columns !== columns) throw new VolumeError('inconsistent-size', `slices of ${rows}×${columns} and ${s.pm.rows}×${s.pm.columns}`);
    const p = s.pm.pixelSpacingMm;
    if (!p || Math.abs(p[0] - ps[0]) > opts.spacingTolerance * ps[0] || Math.abs(p[1] - ps[1]) > opts.spacingTolerance * ps[1]) {
      throw new VolumeError('inconsistent-spacing', 'the slices do not share one pixel spacing');
    }
    if (s.stored.length < rows * columns) throw new VolumeError('inconsistent-size', 'a slice has fewer pixels than its header says');
  }
  const order = input.map((s, i) => ({ i, z: along(s.position, normal) })).sort((a, b) => a.z - b.z);
  const z = Float64Array.from(order, (o) => o.z);
  const step = checkSteps(Array.from(z), opts);
  const n = rows * columns;
  const hu = new Float32Array(n * input.length);
  order.forEach(({ i }, k) => {
    const s = input[i]!;
    const v = maskStored(s.stored, s.pm as PixelModule);
    const { rescaleSlope: m, rescaleIntercept: b } = s.pm;
    const off = k * n;
    for (let j = 0; j < n; j++) hu[off + j] = v[j]! * m + b;
  });
  return {
    rows,
    columns,
    slices: input.length,
    spacing: { row: ps[0], column: ps[1], slice: Number.isNaN(step) ? 0 : step },
    orientation: first.orientation,
    z,
    rowsGoPosterior: first.orientation[4]! >= 0,
    hu,
  };
}

/** Index of the slice nearest a head–foot coordinate (clamped to the volume). */
export function sliceAt(vol: Pick<CtVolume, 'z'>, zMm: number): number {
  const { z } = vol;
  let lo = 0;
  let hi = z.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (z[mid]! <= zMm) lo = mid;
    else hi = mid;
  }
  return Math.abs(z[lo]! - zMm) <= Math.abs(z[hi]! - zMm) ? lo : hi;
}

/** Head–foot extent (mm) of the volume. */
export function zRange(vol: Pick<CtVolume, 'z'>): { from: number; to: number } {
  return { from: vol.z[0]!, to: vol.z[vol.z.length - 1]! };
}

export interface PlannedInstance {
  position: readonly number[];
  orientation: readonly number[];
}

/**
 * The instances (indices into `instances`, ordered inferior → superior) needed to cover [from, to] mm head–foot,
 * plus `margin` slices each side so interpolation and edge detection have neighbours. Checks the stack as
 * `assembleVolume` would (duplicates, gaps) so a fetch is not wasted on a series that cannot be assembled.
 */
export function planSlices(instances: readonly PlannedInstance[], range: { from: number; to: number }, margin = 1, opts: VolumeOptions = DEFAULT_VOLUME): number[] {
  const first = instances[0];
  if (!first) throw new VolumeError('empty', 'no slices');
  const normal = sliceNormal(first.orientation);
  if (!normal || Math.abs(normal[2]) < 0.9) throw new VolumeError('not-axial', 'the slices are not axial');
  const order = instances.map((s, i) => ({ i, z: along(s.position, normal) })).sort((a, b) => a.z - b.z);
  checkSteps(order.map((o) => o.z), opts);
  const lo = Math.min(range.from, range.to);
  const hi = Math.max(range.from, range.to);
  let a = order.findIndex((o) => o.z >= lo);
  let b = order.length - 1 - [...order].reverse().findIndex((o) => o.z <= hi);
  if (a < 0 || b >= order.length || a > b) return [];
  a = Math.max(0, a - margin);
  b = Math.min(order.length - 1, b + margin);
  return order.slice(a, b + 1).map((o) => o.i);
}

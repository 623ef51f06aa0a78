/**
 * Classical localisation and labelling of the vertebral bodies T11–L4 on an axial CT volume (no model).
 *
 * Rule:
 * 1. Bone is HU > `boneHu` (250: cortex and end plates; trabecular bone, even healthy, mostly stays below it, and
 *    soft tissue and discs are far below it).
 * 2. Midline: the bone-weighted centroid of the columns in the central half of the field (spine is midline).
 * 3. Body in the axial plane: along the midline (± 3 mm), the row profile of counts > `bodyHu` (150) over all slices; the
 *    most anterior run of rows ≥ 15 mm deep whose peak count is ≥ half the profile's peak is the vertebral body (the
 *    canal separates it from the arch; the band is narrow and the peak rule strong so that the edge of a
 *    contrast-filled aorta, 170–230 HU just left of the midline, is not taken for it); its lateral extent is the
 *    run of columns around the midline with bone in those rows.
 * 4. Levels along z: per slice, the bone count inside that body box; slices with a count ≥ 30 % of the 70th
 *    percentile belong to a vertebra (cortical ring and end plates), discs have none. Runs ≥ 12 mm are vertebrae;
 *    a run longer than 1.6 × the median run is split at its emptiest slice (a disc lost to partial volume); a run
 *    touching the first or last slice is truncated (kept for counting, never measured).
 * 5. Labels: a level is ribbed when bone lies ≥ `ribLateralMm` from the midline in a band behind the body at its
 *    height (rib necks and shafts; lumbar transverse processes end before that). The lowest ribbed level is T12,
 *    the others are counted from it.
 * Failure modes (documented, not detected): 11 or 13 rib pairs, a hypoplastic 12th rib, lumbar ribs or a
 * lumbarised/sacralised segment shift labels by one level; the sloping shafts of higher ribs crossing a lower level
 * laterally, or a heavily calcified aorta in the midline, can confuse the rib or body cue; bridging osteophytes or
 * fused levels merge two runs; scoliosis defeats the single midline. Counting up from the sacrum is not
 * implemented yet, so a field without ribbed levels is refused.
 */
import type { PathwayRefusal } from '../types.ts';
import { CT_SPINE_PATHWAY } from './select.ts';
import type { CtVolume } from './volume.ts';

export interface BodyBox {
  /** Inclusive row and column bounds of the body in the axial plane. */
  r0: number;
  r1: number;
  c0: number;
  c1: number;
}

export interface Vertebra {
  label: string;
  /** Inclusive slice indices of the run. */
  sliceFrom: number;
  sliceTo: number;
  /** Head–foot extent of the run (slice edges), mm. */
  zBottom: number;
  zTop: number;
  truncated: boolean;
  ribs: boolean;
}

export interface SpineLocalisation {
  midlineColumn: number;
  box: BodyBox;
  /** Bottom to top. */
  vertebrae: Vertebra[];
  warnings: string[];
}

export type LocalisationRefusalCode = 'no-spine' | 'no-labelling-cue' | 'l1-l2-not-in-field';
export type LocalisationRefusal = PathwayRefusal<LocalisationRefusalCode>;

export interface LocaliseOptions {
  boneHu: number;
  /** Lower bone threshold for finding the body in the axial plane: thick slices average thin end plates away. */
  bodyHu: number;
  ribLateralMm: number;
  minVertebraMm: number;
}

export const DEFAULT_LOCALISE: LocaliseOptions = { boneHu: 250, bodyHu: 150, ribLateralMm: 55, minVertebraMm: 12 };

/** Labels from T1 to L5 in cranio-caudal order; counting goes through this list. */
const SPINE_LABELS = [...Array.from({ length: 12 }, (_, i) => `T${i + 1}`), 'L1', 'L2', 'L3', 'L4', 'L5'];

function refuse(code: LocalisationRefusalCode, reason: string): LocalisationRefusal {
  return { refused: true, pathway: CT_SPINE_PATHWAY, code, reason };
}

/** Runs of indices where `keep(i)` holds, as [from, to] inclusive. */
function runs(n: number, keep: (i: number) => boolean): [number, number][] {
  const out: [number, number][] = [];
  let start = -1;
  for (let i = 0; i <= n; i++) {
    if (i < n && keep(i)) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      out.push([start, i - 1]);
      start = -1;
    }
  }
  return out;
}

export function findBody(vol: CtVolume, opts: LocaliseOptions = DEFAULT_LOCALISE): { midlineColumn: number; box: BodyBox } | undefined {
  const { rows, columns, slices, hu } = vol;
  const plane = rows * columns;
  const colCount = new Float64Array(columns);
  const c0 = Math.floor(columns / 4);
  const c1 = Math.ceil((3 * columns) / 4);
  for (let k = 0; k < slices; k++) {
    for (let r = 0; r < rows; r++) {
      const o = k * plane + r * columns;
      for (let c = c0; c < c1; c++) if (hu[o + c]! > opts.boneHu) colCount[c]!++;
    }
  }
  let w = 0;
  let m = 0;
  for (let c = c0; c < c1; c++) {
    w += colCount[c]!;
    m += c * colCount[c]!;
  }
  if (w === 0) return undefined;
  const cx = Math.round(m / w);
  const band = Math.max(1, Math.round(3 / vol.spacing.column));
  const rowCount = new Float64Array(rows);
  for (let k = 0; k < slices; k++) {
    for (let r = 0; r < rows; r++) {
      const o = k * plane + r * columns;
      for (let c = cx - band; c <= cx + band; c++) if (hu[o + c]! > opts.bodyHu) rowCount[r]!++;
    }
  }
  const rowMax = Math.max(...rowCount);
  const rowRuns = runs(rows, (r) => rowCount[r]! > 0.05 * rowMax).filter(([a, b]) => {
    let peak = 0;
    for (let r = a; r <= b; r++) peak = Math.max(peak, rowCount[r]!);
    return (b - a + 1) * vol.spacing.row >= 15 && peak >= 0.5 * rowMax;
  });
  if (rowRuns.length === 0) return undefined;
  const body = vol.rowsGoPosterior ? rowRuns[0]! : rowRuns[rowRuns.length - 1]!;
  const latCount = new Float64Array(columns);
  for (let k = 0; k < slices; k++) {
    for (let r = body[0]; r <= body[1]; r++) {
      const o = k * plane + r * columns;
      for (let c = 0; c < columns; c++) if (hu[o + c]! > opts.bodyHu) latCount[c]!++;
    }
  }
  const latMax = Math.max(...latCount);
  let left = cx;
  let right = cx;
  while (left > 0 && latCount[left - 1]! > 0.05 * latMax) left--;
  while (right < columns - 1 && latCount[right + 1]! > 0.05 * latMax) right++;
  return { midlineColumn: cx, box: { r0: body[0], r1: body[1], c0: left, c1: right } };
}

/**
 * Runs longer than 1.6 × the median run are two bodies whose disc was averaged away (thick slices, a narrow disc):
 * each is split at its lowest-profile slice at least 8 mm from either end (the disc), and the halves are checked
 * again.
 */
function splitMerged(zRuns: [number, number][], profile: Float64Array, step: number): [number, number][] {
  if (zRuns.length < 3) return zRuns;
  const lengths = zRuns.map(([a, b]) => b - a + 1).sort((x, y) => x - y);
  const typical = lengths[lengths.length >> 1]!;
  const edge = Math.max(1, Math.round(8 / step));
  const out: [number, number][] = [];
  const queue = [...zRuns];
  while (queue.length) {
    const [a, b] = queue.shift()!;
    if (b - a + 1 <= 1.6 * typical || b - a + 1 < 2 * edge + 1) {
      out.push([a, b]);
      continue;
    }
    let cut = a + edge;
    for (let k = a + edge; k <= b - edge; k++) if (profile[k]! < profile[cut]!) cut = k;
    queue.unshift([a, cut - 1], [cut + 1, b]);
  }
  return out;
}

function percentile(xs: ArrayLike<number>, p: number): number {
  const s = Array.from(xs).sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))] ?? 0;
}

/** Slices thinner than this are averaged in groups before localisation (see `averageSlices`). */
const LOCALISE_MIN_SLICE_MM = 1.5;

/**
 * The volume with each run of `n` consecutive slices averaged into one (a trailing partial group is dropped). Thin
 * slices carry noise up to 60–70 HU with a sharp kernel, enough to cross the 150 HU body threshold in soft tissue
 * and widen the body box; localisation needs only ~2 mm in z, so it works on this thicker, quieter copy.
 */
export function averageSlices(vol: CtVolume, n: number): CtVolume {
  const plane = vol.rows * vol.columns;
  const slices = Math.floor(vol.slices / n);
  const hu = new Float32Array(slices * plane);
  const z = new Float64Array(slices);
  for (let g = 0; g < slices; g++) {
    const out = hu.subarray(g * plane, (g + 1) * plane);
    for (let k = g * n; k < (g + 1) * n; k++) {
      const src = vol.hu.subarray(k * plane, (k + 1) * plane);
      for (let j = 0; j < plane; j++) out[j]! += src[j]!;
      z[g]! += vol.z[k]! / n;
    }
    for (let j = 0; j < plane; j++) out[j]! /= n;
  }
  return { ...vol, slices, hu, z, spacing: { ...vol.spacing, slice: vol.spacing.slice * n } };
}

/** Localises and labels the vertebral bodies; refuses when the spine, a labelling cue, or L1–L2 are missing. */
export function localiseVertebrae(vol: CtVolume, opts: LocaliseOptions = DEFAULT_LOCALISE): SpineLocalisation | LocalisationRefusal {
  if (vol.spacing.slice > 0 && vol.spacing.slice < LOCALISE_MIN_SLICE_MM && vol.slices >= 4) {
    // Localise on averaged groups of slices, then give the levels back in this volume's slice indices.
    const n = Math.ceil(LOCALISE_MIN_SLICE_MM / vol.spacing.slice);
    const found = localiseOnSlices(averageSlices(vol, n), opts);
    if ('refused' in found) return found;
    const groups = Math.floor(vol.slices / n);
    for (const v of found.vertebrae) {
      v.sliceFrom = v.sliceFrom * n;
      v.sliceTo = v.sliceTo === groups - 1 ? vol.slices - 1 : v.sliceTo * n + n - 1;
      v.zBottom = vol.z[v.sliceFrom]! - vol.spacing.slice / 2;
      v.zTop = vol.z[v.sliceTo]! + vol.spacing.slice / 2;
    }
    return found;
  }
  return localiseOnSlices(vol, opts);
}

function localiseOnSlices(vol: CtVolume, opts: LocaliseOptions): SpineLocalisation | LocalisationRefusal {
  const found = findBody(vol, opts);
  if (!found) return refuse('no-spine', 'no vertebral column was found in the field of view');
  const { box, midlineColumn: cx } = found;
  const { rows, columns, slices, hu, spacing } = vol;
  const plane = rows * columns;
  const profile = new Float64Array(slices);
  for (let k = 0; k < slices; k++) {
    let n = 0;
    for (let r = box.r0; r <= box.r1; r++) {
      const o = k * plane + r * columns;
      for (let c = box.c0; c <= box.c1; c++) if (hu[o + c]! > opts.boneHu) n++;
    }
    profile[k] = n;
  }
  const level = 0.3 * percentile(profile, 0.7);
  const step = spacing.slice;
  const zRuns = splitMerged(
    runs(slices, (k) => profile[k]! > level && profile[k]! > 0).filter(([a, b]) => (b - a + 1) * step >= opts.minVertebraMm),
    profile,
    step,
  );
  if (zRuns.length === 0) return refuse('no-spine', 'no vertebral bodies were found along the spine');

  // Rib band: from 10 mm in front of the body's posterior wall to 30 mm behind it, beyond ribLateralMm laterally.
  const post = vol.rowsGoPosterior ? box.r1 : box.r0;
  const dir = vol.rowsGoPosterior ? 1 : -1;
  const ra = Math.max(0, Math.min(rows - 1, post - dir * Math.round(10 / spacing.row)));
  const rb = Math.max(0, Math.min(rows - 1, post + dir * Math.round(30 / spacing.row)));
  const lat = Math.round(opts.ribLateralMm / spacing.column);
  const vertebrae: Vertebra[] = zRuns.map(([a, b]) => {
    let ribVoxels = 0;
    for (let k = a; k <= b; k++) {
      for (let r = Math.min(ra, rb); r <= Math.max(ra, rb); r++) {
        const o = k * plane + r * columns;
        for (let c = 0; c < columns; c++) if (Math.abs(c - cx) >= lat && hu[o + c]! > opts.boneHu) ribVoxels++;
      }
    }
    return {
      label: '',
      sliceFrom: a,
      sliceTo: b,
      zBottom: vol.z[a]! - step / 2,
      zTop: vol.z[b]! + step / 2,
      truncated: a === 0 || b === slices - 1,
      ribs: ribVoxels * spacing.row * spacing.column * step >= 50, // ≥ 50 mm³ of bone: more than noise or a speck
    };
  });
  const t12 = vertebrae.findIndex((v) => v.ribs);
  if (t12 < 0) return refuse('no-labelling-cue', 'no rib-bearing vertebra is in the field, so the levels cannot be labelled');
  const warnings: string[] = [];
  const t12Index = SPINE_LABELS.indexOf('T12');
  vertebrae.forEach((v, i) => {
    v.label = SPINE_LABELS[t12Index - (i - t12)] ?? (i < t12 ? 'S?' : 'T?');
    if (i > t12 && !v.ribs) warnings.push(`${v.label} shows no ribs; the labels may be shifted`);
  });
  const complete = (label: string): boolean => vertebrae.some((v) => v.label === label && !v.truncated);
  if (!complete('L1') && !complete('L2')) return refuse('l1-l2-not-in-field', 'L1 and L2 are not fully in the field of view');
  return { midlineColumn: cx, box, vertebrae, warnings };
}

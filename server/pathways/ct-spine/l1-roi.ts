/**
 * Trabecular attenuation of L1 (else T12, else L2) for opportunistic osteoporosis screening (Pickhardt 2013: L1
 * ≤ 160 HU ≈ 90 % sensitive, ≤ 110 HU ≈ 90 % specific for DXA osteoporosis; see clinical-anchors).
 *
 * ROI: the slices in the central half of the body's height (end plates excluded); in each, an ellipse centred
 * 10 % of the body's depth in front of the body centre, with semi-axes 60 % of the body's half-width and 50 % of
 * its half-depth. It stays ≥ 40 % of the half-depth inside the cortex laterally and away from the posterior
 * centre, where the basivertebral vein enters (its fat/vessel lowers HU).
 * A level is excluded when it is truncated, when the caller excludes it (e.g. a fractured level, whose compressed
 * trabeculae read high), or when it holds metal (any voxel > 2500 HU: screws and cement make HU meaningless).
 * Contrast: portal-venous and delayed phases raise trabecular HU by about 10 HU on average; the measured value is
 * reported unadjusted with a warning, and an unknown phase also warns (the thresholds were derived on mixed phases).
 */
import { jsonString, TAG, type DicomJsonDataset } from '../../imaging/dicom-json.ts';
import type { PathwayRefusal } from '../types.ts';
import { CT_TAG } from './dicom-tags.ts';
import { CT_SPINE_PATHWAY } from './select.ts';
import type { BodyBox, SpineLocalisation, Vertebra } from './vertebrae.ts';
import type { CtVolume } from './volume.ts';

export type ContrastPhase = 'non-contrast' | 'arterial' | 'portal-venous' | 'delayed' | 'unknown';

export interface RoiStats {
  level: string;
  medianHu: number;
  p25: number;
  p75: number;
  meanHu: number;
  sdHu: number;
  voxels: number;
  /** Where the value falls against the Pickhardt anchors (≤ 110, 110–160, > 160 HU). */
  band: 'low (≤ 110 HU)' | 'indeterminate (110–160 HU)' | 'normal (> 160 HU)';
  excluded: { level: string; reason: string }[];
  warnings: string[];
}

export type RoiRefusal = PathwayRefusal<'no-usable-level'> & { excluded: { level: string; reason: string }[] };

export interface RoiOptions {
  order: readonly string[];
  metalHu: number;
  exclude: readonly string[];
  phase: ContrastPhase;
}

export const DEFAULT_ROI: RoiOptions = { order: ['L1', 'T12', 'L2'], metalHu: 2500, exclude: [], phase: 'unknown' };

/**
 * The contrast phase as far as the metadata tells: Series Description words first (portal/venous, arterial,
 * delayed, non-contrast), then Contrast/Bolus Agent (present → contrast given, phase unknown). An empty agent does
 * not prove a non-contrast scan (many sites never fill it), so everything else is `unknown`.
 */
export function contrastPhaseOf(ds: DicomJsonDataset): ContrastPhase {
  const d = ` ${(jsonString(ds, TAG.SeriesDescription) ?? '').toUpperCase().replace(/[^A-Z0-9]+/g, ' ')} `;
  if (/ (NON ?CON(TRAST)?|NC|PRE ?CON(TRAST)?|NATIVE|W ?O ?CONTRAST|WITHOUT) /.test(d)) return 'non-contrast';
  if (/ (PORTAL|VENOUS|PV|PVP) /.test(d)) return 'portal-venous';
  if (/ (ARTERIAL|ART|CTA) /.test(d)) return 'arterial';
  if (/ (DELAYED|DELAY|EQUILIBRIUM|EXCRETORY) /.test(d)) return 'delayed';
  return 'unknown';
}

/** Whether the metadata records a contrast agent (the phase may still be unknown). */
export function contrastRecorded(ds: DicomJsonDataset): boolean {
  return (jsonString(ds, CT_TAG.ContrastBolusAgent) ?? '').trim() !== '';
}

function quantile(sorted: Float32Array, q: number): number {
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Whether any voxel of the level's body box is above `metalHu` (screws and cement make its HU and heights meaningless). */
export function hasMetal(vol: CtVolume, loc: SpineLocalisation, v: Vertebra, metalHu: number): boolean {
  const plane = vol.rows * vol.columns;
  const { r0, r1, c0, c1 } = loc.box;
  for (let k = v.sliceFrom; k <= v.sliceTo; k++) {
    for (let r = r0; r <= r1; r++) {
      const o = k * plane + r * vol.columns;
      for (let c = c0; c <= c1; c++) if (vol.hu[o + c]! > metalHu) return true;
    }
  }
  return false;
}

/** The ROI of one level: an ellipse (centre and semi-axes in rows/columns) on the slices of its central half. */
export interface RoiGeometry {
  rowCentre: number;
  columnCentre: number;
  rowSemiAxis: number;
  columnSemiAxis: number;
  /** Head–foot range (mm) of the slices used. */
  zFrom: number;
  zTo: number;
}

/** Where the ROI of a level lies (the rule in the header); shared by the measurement and the overlays. */
export function roiGeometry(vol: Pick<CtVolume, 'rowsGoPosterior'>, box: BodyBox, midlineColumn: number, v: Pick<Vertebra, 'zBottom' | 'zTop'>): RoiGeometry {
  const { r0, r1, c0, c1 } = box;
  const halfDepth = (r1 - r0) / 2;
  const halfWidth = (c1 - c0) / 2;
  const anterior = vol.rowsGoPosterior ? -1 : 1;
  const height = v.zTop - v.zBottom;
  return {
    rowCentre: (r0 + r1) / 2 + anterior * 0.1 * 2 * halfDepth,
    columnCentre: midlineColumn,
    rowSemiAxis: 0.5 * halfDepth,
    columnSemiAxis: 0.6 * halfWidth,
    zFrom: v.zBottom + height / 4,
    zTo: v.zTop - height / 4,
  };
}

/** HU values inside the trabecular ROI of one level. */
export function roiValues(vol: CtVolume, loc: SpineLocalisation, v: Vertebra): Float32Array {
  const { rowCentre: rc, columnCentre: cc, rowSemiAxis: ar, columnSemiAxis: ac, zFrom, zTo } = roiGeometry(vol, loc.box, loc.midlineColumn, v);
  const out: number[] = [];
  const plane = vol.rows * vol.columns;
  for (let k = v.sliceFrom; k <= v.sliceTo; k++) {
    const z = vol.z[k]!;
    if (z < zFrom || z > zTo) continue;
    for (let r = Math.ceil(rc - ar); r <= Math.floor(rc + ar); r++) {
      for (let c = Math.ceil(cc - ac); c <= Math.floor(cc + ac); c++) {
        if (((r - rc) / ar) ** 2 + ((c - cc) / ac) ** 2 <= 1) out.push(vol.hu[k * plane + r * vol.columns + c]!);
      }
    }
  }
  return Float32Array.from(out);
}

/** The trabecular attenuation of the first usable level in `order`, or a refusal listing why each was excluded. */
export function measureTrabecularHu(vol: CtVolume, loc: SpineLocalisation, opts: Partial<RoiOptions> = {}): RoiStats | RoiRefusal {
  const o = { ...DEFAULT_ROI, ...opts };
  const excluded: { level: string; reason: string }[] = [];
  for (const label of o.order) {
    const v = loc.vertebrae.find((x) => x.label === label);
    if (!v) excluded.push({ level: label, reason: 'not in the field of view' });
    else if (v.truncated) excluded.push({ level: label, reason: 'only partly in the field of view' });
    else if (o.exclude.includes(label)) excluded.push({ level: label, reason: 'excluded by the caller (e.g. fractured)' });
    else if (hasMetal(vol, loc, v, o.metalHu)) excluded.push({ level: label, reason: `metal (> ${o.metalHu} HU) in the vertebral body` });
    else {
      const values = roiValues(vol, loc, v).sort();
      if (values.length < 50) {
        excluded.push({ level: label, reason: 'the trabecular region is too small to measure' });
        continue;
      }
      let sum = 0;
      let sq = 0;
      for (const x of values) {
        sum += x;
        sq += x * x;
      }
      const mean = sum / values.length;
      const median = quantile(values, 0.5);
      const warnings: string[] = [];
      if (label !== 'L1') warnings.push(`L1 was not usable; ${label} was measured instead`);
      if (o.phase === 'unknown') warnings.push('contrast phase unknown: contrast raises trabecular HU (about 10 HU portal-venous), so a value near a threshold is uncertain');
      else if (o.phase !== 'non-contrast') warnings.push(`${o.phase} contrast: trabecular HU reads about 10 HU higher than without contrast; value reported unadjusted`);
      return {
        level: label,
        medianHu: median,
        p25: quantile(values, 0.25),
        p75: quantile(values, 0.75),
        meanHu: mean,
        sdHu: Math.sqrt(Math.max(0, sq / values.length - mean * mean)),
        voxels: values.length,
        band: median <= 110 ? 'low (≤ 110 HU)' : median <= 160 ? 'indeterminate (110–160 HU)' : 'normal (> 160 HU)',
        excluded,
        warnings,
      };
    }
  }
  return { refused: true, pathway: CT_SPINE_PATHWAY, code: 'no-usable-level', reason: 'none of L1, T12 or L2 could be measured', excluded };
}

/**
 * The CT out-of-distribution gate: is this volume's HU scale and acquisition close enough to what the CT spine
 * pathway was built and checked on for its trabecular attenuation to mean what the T-score estimate assumes?
 * Trabecular HU is read as an absolute number (Pickhardt's 110 / 160 HU anchors, the manifest's HU → T-score line),
 * so a scanner whose water/air calibration drifted, a wrong rescale intercept or slope, or a non-standard kVp or
 * reconstruction moves the estimate with no sign in the bone itself. Opportunistic-CT readers check reference tissues
 * on the same images; so does this gate, at the attenuation level (L1, else T12, else L2: its central half).
 *
 * Reference tissues, found by geometry and by relative contrast only (never by an absolute HU window, which would
 * hide the very shift being looked for):
 * - paraspinal muscle: the half-sample mode of a box behind the vertebral body, 25–50 mm behind its posterior
 *   surface and 18–45 mm either side of the midline (the erector spinae), so bone and fat in the box do not move it;
 * - subcutaneous fat: a band 0–10 mm inside the skin on the lateral and anterior body wall (where the skin is in the
 *   field with air outside it), split into two classes by Otsu's threshold; the lower class's mode is fat, when the
 *   two classes are at least 60 HU apart and the lower holds ≥ 15 % of the band (else fat is "not found");
 * - air: the voxels 3–10 mm outside the same skin points (padding outside the reconstruction circle excluded).
 *
 * Expected ranges (generous around adult non-contrast values, so normal variation, contrast and kVp pass):
 * - fat −160 to −50 HU: subcutaneous fat reads about −120 to −80 HU at 120 kVp and lower at 80 kVp; −150 to −50 HU
 *   is the standard adipose window of Yoshizumi et al. (Radiology 1999), widened by 10 HU below for low kVp;
 * - muscle 0 to 100 HU: normal skeletal muscle about +30 to +60 HU non-contrast (Goodpaster et al., J Appl Physiol
 *   2000: normal-density muscle 30–150 HU, low-density 0–29 HU in older adults); 0 admits fatty infiltration and 100
 *   admits portal-venous enhancement;
 * - muscle − fat 90 to 230 HU: a scale (slope) error changes the contrast even when one tissue still looks plausible;
 * - air −1040 to −960 HU: air is −1000 HU by definition of the scale; the median of hundreds of voxels on a
 *   calibrated scanner lies within a few HU of it (−1000 to −997 on the generator's studies), so ±40 HU leaves room
 *   for streaks at the body edge and still catches an intercept error of about 40 HU or more when air is in the field;
 * - pixel spacing 0.4 to 1.0 mm: the pathway was built on 0.6–0.9 mm; a 512 matrix over a 200–500 mm field;
 * - noise SD ≤ 90 HU (air outside the body, else the muscle box; robust): the pathway was checked up to ≈ 65 HU
 *   (0.625 mm slices, bone kernel);
 * - kVp 80 to 140 when the header records it (the range of clinical body CT the HU anchors come from).
 * A reference tissue not in the field is not a failure (a tight spine reconstruction has no skin); the gate is
 * outside when any measured check is out of its range. `distance` is the largest excess as a fraction of the
 * check's half-width beyond its edge plus 1 (≤ 1 inside), so the assessment can show it as `{distance, threshold: 1}`.
 */
import type { CtVolume } from './volume.ts';
import type { BodyBox } from './vertebrae.ts';

export interface CtGateCheck {
  name: string;
  /** The measured value; null when the reference is not in the field (then `ok` is null). */
  value: number | null;
  range: [number, number];
  unit: string;
  ok: boolean | null;
  /** Where the value was measured, or why it was not. */
  note: string;
}

export interface CtGate {
  outside: boolean;
  checks: CtGateCheck[];
  /** Plain words naming each failed check (null when inside). */
  reason: string | null;
  /** ≤ 1 inside; how far beyond its range the worst check is (header). */
  distance: number;
}

export interface GateRanges {
  fatHu: [number, number];
  muscleHu: [number, number];
  muscleMinusFatHu: [number, number];
  airHu: [number, number];
  pixelMm: [number, number];
  noiseSdHu: [number, number];
  kvp: [number, number];
}

export const DEFAULT_GATE: GateRanges = {
  fatHu: [-160, -50],
  muscleHu: [0, 100],
  muscleMinusFatHu: [90, 230],
  airHu: [-1040, -960],
  pixelMm: [0.4, 1.0],
  noiseSdHu: [0, 90],
  kvp: [80, 140],
};

/** Where the gate measures: slices of the attenuation level and the body box with its midline. */
export interface GateSite {
  sliceFrom: number;
  sliceTo: number;
  box: BodyBox;
  midlineColumn: number;
  /** The level measured (for the notes). */
  level: string;
}

export interface GateInputs {
  /** kVp from the header, when recorded. */
  kvp?: number;
}

/** Half-sample mode (Bickel & Frühwirth 2006) of ascending values: robust to a minority of other tissue. */
export function halfSampleMode(sorted: ArrayLike<number>): number {
  let lo = 0;
  let n = sorted.length;
  if (n === 0) return NaN;
  while (n > 3) {
    const h = Math.ceil(n / 2);
    let best = lo;
    let width = Infinity;
    for (let i = lo; i + h - 1 < lo + n; i++) {
      const w = sorted[i + h - 1]! - sorted[i]!;
      if (w < width) {
        width = w;
        best = i;
      }
    }
    lo = best;
    n = h;
  }
  if (n === 3) {
    const a = sorted[lo]!, b = sorted[lo + 1]!, c = sorted[lo + 2]!;
    return b - a < c - b ? (a + b) / 2 : b - a > c - b ? (b + c) / 2 : b;
  }
  return n === 2 ? (sorted[lo]! + sorted[lo + 1]!) / 2 : sorted[lo]!;
}

function sortedOf(xs: number[]): Float64Array {
  return Float64Array.from(xs).sort();
}

function quantile(sorted: ArrayLike<number>, q: number): number {
  const pos = q * (sorted.length - 1);
  const i = Math.floor(pos);
  const j = Math.min(sorted.length - 1, i + 1);
  return sorted[i]! + (sorted[j]! - sorted[i]!) * (pos - i);
}

/** Otsu's threshold over 5 HU bins of values clipped to [−600, 400]. */
function otsu(values: readonly number[]): number {
  const lo = -600, bin = 5, nb = 200;
  const h = new Float64Array(nb);
  for (const v of values) h[Math.min(nb - 1, Math.max(0, Math.floor((v - lo) / bin)))]! += 1;
  const total = values.length;
  let sumAll = 0;
  for (let i = 0; i < nb; i++) sumAll += i * h[i]!;
  let w0 = 0, sum0 = 0, best = -1, at = 0;
  for (let i = 0; i < nb - 1; i++) {
    w0 += h[i]!;
    sum0 += i * h[i]!;
    const w1 = total - w0;
    if (w0 === 0 || w1 === 0) continue;
    const between = w0 * w1 * (sum0 / w0 - (sumAll - sum0) / w1) ** 2;
    if (between > best) {
      best = between;
      at = i;
    }
  }
  return lo + (at + 1) * bin;
}

/** Slices spread over the central half of the site, at most `n`. */
function siteSlices(site: GateSite, n: number): number[] {
  const len = site.sliceTo - site.sliceFrom;
  const a = Math.round(site.sliceFrom + 0.25 * len);
  const b = Math.max(a, Math.round(site.sliceFrom + 0.75 * len));
  const out = new Set<number>();
  for (let i = 0; i < n; i++) out.add(Math.round(a + ((b - a) * i) / Math.max(1, n - 1)));
  return [...out];
}

const AIR_CUT = -500; // any air/body boundary: air −1000, fat −100, well apart even with a scale shift of ±300 HU
const PADDING_BELOW = -1500; // values below are outside the reconstruction circle, not air

/** Skin points along rows (lateral walls) and columns (anterior wall) of one slice, with the band and air values. */
function skinSamples(vol: CtVolume, k: number, site: GateSite, band: number[], air: number[]): void {
  const { rows, columns } = vol;
  const plane = rows * columns;
  const at = (r: number, c: number): number => vol.hu[k * plane + r * columns + c]!;
  const inMm = (n: number, mm: number): number => Math.max(1, Math.round(mm / n));
  const bandCols = inMm(vol.spacing.column, 10), bandRows = inMm(vol.spacing.row, 10);
  const gapCols = inMm(vol.spacing.column, 3), gapRows = inMm(vol.spacing.row, 3);
  // The skin edge is blurred by the kernel: the first 1.5 mm are a mix of air and fat.
  const skipCols = inMm(vol.spacing.column, 1.5), skipRows = inMm(vol.spacing.row, 1.5);
  const airCols = inMm(vol.spacing.column, 10), airRows = inMm(vol.spacing.row, 10);
  const isAir = (v: number): boolean => v < AIR_CUT && v > PADDING_BELOW;
  // Along a line of values: the first body voxel after at least 3 air voxels; band inside, air outside.
  const walk = (get: (i: number) => number, len: number, bandN: number, gapN: number, airN: number, skipN: number): void => {
    let run = 0;
    for (let i = 0; i < len; i++) {
      const v = get(i);
      if (isAir(v)) run++;
      else if (v >= AIR_CUT && run >= 3) {
        for (let j = i + skipN; j < Math.min(len, i + bandN); j++) {
          const b = get(j);
          if (b >= AIR_CUT) band.push(b);
        }
        for (let j = i - gapN; j > Math.max(-1, i - airN); j--) {
          const a = get(j);
          if (isAir(a)) air.push(a);
        }
        return;
      } else run = 0;
    }
  };
  // lateral walls: every 4th row from the front of the field to the back of the vertebral body
  const back = vol.rowsGoPosterior ? site.box.r1 : site.box.r0;
  const [rFrom, rTo] = vol.rowsGoPosterior ? [0, back] : [back, rows - 1];
  for (let r = rFrom; r <= rTo; r += 4) {
    walk((i) => at(r, i), columns, bandCols, gapCols, airCols, skipCols);
    walk((i) => at(r, columns - 1 - i), columns, bandCols, gapCols, airCols, skipCols);
  }
  // anterior wall: every 4th column within 60 mm of the midline
  const half = Math.round(60 / vol.spacing.column);
  for (let c = Math.max(0, site.midlineColumn - half); c <= Math.min(columns - 1, site.midlineColumn + half); c += 4) {
    if (vol.rowsGoPosterior) walk((i) => at(i, c), rows, bandRows, gapRows, airRows, skipRows);
    else walk((i) => at(rows - 1 - i, c), rows, bandRows, gapRows, airRows, skipRows);
  }
}

/** The paraspinal muscle box of one slice (header). */
function muscleSamples(vol: CtVolume, k: number, site: GateSite, out: number[]): void {
  const { rows, columns } = vol;
  const plane = rows * columns;
  const dir = vol.rowsGoPosterior ? 1 : -1;
  const edge = vol.rowsGoPosterior ? site.box.r1 : site.box.r0;
  const rA = edge + dir * Math.round(8 / vol.spacing.row);
  const rB = edge + dir * Math.round(30 / vol.spacing.row);
  const [r0, r1] = [Math.max(0, Math.min(rA, rB)), Math.min(rows - 1, Math.max(rA, rB))];
  const cIn = Math.round(15 / vol.spacing.column), cOut = Math.round(40 / vol.spacing.column);
  for (let r = r0; r <= r1; r++) {
    for (const side of [-1, 1]) {
      for (let d = cIn; d <= cOut; d++) {
        const c = site.midlineColumn + side * d;
        if (c < 0 || c >= columns) continue;
        const v = vol.hu[k * plane + r * columns + c]!;
        if (v > PADDING_BELOW) out.push(v);
      }
    }
  }
}

function check(name: string, value: number | null, range: [number, number], unit: string, note: string): CtGateCheck {
  return { name, value, range, unit, ok: value === null ? null : value >= range[0] && value <= range[1], note };
}

function fmt(v: number, unit: string): string {
  return unit === 'mm' ? `${v.toFixed(2)} mm` : unit === 'kVp' ? `${Math.round(v)} kVp` : `${Math.round(v)} ${unit}`;
}

/** What each failed check means, in plain words. */
const MEANING: Record<string, string> = {
  'subcutaneous fat': 'the HU scale may be off',
  'paraspinal muscle': 'the HU scale may be off',
  'muscle − fat contrast': 'the HU scale may be stretched or compressed',
  'air outside the body': 'the HU scale may be off',
  'pixel spacing': 'the reconstruction is outside what the analysis was checked on',
  'noise SD': 'the images are noisier than the analysis was checked on',
  'tube voltage': 'HU at this tube voltage differ from the 120 kVp scale the thresholds assume',
};

/** The gate at one site of one volume (header). */
export function ctGate(vol: CtVolume, site: GateSite, inputs: GateInputs = {}, ranges: GateRanges = DEFAULT_GATE): CtGate {
  const band: number[] = [];
  const air: number[] = [];
  const muscle: number[] = [];
  for (const k of siteSlices(site, 5)) {
    skinSamples(vol, k, site, band, air);
    muscleSamples(vol, k, site, muscle);
  }
  const checks: CtGateCheck[] = [];

  let fatHu: number | null = null;
  let fatNote = 'no skin with air outside it in the field';
  if (band.length >= 50) {
    const t = otsu(band);
    const low = band.filter((v) => v < t);
    const high = band.filter((v) => v >= t);
    const lowMode = low.length ? halfSampleMode(sortedOf(low)) : NaN;
    const highMode = high.length ? halfSampleMode(sortedOf(high)) : NaN;
    if (low.length >= 0.15 * band.length && highMode - lowMode >= 60) {
      fatHu = lowMode;
      fatNote = `mode of the fat class of ${band.length} voxels 1.5–10 mm inside the skin at ${site.level}`;
    } else {
      // One tissue under the skin: in adults that is the subcutaneous fat (thicker than the band).
      fatHu = halfSampleMode(sortedOf(band));
      fatNote = `mode of ${band.length} voxels 1.5–10 mm inside the skin at ${site.level} (one tissue)`;
    }
  }
  checks.push(check('subcutaneous fat', fatHu, ranges.fatHu, 'HU', fatNote));

  let muscleHu: number | null = null;
  let muscleNoise: number | null = null;
  // Fat reaching into the box (a thick posterior wall) and bone are left out relative to the fat found, not by an
  // absolute window: muscle is at least 60 HU above fat and bone more than 400 HU above it.
  const soft = fatHu === null ? muscle : muscle.filter((v) => v >= fatHu! + 60 && v < fatHu! + 400);
  if (soft.length >= 100) {
    const s = sortedOf(soft);
    muscleHu = halfSampleMode(s);
    const near = sortedOf(soft.filter((v) => Math.abs(v - muscleHu!) <= 200));
    const med = quantile(near, 0.5);
    muscleNoise = 1.4826 * quantile(sortedOf(Array.from(near, (v) => Math.abs(v - med))), 0.5);
  }
  checks.push(check('paraspinal muscle', muscleHu, ranges.muscleHu, 'HU', muscleHu === null ? 'the paraspinal region is not in the field' : `mode of ${soft.length} voxels 8–30 mm behind ${site.level}, 15–40 mm from the midline`));
  checks.push(check('muscle − fat contrast', muscleHu !== null && fatHu !== null ? muscleHu - fatHu : null, ranges.muscleMinusFatHu, 'HU', fatHu === null || muscleHu === null ? 'needs both fat and muscle' : 'paraspinal muscle minus subcutaneous fat'));

  let airHu: number | null = null;
  let airNoise: number | null = null;
  if (air.length >= 50) {
    const s = sortedOf(air);
    airHu = quantile(s, 0.5);
    // Upper half only: scanners clip air's lower tail (often at −1024 HU), which would shrink a symmetric estimate.
    airNoise = quantile(s, 0.8413) - airHu;
  }
  checks.push(check('air outside the body', airHu, ranges.airHu, 'HU', airHu === null ? 'no air beside the body in the field' : `median of ${air.length} voxels 3–10 mm outside the skin`));

  const pixel = Math.max(vol.spacing.row, vol.spacing.column);
  checks.push(check('pixel spacing', pixel, ranges.pixelMm, 'mm', 'the larger in-plane spacing'));
  const noise = airNoise ?? muscleNoise;
  checks.push(check('noise SD', noise, ranges.noiseSdHu, 'HU', airNoise !== null ? 'air outside the body (upper half-width)' : muscleNoise !== null ? 'paraspinal muscle (1.4826 × MAD)' : 'no homogeneous region found'));
  checks.push(check('tube voltage', inputs.kvp ?? null, ranges.kvp, 'kVp', inputs.kvp === undefined ? 'not recorded in the header' : 'KVP (0018,0060)'));

  let distance = 0;
  for (const c of checks) {
    if (c.value === null) continue;
    const half = (c.range[1] - c.range[0]) / 2;
    const centre = (c.range[0] + c.range[1]) / 2;
    distance = Math.max(distance, half > 0 ? Math.abs(c.value - centre) / half : 0);
  }
  const failed = checks.filter((c) => c.ok === false);
  const reason = failed.length
    ? failed.map((c) => `${c.name} reads ${fmt(c.value!, c.unit)}, outside ${fmt(c.range[0], c.unit).replace(/ (HU|mm|kVp)$/, '')}–${fmt(c.range[1], c.unit)}`).join('; ') +
      ` — ${[...new Set(failed.map((c) => MEANING[c.name] ?? 'outside what the analysis was checked on'))].join('; ')}`
    : null;
  return { outside: failed.length > 0, checks, reason, distance };
}

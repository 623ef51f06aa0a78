/**
 * Vertebral heights on the mid-sagittal plane and the Genant semi-quantitative grade by explicit ratios.
 *
 * Heights: on the level's own midline column and body box (`levelBody`; the midline averaged over ± 1 column), the
 * body's upper and lower surfaces along z at seven depths from 15 % to 85 %, each at the half-maximum of its own
 * edge (`endPlateEdges`); anterior, middle and posterior heights from a parabola fitted to each surface, at the
 * walls and the middle (`sagittalHeights`). Slices thicker than
 * `maxSliceMm` are refused: the end plates are then too blurred for a 20 % height difference to be measured.
 * Ratios: wedge Ha/Hp, biconcave Hm/Hp, crush Hp / mean Hp of the complete neighbouring levels. Height loss =
 * 1 − the smallest ratio; grade 0 below 20 %, 1 for 20–25 %, 2 for 25–40 %, 3 above 40 % (Genant).
 * Limits: a neighbour that is itself fractured lowers the crush reference; the single midline plane misses
 * lateral wedging and scoliosis.
 */
import type { PathwayRefusal } from '../types.ts';
import { CT_SPINE_PATHWAY } from './select.ts';
import { findBody, type BodyBox, type SpineLocalisation, type Vertebra } from './vertebrae.ts';
import type { CtVolume } from './volume.ts';

export interface LevelMorphometry {
  level: string;
  ha: number;
  hm: number;
  hp: number;
  ratios: { wedge: number; biconcave: number; crush: number | null };
  heightLoss: number;
  grade: 0 | 1 | 2 | 3;
  /** Which ratio set the grade. */
  shape: 'wedge' | 'biconcave' | 'crush' | 'none';
}

export type MorphometryRefusal = PathwayRefusal<'slices-too-thick'>;

export interface MorphometryOptions {
  edgeHu: number;
  maxSliceMm: number;
  /** Levels neither measured nor used as a crush reference (e.g. metal in the body). */
  exclude?: readonly string[];
}

export const DEFAULT_MORPHOMETRY: MorphometryOptions = { edgeHu: 200, maxSliceMm: 2.5 };

export function genantGrade(heightLoss: number): 0 | 1 | 2 | 3 {
  if (heightLoss < 0.2) return 0;
  if (heightLoss <= 0.25) return 1;
  if (heightLoss <= 0.4) return 2;
  return 3;
}

function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The body's upper and lower surfaces (patient z, mm) at one row of the mid-sagittal plane, or undefined when none
 * is found. Profile: the mean of the midline column ± 1 along z over the level's slices ± 3 mm. Each surface is
 * the half-maximum of its own edge: the level halfway between the brightest sample of that half of the body (the
 * end plate, or the trabecular bone where a thin end plate fell between slices) and the disc beyond it (median of
 * the samples outside the level's slices on that side); the outermost sample above that level, interpolated
 * linearly to the next sample outwards. A half-maximum is where a blurred step crosses its true position, so slice
 * thickness and end-plate brightness do not bias the height (a fixed threshold did, by 2–3 mm at 2 mm slices).
 * Exported so the overlay draws the heights exactly where they were measured.
 */
export function endPlateEdges(vol: CtVolume, midlineColumn: number, v: Pick<Vertebra, 'sliceFrom' | 'sliceTo'>, row: number, edgeHu: number): { bottom: number; top: number } | undefined {
  const plane = vol.rows * vol.columns;
  const margin = Math.max(1, Math.round(3 / vol.spacing.slice));
  const a = Math.max(0, v.sliceFrom - margin);
  const b = Math.min(vol.slices - 1, v.sliceTo + margin);
  const sample = (k: number): number => {
    let s = 0;
    for (let c = midlineColumn - 1; c <= midlineColumn + 1; c++) s += vol.hu[k * plane + row * vol.columns + c]!;
    return s / 3;
  };
  const p = Array.from({ length: b - a + 1 }, (_, i) => sample(a + i));
  const from = v.sliceFrom - a;
  const to = v.sliceTo - a;
  const mid = (from + to) / 2;
  const below = p.slice(0, from);
  const above = p.slice(to + 1);
  const discBelow = median(below.length ? below : above);
  const discAbove = median(above.length ? above : below);
  if (!Number.isFinite(discBelow) || !Number.isFinite(discAbove)) return undefined;
  const peakBelow = Math.max(...p.slice(0, Math.floor(mid) + 1));
  const peakAbove = Math.max(...p.slice(Math.ceil(mid)));
  // An edge is only an edge when the body stands out from the disc by more than noise (`edgeHu` − 150 ≈ 50 HU).
  const minStep = edgeHu - 150;
  if (peakBelow - discBelow < minStep || peakAbove - discAbove < minStep) return undefined;
  const levelBelow = (peakBelow + discBelow) / 2;
  const levelAbove = (peakAbove + discAbove) / 2;
  const first = p.findIndex((x, i) => i <= mid && x > levelBelow);
  let last = -1;
  for (let i = p.length - 1; i >= mid; i--) if (p[i]! > levelAbove) { last = i; break; }
  if (first < 0 || last < 0) return undefined;
  const cross = (inside: number, outside: number, level: number): number => {
    if (outside < 0 || outside >= p.length) return inside;
    const f = (p[inside]! - level) / (p[inside]! - p[outside]!);
    return inside + (outside - inside) * f;
  };
  // Slice index → z by the (regular) slice step from slice a.
  const z0 = vol.z[a]!;
  return { bottom: z0 + cross(first, first - 1, levelBelow) * vol.spacing.slice, top: z0 + cross(last, last + 1, levelAbove) * vol.spacing.slice };
}

/** Where a height is drawn: its row (fractional at the walls) and the two surfaces, patient z mm. */
export interface HeightLine {
  row: number;
  bottom: number;
  top: number;
}

/** Depth fractions (from the front of the body box) where the surfaces are found. */
const SAMPLE_FRACTIONS = [0.15, 0.25, 0.35, 0.5, 0.65, 0.75, 0.85] as const;

/** Least-squares parabola y = a + b·u + c·u² through the points; undefined when they do not determine one. */
function fitParabola(us: readonly number[], ys: readonly number[]): ((u: number) => number) | undefined {
  // Normal equations of the 3 × 3 system, solved by Cramer's rule.
  const s = [0, 0, 0, 0, 0];
  const t = [0, 0, 0];
  us.forEach((u, i) => {
    for (let k = 0; k < 5; k++) s[k]! += u ** k;
    for (let k = 0; k < 3; k++) t[k]! += ys[i]! * u ** k;
  });
  const m = [
    [s[0]!, s[1]!, s[2]!],
    [s[1]!, s[2]!, s[3]!],
    [s[2]!, s[3]!, s[4]!],
  ];
  const det3 = (x: number[][]): number =>
    x[0]![0]! * (x[1]![1]! * x[2]![2]! - x[1]![2]! * x[2]![1]!) - x[0]![1]! * (x[1]![0]! * x[2]![2]! - x[1]![2]! * x[2]![0]!) + x[0]![2]! * (x[1]![0]! * x[2]![1]! - x[1]![1]! * x[2]![0]!);
  const d = det3(m);
  if (Math.abs(d) < 1e-9) return undefined;
  const col = (j: number): number => det3(m.map((row, i) => row.map((v, k) => (k === j ? t[i]! : v)))) / d;
  const [a, b, c] = [col(0), col(1), col(2)];
  return (u) => a + b * u + c * u * u;
}

/**
 * Anterior, middle and posterior heights of a level on the mid-sagittal plane. The surfaces are found at seven
 * depths from 15 % to 85 % of the body box (inside the walls, whose own cortex has no trabecular inside to give an
 * edge); each surface is fitted by a least-squares parabola over depth (u = −1 anterior wall … +1 posterior wall)
 * and the heights are taken from the fits at the walls, as a reader measures them, and at the middle. At the walls
 * so that a wedge is not under-read (at 15 %/85 % a 30 % wedge reads as 22 %); seven depths rather than three
 * halve the noise the extrapolation to the walls adds. Undefined when fewer than five depths, or neither of the
 * two nearest a wall, give both surfaces.
 */
export function sagittalHeights(vol: CtVolume, midlineColumn: number, box: { r0: number; r1: number }, v: Pick<Vertebra, 'sliceFrom' | 'sliceTo'>, edgeHu: number): [HeightLine, HeightLine, HeightLine] | undefined {
  const rowAt = (f: number): number => (vol.rowsGoPosterior ? box.r0 + f * (box.r1 - box.r0) : box.r1 - f * (box.r1 - box.r0));
  const us: number[] = [];
  const bottoms: number[] = [];
  const tops: number[] = [];
  SAMPLE_FRACTIONS.forEach((f) => {
    const e = endPlateEdges(vol, midlineColumn, v, Math.round(rowAt(f)), edgeHu);
    if (!e) return;
    us.push(2 * f - 1);
    bottoms.push(e.bottom);
    tops.push(e.top);
  });
  if (us.length < 5 || us[0]! > 2 * SAMPLE_FRACTIONS[1] - 1 || us[us.length - 1]! < 2 * SAMPLE_FRACTIONS[5] - 1) return undefined;
  const bottom = fitParabola(us, bottoms);
  const top = fitParabola(us, tops);
  if (!bottom || !top) return undefined;
  const at = (u: number, row: number): HeightLine => ({ row, bottom: bottom(u), top: top(u) });
  return [at(-1, rowAt(0)), at(0, Math.round(rowAt(0.5))), at(1, rowAt(1))];
}

/**
 * One level's own midline column and body box: `findBody` on the level's slices (end plates included: they give
 * every row of the body bone above 150 HU even when the trabecular bone is below it), else the study's. With a scoliosis the bodies sit off the study's midline by 10–25 mm, and the study's box is the union of
 * all levels; a plane off a body's centre skims its side and the box's walls lie behind a smaller thoracic body,
 * so heights there came out 9–12 mm short and read as fractures.
 */
export function levelBody(vol: CtVolume, loc: Pick<SpineLocalisation, 'midlineColumn' | 'box'>, v: Pick<Vertebra, 'sliceFrom' | 'sliceTo'>): { midlineColumn: number; box: BodyBox } {
  const plane = vol.rows * vol.columns;
  const from = v.sliceFrom;
  const to = v.sliceTo;
  const view: CtVolume = { ...vol, slices: to - from + 1, z: vol.z.subarray(from, to + 1), hu: vol.hu.subarray(from * plane, (to + 1) * plane) };
  const found = findBody(view);
  // A level's own box must overlap the study's (else it found something else, e.g. a vessel): keep the study's.
  if (!found || found.box.r1 < loc.box.r0 || found.box.r0 > loc.box.r1 || Math.abs(found.midlineColumn - loc.midlineColumn) * vol.spacing.column > 30) {
    return { midlineColumn: loc.midlineColumn, box: loc.box };
  }
  return found;
}

export function measureMorphometry(vol: CtVolume, loc: SpineLocalisation, opts: MorphometryOptions = DEFAULT_MORPHOMETRY): LevelMorphometry[] | MorphometryRefusal {
  if (vol.spacing.slice > opts.maxSliceMm) {
    return { refused: true, pathway: CT_SPINE_PATHWAY, code: 'slices-too-thick', reason: `slices ${vol.spacing.slice} mm apart are too coarse for vertebral heights (at most ${opts.maxSliceMm} mm)` };
  }
  const exclude = opts.exclude ?? [];
  const complete = loc.vertebrae.filter((v) => !v.truncated && !exclude.includes(v.label));
  const heights = complete.map((v) => {
    const own = levelBody(vol, loc, v);
    const lines = sagittalHeights(vol, own.midlineColumn, own.box, v, opts.edgeHu);
    const [ha, hm, hp] = lines ? lines.map((l) => l.top - l.bottom) : [NaN, NaN, NaN];
    return { v, ha: ha!, hm: hm!, hp: hp! };
  });
  return heights.map(({ v, ha, hm, hp }, i) => {
    const neighbours = [heights[i - 1], heights[i + 1]].filter((h) => h && Number.isFinite(h.hp) && Math.abs(loc.vertebrae.indexOf(h.v) - loc.vertebrae.indexOf(v)) === 1);
    const ref = neighbours.length ? neighbours.reduce((s, h) => s + h!.hp, 0) / neighbours.length : NaN;
    const ratios = { wedge: ha / hp, biconcave: hm / hp, crush: Number.isFinite(ref) ? hp / ref : null };
    const candidates: [LevelMorphometry['shape'], number][] = [['wedge', ratios.wedge], ['biconcave', ratios.biconcave]];
    if (ratios.crush !== null) candidates.push(['crush', ratios.crush]);
    const [shape, min] = candidates.reduce((m, c) => (c[1] < m[1] ? c : m));
    const heightLoss = Math.max(0, 1 - min);
    const grade = genantGrade(heightLoss);
    return { level: v.label, ha, hm, hp, ratios, heightLoss, grade, shape: grade === 0 ? 'none' : shape };
  });
}

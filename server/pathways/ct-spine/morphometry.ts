/**
 * Vertebral heights on the mid-sagittal plane and the Genant semi-quantitative grade by explicit ratios.
 *
 * Heights: on the level's own midline column and body box (`levelBody`; the midline averaged over ± 1 column), the body's upper and lower surfaces along z at 15 %,
 * 50 % and 85 % of the body's depth, each at the half-maximum of its own edge (`endPlateEdges`); anterior and
 * posterior heights at the walls by the parabola through the three (`sagittalHeights`). Slices thicker than
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
const SAMPLE_FRACTIONS = [0.15, 0.5, 0.85] as const;

/**
 * Anterior, middle and posterior heights of a level on the mid-sagittal plane. The surfaces are found at 15 %, 50 %
 * and 85 % of the body box's depth (inside the walls, whose own cortex has no trabecular inside to give an edge);
 * the anterior and posterior heights are then taken at the walls themselves, as a reader measures them, by the
 * parabola through the three (each surface separately), so a wedge is not under-read: at 15 %/85 % a 30 % wedge
 * reads as 22 %. The middle height is the one measured. Undefined when a surface is not found at one of the three.
 */
export function sagittalHeights(vol: CtVolume, midlineColumn: number, box: { r0: number; r1: number }, v: Pick<Vertebra, 'sliceFrom' | 'sliceTo'>, edgeHu: number): [HeightLine, HeightLine, HeightLine] | undefined {
  const rowAt = (f: number): number => (vol.rowsGoPosterior ? box.r0 + f * (box.r1 - box.r0) : box.r1 - f * (box.r1 - box.r0));
  const found = SAMPLE_FRACTIONS.map((f) => endPlateEdges(vol, midlineColumn, v, Math.round(rowAt(f)), edgeHu));
  if (found.some((e) => e === undefined)) return undefined;
  const [fa, fm, fp] = found as [{ bottom: number; top: number }, { bottom: number; top: number }, { bottom: number; top: number }];
  // Parabola through u = −0.7, 0, +0.7 (u = −1 anterior wall, +1 posterior wall), evaluated at u = ±1.
  const u = 1 - 2 * SAMPLE_FRACTIONS[0];
  const atWall = (a: number, m: number, p: number, sign: 1 | -1): number => m + (sign * (p - a)) / (2 * u) + (p + a - 2 * m) / (2 * u * u);
  const wall = (sign: 1 | -1): HeightLine => ({
    row: rowAt(sign < 0 ? 0 : 1),
    bottom: atWall(fa.bottom, fm.bottom, fp.bottom, sign),
    top: atWall(fa.top, fm.top, fp.top, sign),
  });
  return [wall(-1), { row: Math.round(rowAt(0.5)), ...fm }, wall(1)];
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

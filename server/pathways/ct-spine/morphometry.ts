/**
 * Vertebral heights on the mid-sagittal plane and the Genant semi-quantitative grade by explicit ratios.
 *
 * Heights: on the midline column (averaged over ± 1 column), along z at 15 %, 50 % and 85 % of the body's depth
 * (anterior, middle, posterior), between the outermost crossings of `edgeHu` (end plates) within the level's slices
 * ± 3 mm, each crossing interpolated linearly between samples. Slices thicker than `maxSliceMm` are refused: the
 * end plates are then too blurred for a 20 % height difference to be measured.
 * Ratios: wedge Ha/Hp, biconcave Hm/Hp, crush Hp / mean Hp of the complete neighbouring levels. Height loss =
 * 1 − the smallest ratio; grade 0 below 20 %, 1 for 20–25 %, 2 for 25–40 %, 3 above 40 % (Genant).
 * Limits: a neighbour that is itself fractured lowers the crush reference; the single midline plane misses
 * lateral wedging and scoliosis.
 */
import type { PathwayRefusal } from '../types.ts';
import { CT_SPINE_PATHWAY } from './select.ts';
import type { SpineLocalisation, Vertebra } from './vertebrae.ts';
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

/**
 * The end-plate crossings (patient z, mm) at one row of the mid-sagittal plane, or undefined when no end plate is
 * found. Exported so the overlay draws the heights exactly where they were measured.
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
  const first = p.findIndex((x) => x > edgeHu);
  let last = -1;
  for (let i = p.length - 1; i >= 0; i--) if (p[i]! > edgeHu) { last = i; break; }
  if (first < 0) return undefined;
  const cross = (inside: number, outside: number): number => {
    if (outside < 0 || outside >= p.length) return inside;
    const f = (p[inside]! - edgeHu) / (p[inside]! - p[outside]!);
    return inside + (outside - inside) * f;
  };
  // The crossings are the end-plate surfaces themselves (200 HU: a 1.5 mm end plate split over two 2 mm slices still
  // reads above it; trabecular bone above it only fills the span between the outermost crossings). Slice index →
  // z by the (regular) slice step from slice a.
  const z0 = vol.z[a]!;
  return { bottom: z0 + cross(first, first - 1) * vol.spacing.slice, top: z0 + cross(last, last + 1) * vol.spacing.slice };
}

/** Height (mm) along z at one row of the mid-sagittal plane, or NaN when no end plates are found. */
function heightAt(vol: CtVolume, loc: SpineLocalisation, v: Vertebra, row: number, edgeHu: number): number {
  const e = endPlateEdges(vol, loc.midlineColumn, v, row, edgeHu);
  return e ? e.top - e.bottom : NaN;
}

/** The rows of the anterior, middle and posterior heights (15 %, 50 %, 85 % of the body's depth from the front). */
export function heightRows(box: { r0: number; r1: number }, rowsGoPosterior: boolean): [number, number, number] {
  const at = (f: number): number => Math.round(rowsGoPosterior ? box.r0 + f * (box.r1 - box.r0) : box.r1 - f * (box.r1 - box.r0));
  return [at(0.15), at(0.5), at(0.85)];
}

export function measureMorphometry(vol: CtVolume, loc: SpineLocalisation, opts: MorphometryOptions = DEFAULT_MORPHOMETRY): LevelMorphometry[] | MorphometryRefusal {
  if (vol.spacing.slice > opts.maxSliceMm) {
    return { refused: true, pathway: CT_SPINE_PATHWAY, code: 'slices-too-thick', reason: `slices ${vol.spacing.slice} mm apart are too coarse for vertebral heights (at most ${opts.maxSliceMm} mm)` };
  }
  const [rowA, rowM, rowP] = heightRows(loc.box, vol.rowsGoPosterior);
  const exclude = opts.exclude ?? [];
  const complete = loc.vertebrae.filter((v) => !v.truncated && !exclude.includes(v.label));
  const heights = complete.map((v) => ({
    v,
    ha: heightAt(vol, loc, v, rowA, opts.edgeHu),
    hm: heightAt(vol, loc, v, rowM, opts.edgeHu),
    hp: heightAt(vol, loc, v, rowP, opts.edgeHu),
  }));
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

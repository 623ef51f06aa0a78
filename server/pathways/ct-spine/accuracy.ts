/**
 * Accuracy of the CT spine analysis against the Python phantom's truth (`truth.json` of each study written by
 * `models/training/frcds/ct/dicom.py`, `study_truth`): the figures the issue's "Must show" names. Pure functions;
 * `bench/ct-accuracy.ts` generates the studies, measures them and prints these figures.
 *
 * Rules of the comparison (fixed before looking at the figures):
 * - A found level is matched to the truth level whose head–foot range overlaps it most, if the overlap is ≥ half
 *   the shorter of the two; a found level with no match counts as wrongly labelled. Labels: found, complete levels
 *   whose label equals the matched truth label, over all found complete levels.
 * - Attenuation error: the analysis' `adjustedHu` against the truth level's non-contrast trabecular HU (the value
 *   a non-contrast scan of the same patient would hold), for the level the analysis measured, matched by z.
 *   "Clean" = non-contrast scans; "noise/contrast" = every measured scan, portal-venous ones adjusted by the
 *   offset given (the phase taken as known).
 * - Grades: every level the analysis graded (T11–L4), matched by z, against the truth Genant grade; positives are
 *   grade ≥ 2 in the truth. Weighted kappa over grades 0–3 (linear and quadratic weights).
 */
import type { StudyMeasurement } from './measure-cli.ts';
import type { GenantGrade } from './types.ts';

export interface TruthLevel {
  label: string;
  zFrom: number;
  zTo: number;
  grade: GenantGrade;
  trabHuNonContrast: number;
  trabHuScan: number;
  inField: boolean;
  hardware: boolean;
  /** True anterior / middle / posterior heights, mm. */
  heights: { anterior: number; middle: number; posterior: number };
}

export interface StudyTruth {
  phase: string;
  kernel: string;
  thicknessMm: number;
  protocol: string;
  scoliosisMm: number;
  hardwareLevel: string | null;
  levels: TruthLevel[];
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`truth.json: ${what} is not a number`);
  return v;
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TypeError(`truth.json: ${what} is not an object`);
  return v as Record<string, unknown>;
}

/** The parts of a study's truth.json the comparison uses; throws TypeError when the file is not that format. */
export function parseTruth(json: unknown): StudyTruth {
  const t = obj(json, 'the file');
  const acq = obj(t['acquisition'], 'acquisition');
  const levels = t['levels'];
  if (!Array.isArray(levels)) throw new TypeError('truth.json: levels is not a list');
  return {
    phase: String(acq['phase']),
    kernel: String(acq['kernel']),
    thicknessMm: num(acq['slice_thickness'], 'slice_thickness'),
    protocol: String(acq['protocol']),
    scoliosisMm: num(t['scoliosis_mm'] ?? 0, 'scoliosis_mm'),
    hardwareLevel: typeof t['hardware_level'] === 'string' ? t['hardware_level'] : null,
    levels: levels.map((x: unknown, i) => {
      const l = obj(x, `levels[${i}]`);
      const z = l['z_range_mm'];
      if (!Array.isArray(z) || z.length !== 2) throw new TypeError(`truth.json: levels[${i}].z_range_mm`);
      const grade = num(l['genant_grade'], 'genant_grade');
      const h = obj(l['heights_mm'], `levels[${i}].heights_mm`);
      return {
        label: String(l['label']),
        zFrom: num(z[0], 'z_range_mm'),
        zTo: num(z[1], 'z_range_mm'),
        grade: Math.max(0, Math.min(3, Math.round(grade))) as GenantGrade,
        trabHuNonContrast: num(l['trabecular_hu_noncontrast'], 'trabecular_hu_noncontrast'),
        trabHuScan: num(l['trabecular_hu_scan'], 'trabecular_hu_scan'),
        inField: l['in_field'] === true,
        hardware: l['hardware'] === true,
        heights: { anterior: num(h['anterior'], 'heights_mm'), middle: num(h['middle'], 'heights_mm'), posterior: num(h['posterior'], 'heights_mm') },
      };
    }),
  };
}

/** The truth level a found z range belongs to (largest overlap, at least half the shorter extent). */
export function matchLevel(found: { zBottom: number; zTop: number }, truth: readonly TruthLevel[]): TruthLevel | undefined {
  let best: TruthLevel | undefined;
  let bestOverlap = 0;
  for (const t of truth) {
    const overlap = Math.min(found.zTop, t.zTo) - Math.max(found.zBottom, t.zFrom);
    const shorter = Math.min(found.zTop - found.zBottom, t.zTo - t.zFrom);
    if (overlap >= 0.5 * shorter && overlap > bestOverlap) {
      best = t;
      bestOverlap = overlap;
    }
  }
  return best;
}

/** Cohen's weighted kappa for ordinal ratings 0..k−1 (linear or quadratic disagreement weights). */
export function weightedKappa(pairs: readonly (readonly [number, number])[], k: number, weights: 'linear' | 'quadratic'): number {
  const n = pairs.length;
  if (n === 0) return NaN;
  const obs = Array.from({ length: k }, () => new Float64Array(k));
  const ra = new Float64Array(k);
  const rb = new Float64Array(k);
  for (const [a, b] of pairs) {
    obs[a]![b]! += 1 / n;
    ra[a]! += 1 / n;
    rb[b]! += 1 / n;
  }
  const w = (i: number, j: number): number => (weights === 'linear' ? Math.abs(i - j) / (k - 1) : ((i - j) / (k - 1)) ** 2);
  let po = 0;
  let pe = 0;
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      po += w(i, j) * obs[i]![j]!;
      pe += w(i, j) * ra[i]! * rb[j]!;
    }
  }
  return pe === 0 ? 1 : 1 - po / pe;
}

/** Wilson 95 % interval of a proportion x / n. */
export function wilson(x: number, n: number): [number, number] {
  if (n === 0) return [NaN, NaN];
  const z = 1.96;
  const p = x / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, c - h), Math.min(1, c + h)];
}

export interface StudyComparison {
  study: string;
  refusal?: string;
  /** Whether the truth says the study should be refused (L1 and L2 not both complete in the field). */
  shouldRefuse: boolean;
  labels: { right: number; total: number };
  hu?: { level: string; levelRight: boolean; phase: string; kernel: string; measured: number; adjusted: number; truthNonContrast: number; truthScan: number };
  grades: { level: string; truth: GenantGrade; measured: GenantGrade; thicknessMm: number; heightError: [number, number, number] }[];
}

/** Compares one measurement with its truth; `offsetHu` is subtracted from portal-venous scans (phase taken as known). */
export function compareStudy(m: StudyMeasurement, truth: StudyTruth, offsetHu: number): StudyComparison {
  const complete = (label: string): boolean => truth.levels.some((l) => l.label === label && l.inField);
  const out: StudyComparison = { study: m.study, shouldRefuse: !complete('L1') && !complete('L2'), labels: { right: 0, total: 0 }, grades: [] };
  if (m.refusal) out.refusal = m.refusal.code;
  const f = m.findings;
  if (!f) return out;
  for (const l of f.levels.filter((x) => !x.truncated)) {
    out.labels.total++;
    if (matchLevel(l, truth.levels)?.label === l.label) out.labels.right++;
  }
  if (f.attenuation) {
    const level = f.levels.find((l) => l.label === f.attenuation!.level)!;
    const t = matchLevel(level, truth.levels);
    if (t) {
      const adjusted = f.attenuation.medianHu - (truth.phase === 'non-contrast' ? 0 : offsetHu);
      out.hu = {
        level: f.attenuation.level,
        levelRight: t.label === f.attenuation.level,
        phase: truth.phase,
        kernel: truth.kernel,
        measured: f.attenuation.medianHu,
        adjusted,
        truthNonContrast: t.trabHuNonContrast,
        truthScan: t.trabHuScan,
      };
    }
  }
  for (const g of f.morphometry ?? []) {
    const level = f.levels.find((l) => l.label === g.level);
    const t = level && matchLevel(level, truth.levels);
    if (t) {
      const heightError: [number, number, number] = [g.ha - t.heights.anterior, g.hm - t.heights.middle, g.hp - t.heights.posterior];
      out.grades.push({ level: t.label, truth: t.grade, measured: g.grade, thicknessMm: truth.thicknessMm, heightError });
    }
  }
  return out;
}

export interface AccuracySummary {
  studies: number;
  refusals: Record<string, number>;
  /** Refusals the truth does not justify (L1 or L2 complete in the field) and acceptances it does not. */
  wrongRefusals: number;
  wrongAcceptances: number;
  labels: { right: number; total: number; fraction: number };
  hu: {
    clean: { n: number; mae: number; bias: number };
    noiseContrast: { n: number; mae: number; bias: number };
    contrastUnadjusted: { n: number; mae: number; bias: number };
    /** Mean of (measured − non-contrast truth) on portal-venous scans: the offset the phantom adds on average. */
    observedPortalVenousOffset: { n: number; mean: number; sd: number };
  };
  grades: {
    levels: number;
    positives: number;
    sensitivity: number;
    sensitivityCi: [number, number];
    specificity: number;
    specificityCi: [number, number];
    kappaLinear: number;
    kappaQuadratic: number;
    confusion: number[][];
  };
  /** Measured − true anterior, middle, posterior heights over the graded levels, mm. */
  heights: { bias: [number, number, number]; mae: [number, number, number] };
}

function errStats(xs: readonly number[]): { n: number; mae: number; bias: number } {
  const n = xs.length;
  return { n, mae: n ? xs.reduce((s, x) => s + Math.abs(x), 0) / n : NaN, bias: n ? xs.reduce((s, x) => s + x, 0) / n : NaN };
}

export function summarise(rows: readonly StudyComparison[]): AccuracySummary {
  const refusals: Record<string, number> = {};
  for (const r of rows) if (r.refusal) refusals[r.refusal] = (refusals[r.refusal] ?? 0) + 1;
  const labels = rows.reduce((a, r) => ({ right: a.right + r.labels.right, total: a.total + r.labels.total }), { right: 0, total: 0 });
  // Only attenuation at the right level is an attenuation error; a wrong level is a labelling error, counted there.
  const hu = rows.flatMap((r) => (r.hu && r.hu.levelRight ? [r.hu] : []));
  const nc = hu.filter((h) => h.phase === 'non-contrast');
  const pv = hu.filter((h) => h.phase !== 'non-contrast');
  const pvOffsets = pv.map((h) => h.measured - h.truthNonContrast);
  const pvMean = pvOffsets.reduce((s, x) => s + x, 0) / (pvOffsets.length || 1);
  const grades = rows.flatMap((r) => r.grades);
  const confusion = Array.from({ length: 4 }, () => [0, 0, 0, 0]);
  for (const g of grades) confusion[g.truth]![g.measured]!++;
  const tp = grades.filter((g) => g.truth >= 2 && g.measured >= 2).length;
  const pos = grades.filter((g) => g.truth >= 2).length;
  const tn = grades.filter((g) => g.truth < 2 && g.measured < 2).length;
  const neg = grades.length - pos;
  return {
    studies: rows.length,
    refusals,
    wrongRefusals: rows.filter((r) => r.refusal && !r.shouldRefuse).length,
    wrongAcceptances: rows.filter((r) => !r.refusal && r.shouldRefuse).length,
    labels: { ...labels, fraction: labels.total ? labels.right / labels.total : NaN },
    hu: {
      clean: errStats(nc.map((h) => h.adjusted - h.truthNonContrast)),
      noiseContrast: errStats(hu.map((h) => h.adjusted - h.truthNonContrast)),
      contrastUnadjusted: errStats(pv.map((h) => h.measured - h.truthNonContrast)),
      observedPortalVenousOffset: {
        n: pvOffsets.length,
        mean: pvOffsets.length ? pvMean : NaN,
        sd: pvOffsets.length > 1 ? Math.sqrt(pvOffsets.reduce((s, x) => s + (x - pvMean) ** 2, 0) / (pvOffsets.length - 1)) : NaN,
      },
    },
    grades: {
      levels: grades.length,
      positives: pos,
      sensitivity: pos ? tp / pos : NaN,
      sensitivityCi: wilson(tp, pos),
      specificity: neg ? tn / neg : NaN,
      specificityCi: wilson(tn, neg),
      kappaLinear: weightedKappa(grades.map((g) => [g.truth, g.measured] as const), 4, 'linear'),
      kappaQuadratic: weightedKappa(grades.map((g) => [g.truth, g.measured] as const), 4, 'quadratic'),
      confusion,
    },
    heights: {
      bias: [0, 1, 2].map((i) => errStats(grades.map((g) => g.heightError[i]!)).bias) as [number, number, number],
      mae: [0, 1, 2].map((i) => errStats(grades.map((g) => g.heightError[i]!)).mae) as [number, number, number],
    },
  };
}

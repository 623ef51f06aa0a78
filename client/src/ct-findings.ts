/**
 * What the "CT findings" panel shows, as plain data (unit-tested without a browser): the attenuation line with its
 * Pickhardt band and phase, the T-score estimate and the DXA when the risk used it, one row per measured level,
 * the warnings that change how far the numbers can be trusted, and what to do. Words shared with the CDS card come
 * from server/cds/ct-words.ts, so the card and the app say the same thing.
 */
import { GRADE_WORDS, HU_BAND_WORDS, huBand, phaseWords, suggestsProblemListEntry, type HuBand } from '../../server/cds/ct-words.ts';
import type { CtAssessmentView } from '../../server/pathways/ct-spine/types.ts';
import { formatTscore } from '../../server/risk/numbers.ts';
import type { Assessment, RecommendedAction } from './types.ts';

export { ctOf } from '../../server/cds/ct-words.ts';

export interface CtLevelRow {
  level: string;
  /** Anterior / middle / posterior heights, mm, one decimal. */
  heights: { a: string; m: string; p: string };
  /** "33%" */
  heightLoss: string;
  grade: 0 | 1 | 2 | 3;
  /** "Moderate (grade 2)" or "None". */
  gradeText: string;
  shape: string;
}

export interface CtPanelModel {
  attenuation: { level: string; hu: number; band: HuBand; bandText: string; phaseText: string; rawHu: number | null; spread: string } | null;
  /** "−2.7 (−3.4 to −2.0)"; null when attenuation was not measurable. */
  tScore: string | null;
  /** "DXA 2 May 2026: −2.9 (used for the risk)" when the chart's DXA replaced the CT estimate. */
  dxa: string | null;
  rows: CtLevelRow[] | null;
  /** Levels found in the volume but not in the table, with why: "T12 (heights not measurable)". */
  notMeasured: string[];
  warnings: string[];
  todo: string[];
}

const mm = (v: number): string => v.toFixed(1);
const SHAPES: Record<string, string> = { wedge: 'Wedge', biconcave: 'Biconcave', crush: 'Crush', none: '—' };

/** One row per measured level, top of the spine first (as the sagittal image and a report read; the analysis lists them foot first). */
export function levelRows(ct: Pick<CtAssessmentView, 'morphometry'>): CtLevelRow[] | null {
  if (!ct.morphometry) return null;
  return [...ct.morphometry].reverse().map((m) => ({
    level: m.level,
    heights: { a: mm(m.ha), m: mm(m.hm), p: mm(m.hp) },
    heightLoss: `${Math.round(m.heightLoss * 100)}%`,
    grade: m.grade,
    gradeText: m.grade === 0 ? 'None' : `${GRADE_WORDS[m.grade].charAt(0).toUpperCase()}${GRADE_WORDS[m.grade].slice(1)} (grade ${m.grade})`,
    shape: m.grade === 0 ? '—' : (SHAPES[m.shape] ?? m.shape),
  }));
}

/**
 * Levels labelled in the volume (and on the sagittal image) that have no row, top first, with why — so a level
 * missing from the table is not read as normal.
 */
export function unmeasuredLevels(ct: Pick<CtAssessmentView, 'levels' | 'morphometry'>): string[] {
  if (!ct.morphometry) return [];
  const measured = new Set(ct.morphometry.map((m) => m.level));
  return [...ct.levels].reverse().filter((l) => !measured.has(l.label)).map((l) => `${l.label} (${l.excluded ?? (l.truncated ? 'cut by the edge of the scan' : 'heights not measurable')})`);
}

/** Warnings that change how far the CT numbers can be trusted: phase, fallback level, excluded levels, no heights. */
export function ctWarnings(ct: CtAssessmentView): string[] {
  const out: string[] = [];
  if (ct.phase === 'unknown') out.push('Contrast phase unknown: if contrast was given the attenuation reads high, and the T-score estimate is wider.');
  const att = ct.attenuation;
  if (att && att.level !== 'L1') out.push(`L1 could not be used: attenuation measured at ${att.level} instead.`);
  if (!att && ct.gate?.outside) out.push(`CT attenuation withheld: ${ct.gate.reason ?? 'outside the checked range'} (the risk does not use it; fractures still reported).`);
  else if (!att) out.push('Attenuation not measurable: no usable L1, T12 or L2 (the risk uses the population T-score).');
  const excluded = new Map<string, string>();
  for (const l of ct.levels) if (l.excluded) excluded.set(l.label, l.excluded);
  for (const e of att?.excluded ?? []) if (!excluded.has(e.level)) excluded.set(e.level, e.reason);
  for (const [level, reason] of excluded) out.push(`${level} excluded: ${reason}.`);
  if (!ct.morphometry) out.push('Vertebral heights not measured: the slices are too thick for morphometry; fractures cannot be excluded.');
  for (const w of att?.warnings ?? []) if (!out.includes(w)) out.push(w);
  return out;
}

/** The action the app leads with: an FLS referral for a moderate or severe CT fracture, else the decision's. */
export function leadingAction(a: Assessment): RecommendedAction {
  const ct = (a as { ct?: CtAssessmentView | null }).ct;
  return ct?.imminentRisk ? 'refer-fls' : a.decision.action;
}

export function ctPanelModel(a: Assessment, ct: CtAssessmentView, date: (iso: string) => string): CtPanelModel {
  const att = ct.attenuation;
  const tscore = a.tscore;
  const dxaUsed = tscore?.used === 'dxa' && tscore.dxa ? tscore.dxa : null;
  const todo: string[] = [];
  const band = att ? huBand(att.adjustedHu) : null;
  if (ct.imminentRisk) todo.push(`Refer to the fracture liaison service: a ${GRADE_WORDS[ct.worstGrade]} vertebral fracture is an indication for bone-protective treatment.`);
  if (!dxaUsed && band !== null && band !== 'normal') todo.push(ct.imminentRisk ? 'DXA to record baseline bone density (the FLS usually arranges it).' : 'Order a DXA to confirm bone density: the CT value is an estimate.');
  if (suggestsProblemListEntry(ct)) todo.push(`Check the ${ct.worstLevel} fracture on the sagittal image and, if you agree, confirm it on the problem list (the card's suggestion adds a provisional entry; nothing is recorded automatically).`);
  if (todo.length === 0) todo.push(ct.inProblemList && ct.worstGrade >= 2 ? 'The fracture is on the problem list; follow the recommendation above.' : 'Nothing more from the CT: follow the recommendation above.');
  return {
    attenuation: att
      ? {
          level: att.level,
          hu: Math.round(att.adjustedHu),
          band: huBand(att.adjustedHu),
          bandText: HU_BAND_WORDS[huBand(att.adjustedHu)],
          phaseText: phaseWords(att.phase),
          rawHu: att.phase === 'non-contrast' || Math.round(att.medianHu) === Math.round(att.adjustedHu) ? null : Math.round(att.medianHu),
          spread: `IQR ${Math.round(att.p25)}–${Math.round(att.p75)} HU`,
        }
      : null,
    tScore: att ? `${formatTscore(att.tScore.estimate)} (${formatTscore(att.tScore.low)} to ${formatTscore(att.tScore.high)})` : null,
    dxa: dxaUsed ? `DXA ${date(dxaUsed.date)}: ${formatTscore(dxaUsed.value)} (used for the risk instead of the CT estimate)` : null,
    rows: levelRows(ct),
    notMeasured: unmeasuredLevels(ct),
    warnings: ctWarnings(ct),
    todo,
  };
}

/**
 * One way to round and write a risk, shared by the card, the SMART app, the print summary, the FHIR text, the FLS
 * worklist and its CSV, so a number never reads differently in two places, and so a tier is decided on the very
 * number the user reads ("3.0%" is never called "below 3%").
 *
 * Pure TypeScript without Node imports: the browser bundle imports it too.
 *
 * Rule: a percentage below 10 is shown with one decimal ("2.3%"), from 10 without decimals ("14%"); below 0.1 % it
 * reads "<0.1%". Intervals read "10–19%"; a missing value reads "–".
 */

/** Digits shown for a percentage (0–100): one decimal below 10 %, none from 10 %. */
export function percentDigits(percent: number): number {
  return Math.abs(percent) < 9.95 ? 1 : 0;
}

/**
 * The percentage as displayed, as a number: `shownPercent(0.02996)` → 3, `shownPercent(0.1416)` → 14. Decisions
 * (tiers, thresholds) compare this value, never the unrounded risk.
 */
export function shownPercent(fraction: number): number {
  const p = fraction * 100;
  const d = percentDigits(p);
  const f = 10 ** d;
  return Math.round(p * f) / f;
}

/** `14%`, `2.3%`, `<0.1%` — a percentage (0–100); `–` for a missing value. */
export function formatPercent(percent: number | null | undefined): string {
  if (percent === null || percent === undefined || !Number.isFinite(percent)) return '–';
  if (percent > 0 && percent < 0.05) return '<0.1%';
  const d = percentDigits(percent);
  const f = 10 ** d;
  return `${(Math.round(percent * f) / f).toFixed(d)}%`;
}

/** A fraction (0–1) as a percentage: `0.1416` → `14%`. */
export function formatRisk(fraction: number | null | undefined): string {
  return formatPercent(fraction === null || fraction === undefined ? null : fraction * 100);
}

/** `10–19%` from two percentages (each rounded by its own size); `–` when a bound is missing. */
export function formatInterval(lowerPercent: number | null | undefined, upperPercent: number | null | undefined): string {
  if (lowerPercent === null || lowerPercent === undefined || upperPercent === null || upperPercent === undefined) return '–';
  return `${formatPercent(lowerPercent).replace('%', '')}–${formatPercent(upperPercent)}`;
}

/** `14% (95% interval 10–19%)` from fractions, or `14%` when there is no interval. */
export function formatRiskWithInterval(risk: number, lower: number | null, upper: number | null): string {
  const r = formatRisk(risk);
  return lower === null || upper === null ? r : `${r} (95% interval ${formatInterval(lower * 100, upper * 100)})`;
}

/** A probability (0–1) for the decision line: `0.93` → `93%`, `0.996` → `>99%`, `0.003` → `<1%`. */
export function formatProbability(p: number | null | undefined): string {
  if (p === null || p === undefined || !Number.isFinite(p)) return '–';
  if (p > 0.99) return '>99%';
  if (p < 0.01) return '<1%';
  return `${Math.round(p * 100)}%`;
}

/** "about 37 in 100", for the patient summary (natural frequencies; at least "fewer than 1 in 100"). */
export function inHundred(fraction: number): string {
  const n = Math.round(fraction * 100);
  return n < 1 ? 'fewer than 1 in 100' : `about ${n} in 100`;
}

/** A threshold setting in percent as written in a sentence: `3` → `3%`, `2.5` → `2.5%` (exact, no rounding rule). */
export function formatThreshold(percent: number): string {
  return `${Number(percent.toFixed(2))}%`;
}

/** A T-score with one decimal and a true minus sign: `-2.43` → `−2.4`, `0.04` → `0.0`. */
export function formatTscore(t: number): string {
  const s = (Math.round(t * 10) / 10).toFixed(1);
  return s === '-0.0' ? '0.0' : s.replace('-', '−');
}

/** The T-score part of an assessment as {@link tscoreText} reads it (server/risk/assess.ts `TscoreResult`). */
export interface TscoreWords {
  estimate: { mean: number; low: number; high: number } | null;
  dxa: { value: number; date: string } | null;
  used: 'dxa' | 'image' | 'none';
}

/**
 * The femoral-neck T-score wherever the risk's reasons are shown: "radiograph estimate −2.4 (−3.1 to −1.7); DXA
 * 12 May 2026 −2.6", the one the risk rests on marked "(used)" when both are there. `date` writes a YYYY-MM-DD date
 * as its caller writes dates; `source` names what the estimate comes from ("CT" for the CT spine pathway). Empty
 * when there is neither.
 */
export function tscoreText(t: TscoreWords, date: (isoDay: string) => string, source = 'radiograph'): string {
  const parts: string[] = [];
  if (t.estimate) parts.push(`${source} estimate ${formatTscore(t.estimate.mean)} (${formatTscore(t.estimate.low)} to ${formatTscore(t.estimate.high)})${t.dxa && t.used === 'image' ? ' (used)' : ''}`);
  if (t.dxa) parts.push(`DXA ${date(t.dxa.date)} ${formatTscore(t.dxa.value)}${t.estimate && t.used === 'dxa' ? ' (used)' : t.used === 'none' ? ' (not used: clinical factors only)' : ''}`);
  return parts.join('; ');
}

/**
 * A BMI in kg/m²: one decimal ("27.3", "43"); outside `range` (QFracture-2012's 20–40) with as many more decimals as
 * it takes never to read as inside it ("40.03", not "40.0").
 */
export function formatBmi(bmi: number, range: readonly [number, number] = [20, 40]): string {
  const trim = (s: string): string => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  if (bmi >= range[0] && bmi <= range[1]) return trim(bmi.toFixed(1));
  for (let d = 1; d <= 4; d++) {
    const s = bmi.toFixed(d);
    if (Number(s) < range[0] || Number(s) > range[1]) return trim(s);
  }
  return bmi.toFixed(4);
}

/**
 * Number formatting for the screen, the print summary and the worklist: one rule everywhere so a number never reads
 * differently in two places. Risks arrive as fractions (risk engine) or percentages (FLS worklist API).
 */

/** Digits shown for a percentage: one decimal below 10 %, none from 10 % (a 2.3 % hip risk is not "2 %"). */
export function percentDigits(percent: number): number {
  return Math.abs(percent) < 10 ? 1 : 0;
}

/** `14 %`, `2.3 %` — a percentage (0–100) with the project's rounding; `–` for a missing value. */
export function formatPercent(percent: number | null | undefined): string {
  if (percent === null || percent === undefined || !Number.isFinite(percent)) return '–';
  return `${percent.toFixed(percentDigits(percent))} %`;
}

/** A fraction (0–1) as a percentage: `0.1416` → `14 %`. */
export function formatRisk(fraction: number | null | undefined): string {
  return formatPercent(fraction === null || fraction === undefined ? null : fraction * 100);
}

/** `10–19 %` (both bounds in percent, each rounded by its own size); `no interval` when a bound is missing. */
export function formatInterval(lowerPercent: number | null | undefined, upperPercent: number | null | undefined): string {
  if (lowerPercent === null || lowerPercent === undefined || upperPercent === null || upperPercent === undefined) return 'no interval';
  return `${lowerPercent.toFixed(percentDigits(lowerPercent))}–${upperPercent.toFixed(percentDigits(upperPercent))} %`;
}

/** `14 % (95 % interval 10–19 %)` from fractions, or just `14 %` when there is no interval. */
export function formatRiskWithInterval(risk: number, lower: number | null, upper: number | null): string {
  const r = formatRisk(risk);
  return lower === null || upper === null ? r : `${r} (95 % interval ${formatInterval(lower * 100, upper * 100)})`;
}

/** Tier as shown: `High`, `Moderate`, `Low`. */
export function tierLabel(tier: 'low' | 'moderate' | 'high'): string {
  return tier.charAt(0).toUpperCase() + tier.slice(1);
}

/** `Hip fracture` / `Major osteoporotic fracture`. */
export function outcomeLabel(outcome: 'hip' | 'mof'): string {
  return outcome === 'hip' ? 'Hip fracture' : 'Major osteoporotic fracture';
}

/** `2026-10-28T16:53:00Z` → `28 Oct 2026` (UTC, so a date does not move with the viewer's time zone). */
export function formatDate(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso.length === 10 ? `${iso}T00:00:00Z` : iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleDateString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
}

/** Age in whole years at `at` from a birth date (YYYY-MM-DD); null when unknown. */
export function ageAt(birthDate: string | null | undefined, at: Date = new Date()): number | null {
  if (!birthDate || !/^\d{4}-\d{2}-\d{2}/.test(birthDate)) return null;
  const [y, m, d] = birthDate.slice(0, 10).split('-').map(Number) as [number, number, number];
  let age = at.getUTCFullYear() - y;
  if (at.getUTCMonth() + 1 < m || (at.getUTCMonth() + 1 === m && at.getUTCDate() < d)) age--;
  return age;
}

/** A hazard ratio from a log-hazard term: `×1.70`. */
export function formatHazardRatio(logHazard: number): string {
  return `×${Math.exp(logHazard).toFixed(2)}`;
}

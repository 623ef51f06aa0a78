/**
 * Formatting for the screen, the print summary and the patient view. Every risk number goes through the service's
 * one rounding and wording rule (`server/risk/numbers.ts`: "14%", "2.3%", "95% interval 10–19%"), so the app never
 * reads differently from the card, the FHIR text or the worklist. Dates, ages and labels are the app's own.
 */
export { formatInterval, formatPercent, formatProbability, formatRisk, formatRiskWithInterval, inHundred, percentDigits, shownPercent } from '../../server/risk/numbers.ts';

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

/**
 * Every note on the result (out of distribution, image quality, low confidence, clinical-only), below the summary,
 * which carries the single most important one (`assessment.caveat`). The assessment's own `warnings` are shown
 * verbatim, in its order of importance; a clinical-only result is stated even when no warning text says so.
 */
import type { Assessment } from '../types.ts';

export type WarningLevel = 'critical' | 'caution';

/** Severity of a warning text: the fail-safes that withhold or change the basis of the number are critical. */
export function warningLevel(text: string): WarningLevel {
  return /outside the model's training distribution|unlike the images the model was trained on|withheld|clinical-only|clinical factors only|could not be used|No eligible/i.test(text) ? 'critical' : 'caution';
}

/** The notes the list shows: the assessment's warnings, plus the clinical-only statement when none says so. */
export function noteItems(a: Assessment): string[] {
  const items = [...a.warnings];
  if (a.mode === 'clinical-only' && !items.some((w) => /clinical-only/i.test(w))) {
    items.unshift('Clinical-only result: the radiograph was not used; the risk is QFracture-2012 from the chart alone.');
  }
  return items;
}

export function Warnings({ assessment: a }: { assessment: Assessment }) {
  const items = noteItems(a);
  if (items.length === 0) return null;
  const critical = items.some((w) => warningLevel(w) === 'critical');
  return (
    <section id="notes" class={`warnings ${critical ? 'warnings-critical' : 'warnings-caution'}`} aria-labelledby="warnings-title">
      <h2 id="warnings-title">
        <span aria-hidden="true">⚠ </span>
        {items.length === 1 ? 'Note on this result' : `${items.length} notes on this result`}
      </h2>
      <ul>
        {items.map((w) => (
          <li key={w} class={`warning-${warningLevel(w)}`}>
            {w}
          </li>
        ))}
      </ul>
    </section>
  );
}

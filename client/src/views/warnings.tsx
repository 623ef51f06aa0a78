/**
 * Warnings at the top of the page, impossible to miss (issue 7): out of distribution, image quality, low
 * confidence, clinical-only. The assessment's own `warnings` are shown verbatim, in its order of importance; a
 * clinical-only result is stated even when no warning text says so.
 */
import type { Assessment } from '../types.ts';

export type WarningLevel = 'critical' | 'caution';

/** Severity of a warning text: the fail-safes that withhold or change the basis of the number are critical. */
export function warningLevel(text: string): WarningLevel {
  return /outside the model's training distribution|clinical-only|could not be used|No eligible/i.test(text) ? 'critical' : 'caution';
}

export function Warnings({ assessment: a }: { assessment: Assessment }) {
  const items = [...a.warnings];
  if (a.mode === 'clinical-only' && !items.some((w) => /clinical-only/i.test(w))) {
    items.unshift('Clinical-only result: the radiograph was not used; the risk is QFracture-2012 from the chart alone.');
  }
  if (items.length === 0) return null;
  const critical = items.some((w) => warningLevel(w) === 'critical');
  return (
    <section class={`warnings ${critical ? 'warnings-critical' : 'warnings-caution'}`} aria-labelledby="warnings-title" role="alert">
      <h2 id="warnings-title">
        <span aria-hidden="true">⚠ </span>
        {items.length === 1 ? 'Warning' : `${items.length} warnings`}
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

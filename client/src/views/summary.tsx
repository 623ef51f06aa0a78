/**
 * Risk summary: 10-year hip and MOF risk with the 95 % interval, the tier and what the number rests on
 * (image + clinical, or clinical-only), plus the 1-, 2- and 5-year risks.
 */
import { formatDate, formatInterval, formatRisk, outcomeLabel, tierLabel } from '../format.ts';
import type { Assessment, Outcome } from '../types.ts';

export function RiskSummary({ assessment: a }: { assessment: Assessment }) {
  const basis = a.mode === 'image-and-clinical' ? 'Radiograph + clinical factors' : 'Clinical factors only (QFracture-2012)';
  return (
    <section class="card summary" aria-labelledby="summary-title">
      <div class="card-head">
        <h2 id="summary-title">10-year fracture risk</h2>
        <span class={`tier tier-${a.tier.tier}`} title={a.tier.rule}>
          {tierLabel(a.tier.tier)} risk
        </span>
      </div>
      <div class="risk-grid">
        {(['hip', 'mof'] as Outcome[]).map((o) => {
          const r10 = a.outcomes[o].risks.find((r) => r.years === 10)!;
          return (
            <div class="risk" key={o} data-outcome={o}>
              <h3>{outcomeLabel(o)}</h3>
              <p class="risk-value" data-testid={`risk10-${o}`}>
                {formatRisk(r10.risk)}
              </p>
              <p class="risk-interval" data-testid={`interval10-${o}`}>
                {r10.lower === null || r10.upper === null ? 'no interval (clinical-only)' : `95 % interval ${formatInterval(r10.lower * 100, r10.upper * 100)}`}
              </p>
              <p class="risk-horizons">
                {a.outcomes[o].risks
                  .filter((r) => r.years !== 10)
                  .map((r) => `${r.years} y ${formatRisk(r.risk)}`)
                  .join(' · ')}
              </p>
            </div>
          );
        })}
      </div>
      <p class="summary-basis">
        <span class="muted">Based on </span>
        {basis}
        {a.study?.started ? ` · radiograph of ${formatDate(a.study.started)}${a.study.laterality ? ` (${a.study.laterality === 'L' ? 'left' : a.study.laterality === 'R' ? 'right' : a.study.laterality} hip)` : ''}${a.mode === 'clinical-only' ? ', not used' : ''}` : ''}
        <span class="muted"> · index date </span>
        {formatDate(a.indexDate)}
      </p>
    </section>
  );
}

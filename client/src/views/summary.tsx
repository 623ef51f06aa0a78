/**
 * The summary the app opens with, compact enough for a 420 px side panel: the 10-year hip and major osteoporotic
 * fracture risks with their 95% intervals, what they mean against the guideline's treatment threshold (the risk
 * engine's `decision.meaning`), the one caveat that matters most, the care already in place, the recommendation for
 * the tier, the action for the tier (children) right under it, and why, with the guideline.
 */
import type { ComponentChildren } from 'preact';
import { ctOf, leadingAction } from '../ct-findings.ts';
import { careLines, recommendation } from '../decision-text.ts';
import { formatDate, formatInterval, formatRisk, outcomeLabel, tierLabel } from '../format.ts';
import type { Assessment, CareStatus, Outcome } from '../types.ts';
import { warningLevel } from './warnings.tsx';

export function RiskSummary(props: { assessment: Assessment; careStatus: CareStatus | null; notesCount: number; children?: ComponentChildren }) {
  const a = props.assessment;
  const d = a.decision;
  // A moderate or severe vertebral fracture on CT leads to an FLS referral whatever the tier (as on the card).
  const action = leadingAction(a);
  const rec = recommendation(action);
  const care = props.careStatus ? careLines(props.careStatus) : [];
  const basis = a.mode === 'image-and-clinical' ? (ctOf(a) ? 'CT + clinical factors' : 'Radiograph + clinical factors') : 'Clinical factors only (QFracture-2012)';
  return (
    <section class="card summary" aria-labelledby="summary-title" data-action={action}>
      <div class="card-head">
        <h2 id="summary-title">10-year fracture risk</h2>
        <span class={`tier tier-${a.tier.tier}`}>{tierLabel(a.tier.tier)} risk</span>
      </div>
      <div class="risk-grid">
        {(['hip', 'mof'] as Outcome[]).map((o) => {
          const r10 = a.outcomes[o].risks.find((r) => r.years === 10)!;
          return (
            <div class="risk" key={o} data-outcome={o}>
              <h3>{o === 'hip' ? 'Hip fracture' : 'Major osteoporotic'}</h3>
              <p class="risk-value" data-testid={`risk10-${o}`}>
                {formatRisk(r10.risk)}
              </p>
              <p class="risk-interval" data-testid={`interval10-${o}`}>
                {r10.lower === null || r10.upper === null ? 'no interval (clinical-only)' : `95% interval ${formatInterval(r10.lower * 100, r10.upper * 100)}`}
              </p>
            </div>
          );
        })}
      </div>
      <p class="meaning" data-testid="meaning">
        {d.meaning}
      </p>
      {a.caveat && (
        <p class={`caveat caveat-${warningLevel(a.caveat)}`} data-testid="caveat">
          <span aria-hidden="true">⚠ </span>
          {a.caveat}
          {props.notesCount > 1 && (
            <>
              {' '}
              <a href="#notes">All {props.notesCount} notes</a>
            </>
          )}
        </p>
      )}
      {care.length > 0 && (
        <ul class="care-status" data-testid="care-status" aria-label="Care already in place">
          {care.map((line) => (
            <li key={line}>{line}</li>
          ))}
        </ul>
      )}
      <div class={`recommendation recommendation-${action}`} data-testid="recommendation">
        <p class="recommendation-title">
          <span class="muted">Recommended: </span>
          <strong>{rec.title}</strong>
        </p>
        {props.children}
        <p class="recommendation-text">
          {action !== d.action
            ? 'A moderate or severe vertebral fracture on CT calls for assessment and treatment whatever the 10-year risk: the FLS confirms it, arranges DXA and starts bone-protective treatment.'
            : rec.text}{' '}
          <a href={d.guideline.url} target="_blank" rel="noopener">
            Thresholds: {d.guideline.name}
          </a>
        </p>
      </div>
      <p class="summary-basis">
        <span class="muted">Based on </span>
        {basis}
        {a.study?.started && ctOf(a) ? ` · CT of ${formatDate(a.study.started)}` : a.study?.started ? ` · radiograph of ${formatDate(a.study.started)}${a.study.laterality ? ` (${a.study.laterality === 'L' ? 'left' : a.study.laterality === 'R' ? 'right' : a.study.laterality} hip)` : ''}${a.mode === 'clinical-only' ? ', not used' : ''}` : ''}
        <span class="muted"> · </span>
        {outcomeLabel('mof')} includes hip, wrist, spine and shoulder.
      </p>
    </section>
  );
}

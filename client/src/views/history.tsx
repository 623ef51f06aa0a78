/**
 * History: the patient's past assessments (read back from the FHIR server by `GET /api/patients/{id}/assessments`)
 * and what changed since the previous one ("Hip 10-year 4.1% → 5.2% since 12 Oct 2026"), with a small trend line of
 * both 10-year risks (its text alternative lists the values) and the list of assessments.
 */
import { formatDate, formatPercent, tierLabel } from '../format.ts';
import { historyChange, trendMax, trendPath, trendPoints } from '../history.ts';
import type { Assessment, AssessmentHistoryResponse } from '../types.ts';

const W = 360;
const H = 72;

export type HistoryState = { kind: 'loading' } | { kind: 'error'; message: string } | { kind: 'ready'; data: AssessmentHistoryResponse };

export function History({ assessment: a, state }: { assessment: Assessment; state: HistoryState }) {
  if (state.kind !== 'ready') {
    return (
      <section class="card history" aria-labelledby="history-title">
        <h2 id="history-title">History</h2>
        <p class="hint" role="status">
          {state.kind === 'loading' ? 'Loading past assessments…' : `Past assessments could not be loaded: ${state.message}`}
        </p>
      </section>
    );
  }
  const items = state.data.items;
  const change = historyChange(a, items);
  const points = trendPoints(a, items);
  const max = trendMax(points);
  const hip = trendPath(points, 'hip', W, H, 6, max);
  const mof = trendPath(points, 'mof', W, H, 6, max);
  const label = `10-year risks over time: ${points.map((p) => `${formatDate(p.date)} hip ${formatPercent(p.hip)}, major osteoporotic ${formatPercent(p.mof)}`).join('; ')}.`;
  return (
    <section class="card history" aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      {change ? (
        <p class="history-change" data-testid="history-change">
          {change.text}
        </p>
      ) : (
        <p class="hint" data-testid="history-change">
          No earlier assessment of this patient on record.
        </p>
      )}
      {hip && (
        <div class="trend">
          <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label} preserveAspectRatio="none">
            <line x1="0" y1={H - 6} x2={W} y2={H - 6} class="trend-axis" />
            {mof && <polyline class="trend-mof" points={mof.map((q) => `${q.x},${q.y}`).join(' ')} />}
            <polyline class="trend-hip" points={hip.map((q) => `${q.x},${q.y}`).join(' ')} />
            {/* Dots as zero-length round-capped lines: they stay round while the box stretches to the panel's width. */}
            {hip.map((q) => (
              <line key={q.p.assessmentId} x1={q.x} y1={q.y} x2={q.x} y2={q.y} class={q.p.current ? 'trend-dot trend-current' : 'trend-dot'} />
            ))}
          </svg>
          <p class="trend-legend" aria-hidden="true">
            <span class="swatch swatch-hip" /> hip <span class="swatch swatch-mof" /> major osteoporotic · 0–{formatPercent(max)}
          </p>
        </div>
      )}
      {points.length > 1 && (
        <table class="history-table">
          <caption class="sr-only">Assessments of this patient, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Date</th>
              <th scope="col">Hip</th>
              <th scope="col">MOF</th>
              <th scope="col">Tier</th>
            </tr>
          </thead>
          <tbody>
            {[...points].reverse().map((p) => (
              <tr key={p.assessmentId} class={p.current ? 'current' : ''}>
                <th scope="row">
                  {formatDate(p.date)}
                  {p.current ? ' (this)' : ''}
                </th>
                <td>{formatPercent(p.hip)}</td>
                <td>{formatPercent(p.mof)}</td>
                <td>{p.tier ? tierLabel(p.tier) : '–'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {state.data.truncated && <p class="hint">Only the {items.length} most recent assessments are shown.</p>}
    </section>
  );
}

/**
 * One-page printable patient summary (print CSS shows only this): the risks with intervals, the tier, warnings,
 * the main factors, the curve as an image and the research-use notice.
 */
import { useEffect, useState } from 'preact/hooks';
import { factorRows } from '../factor-rows.ts';
import { formatDate, formatInterval, formatRisk, formatHazardRatio, outcomeLabel, tierLabel } from '../format.ts';
import type { Assessment, Outcome } from '../types.ts';

export function PrintSummary({ assessment: a }: { assessment: Assessment }) {
  const [curve, setCurve] = useState<string | null>(null);
  useEffect(() => {
    // The chart is a canvas: copy it into an image when printing starts.
    const before = (): void => {
      const c = document.getElementById('survival-canvas') as HTMLCanvasElement | null;
      if (c) setCurve(c.toDataURL('image/png'));
    };
    window.addEventListener('beforeprint', before);
    return () => window.removeEventListener('beforeprint', before);
  }, []);
  const top = factorRows(a, 'hip').slice(0, 6);
  return (
    <section class="print-only print-summary" aria-hidden="true">
      <h1>Fracture risk summary</h1>
      <p class="research-notice">
        <strong>Research use — trained on synthetic data.</strong> Not for clinical decisions.
      </p>
      <p>
        Patient {a.patientId} · index date {formatDate(a.indexDate)} · {a.mode === 'clinical-only' ? 'clinical factors only (QFracture-2012)' : 'radiograph + clinical factors'} · tier <strong>{tierLabel(a.tier.tier)}</strong>
      </p>
      <table>
        <thead>
          <tr>
            <th>10-year risk</th>
            <th>Estimate</th>
            <th>95 % interval</th>
          </tr>
        </thead>
        <tbody>
          {(['hip', 'mof'] as Outcome[]).map((o) => {
            const r = a.outcomes[o].risks.find((x) => x.years === 10)!;
            return (
              <tr key={o}>
                <td>{outcomeLabel(o)}</td>
                <td>{formatRisk(r.risk)}</td>
                <td>{r.lower === null || r.upper === null ? '–' : formatInterval(r.lower * 100, r.upper * 100)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {a.warnings.length > 0 && (
        <>
          <h2>Warnings</h2>
          <ul>
            {a.warnings.map((w) => (
              <li key={w}>{w}</li>
            ))}
          </ul>
        </>
      )}
      {curve && <img src={curve} alt="" class="print-curve" />}
      <h2>Main factors (hip)</h2>
      <ul class="print-factors">
        {top.map((f) => (
          <li key={f.factor}>
            {f.label}: {f.value} ({formatHazardRatio(f.logHazard)})
          </li>
        ))}
      </ul>
      <p class="small">
        Model {a.model.id} v{a.model.version}; assessment {a.id} of {formatDate(a.createdAt)}. {a.attribution}
      </p>
    </section>
  );
}

/**
 * Factors (issue 7): a bar chart of each clinical factor's contribution to the selected outcome's log-hazard
 * (relative to QFracture-2012's reference profile), with the chart resource each value came from, and the factors
 * that were missing with the default used.
 */
import { useEffect, useRef } from 'preact/hooks';
import { Chart } from '../chart-setup.ts';
import { factorRows, missingRows } from '../factor-rows.ts';
import { formatHazardRatio, outcomeLabel } from '../format.ts';
import type { Assessment, Outcome } from '../types.ts';

const UP = '#b3261e';
const DOWN = '#1d5fa8';

export function Factors(props: { assessment: Assessment; outcome: Outcome }) {
  const a = props.assessment;
  const rows = factorRows(a, props.outcome);
  const missing = missingRows(a);
  const canvas = useRef<HTMLCanvasElement>(null);
  const fused = a.outcomes[props.outcome].shown === 'fused';

  useEffect(() => {
    if (!canvas.current) return;
    const chart = new Chart(canvas.current, {
      type: 'bar',
      data: {
        labels: rows.map((r) => `${r.label} (${r.value})`),
        datasets: [{ label: 'Contribution to the log-hazard', data: rows.map((r) => r.logHazard), backgroundColor: rows.map((r) => (r.logHazard >= 0 ? UP : DOWN)), borderRadius: 3, barThickness: 14 }],
      },
      options: {
        indexAxis: 'y',
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { title: { display: true, text: 'Contribution (log hazard; right = raises risk)' }, grid: { color: '#e4e7eb' } },
          y: { grid: { display: false } },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => `${(item.raw as number) >= 0 ? 'Raises' : 'Lowers'} the hazard ${formatHazardRatio(item.raw as number)} (log hazard ${(item.raw as number).toFixed(2)})` } },
        },
      },
    });
    return () => chart.destroy();
  }, [a.id, props.outcome]);

  return (
    <section class="card" aria-labelledby="factors-title">
      <h2 id="factors-title">What drives the {props.outcome === 'hip' ? 'hip fracture' : 'major osteoporotic fracture'} risk</h2>
      <p class="hint">
        Each clinical factor’s term relative to QFracture-2012’s reference profile{fused ? ', as it enters the combined radiograph + clinical model' : ''}. The radiograph’s own contribution is shown by the heatmap.
      </p>
      <div class="chart-box factors-chart" style={{ height: `${Math.max(120, rows.length * 26 + 60)}px` }}>
        <canvas ref={canvas} id="factors-canvas" role="img" aria-label={`Bar chart of factor contributions to ${outcomeLabel(props.outcome).toLowerCase()} risk; the same values are in the table below.`} />
      </div>
      <details class="alt-table">
        <summary>Factors and their sources</summary>
        <table>
          <thead>
            <tr>
              <th scope="col">Factor</th>
              <th scope="col">Value</th>
              <th scope="col">Effect</th>
              <th scope="col">Source</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.factor}>
                <th scope="row">{r.label}</th>
                <td>{r.value}</td>
                <td>{formatHazardRatio(r.logHazard)}</td>
                <td class="sources">{r.sources.length ? r.sources.join(', ') : r.status === 'default' ? 'missing — default used' : 'not recorded'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
      {missing.length > 0 ? (
        <div class="missing">
          <h3>Missing from the chart — default used</h3>
          <ul>
            {missing.map((m) => (
              <li key={m.label}>
                <strong>{m.label}</strong>: {m.value}
                {m.note ? ` (${m.note})` : ''}
              </li>
            ))}
          </ul>
        </div>
      ) : (
        <p class="hint">No key factor was missing.</p>
      )}
    </section>
  );
}

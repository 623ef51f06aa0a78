/**
 * Survival curve (issue 7): fracture-free probability over 0–10 years for the selected outcome, with the 95 %
 * band, the clinical-only (QFracture-2012) curve for comparison, markers at 2/5/10 years, tooltips that say what
 * each number is, and a table as text alternative. Drawn with Chart.js on a canvas.
 */
import { useEffect, useRef } from 'preact/hooks';
import type { ChartConfiguration, TooltipItem } from 'chart.js';
import { Chart } from '../chart-setup.ts';
import { curveData, curveTable, nearestIndex } from '../curve-data.ts';
import { formatInterval, formatPercent, outcomeLabel } from '../format.ts';
import type { Assessment, Outcome } from '../types.ts';

const BLUE = '#1d5fa8';
const BAND = 'rgba(29, 95, 168, 0.16)';
const GREY = '#5b6670';

let curveMarked = false;

export function SurvivalCurve(props: { assessment: Assessment; outcome: Outcome; onOutcome: (o: Outcome) => void }) {
  const o = props.assessment.outcomes[props.outcome];
  const canvas = useRef<HTMLCanvasElement>(null);
  const d = curveData(o);

  useEffect(() => {
    if (!canvas.current) return;
    const main = d.fused ?? d.clinical;
    const mainLabel = d.shown === 'fused' ? 'Radiograph + clinical' : 'Clinical only (QFracture-2012)';
    const datasets: ChartConfiguration<'line'>['data']['datasets'] = [];
    if (d.bandUpper && d.bandLower) {
      datasets.push({ label: '95% interval', data: d.bandUpper, borderWidth: 0, pointRadius: 0, backgroundColor: BAND, fill: '+1', order: 3 });
      datasets.push({ label: '95% interval (lower)', data: d.bandLower, borderWidth: 0, pointRadius: 0, backgroundColor: BAND, fill: false, order: 3 });
    }
    datasets.push({ label: mainLabel, data: main, borderColor: BLUE, backgroundColor: BLUE, borderWidth: 2.5, pointRadius: 0, tension: 0, order: 1 });
    if (d.shown === 'fused') {
      datasets.push({ label: 'Clinical only (QFracture-2012)', data: d.clinical, borderColor: GREY, backgroundColor: GREY, borderDash: [6, 4], borderWidth: 2, pointRadius: 0, order: 2 });
    }
    datasets.push({ label: 'At 2, 5 and 10 years', data: d.markers.map((m) => ({ x: m.years, y: m.survival })), showLine: false, pointRadius: 5, pointHoverRadius: 7, pointStyle: 'circle', borderColor: '#fff', borderWidth: 2, backgroundColor: BLUE, order: 0, clip: false });

    const label = (item: TooltipItem<'line'>): string => {
      const ds = item.dataset.label ?? '';
      const y = (item.raw as { y: number }).y;
      if (ds.startsWith('95 %')) return '';
      if (ds === 'At 2, 5 and 10 years') {
        const m = d.markers[item.dataIndex]!;
        return `${m.years} years: ${formatPercent(m.survival)} fracture-free${m.lower !== null ? ` (95% interval ${formatInterval(m.lower, m.upper)})` : ''}`;
      }
      if (ds === mainLabel && d.bandLower && d.bandUpper) {
        const i = nearestIndex(d.bandLower, item.parsed.x ?? 0);
        return `${ds}: ${formatPercent(y)} fracture-free (95% interval ${formatInterval(d.bandLower[i]!.y, d.bandUpper[i]!.y)})`;
      }
      return `${ds}: ${formatPercent(y)} fracture-free`;
    };

    const chart = new Chart(canvas.current, {
      type: 'line',
      data: { datasets },
      options: {
        parsing: false,
        responsive: true,
        maintainAspectRatio: false,
        layout: { padding: { right: 10, top: 6 } },
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        scales: {
          x: { type: 'linear', min: 0, max: 10, ticks: { stepSize: 1, callback: (v) => `${v} y` }, title: { display: true, text: 'Years from the radiograph' }, grid: { color: '#e4e7eb' } },
          y: { min: d.yMin, max: 100, ticks: { callback: (v) => `${v}%` }, title: { display: true, text: `Free of ${props.outcome === 'hip' ? 'hip fracture' : 'major osteoporotic fracture'}` }, grid: { color: '#e4e7eb' } },
        },
        plugins: {
          legend: { position: 'bottom', labels: { filter: (item) => item.text !== '95% interval (lower)', usePointStyle: true, boxHeight: 8 } },
          tooltip: {
            filter: (item) => !(item.dataset.label ?? '').startsWith('95 %'),
            callbacks: { title: (items) => (items[0] ? `At ${(items[0].parsed.x ?? 0).toFixed(1)} years` : ''), label },
            bodyFont: { size: 13 },
            titleFont: { size: 13 },
            padding: 10,
          },
        },
      },
    });
    canvas.current.dataset['drawn'] = 'true';
    if (!curveMarked) {
      curveMarked = true;
      performance.mark('frcds:curve');
    }
    return () => chart.destroy();
  }, [props.assessment.id, props.outcome]);

  const rows = curveTable(o);
  const summary = `${outcomeLabel(props.outcome)}: fracture-free probability falls from 100% to ${formatPercent(d.markers[2]!.survival)} at 10 years${d.markers[2]!.lower !== null ? ` (95% interval ${formatInterval(d.markers[2]!.lower, d.markers[2]!.upper)})` : ''}; clinical-only ${formatPercent(rows[rows.length - 1]!.clinical)}.`;
  return (
    <section class="card" aria-labelledby="curve-title">
      <div class="card-head">
        <h2 id="curve-title">Fracture-free probability over 10 years</h2>
        <div class="segmented" role="radiogroup" aria-label="Outcome">
          {(['hip', 'mof'] as Outcome[]).map((x) => (
            <button type="button" role="radio" aria-checked={props.outcome === x} class={props.outcome === x ? 'on' : ''} onClick={() => props.onOutcome(x)} key={x}>
              {x === 'hip' ? 'Hip' : 'Major osteoporotic'}
            </button>
          ))}
        </div>
      </div>
      <div class="chart-box">
        <canvas ref={canvas} id="survival-canvas" role="img" aria-label={summary} />
      </div>
      <details class="alt-table">
        <summary>Show as a table</summary>
        <table>
          <caption>{outcomeLabel(props.outcome)}: probability of remaining fracture-free</caption>
          <thead>
            <tr>
              <th scope="col">Years</th>
              <th scope="col">{d.shown === 'fused' ? 'Radiograph + clinical' : 'Clinical only'}</th>
              <th scope="col">95% interval</th>
              <th scope="col">Clinical only (QFracture-2012)</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.years}>
                <th scope="row">{r.years}</th>
                <td>{formatPercent(r.survival)}</td>
                <td>{r.lower === null ? '–' : formatInterval(r.lower, r.upper)}</td>
                <td>{formatPercent(r.clinical)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </section>
  );
}

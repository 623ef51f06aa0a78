/**
 * What drives the risk, in plain words: each clinical factor that moves the selected outcome's risk ("Age 84 —
 * raises the risk the most"), with a bar whose length shows how much, the chart resource each value came from, and
 * the factors that were missing with the default used. No log hazards or hazard ratios: the bar and the words
 * carry the size. The radiograph's share is mentioned only when the result uses the radiograph.
 */
import { factorRows, missingRows } from '../factor-rows.ts';
import { tscoreText } from '../../../server/risk/numbers.ts';
import { ctOf } from '../ct-findings.ts';
import { shortDate } from '../worklist-model.ts';
import type { Assessment, Outcome } from '../types.ts';

/** Rows shown before "Show all factors". */
const TOP = 5;

export function Factors(props: { assessment: Assessment; outcome: Outcome; hasHeatmap: boolean }) {
  const a = props.assessment;
  const rows = factorRows(a, props.outcome);
  const missing = missingRows(a);
  const fused = a.outcomes[props.outcome].shown === 'fused';
  const max = Math.max(1e-9, ...rows.map((r) => Math.abs(r.logHazard)));
  // A T-score-mediated model: the femoral-neck T-score the risk rests on (estimate and measured DXA).
  const tscore = a.tscore ? tscoreText(a.tscore, shortDate, ctOf(a) ? 'CT' : 'radiograph') : '';
  const list = (rs: typeof rows) => (
    <ul class="factor-list">
      {rs.map((r) => (
        <li key={r.factor} class={`factor factor-${r.effect}`}>
          <span class="factor-name">{r.name}</span>
          <span class="factor-effect">— {r.effectText}</span>
          <span class="factor-bar" aria-hidden="true">
            <span style={{ width: `${Math.max(4, (Math.abs(r.logHazard) / max) * 100)}%` }} />
          </span>
        </li>
      ))}
    </ul>
  );
  return (
    <section class="card factors" aria-labelledby="factors-title">
      <h2 id="factors-title">What drives the {props.outcome === 'hip' ? 'hip fracture' : 'major osteoporotic fracture'} risk</h2>
      <p class="hint">
        Clinical factors compared with a typical person of the same sex{fused ? '' : ' (QFracture-2012)'}; red raises the risk, blue lowers it.{' '}
        {ctOf(a)
          ? 'The CT adds its own part: the T-score estimated from its attenuation and any vertebral fracture (see CT findings).'
          : props.hasHeatmap ? 'The radiograph adds its own part, highlighted by the heatmap.' : 'The radiograph was not used for this result.'}
      </p>
      {tscore && (
        <p class="tscore">
          <strong>Femoral-neck T-score:</strong> {tscore}
        </p>
      )}
      {rows.length === 0 ? <p class="hint">No factor moves this risk noticeably from the typical person’s.</p> : list(rows.slice(0, TOP))}
      {rows.length > TOP && (
        <details class="alt-table">
          <summary>All factors and their sources</summary>
          <table>
            <thead>
              <tr>
                <th scope="col">Factor</th>
                <th scope="col">Effect</th>
                <th scope="col">Source</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.factor}>
                  <th scope="row">{r.name}</th>
                  <td>{r.effectText}</td>
                  <td class="sources">{r.sources.length ? r.sources.join(', ') : r.status === 'default' ? 'missing — default used' : 'not recorded'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
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

/**
 * Model facts (issue 7): the model and version that produced the numbers, its intended use, the research-use
 * notice, the headline test metrics and a link to the model card (served by server/app-static.ts).
 */
import { useEffect, useState } from 'preact/hooks';
import type { ModelFacts as Facts } from '../../../server/app-static.ts';
import { tscoreText } from '../../../server/risk/numbers.ts';
import { ctOf } from '../ct-findings.ts';
import type { Assessment } from '../types.ts';
import { shortDate } from '../worklist-model.ts';

const f2 = (x: number | null | undefined): string => (x === null || x === undefined ? '–' : x.toFixed(2));

export function ModelFacts({ assessment: a }: { assessment: Assessment }) {
  const [facts, setFacts] = useState<Facts | null>(null);
  useEffect(() => {
    fetch(`models/${encodeURIComponent(a.model.id)}.json`).then((r) => (r.ok ? (r.json() as Promise<Facts>) : null)).then(setFacts, () => setFacts(null));
  }, [a.model.id]);
  return (
    <section class="card facts" aria-labelledby="facts-title">
      <h2 id="facts-title">About this result</h2>
      <p class="research-notice">
        <strong>Research use — trained on synthetic data.</strong> {a.model.useStatement}
      </p>
      <dl>
        <dt>Model</dt>
        <dd>
          {a.model.id} v{a.model.version} <span class="muted">({a.model.provider.toUpperCase()})</span>
        </dd>
        <dt>Clinical equations</dt>
        <dd>QFracture-2012</dd>
        {a.tscore && (
          <>
            <dt>Femoral-neck T-score</dt>
            <dd>
              {tscoreText(a.tscore, shortDate, ctOf(a) ? 'CT' : 'radiograph') || 'not estimated (clinical factors only)'}{' '}
              <span class="muted">(calibration {a.tscore.calibrationVersion})</span>
            </dd>
          </>
        )}
        {facts && (
          <>
            <dt>Intended use</dt>
            <dd>{facts.intendedUse.purpose}</dd>
            <dt>Population</dt>
            <dd>{facts.intendedUse.population}</dd>
            {Object.keys(facts.metrics).length > 0 && <dt>Test metrics</dt>}
            {Object.keys(facts.metrics).length > 0 && <dd>
              {Object.entries(facts.metrics).map(([o, m]) => (
                <span class="metric" key={o}>
                  {o === 'hip' ? 'Hip' : o === 'mof' ? 'MOF' : o}: C-index {f2(m.cIndex)}
                  {m.cIndexCi ? ` (${f2(m.cIndexCi[0])}–${f2(m.cIndexCi[1])})` : ''}, calibration slope {f2(m.calibrationSlope)}, 95% interval coverage {m.coverage95 === null ? '–' : `${Math.round(m.coverage95 * 100)}%`}
                </span>
              ))}
              <span class="muted"> — on the synthetic test set</span>
            </dd>}
          </>
        )}
      </dl>
      <p>
        <a href={facts?.cardUrl ?? `models/${encodeURIComponent(a.model.id)}/card`} target="_blank" rel="noopener">
          Model card (opens in a new tab)
        </a>
      </p>
      <p class="attribution">{a.attribution}</p>
    </section>
  );
}

/**
 * The "CT findings" panel, shown when the assessment comes from a chest or abdomen CT (`assessment.ct`): the L1 (or
 * fallback level) attenuation with its Pickhardt band and contrast phase, the T-score estimate with its interval
 * (and the DXA when the risk used it), the per-level morphometry table (heights, height loss, Genant grade, shape —
 * stacked as cards in a narrow side panel), the warnings, the sagittal and axial overlays the service drew, and what
 * to do. The overlay PNGs are fetched with the bearer token and shown as images with alt text.
 */
import { useEffect, useState } from 'preact/hooks';
import { apiHeaders } from '../api.ts';
import { ctPanelModel } from '../ct-findings.ts';
import { formatDate } from '../format.ts';
import type { Session } from '../session.ts';
import type { Assessment } from '../types.ts';
import type { CtAssessmentView } from '../../../server/pathways/ct-spine/types.ts';

type Overlay = { kind: 'loading' } | { kind: 'ready'; url: string } | { kind: 'error'; message: string };

/** A PNG of the service fetched with the bearer token, as an object URL for an `<img>` (revoked on unmount). */
function useOverlay(session: Session, path: string | null): Overlay {
  const [state, setState] = useState<Overlay>({ kind: 'loading' });
  useEffect(() => {
    if (!path) return;
    const ac = new AbortController();
    let url: string | null = null;
    setState({ kind: 'loading' });
    fetch(`${session.apiBase}${path}`, { headers: apiHeaders(session), signal: ac.signal })
      .then(async (res) => {
        if (!res.ok) throw new Error(`The image could not be loaded (${res.status}).`);
        url = URL.createObjectURL(await res.blob());
        if (!ac.signal.aborted) setState({ kind: 'ready', url });
      })
      .catch((err: unknown) => {
        if (!ac.signal.aborted) setState({ kind: 'error', message: (err as Error).message });
      });
    return () => {
      ac.abort();
      if (url) URL.revokeObjectURL(url);
    };
  }, [path]);
  return state;
}

function OverlayFigure(props: { session: Session; path: string | null; size: { width: number; height: number } | null; alt: string; caption: string; id: string }) {
  const o = useOverlay(props.session, props.path);
  return (
    <figure class="ct-figure">
      {!props.path ? (
        <p class="empty-note">No image was drawn for this study.</p>
      ) : o.kind === 'ready' ? (
        <img id={props.id} src={o.url} alt={props.alt} {...(props.size ? { width: props.size.width, height: props.size.height } : {})} />
      ) : (
        <p class={o.kind === 'error' ? 'empty-note fail' : 'empty-note'} role="status">
          {o.kind === 'error' ? o.message : 'Loading image…'}
        </p>
      )}
      <figcaption>{props.caption}</figcaption>
    </figure>
  );
}

export function CtFindings(props: { session: Session; assessment: Assessment; ct: CtAssessmentView }) {
  const { assessment: a, ct } = props;
  const m = ctPanelModel(a, ct, formatDate);
  const base = `/assessments/${encodeURIComponent(a.id)}`;
  const levels = ct.levels.filter((l) => !l.truncated).map((l) => l.label);
  const worst = ct.worstGrade > 0 && ct.worstLevel ? `; ${ct.worstLevel} graded ${m.rows?.find((r) => r.level === ct.worstLevel)?.gradeText.toLowerCase() ?? `grade ${ct.worstGrade}`}` : '; no level graded as fractured';
  return (
    <section class="card ct-findings" aria-labelledby="ct-title" data-testid="ct-findings">
      <div class="card-head">
        <h2 id="ct-title">CT findings</h2>
        <span class="muted ct-series">
          {ct.seriesDescription ?? 'CT series'} · {ct.sliceThicknessMm} mm · {ct.slices} slices{a.study?.started ? ` · ${formatDate(a.study.started)}` : ''}
        </span>
      </div>

      {m.attenuation ? (
        <div class={`ct-hu ct-hu-${m.attenuation.band}`} data-testid="ct-hu">
          <p class="ct-hu-value">
            <strong>
              {m.attenuation.level} {m.attenuation.hu} HU
            </strong>{' '}
            <span class="ct-band">{m.attenuation.bandText}</span>
          </p>
          <p class="muted ct-hu-detail">
            {m.attenuation.phaseText}
            {m.attenuation.rawHu !== null ? ` (measured ${m.attenuation.rawHu} HU)` : ''} · trabecular median, {m.attenuation.spread}
          </p>
          <p data-testid="ct-tscore">
            T-score estimate from CT: {m.tScore} <span class="muted">(95% interval)</span>
          </p>
          {m.dxa && <p data-testid="ct-dxa">{m.dxa}</p>}
        </div>
      ) : (
        <p class="empty-note">Attenuation not measurable on this CT.</p>
      )}

      {m.warnings.length > 0 && (
        <ul class="ct-warnings" aria-label="Notes on the CT measurements" data-testid="ct-warnings">
          {m.warnings.map((w) => (
            <li key={w}>
              <span aria-hidden="true">⚠ </span>
              {w}
            </li>
          ))}
        </ul>
      )}

      {m.rows ? (
        <table class="ct-levels" data-testid="ct-levels">
          <caption>Vertebral heights (mm) and Genant grade: height loss 20–25% mild, 25–40% moderate, over 40% severe</caption>
          <thead>
            <tr>
              <th scope="col">Level</th>
              <th scope="col">Anterior</th>
              <th scope="col">Middle</th>
              <th scope="col">Posterior</th>
              <th scope="col">Height loss</th>
              <th scope="col">Grade</th>
              <th scope="col">Shape</th>
            </tr>
          </thead>
          <tbody>
            {m.rows.map((r) => (
              <tr key={r.level} class={r.grade >= 2 ? 'ct-fx' : r.grade === 1 ? 'ct-fx-mild' : ''} data-level={r.level}>
                <th scope="row" data-label="Level">
                  {r.level}
                </th>
                <td data-label="Anterior">{r.heights.a}</td>
                <td data-label="Middle">{r.heights.m}</td>
                <td data-label="Posterior">{r.heights.p}</td>
                <td data-label="Height loss">{r.heightLoss}</td>
                <td data-label="Grade">{r.gradeText}</td>
                <td data-label="Shape">{r.shape}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {m.notMeasured.length > 0 && (
        <p class="muted ct-not-measured" data-testid="ct-not-measured">
          Not graded: {m.notMeasured.join(', ')}.
        </p>
      )}

      <div class="ct-figures">
        <OverlayFigure
          session={props.session}
          id="ct-sagittal"
          path={ct.overlays ? `${base}/ct-sagittal.png` : null}
          size={ct.overlays?.sagittal ?? null}
          alt={`Sagittal CT reformat of the spine, levels ${levels.join(', ')} labelled, with the measured heights and the attenuation region${worst}.`}
          caption="Sagittal: levels, heights and grades as measured"
        />
        <OverlayFigure
          session={props.session}
          id="ct-axial"
          path={ct.overlays ? `${base}/ct-axial.png` : null}
          size={ct.overlays?.axial ?? null}
          alt={m.attenuation ? `Axial CT slice through ${m.attenuation.level} with the trabecular region of interest (median ${m.attenuation.hu} HU).` : 'Axial CT slice.'}
          caption={`Axial: the ${m.attenuation?.level ?? 'L1'} region of interest`}
        />
      </div>

      <div class="ct-todo">
        <h3>What to do</h3>
        <ul data-testid="ct-todo">
          {m.todo.map((t) => (
            <li key={t}>{t}</li>
          ))}
        </ul>
      </div>
    </section>
  );
}

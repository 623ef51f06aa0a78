/**
 * "Model monitoring" for the service's clinical lead (user-level launch `/app/launch.html?mode=monitoring`, or the
 * link above the FLS worklist): per site, model and T-score calibration, how the radiograph's T-score estimate agrees
 * with DXA scans measured since (pairs, Pearson r, mean bias, 95 % interval coverage, Bland–Altman limits) over a
 * rolling window, and the drift alarms — said in words, not colour alone. Data: `GET /api/monitoring/tscore`
 * (server/monitoring/types.ts), which needs a user-level token with `user/RiskAssessment.rs`.
 */
import { useEffect, useState } from 'preact/hooks';
import type { MonitoringResponse } from '../../../server/monitoring/types.ts';
import { ApiError } from '../api.ts';
import { formatDate } from '../format.ts';
import { fetchMonitoring } from '../monitoring-api.ts';
import { monitoringRows, ruleText } from '../monitoring-model.ts';
import type { Session } from '../session.ts';
import '../monitoring.css';
import { ErrorScreen, errorKind } from './error-screen.tsx';
import { Header } from './header.tsx';

export function MonitoringView(props: { session: Session; onBack?: () => void }) {
  const [data, setData] = useState<MonitoringResponse | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    const ac = new AbortController();
    fetchMonitoring(props.session, ac.signal).then(
      (r) => {
        setData(r);
        setError(null);
      },
      (e: unknown) => !ac.signal.aborted && setError(e),
    );
    return () => ac.abort();
  }, [reload]);

  if (error && !data) {
    return <ErrorScreen kind={errorKind(error)} detail={(error as Error).message} {...(error instanceof ApiError && error.status ? { status: error.status } : {})} onRetry={() => setReload((n) => n + 1)} />;
  }
  const rows = data ? monitoringRows(data) : [];
  const alarms = rows.filter((r) => r.status === 'alarm');
  const poll = data?.lastPoll;
  return (
    <div class="app">
      <Header onBack={props.onBack} />
      <main id="main" class="worklist monitoring">
        <div class="card-head">
          <h1>Model monitoring</h1>
          <button type="button" class="btn btn-small" onClick={() => setReload((n) => n + 1)}>
            Refresh
          </button>
        </div>
        <p class="hint">Agreement of the radiograph's femoral-neck T-score estimate with DXA scans measured since, per site. {data?.notice}</p>
        {!data ? (
          <p role="status">Loading the figures…</p>
        ) : (
          <>
            {alarms.length > 0 && (
              <div class="mon-alarm-banner" role="alert">
                <strong class="mon-alarm">Drift alarm at {alarms.map((a) => a.site).join(', ')}.</strong> The estimate no longer agrees with measured DXA as
                it did when the model was checked: review the site's images (new equipment or processing?) and run the site check again
                (npm run site-check) before relying on the estimate.
              </div>
            )}
            {rows.length === 0 ? (
              <p data-testid="monitoring-empty">No radiograph–DXA pairs yet: figures appear once patients assessed from a radiograph have a DXA scan.</p>
            ) : (
              <div class="mon-scroll" tabIndex={0} role="region" aria-label="Agreement by site">
                <table class="mon-table">
                  <caption>T-score estimate vs measured DXA, latest pairs per site</caption>
                  <thead>
                    <tr>
                      <th scope="col">Site</th>
                      <th scope="col">Model</th>
                      <th scope="col">Calibration</th>
                      <th scope="col" class="num">Pairs</th>
                      <th scope="col" class="num">r</th>
                      <th scope="col" class="num">Bias (T)</th>
                      <th scope="col" class="num">95 % interval coverage</th>
                      <th scope="col">Limits of agreement</th>
                      <th scope="col">DXA dates</th>
                      <th scope="col">Status</th>
                    </tr>
                  </thead>
                  <tbody>
                    {rows.map((r) => (
                      <tr key={r.key} data-status={r.status}>
                        <th scope="row">{r.site}</th>
                        <td>{r.model}</td>
                        <td>{r.calibration}</td>
                        <td class="num">{r.pairs}</td>
                        <td class="num">{r.r}</td>
                        <td class="num">{r.bias}</td>
                        <td class="num">{r.coverage}</td>
                        <td>{r.limits}</td>
                        <td>{r.window}</td>
                        <td class={r.status === 'alarm' ? 'mon-alarm' : undefined}>{r.statusText}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            <p class="hint">{ruleText(data.settings)}</p>
            <p class="hint">
              {poll === null || poll === undefined
                ? data.settings.pollSeconds > 0 ? 'New DXA results have not been polled yet by this server process.' : 'Polling for new DXA results is off (MONITORING_POLL_S=0).'
                : 'error' in poll
                  ? `The last poll for new DXA results failed (${formatDate(poll.at)}): ${poll.error}`
                  : `Last poll for new DXA results: ${formatDate(poll.at)} — ${poll.seen} seen, ${poll.paired} new pairs, ${poll.unpaired} without a radiograph estimate.`}
            </p>
          </>
        )}
      </main>
    </div>
  );
}

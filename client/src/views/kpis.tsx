/**
 * Key performance indicators of the FLS pathway for the patients identified in a date range (and a site): how many
 * were identified, contacted, assessed (DXA) within 12 weeks, started treatment and were on treatment at 12 months,
 * how many are overdue now — each also as a share of those identified — the same counts per site, and the two
 * exports (the server's kpis.csv and worklist.csv for the same range and site). Counts come from
 * `GET /api/fls/kpis` (server/fls/types.ts `KpiResponse`); the targets shown are the server's settings.
 */
import { useEffect, useState } from 'preact/hooks';
import type { KpiQuery, KpiResponse } from '../../../server/fls/types.ts';
import { formatDate } from '../format.ts';
import type { Session } from '../session.ts';
import { actionError, downloadCsv, fetchKpis } from '../worklist-api.ts';
import { csvFileName, kpiRows } from '../worklist-model.ts';

/** Columns of the per-site table (a subset of the KPI lines, in pathway order). */
const SITE_COLUMNS = [
  ['identified', 'Identified'],
  ['contacted', 'Contacted'],
  ['assessedWithin12Weeks', 'Assessed ≤ 12 weeks'],
  ['treatmentStarted', 'Treatment started'],
  ['onTreatmentAt12Months', 'On treatment at 12 months'],
  ['overdue', 'Overdue'],
] as const;

export function KpiPanel(props: { session: Session }) {
  const [query, setQuery] = useState<KpiQuery>({});
  const [data, setData] = useState<KpiResponse | null>(null);
  const [error, setError] = useState<string>('');
  const [reload, setReload] = useState(0);

  useEffect(() => {
    const ac = new AbortController();
    fetchKpis(props.session, query, ac.signal).then(
      (r) => {
        setData(r);
        setError('');
      },
      (e: unknown) => !ac.signal.aborted && setError(actionError(e)),
    );
    return () => ac.abort();
  }, [query.from, query.to, query.site, reload]);

  const set = (k: keyof KpiQuery, v: string): void => setQuery((q) => ({ ...q, [k]: v || undefined }));
  const exportCsv = (what: 'kpis' | 'worklist'): void => {
    void downloadCsv(props.session, what, query, csvFileName(what, data?.asOf ?? new Date().toISOString())).catch((e: unknown) => setError(actionError(e)));
  };

  return (
    <section class="kpis" aria-labelledby="kpi-title">
      <div class="card-head">
        <h2 id="kpi-title">Key performance indicators</h2>
        <span class="kpi-exports">
          <button type="button" class="btn btn-small" onClick={() => exportCsv('kpis')}>
            Export KPIs (CSV)
          </button>
          <button type="button" class="btn btn-small" onClick={() => exportCsv('worklist')}>
            Export worklist (CSV)
          </button>
        </span>
      </div>
      <form class="filters" aria-label="KPI period and site" onSubmit={(e) => e.preventDefault()}>
        <label>
          <span>Identified from</span>
          <input type="date" value={query.from ?? ''} onChange={(e) => set('from', (e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label>
          <span>Identified to</span>
          <input type="date" value={query.to ?? ''} onChange={(e) => set('to', (e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label>
          <span>Site</span>
          <input type="text" size={10} value={query.site ?? ''} onChange={(e) => set('site', (e.currentTarget as HTMLInputElement).value)} />
        </label>
        <button type="button" class="btn btn-small" onClick={() => setReload((n) => n + 1)}>
          Refresh
        </button>
      </form>
      {error && (
        <p class="wl-message wl-message-fail" role="alert">
          The indicators could not be loaded: {error}
        </p>
      )}
      {!data ? (
        !error && <p role="status">Loading the indicators…</p>
      ) : (
        <>
          <p class="hint" data-testid="kpi-scope">
            Patients identified {data.from ? `from ${formatDate(data.from)}` : 'at any date'}
            {data.to ? ` to ${formatDate(data.to)}` : ''}
            {data.site ? ` at site ${data.site}` : ', all sites'}; as of {formatDate(data.asOf)}. Targets: contact within {data.targets.contact} days, DXA within{' '}
            {data.targets.dxa} days of identification, treatment decision within {data.targets.treatmentDecision} days of the DXA.
          </p>
          <table class="kpi-table">
            <caption>Counts along the pathway</caption>
            <thead>
              <tr>
                <th scope="col">Measure</th>
                <th scope="col" class="num">
                  Patients
                </th>
                <th scope="col" class="num">
                  Share of identified
                </th>
              </tr>
            </thead>
            <tbody>
              {kpiRows(data).map((r) => (
                <tr key={r.key} data-kpi={r.key} class={r.key === 'overdue' && r.value > 0 ? 'kpi-over' : undefined}>
                  <th scope="row">{r.label}</th>
                  <td class="num kpi-value">{r.value}</td>
                  <td class="num">{r.share || '–'}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {data.bySite.length > 1 && (
            // A scroll container if a very narrow panel cannot fit every column: focusable, so keyboard users can scroll it.
            <div class="kpi-sites" tabIndex={0} role="region" aria-label="Indicators by site">
              <table class="kpi-table">
                <caption>By site</caption>
                <thead>
                  <tr>
                    <th scope="col">Site</th>
                    {SITE_COLUMNS.map(([k, label]) => (
                      <th scope="col" class="num" key={k}>
                        {label}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {data.bySite.map((s) => (
                    <tr key={s.site ?? '(none)'}>
                      <th scope="row">{s.site ?? 'No site recorded'}</th>
                      {SITE_COLUMNS.map(([k]) => (
                        <td class="num" key={k}>
                          {s[k]}
                        </td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}

/**
 * FLS worklist (issue 8, item 3) for a standalone launch by a fracture liaison coordinator (user-level scopes):
 * items sorted by risk with their intervals and the imminent-risk flag; filters (tier, status, date, site);
 * accept, dismiss with a reason, open the assessment; CSV export. API: server/fls/types.ts.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { DISMISSAL_REASONS, WORKLIST_STATUSES, WORKLIST_TIERS, type DismissalReasonCode, type WorklistItem, type WorklistQuery } from '../../../server/fls/types.ts';
import { acceptItem, ApiError, dismissItem, downloadWorklistCsv, getWorklist } from '../api.ts';
import { formatDate, formatInterval, formatPercent, tierLabel } from '../format.ts';
import type { Session } from '../session.ts';
import { ErrorScreen, errorKind } from './error-screen.tsx';
import { Header } from './header.tsx';

function RiskCell({ r }: { r: WorklistItem['hip10'] }) {
  return (
    <>
      <span class="wl-risk">{formatPercent(r.estimate)}</span>
      <span class="wl-interval">{r.lower === null || r.upper === null ? 'clinical-only' : formatInterval(r.lower, r.upper)}</span>
    </>
  );
}

export function Worklist(props: { session: Session; onOpen: (item: WorklistItem) => void }) {
  const [query, setQuery] = useState<WorklistQuery>({ status: 'requested' });
  const [items, setItems] = useState<WorklistItem[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string>('');
  const [dismissing, setDismissing] = useState<{ item: WorklistItem; reason: DismissalReasonCode; note: string } | null>(null);
  const [reload, setReload] = useState(0);
  const dialog = useRef<HTMLDialogElement>(null);

  // The dismiss form is a modal <dialog> (focus trapped, Escape closes it).
  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (dismissing && !d.open) d.showModal();
    if (!dismissing && d.open) d.close();
  }, [dismissing !== null]);

  useEffect(() => {
    const ac = new AbortController();
    getWorklist(props.session, query, ac.signal).then(
      (r) => {
        performance.mark('frcds:worklist');
        setItems(r.items);
        setError(null);
      },
      (e: unknown) => !ac.signal.aborted && setError(e),
    );
    return () => ac.abort();
  }, [query.tier, query.status, query.from, query.to, query.site, reload]);

  if (error && !items) {
    return <ErrorScreen kind={errorKind(error)} detail={(error as Error).message} {...(error instanceof ApiError && error.status ? { status: error.status } : {})} onRetry={() => setReload((n) => n + 1)} />;
  }

  const set = (k: keyof WorklistQuery, v: string): void => setQuery((q) => ({ ...q, [k]: v || undefined }));
  const act = async (label: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
      setMessage(label);
      setReload((n) => n + 1);
    } catch (e) {
      setMessage(`Failed: ${(e as Error).message}`);
    }
  };

  return (
    <div class="app">
      <Header />
      <main id="main" class="worklist">
        <div class="card-head">
          <h1>Fracture liaison worklist</h1>
          <button type="button" class="btn" onClick={() => void downloadWorklistCsv(props.session, query).catch((e: Error) => setMessage(e.message))}>
            Export CSV
          </button>
        </div>
        <form class="filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
          <label>
            <span>Tier</span>
            <select value={query.tier ?? ''} onChange={(e) => set('tier', (e.currentTarget as HTMLSelectElement).value)}>
              <option value="">All</option>
              {WORKLIST_TIERS.map((t) => (
                <option value={t} key={t}>
                  {tierLabel(t)}
                </option>
              ))}
            </select>
          </label>
          <label>
            <span>Status</span>
            <select value={query.status ?? ''} onChange={(e) => set('status', (e.currentTarget as HTMLSelectElement).value)}>
              <option value="">All</option>
              {WORKLIST_STATUSES.map((s) => (
                <option value={s} key={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          <label>
            <span>From</span>
            <input type="date" value={query.from ?? ''} onChange={(e) => set('from', (e.currentTarget as HTMLInputElement).value)} />
          </label>
          <label>
            <span>To</span>
            <input type="date" value={query.to ?? ''} onChange={(e) => set('to', (e.currentTarget as HTMLInputElement).value)} />
          </label>
          <label>
            <span>Site</span>
            <input type="text" value={query.site ?? ''} size={8} onChange={(e) => set('site', (e.currentTarget as HTMLInputElement).value)} />
          </label>
        </form>
        <p role="status" aria-live="polite" class="wl-message">
          {message}
        </p>
        {!items ? (
          <p role="status">Loading the worklist…</p>
        ) : items.length === 0 ? (
          <p class="empty-note">No patients match these filters.</p>
        ) : (
          <table class="wl-table">
            <caption>{items.length === 1 ? "1 patient" : `${items.length} patients`}, highest 10-year hip fracture risk first</caption>
            <thead>
              <tr>
                <th scope="col">Patient</th>
                <th scope="col">Tier</th>
                <th scope="col">Hip, 10 y</th>
                <th scope="col">MOF, 10 y</th>
                <th scope="col">Imminent</th>
                <th scope="col">Flagged</th>
                <th scope="col">Status</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {items.map((it) => (
                <tr key={it.taskId} data-task={it.taskId}>
                  <th scope="row">
                    <span class="wl-name">{it.patientName || it.patientId}</span>
                    <span class="wl-sub">
                      {it.sex}, born {formatDate(it.birthDate)}
                      {it.site ? ` · site ${it.site}` : ''}
                    </span>
                    {it.warnings.length > 0 && <span class="wl-warn">⚠ {it.warnings.length} warning{it.warnings.length > 1 ? 's' : ''}</span>}
                  </th>
                  <td>
                    <span class={`tier tier-${it.tier}`}>{tierLabel(it.tier)}</span>
                  </td>
                  <td>
                    <RiskCell r={it.hip10} />
                  </td>
                  <td>
                    <RiskCell r={it.mof10} />
                  </td>
                  <td>{it.imminent ? <span class="imminent">Imminent risk</span> : '–'}</td>
                  <td>{formatDate(it.authoredOn)}</td>
                  <td>{it.status}</td>
                  <td class="wl-actions">
                    <button type="button" class="btn btn-small" onClick={() => props.onOpen(it)}>
                      Open<span class="sr-only"> assessment of {it.patientName || it.patientId}</span>
                    </button>
                    {it.status === 'requested' && (
                      <>
                        <button type="button" class="btn btn-small btn-primary" onClick={() => void act(`Accepted ${it.patientName || it.patientId}: FLS referral created.`, () => acceptItem(props.session, it.taskId))}>
                          Accept<span class="sr-only"> {it.patientName || it.patientId}</span>
                        </button>
                        <button type="button" class="btn btn-small" onClick={() => setDismissing({ item: it, reason: 'already-treated', note: '' })}>
                          Dismiss…<span class="sr-only"> {it.patientName || it.patientId}</span>
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <dialog ref={dialog} class="dismiss-dialog" aria-labelledby="dismiss-title" onClose={() => setDismissing(null)}>
        {dismissing && (
          <div class="dismiss-form">
            <h2 id="dismiss-title">Dismiss {dismissing.item.patientName || dismissing.item.patientId}</h2>
            <label>
              <span>Reason</span>
              <select value={dismissing.reason} onChange={(e) => setDismissing({ ...dismissing, reason: (e.currentTarget as HTMLSelectElement).value as DismissalReasonCode })}>
                {Object.entries(DISMISSAL_REASONS).map(([code, text]) => (
                  <option value={code} key={code}>
                    {text}
                  </option>
                ))}
              </select>
            </label>
            <label>
              <span>Note{dismissing.reason === 'other' ? ' (required)' : ''}</span>
              <input type="text" value={dismissing.note} onInput={(e) => setDismissing({ ...dismissing, note: (e.currentTarget as HTMLInputElement).value })} />
            </label>
            <div class="dialog-buttons">
              <button type="button" class="btn" onClick={() => setDismissing(null)}>
                Cancel
              </button>
              <button
                type="button"
                class="btn btn-primary"
                disabled={dismissing.reason === 'other' && !dismissing.note.trim()}
                onClick={() => {
                  const d = dismissing;
                  setDismissing(null);
                  void act(`Dismissed ${d.item.patientName || d.item.patientId}.`, () => dismissItem(props.session, d.item.taskId, d.reason, d.note.trim() || undefined));
                }}
              >
                Dismiss
              </button>
            </div>
          </div>
        )}
        </dialog>
      </main>
    </div>
  );
}

/**
 * The fracture liaison coordinator's worklist (standalone launch with user-level scopes): patients flagged by the
 * risk service, each with MRN and site, the FLS pathway step it is at, what is due next and by when (overdue
 * flagged in words, not colour alone), its owner and notes. Columns sort by keyboard or mouse (`aria-sort`);
 * filters by tier, step, owner, overdue and site; several items can be assigned, advanced or dismissed at once.
 * Under 600 px (an EHR side panel) the table becomes a stacked list so every action stays reachable without
 * scrolling sideways. A second tab shows the key performance indicators (views/kpis.tsx).
 *
 * API: server/fls/types.ts (wire types), client/src/worklist-api.ts (calls).
 */
import { useEffect, useState } from 'preact/hooks';
import {
  ALL_PATHWAY_STEPS, isOpenStep, PATHWAY_STEPS, RESEARCH_NOTICE, WORKLIST_SORTS, WORKLIST_TIERS,
  type BulkRequest, type PathwayOwner, type PathwayStep, type StepRequest, type WorklistItem, type WorklistQuery, type WorklistSort,
} from '../../../server/fls/types.ts';
import { ApiError } from '../api.ts';
import { formatDate, tierLabel } from '../format.ts';
import type { Session } from '../session.ts';
import { accept, actionError, addNote, bulk, dismiss, downloadCsv, fetchOwners, fetchWorklist, recordStep } from '../worklist-api.ts';
import { ariaSort, csvFileName, identifiersLine, ownerLabel, primaryNextStep, recordLabel, stepLabel, toggleSort, treatmentChoices, type SortState } from '../worklist-model.ts';
import { ErrorScreen, errorKind } from './error-screen.tsx';
import { Header } from './header.tsx';
import { KpiPanel } from './kpis.tsx';
import { DismissDialog, NoteDialog, StepDialog } from './worklist-dialogs.tsx';
import { DueStatus, RiskFigure, StepStatus, useMediaQuery } from './worklist-parts.tsx';

/** Which items the step filter shows: every open one (default), all, or one step. */
type StepFilter = 'open' | 'all' | PathwayStep;

interface Filters {
  tier: string;
  step: StepFilter;
  owner: string;
  overdue: '' | 'true' | 'false';
  site: string;
}

type DialogState =
  | { kind: 'dismiss'; items: WorklistItem[] }
  | { kind: 'step'; item: WorklistItem; step: PathwayStep }
  | { kind: 'note'; item: WorklistItem }
  | null;

const SORT_LABELS: Record<WorklistSort, string> = { risk: 'Risk', due: 'Due date', name: 'Patient name', step: 'Pathway step', authored: 'Date flagged' };

/** Steps a bulk action may move items to: those that need no per-patient treatment outcome. */
const BULK_STEPS: readonly PathwayStep[] = PATHWAY_STEPS.filter((s) => s !== 'identified' && treatmentChoices(s).length === 0);

const nameOf = (it: WorklistItem): string => it.patientName || 'Unnamed patient';

function queryOf(f: Filters, sort: SortState): WorklistQuery {
  return {
    ...(f.tier ? { tier: f.tier as WorklistQuery['tier'] } : {}),
    ...(f.step !== 'open' && f.step !== 'all' ? { step: f.step } : {}),
    ...(f.owner ? { owner: f.owner } : {}),
    ...(f.overdue ? { overdue: f.overdue === 'true' } : {}),
    ...(f.site.trim() ? { site: f.site.trim() } : {}),
    sort: sort.sort,
    dir: sort.dir,
  };
}

/** Filters and sort survive opening a patient and coming back (kept for the browser tab only, no PHI). */
const VIEW_KEY = 'frcds:fls-worklist-view';
const DEFAULT_FILTERS: Filters = { tier: '', step: 'open', owner: '', overdue: '', site: '' };

function savedView(): { filters: Filters; sort: SortState } {
  try {
    const v = JSON.parse(sessionStorage.getItem(VIEW_KEY) ?? 'null') as { filters?: Partial<Filters>; sort?: Partial<SortState> } | null;
    const sort = v?.sort && WORKLIST_SORTS.includes(v.sort.sort as WorklistSort) && (v.sort.dir === 'asc' || v.sort.dir === 'desc') ? (v.sort as SortState) : { sort: 'risk' as const, dir: 'desc' as const };
    const f = v?.filters ?? {};
    const str = (x: unknown): string => (typeof x === 'string' ? x : '');
    const step = str(f.step);
    return {
      filters: {
        tier: str(f.tier),
        step: step === 'all' || (ALL_PATHWAY_STEPS as readonly string[]).includes(step) ? (step as StepFilter) : 'open',
        owner: str(f.owner),
        overdue: f.overdue === 'true' || f.overdue === 'false' ? f.overdue : '',
        site: str(f.site),
      },
      sort,
    };
  } catch {
    return { filters: DEFAULT_FILTERS, sort: { sort: 'risk', dir: 'desc' } };
  }
}

/** The worklist page: a tab bar (worklist, KPIs) and the chosen panel. */
export function Worklist(props: { session: Session; onOpen: (item: WorklistItem) => void }) {
  const [tab, setTab] = useState<'list' | 'kpis'>('list');
  return (
    <div class="app">
      <Header />
      <main id="main" class="worklist">
        <div class="card-head">
          <h1>Fracture liaison service</h1>
        </div>
        <nav class="fls-tabs" aria-label="FLS views">
          <button type="button" class={tab === 'list' ? 'fls-tab on' : 'fls-tab'} aria-current={tab === 'list' ? 'page' : undefined} onClick={() => setTab('list')}>
            Worklist
          </button>
          <button type="button" class={tab === 'kpis' ? 'fls-tab on' : 'fls-tab'} aria-current={tab === 'kpis' ? 'page' : undefined} onClick={() => setTab('kpis')}>
            Key performance indicators
          </button>
        </nav>
        {tab === 'list' ? <WorklistPanel session={props.session} onOpen={props.onOpen} /> : <KpiPanel session={props.session} />}
      </main>
    </div>
  );
}

function SortHeader(props: { label: string; k: WorklistSort; sort: SortState; onSort: (k: WorklistSort) => void; class?: string }) {
  const s = ariaSort(props.sort, props.k);
  return (
    <th scope="col" aria-sort={s} class={props.class}>
      <button type="button" class="sort-btn" onClick={() => props.onSort(props.k)}>
        {props.label}
        <span class="sort-mark" aria-hidden="true">
          {s === 'ascending' ? ' ▲' : s === 'descending' ? ' ▼' : ' ↕'}
        </span>
      </button>
    </th>
  );
}

function WorklistPanel(props: { session: Session; onOpen: (item: WorklistItem) => void }) {
  const { session } = props;
  const narrow = useMediaQuery('(max-width: 600px)');
  const [filters, setFilters] = useState<Filters>(() => savedView().filters);
  const [sort, setSort] = useState<SortState>(() => savedView().sort);
  const [data, setData] = useState<{ items: WorklistItem[]; asOf: string } | null>(null);
  const [owners, setOwners] = useState<PathwayOwner[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<{ text: string; ok: boolean }>({ text: '', ok: true });
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [dialog, setDialog] = useState<DialogState>(null);
  const [bulkOwner, setBulkOwner] = useState('');
  const [bulkStep, setBulkStep] = useState('');
  const [busy, setBusy] = useState(false);
  const [reload, setReload] = useState(0);
  const query = queryOf(filters, sort);

  useEffect(() => {
    try {
      sessionStorage.setItem(VIEW_KEY, JSON.stringify({ filters, sort }));
    } catch {
      // Storage refused (private mode, quota): the view simply starts afresh next time.
    }
  }, [filters, sort]);

  useEffect(() => {
    const ac = new AbortController();
    fetchWorklist(session, query, ac.signal).then(
      (r) => {
        performance.mark('frcds:worklist');
        const items = filters.step === 'open' ? r.items.filter((i) => isOpenStep(i.pathway.step)) : r.items;
        setData({ items, asOf: r.asOf });
        // A selection only ever names items on screen.
        setSelected((sel) => new Set([...sel].filter((id) => items.some((i) => i.taskId === id))));
        setError(null);
      },
      (e: unknown) => !ac.signal.aborted && setError(e),
    );
    return () => ac.abort();
  }, [JSON.stringify(query), filters.step, reload]);

  useEffect(() => {
    const ac = new AbortController();
    fetchOwners(session, ac.signal).then(
      (r) => setOwners(r.owners),
      () => undefined, // The owner menus then offer "me" and the owners already on the list.
    );
    return () => ac.abort();
  }, []);

  if (error && !data) {
    return <ErrorScreen kind={errorKind(error)} detail={(error as Error).message} {...(error instanceof ApiError && error.status ? { status: error.status } : {})} onRetry={() => setReload((n) => n + 1)} />;
  }

  const items = data?.items ?? [];
  const asOf = data?.asOf ?? new Date().toISOString();
  // Owners to offer: the service's list, plus any owner already on an item, plus the signed-in user.
  const ownerChoices: PathwayOwner[] = [...owners];
  for (const it of items) if (it.pathway.owner && !ownerChoices.some((o) => o.reference === it.pathway.owner!.reference)) ownerChoices.push(it.pathway.owner);

  const setFilter = <K extends keyof Filters>(k: K, v: Filters[K]): void => setFilters((f) => ({ ...f, [k]: v }));
  const onSort = (k: WorklistSort): void => setSort((s) => toggleSort(s, k));
  const act = async (done: string, fn: () => Promise<unknown>): Promise<void> => {
    setBusy(true);
    try {
      await fn();
      setMessage({ text: done, ok: true });
    } catch (e) {
      setMessage({ text: `Not saved: ${actionError(e)}`, ok: false });
    } finally {
      setBusy(false);
      setReload((n) => n + 1);
    }
  };
  const runBulk = async (label: string, req: BulkRequest): Promise<void> => {
    setBusy(true);
    try {
      const r = await bulk(session, req);
      const failed = r.results.filter((x) => !x.ok);
      const names = failed.map((x) => `${nameOf(items.find((i) => i.taskId === x.taskId) ?? ({ patientName: '' } as WorklistItem))}: ${x.error ?? 'failed'}`);
      setMessage({ text: `${label}: ${r.succeeded} of ${r.results.length} done.${failed.length ? ` Not done — ${names.join('; ')}` : ''}`, ok: failed.length === 0 });
      setSelected(new Set(failed.map((x) => x.taskId)));
    } catch (e) {
      setMessage({ text: `${label} failed: ${actionError(e)}`, ok: false });
    } finally {
      setBusy(false);
      setReload((n) => n + 1);
    }
  };
  const toggle = (id: string, on: boolean): void =>
    setSelected((sel) => {
      const next = new Set(sel);
      if (on) next.add(id);
      else next.delete(id);
      return next;
    });
  const selectedItems = items.filter((i) => selected.has(i.taskId));
  const allSelected = items.length > 0 && selectedItems.length === items.length;

  const submitStep = (item: WorklistItem, req: StepRequest): void => {
    setDialog(null);
    void act(`${nameOf(item)}: ${stepLabel(req.step)}.`, () => (req.step === 'accepted' ? accept(session, item, req.note) : recordStep(session, item, req)));
  };

  const rowActions = (it: WorklistItem) => {
    const next = primaryNextStep(it.pathway.nextSteps);
    const open = isOpenStep(it.pathway.step);
    return (
      <div class="wl-actions">
        <button type="button" class="btn btn-small" onClick={() => props.onOpen(it)}>
          Open<span class="sr-only"> {nameOf(it)}</span>
        </button>
        {next && (
          <button type="button" class="btn btn-small btn-primary" data-step={next} disabled={busy} onClick={() => setDialog({ kind: 'step', item: it, step: next })}>
            {recordLabel(next)}…<span class="sr-only"> for {nameOf(it)}</span>
          </button>
        )}
        <button type="button" class="btn btn-small" disabled={busy} onClick={() => setDialog({ kind: 'note', item: it })}>
          Note…<span class="sr-only"> on {nameOf(it)}</span>
        </button>
        {open && (
          <button type="button" class="btn btn-small" disabled={busy} onClick={() => setDialog({ kind: 'dismiss', items: [it] })}>
            Dismiss…<span class="sr-only"> {nameOf(it)}</span>
          </button>
        )}
      </div>
    );
  };

  const lastNote = (it: WorklistItem) => {
    const n = it.pathway.notes[it.pathway.notes.length - 1];
    if (!n) return null;
    return (
      <span class="wl-note" title={n.text}>
        {it.pathway.notes.length === 1 ? '1 note' : `${it.pathway.notes.length} notes`}: “{n.text.length > 60 ? `${n.text.slice(0, 57)}…` : n.text}”
      </span>
    );
  };

  const patientCell = (it: WorklistItem) => (
    <>
      <span class="wl-name">{nameOf(it)}</span>
      <span class="wl-sub">
        Born {formatDate(it.birthDate)}
        {it.sex === 'female' || it.sex === 'male' ? `, ${it.sex}` : ''}
      </span>
      <span class="wl-ids">{identifiersLine(it)}</span>
      {it.imminent && <span class="imminent">Imminent risk{it.imminentReason ? `: ${it.imminentReason}` : ''}</span>}
    </>
  );

  const activeFilters = [filters.tier, filters.owner, filters.overdue, filters.site.trim(), filters.step === 'open' ? '' : filters.step].filter((v) => v !== '').length;
  const filterForm = (
    <form class="filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
      <label>
        <span>Tier</span>
        <select value={filters.tier} onChange={(e) => setFilter('tier', (e.currentTarget as HTMLSelectElement).value)}>
          <option value="">All tiers</option>
          {WORKLIST_TIERS.map((t) => (
            <option value={t} key={t}>
              {tierLabel(t)}
            </option>
          ))}
        </select>
      </label>
      <label>
        <span>Pathway step</span>
        <select value={filters.step} onChange={(e) => setFilter('step', (e.currentTarget as HTMLSelectElement).value as StepFilter)}>
          <option value="open">All open steps</option>
          {ALL_PATHWAY_STEPS.map((s) => (
            <option value={s} key={s}>
              {stepLabel(s)}
            </option>
          ))}
          <option value="all">All, including closed and dismissed</option>
        </select>
      </label>
      <label>
        <span>Owner</span>
        <select value={filters.owner} onChange={(e) => setFilter('owner', (e.currentTarget as HTMLSelectElement).value)}>
          <option value="">Anyone</option>
          {session.fhirUser && <option value="me">Assigned to me</option>}
          <option value="none">Unassigned</option>
          {ownerChoices.map((o) => (
            <option value={o.reference} key={o.reference}>
              {o.display}
            </option>
          ))}
        </select>
      </label>
      <label>
        <span>Due</span>
        <select value={filters.overdue} onChange={(e) => setFilter('overdue', (e.currentTarget as HTMLSelectElement).value as Filters['overdue'])}>
          <option value="">Any</option>
          <option value="true">Overdue only</option>
          <option value="false">Not overdue</option>
        </select>
      </label>
      <label>
        <span>Site</span>
        <input type="text" value={filters.site} size={10} onChange={(e) => setFilter('site', (e.currentTarget as HTMLInputElement).value)} />
      </label>
      {narrow && (
        <label>
          <span>Sort by</span>
          <select
            value={`${sort.sort}:${sort.dir}`}
            onChange={(e) => {
              const [s, d] = (e.currentTarget as HTMLSelectElement).value.split(':') as [WorklistSort, 'asc' | 'desc'];
              setSort({ sort: s, dir: d });
            }}
          >
            {WORKLIST_SORTS.flatMap((s) => [
              <option key={`${s}:asc`} value={`${s}:asc`}>
                {SORT_LABELS[s]}, {s === 'risk' ? 'lowest' : s === 'name' ? 'A to Z' : s === 'step' ? 'earliest step' : 'oldest'} first
              </option>,
              <option key={`${s}:desc`} value={`${s}:desc`}>
                {SORT_LABELS[s]}, {s === 'risk' ? 'highest' : s === 'name' ? 'Z to A' : s === 'step' ? 'latest step' : 'latest'} first
              </option>,
            ])}
          </select>
        </label>
      )}
      <button type="button" class="btn btn-small wl-refresh" onClick={() => setReload((n) => n + 1)}>
        Refresh
      </button>
      <button type="button" class="btn btn-small wl-export" onClick={() => void downloadCsv(session, 'worklist', query, csvFileName('worklist', asOf)).catch((e: Error) => setMessage({ text: e.message, ok: false }))}>
        Export worklist (CSV)
      </button>
    </form>
  );

  return (
    <>
      {narrow ? (
        <details class="wl-filters-box">
          <summary>
            Filters, sort and export{activeFilters > 0 ? ` (${activeFilters} filter${activeFilters === 1 ? '' : 's'} on)` : ''}
          </summary>
          {filterForm}
        </details>
      ) : (
        filterForm
      )}

      {selectedItems.length > 0 && (
        <section class="wl-bulk" aria-label="Bulk actions">
          <strong>{selectedItems.length} selected</strong>
          <span class="wl-bulk-group">
            <label>
              <span class="sr-only">Assign the selected items to</span>
              <select value={bulkOwner} onChange={(e) => setBulkOwner((e.currentTarget as HTMLSelectElement).value)}>
                <option value="">Assign to…</option>
                <option value="none">Nobody (unassign)</option>
                {ownerChoices.map((o) => (
                  <option value={o.reference} key={o.reference}>
                    {o.display}
                  </option>
                ))}
              </select>
            </label>
            <button
              type="button"
              class="btn btn-small"
              disabled={!bulkOwner || busy}
              onClick={() => {
                const owner = bulkOwner === 'none' ? null : (ownerChoices.find((o) => o.reference === bulkOwner) ?? null);
                void runBulk(owner ? `Assigned to ${owner.display}` : 'Unassigned', { taskIds: selectedItems.map((i) => i.taskId), action: 'assign', owner });
                setBulkOwner('');
              }}
            >
              Assign
            </button>
          </span>
          <span class="wl-bulk-group">
            <label>
              <span class="sr-only">Move the selected items to the step</span>
              <select value={bulkStep} onChange={(e) => setBulkStep((e.currentTarget as HTMLSelectElement).value)}>
                <option value="">Advance to…</option>
                {BULK_STEPS.map((s) => (
                  <option value={s} key={s}>
                    {stepLabel(s)}
                  </option>
                ))}
              </select>
            </label>
            <button
              type="button"
              class="btn btn-small"
              disabled={!bulkStep || busy}
              onClick={() => {
                const step = bulkStep as PathwayStep;
                void runBulk(`Moved to “${stepLabel(step)}”`, { taskIds: selectedItems.map((i) => i.taskId), action: 'step', step });
                setBulkStep('');
              }}
            >
              Advance
            </button>
          </span>
          <button type="button" class="btn btn-small" disabled={busy} onClick={() => setDialog({ kind: 'dismiss', items: selectedItems })}>
            Dismiss…
          </button>
          <button type="button" class="btn btn-small" onClick={() => setSelected(new Set())}>
            Clear selection
          </button>
          <p class="hint wl-bulk-hint">Treatment decisions and follow-ups are recorded one patient at a time (they need the treatment outcome).</p>
        </section>
      )}

      <p role="status" aria-live="polite" class={message.ok ? 'wl-message' : 'wl-message wl-message-fail'}>
        {message.text}
      </p>

      {!data ? (
        <p role="status">Loading the worklist…</p>
      ) : items.length === 0 ? (
        <p class="empty-note">No patients match these filters.</p>
      ) : narrow ? (
        <>
          <label class="wl-selectall">
            <input type="checkbox" checked={allSelected} onChange={(e) => setSelected((e.currentTarget as HTMLInputElement).checked ? new Set(items.map((i) => i.taskId)) : new Set())} />
            <span>
              Select all {items.length} shown
            </span>
          </label>
          <ul class="wl-cards" aria-label={`${items.length} patients, sorted by ${SORT_LABELS[sort.sort].toLowerCase()}`}>
            {items.map((it) => (
              <li key={it.taskId} class={it.pathway.overdue ? 'wl-card wl-card-over' : 'wl-card'} data-task={it.taskId}>
                <div class="wl-card-head">
                  <input type="checkbox" id={`sel-${it.taskId}`} checked={selected.has(it.taskId)} onChange={(e) => toggle(it.taskId, (e.currentTarget as HTMLInputElement).checked)} />
                  <label for={`sel-${it.taskId}`} class="wl-name">
                    {nameOf(it)}
                  </label>
                  <span class={`tier tier-${it.tier}`}>{tierLabel(it.tier)}</span>
                </div>
                <div class="wl-card-body">
                  <span class="wl-ids">{identifiersLine(it)}</span>
                  <span class="wl-sub">Born {formatDate(it.birthDate)}</span>
                  {it.imminent && <span class="imminent">Imminent risk{it.imminentReason ? `: ${it.imminentReason}` : ''}</span>}
                  <span class="wl-risks">
                    <RiskFigure label="Hip" r={it.hip10} />
                    <RiskFigure label="MOF" r={it.mof10} />
                  </span>
                  <StepStatus item={it} asOf={asOf} />
                  <span class="wl-owner">Owner: {ownerLabel(it.pathway.owner)}</span>
                  {lastNote(it)}
                </div>
                {rowActions(it)}
              </li>
            ))}
          </ul>
        </>
      ) : (
        <table class="wl-table">
          <caption>
            {items.length === 1 ? '1 patient' : `${items.length} patients`}, sorted by {SORT_LABELS[sort.sort].toLowerCase()} ({sort.dir === 'asc' ? 'ascending' : 'descending'})
            {sort.sort === 'risk' && items.some((it) => it.imminentReason) ? ', vertebral fractures on CT listed first' : ''}. 10-year risks: {RESEARCH_NOTICE}.
          </caption>
          <thead>
            <tr>
              <td class="wl-check">
                <input type="checkbox" aria-label="Select all shown" checked={allSelected} onChange={(e) => setSelected((e.currentTarget as HTMLInputElement).checked ? new Set(items.map((i) => i.taskId)) : new Set())} />
              </td>
              <SortHeader label="Patient" k="name" sort={sort} onSort={onSort} />
              <SortHeader label="Risk, 10 years" k="risk" sort={sort} onSort={onSort} />
              <SortHeader label="Pathway step" k="step" sort={sort} onSort={onSort} />
              <SortHeader label="Due" k="due" sort={sort} onSort={onSort} />
              <th scope="col">Owner</th>
              <SortHeader label="Flagged" k="authored" sort={sort} onSort={onSort} />
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {items.map((it) => {
              return (
                <tr key={it.taskId} data-task={it.taskId} class={it.pathway.overdue ? 'wl-row-over' : undefined}>
                  <td class="wl-check">
                    <input type="checkbox" aria-label={`Select ${nameOf(it)}`} checked={selected.has(it.taskId)} onChange={(e) => toggle(it.taskId, (e.currentTarget as HTMLInputElement).checked)} />
                  </td>
                  <th scope="row">{patientCell(it)}</th>
                  <td>
                    <span class={`tier tier-${it.tier}`}>{tierLabel(it.tier)}</span>
                    <RiskFigure label="Hip" r={it.hip10} />
                    <RiskFigure label="MOF" r={it.mof10} />
                  </td>
                  <td>
                    <span class="wl-step-label">{stepLabel(it.pathway.step)}</span>
                    <span class="wl-sub">since {formatDate(it.pathway.stepSince)}</span>
                  </td>
                  <td>
                    <DueStatus item={it} asOf={asOf} />
                  </td>
                  <td>
                    <span class="wl-owner">{ownerLabel(it.pathway.owner)}</span>
                    {lastNote(it)}
                  </td>
                  <td>{formatDate(it.authoredOn)}</td>
                  <td>{rowActions(it)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}

      {dialog?.kind === 'dismiss' && (
        <DismissDialog
          who={dialog.items.length === 1 ? nameOf(dialog.items[0]!) : `${dialog.items.length} patients`}
          onCancel={() => setDialog(null)}
          onSubmit={(reason, note) => {
            const targets = dialog.items;
            setDialog(null);
            if (targets.length === 1) void act(`Dismissed ${nameOf(targets[0]!)}.`, () => dismiss(session, targets[0]!, reason, note));
            else void runBulk('Dismissed', { taskIds: targets.map((i) => i.taskId), action: 'dismiss', reason, ...(note ? { note } : {}) });
          }}
        />
      )}
      {dialog?.kind === 'step' && (
        <StepDialog who={nameOf(dialog.item)} step={dialog.step} asOf={asOf} since={dialog.item.pathway.stepSince} onCancel={() => setDialog(null)} onSubmit={(req) => submitStep(dialog.item, req)} />
      )}
      {dialog?.kind === 'note' && (
        <NoteDialog
          who={nameOf(dialog.item)}
          onCancel={() => setDialog(null)}
          onSubmit={(text) => {
            const it = dialog.item;
            setDialog(null);
            void act(`Note added to ${nameOf(it)}.`, () => addNote(session, it, text));
          }}
        />
      )}
    </>
  );
}

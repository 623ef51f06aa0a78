/**
 * The FLS coordinator's view of one worklist item (opened from the worklist; not the clinician's assessment view,
 * which would offer the FLS a referral to itself): who the patient is (name, birth date, MRN, site), why they were
 * flagged, the risk with its interval and the research notice, what the chart shows (referral, DXA, treatment),
 * the pathway as a timeline with due dates, the actions that record the next steps, owner, notes and dismissal.
 * Every action sends the item's version; when someone else changed it meanwhile, the item is reloaded and the
 * coordinator told so.
 */
import { useEffect, useState } from 'preact/hooks';
import { isOpenStep, RESEARCH_NOTICE, type PathwayOwner, type PathwayStep, type StepRequest, type WorklistItem, type WorklistItemResponse } from '../../../server/fls/types.ts';
import { ApiError } from '../api.ts';
import { ageAt, formatDate, tierLabel } from '../format.ts';
import type { Session } from '../session.ts';
import { accept, actionError, addNote, assignOwner, dismiss, fetchItem, fetchOwners, recordStep } from '../worklist-api.ts';
import { byLabel, caveatsOf, identifiersLine, ownerLabel, primaryNextStep, recordLabel, shortDate, stepLabel, timeline } from '../worklist-model.ts';
import { ErrorScreen, errorKind } from './error-screen.tsx';
import { Header } from './header.tsx';
import { DismissDialog, StepDialog } from './worklist-dialogs.tsx';
import { DueStatus, RiskFigure } from './worklist-parts.tsx';

type DialogState = { kind: 'dismiss' } | { kind: 'step'; step: PathwayStep } | null;

const SEX: Record<WorklistItem['sex'], string> = { female: 'Female', male: 'Male', other: 'Other', unknown: 'Sex not recorded' };

function CareInChart({ item }: { item: WorklistItem }) {
  const c = item.care;
  return (
    <dl class="co-care">
      <dt>FLS referral</dt>
      <dd>{c.flsReferral ? `Open since ${shortDate(c.flsReferral.since)}` : 'None open'}</dd>
      <dt>DXA order</dt>
      <dd>{c.dxaOrder ? `Ordered ${shortDate(c.dxaOrder.since)}` : 'None open'}</dd>
      <dt>DXA result</dt>
      <dd>{c.dxaResult ? `${shortDate(c.dxaResult.date)}${c.dxaResult.tScore !== null ? `, T-score ${c.dxaResult.tScore.toFixed(1)}` : ''}` : 'None in the chart'}</dd>
      <dt>Bone-protective treatment</dt>
      <dd>{c.treatment ? `${c.treatment.name}${c.treatment.since ? ` since ${shortDate(c.treatment.since)}` : ''}` : 'None active'}</dd>
    </dl>
  );
}

export function CoordinatorView(props: { session: Session; taskId: string; onBack: () => void }) {
  const { session } = props;
  const [res, setRes] = useState<WorklistItemResponse | null>(null);
  const [asOf, setAsOf] = useState<string>(new Date().toISOString());
  const [owners, setOwners] = useState<PathwayOwner[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<{ text: string; ok: boolean }>({ text: '', ok: true });
  const [dialog, setDialog] = useState<DialogState>(null);
  const [noteText, setNoteText] = useState('');
  const [ownerChoice, setOwnerChoice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // After a refused (stale) action the item is fetched again; until it arrives every action stays disabled, or a
  // quick second try would carry the same stale version.
  const [refreshing, setRefreshing] = useState(false);
  const [reload, setReload] = useState(0);

  useEffect(() => {
    const ac = new AbortController();
    fetchItem(session, props.taskId, ac.signal).then(
      (r) => {
        setRes(r);
        setRefreshing(false);
        setError(null);
        setOwnerChoice(null);
        // The item answer carries no clock: today is when it was fetched (the server decides "overdue").
        setAsOf(new Date().toISOString());
      },
      (e: unknown) => {
        if (ac.signal.aborted) return;
        setRefreshing(false);
        setError(e);
      },
    );
    return () => ac.abort();
  }, [props.taskId, reload]);

  useEffect(() => {
    const ac = new AbortController();
    fetchOwners(session, ac.signal).then(
      (r) => setOwners(r.owners),
      () => undefined,
    );
    return () => ac.abort();
  }, []);

  useEffect(() => {
    document.title = 'FLS patient — Fracture Risk CDS';
  }, []);

  if (error && !res) {
    return <ErrorScreen kind={errorKind(error)} detail={(error as Error).message} {...(error instanceof ApiError && error.status ? { status: error.status } : {})} onRetry={() => setReload((n) => n + 1)} />;
  }
  if (!res) {
    return (
      <div class="app">
        <Header onBack={props.onBack} />
        <main id="main" class="loading">
          <p role="status">Loading the patient…</p>
        </main>
      </div>
    );
  }

  const item = res.item;
  const p = item.pathway;
  const name = item.patientName || 'Unnamed patient';
  const open = isOpenStep(p.step);
  const next = primaryNextStep(p.nextSteps);
  const later = p.nextSteps.filter((s) => s !== next && s !== 'dismissed');
  const ownerChoices = [...owners];
  if (p.owner && !ownerChoices.some((o) => o.reference === p.owner!.reference)) ownerChoices.unshift(p.owner);
  const me = session.fhirUser ? ownerChoices.find((o) => o.reference === session.fhirUser) : undefined;
  const age = ageAt(item.birthDate);
  const caveats = caveatsOf(item.warnings);
  const locked = busy || refreshing;

  /** Runs an action; true when it was saved (a refused one keeps what the coordinator typed). */
  const act = async (done: string, fn: () => Promise<{ item: WorklistItem }>): Promise<boolean> => {
    setBusy(true);
    try {
      const r = await fn();
      setRes({ item: r.item, notice: RESEARCH_NOTICE });
      setOwnerChoice(null);
      setMessage({ text: done, ok: true });
      return true;
    } catch (e) {
      setMessage({ text: `Not saved: ${actionError(e)}`, ok: false });
      if (e instanceof ApiError && e.status === 409) {
        setRefreshing(true);
        setReload((n) => n + 1);
      }
      return false;
    } finally {
      setBusy(false);
    }
  };
  const submitStep = (req: StepRequest): void => {
    setDialog(null);
    void act(`Recorded: ${stepLabel(req.step)}.`, () => (req.step === 'accepted' ? accept(session, item, req.note) : recordStep(session, item, req)));
  };
  const selectedOwner = ownerChoice ?? p.owner?.reference ?? '';

  return (
    <div class="app">
      <Header onBack={props.onBack} />
      <main id="main" class="coordinator">
        <section class="co-id card" aria-labelledby="co-name">
          <h1 id="co-name">{name}</h1>
          <p class="co-id-line">
            <span>
              Born {formatDate(item.birthDate)}
              {age !== null ? ` (${age} years)` : ''}
            </span>
            <span>{SEX[item.sex]}</span>
            <span data-testid="co-ids">{identifiersLine(item)}</span>
          </p>
        </section>

        <p role="status" aria-live="polite" class={message.ok ? 'wl-message' : 'wl-message wl-message-fail'}>
          {message.text}
        </p>

        <div class="co-grid">
          <div class="co-col">
            <section class="card co-next" aria-labelledby="co-next-title">
              <h2 id="co-next-title">Next step</h2>
              <p class="co-step">
                Now: <strong>{stepLabel(p.step)}</strong> since {formatDate(p.stepSince)}
              </p>
              <p>
                <DueStatus item={item} asOf={asOf} />
              </p>
              {open && (
                <div class="action-buttons">
                  {next && (
                    <button type="button" class="btn btn-primary" data-step={next} disabled={locked} onClick={() => setDialog({ kind: 'step', step: next })}>
                      {recordLabel(next)}…
                    </button>
                  )}
                  <button type="button" class="btn" disabled={locked} onClick={() => setDialog({ kind: 'dismiss' })}>
                    Dismiss…
                  </button>
                </div>
              )}
              {later.length > 0 && (
                <details class="co-later">
                  <summary>Record a later step (done elsewhere)</summary>
                  <p class="hint">E.g. a DXA at another hospital: the steps before it are then shown as skipped.</p>
                  <div class="action-buttons">
                    {later.map((s) => (
                      <button type="button" class="btn btn-small" key={s} data-step={s} disabled={locked} onClick={() => setDialog({ kind: 'step', step: s })}>
                        {recordLabel(s)}…
                      </button>
                    ))}
                  </div>
                </details>
              )}
            </section>

            <section class="card" aria-labelledby="co-why-title">
              <h2 id="co-why-title">Why flagged</h2>
              <p class="co-flag" data-testid="co-flag-reason">
                {item.flagReason}
              </p>
              {item.imminent && <p class="imminent">Imminent risk: {item.imminentReason ?? 'a fragility fracture in the last 2 years'}.</p>}
              <p class="co-risk">
                <span class={`tier tier-${item.tier}`}>{tierLabel(item.tier)} risk</span>
              </p>
              <p class="co-risks">
                <RiskFigure label="10-year hip fracture risk" r={item.hip10} />
                <RiskFigure label="10-year major osteoporotic fracture risk" r={item.mof10} />
              </p>
              <p class="hint">
                Flagged {formatDate(item.authoredOn)}
                {item.mode === 'clinical-only' ? '; from clinical factors only (the radiograph was not used)' : item.studyDate ? `; radiograph of ${formatDate(item.studyDate)}` : ''}.
              </p>
              {caveats.length > 0 && (
                <ul class="co-warnings" aria-label="Caveats of the assessment">
                  {caveats.map((w, i) => (
                    <li key={i}>{w}</li>
                  ))}
                </ul>
              )}
              <p class="research-notice">
                <strong>{RESEARCH_NOTICE}.</strong> Not for clinical decisions.
              </p>
            </section>

            <section class="card" aria-labelledby="co-care-title">
              <h2 id="co-care-title">In the chart</h2>
              <CareInChart item={item} />
            </section>
          </div>

          <div class="co-col">
            <section class="card" aria-labelledby="co-path-title">
              <h2 id="co-path-title">Pathway</h2>
              <ol class="co-timeline">
                {timeline(p).map((r) => (
                  <li key={r.step} class={`tl-${r.state}`} aria-current={r.state === 'current' ? 'step' : undefined} data-step={r.step}>
                    <span class="tl-label">{r.label}</span>
                    <span class="tl-detail">
                      {r.event
                        ? `${shortDate(r.event.time)}, ${byLabel(r.event, ownerChoices)}${r.event.treatment ? ` — ${TREATMENT_TEXT[r.event.treatment]}` : ''}`
                        : r.state === 'skipped'
                          ? 'Skipped'
                          : r.state === 'next' && r.dueDate
                            ? `Due by ${shortDate(r.dueDate)}${p.overdue ? ' — overdue' : ''}`
                            : r.state === 'current'
                              ? `Since ${shortDate(p.stepSince)}`
                              : ''}
                    </span>
                  </li>
                ))}
              </ol>
            </section>

            <section class="card" aria-labelledby="co-owner-title">
              <h2 id="co-owner-title">Owner</h2>
              <p>
                Now: <strong data-testid="co-owner">{ownerLabel(p.owner)}</strong>
              </p>
              <form
                class="co-owner-form"
                onSubmit={(e) => {
                  e.preventDefault();
                  const owner = selectedOwner === '' ? null : (ownerChoices.find((o) => o.reference === selectedOwner) ?? null);
                  void act(owner ? `Assigned to ${owner.display}.` : 'Unassigned.', () => assignOwner(session, item, owner));
                }}
              >
                <label>
                  <span>Assign to</span>
                  <select value={selectedOwner} onChange={(e) => setOwnerChoice((e.currentTarget as HTMLSelectElement).value)}>
                    <option value="">Nobody (unassigned)</option>
                    {ownerChoices.map((o) => (
                      <option key={o.reference} value={o.reference}>
                        {o.display}
                      </option>
                    ))}
                  </select>
                </label>
                <button type="submit" class="btn btn-small" disabled={locked || selectedOwner === (p.owner?.reference ?? '')}>
                  Save owner
                </button>
                {me && p.owner?.reference !== me.reference && (
                  <button type="button" class="btn btn-small" disabled={locked} onClick={() => void act(`Assigned to ${me.display}.`, () => assignOwner(session, item, me))}>
                    Assign to me
                  </button>
                )}
              </form>
            </section>

            <section class="card" aria-labelledby="co-notes-title">
              <h2 id="co-notes-title">Notes</h2>
              {p.notes.length === 0 ? (
                <p class="muted">No notes yet.</p>
              ) : (
                <ul class="co-notes">
                  {p.notes.map((n, i) => (
                    <li key={i}>
                      <span class="co-note-meta">
                        {shortDate(n.time)}, {byLabel({ by: n.author, source: 'user' }, ownerChoices)}
                      </span>
                      <span class="co-note-text">{n.text}</span>
                    </li>
                  ))}
                </ul>
              )}
              <form
                class="co-note-form"
                onSubmit={(e) => {
                  e.preventDefault();
                  const text = noteText.trim();
                  if (!text) return;
                  void act('Note added.', () => addNote(session, item, text)).then((saved) => saved && setNoteText(''));
                }}
              >
                <label>
                  <span>New note</span>
                  <textarea rows={2} maxLength={2000} value={noteText} onInput={(e) => setNoteText((e.currentTarget as HTMLTextAreaElement).value)} />
                </label>
                <button type="submit" class="btn btn-small" disabled={locked || !noteText.trim()}>
                  Add note
                </button>
              </form>
            </section>
          </div>
        </div>

        {dialog?.kind === 'dismiss' && (
          <DismissDialog
            who={name}
            onCancel={() => setDialog(null)}
            onSubmit={(reason, note) => {
              setDialog(null);
              void act(`Dismissed ${name}.`, () => dismiss(session, item, reason, note));
            }}
          />
        )}
        {dialog?.kind === 'step' && <StepDialog who={name} step={dialog.step} asOf={asOf} since={p.stepSince} onCancel={() => setDialog(null)} onSubmit={submitStep} />}
      </main>
    </div>
  );
}

const TREATMENT_TEXT: Record<NonNullable<WorklistItem['pathway']['history'][number]['treatment']>, string> = {
  started: 'treatment started',
  'not-indicated': 'treatment not indicated',
  declined: 'patient declined treatment',
  continuing: 'still taking treatment',
  stopped: 'treatment stopped',
};

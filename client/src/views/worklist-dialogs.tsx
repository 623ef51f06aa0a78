/**
 * The coordinator's modal dialogs, shared by the worklist (one item or a bulk selection) and the coordinator's
 * patient view: dismiss (a reason must be chosen — none is preselected, so the audit data records a decision, not
 * a default), record a pathway step (date, treatment outcome where the step asks for one, note) and add a note.
 * Native `<dialog>` opened with `showModal()`: focus stays inside, Escape cancels.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { DISMISSAL_REASONS, type DismissalReasonCode, type PathwayStep, type StepRequest, type TreatmentOutcome } from '../../../server/fls/types.ts';
import { dayOf, recordLabel, stepLabel, treatmentChoices } from '../worklist-model.ts';

/** A modal `<dialog>` open while mounted; closing it (Escape, Cancel) calls `onCancel`. */
function Modal(props: { labelledBy: string; class?: string; onCancel: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => {
      if (d?.open) d.close();
    };
  }, []);
  return (
    <dialog ref={ref} class={`fls-dialog ${props.class ?? ''}`} aria-labelledby={props.labelledBy} onClose={props.onCancel}>
      {props.children}
    </dialog>
  );
}

/**
 * Dismiss one or more items: a reason is chosen from radio buttons, none preselected; the Dismiss button stays
 * disabled until one is chosen (and, for "Other", until a note is written).
 */
export function DismissDialog(props: { who: string; onCancel: () => void; onSubmit: (reason: DismissalReasonCode, note: string | undefined) => void }) {
  const [reason, setReason] = useState<DismissalReasonCode | null>(null);
  const [note, setNote] = useState('');
  const needsNote = reason === 'other';
  const ready = reason !== null && (!needsNote || note.trim() !== '');
  return (
    <Modal labelledBy="dismiss-title" class="dismiss-dialog" onCancel={props.onCancel}>
      <form
        class="fls-form"
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          if (ready && reason) props.onSubmit(reason, note.trim() || undefined);
        }}
      >
        <h2 id="dismiss-title">Dismiss {props.who}</h2>
        <fieldset class="fls-choices">
          <legend>Reason (required)</legend>
          {(Object.entries(DISMISSAL_REASONS) as [DismissalReasonCode, string][]).map(([code, text]) => (
            <label key={code} class="fls-choice">
              <input type="radio" name="dismiss-reason" value={code} checked={reason === code} onChange={() => setReason(code)} />
              <span>{text}</span>
            </label>
          ))}
        </fieldset>
        <label class="fls-field">
          <span>Note{needsNote ? ' (required for “Other”)' : ' (optional)'}</span>
          <textarea rows={2} maxLength={2000} value={note} onInput={(e) => setNote((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
        <div class="dialog-buttons">
          <button type="button" class="btn" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" class="btn btn-primary" disabled={!ready}>
            Dismiss
          </button>
        </div>
      </form>
    </Modal>
  );
}

/**
 * Record a pathway step: when it happened (default today by the server's clock, never in the future, not before
 * the current step), the treatment outcome where the step asks for one (no default), and an optional note.
 * Accepting (identified → accepted) takes a note only: the referral is dated by the server.
 */
export function StepDialog(props: {
  who: string;
  step: PathwayStep;
  /** Server's clock (today's date). */
  asOf: string;
  /** When the current step was reached (the earliest date allowed). */
  since: string;
  onCancel: () => void;
  onSubmit: (req: StepRequest) => void;
}) {
  const today = dayOf(props.asOf);
  const [date, setDate] = useState(today);
  const [treatment, setTreatment] = useState<TreatmentOutcome | null>(null);
  const [note, setNote] = useState('');
  const choices = treatmentChoices(props.step);
  const dated = props.step !== 'accepted';
  const dateOk = !dated || (/^\d{4}-\d{2}-\d{2}$/.test(date) && date <= today && date >= dayOf(props.since));
  const ready = dateOk && (choices.length === 0 || treatment !== null);
  return (
    <Modal labelledBy="step-title" class="step-dialog" onCancel={props.onCancel}>
      <form
        class="fls-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (!ready) return;
          props.onSubmit({ step: props.step, ...(dated ? { date } : {}), ...(treatment ? { treatment } : {}), ...(note.trim() ? { note: note.trim() } : {}) });
        }}
      >
        <h2 id="step-title">
          {recordLabel(props.step)}: {props.who}
        </h2>
        <p class="hint">Moves the item to “{stepLabel(props.step)}”.</p>
        {dated && (
          <label class="fls-field">
            <span>Date it happened</span>
            <input type="date" required value={date} max={today} min={dayOf(props.since)} onInput={(e) => setDate((e.currentTarget as HTMLInputElement).value)} />
          </label>
        )}
        {choices.length > 0 && (
          <fieldset class="fls-choices">
            <legend>{props.step === 'treatment-decided' ? 'Decision (required)' : 'Treatment now (required)'}</legend>
            {choices.map((c) => (
              <label key={c.code} class="fls-choice">
                <input type="radio" name="treatment" value={c.code} checked={treatment === c.code} onChange={() => setTreatment(c.code)} />
                <span>{c.label}</span>
              </label>
            ))}
          </fieldset>
        )}
        <label class="fls-field">
          <span>Note (optional)</span>
          <textarea rows={2} maxLength={2000} value={note} onInput={(e) => setNote((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
        {!dateOk && <p class="fls-error">The date must be between {dayOf(props.since)} and today.</p>}
        <div class="dialog-buttons">
          <button type="button" class="btn" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" class="btn btn-primary" disabled={!ready}>
            Save
          </button>
        </div>
      </form>
    </Modal>
  );
}

/** Add a note to an item. */
export function NoteDialog(props: { who: string; onCancel: () => void; onSubmit: (text: string) => void }) {
  const [text, setText] = useState('');
  return (
    <Modal labelledBy="note-title" onCancel={props.onCancel}>
      <form
        class="fls-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (text.trim()) props.onSubmit(text.trim());
        }}
      >
        <h2 id="note-title">Note on {props.who}</h2>
        <label class="fls-field">
          <span>Note</span>
          <textarea rows={3} maxLength={2000} value={text} onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
        <div class="dialog-buttons">
          <button type="button" class="btn" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" class="btn btn-primary" disabled={!text.trim()}>
            Add note
          </button>
        </div>
      </form>
    </Modal>
  );
}

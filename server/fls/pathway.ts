/**
 * The FLS pathway on the triage Task: which step an item is at, when the next one is due, and how the steps are
 * written into the Task so that any FHIR client can read them back.
 *
 * FHIR encoding (profile `frcds-fls-triage-task`):
 * - `Task.businessStatus` — the current step, coded with the `fls-pathway` CodeSystem;
 * - `Task.status` — `requested` while identified, `in-progress` from accepted to the 12-month follow-up,
 *   `completed` once closed, `rejected` when dismissed;
 * - `Task.extension` {@link PATHWAY_EVENT_URL} (repeating) — one per step reached: `step` (code), `time`
 *   (dateTime), `by` (string), `source` (`user` | `fhir`), optional `treatment` (code) and `evidence` (Reference to
 *   the Observation or MedicationRequest it was detected from);
 * - `Task.restriction.period.end` — the due date of the next step;
 * - `Task.owner` — who works the item; `Task.note` — the coordinator's notes.
 *
 * Steps the chart shows are detected rather than typed in: a DXA result (Observation of ValueSet `dxa-result`) dated
 * on or after identification means `assessed`; an osteoporosis medicine prescribed on or after identification means
 * `treatment-decided` with treatment started. Detection applies once the FLS has accepted the item; detected steps
 * are shown at once and written into the Task with its next update.
 *
 * Due dates follow the IOF Capture the Fracture Best Practice Framework and the UK FLS-DB key performance
 * indicators (contact within 2 weeks, DXA within 12 weeks of identification, follow-up at 16 weeks and 12 months);
 * the day counts are settings ({@link DueDays}).
 * @see https://www.capturethefracture.org/best-practice-framework
 * @see https://www.fffap.org.uk/FLS/flsweb.nsf
 */
import type { Coding, Extension, Task } from '@medplum/fhirtypes';
import {
  FLS_PATHWAY_SYSTEM, PATHWAY_STEP_LABELS, PATHWAY_STEPS, TREATMENT_OUTCOMES, isOpenStep,
  type DueDays, type PathwayEvent, type PathwayStep, type TreatmentOutcome,
} from './types.ts';

/** Extension on the triage Task: one step reached. */
export const PATHWAY_EVENT_URL = 'https://fracture-risk-cds.invalid/fhir/StructureDefinition/fls-pathway-event';

/** Default due days (IOF Capture the Fracture / UK FLS-DB). */
export const DEFAULT_DUE_DAYS: Readonly<DueDays> = Object.freeze({ contact: 14, dxa: 84, treatmentDecision: 14, followUp16Weeks: 112, followUp12Months: 365 });

const DAY_MS = 86_400_000;

/** Position of a step on the line; `dismissed` sorts after `closed`. */
export function stepIndex(step: PathwayStep): number {
  const i = PATHWAY_STEPS.indexOf(step);
  return i < 0 ? PATHWAY_STEPS.length : i;
}

export function isPathwayStep(x: unknown): x is PathwayStep {
  return typeof x === 'string' && Object.hasOwn(PATHWAY_STEP_LABELS, x);
}

export function isTreatmentOutcome(x: unknown): x is TreatmentOutcome {
  return typeof x === 'string' && Object.hasOwn(TREATMENT_OUTCOMES, x);
}

/** Treatment outcomes that make sense with a step: the decision, or adherence at a follow-up. */
export function treatmentOutcomesFor(step: PathwayStep): readonly TreatmentOutcome[] {
  if (step === 'treatment-decided') return ['started', 'not-indicated', 'declined'];
  if (step === 'follow-up-16w' || step === 'follow-up-12m') return ['continuing', 'stopped'];
  return [];
}

export function pathwayCoding(step: PathwayStep): Coding {
  return { system: FLS_PATHWAY_SYSTEM, code: step, display: PATHWAY_STEP_LABELS[step] };
}

/** The FHIR Task.status a step is kept in. */
export function taskStatusOf(step: PathwayStep): Task['status'] {
  if (step === 'identified') return 'requested';
  if (step === 'closed') return 'completed';
  if (step === 'dismissed') return 'rejected';
  return 'in-progress';
}

/** `YYYY-MM-DD` of an ISO date or date-time. */
export const dayOf = (t: string): string => t.slice(0, 10);

/** `day` + `days` days (UTC), as YYYY-MM-DD. */
export function addDays(day: string, days: number): string {
  return new Date(Date.parse(`${dayOf(day)}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
}

/** Whole days from `a` to `b` (dates). */
export function daysBetween(a: string, b: string): number {
  return Math.round((Date.parse(`${dayOf(b)}T00:00:00Z`) - Date.parse(`${dayOf(a)}T00:00:00Z`)) / DAY_MS);
}

/** Reads the events written into a Task (malformed ones are skipped). */
export function recordedEvents(task: Task): PathwayEvent[] {
  const out: PathwayEvent[] = [];
  for (const e of task.extension ?? []) {
    if (e.url !== PATHWAY_EVENT_URL) continue;
    const part = (u: string): Extension | undefined => e.extension?.find((x) => x.url === u);
    const step = part('step')?.valueCode;
    const time = part('time')?.valueDateTime;
    if (!isPathwayStep(step) || !time) continue;
    const source = part('source')?.valueCode === 'fhir' ? 'fhir' : 'user';
    const treatment = part('treatment')?.valueCode;
    const evidence = part('evidence')?.valueReference?.reference;
    out.push({ step, time, by: part('by')?.valueString ?? evidence ?? 'unknown', source, ...(isTreatmentOutcome(treatment) ? { treatment } : {}) });
  }
  return out;
}

/** One event as a Task extension. */
export function eventExtension(e: PathwayEvent, evidence?: string): Extension {
  return {
    url: PATHWAY_EVENT_URL,
    extension: [
      { url: 'step', valueCode: e.step },
      { url: 'time', valueDateTime: e.time },
      { url: 'by', valueString: e.by },
      { url: 'source', valueCode: e.source },
      ...(e.treatment ? [{ url: 'treatment', valueCode: e.treatment }] : []),
      ...(evidence ? [{ url: 'evidence', valueReference: { reference: evidence } }] : []),
    ],
  };
}

/** A step detected from the chart, with the resource it was read from. */
export interface DetectedEvent extends PathwayEvent {
  source: 'fhir';
  evidence: string;
}

/**
 * The item's history: the events written into the Task, or for a Task written before the pathway existed, what its
 * status implies (identified at authoredOn, accepted or dismissed at lastModified); then the detected events of
 * steps not yet recorded (only once accepted, and not after closing or dismissal). Oldest first.
 */
export function historyOf(task: Task, detected: readonly DetectedEvent[] = []): PathwayEvent[] {
  const identifiedAt = task.authoredOn ?? task.lastModified ?? '';
  let events = recordedEvents(task);
  if (!events.some((e) => e.step === 'identified')) events.unshift({ step: 'identified', time: identifiedAt, by: 'triage', source: 'fhir' });
  const changed = task.lastModified ?? identifiedAt;
  const status = task.status;
  if ((['accepted', 'in-progress', 'on-hold', 'completed'] as Task['status'][]).includes(status) && !events.some((e) => e.step !== 'identified' && e.step !== 'dismissed')) {
    events.push({ step: 'accepted', time: changed, by: task.owner?.display ?? task.owner?.reference ?? 'unknown', source: 'user' });
  }
  if ((status === 'rejected' || status === 'cancelled') && !events.some((e) => e.step === 'dismissed')) {
    events.push({ step: 'dismissed', time: changed, by: task.owner?.display ?? task.owner?.reference ?? 'unknown', source: 'user' });
  }
  const recordedStep = currentStep(events);
  if (recordedStep !== 'identified' && isOpenStep(recordedStep)) {
    for (const d of detected) {
      if (events.some((e) => e.step === d.step)) continue;
      if (dayOf(d.time) < dayOf(identifiedAt)) continue;
      events.push(d);
    }
  }
  events = events.map((e, i) => ({ e, i })).sort((a, b) => dayOf(a.e.time).localeCompare(dayOf(b.e.time)) || stepIndex(a.e.step) - stepIndex(b.e.step) || a.i - b.i).map((x) => x.e);
  return events;
}

/** The current step: dismissed when dismissed, else the furthest step reached. */
export function currentStep(events: readonly PathwayEvent[]): PathwayStep {
  if (events.some((e) => e.step === 'dismissed')) return 'dismissed';
  let best: PathwayStep = 'identified';
  for (const e of events) if (stepIndex(e.step) > stepIndex(best)) best = e.step;
  return best;
}

/** The latest event of `step` (or undefined). */
export function eventOf(events: readonly PathwayEvent[], step: PathwayStep): PathwayEvent | undefined {
  let found: PathwayEvent | undefined;
  for (const e of events) if (e.step === step) found = e;
  return found;
}

/** True when the step or a later one was reached (dismissals do not count). */
export function reached(events: readonly PathwayEvent[], step: PathwayStep): boolean {
  return events.some((e) => e.step !== 'dismissed' && stepIndex(e.step) >= stepIndex(step));
}

/** The date a step (or the first later step) was reached, when it was. */
export function reachedOn(events: readonly PathwayEvent[], step: PathwayStep): string | undefined {
  const days = events.filter((e) => e.step !== 'dismissed' && stepIndex(e.step) >= stepIndex(step)).map((e) => dayOf(e.time)).sort();
  return days[0];
}

export interface DueInfo {
  dueDate: string | null;
  dueFor: string | null;
}

/** When the next step is due, counted from identification, the DXA result or the treatment decision. */
export function dueOf(events: readonly PathwayEvent[], identifiedAt: string, days: DueDays): DueInfo {
  const step = currentStep(events);
  const decided = reachedOn(events, 'treatment-decided');
  switch (step) {
    case 'identified':
    case 'accepted':
      return { dueDate: addDays(identifiedAt, days.contact), dueFor: 'Contact the patient' };
    case 'contacted':
    case 'dxa-booked':
      return { dueDate: addDays(identifiedAt, days.dxa), dueFor: 'DXA result' };
    case 'assessed':
      return { dueDate: addDays(reachedOn(events, 'assessed') ?? identifiedAt, days.treatmentDecision), dueFor: 'Treatment decision' };
    case 'treatment-decided':
      return { dueDate: addDays(decided ?? identifiedAt, days.followUp16Weeks), dueFor: '16-week follow-up' };
    case 'follow-up-16w':
      return { dueDate: addDays(decided ?? identifiedAt, days.followUp12Months), dueFor: '12-month follow-up' };
    default:
      return { dueDate: null, dueFor: null };
  }
}

/** Overdue: something is due and today (UTC, from `now`) is after the due date. */
export function isOverdue(dueDate: string | null, now: Date): boolean {
  return dueDate !== null && now.toISOString().slice(0, 10) > dueDate;
}

/**
 * The steps an item may move to with `POST …/step`: from identified only `accepted` (accepting creates the FLS
 * referral); from an accepted step any later step (a step may be skipped, e.g. a DXA done elsewhere); none once
 * closed or dismissed. Dismissal is its own action.
 */
export function nextStepsOf(step: PathwayStep): PathwayStep[] {
  if (!isOpenStep(step)) return [];
  if (step === 'identified') return ['accepted'];
  return PATHWAY_STEPS.filter((s) => stepIndex(s) > stepIndex(step));
}

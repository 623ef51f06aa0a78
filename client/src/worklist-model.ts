/**
 * Pure helpers of the FLS coordinator's screens (worklist, coordinator's patient view, KPI panel): what a pathway
 * step is called and which button records it, how a due date reads, column sorting, and how a pathway event's
 * author is named without showing a FHIR reference. No DOM, no fetch: unit-tested in test/client/.
 */
import {
  DEFAULT_SORT_DIR, PATHWAY_STEP_LABELS, PATHWAY_STEPS, TREATMENT_OUTCOMES,
  type KpiCounts, type PathwayEvent, type PathwayOwner, type PathwayStep, type TreatmentOutcome, type WorklistItem, type WorklistSort,
} from '../../server/fls/types.ts';

const DAY_MS = 86_400_000;

/** `YYYY-MM-DD` (UTC) of an ISO date or date-time; the server's `asOf` gives "today". */
export function dayOf(iso: string): string {
  return iso.slice(0, 10);
}

/** Whole days from `fromDay` to `toDay` (both YYYY-MM-DD, UTC); negative when `toDay` is earlier. */
export function daysBetween(fromDay: string, toDay: string): number {
  return Math.round((Date.parse(`${dayOf(toDay)}T00:00:00Z`) - Date.parse(`${dayOf(fromDay)}T00:00:00Z`)) / DAY_MS);
}

/** `2026-12-17` → `17 Dec 2026` (UTC, so a date does not move with the viewer's time zone); `–` when absent. */
export function shortDate(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso.length === 10 ? `${iso}T00:00:00Z` : iso);
  if (Number.isNaN(d.getTime())) return '–';
  return d.toLocaleDateString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
}

/** How the next due date reads, and whether it is overdue (the server decides `overdue` against its clock). */
export interface DueText {
  /** e.g. "Contact the patient by 17 Dec 2026". */
  text: string;
  /** e.g. "in 5 days", "due today", "3 days overdue"; '' when nothing is due. */
  relative: string;
  overdue: boolean;
}

/** The due line of an item's pathway relative to the server's `asOf`; `null` when nothing is due (closed, dismissed). */
export function dueText(pathway: Pick<WorklistItem['pathway'], 'dueDate' | 'dueFor' | 'overdue'>, asOf: string): DueText | null {
  if (!pathway.dueDate) return null;
  const days = daysBetween(dayOf(asOf), pathway.dueDate);
  const what = pathway.dueFor ?? 'Next step';
  const relative = pathway.overdue
    ? `${Math.max(1, -days)} day${Math.max(1, -days) === 1 ? '' : 's'} overdue`
    : days === 0
      ? 'due today'
      : days > 0
        ? `in ${days} day${days === 1 ? '' : 's'}`
        : '';
  return { text: `${what} by ${shortDate(pathway.dueDate)}`, relative, overdue: pathway.overdue };
}

/** Plain label of a step ("Patient contacted"). */
export function stepLabel(step: PathwayStep): string {
  return PATHWAY_STEP_LABELS[step];
}

/** The button that records a step ("Record DXA result"); `accepted` is the FLS taking the patient on. */
export function recordLabel(step: PathwayStep): string {
  switch (step) {
    case 'accepted':
      return 'Accept onto the pathway';
    case 'contacted':
      return 'Record patient contacted';
    case 'dxa-booked':
      return 'Record DXA booked';
    case 'assessed':
      return 'Record DXA result';
    case 'treatment-decided':
      return 'Record treatment decision';
    case 'follow-up-16w':
      return 'Record 16-week follow-up';
    case 'follow-up-12m':
      return 'Record 12-month follow-up';
    case 'closed':
      return 'Close the pathway';
    default:
      return `Record ${PATHWAY_STEP_LABELS[step].toLowerCase()}`;
  }
}

/** The next step in line among those the server allows (`pathway.nextSteps`): the primary action; null when none. */
export function primaryNextStep(nextSteps: readonly PathwayStep[]): PathwayStep | null {
  const ordered = PATHWAY_STEPS.filter((s) => nextSteps.includes(s));
  return ordered[0] ?? null;
}

/** Treatment outcomes asked for with a step: at the decision started/not indicated/declined; at follow-ups adherence. */
export function treatmentChoices(step: PathwayStep): { code: TreatmentOutcome; label: string }[] {
  const codes: TreatmentOutcome[] =
    step === 'treatment-decided' ? ['started', 'not-indicated', 'declined'] : step === 'follow-up-16w' || step === 'follow-up-12m' ? ['continuing', 'stopped'] : [];
  return codes.map((code) => ({ code, label: TREATMENT_OUTCOMES[code] }));
}

/** `Unassigned` or the owner's name. */
export function ownerLabel(owner: PathwayOwner | null | undefined): string {
  return owner?.display || 'Unassigned';
}

/** "MRN 1234567 · Site North" (parts left out when the chart has none; "No MRN" so the absence is visible). */
export function identifiersLine(item: Pick<WorklistItem, 'mrn' | 'site'>): string {
  return [item.mrn ? `MRN ${item.mrn}` : 'No MRN', item.site ? `Site ${item.site}` : 'No site'].join(' · ');
}

const REFERENCE = /^([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * Who recorded a pathway event, in words: an owner's name when the reference is one of the known owners; a step
 * detected from the chart names the kind of record it came from; any other FHIR reference becomes "FLS team" — a
 * raw reference ("Practitioner/…", "Observation/…") is never shown.
 */
export function byLabel(event: Pick<PathwayEvent, 'by' | 'source'>, owners: readonly PathwayOwner[] = []): string {
  const known = owners.find((o) => o.reference === event.by);
  if (known) return known.display;
  const m = REFERENCE.exec(event.by);
  if (event.source === 'fhir') {
    const kind = m?.[1];
    if (kind === 'Observation') return 'detected from a DXA result in the chart';
    if (kind === 'MedicationRequest' || kind === 'MedicationStatement') return 'detected from a prescription in the chart';
    // A named system (e.g. the triage job) is shown by its name; any other reference by what it is.
    return m || event.by === 'unknown' || event.by === '' ? 'detected from the chart' : event.by;
  }
  if (m || event.by === 'unknown' || event.by === '') return 'FLS team';
  return event.by;
}

/**
 * The caveats among an item's warnings. The risk service writes its recommendation ("High risk. … Refer to the
 * fracture liaison service … Thresholds: …") as the RiskAssessment's first note; that advice is for the referring
 * clinician — the coordinator is the FLS, and why the patient was flagged is already `flagReason` — so it is left
 * out here; every real warning stays.
 */
export function caveatsOf(warnings: readonly string[]): string[] {
  return warnings.filter((w) => !/^(High|Moderate|Low) risk\. [\s\S]*Thresholds: /.test(w));
}

/** Current sort of the worklist. */
export interface SortState {
  sort: WorklistSort;
  dir: 'asc' | 'desc';
}

/** Clicking a column header: the same column flips direction; another column starts in its natural direction. */
export function toggleSort(current: SortState, key: WorklistSort): SortState {
  if (current.sort === key) return { sort: key, dir: current.dir === 'asc' ? 'desc' : 'asc' };
  return { sort: key, dir: DEFAULT_SORT_DIR[key] };
}

/** `aria-sort` of a column header. */
export function ariaSort(current: SortState, key: WorklistSort): 'ascending' | 'descending' | 'none' {
  if (current.sort !== key) return 'none';
  return current.dir === 'asc' ? 'ascending' : 'descending';
}

/** Where a step stands on an item's timeline. */
export type TimelineState = 'done' | 'current' | 'next' | 'later' | 'skipped';

export interface TimelineRow {
  step: PathwayStep;
  label: string;
  state: TimelineState;
  /** The event that reached it (done/current). */
  event: PathwayEvent | null;
  /** Due date of the next step (state `next`). */
  dueDate: string | null;
}

/**
 * The pathway as a timeline: every step in order with what happened (history), the current step, the next one with
 * its due date, later ones, and steps passed over without being recorded ("skipped", e.g. a DXA done elsewhere).
 * A dismissed item shows the steps it reached, then the dismissal.
 */
export function timeline(pathway: Pick<WorklistItem['pathway'], 'step' | 'history' | 'dueDate'>): TimelineRow[] {
  const reached = new Map<PathwayStep, PathwayEvent>();
  for (const e of pathway.history) reached.set(e.step, e);
  const dismissed = pathway.step === 'dismissed';
  const lastReached = dismissed ? Math.max(-1, ...pathway.history.filter((e) => e.step !== 'dismissed').map((e) => PATHWAY_STEPS.indexOf(e.step))) : PATHWAY_STEPS.indexOf(pathway.step);
  const rows: TimelineRow[] = [];
  let nextMarked = false;
  for (const [i, step] of PATHWAY_STEPS.entries()) {
    const event = reached.get(step) ?? null;
    let state: TimelineState;
    if (i < lastReached) state = event ? 'done' : 'skipped';
    else if (i === lastReached) state = dismissed ? 'done' : 'current';
    else if (!dismissed && !nextMarked && pathway.step !== 'closed') {
      state = 'next';
      nextMarked = true;
    } else state = 'later';
    if (dismissed && i > lastReached) continue;
    rows.push({ step, label: PATHWAY_STEP_LABELS[step], state, event, dueDate: state === 'next' ? pathway.dueDate : null });
  }
  if (dismissed) rows.push({ step: 'dismissed', label: PATHWAY_STEP_LABELS.dismissed, state: 'current', event: reached.get('dismissed') ?? null, dueDate: null });
  return rows;
}

/** One line of the KPI panel. */
export interface KpiRow {
  key: keyof KpiCounts;
  label: string;
  value: number;
  /** Share of the identified patients, as "40%" ('' when nothing was identified or for counts that are not shares). */
  share: string;
}

const KPI_LINES: { key: keyof KpiCounts; label: string; share: boolean }[] = [
  { key: 'identified', label: 'Identified (flagged)', share: false },
  { key: 'accepted', label: 'Accepted by the FLS', share: true },
  { key: 'contacted', label: 'Contacted', share: true },
  { key: 'contactedWithinTarget', label: 'Contacted within the target', share: true },
  { key: 'assessed', label: 'Assessed (DXA result)', share: true },
  { key: 'assessedWithin12Weeks', label: 'Assessed within 12 weeks', share: true },
  { key: 'treatmentStarted', label: 'Treatment started', share: true },
  { key: 'followUp16Weeks', label: '16-week follow-up done', share: true },
  { key: 'onTreatmentAt12Months', label: 'On treatment at 12 months', share: true },
  { key: 'overdue', label: 'Overdue now', share: true },
  { key: 'dismissed', label: 'Dismissed', share: true },
  { key: 'open', label: 'Still on the pathway', share: true },
];

/** The KPI lines in pathway order with each count's share of the identified patients. */
export function kpiRows(k: KpiCounts): KpiRow[] {
  return KPI_LINES.map(({ key, label, share }) => {
    const value = k[key] as number;
    return { key, label, value, share: share && k.identified > 0 ? `${Math.round((value / k.identified) * 100)}%` : '' };
  });
}

/** File name of an export: `fls-<what>-<YYYY-MM-DD>.csv`. */
export function csvFileName(what: 'worklist' | 'kpis', asOf: string): string {
  return `fls-${what}-${dayOf(asOf)}.csv`;
}

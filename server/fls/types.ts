/**
 * Wire types of the fracture liaison service (FLS) worklist API, shared by the server (`server/fls/routes.ts`) and the
 * SMART app's worklist and coordinator views. Pure TypeScript: no Node imports, so the browser bundle can import it.
 *
 * Risks are percentages (0–100) of the 10-year risk shown to the clinician (fused model, or QFracture-2012 alone in
 * clinical-only mode, whose interval is then `null`); they are displayed with `server/risk/numbers.ts`. Every screen
 * showing them must carry {@link RESEARCH_NOTICE}.
 *
 * The FLS pathway follows the IOF Capture the Fracture Best Practice Framework and the UK FLS-DB key performance
 * indicators: identification → contact → DXA → treatment decision → follow-up at 16 weeks and 12 months.
 */

/** Shown verbatim wherever a model's output is displayed (shared brief). */
export const RESEARCH_NOTICE = 'Research use — trained on synthetic data';

export type WorklistTier = 'low' | 'moderate' | 'high';
export type WorklistMode = 'image-and-clinical' | 'clinical-only';

/**
 * Status of a worklist item, derived from the triage Task:
 * `requested` (Task requested/received/ready), `accepted` (accepted/in-progress/completed: an FLS referral exists),
 * `dismissed` (rejected/cancelled with a dismissal reason).
 */
export type WorklistStatus = 'requested' | 'accepted' | 'dismissed';
export const WORKLIST_STATUSES: readonly WorklistStatus[] = ['requested', 'accepted', 'dismissed'];
export const WORKLIST_TIERS: readonly WorklistTier[] = ['low', 'moderate', 'high'];

/** A 10-year risk in percent with its 95 % interval (null bounds: clinical-only, no interval). */
export interface RiskWithInterval {
  estimate: number;
  lower: number | null;
  upper: number | null;
}

export interface WorklistItem {
  /** Id of the FLS triage Task (the handle for accept/dismiss). */
  taskId: string;
  patientId: string;
  /** Display name (given + family) from the Patient resource; '' when the chart has none. */
  patientName: string;
  /** Patient.birthDate (YYYY-MM-DD); null when absent. */
  birthDate: string | null;
  /** Patient.gender. */
  sex: 'female' | 'male' | 'other' | 'unknown';
  riskAssessmentId: string;
  /** The risk service's assessment id (RiskAssessment.identifier urn:frcds:assessment), to open it in the app. */
  assessmentId?: string;
  tier: WorklistTier;
  mode: WorklistMode;
  hip10: RiskWithInterval;
  mof10: RiskWithInterval;
  /** Imminent risk: a fragility fracture recorded in the 2 years before the assessment, or a vertebral fracture of grade ≥ 2 on CT. */
  imminent: boolean;
  /**
   * Set when the triage Task is urgent for a moderate or severe vertebral fracture on CT: the flag's reason ("vertebral
   * fracture on CT, grade 2 at L1"). Such items come first in the risk order.
   */
  imminentReason?: string;
  status: WorklistStatus;
  /** Task.authoredOn (ISO date-time). */
  authoredOn: string;
  /** Medical record number: Patient.identifier with type MR, else the first identifier's value; null when none. */
  mrn: string | null;
  /** Site of the patient (managing organisation, else the MRN's assigner); null when the chart names none. */
  site: string | null;
  /**
   * Why the patient was flagged, in plain words with the numbers as displayed everywhere else, e.g.
   * "10-year hip risk 5.2% (above 3%); recent wrist fracture".
   */
  flagReason: string;
  /** Where the patient is on the FLS pathway (see {@link PATHWAY_STEPS}). */
  pathway: Pathway;
  /** What the chart says about referral, DXA and treatment (read from FHIR each time the item is built). */
  care: ItemCareStatus;
  /** Start date of the radiograph the assessment used (image-and-clinical mode). */
  studyDate?: string;
  /** The assessment's warnings (RiskAssessment.note), plus worklist-level ones (e.g. missing resources). */
  warnings: string[];
  /** Set once accepted: id of the FLS referral ServiceRequest. */
  serviceRequestId?: string;
  /** Set once dismissed: the dismissal reason code (see {@link DISMISSAL_REASONS}). */
  dismissalReason?: DismissalReasonCode;
}

/** Sort keys of the worklist: 10-year hip risk (then MOF), due date, patient name, pathway step, Task.authoredOn. */
export type WorklistSort = 'risk' | 'due' | 'name' | 'step' | 'authored';
export const WORKLIST_SORTS: readonly WorklistSort[] = ['risk', 'due', 'name', 'step', 'authored'];
/** Default direction per sort key: highest risk, earliest due date, A→Z name, earliest step, newest first. */
export const DEFAULT_SORT_DIR: Readonly<Record<WorklistSort, 'asc' | 'desc'>> = { risk: 'desc', due: 'asc', name: 'asc', step: 'asc', authored: 'desc' };

/**
 * Query of `GET /api/fls/worklist` and `GET /api/fls/worklist.csv` (all optional; dates YYYY-MM-DD, inclusive).
 * URL parameters: `tier`, `status`, `step`, `owner`, `overdue` (`true`/`false`), `site`, `from`, `to`, `sort`, `dir`.
 */
export interface WorklistQuery {
  tier?: WorklistTier;
  status?: WorklistStatus;
  /** Current pathway step. */
  step?: PathwayStep;
  /**
   * Owner filter: a reference (`Practitioner/123`), `me` (the caller's fhirUser) or `none` (unassigned items).
   * The server resolves `me` before filtering.
   */
  owner?: string;
  /** Only overdue (`true`) or only not overdue (`false`) items. */
  overdue?: boolean;
  /** Task.authoredOn on or after this date. */
  from?: string;
  /** Task.authoredOn on or before this date. */
  to?: string;
  /** Site name, case-insensitive exact match. */
  site?: string;
  sort?: WorklistSort;
  dir?: 'asc' | 'desc';
}

/** Answer of `GET /api/fls/worklist`: items in the order asked for (default: 10-year hip risk, highest first). */
export interface WorklistResponse {
  items: WorklistItem[];
  total: number;
  /** The server's clock when the list was built (overdue flags are relative to it). */
  asOf: string;
  notice: typeof RESEARCH_NOTICE;
}

/** Answer of `GET /api/fls/worklist/{taskId}` and of every single-item action. */
export interface WorklistItemResponse {
  item: WorklistItem;
  notice: typeof RESEARCH_NOTICE;
}

// ---------------------------------------------------------------------------------------------------------------
// The FLS pathway

/**
 * Steps of the FLS pathway, in order. `identified`: a triage Task exists; `accepted`: the FLS took the patient on
 * (FLS referral ServiceRequest created); `contacted`: the patient was reached; `dxa-booked`; `assessed`: a DXA
 * result exists; `treatment-decided`; `follow-up-16w` and `follow-up-12m`: adherence checks after the treatment
 * decision; `closed`. `dismissed` ends the pathway from any open step (with a reason).
 * Codes of the CodeSystem `fls-pathway` ({@link FLS_PATHWAY_SYSTEM}).
 */
export type PathwayStep =
  | 'identified' | 'accepted' | 'contacted' | 'dxa-booked' | 'assessed' | 'treatment-decided'
  | 'follow-up-16w' | 'follow-up-12m' | 'closed' | 'dismissed';

/** The ordered steps (without `dismissed`, which is not on the line). */
export const PATHWAY_STEPS: readonly PathwayStep[] = [
  'identified', 'accepted', 'contacted', 'dxa-booked', 'assessed', 'treatment-decided', 'follow-up-16w', 'follow-up-12m', 'closed',
];
/** Every step code, `dismissed` included (for filters). */
export const ALL_PATHWAY_STEPS: readonly PathwayStep[] = [...PATHWAY_STEPS, 'dismissed'];

/** Plain-words label of each step, as the coordinator reads it. */
export const PATHWAY_STEP_LABELS: Readonly<Record<PathwayStep, string>> = {
  identified: 'Identified',
  accepted: 'Accepted by FLS',
  contacted: 'Patient contacted',
  'dxa-booked': 'DXA booked',
  assessed: 'Assessed (DXA result)',
  'treatment-decided': 'Treatment decided',
  'follow-up-16w': '16-week follow-up done',
  'follow-up-12m': '12-month follow-up done',
  closed: 'Closed',
  dismissed: 'Dismissed',
};

export const FLS_PATHWAY_SYSTEM = 'https://fracture-risk-cds.invalid/fhir/CodeSystem/fls-pathway';

/** Open steps: the pathway is not over (closed and dismissed are final). */
export function isOpenStep(step: PathwayStep): boolean {
  return step !== 'closed' && step !== 'dismissed';
}

/**
 * Treatment recorded with a step: at `treatment-decided` `started` / `not-indicated` / `declined`; at the follow-ups
 * `continuing` / `stopped` (adherence).
 */
export type TreatmentOutcome = 'started' | 'not-indicated' | 'declined' | 'continuing' | 'stopped';
export const TREATMENT_OUTCOMES: Readonly<Record<TreatmentOutcome, string>> = {
  started: 'Treatment started',
  'not-indicated': 'Treatment not indicated',
  declined: 'Patient declined treatment',
  continuing: 'Still taking treatment',
  stopped: 'Treatment stopped',
};

/** A person or team the item is assigned to (Task.owner). */
export interface PathwayOwner {
  /** `Practitioner/…`, `PractitionerRole/…` or `CareTeam/…`. */
  reference: string;
  display: string;
}

export interface PathwayNote {
  time: string;
  /** Display name (or reference) of the author. */
  author: string;
  text: string;
}

/** One step reached: recorded by a user, or detected from the chart (a DXA Observation, an osteoporosis medicine). */
export interface PathwayEvent {
  step: PathwayStep;
  /** When the step happened (ISO date or date-time; the date the user gave, or the resource's date). */
  time: string;
  /** Who recorded it (display or reference), or what it was detected from (e.g. "Observation/123"). */
  by: string;
  source: 'fhir' | 'user';
  /** Treatment outcome given with the step (treatment decision, follow-ups). */
  treatment?: TreatmentOutcome;
}

export interface Pathway {
  step: PathwayStep;
  /** When the current step was reached. */
  stepSince: string;
  /** Due date (YYYY-MM-DD) of the next step; null once closed or dismissed. */
  dueDate: string | null;
  /** What is due by `dueDate`, e.g. "Contact the patient"; null when nothing is due. */
  dueFor: string | null;
  /** The due date has passed (against the server's clock, `asOf`). */
  overdue: boolean;
  owner: PathwayOwner | null;
  notes: PathwayNote[];
  /** Steps reached, oldest first (`identified` first). */
  history: PathwayEvent[];
  /** The steps the item may move to now (for the UI's step menu). */
  nextSteps: PathwayStep[];
  /** Task.meta.versionId: send it back as `If-Match: W/"<version>"` with an action. */
  version: string;
}

/** A referral, order or result as the worklist shows it (the chart's care status). */
export interface CareRef {
  id: string;
  status: string;
  since: string | null;
}

/** The chart's care status, as the worklist item carries it. */
export interface ItemCareStatus {
  /** The open FLS referral (draft/active/on-hold ServiceRequest), when there is one. */
  flsReferral: CareRef | null;
  dxaOrder: CareRef | null;
  /** The latest DXA result (Observation of ValueSet `dxa-result`). */
  dxaResult: { id: string; date: string | null; tScore: number | null } | null;
  /** An active bone-protective medicine. */
  treatment: { id: string; name: string; since: string | null } | null;
}

/** Body of `POST /api/fls/worklist/{taskId}/step` (send `If-Match` with the item's `pathway.version`). */
export interface StepRequest {
  /** The step reached. Must be later than the current one; `dismissed` goes through `/dismiss`. */
  step: PathwayStep;
  /** When it happened (YYYY-MM-DD, not in the future); default now. */
  date?: string;
  note?: string;
  /** Treatment outcome (treatment decision: started/not-indicated/declined; follow-ups: continuing/stopped). */
  treatment?: TreatmentOutcome;
}

/** Body of `POST /api/fls/worklist/{taskId}/owner`; `null` unassigns. */
export interface OwnerRequest {
  owner: PathwayOwner | null;
}

/** Answer of `GET /api/fls/owners`: people an item can be assigned to (active Practitioners, by name). */
export interface OwnersResponse {
  owners: PathwayOwner[];
}

/** Body of `POST /api/fls/worklist/{taskId}/notes`. */
export interface NoteRequest {
  text: string;
}

export type BulkAction = 'assign' | 'step' | 'dismiss';

/** Body of `POST /api/fls/worklist/bulk` (at most 200 Task ids; no If-Match: each item is acted on as it is now). */
export interface BulkRequest {
  taskIds: string[];
  action: BulkAction;
  /** For `assign` (null unassigns). */
  owner?: PathwayOwner | null;
  /** For `step`. */
  step?: PathwayStep;
  /** For `step`: when it happened (YYYY-MM-DD). */
  date?: string;
  /** For `dismiss`: required, never defaulted. */
  reason?: DismissalReasonCode;
  note?: string;
}

/** One item's result in a bulk answer. */
export interface BulkItemResult {
  taskId: string;
  ok: boolean;
  /** The HTTP status the single-item action would have answered (200, 201, 400, 404, 409, 502 …). */
  status: number;
  item?: WorklistItem;
  error?: string;
  code?: FlsErrorBody['code'];
}

/** Answer of `POST /api/fls/worklist/bulk` (HTTP 200 even when some items failed; see each result). */
export interface BulkResponse {
  results: BulkItemResult[];
  succeeded: number;
  failed: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Key performance indicators

/** Query of `GET /api/fls/kpis` and `/kpis.csv`: identification date range (YYYY-MM-DD, inclusive) and site. */
export interface KpiQuery {
  from?: string;
  to?: string;
  site?: string;
}

/**
 * Counts along the pathway for the patients identified in the range (Task.authoredOn). A patient "reached" a step
 * when the step or a later one was recorded or detected, dismissals excluded.
 */
export interface KpiCounts {
  /** Triage Tasks created (patients flagged). */
  identified: number;
  accepted: number;
  contacted: number;
  /** Contacted within the contact target (`FLS_DUE_CONTACT_DAYS` after identification). */
  contactedWithinTarget: number;
  dxaBooked: number;
  /** With a DXA result (recorded or detected). */
  assessed: number;
  /** With a DXA result within `FLS_DUE_DXA_DAYS` (12 weeks) of identification. */
  assessedWithin12Weeks: number;
  treatmentDecided: number;
  /** Treatment started: recorded at the decision, or an osteoporosis medicine in the chart after identification. */
  treatmentStarted: number;
  followUp16Weeks: number;
  /** 12-month follow-up done and still on treatment (recorded, or an active osteoporosis medicine in the chart). */
  onTreatmentAt12Months: number;
  closed: number;
  /** Still on the pathway (not closed or dismissed). */
  open: number;
  /** Open and past their due date. */
  overdue: number;
  dismissed: number;
  dismissedByReason: Record<DismissalReasonCode, number>;
  /** Items by current step. */
  byStep: Record<PathwayStep, number>;
}

/** Answer of `GET /api/fls/kpis`: totals for the query, and the same counts per site. */
export interface KpiResponse extends KpiCounts {
  from: string | null;
  to: string | null;
  site: string | null;
  /** The server's clock (overdue is relative to it). */
  asOf: string;
  /** Per site (`site: null` = patients whose chart names no site), sorted by site name. */
  bySite: ({ site: string | null } & KpiCounts)[];
  /** The targets the counts use, in days after identification / the treatment decision. */
  targets: DueDays;
  notice: typeof RESEARCH_NOTICE;
}

/** Due-date targets in days (settings `FLS_DUE_*`). */
export interface DueDays {
  /** Contact after identification (default 14). */
  contact: number;
  /** DXA result after identification (default 84 = 12 weeks). */
  dxa: number;
  /** Treatment decision after the DXA result (default 14). */
  treatmentDecision: number;
  /** First follow-up after the treatment decision (default 112 = 16 weeks). */
  followUp16Weeks: number;
  /** Second follow-up after the treatment decision (default 365). */
  followUp12Months: number;
}

/**
 * Dismissal reasons: the concepts of the CodeSystem `fhir-profiles/codesystems/fls-triage.json`
 * (system {@link FLS_TRIAGE_SYSTEM}). Kept here too so the app can offer them without a terminology call.
 */
export const DISMISSAL_REASONS = {
  'already-treated': 'Already on osteoporosis treatment',
  'already-referred': 'Already under the fracture liaison service or another bone-health service',
  'not-fragility': 'Fracture risk does not warrant FLS review (e.g. high-energy trauma, clinician judgement)',
  'declined': 'Patient declined FLS assessment',
  'end-of-life': 'Palliative or end-of-life care',
  'deceased': 'Patient deceased',
  'moved-away': 'Patient moved out of the service area',
  'duplicate': 'Duplicate of another worklist item',
  'other': 'Other (see note)',
} as const;
export type DismissalReasonCode = keyof typeof DISMISSAL_REASONS;
export const FLS_TRIAGE_SYSTEM = 'https://fracture-risk-cds.invalid/fhir/CodeSystem/fls-triage';

/** Body of `POST /api/fls/worklist/{taskId}/dismiss`. */
export interface DismissRequest {
  reason: DismissalReasonCode;
  /** Free text (kept in Task.note); required when reason is `other`. */
  note?: string;
}

/** Answer of `POST /api/fls/worklist/{taskId}/accept` (also accepts an optional `{note}` body). */
export interface AcceptResponse {
  item: WorklistItem;
  serviceRequestId: string;
  /** True when the patient already had an open FLS referral, which was linked instead of creating a duplicate. */
  existingReferral?: boolean;
}

/** Answer of `POST /api/fls/worklist/{taskId}/dismiss`. */
export interface DismissResponse {
  item: WorklistItem;
}

/** Error body of the FLS API (the same shape as `/api/assessments` errors). */
export interface FlsErrorBody {
  error: string;
  /** `STALE_VERSION` (409): the If-Match version is not the Task's current one — reload the item and try again. */
  code: 'BAD_REQUEST' | 'FORBIDDEN' | 'NOT_FOUND' | 'CONFLICT' | 'STALE_VERSION' | 'FHIR_UNAVAILABLE' | 'FHIR_TIMEOUT' | 'INTERNAL';
  status: number;
}
